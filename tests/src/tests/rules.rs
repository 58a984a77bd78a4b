//! The operator's own rule files in the running proxy (`[rules] dir`): a route that names one
//! runs its rules and each exchange records their version; a reload (what SIGHUP does) puts
//! a changed set in force for new exchanges, whole, or keeps the set in force and says why;
//! reloads under load refuse and misroute nothing, and no exchange mixes two sets; a replay
//! of an exchange recorded under other rules says so, and goes on.

use scimtrail_demo::outage::OutageApp;
use scimtrail_integration::proxy::{self, TestProxy};
use scimtrail_integration::{refapp, spy, Client};
use scimtrail_rules::{builtin_profile, Catalog, RuleSource};
use scimtrail_store::{AuditQuery, Exchange};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Okta's rules with N15 (nulls dropped) added and R5 turned off.
const ACME: &str = include_str!("../../fixtures/rules/acme-okta.toml");

/// The same profile without N15, and without the case that shows N15.
const ACME_WITHOUT_N15: &str = "[profile]\nname = \"acme-okta\"\ndescription = \"Okta, R5 off\"\nextends = \"okta\"\n\
    [[rule]]\nid = \"R5\"\ndisable = true\nwhy = \"Acme's application pages in a stable order by itself\"\n\
    [[test]]\nname = \"a null title is forwarded\"\nmethod = \"POST\"\npath = \"/Users\"\n\
    body = '{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"b\",\"title\":null}'\n\
    expect_rules = []\n";

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// A fresh directory holding `acme-okta.toml` with `text`.
fn rules_dir(text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scimtrail-it-rules-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("acme-okta.toml"), text).unwrap();
    dir
}

/// The `rules_version` of `acme-okta` written as `text`.
fn version_of(text: &str) -> String {
    let source = RuleSource {
        path: "/x/acme-okta.toml".to_owned(),
        text: text.to_owned(),
    };
    let catalog = Catalog::load(&[source]).unwrap();
    catalog.get("acme-okta").unwrap().version().to_owned()
}

/// A proxy whose `[rules] dir` is `dir`, with these routes, on a fresh SQLite store.
async fn start(dir: &Path, routes: &str) -> TestProxy {
    let store = proxy::fresh_store_urls().await.remove(0);
    proxy::start(&format!("[rules]\ndir = \"{}\"\n{routes}", dir.display()), &store).await
}

fn route(name: &str, idp: &str, upstream: &str) -> String {
    format!("[[route]]\nname = \"{name}\"\npath_prefix = \"/{name}\"\nidp = \"{idp}\"\nupstream = \"{upstream}\"\n")
}

fn new_user(name: &str) -> Value {
    json!({"schemas": [USER], "userName": name, "title": null})
}

/// The exchange the proxy named in its answer.
async fn recorded(proxy: &TestProxy, answer: &scimtrail_integration::TestResponse) -> Exchange {
    let id = answer.header("scimtrail-exchange-id").expect("the exchange is named");
    proxy.store.get(id).await.expect("the exchange is recorded")
}

fn rules_of(exchange: &Exchange) -> Vec<String> {
    let changes = exchange.changes().as_array().cloned().unwrap_or_default();
    changes
        .iter()
        .filter_map(|c| c["rule"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_naming_an_operator_profile_runs_its_rules_and_records_their_version() {
    let dir = rules_dir(ACME);
    let (app, _) = refapp::start().await;
    let front = spy::start(Some(app.base_url())).await;
    let routes = route("acme", "acme-okta", &front.base_url()) + &route("okta", "okta", &front.base_url());
    let proxy = start(&dir, &routes).await;

    let created = proxy.client.post("/acme/Users", &new_user("bjensen")).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let sent = front.seen_with(http::Method::POST).pop().unwrap();
    let sent: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        sent,
        json!({"schemas": [USER], "userName": "bjensen"}),
        "N15 dropped the null"
    );
    let _ = proxy.client.post("/okta/Users", &new_user("ajensen")).await;
    let sent = front.seen_with(http::Method::POST).pop().unwrap();
    let sent: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(sent["title"], Value::Null);
    assert!(
        sent.as_object().unwrap().contains_key("title"),
        "okta's rules keep it: {sent}"
    );

    let acme = recorded(&proxy, &created).await;
    let version = version_of(ACME);
    assert_eq!(acme.begun.rules_version.as_deref(), Some(version.as_str()));
    assert_eq!(rules_of(&acme), ["N15"]);
    let okta = proxy.exchanges_of("okta").await.remove(0);
    let okta_version = builtin_profile("okta").unwrap().unwrap().version().to_owned();
    assert_eq!(okta.begun.rules_version.as_deref(), Some(okta_version.as_str()));
    assert_ne!(version, okta_version);
    // The API shows it.
    let shown = proxy.admin.get(&format!("/api/v1/exchanges/{}", acme.begun.id)).await;
    assert_eq!(shown.body["rules_version"], json!(version));
    assert_eq!(
        proxy.running.rules_versions(),
        [
            ("acme".to_owned(), "acme-okta".to_owned(), version),
            ("okta".to_owned(), "okta".to_owned(), okta_version)
        ]
    );
    proxy.running.shutdown().await;
    app.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_puts_a_changed_set_in_force_whole_or_keeps_the_set_in_force_and_says_why() {
    let dir = rules_dir(ACME);
    let (app, _) = refapp::start().await;
    let proxy = start(&dir, &route("app", "acme-okta", &app.base_url())).await;
    let file = dir.join("acme-okta.toml").display().to_string();
    let mut n = 0;
    let mut create = || {
        n += 1;
        let (client, name) = (proxy.client.clone(), format!("user{n}"));
        async move { client.post("/app/Users", &new_user(&name)).await }
    };
    let (v1, v2) = (version_of(ACME), version_of(ACME_WITHOUT_N15));
    let first = create().await;
    assert_eq!(
        recorded(&proxy, &first).await.begun.rules_version.as_deref(),
        Some(v1.as_str())
    );

    // Changed: in force for the next exchange.
    std::fs::write(dir.join("acme-okta.toml"), ACME_WITHOUT_N15).unwrap();
    let report = scimtrail_app::reload(&proxy.running, &proxy.settings).await;
    assert!(
        report.contains(&format!(
            "rules: profile acme-okta ({file}): changed, rules_version {v1} -> {v2}"
        )),
        "{report:#?}"
    );
    let second = recorded(&proxy, &create().await).await;
    assert_eq!(second.begun.rules_version.as_deref(), Some(v2.as_str()));
    assert!(rules_of(&second).is_empty(), "N15 is gone: {:?}", second.changes());
    // The UI shows which rules an exchange ran, and that the reasons it shows are newer.
    let id = first.header("scimtrail-exchange-id").unwrap();
    let page = proxy.admin.get(&format!("/ui/exchanges/{id}")).await;
    let html = String::from_utf8_lossy(&page.bytes);
    assert!(
        html.contains(&format!("<dt>Rules version</dt><dd class=\"mono\">{v1}</dd>")),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "have changed since: the reasons below are those of rules_version {v2}; this exchange ran {v1}."
        )),
        "{html}"
    );

    // Each way a set can fail keeps the set in force, and says which file and why.
    let failing_case = ACME.replace("\"userName\":\"bjensen\"}'", "\"userName\":\"someone else\"}'");
    let another = "[profile]\nname = \"other\"\ndescription = \"d\"\nextends = \"generic\"\n";
    let broken: [(&[(&str, &str)], String); 3] = [
        (
            &[("acme-okta.toml", "[profile]\nname = \"acme-okta\"\n")],
            format!("rule file {file}: TOML parse error"),
        ),
        (
            &[("acme-okta.toml", failing_case.as_str())],
            format!("rule file {file}: profile acme-okta: case \"a null title is dropped from a create\" failed: forwarded body differs:"),
        ),
        (
            &[("other.toml", another)],
            "the new rule files lack profiles routes use (route app uses profile acme-okta): kept the profiles in force".to_owned(),
        ),
    ];
    for (files, reason) in broken {
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let report = scimtrail_app::reload(&proxy.running, &proxy.settings).await;
        let kept = report
            .iter()
            .find(|line| line.starts_with("rules: kept the profiles in force: "));
        assert!(kept.is_some_and(|line| line.contains(&reason)), "{reason}: {report:#?}");
        let exchange = recorded(&proxy, &create().await).await;
        assert_eq!(exchange.begun.rules_version.as_deref(), Some(v2.as_str()), "{reason}");
    }

    // Every reload is audited, with what it did.
    let query = AuditQuery {
        action: Some("reload".to_owned()),
        limit: 10,
        ..AuditQuery::default()
    };
    let audited = proxy.store.audit_list(&query).await.unwrap();
    let results: Vec<&str> = audited
        .iter()
        .map(|entry| entry.detail["rules"]["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["kept", "kept", "kept", "reloaded"], "newest first");
    assert_eq!(
        audited[3].detail["rules"]["profiles"],
        json!([{"profile": "acme-okta", "origin": file, "from": v1, "to": v2}])
    );
    assert!(audited[0].detail["rules"]["error"]
        .as_str()
        .unwrap()
        .contains("route app uses profile acme-okta"));
    proxy.running.shutdown().await;
    app.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What one request of the load came back with.
struct Answer {
    route: &'static str,
    user: String,
    status: u16,
    proxy_error: Option<String>,
    exchange: Option<String>,
    body: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_refuse_nothing_misroute_nothing_and_mix_no_two_sets() {
    let dir = rules_dir(ACME);
    let ((app_a, direct_a), (app_b, direct_b)) = (refapp::start().await, refapp::start().await);
    // Only application B knows this user: a lookup that reaches A finds no one.
    let only_b = direct_b
        .post("/Users", &json!({"schemas": [USER], "userName": "only-in-b"}))
        .await;
    assert_eq!(only_b.status, 201);
    let routes = route("a", "acme-okta", &app_a.base_url()) + &route("b", "okta", &app_b.base_url());
    let proxy = start(&dir, &routes).await;
    let (with_n15, without_n15) = (version_of(ACME), version_of(ACME_WITHOUT_N15));
    let okta = builtin_profile("okta").unwrap().unwrap().version().to_owned();

    // Six connections, each sending a create on route a and a lookup on route b in turn.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for connection in 0..6 {
        let client = Client::new(format!("http://{}", proxy.running.proxy_addr));
        let stop = Arc::clone(&stop);
        load.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let user = format!("c{connection}-{n}");
                let created = client.post("/a/Users", &new_user(&user)).await;
                let found = client.get("/b/Users?filter=userName%20eq%20%22only-in-b%22").await;
                for (route, answer) in [("a", created), ("b", found)] {
                    answers.push(Answer {
                        route,
                        user: user.clone(),
                        status: answer.status.as_u16(),
                        proxy_error: answer.header("scimtrail-error").map(str::to_owned),
                        exchange: answer.header("scimtrail-exchange-id").map(str::to_owned),
                        body: answer.body,
                    });
                }
            }
            answers
        }));
    }
    // Meanwhile the directory changes and is reloaded, over and over.
    for round in 0..40 {
        let text = if round % 2 == 0 { ACME_WITHOUT_N15 } else { ACME };
        std::fs::write(dir.join("acme-okta.toml"), text).unwrap();
        let report = scimtrail_app::reload(&proxy.running, &proxy.settings).await;
        assert!(!report.iter().any(|line| line.contains("kept")), "{report:#?}");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for task in load {
        answers.extend(task.await.unwrap());
    }

    // Every request answered by its own application, none refused by the proxy.
    let creates = answers.iter().filter(|a| a.route == "a").count();
    assert!(creates >= 40, "the load ran through the reloads: {creates} creates");
    for answer in &answers {
        assert_eq!(answer.proxy_error, None, "the proxy refused one: {}", answer.body);
        match answer.route {
            "a" => {
                assert_eq!(answer.status, 201, "{}", answer.body);
                assert_eq!(answer.body["userName"], json!(answer.user));
            }
            _ => {
                assert_eq!(answer.status, 200, "{}", answer.body);
                assert_eq!(answer.body["totalResults"], 1, "looked up in B: {}", answer.body);
            }
        }
    }
    // Each create reached A, and only A.
    let listed = |client: Client| async move { client.get("/Users?count=0").await.body["totalResults"].clone() };
    assert_eq!(listed(direct_a.clone()).await, json!(creates));
    assert_eq!(listed(direct_b.clone()).await, json!(1));

    // Each exchange ran one set from start to end: N15 changed it exactly when the version
    // it recorded is the set with N15. Both sets served.
    let mut seen = std::collections::BTreeSet::new();
    for answer in &answers {
        let id = answer.exchange.as_deref().expect("every exchange is named");
        let exchange = proxy.store.get(id).await.unwrap();
        let version = exchange.begun.rules_version.clone().unwrap();
        match answer.route {
            "a" => {
                assert!(version == with_n15 || version == without_n15, "{version}");
                assert_eq!(
                    rules_of(&exchange).contains(&"N15".to_owned()),
                    version == with_n15,
                    "{id}"
                );
                seen.insert(version);
            }
            _ => assert_eq!(version, okta),
        }
    }
    assert_eq!(seen.len(), 2, "both sets served: {seen:?}");
    assert_eq!(proxy.exchanges_of("a").await.len(), creates);
    proxy.running.shutdown().await;
    app_a.shutdown().await;
    app_b.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_under_rules_changed_since_says_so_and_goes_on() {
    let dir = rules_dir(ACME_WITHOUT_N15);
    let mut app = OutageApp::start().await.unwrap();
    let proxy = start(&dir, &route("app", "acme-okta", &app.base_url())).await;
    let (before, after) = (version_of(ACME_WITHOUT_N15), version_of(ACME));

    app.down().await;
    let failed = proxy.client.post("/app/Users", &new_user("late@example.com")).await;
    assert_eq!(failed.status, 502);
    let original = recorded(&proxy, &failed).await;
    assert_eq!(original.begun.rules_version.as_deref(), Some(before.as_str()));
    app.up().await.unwrap();

    // The rule that was missing is added; the failure is replayed through it.
    std::fs::write(dir.join("acme-okta.toml"), ACME).unwrap();
    scimtrail_app::reload(&proxy.running, &proxy.settings).await;
    let changed = json!({"profile": "acme-okta", "from": before, "to": after});
    let replay = |dry_run: bool| {
        let admin = proxy.admin.clone();
        let path = format!("/api/v1/exchanges/{}/replay", original.begun.id);
        async move { admin.post(&path, &json!({"dry_run": dry_run})).await }
    };
    let dry = replay(true).await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    let item = &dry.body["items"][0];
    assert_eq!(item["action"], "would_replay", "{item}");
    assert_eq!(item["rules_changed"], changed);
    let note = format!(
        "the rules differ from the original's: profile acme-okta was rules_version {before}, is {after} now; the replay runs the current rules"
    );
    assert!(item["notes"].as_array().unwrap().contains(&json!(note)), "{item}");
    assert_eq!(item["preview"]["rules_version"], json!(after));
    assert_eq!(item["preview"]["rules"], json!(["N15"]), "the new rule applies: {item}");

    let done = replay(false).await;
    let item = &done.body["items"][0];
    assert_eq!(item["action"], "replayed", "{item}");
    assert_eq!(item["outcome"], "ok", "{item}");
    assert_eq!(item["rules_changed"], changed);
    let replayed = proxy.store.get(item["replay"].as_str().unwrap()).await.unwrap();
    assert_eq!(replayed.begun.rules_version.as_deref(), Some(after.as_str()));
    assert_eq!(rules_of(&replayed), ["N15"]);
    proxy.running.shutdown().await;
    app.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
