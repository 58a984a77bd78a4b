//! Reconcile as an operator runs it: users and a group provisioned through scimtrail, then the
//! application changed behind its back and an outage that was not replayed; `scimtrail
//! reconcile` (and the admin API's run) report exactly those drifts, a leaver with access
//! first, each with the exchange that established the intent, and alert the route's webhook;
//! `--repair --dry-run` plans the writes that restore the intent, `--repair` sends them, and a
//! second run finds no drift. On both backends. And `[route.reconcile] every` runs on its own.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::App;
use scimtrail_integration::proxy::fresh_store_urls;
use scimtrail_integration::proxy::TestProxy;
use scimtrail_integration::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn active(value: bool) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": value}]})
}

/// `scimtrail reconcile --json` with these arguments: its exit status and its report.
fn reconcile(args: &[&str]) -> (bool, Value) {
    common::run_json("reconcile", args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_what_changed_behind_scimtrails_back_and_what_an_outage_left_undone() {
    for store_url in fresh_store_urls().await {
        let mut app = App::start().await;
        let direct = app.client();
        let hook = scimtrail_integration::webhook::start(0).await;
        let (config, scimtrail) = app
            .proxied_with(&store_url, &format!("[route.webhook]\nurl = \"{}\"\n", hook.url))
            .await;
        let Changed {
            ids,
            team_id,
            stranger_id,
            lost_id,
        } = change_behind_scimtrails_back(&mut app, &scimtrail, &store_url).await;

        let config = config.to_str().unwrap().to_owned();
        let report = the_cli_reports_exactly_those_drifts(&store_url, &config, &ids, &team_id, &stranger_id, &lost_id);
        the_admin_api_runs_the_same_audits_and_alerts_once_per_run(&scimtrail, &hook, &report, &store_url).await;

        let drifted = Drifted {
            store_url: &store_url,
            config: &config,
            ids: &ids,
            team_id: &team_id,
            stranger_id: &stranger_id,
        };
        the_repair_restores_the_intent(&scimtrail, &direct, &drifted).await;

        scimtrail.running.shutdown().await;
        app.down().await;
    }
}

/// `scimtrail reconcile` reports exactly what [`change_behind_scimtrails_back`] did, leavers
/// with access first, each with the exchange that established the intent; returns the report.
fn the_cli_reports_exactly_those_drifts(
    store_url: &str,
    config: &str,
    ids: &BTreeMap<&'static str, String>,
    team_id: &str,
    stranger_id: &str,
    lost_id: &str,
) -> Value {
    let (ok, report) = reconcile(&["--route", "app", "--store", store_url, "--config", config]);
    assert!(ok, "{store_url}: {report:#}");
    let counts = &report["counts"];
    // The deleted user left the group too: a member missing.
    let expected = json!({"active_mismatch": 2, "inactive_in_app": 0, "missing_in_app": 3, "member_missing": 1,
        "member_extra": 1, "attribute_mismatch": 0, "unknown_to_idp": 2});
    assert_eq!(counts, &expected, "{store_url}: {report:#}");
    let drifts = report["drifts"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = drifts
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["name"].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(
        &seen[..2],
        [("active_mismatch", "leaver"), ("active_mismatch", "mover")],
        "leavers with access first: {seen:?}"
    );
    let mover = &drifts[1];
    assert_eq!(
        mover["established_by"], lost_id,
        "the failed deactivation is the intent"
    );
    assert_eq!(mover["resource_id"], ids["mover"].as_str());
    let mut missing: Vec<&str> = seen
        .iter()
        .filter(|(k, _)| *k == "missing_in_app")
        .map(|(_, n)| *n)
        .collect();
    missing.sort_unstable();
    assert_eq!(missing, ["again", "gone", "newcomer"], "{seen:?}");
    let extra = drifts.iter().find(|d| d["kind"] == "member_extra").unwrap();
    assert_eq!(extra["actual"], stranger_id);
    assert_eq!(extra["resource_id"], team_id);

    report
}

/// The admin API runs the same reconcile and pages its drifts, `/metrics` counts them, each
/// run is audited, and each run alerts the webhook once, naming its leavers with access.
async fn the_admin_api_runs_the_same_audits_and_alerts_once_per_run(
    scimtrail: &TestProxy,
    hook: &scimtrail_integration::webhook::Receiver,
    report: &Value,
    store_url: &str,
) {
    // The admin API runs the same, shows its drifts, and `/metrics` its counts.
    let run = scimtrail
        .admin
        .post("/api/v1/reconciliations", &json!({"route": "app", "resource": "Users"}))
        .await;
    assert_eq!(run.status, 200, "{:?}", run.body);
    assert_eq!(run.body["counts"]["active_mismatch"], 2);
    assert_eq!(run.body["counts"]["member_extra"], 0, "Users only");
    let id = run.body["id"].as_str().unwrap();
    let listed = scimtrail
        .admin
        .get(&format!("/api/v1/reconciliations/{id}?limit=1"))
        .await;
    assert_eq!(listed.body["drifts"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["drifts"][0]["kind"], "active_mismatch");
    let metrics = scimtrail.metrics().await;
    assert!(
        metrics.contains("scimtrail_drift{route=\"app\",kind=\"active_mismatch\"} 2"),
        "{metrics}"
    );
    let refused = scimtrail
        .admin
        .post("/api/v1/reconciliations", &json!({"route": "nowhere"}))
        .await;
    assert_eq!(refused.status, 400);

    // A run is audited with its counts (a request for no route is refused before any).
    let query = scimtrail_store::AuditQuery {
        action: Some("reconcile".into()),
        limit: 10,
        ..Default::default()
    };
    let audited = scimtrail.store.audit_list(&query).await.unwrap();
    assert_eq!(audited.len(), 2, "{store_url}: {audited:?}");
    assert!(audited[1].actor.starts_with("cli:"), "{audited:?}");
    assert_eq!(audited[1].detail["counts"]["member_extra"], 1, "{audited:?}");

    // Each run alerted the webhook once, naming its leavers with access (after the
    // outage's failed deactivation, alerted when it failed).
    let alerts: Vec<_> = hook
        .accepted(3)
        .await
        .into_iter()
        .filter(|alert| alert.body["alert"] == "active_mismatch")
        .collect();
    assert_eq!(alerts.len(), 2, "one alert per run: {alerts:?}");
    let alert = &alerts[0].body;
    assert_eq!(alert["alert"], "active_mismatch");
    assert_eq!(alert["count"], 2);
    assert_eq!(alert["reconciliation"], report["id"]);
    let named: Vec<&str> = alert["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_name"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["leaver", "mover"]);
}

/// What [`change_behind_scimtrails_back`] did.
struct Changed {
    ids: BTreeMap<&'static str, String>,
    team_id: String,
    stranger_id: String,
    /// The deactivation the outage lost.
    lost_id: String,
}

/// Users and a group provisioned through scimtrail; then, in the application directly, the
/// leaver reactivated, a stranger made and put in the group, a user deleted, another deleted
/// and made again; then an outage no one replayed, losing a deactivation and a create.
async fn change_behind_scimtrails_back(app: &mut App, scimtrail: &TestProxy, store_url: &str) -> Changed {
    let direct = app.client();
    let idp = &scimtrail.client;
    let mut ids = BTreeMap::new();
    for name in ["keep", "leaver", "gone", "mover", "again"] {
        let created = idp
            .post(
                "/scim/Users",
                &json!({"schemas": [USER], "userName": name, "active": true}),
            )
            .await;
        assert_eq!(created.status, 201, "{store_url}: {name}");
        ids.insert(name, created.body["id"].as_str().unwrap().to_owned());
    }
    let team = idp
        .post(
            "/scim/Groups",
            &json!({"schemas": [GROUP], "displayName": "Team",
                "members": [{"value": ids["keep"]}, {"value": ids["leaver"]}, {"value": ids["gone"]}]}),
        )
        .await;
    let team_id = team.body["id"].as_str().unwrap().to_owned();
    // The IdP deactivates the leaver; the application takes it.
    let deactivated = idp
        .patch(&format!("/scim/Users/{}", ids["leaver"]), &active(false))
        .await;
    assert_eq!(deactivated.status, 200);

    // Behind scimtrail's back: the leaver reactivated, a stranger made and put in the
    // group, a user deleted.
    assert_eq!(
        direct
            .patch(&format!("/Users/{}", ids["leaver"]), &active(true))
            .await
            .status,
        200
    );
    let stranger = direct
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "stranger", "active": true}),
        )
        .await;
    let stranger_id = stranger.body["id"].as_str().unwrap().to_owned();
    let add = json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": stranger_id}]}]});
    assert!(direct
        .patch(&format!("/Groups/{team_id}"), &add)
        .await
        .status
        .is_success());
    assert_eq!(direct.delete(&format!("/Users/{}", ids["gone"])).await.status, 204);
    // …and a user deleted and made again in the application, under a new id.
    assert_eq!(direct.delete(&format!("/Users/{}", ids["again"])).await.status, 204);
    let made_again = direct
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "again", "active": true}),
        )
        .await;
    assert_eq!(made_again.status, 201);

    // An outage no one replayed: the IdP deactivated the mover and created a newcomer.
    app.down().await;
    let lost = idp
        .patch(&format!("/scim/Users/{}", ids["mover"]), &active(false))
        .await;
    assert!(lost.status.is_server_error(), "{store_url}: {}", lost.status);
    let lost_id = lost.header("scimtrail-exchange-id").unwrap().to_owned();
    let late = idp
        .post(
            "/scim/Users",
            &json!({"schemas": [USER], "userName": "newcomer", "active": true}),
        )
        .await;
    assert!(late.status.is_server_error());
    app.up().await;
    // Everything recorded is in the database before the CLI reads it.
    assert!(scimtrail.exchanges_of("app").await.len() >= 8);
    Changed {
        ids,
        team_id,
        stranger_id,
        lost_id,
    }
}

/// What the test changed behind scimtrail's back, for the repair to restore.
struct Drifted<'a> {
    store_url: &'a str,
    config: &'a str,
    ids: &'a BTreeMap<&'static str, String>,
    team_id: &'a str,
    stranger_id: &'a str,
}

/// `--repair --dry-run` plans a write per drifted resource and sends none; `--repair` sends
/// them (leaving alone the user made again in the application), each recorded as the run's;
/// the application then holds the intent, and a second run finds no drift but the stranger.
async fn the_repair_restores_the_intent(scimtrail: &TestProxy, direct: &Client, drifted: &Drifted<'_>) {
    // The repair, planned: a write per resource, nothing sent.
    let Drifted {
        store_url,
        config,
        ids,
        team_id,
        stranger_id,
    } = *drifted;
    let store_args = ["--route", "app", "--store", store_url, "--config", config];
    let (ok, planned) = reconcile(&[&store_args[..], &["--repair", "--dry-run"]].concat());
    assert!(ok, "{store_url}: {planned:#}");
    assert_eq!(planned["repair"]["dry_run"], true);
    assert_eq!(repair_writes(&planned), expected_repairs("planned"), "{planned:#}");
    let leaver_write = planned["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "leaver")
        .unwrap();
    assert_eq!(
        leaver_write["body"]["Operations"],
        json!([{"op": "replace", "path": "active", "value": false}]),
        "a leaver is deactivated, never deleted"
    );
    let leaver_now = direct.get(&format!("/Users/{}", ids["leaver"])).await;
    assert_eq!(leaver_now.body["active"], true, "a dry run sends nothing");

    // A repair leaves alone what the IdP wrote moments ago (the intent may be changing):
    // past that, it sends every write, each recorded as the run's.
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let (ok, repaired) = reconcile(&[&store_args[..], &["--repair"]].concat());
    assert!(ok, "{store_url}: {repaired:#}");
    let mut expected = expected_repairs("ok");
    // The user made again in the application is not created twice: found by its userName.
    let again = expected.iter_mut().find(|w| w.2 == "again").unwrap();
    again.0 = "skipped".to_owned();
    expected.sort();
    assert_eq!(repair_writes(&repaired), expected, "{repaired:#}");
    let skipped = repaired["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "again")
        .unwrap();
    assert!(
        skipped["reason"].as_str().unwrap().contains("has it already"),
        "{skipped:#}"
    );
    for write in repaired["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] != "again")
    {
        let exchange = scimtrail
            .store
            .get(write["exchange_id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            exchange.begun.reconcile_of.as_deref(),
            repaired["id"].as_str(),
            "{exchange:?}"
        );
    }
    for leaver in ["leaver", "mover"] {
        let now = direct.get(&format!("/Users/{}", ids[leaver])).await;
        assert_eq!(now.body["active"], false, "{store_url}: {leaver}");
    }
    let team_now = direct.get(&format!("/Groups/{team_id}")).await;
    let members: Vec<&str> = team_now.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        members.len(),
        3,
        "keep, leaver and gone created again, not the stranger: {members:?}"
    );
    assert!(!members.contains(&stranger_id) && !members.contains(&ids["gone"].as_str()));
    assert!(
        direct.get(&format!("/Users/{stranger_id}")).await.status == 200,
        "what the IdP never provisioned stays"
    );

    // The intent holds: a second run finds no drift but the stranger, which is only
    // reported (the user made again is known now as the IdP's).
    let (ok, again) = reconcile(&store_args);
    assert!(ok, "{again:#}");
    let clean = json!({"active_mismatch": 0, "inactive_in_app": 0, "missing_in_app": 0, "member_missing": 0,
        "member_extra": 0, "attribute_mismatch": 0, "unknown_to_idp": 1});
    assert_eq!(again["counts"], clean, "{store_url}: {again:#}");

    // The repair is audited with the run.
    let query = scimtrail_store::AuditQuery {
        action: Some("reconcile".into()),
        limit: 10,
        ..Default::default()
    };
    let audited = scimtrail.store.audit_list(&query).await.unwrap();
    assert!(
        audited
            .iter()
            .any(|entry| entry.detail["repair"]["outcomes"] == json!({"ok": 5, "skipped": 1})),
        "{audited:?}"
    );
}

/// A run's repairs as (outcome, method, name, kinds), sorted.
fn repair_writes(report: &Value) -> Vec<(String, String, String, Vec<String>)> {
    let mut writes: Vec<_> = report["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let kinds = r["kinds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect();
            let name = r["name"].as_str().unwrap_or("-").to_owned();
            (
                r["outcome"].as_str().unwrap().to_owned(),
                r["method"].as_str().unwrap().to_owned(),
                name,
                kinds,
            )
        })
        .collect();
    writes.sort();
    writes
}

/// The repairs the drift of the test calls for, each with `outcome`, sorted.
fn expected_repairs(outcome: &str) -> Vec<(String, String, String, Vec<String>)> {
    let write = |method: &str, name: &str, kinds: &[&str]| {
        (
            outcome.to_owned(),
            method.to_owned(),
            name.to_owned(),
            kinds.iter().map(|k| (*k).to_owned()).collect(),
        )
    };
    let mut writes = vec![
        write("PATCH", "leaver", &["active_mismatch"]),
        write("PATCH", "mover", &["active_mismatch"]),
        write("POST", "gone", &["missing_in_app"]),
        write("POST", "again", &["missing_in_app"]),
        write("POST", "newcomer", &["missing_in_app"]),
        write("PATCH", "Team", &["member_missing", "member_extra"]),
    ];
    writes.sort();
    writes
}

/// Ann, provisioned and deactivated through scimtrail, then reactivated in the application
/// directly: a leaver with access. Returns her id.
async fn a_leaver_reactivated_behind_scimtrails_back(scimtrail: &TestProxy, direct: &Client) -> String {
    let created = scimtrail
        .client
        .post(
            "/scim/Users",
            &json!({"schemas": [USER], "userName": "ann", "active": true}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        scimtrail
            .client
            .patch(&format!("/scim/Users/{id}"), &active(false))
            .await
            .status,
        200
    );
    assert_eq!(direct.patch(&format!("/Users/{id}"), &active(true)).await.status, 200);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_reconcile_schedule_runs_on_its_own_and_reports_without_repairing() {
    let store_url = fresh_store_urls().await.remove(0);
    let mut app = App::start().await;
    let direct = app.client();
    let (_config, scimtrail) = app
        .proxied_with(&store_url, "[route.reconcile]\nevery = \"10s\"\n")
        .await;
    let id = a_leaver_reactivated_behind_scimtrails_back(&scimtrail, &direct).await;
    // The first run is due at once, the next 10 s after it began.
    let query = scimtrail_store::AuditQuery {
        action: Some("reconcile".into()),
        limit: 10,
        ..Default::default()
    };
    let mut runs = Vec::new();
    for _ in 0..300 {
        runs = scimtrail.store.audit_list(&query).await.unwrap();
        if runs.iter().any(|run| run.detail["counts"]["active_mismatch"] == 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let found = runs.iter().find(|run| run.detail["counts"]["active_mismatch"] == 1);
    let found = found.unwrap_or_else(|| panic!("no scheduled run found the leaver: {runs:?}"));
    assert_eq!(found.actor, "scimtrail", "{found:?}");
    assert_eq!(found.detail["repair"], Value::Null, "a scheduled run repairs nothing");
    assert_eq!(direct.get(&format!("/Users/{id}")).await.body["active"], true);
    scimtrail.running.shutdown().await;
    app.down().await;
}

/// A repair goes only to its route's application: when another route's longer prefix would
/// take its path (a route added since the IdP's writes), it is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_another_routes_prefix_would_take_is_not_sent() {
    let store_url = fresh_store_urls().await.remove(0);
    let mut app = App::start().await;
    let direct = app.client();
    let (config, scimtrail) = app.proxied(&store_url).await;
    let id = a_leaver_reactivated_behind_scimtrails_back(&scimtrail, &direct).await;
    scimtrail.running.shutdown().await;
    // Settled: the IdP's writes are past the seconds a repair leaves alone.
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;

    // A route added since, whose prefix is longer, to another application (nothing listens).
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[[route]]\nname = \"shadow\"\nidp = \"generic\"\npath_prefix = \"/scim/Users\"\nupstream = \"http://127.0.0.1:9\"\n");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let (ok, report) = reconcile(&["--route", "app", "--store", &store_url, "--config", &config, "--repair"]);
    assert!(ok, "{report:#}");
    let repair = &report["repairs"][0];
    assert_eq!(repair["outcome"], "failed", "{report:#}");
    assert!(
        repair["reason"].as_str().unwrap().contains("another route"),
        "{repair:#}"
    );
    assert_eq!(repair["exchange_id"], Value::Null, "nothing was sent: {repair:#}");
    assert_eq!(direct.get(&format!("/Users/{id}")).await.body["active"], true);
    app.down().await;
}
