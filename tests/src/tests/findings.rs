//! Findings end to end: a misbehaving application behind scimtrail, each misbehaviour found
//! and recorded; none against the reference application (see `normalization.rs`).

use scimtrail_integration::misbehave::{self, Misbehaviour};
use scimtrail_integration::{proxy, refapp, Client, TestResponse};
use serde_json::{json, Value};

struct Setup {
    proxy: proxy::TestProxy,
    app: Client,
    _refapp: scimtrail_refapp::RunningRefApp,
}

async fn behind(misbehaviour: Misbehaviour) -> Setup {
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let (refapp, app) = refapp::start().await;
    let front = misbehave::start(refapp.base_url(), misbehaviour).await;
    let proxy = proxy::start(&proxy::route_for("generic", &format!("http://{front}"), ""), &store_url).await;
    Setup {
        proxy,
        app,
        _refapp: refapp,
    }
}

async fn user(app: &Client, name: &str) -> String {
    let created = app
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "active": true, "title": "Engineer"}),
        )
        .await;
    created.body["id"].as_str().unwrap().to_owned()
}

async fn recorded(setup: &Setup, response: &TestResponse) -> (String, Vec<String>) {
    let id = response.header("scimtrail-exchange-id").unwrap();
    let exchange = setup.proxy.store.get(id).await.unwrap();
    let kinds = exchange
        .findings()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    (exchange.outcome().to_owned(), kinds)
}

fn patch(operations: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_the_application_ignored_is_a_partial_deprovision() {
    let setup = behind(Misbehaviour::IgnoreActive).await;
    let id = user(&setup.app, "leaver@example.com").await;
    let answered = setup
        .proxy
        .client
        .patch(
            &format!("/Users/{id}"),
            &patch(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(answered.status, 200, "the application said it worked");
    let (outcome, kinds) = recorded(&setup, &answered).await;
    assert_eq!(outcome, "partial");
    assert!(kinds.contains(&"deprovision_not_applied".to_owned()), "{kinds:?}");
    let metrics = setup.proxy.admin.get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.bytes);
    assert!(
        text.contains("scimtrail_findings_total{route=\"app\",idp=\"generic\",kind=\"deprovision_not_applied\"} 1"),
        "{text}"
    );
    setup.proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_attribute_is_not_applied() {
    let setup = behind(Misbehaviour::DropTitle).await;
    let id = user(&setup.app, "mover@example.com").await;
    let answered = setup
        .proxy
        .client
        .patch(
            &format!("/Users/{id}"),
            &patch(json!([{"op": "replace", "path": "title", "value": "Manager"}, {"op": "replace", "path": "displayName", "value": "Mo"}])),
        )
        .await;
    assert_eq!(answered.status, 200);
    let (outcome, kinds) = recorded(&setup, &answered).await;
    assert_eq!(
        (outcome.as_str(), kinds),
        ("partial", vec!["attribute_not_applied".to_owned()])
    );
    setup.proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_answered_with_the_wrong_accounts_is_a_mismatch() {
    let setup = behind(Misbehaviour::IgnoreFilters).await;
    user(&setup.app, "alice@example.com").await;
    user(&setup.app, "bob@example.com").await;
    let answered = setup
        .proxy
        .client
        .get("/Users?filter=userName%20eq%20%22alice%40example.com%22")
        .await;
    assert_eq!(answered.status, 200);
    let (outcome, kinds) = recorded(&setup, &answered).await;
    assert_eq!(outcome, "ok", "a lookup changes nothing; the finding is what matters");
    assert_eq!(
        kinds,
        ["lookup_mismatch", "lookup_mismatch"],
        "one result too many, and it is not alice"
    );
    setup.proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_is_a_non_scim_error() {
    let setup = behind(Misbehaviour::HtmlErrors).await;
    let answered = setup.proxy.client.get("/Users/no-such-user").await;
    assert_eq!(answered.status, 404);
    let (outcome, kinds) = recorded(&setup, &answered).await;
    assert_eq!((outcome.as_str(), kinds), ("failed", vec!["non_scim_error".to_owned()]));
    setup.proxy.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_switching_lookup_attribute_is_shape_drift_once() {
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let (refapp, app) = refapp::start().await;
    let config = proxy::route_for("okta", &refapp.base_url(), "shape_learning = 2\n");
    let proxy = proxy::start(&config, &store_url).await;
    user(&app, "alice@example.com").await;
    let mut kinds = Vec::new();
    for query in [
        "filter=userName%20eq%20%22alice%40example.com%22",
        "filter=userName%20eq%20%22bob%40example.com%22",
        "filter=externalId%20eq%20%22e1%22",
        "filter=externalId%20eq%20%22e2%22",
    ] {
        let answered = proxy.client.get(&format!("/Users?{query}")).await;
        let exchange = proxy
            .store
            .get(answered.header("scimtrail-exchange-id").unwrap())
            .await
            .unwrap();
        kinds.push(
            exchange
                .findings()
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["kind"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(kinds, [vec![], vec![], vec!["shape_drift".to_owned()], vec![]]);
    proxy.running.shutdown().await;
    // Another instance on the same store knows the shapes: the same lookups are no drift.
    let again = proxy::start(
        &proxy::route_for("okta", &refapp.base_url(), "shape_learning = 0\n"),
        &store_url,
    )
    .await;
    let answered = again.client.get("/Users?filter=externalId%20eq%20%22e3%22").await;
    let exchange = again
        .store
        .get(answered.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert_eq!(exchange.findings(), &json!([]));
    again.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_back_finds_what_a_quiet_answer_hides_and_records_it_as_a_child() {
    for (misbehaviour, lifecycle) in [
        (Misbehaviour::IgnoreActiveQuietly, "deactivate"),
        (Misbehaviour::IgnoreDelete, "deprovision"),
    ] {
        let store_url = proxy::fresh_store_urls().await.remove(0);
        let (refapp, app) = refapp::start().await;
        let front = misbehave::start(refapp.base_url(), misbehaviour).await;
        let proxy = proxy::start(
            &proxy::route_for("generic", &format!("http://{front}"), "read_back = true\n"),
            &store_url,
        )
        .await;
        let id = user(&app, "leaver@example.com").await;
        let answered = if lifecycle == "deactivate" {
            let body = patch(json!([{"op": "replace", "path": "active", "value": false}]));
            proxy.client.patch(&format!("/Users/{id}"), &body).await
        } else {
            proxy.client.delete(&format!("/Users/{id}")).await
        };
        assert_eq!(answered.status, 204, "{misbehaviour:?}");
        let write = proxy
            .store
            .get(answered.header("scimtrail-exchange-id").unwrap())
            .await
            .unwrap();
        assert_eq!(write.outcome(), "partial", "{misbehaviour:?}");
        assert!(
            write.findings().to_string().contains("deprovision_not_applied"),
            "{}",
            write.findings()
        );
        assert!(
            write.findings().to_string().contains("read back") || write.findings().to_string().contains("still there")
        );
        assert_eq!(write.children.len(), 1);
        let child = proxy.store.get(&write.children[0]).await.unwrap();
        assert_eq!(
            (
                child.begun.method.as_str(),
                child.status(),
                child.begun.parent_id.as_deref()
            ),
            ("GET", Some(200), Some(write.begun.id.as_str()))
        );
        assert_eq!(child.begun.resource_id.as_deref(), Some(id.as_str()));
        proxy.running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_back_against_the_reference_application_finds_nothing() {
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let (refapp, _app) = refapp::start().await;
    let proxy = proxy::start(
        &proxy::route_for("generic", &refapp.base_url(), "read_back = true\n"),
        &store_url,
    )
    .await;
    let created = proxy
        .client
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a@example.com", "title": "Engineer"}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let deactivate = proxy
        .client
        .patch(
            &format!("/Users/{id}"),
            &patch(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    let delete = proxy.client.delete(&format!("/Users/{id}")).await;
    for response in [&created, &deactivate, &delete] {
        let write = proxy
            .store
            .get(response.header("scimtrail-exchange-id").unwrap())
            .await
            .unwrap();
        assert_eq!(
            (write.outcome(), write.findings()),
            ("ok", &json!([])),
            "{}",
            write.begun.method
        );
        assert_eq!(write.children.len(), 1, "{}", write.begun.method);
        let child = proxy.store.get(&write.children[0]).await.unwrap();
        let expected = if write.begun.method == "DELETE" { 404 } else { 200 };
        assert_eq!((child.status(), child.outcome()), (Some(expected), "ok"));
    }
    proxy.running.shutdown().await;
}
