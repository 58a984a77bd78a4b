//! Replay as an operator runs it: the application is down during a mixed lifecycle of 50
//! users and 10 groups, every exchange is recorded `unreachable`; it comes back, and
//! `scimtrail replay --failed` brings it to the state the IdP intended, resource by resource,
//! skipping what was superseded and creates of what exists. A second replay changes nothing.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::needless_range_loop)]

mod common;

use common::App;
use scimtrail_integration::proxy::fresh_store_urls;
use scimtrail_integration::Client;
use scimtrail_store::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn patch(operations: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

fn user_body(name: &str, title: &str) -> Value {
    json!({"schemas": [USER], "userName": name, "active": true, "title": title})
}

/// What the IdP intends each user to be (None: deleted) and each group to hold.
#[derive(Debug, Default, PartialEq)]
struct Intended {
    users: BTreeMap<String, Option<(bool, String)>>,
    groups: BTreeMap<String, Option<BTreeSet<String>>>,
}

/// `scimtrail replay` with these arguments; its exit status and its JSON report.
fn replay(args: &[&str]) -> (bool, Value) {
    common::run_json("replay", args)
}

/// The application's state as the IdP sees it: users by userName, groups by displayName
/// with their members' userNames.
async fn observed(app: &Client) -> Intended {
    let mut state = Intended::default();
    let users = app.get("/Users?count=1000").await.body;
    let mut names = BTreeMap::new();
    for user in users["Resources"].as_array().unwrap() {
        let name = user["userName"].as_str().unwrap().to_owned();
        names.insert(user["id"].as_str().unwrap().to_owned(), name.clone());
        let title = user["title"].as_str().unwrap_or_default().to_owned();
        assert!(
            state
                .users
                .insert(name.clone(), Some((user["active"] == json!(true), title)))
                .is_none(),
            "{name} exists twice"
        );
    }
    let groups = app.get("/Groups?count=1000").await.body;
    for group in groups["Resources"].as_array().unwrap() {
        let members = group["members"]
            .as_array()
            .map(|members| {
                members
                    .iter()
                    .map(|m| names.get(m["value"].as_str().unwrap()).cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let name = group["displayName"].as_str().unwrap().to_owned();
        assert!(
            state.groups.insert(name.clone(), Some(members)).is_none(),
            "{name} exists twice"
        );
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_an_outage_reaches_the_intended_state_and_a_second_replay_changes_nothing() {
    for store_url in fresh_store_urls().await {
        run_outage(&store_url).await;
    }
}

async fn run_outage(store_url: &str) {
    let mut app = App::start().await;
    let direct = app.client();
    let (config, scimtrail) = app.proxied(store_url).await;
    let idp = &scimtrail.client;
    let mut intended = Intended::default();
    let provisioned = provision_users_and_groups(idp, &mut intended).await;

    // The outage: the IdP goes on with its lifecycle; every request is recorded unreachable.
    app.down().await;
    let mut outage = Outage::default();
    users_and_groups_change_during_the_outage(idp, &provisioned, &mut intended, &mut outage).await;
    deletes_renames_and_joiners_during_the_outage(idp, &provisioned, &mut intended, &mut outage).await;
    let sent = outage.sent;
    for id in &sent {
        let recorded = scimtrail.store.get(id).await.unwrap();
        assert_eq!(recorded.outcome(), "unreachable", "{id}");
    }

    // Back up; still the state from before the outage.
    app.up().await;
    let store_flag = ["--store", store_url, "--config", config.to_str().unwrap()];
    let report = replay_reaches_the_intended_state(&store_flag, &direct, &intended, sent.len()).await;
    each_replay_is_linked_to_its_original(&scimtrail.store, &report).await;
    a_second_replay_changes_nothing(&store_flag, &direct).await;
    every_run_is_audited(&scimtrail.store, &report["summary"]).await;

    scimtrail.running.shutdown().await;
    app.down().await;
    let _ = std::fs::remove_file(&config);
}

/// The userName of provisioned user `n`.
fn user_name(n: usize) -> String {
    format!("u{n:02}@example.com")
}

/// The ids of the users and groups provisioned before the outage, by their number.
struct Provisioned {
    user_ids: Vec<String>,
    group_ids: Vec<String>,
}

/// 50 users and 10 groups of 3 are provisioned through scimtrail, and intended.
async fn provision_users_and_groups(idp: &Client, intended: &mut Intended) -> Provisioned {
    // Before the outage: 50 users, 10 groups of 3.
    let mut user_ids = Vec::new();
    for n in 0..50 {
        let name = format!("u{n:02}@example.com");
        let created = idp.post("/scim/Users", &user_body(&name, "Engineer")).await;
        assert_eq!(created.status, 201, "{}", created.body);
        user_ids.push(created.body["id"].as_str().unwrap().to_owned());
        intended.users.insert(name, Some((true, "Engineer".into())));
    }
    let mut group_ids = Vec::new();
    for g in 0..10 {
        let members: Vec<Value> = (3 * g..3 * g + 3).map(|n| json!({"value": user_ids[n]})).collect();
        let name = format!("Team {g}");
        let created = idp
            .post(
                "/scim/Groups",
                &json!({"schemas": [GROUP], "displayName": name, "members": members}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        group_ids.push(created.body["id"].as_str().unwrap().to_owned());
        intended
            .groups
            .insert(name, Some((3 * g..3 * g + 3).map(user_name).collect()));
    }
    Provisioned { user_ids, group_ids }
}

/// The exchanges the IdP sent while the application was down.
#[derive(Default)]
struct Outage {
    sent: Vec<String>,
}

impl Outage {
    /// `response` is scimtrail's 502 for an unreachable application; its exchange is kept.
    fn unreachable(&mut self, response: scimtrail_integration::TestResponse) {
        assert_eq!(response.status, 502, "{}", response.body);
        self.sent
            .push(response.header("scimtrail-exchange-id").unwrap().to_owned());
    }
}

/// During the outage, users among the first 30 leave, flap or change title, and groups 0 to 4
/// swap a member, interleaved: each write unreachable, its lasting effect intended.
async fn users_and_groups_change_during_the_outage(
    idp: &Client,
    provisioned: &Provisioned,
    intended: &mut Intended,
    outage: &mut Outage,
) {
    let Provisioned { user_ids, group_ids } = provisioned;
    let set = |intended: &mut Intended, n: usize, active: bool, title: &str| {
        intended.users.insert(user_name(n), Some((active, title.to_owned())));
    };
    for n in 0..30 {
        let path = format!("/scim/Users/{}", user_ids[n]);
        match n {
            // Leavers.
            0..=9 => {
                outage.unreachable(
                    idp.patch(
                        &path,
                        &patch(json!([{"op": "replace", "path": "active", "value": false}])),
                    )
                    .await,
                );
                set(intended, n, false, "Engineer");
            }
            // Deactivated, then back: the deactivation is superseded.
            10..=14 => {
                outage.unreachable(
                    idp.patch(&path, &patch(json!([{"op": "replace", "value": {"active": false}}])))
                        .await,
                );
                outage.unreachable(
                    idp.patch(
                        &path,
                        &patch(json!([{"op": "replace", "path": "active", "value": true}])),
                    )
                    .await,
                );
            }
            // A title, then a whole replacement: the PATCH is superseded.
            20..=24 => {
                outage.unreachable(
                    idp.patch(
                        &path,
                        &patch(json!([{"op": "replace", "path": "title", "value": "Manager"}])),
                    )
                    .await,
                );
                outage.unreachable(idp.put(&path, &user_body(&user_name(n), "Director")).await);
                set(intended, n, true, "Director");
            }
            25..=29 => {
                outage.unreachable(
                    idp.patch(
                        &path,
                        &patch(json!([{"op": "replace", "path": "title", "value": "Lead"}])),
                    )
                    .await,
                );
                set(intended, n, true, "Lead");
            }
            _ => {}
        }
        // Group changes interleaved with the users'.
        if n < 5 {
            let g = n;
            let ops = json!([
                {"op": "add", "path": "members", "value": [{"value": user_ids[30 + g]}]},
                {"op": "remove", "path": format!("members[value eq \"{}\"]", user_ids[3 * g])}
            ]);
            outage.unreachable(idp.patch(&format!("/scim/Groups/{}", group_ids[g]), &patch(ops)).await);
            let members = [3 * g + 1, 3 * g + 2, 30 + g].into_iter().map(user_name).collect();
            intended.groups.insert(format!("Team {g}"), Some(members));
        }
    }
}

/// During the outage, users 45 to 49 are deleted, groups renamed, deleted and flapped, and
/// joiners and a new group created (five creates retried): each write unreachable, its
/// lasting effect intended.
async fn deletes_renames_and_joiners_during_the_outage(
    idp: &Client,
    provisioned: &Provisioned,
    intended: &mut Intended,
    outage: &mut Outage,
) {
    let Provisioned { user_ids, group_ids } = provisioned;
    for n in 45..50 {
        outage.unreachable(idp.delete(&format!("/scim/Users/{}", user_ids[n])).await);
        intended.users.insert(user_name(n), None);
    }
    for g in [5, 6] {
        let ops = json!([{"op": "replace", "path": "displayName", "value": format!("Renamed {g}")}]);
        outage.unreachable(idp.patch(&format!("/scim/Groups/{}", group_ids[g]), &patch(ops)).await);
        let members = intended.groups.remove(&format!("Team {g}")).unwrap();
        intended.groups.insert(format!("Renamed {g}"), members);
    }
    outage.unreachable(idp.delete(&format!("/scim/Groups/{}", group_ids[7])).await);
    intended.groups.insert("Team 7".into(), None);
    // Removed and added back: the removal is superseded.
    let team8 = format!("/scim/Groups/{}", group_ids[8]);
    let u24 = &user_ids[24];
    let remove = json!([{"op": "remove", "path": format!("members[value eq \"{u24}\"]")}]);
    outage.unreachable(idp.patch(&team8, &patch(remove)).await);
    outage.unreachable(
        idp.patch(
            &team8,
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": u24}]}])),
        )
        .await,
    );
    // Joiners; the IdP retries the first five creates: the retries are skipped as existing.
    for n in 0..10 {
        let name = format!("new{n}@example.com");
        let mut body = user_body(&name, "Joiner");
        body["password"] = json!(format!("initial-secret-{n}"));
        outage.unreachable(idp.post("/scim/Users", &body).await);
        if n < 5 {
            outage.unreachable(idp.post("/scim/Users", &body).await);
        }
        intended.users.insert(name, Some((true, "Joiner".into())));
    }
    let members = json!([{"value": user_ids[40]}, {"value": user_ids[41]}]);
    outage.unreachable(
        idp.post(
            "/scim/Groups",
            &json!({"schemas": [GROUP], "displayName": "New team", "members": members}),
        )
        .await,
    );
    intended
        .groups
        .insert("New team".into(), Some([40, 41].into_iter().map(user_name).collect()));
}

/// A dry run sends nothing and says what a replay of the `outage` failures would; the replay
/// skips the superseded and existing, sends the rest and reaches the intended state. Its report.
async fn replay_reaches_the_intended_state(
    store_flag: &[&str],
    direct: &Client,
    intended: &Intended,
    outage: usize,
) -> Value {
    let (ok, dry) = replay(&[&["--failed", "--dry-run"][..], store_flag].concat());
    assert!(ok, "{dry:#}");
    assert_eq!(dry["summary"]["replayed"], 0, "a dry run sends nothing");
    let would = dry["summary"]["would_replay"].as_u64().unwrap();
    assert_ne!(observed(direct).await, without_deleted(intended));

    let (ok, report) = replay(&[&["--failed"][..], store_flag].concat());
    assert!(ok, "{report:#}");
    let summary = &report["summary"];
    assert_eq!(summary["selected"].as_u64().unwrap() as usize, outage, "{summary}");
    assert_eq!(summary["skipped_because"]["superseded"], 11, "{summary}");
    assert_eq!(summary["skipped_because"]["exists_upstream"], 5, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["replayed"].as_u64().unwrap() as usize, outage - 16, "{summary}");
    assert_eq!(
        summary["replayed"].as_u64().unwrap(),
        would,
        "the dry run said what would be sent"
    );
    assert_eq!(observed(direct).await, without_deleted(intended));
    report
}

/// Each replay in `report` succeeded and is linked to its original both ways.
async fn each_replay_is_linked_to_its_original(store: &Store, report: &Value) {
    // Each replay is a new exchange, linked both ways; the passwords were left out, and said so.
    for item in report["items"].as_array().unwrap() {
        if item["action"] == "replayed" {
            let replay = store.get(item["replay"].as_str().unwrap()).await.unwrap();
            let original = store.get(item["exchange"].as_str().unwrap()).await.unwrap();
            assert_eq!(replay.begun.replay_of.as_deref(), Some(original.begun.id.as_str()));
            assert_eq!(original.replays, vec![replay.begun.id.clone()]);
            assert_eq!(replay.outcome(), "ok");
            if original
                .begun
                .request_body
                .as_deref()
                .unwrap_or_default()
                .contains("password")
            {
                assert!(item["notes"].to_string().contains("password"), "{item}");
            }
        }
    }
}

/// A second `replay --failed` replays nothing and leaves the application as it was.
async fn a_second_replay_changes_nothing(store_flag: &[&str], direct: &Client) {
    // A second replay of the same set changes nothing.
    let before = observed(direct).await;
    let (ok, again) = replay(&[&["--failed"][..], store_flag].concat());
    assert!(ok, "{again:#}");
    assert_eq!(again["summary"]["replayed"], 0, "{:#}", again["summary"]);
    assert_eq!(observed(direct).await, before);
}

/// The dry run and both replays are audited as the CLI's, the first replay with `summary`.
async fn every_run_is_audited(store: &Store, summary: &Value) {
    // Every run is audited as the CLI's, newest first, with its selection and counts.
    let query = scimtrail_store::AuditQuery {
        action: Some("replay".into()),
        limit: 10,
        ..Default::default()
    };
    let runs = store.audit_list(&query).await.unwrap();
    assert_eq!(runs.len(), 3, "the dry run and two runs: {runs:?}");
    assert!(runs.iter().all(|entry| entry.actor.starts_with("cli:")), "{runs:?}");
    let dry: Vec<&serde_json::Value> = runs.iter().map(|entry| &entry.detail["dry_run"]).collect();
    assert_eq!(dry, [&json!(false), &json!(false), &json!(true)], "{runs:?}");
    assert_eq!(runs[1].detail["summary"]["replayed"], summary["replayed"], "{runs:?}");
    assert_eq!(runs[0].detail["summary"]["replayed"], 0, "{runs:?}");
}

fn without_deleted(intended: &Intended) -> Intended {
    Intended {
        users: intended
            .users
            .iter()
            .filter(|(_, u)| u.is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        groups: intended
            .groups
            .iter()
            .filter(|(_, g)| g.is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Retention deletes a success that replay decides from: the IdP deactivated a user while
/// the application was down, then reactivated them once it was back; a group's member was
/// removed while down, then added back. The successes are pruned before the replay. The
/// resources' summary still supersedes the failures, so the replay leaves the user active
/// and the member in, as the IdP intended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_pruned_before_the_replay_still_supersedes_the_failure_it_followed() {
    for store_url in fresh_store_urls().await {
        let mut app = App::start().await;
        let direct = app.client();
        let (config, scimtrail) = app.proxied(&store_url).await;
        let idp = &scimtrail.client;
        let created = idp
            .post("/scim/Users", &user_body("leaver@example.com", "Engineer"))
            .await;
        let user = format!("/scim/Users/{}", created.body["id"].as_str().unwrap());
        let other = idp
            .post("/scim/Users", &user_body("other@example.com", "Engineer"))
            .await;
        let member = other.body["id"].as_str().unwrap().to_owned();
        let group = idp
            .post(
                "/scim/Groups",
                &json!({"schemas": [GROUP], "displayName": "Team", "members": [{"value": member}]}),
            )
            .await;
        let group = format!("/scim/Groups/{}", group.body["id"].as_str().unwrap());

        app.down().await;
        let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
        assert_eq!(idp.patch(&user, &off).await.status, 502);
        let remove = patch(json!([{"op": "remove", "path": format!("members[value eq \"{member}\"]")}]));
        assert_eq!(idp.patch(&group, &remove).await.status, 502);
        app.up().await;
        let on = idp
            .patch(
                &user,
                &patch(json!([{"op": "replace", "path": "active", "value": true}])),
            )
            .await;
        assert_eq!(on.status, 200, "{}", on.body);
        let reactivation = on.header("scimtrail-exchange-id").unwrap().to_owned();
        let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": member}]}]));
        let added = idp.patch(&group, &add).await;
        assert!(added.status == 200 || added.status == 204, "{}", added.body);

        // Every success goes.
        let only_failures = scimtrail_store::Retention {
            keep_ms: [("ok".to_owned(), Some(0))].into(),
            max_store_bytes: None,
        };
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let pruned = scimtrail
            .store
            .prune(&only_failures, now + 1000, false, None, |_| {})
            .await
            .unwrap();
        assert_eq!(pruned.exchanges.get("ok"), Some(&5), "{pruned:?}");
        assert!(scimtrail.store.get(&reactivation).await.is_err(), "pruned");

        let store_flag = ["--store", store_url.as_str(), "--config", config.to_str().unwrap()];
        let (ok, report) = replay(&[&["--failed"][..], &store_flag].concat());
        assert!(ok, "{report:#}");
        assert_eq!(report["summary"]["skipped_because"]["superseded"], 2, "{report:#}");
        assert_eq!(report["summary"]["replayed"], 0, "{report:#}");
        let reason = report["items"][0]["reason"].as_str().unwrap();
        assert!(
            reason.contains(&reactivation) && reason.contains("pruned since"),
            "{reason}"
        );
        let state = observed(&direct).await;
        assert_eq!(
            state.users.get("leaver@example.com"),
            Some(&Some((true, "Engineer".to_owned()))),
            "still active, as the IdP intended"
        );
        let still_in = BTreeSet::from(["other@example.com".to_owned()]);
        assert_eq!(state.groups.get("Team"), Some(&Some(still_in)), "{state:?}");

        scimtrail.running.shutdown().await;
        app.down().await;
        let _ = std::fs::remove_file(&config);
    }
}
