//! The recording proxy in front of the reference application, over real HTTP, with a real
//! store: SQLite always, PostgreSQL too when `SCIMTRAIL_TEST_POSTGRES_URL` is set.

use http::{Method, StatusCode};
use scimtrail_integration::proxy::{fresh_store_urls, single_route, start, start_with, TestProxy};
use scimtrail_integration::{refapp, slow, TestResponse};
use scimtrail_proxy::{Secret, UpstreamAuth};
use scimtrail_store::{Exchange, ExchangeQuery};
use serde_json::{json, Value};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn exchange_id(response: &TestResponse) -> String {
    response
        .header("scimtrail-exchange-id")
        .expect("every response carries its exchange id")
        .to_owned()
}

async fn record(proxy: &TestProxy, response: &TestResponse) -> Exchange {
    proxy
        .store
        .get(&exchange_id(response))
        .await
        .expect("the exchange is recorded")
}

#[track_caller]
fn assert_recorded(exchange: &Exchange, operation: &str, lifecycle: Option<&str>, resource: &str, outcome: &str) {
    assert_eq!(exchange.begun.operation, operation, "{exchange:?}");
    assert_eq!(exchange.begun.lifecycle.as_deref(), lifecycle, "{exchange:?}");
    assert_eq!(exchange.begun.resource_type.as_deref(), Some(resource), "{exchange:?}");
    assert_eq!(exchange.outcome(), outcome, "{exchange:?}");
}

#[tokio::test]
async fn every_request_kind_is_recorded_with_its_fields() {
    for store_url in fresh_store_urls().await {
        let (app, _) = refapp::start().await;
        let proxy = start(&single_route(&app.base_url(), ""), &store_url).await;

        let user_id = a_create_is_recorded_with_every_field(&proxy).await;
        reads_are_recorded_with_the_user_they_name(&proxy, &user_id).await;
        user_updates_are_recorded_by_their_lifecycle(&proxy, &user_id).await;
        a_group_and_its_membership_are_recorded(&proxy, &user_id).await;
        a_refusal_is_recorded_as_failed(&proxy, &user_id).await;
        bulk_and_discovery_are_recorded(&proxy).await;
        a_delete_is_recorded_as_deprovision(&proxy, &user_id).await;

        let page = proxy
            .store
            .list(&ExchangeQuery {
                limit: 100,
                ..ExchangeQuery::default()
            })
            .await
            .unwrap();
        // 12 requests, and the bulk request's one operation, fanned out as its own exchange.
        assert_eq!(page.items.len(), 13, "{store_url}");
        assert!(page.items.iter().all(|e| e.outcome() != "in_flight"));
        proxy.running.shutdown().await;
        app.shutdown().await;
    }
}

/// A user's create is recorded with its operation, lifecycle, the id and userName it
/// learned, statuses, route, IdP, duration and the bodies and headers at each step; the
/// user's id.
async fn a_create_is_recorded_with_every_field(proxy: &TestProxy) -> String {
    let client = &proxy.client;
    let created = client
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "bjensen", "active": true}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let user_id = created.body["id"].as_str().unwrap().to_owned();
    let exchange = record(proxy, &created).await;
    assert_recorded(&exchange, "create", Some("provision"), "Users", "ok");
    assert_eq!(
        exchange.begun.resource_id.as_deref(),
        Some(user_id.as_str()),
        "learned from the response"
    );
    assert_eq!(exchange.begun.user_name.as_deref(), Some("bjensen"));
    assert_eq!((exchange.status(), exchange.upstream_status()), (Some(201), Some(201)));
    assert_eq!(exchange.begun.route.as_deref(), Some("app"));
    assert_eq!(exchange.begun.idp.as_deref(), Some("okta"));
    assert!(exchange.duration_ms().is_some());
    let json = exchange.to_json();
    assert_eq!(json["request"]["body"]["userName"], "bjensen");
    assert_eq!(json["forwarded"]["body"]["userName"], "bjensen");
    assert_eq!(json["forwarded"]["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(json["response"]["body"]["id"], user_id.as_str());
    user_id
}

/// A lookup by filter is recorded with its query and the userName it names; a read of the
/// user with the userName learned from the response.
async fn reads_are_recorded_with_the_user_they_name(proxy: &TestProxy, user_id: &str) {
    let client = &proxy.client;
    let lookup = client
        .get("/Users?filter=userName%20eq%20%22bjensen%22&startIndex=1&count=100")
        .await;
    let exchange = record(proxy, &lookup).await;
    assert_recorded(&exchange, "search", Some("lookup"), "Users", "ok");
    assert_eq!(exchange.begun.user_name.as_deref(), Some("bjensen"));
    assert_eq!(
        exchange.begun.query.as_deref(),
        Some("filter=userName%20eq%20%22bjensen%22&startIndex=1&count=100")
    );

    let read = client.get(&format!("/Users/{user_id}")).await;
    let exchange = record(proxy, &read).await;
    assert_recorded(&exchange, "get", None, "Users", "ok");
    assert_eq!(
        exchange.begun.user_name.as_deref(),
        Some("bjensen"),
        "learned from the response"
    );
}

/// A replace is recorded as an update, and PATCHes of `active` as a deactivation and a
/// reactivation.
async fn user_updates_are_recorded_by_their_lifecycle(proxy: &TestProxy, user_id: &str) {
    let client = &proxy.client;
    let replaced = client
        .put(
            &format!("/Users/{user_id}"),
            &json!({"schemas": [USER], "userName": "bjensen", "active": true, "title": "Guide"}),
        )
        .await;
    assert_recorded(
        &record(proxy, &replaced).await,
        "replace",
        Some("update"),
        "Users",
        "ok",
    );
    let deactivate = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let deactivated = client.patch(&format!("/Users/{user_id}"), &deactivate).await;
    assert_recorded(
        &record(proxy, &deactivated).await,
        "patch",
        Some("deactivate"),
        "Users",
        "ok",
    );
    let reactivate = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": true}]});
    let reactivated = client.patch(&format!("/Users/{user_id}"), &reactivate).await;
    assert_recorded(
        &record(proxy, &reactivated).await,
        "patch",
        Some("reactivate"),
        "Users",
        "ok",
    );
}

/// A group's create is recorded as a provision, and adding the user to it as a membership
/// change.
async fn a_group_and_its_membership_are_recorded(proxy: &TestProxy, user_id: &str) {
    let client = &proxy.client;
    let group = client
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Guides", "members": []}),
        )
        .await;
    assert_recorded(
        &record(proxy, &group).await,
        "create",
        Some("provision"),
        "Groups",
        "ok",
    );
    let group_id = group.body["id"].as_str().unwrap().to_owned();
    let add =
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}]});
    let added = client.patch(&format!("/Groups/{group_id}"), &add).await;
    assert_recorded(
        &record(proxy, &added).await,
        "patch",
        Some("membership"),
        "Groups",
        "ok",
    );
}

/// A request the application refuses is recorded as failed, with the application's error.
async fn a_refusal_is_recorded_as_failed(proxy: &TestProxy, user_id: &str) {
    // A refusal by the application is recorded as failed, with its error body.
    let refused = proxy
        .client
        .patch(
            &format!("/Users/{user_id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "deactivate", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let exchange = record(proxy, &refused).await;
    assert_recorded(&exchange, "patch", Some("deactivate"), "Users", "failed");
    assert_eq!(exchange.to_json()["response"]["body"]["scimType"], "invalidSyntax");
}

/// A bulk request is recorded as a bulk, and a read of the service provider's configuration
/// as discovery.
async fn bulk_and_discovery_are_recorded(proxy: &TestProxy) {
    let client = &proxy.client;
    let bulk = client
        .post("/Bulk", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [{"method": "POST", "path": "/Users", "bulkId": "a", "data": {"schemas": [USER], "userName": "bulk"}}]}))
        .await;
    assert_recorded(&record(proxy, &bulk).await, "bulk", None, "Bulk", "ok");
    let discovery = client.get("/ServiceProviderConfig").await;
    assert_recorded(
        &record(proxy, &discovery).await,
        "discovery",
        None,
        "ServiceProviderConfig",
        "ok",
    );
}

/// The user's delete is recorded as a deprovision.
async fn a_delete_is_recorded_as_deprovision(proxy: &TestProxy, user_id: &str) {
    let deleted = proxy.client.delete(&format!("/Users/{user_id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_recorded(
        &record(proxy, &deleted).await,
        "delete",
        Some("deprovision"),
        "Users",
        "ok",
    );
}

#[tokio::test]
async fn no_secret_reaches_the_store() {
    const IDP_TOKEN: &str = "idp-bearer-7f3a9c";
    const UPSTREAM_TOKEN: &str = "upstream-bearer-2b8d4e";
    const COOKIE: &str = "session-cookie-5c1e";
    const API_KEY: &str = "custom-api-key-9d0f";
    let passwords = [
        "create-pw-11aa",
        "patch-path-pw-22bb",
        "patch-value-pw-33cc",
        "bulk-pw-44dd",
        "put-pw-55ee",
        "filter-pw-66ff",
    ];
    for store_url in fresh_store_urls().await {
        let (app, _) = refapp::start().await;
        let config = single_route(&app.base_url(), "[record]\nredact_headers = [\"x-api-key\"]\n");
        let proxy = start_with(&config, &store_url, |settings| {
            // A custom header: the one form of upstream credential no fixed rule names.
            settings.proxy.routes[0].upstream_auth = Some(UpstreamAuth::Header {
                name: "X-App-Key".into(),
                value: Secret::new(UPSTREAM_TOKEN),
            });
        })
        .await;
        let idp_auth = format!("Bearer {IDP_TOKEN}");
        let cookie = format!("sid={COOKIE}");
        let headers = [
            ("authorization", idp_auth.as_str()),
            ("cookie", cookie.as_str()),
            ("x-api-key", API_KEY),
        ];
        let send = |method: Method, path: String, body: Value| {
            let client = proxy.client.clone();
            async move { client.send(method, &path, Some(&body), &headers).await }
        };
        let created = send(
            Method::POST,
            "/Users".into(),
            json!({"schemas": [USER], "userName": "secretive", "PassWord": passwords[0]}),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let patch = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "password", "value": passwords[1]},
            {"op": "replace", "value": {"password": passwords[2]}}
        ]});
        assert_eq!(
            send(Method::PATCH, format!("/Users/{id}"), patch).await.status,
            StatusCode::OK
        );
        let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"schemas": [USER], "userName": "bulky", "password": passwords[3]}}
        ]});
        assert_eq!(send(Method::POST, "/Bulk".into(), bulk).await.status, StatusCode::OK);
        send(
            Method::PUT,
            format!("/Users/{id}"),
            json!({"schemas": [USER], "userName": "secretive", "password": passwords[4]}),
        )
        .await;
        let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": format!("password eq \"{}\"", passwords[5])});
        send(Method::POST, "/Users/.search".into(), search).await;
        proxy
            .client
            .send(
                Method::GET,
                &format!("/Users?filter=password%20eq%20%22{}%22", passwords[5]),
                None,
                &headers,
            )
            .await;
        proxy.running.shutdown().await;

        // Every stored row, every column, as the store returns it…
        let page = proxy
            .store
            .list(&ExchangeQuery {
                limit: 1000,
                ..ExchangeQuery::default()
            })
            .await
            .unwrap();
        // 6 requests, and the bulk request's operations fanned out as exchanges of their own.
        assert_eq!(page.items.len(), 6 + 1, "{store_url}");
        let mut everything: String = page.items.iter().map(|e| format!("{e:?}")).collect();
        // …and, for SQLite, the raw database and WAL files.
        if let Some(path) = store_url.strip_prefix("sqlite://") {
            for file in [path.to_owned(), format!("{path}-wal")] {
                if let Ok(bytes) = std::fs::read(&file) {
                    everything.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        for secret in [IDP_TOKEN, UPSTREAM_TOKEN, COOKIE, API_KEY]
            .iter()
            .chain(passwords.iter())
        {
            assert!(!everything.contains(secret), "{secret} reached the store ({store_url})");
        }
        // The fingerprints are there, keyed, so operators can tell tokens apart.
        assert!(everything.contains("Bearer hmac:"));
        assert!(!everything.contains("sha256:"), "no unkeyed fingerprint");
        app.shutdown().await;
    }
}

#[tokio::test]
async fn the_proxys_own_refusals_are_scim_errors_and_recorded_as_rejected() {
    for store_url in fresh_store_urls().await {
        let (app, _) = refapp::start().await;
        let config = format!(
            "[record]\nmax_body_bytes = 1024\n{}",
            single_route(&app.base_url(), "path_prefix = \"/okta\"\n")
        );
        let proxy = start_with(&config, &store_url, |settings| {
            settings.proxy.routes[0].idp_token = Some(Secret::new("the-idp-token"));
        })
        .await;
        let auth = [("authorization", "Bearer the-idp-token")];

        let big = json!({"schemas": [USER], "userName": "x".repeat(2000)});
        let too_large = proxy.client.send(Method::POST, "/okta/Users", Some(&big), &auth).await;
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(too_large.body["scimType"], "tooLarge");
        assert_eq!(too_large.body["status"], "413");
        assert_eq!(too_large.header("scimtrail-error"), Some("too_large"));
        let exchange = record(&proxy, &too_large).await;
        assert_eq!(
            (exchange.outcome(), exchange.status(), exchange.upstream_status()),
            ("rejected", Some(413), None)
        );
        assert!(exchange.forwarded_headers().is_none(), "nothing was forwarded");

        let no_route = proxy.client.send(Method::GET, "/entra/Users", None, &auth).await;
        assert_eq!(no_route.status, StatusCode::NOT_FOUND);
        // The caller learns nothing of the routes there are; the record does.
        let detail = no_route.body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("no route serves this path (scimtrail exchange "),
            "{detail}"
        );
        assert!(!detail.contains("/okta"), "{detail}");
        let exchange = record(&proxy, &no_route).await;
        assert_eq!(
            (exchange.outcome(), exchange.begun.route.as_deref()),
            ("rejected", None)
        );
        assert!(
            exchange.error().unwrap().contains("routes: /okta"),
            "{:?}",
            exchange.error()
        );

        let unauthorized = proxy
            .client
            .send(Method::GET, "/okta/Users", None, &[("authorization", "Bearer wrong")])
            .await;
        assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
        assert_eq!(record(&proxy, &unauthorized).await.outcome(), "rejected");

        let escape = proxy.client.send(Method::GET, "/okta/%2e%2e/admin", None, &auth).await;
        assert_eq!(escape.status, StatusCode::BAD_REQUEST);
        assert_eq!(escape.body["scimType"], "invalidPath");
        assert_eq!(record(&proxy, &escape).await.outcome(), "rejected");

        let fine = proxy.client.send(Method::GET, "/okta/Users", None, &auth).await;
        assert_eq!(fine.status, StatusCode::OK);
        assert_eq!(record(&proxy, &fine).await.begun.path, "/okta/Users");
        proxy.running.shutdown().await;
        app.shutdown().await;
    }
}

#[tokio::test]
async fn an_unreachable_or_slow_application_is_a_scim_error_recorded_unreachable() {
    for store_url in fresh_store_urls().await {
        let down = slow::closed().await;
        let proxy = start(&single_route(&format!("http://{down}"), ""), &store_url).await;
        let response = proxy
            .client
            .post("/Users", &json!({"schemas": [USER], "userName": "a"}))
            .await;
        assert_eq!(response.status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            response.body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        assert_eq!(response.header("scimtrail-error"), Some("unreachable"));
        let exchange = record(&proxy, &response).await;
        assert_eq!(
            (exchange.outcome(), exchange.status(), exchange.upstream_status()),
            ("unreachable", Some(502), None)
        );
        assert!(
            exchange.forwarded_headers().is_some(),
            "the attempt is recorded as forwarded"
        );
        proxy.running.shutdown().await;

        let silent = slow::silent().await;
        let proxy = start(
            &single_route(&format!("http://{silent}"), "timeout_secs = 1\n"),
            &store_url,
        )
        .await;
        let response = proxy.client.get("/Users").await;
        assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.header("scimtrail-error"), Some("timeout"));
        let exchange = record(&proxy, &response).await;
        assert_eq!((exchange.outcome(), exchange.status()), ("unreachable", Some(504)));
        assert!(exchange
            .error()
            .unwrap_or_default()
            .contains("did not answer whole within 1 s"));
        proxy.running.shutdown().await;
    }
}

#[tokio::test]
async fn admin_listener_serves_health_metrics_and_the_exchanges_api() {
    for store_url in fresh_store_urls().await {
        let (app, _) = refapp::start().await;
        let proxy = start_with(&single_route(&app.base_url(), ""), &store_url, |settings| {
            settings.proxy.admin_token = Some(Secret::new("admin-token"));
        })
        .await;
        let created = proxy
            .client
            .post("/Users", &json!({"schemas": [USER], "userName": "admin-view"}))
            .await;
        proxy.client.get("/Nope").await;
        let admin = &proxy.admin;
        assert_eq!(admin.get("/healthz").await.status, StatusCode::OK);
        let ready = admin.get("/readyz").await;
        assert_eq!(
            (ready.status, ready.body["store"].clone()),
            (StatusCode::OK, json!("reachable"))
        );
        let metrics = String::from_utf8_lossy(&admin.get("/metrics").await.bytes).into_owned();
        assert!(
            metrics.contains("scimtrail_exchanges_total{route=\"app\",idp=\"okta\",method=\"POST\",outcome=\"ok\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("scimtrail_record_batch_size_count"));
        assert!(metrics.contains("scimtrail_upstream_duration_seconds_bucket"));

        assert_eq!(admin.get("/api/v1/exchanges").await.status, StatusCode::UNAUTHORIZED);
        let auth = [("authorization", "Bearer admin-token")];
        let listed = admin.send(Method::GET, "/api/v1/exchanges?limit=1", None, &auth).await;
        assert_eq!(listed.status, StatusCode::OK);
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
        let cursor = listed.body["next_cursor"].as_str().expect("a second page").to_owned();
        let next = admin
            .send(
                Method::GET,
                &format!("/api/v1/exchanges?limit=1&cursor={cursor}"),
                None,
                &auth,
            )
            .await;
        assert_eq!(next.body["items"][0]["id"], exchange_id(&created).as_str());
        let failed = admin
            .send(Method::GET, "/api/v1/exchanges?failed=true", None, &auth)
            .await;
        assert_eq!(
            failed.body["items"].as_array().unwrap().len(),
            1,
            "the 404 from the application"
        );
        let one = admin
            .send(
                Method::GET,
                &format!("/api/v1/exchanges/{}", exchange_id(&created)),
                None,
                &auth,
            )
            .await;
        assert_eq!(one.body["user_name"], "admin-view");
        assert_eq!(one.body["lifecycle"], "provision");
        assert_eq!(
            admin
                .send(Method::GET, "/api/v1/exchanges/nope", None, &auth)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            admin
                .send(Method::GET, "/api/v1/exchanges?colour=red", None, &auth)
                .await
                .status,
            StatusCode::BAD_REQUEST
        );
        proxy.running.shutdown().await;
        app.shutdown().await;
    }
}

#[tokio::test]
async fn async_mode_records_behind_and_counts_nothing_dropped() {
    let (app, _) = refapp::start().await;
    let store_url = fresh_store_urls().await.remove(0);
    let proxy = start(
        &single_route(&app.base_url(), "[record]\nmode = \"async\"\n"),
        &store_url,
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(exchange_id(
            &proxy
                .client
                .post("/Users", &json!({"schemas": [USER], "userName": format!("async{i}")}))
                .await,
        ));
    }
    let metrics = String::from_utf8_lossy(&proxy.admin.get("/metrics").await.bytes).into_owned();
    proxy.running.shutdown().await;
    for id in ids {
        assert_eq!(proxy.store.get(&id).await.unwrap().outcome(), "ok");
    }
    assert!(metrics.contains("scimtrail_record_dropped_total 0"));
    app.shutdown().await;
}

#[tokio::test]
async fn tls_listener_and_an_https_upstream_trusted_through_the_ca_bundle() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls");
    let (app, _) = refapp::start().await;
    let urls = fresh_store_urls().await;
    // A terminates TLS in front of the application…
    let tls = format!(
        "[listen]\ntls = {{ cert_path = \"{fixtures}/localhost.crt\", key_path = \"{fixtures}/localhost.key\" }}\n"
    );
    let inner = start(&format!("{tls}{}", single_route(&app.base_url(), "")), &urls[0]).await;
    // …and B forwards to A over https, trusting A's certificate through ca_bundle_path.
    let file = std::env::temp_dir().join(format!("scimtrail-it-{}.db", uuid::Uuid::new_v4()));
    let bundle = format!("[upstream]\nca_bundle_path = \"{fixtures}/localhost.crt\"\n");
    let outer_upstream = format!("https://127.0.0.1:{}", inner.running.proxy_addr.port());
    let outer = start(
        &format!("{bundle}{}", single_route(&outer_upstream, "")),
        &format!("sqlite://{}", file.display()),
    )
    .await;

    let created = outer
        .client
        .post("/Users", &json!({"schemas": [USER], "userName": "over-tls"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let outer_record = record(&outer, &created).await;
    assert_eq!(outer_record.outcome(), "ok");
    let inner_page = inner
        .store
        .list(&ExchangeQuery {
            limit: 10,
            ..ExchangeQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(inner_page.items.len(), 1);
    let inner_json = inner_page.items[0].to_json();
    assert_eq!(
        inner_json["forwarded"]["headers"]["x-forwarded-proto"], "https",
        "A received the request over TLS"
    );
    assert_eq!(inner_json["response"]["body"]["userName"], "over-tls");

    // Without the bundle, the self-signed certificate is refused: 502, recorded unreachable.
    let untrusting = start(
        &single_route(&outer_upstream, ""),
        &format!("sqlite://{}", file.display()),
    )
    .await;
    let refused = untrusting.client.get("/Users").await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    let exchange = record(&untrusting, &refused).await;
    assert_eq!(exchange.outcome(), "unreachable");
    assert!(
        exchange
            .error()
            .unwrap_or_default()
            .to_lowercase()
            .contains("certificate"),
        "{:?}",
        exchange.error()
    );
    for proxy in [untrusting, outer, inner] {
        proxy.running.shutdown().await;
    }
    app.shutdown().await;
}

/// Breaks a SQLite store under a running proxy (every later write fails), or mends it.
pub(crate) async fn break_store(store_url: &str, broken: bool) {
    use sqlx::Connection;
    let mut connection = sqlx::SqliteConnection::connect(store_url).await.unwrap();
    let statement = if broken {
        "ALTER TABLE exchanges RENAME TO exchanges_away"
    } else {
        "ALTER TABLE exchanges_away RENAME TO exchanges"
    };
    sqlx::query(statement).execute(&mut connection).await.unwrap();
}

/// Waits until `/readyz` answers `status` (the journal's applier has met the store).
async fn until_ready_is(proxy: &TestProxy, status: StatusCode) -> serde_json::Value {
    let mut ready = proxy.admin.get("/readyz").await;
    for _ in 0..500 {
        if ready.status == status {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        ready = proxy.admin.get("/readyz").await;
    }
    assert_eq!(ready.status, status, "/readyz never answered {status}: {}", ready.body);
    ready.body
}

/// The SQLite store fails under a running proxy. What was journaled before the proxy learnt
/// of it is kept, and applied once the store is back; from then on requests are refused
/// (fail closed, the default), or served unrecorded when `on_store_failure = "serve_unrecorded"`.
#[tokio::test]
async fn a_failing_store_fails_closed_by_default_and_serves_when_configured() {
    let (app, direct) = refapp::start().await;
    let body = |name: &str| json!({"schemas": [USER], "userName": name});
    let exists = |name: &'static str| {
        let direct = direct.clone();
        async move {
            direct
                .get(&format!("/Users?filter=userName%20eq%20%22{name}%22"))
                .await
                .body["totalResults"]
                == 1
        }
    };

    let store_url = fresh_store_urls().await.remove(0);
    let proxy = start(&single_route(&app.base_url(), ""), &store_url).await;
    let before = proxy.client.post("/Users", &body("before")).await;
    assert_eq!(before.status, StatusCode::CREATED);
    // Applied before the store breaks (a read waits for the applier): else the applier could
    // find the failure on this record and refuse the next exchange before it is forwarded.
    let before = proxy
        .store
        .get(before.header("scimtrail-exchange-id").unwrap())
        .await
        .unwrap();
    assert_eq!(before.outcome(), "ok");
    break_store(&store_url, true).await;
    // Journaled before the store is found failing: forwarded, and kept. The applier finds the
    // failure on its own schedule, which may fall between this exchange's two records (the
    // test once failed so under load): then the response is refused, and the record is kept
    // in flight, as it was journaled before forwarding.
    let journaled = proxy.client.post("/Users", &body("journaled")).await;
    let journaled_id = journaled.header("scimtrail-exchange-id").unwrap().to_owned();
    let kept_as = match journaled.status {
        StatusCode::CREATED => ("ok", Some(201)),
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(journaled.header("scimtrail-error"), Some("record_failed"));
            ("in_flight", None)
        }
        other => panic!("the journaled request was answered {other}: {}", journaled.body),
    };
    assert!(exists("journaled").await, "journaled before forwarding, so forwarded");
    let not_ready = until_ready_is(&proxy, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        not_ready["store_error"].as_str().unwrap().contains("exchanges"),
        "{not_ready}"
    );
    let refused = proxy.client.post("/Users", &body("unrecorded")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.header("scimtrail-error"), Some("record_failed"));
    assert!(
        !exists("unrecorded").await,
        "nothing is forwarded that could not be recorded"
    );
    // The store comes back: what was journaled is applied, and requests flow again.
    break_store(&store_url, false).await;
    until_ready_is(&proxy, StatusCode::OK).await;
    let kept = proxy.store.get(&journaled_id).await.unwrap();
    assert_eq!((kept.outcome(), kept.status()), kept_as);
    assert_eq!(
        proxy.client.post("/Users", &body("after")).await.status,
        StatusCode::CREATED
    );
    proxy.running.shutdown().await;

    let store_url = fresh_store_urls().await.remove(0);
    let proxy = start(
        &format!(
            "[record]\non_store_failure = \"serve_unrecorded\"\n{}",
            single_route(&app.base_url(), "")
        ),
        &store_url,
    )
    .await;
    break_store(&store_url, true).await;
    assert_eq!(
        proxy.client.post("/Users", &body("first")).await.status,
        StatusCode::CREATED
    );
    until_ready_is(&proxy, StatusCode::SERVICE_UNAVAILABLE).await;
    let served = proxy.client.post("/Users", &body("served")).await;
    assert_eq!(served.status, StatusCode::CREATED);
    assert!(exists("served").await);
    let metrics = String::from_utf8_lossy(&proxy.admin.get("/metrics").await.bytes).into_owned();
    assert!(!metrics.contains("scimtrail_record_errors_total 0"), "{metrics}");
    proxy.running.shutdown().await;
    app.shutdown().await;
}

/// Waits until the proxy's `/metrics` has the line `line`.
async fn until_metrics_show(proxy: &TestProxy, line: &str) {
    let mut metrics = String::new();
    for _ in 0..500 {
        metrics = String::from_utf8_lossy(&proxy.admin.get("/metrics").await.bytes).into_owned();
        if metrics.lines().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        metrics.lines().any(|l| l == line),
        "/metrics never showed {line}:\n{metrics}"
    );
}

/// Memory is bounded by configuration, not by traffic: past `max_exchanges` a request waits
/// for a slot, neither read, forwarded nor recorded until it has one.
#[tokio::test]
async fn a_request_past_max_exchanges_waits_for_a_slot_before_anything_happens() {
    let silent = slow::silent().await;
    let store_url = fresh_store_urls().await.remove(0);
    // Long enough for the checks below to run while the first exchange waits, on a busy machine.
    let route = single_route(&format!("http://{silent}"), "timeout_secs = 3\n");
    let proxy = start(&format!("[listen]\nmax_exchanges = 1\n{route}"), &store_url).await;
    // Writes, which are recorded in flight before they are forwarded (a read is recorded once
    // it is answered): the first one's record shows while the second waits unrecorded.
    let delete = |path: &'static str| {
        let client = proxy.client.clone();
        tokio::spawn(async move { client.send(Method::DELETE, path, None, &[]).await })
    };
    let first = delete("/Users/first");
    until_metrics_show(&proxy, "scimtrail_exchanges_in_flight 1").await;
    let second = delete("/Users/second");
    until_metrics_show(&proxy, "scimtrail_exchanges_waited_total 1").await;
    let paths: Vec<String> = proxy
        .exchanges_of("app")
        .await
        .into_iter()
        .map(|e| e.begun.path)
        .collect();
    assert_eq!(paths, ["/Users/first"], "the waiting request is not recorded yet");

    // The application never answers: each exchange ends at the route's timeout, one after the other.
    assert_eq!(first.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(second.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    let exchanges = proxy.exchanges_of("app").await;
    let ended = |path: &str| {
        let exchange = exchanges.iter().find(|e| e.begun.path == path).unwrap();
        exchange.begun.received_at_ms + exchange.duration_ms().unwrap()
    };
    let first_began = exchanges
        .iter()
        .find(|e| e.begun.path == "/Users/first")
        .unwrap()
        .begun
        .received_at_ms;
    assert!(
        ended("/Users/second") - first_began >= 5800,
        "the second was forwarded once the first had ended, and waited its own timeout after"
    );
    until_metrics_show(&proxy, "scimtrail_exchanges_in_flight 0").await;
    proxy.running.shutdown().await;
}

/// A new raw connection to `addr` carrying one HTTP/1.1 GET, kept alive.
async fn raw_get(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /Users?count=1 HTTP/1.1\r\nhost: scimtrail\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// The start of the next response's status line on `stream` (`HTTP/1.1 200`), within `wait`.
async fn status_within(stream: &mut tokio::net::TcpStream, wait: std::time::Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut status = [0_u8; 12];
    let read = tokio::time::timeout(wait, stream.read_exact(&mut status)).await.ok()?;
    read.unwrap();
    Some(String::from_utf8_lossy(&status).into_owned())
}

/// Past `max_connections` a connection is accepted by the kernel but not served until
/// another closes.
#[tokio::test]
async fn a_connection_past_max_connections_is_served_once_another_closes() {
    let (app, _) = refapp::start().await;
    let store_url = fresh_store_urls().await.remove(0);
    let route = single_route(&app.base_url(), "");
    let proxy = start(&format!("[listen]\nmax_connections = 1\n{route}"), &store_url).await;
    let addr = proxy.running.proxy_addr;
    let (short, long) = (
        std::time::Duration::from_millis(300),
        std::time::Duration::from_secs(10),
    );

    let mut first = raw_get(addr).await;
    assert_eq!(status_within(&mut first, long).await.as_deref(), Some("HTTP/1.1 200"));
    until_metrics_show(&proxy, "scimtrail_connections_open 1").await;

    let mut second = raw_get(addr).await;
    assert_eq!(
        status_within(&mut second, short).await,
        None,
        "not served while the first is open"
    );
    drop(first);
    assert_eq!(status_within(&mut second, long).await.as_deref(), Some("HTTP/1.1 200"));
    drop(second);
    proxy.running.shutdown().await;
    app.shutdown().await;
}

/// Idle clients cannot hold every slot: a connection that sends no request for
/// `idle_timeout_secs` is closed, and the next one is served.
#[tokio::test]
async fn an_idle_connection_is_closed_after_idle_timeout_and_frees_its_slot() {
    use tokio::io::AsyncReadExt;
    let (app, _) = refapp::start().await;
    let store_url = fresh_store_urls().await.remove(0);
    let route = single_route(&app.base_url(), "");
    let config = format!("[listen]\nmax_connections = 1\nidle_timeout_secs = 1\n{route}");
    let proxy = start(&config, &store_url).await;
    let addr = proxy.running.proxy_addr;
    let long = std::time::Duration::from_secs(10);

    // Served, then kept alive and idle.
    let mut idle = raw_get(addr).await;
    assert_eq!(status_within(&mut idle, long).await.as_deref(), Some("HTTP/1.1 200"));
    let mut next = raw_get(addr).await;
    assert_eq!(
        status_within(&mut next, long).await.as_deref(),
        Some("HTTP/1.1 200"),
        "served once the idle connection was closed"
    );
    // The idle connection was closed by the proxy: what is left of its response, then the end.
    let mut rest = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), idle.read_to_end(&mut rest))
        .await
        .expect("closed by the proxy")
        .unwrap();
    proxy.running.shutdown().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_read_is_recorded_once_after_its_answer_and_a_write_in_flight_before_it_is_forwarded() {
    let silent = slow::silent().await;
    for url in fresh_store_urls().await {
        let route = format!("[[route]]\nname = \"app\"\nupstream = \"http://{silent}\"\ntimeout_secs = 2\n");
        let proxy = start(&route, &url).await;
        let in_flight = |proxy: &TestProxy| {
            let store = proxy.store.clone();
            async move {
                let query = ExchangeQuery {
                    outcome: Some("in_flight".into()),
                    limit: 10,
                    ..ExchangeQuery::default()
                };
                store.list(&query).await.unwrap().items
            }
        };
        // The application never answers: while the request waits for it, the store shows
        // what was recorded before forwarding.
        let client = proxy.client.clone();
        let read = tokio::spawn(async move { client.get("/Users?filter=userName%20eq%20%22r%22").await });
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        assert!(
            in_flight(&proxy).await.is_empty(),
            "a read is not recorded before its answer ({url})"
        );
        let read = read.await.unwrap();
        assert_eq!(read.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            record(&proxy, &read).await.outcome(),
            "unreachable",
            "recorded once, whole"
        );

        let client = proxy.client.clone();
        let write = tokio::spawn(async move {
            client
                .post("/Users", &json!({"schemas": [USER], "userName": "w"}))
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let waiting = in_flight(&proxy).await;
        assert_eq!(
            waiting.len(),
            1,
            "a write is recorded in flight before it is forwarded ({url})"
        );
        assert_eq!(waiting[0].begun.method, "POST");
        let write = write.await.unwrap();
        assert_eq!(record(&proxy, &write).await.outcome(), "unreachable");
        proxy.running.shutdown().await;
    }
}
