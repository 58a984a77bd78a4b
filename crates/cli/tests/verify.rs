//! `scimtrail verify` as an operator runs it: Okta's bundled lifecycle through a route to the
//! reference application (every check passes), through a route whose application ignores
//! `active` (the deactivation is reported failed, exit non-zero) and one whose application
//! ignores DELETE (the deprovisioning step is). Its exchanges are recorded as synthetic:
//! out of the default listing, shown when asked for, not the IdP's intent (reconcile finds no
//! drift from them) — and no header a client sends makes an exchange synthetic.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::App;
use scimtrail_integration::misbehave::{self, Misbehaviour};
use scimtrail_integration::proxy;
use scimtrail_store::ExchangeQuery;
use serde_json::json;

/// `scimtrail verify` on a route: (success, stdout, stderr).
async fn verify(config: &std::path::Path, route: &str) -> (bool, String, String) {
    let config = config.display().to_string();
    let route = route.to_owned();
    tokio::task::spawn_blocking(move || {
        common::run(&[
            "verify",
            "--config",
            &config,
            "--route",
            &route,
            "--i-understand-this-writes",
        ])
    })
    .await
    .unwrap()
}

fn query(synthetic: bool) -> ExchangeQuery {
    ExchangeQuery {
        limit: 1000,
        synthetic,
        ..ExchangeQuery::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_plays_the_idps_lifecycle_reports_each_step_and_records_it_as_synthetic() {
    let (file, store_url, store) = common::fresh_store().await;
    let good = App::start().await;
    let ignoring_active = App::start().await;
    let ignoring_delete = App::start().await;
    let active_front = misbehave::start(ignoring_active.base_url(), Misbehaviour::IgnoreActive).await;
    let delete_front = misbehave::start(ignoring_delete.base_url(), Misbehaviour::IgnoreDelete).await;
    let config_text = format!(
        "[store]\nurl = \"{store_url}\"\n\
         [[route]]\nname = \"good\"\npath_prefix = \"/good\"\nidp = \"okta\"\nupstream = \"{}\"\n\
         [[route]]\nname = \"no-active\"\npath_prefix = \"/no-active\"\nidp = \"okta\"\nupstream = \"http://{active_front}\"\n\
         [[route]]\nname = \"no-delete\"\npath_prefix = \"/no-delete\"\nidp = \"entra\"\nupstream = \"http://{delete_front}\"\n",
        good.base_url()
    );
    let config = std::env::temp_dir().join(format!("scimtrail-verify-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&config, &config_text).unwrap();

    // Without the words, nothing runs.
    let (ok, _, stderr) = common::run(&["verify", "--config", &config.display().to_string(), "--route", "good"]);
    assert!(!ok);
    assert!(stderr.contains("--i-understand-this-writes"), "{stderr}");
    let (ok, _, stderr) = verify(&config, "nowhere").await;
    assert!(!ok);
    assert!(
        stderr.contains("no route is named \"nowhere\"; the configuration has good, no-active, no-delete"),
        "{stderr}"
    );

    // The strict application: every step, read-back, expectation and deprovisioning holds.
    let (ok, stdout, stderr) = verify(&config, "good").await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("scenario okta"), "{stdout}");
    assert!(stdout.contains("✓ deactivate alice"), "{stdout}");
    assert!(stdout.contains("✓ after \"deactivate alice\": Users/"), "{stdout}");
    assert!(stdout.contains("is active false"), "{stdout}");
    assert!(stdout.contains("✓ intended state: group scimtrail-probe-"), "{stdout}");
    assert!(stdout.contains("✓ deprovision alice (Users/"), "{stdout}");
    assert!(!stdout.contains('✗'), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    // It leaves nothing behind, and what it made was named as the probe's.
    let users = good.client().get("/Users").await;
    assert_eq!(users.body["totalResults"], 0, "{}", users.body);
    let groups = good.client().get("/Groups").await;
    assert_eq!(groups.body["totalResults"], 0, "{}", groups.body);

    // An application that ignores `active`: the deactivation is reported failed.
    let (ok, stdout, stderr) = verify(&config, "no-active").await;
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("verify failed"), "{stderr}");
    assert!(stdout.contains("✗ after \"deactivate alice\": Users/"), "{stdout}");
    // It dropped `active` from every write: the user has none.
    assert!(stdout.contains("it reads back 200 with active null"), "{stdout}");
    assert!(stdout.contains("✗ deactivate alice  PATCH /Users/"), "{stdout}");
    assert!(stdout.contains("✗ intended state: user scimtrail-probe-"), "{stdout}");

    // An application that ignores DELETE: Entra's hard delete, and the deprovisioning step.
    let (ok, stdout, _) = verify(&config, "no-delete").await;
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("✗ after \"hard-delete bob\": Users/"), "{stdout}");
    assert!(stdout.contains("✗ deprovision alice (Users/"), "{stdout}");
    assert!(stdout.contains("but it reads back 200: not deleted"), "{stdout}");

    // Recorded, synthetic, and out of the default listing.
    let default = store.list(&query(false)).await.unwrap();
    assert!(
        default.items.is_empty(),
        "{:?}",
        default.items.iter().map(|e| &e.begun.path).collect::<Vec<_>>()
    );
    let synthetic = store.list(&query(true)).await.unwrap();
    assert!(synthetic.items.len() > 60, "{}", synthetic.items.len());
    for exchange in &synthetic.items {
        assert_eq!(
            exchange.begun.synthetic.as_deref(),
            Some("verify"),
            "{}",
            exchange.begun.id
        );
    }
    for route in ["good", "no-active", "no-delete"] {
        assert!(
            synthetic.items.iter().any(|e| e.begun.route.as_deref() == Some(route)),
            "{route}"
        );
    }
    let (ok, listed) = common::run_json("exchanges", &["list", "--store", &store_url]);
    assert!(ok);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0), "{listed}");
    let (ok, listed) = common::run_json(
        "exchanges",
        &["list", "--store", &store_url, "--synthetic", "--limit", "5"],
    );
    assert!(ok);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(5), "{listed}");
    assert_eq!(listed["items"][0]["synthetic"], "verify", "{listed}");

    // Not the IdP's intent: the users the DELETE-ignoring application kept were deleted by
    // verify, yet reconcile finds no leaver — only users it does not know.
    let (ok, report) = common::run_json(
        "reconcile",
        &["--config", &config.display().to_string(), "--route", "no-delete"],
    );
    assert!(ok, "{report}");
    let counts = &report["counts"];
    for (kind, n) in counts.as_object().unwrap() {
        if kind != "unknown_to_idp" {
            assert_eq!(n, &json!(0), "{kind}: {report}");
        }
    }
    assert!(counts["unknown_to_idp"].as_u64().unwrap_or(0) >= 2, "{report}");

    let _ = std::fs::remove_file(&config);
    drop(store);
    let _ = std::fs::remove_file(&file);
}

/// An IdP cannot make its own traffic synthetic: whatever headers it sends, its exchange is
/// the IdP's — recorded unmarked, listed by default, counted as intent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_header_makes_an_idps_request_synthetic() {
    let app = App::start().await;
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let scimtrail = proxy::start(&proxy::route_for("generic", &app.base_url(), ""), &store_url).await;
    let headers = [
        ("scimtrail-synthetic", "verify"),
        ("x-scimtrail-synthetic", "true"),
        ("synthetic", "verify"),
        ("scimtrail-verify", "1"),
    ];
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "scimtrail-probe-claims"});
    let answer = scimtrail
        .client
        .send_raw(
            http::Method::POST,
            "/Users",
            bytes::Bytes::from(body.to_string()),
            Some("application/scim+json"),
            &headers,
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let id = answer.headers["scimtrail-exchange-id"].to_str().unwrap().to_owned();
    let exchange = scimtrail
        .completed_exchange("app", |e| e.begun.id == id)
        .await
        .expect("the exchange is recorded");
    assert_eq!(exchange.begun.synthetic, None);
    let listed = scimtrail.store.list(&query(false)).await.unwrap();
    assert!(listed.items.iter().any(|e| e.begun.id == id));
    let synthetic = scimtrail.store.list(&query(true)).await.unwrap();
    assert!(synthetic.items.is_empty());
    scimtrail.running.shutdown().await;
}
