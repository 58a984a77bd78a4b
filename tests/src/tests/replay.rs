//! Replay's safety, case by case, through the library (`scimtrail replay` runs the same
//! code; `crates/cli/tests/replay.rs` runs the binary over a whole outage): what the IdP did
//! after a failure is never undone.

use scimtrail_app::config::RawConfig;
use scimtrail_app::{Overrides, Settings};
use scimtrail_demo::outage::OutageApp;
use scimtrail_integration::{proxy, Client};
use scimtrail_proxy::{ReplayReport, Replayer, Selection};
use scimtrail_store::ExchangeQuery;
use serde_json::{json, Value};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

struct Setup {
    app: OutageApp,
    direct: Client,
    proxy: proxy::TestProxy,
    config: String,
}

async fn setup() -> Setup {
    let app = OutageApp::start().await.unwrap();
    let direct = Client::new(app.base_url());
    let config = proxy::route_for("generic", &app.base_url(), "");
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let proxy = proxy::start(&config, &store_url).await;
    Setup {
        app,
        direct,
        proxy,
        config,
    }
}

/// `scimtrail replay --failed` over the setup's store, with its configuration.
async fn replay_failed(setup: &Setup) -> ReplayReport {
    let raw = RawConfig::from_toml(&setup.config, "test").unwrap();
    let mut settings = Settings::resolve(raw, &Overrides::default()).unwrap();
    settings.proxy.fingerprint_key = proxy::fingerprint_key();
    let replayer = Replayer::new(settings.proxy, setup.proxy.store.clone()).await.unwrap();
    let filter = ExchangeQuery {
        failed: true,
        ..ExchangeQuery::default()
    };
    let report = replayer
        .replay(
            Selection::Filter(Box::new(filter)),
            false,
            &scimtrail_proxy::audit::Caller::cli(),
        )
        .await
        .unwrap();
    replayer.finish().await;
    report
}

fn kinds(report: &ReplayReport) -> Vec<(String, Option<&'static str>)> {
    report.items.iter().map(|i| (i.request.clone(), i.kind)).collect()
}

fn user(name: &str, active: bool) -> Value {
    json!({"schemas": [USER], "userName": name, "active": active})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_the_idp_retried_and_deleted_since_is_not_brought_back() {
    let mut setup = setup().await;
    setup.app.down().await;
    let failed = setup
        .proxy
        .client
        .post("/Users", &user("leaver@example.com", true))
        .await;
    assert_eq!(failed.status, 502);
    setup.app.up().await.unwrap();
    let retried = setup
        .proxy
        .client
        .post("/Users", &user("leaver@example.com", true))
        .await;
    assert_eq!(retried.status, 201);
    let id = retried.body["id"].as_str().unwrap();
    assert_eq!(setup.proxy.client.delete(&format!("/Users/{id}")).await.status, 204);

    let report = replay_failed(&setup).await;
    assert_eq!(
        kinds(&report),
        [("POST /Users".to_owned(), Some("superseded"))],
        "{:?}",
        report.items
    );
    let found = setup
        .direct
        .get("/Users?filter=userName%20eq%20%22leaver%40example.com%22")
        .await;
    assert_eq!(found.body["totalResults"], 0, "the leaver was brought back");
    setup.proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_would_undo_a_later_deactivation_is_not_sent() {
    let mut setup = setup().await;
    let created = setup.direct.post("/Users", &user("mover@example.com", true)).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    setup.app.down().await;
    let mut put = user("mover@example.com", true);
    put["title"] = json!("Manager");
    assert_eq!(setup.proxy.client.put(&format!("/Users/{id}"), &put).await.status, 502);
    setup.app.up().await.unwrap();
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    assert_eq!(
        setup.proxy.client.patch(&format!("/Users/{id}"), &off).await.status,
        200
    );

    let report = replay_failed(&setup).await;
    assert_eq!(kinds(&report), [(format!("PUT /Users/{id}"), Some("conflict"))]);
    assert!(report.items[0].reason.as_deref().unwrap().contains("undo later writes"));
    let now = setup.direct.get(&format!("/Users/{id}")).await;
    assert_eq!(now.body["active"], false, "the deactivation was undone");
    setup.proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_stops_when_the_application_is_still_away() {
    let mut setup = setup().await;
    setup.app.down().await;
    for name in ["a@example.com", "b@example.com", "c@example.com"] {
        assert_eq!(setup.proxy.client.post("/Users", &user(name, true)).await.status, 502);
    }
    let report = replay_failed(&setup).await;
    let actions: Vec<&str> = report.items.iter().map(|i| i.action).collect();
    assert_eq!(
        actions,
        ["failed", "not_attempted", "not_attempted"],
        "{:?}",
        report.items
    );
    assert!(!report.all_succeeded());
    setup.proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replay_run_over_the_same_store_waits_for_the_first() {
    let mut setup = setup().await;
    setup.app.down().await;
    assert_eq!(
        setup
            .proxy
            .client
            .post("/Users", &user("a@example.com", true))
            .await
            .status,
        502
    );
    setup.app.up().await.unwrap();
    // Another process's run holds the lease.
    let now = 4_102_444_800_000; // 2100-01-01: far from expiring
    let taken = setup
        .proxy
        .store
        .take_replay_lease("another run", 0, now)
        .await
        .unwrap();
    assert_eq!(taken, Ok(()));
    let busy = setup
        .proxy
        .admin
        .send(
            http::Method::POST,
            "/api/v1/replays",
            Some(&json!({"filter": {}, "dry_run": false})),
            &[],
        )
        .await;
    assert_eq!(busy.status, 409);
    assert!(
        busy.body["error"].as_str().unwrap().contains("another run"),
        "{}",
        busy.body
    );
    let found = setup
        .direct
        .get("/Users?filter=userName%20eq%20%22a%40example.com%22")
        .await;
    assert_eq!(found.body["totalResults"], 0, "nothing was sent");
    // Released, the run goes ahead, and gives the lease up when done.
    setup.proxy.store.release_replay_lease("another run").await.unwrap();
    let report = replay_failed(&setup).await;
    assert!(report.all_succeeded(), "{:?}", report.items);
    assert_eq!(
        setup.proxy.store.take_replay_lease("later", 1, 2).await.unwrap(),
        Ok(())
    );
    setup.proxy.running.shutdown().await;
}
