//! Alerts end to end: a webhook receiver on loopback gets a JSON alert for a deactivation
//! the application ignored, for a deprovision that could not reach the application, and for
//! shape drift; a refused first delivery is retried; no alert carries a secret.

use scimtrail_integration::misbehave::{self, Misbehaviour};
use scimtrail_integration::{proxy, refapp, slow, webhook};
use scimtrail_proxy::{Secret, Webhook};
use serde_json::json;

const IDP_TOKEN: &str = "idp-token-never-in-an-alert";
const APP_TOKEN: &str = "app-token-never-in-an-alert";
const PASSWORD: &str = "Password-never-in-an-alert";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_partial_deprovisions_and_shape_drift_are_alerted_without_secrets() {
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let (refapp, app) = refapp::start().await;
    let front = misbehave::start(refapp.base_url(), Misbehaviour::IgnoreActive).await;
    let gone = slow::closed().await;
    // The first delivery is refused with 503: the alert is sent again.
    let receiver = webhook::start(1).await;
    let config = format!(
        "[[route]]\nname = \"app\"\npath_prefix = \"/app\"\nidp = \"okta\"\nupstream = \"http://{front}\"\nshape_learning = 1\n\
         [[route]]\nname = \"gone\"\npath_prefix = \"/gone\"\nidp = \"okta\"\nupstream = \"http://{gone}\"\n"
    );
    let hook = Webhook {
        url: receiver.url.parse().unwrap(),
        bearer_token: Some(Secret::new("hook-token")),
        max_attempts: 3,
    };
    let scimtrail = proxy::start_with(&config, &store_url, |settings| {
        for route in &mut settings.proxy.routes {
            route.webhook = Some(hook.clone());
            route.idp_token = Some(Secret::new(IDP_TOKEN));
            route.upstream_auth = Some(scimtrail_proxy::UpstreamAuth::Bearer(Secret::new(APP_TOKEN)));
        }
    })
    .await;
    let created = app
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "leaver@example.com", "active": true}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {IDP_TOKEN}");
    let auth = [("authorization", bearer.as_str())];

    // Answered 200, yet the user is still active.
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "replace", "path": "active", "value": false},
        {"op": "replace", "path": "password", "value": PASSWORD}
    ]});
    let answered = scimtrail
        .client
        .send(
            http::Method::PATCH,
            &format!("/app/Users/{id}"),
            Some(&deactivate),
            &auth,
        )
        .await;
    assert_eq!(answered.status, 200);
    let partial = answered.header("scimtrail-exchange-id").unwrap().to_owned();
    // The application cannot be reached.
    let answered = scimtrail
        .client
        .send(http::Method::DELETE, &format!("/gone/Users/{id}"), None, &auth)
        .await;
    assert_eq!(answered.status, 502);
    let failed = answered.header("scimtrail-exchange-id").unwrap().to_owned();
    // A lookup by an attribute the route never saw, past its learning period.
    let answered = scimtrail
        .client
        .send(
            http::Method::GET,
            "/app/Users?filter=externalId%20eq%20%22e1%22",
            None,
            &auth,
        )
        .await;
    let drift = answered.header("scimtrail-exchange-id").unwrap().to_owned();

    let accepted = receiver.accepted(3).await;
    let mut kinds: Vec<(String, String)> = accepted
        .iter()
        .map(|r| {
            (
                r.body["alert"].as_str().unwrap().to_owned(),
                r.body["exchange_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    let mut expected = vec![
        ("deprovision_failed".to_owned(), failed),
        ("deprovision_partial".to_owned(), partial),
        ("shape_drift".to_owned(), drift),
    ];
    expected.sort();
    assert_eq!(kinds, expected);
    let received = receiver.received();
    assert_eq!(received.len(), 4, "one refused delivery, sent again: {received:?}");
    for alert in &received {
        assert_eq!(alert.authorization.as_deref(), Some("Bearer hook-token"));
        for secret in [IDP_TOKEN, APP_TOKEN, PASSWORD] {
            assert!(!alert.text.contains(secret), "{secret} in {}", alert.text);
        }
    }
    let partial_alert = accepted
        .iter()
        .find(|r| r.body["alert"] == "deprovision_partial")
        .unwrap();
    assert_eq!(partial_alert.body["user_name"], "leaver@example.com");
    assert!(partial_alert.body["findings"]
        .to_string()
        .contains("deprovision_not_applied"));

    let metrics = String::from_utf8_lossy(&scimtrail.admin.get("/metrics").await.bytes).into_owned();
    for (route, kind) in [
        ("app", "deprovision_partial"),
        ("gone", "deprovision_failed"),
        ("app", "shape_drift"),
    ] {
        let line = format!("scimtrail_alerts_total{{route=\"{route}\",kind=\"{kind}\",result=\"delivered\"}} 1");
        assert!(metrics.contains(&line), "{line} not in {metrics}");
    }
    scimtrail.running.shutdown().await;
    refapp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_cut_short_by_a_crash_is_alerted_at_the_next_start() {
    let store_url = proxy::fresh_store_urls().await.remove(0);
    let receiver = webhook::start(0).await;
    let store = scimtrail_app::connect(&store_url).await.unwrap();
    // What a proxy killed mid-flight leaves: the deactivation begun, never completed.
    let begun = scimtrail_store::NewExchange {
        id: uuid::Uuid::now_v7().to_string(),
        received_at_ms: 1_700_000_000_000,
        instance: "crashed-instance".into(),
        route: Some("app".into()),
        idp: Some("okta".into()),
        method: "PATCH".into(),
        path: "/Users/u1".into(),
        query: None,
        resource_type: Some("Users".into()),
        resource_id: Some("u1".into()),
        user_name: Some("leaver@example.com".into()),
        operation: "patch".into(),
        lifecycle: Some("deactivate".into()),
        request_headers: json!([]),
        request_body: None,
        replay_of: None,
        parent_id: None,
        client: None,
        rules_version: None,
        reconcile_of: None,
        synthetic: None,
    };
    store
        .write_batch(vec![scimtrail_store::Write::Begin(Box::new(begun.clone()))])
        .await
        .unwrap();
    let (refapp, _) = refapp::start().await;
    let hook = Webhook {
        url: receiver.url.parse().unwrap(),
        bearer_token: None,
        max_attempts: 1,
    };
    let scimtrail = proxy::start_with(&proxy::single_route(&refapp.base_url(), ""), &store_url, |settings| {
        settings.proxy.instance = "crashed-instance".into();
        settings.proxy.routes[0].webhook = Some(hook);
    })
    .await;
    assert_eq!(scimtrail.running.interrupted, 1);
    let alerts = receiver.accepted(1).await;
    assert_eq!(alerts[0].body["alert"], "deprovision_failed");
    assert_eq!(alerts[0].body["outcome"], "interrupted");
    assert_eq!(alerts[0].body["exchange_id"], begun.id.as_str());
    scimtrail.running.shutdown().await;
    refapp.shutdown().await;
}
