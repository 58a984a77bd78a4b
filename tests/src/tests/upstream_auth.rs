//! What applications ask of scimtrail beyond a static header, over real TLS on loopback: a
//! client certificate under a private CA (mutual TLS), and OAuth 2.0 client credentials — the
//! token fetched from the application's token endpoint, kept, replaced before it expires, and
//! never recorded.

use http::{Method, StatusCode};
use scimtrail_integration::guarded::{self, private_ca, Guard};
use scimtrail_integration::proxy::{everything_stored, fresh_store_urls, single_route, start, TestProxy};
use scimtrail_integration::{refapp, TestResponse};
use serde_json::json;
use std::time::Duration;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

async fn outcome(proxy: &TestProxy, response: &TestResponse) -> scimtrail_store::Exchange {
    let id = response.header("scimtrail-exchange-id").expect("an exchange id");
    proxy.store.get(id).await.expect("recorded")
}

fn path(name: &str) -> String {
    private_ca(name).display().to_string()
}

#[tokio::test]
async fn an_application_behind_mutual_tls_is_reached_with_the_routes_client_certificate() {
    let (app, _) = refapp::start().await;
    let front = guarded::start(app.base_url(), Guard::ClientCertificate).await;
    let ca = format!("[upstream]\nca_bundle_path = \"{}\"\n", path("ca.crt"));
    let identity = format!(
        "upstream_tls = {{ client_cert_path = \"{}\", client_key_path = \"{}\" }}\n",
        path("client.crt"),
        path("client.key")
    );
    let url = &fresh_store_urls().await[0];

    let presenting = start(&format!("{ca}{}", single_route(&front.base_url, &identity)), url).await;
    let created = presenting
        .client
        .post("/Users", &json!({"schemas": [USER], "userName": "over-mtls"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(outcome(&presenting, &created).await.outcome(), "ok");

    // Without the certificate the application's TLS refuses the proxy: 502, recorded.
    let anonymous = start(&format!("{ca}{}", single_route(&front.base_url, "")), url).await;
    let refused = anonymous.client.get("/Users").await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    assert_eq!(outcome(&anonymous, &refused).await.outcome(), "unreachable");

    // With the certificate but without the private CA, the proxy refuses the application.
    let untrusting = start(&single_route(&front.base_url, &identity), url).await;
    let refused = untrusting.client.get("/Users").await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    let exchange = outcome(&untrusting, &refused).await;
    assert!(
        exchange
            .error()
            .unwrap_or_default()
            .to_lowercase()
            .contains("certificate"),
        "{:?}",
        exchange.error()
    );
    for proxy in [presenting, anonymous, untrusting] {
        proxy.running.shutdown().await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn oauth_client_credentials_are_fetched_once_replaced_before_expiry_and_never_recorded() {
    let secret = format!("client-secret-{}", uuid::Uuid::new_v4().simple());
    let (app, _) = refapp::start().await;
    let front = guarded::start(
        app.base_url(),
        Guard::OAuth {
            client_id: "scimtrail".into(),
            client_secret: secret.clone(),
            lifetime: Duration::from_secs(2),
        },
    )
    .await;
    let dir = std::env::temp_dir().join(format!("scimtrail-oauth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, &secret).unwrap();
    std::fs::write(dir.join("wrong-secret"), "not-the-secret").unwrap();
    std::fs::write(dir.join("idp-token"), "idp-token").unwrap();
    let route = |secret_file: &std::path::Path| {
        single_route(
            &front.base_url,
            &format!(
                "idp_token_file = \"{}\"\nupstream_auth = {{ oauth_token_url = \"{}\", oauth_client_id = \"scimtrail\", oauth_client_secret_file = \"{}\", oauth_scope = \"scim\" }}\n",
                dir.join("idp-token").display(),
                front.token_url,
                secret_file.display()
            ),
        )
    };
    let idp = [("authorization", "Bearer idp-token")];
    for url in fresh_store_urls().await {
        let before = front.token_requests();
        let proxy = start(&route(&secret_file), &url).await;
        for n in 0..5 {
            let body = json!({"schemas": [USER], "userName": format!("oauth-{n}-{}", uuid::Uuid::new_v4().simple())});
            let created = proxy.client.send(Method::POST, "/Users", Some(&body), &idp).await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        }
        assert_eq!(front.token_requests() - before, 1, "one token for five requests");
        // Past four fifths of its two seconds, the token is replaced before the application
        // would refuse it.
        tokio::time::sleep(Duration::from_millis(1700)).await;
        let listed = proxy.client.send(Method::GET, "/Users", None, &idp).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        assert_eq!(front.token_requests() - before, 2, "replaced before expiry");
        assert_eq!(front.refused(), 0, "the application never saw a stale token");
        let issued = front.issued();
        let last = front.presented().last().cloned().flatten().unwrap();
        assert_eq!(last, format!("Bearer {}", issued.last().unwrap()));

        // Neither the tokens nor the client secret reach the store.
        proxy.running.shutdown().await;
        let stored = everything_stored(&url).await;
        for token in &issued {
            assert!(
                !stored.contains(token.as_str()),
                "an access token is in the store ({url})"
            );
        }
        assert!(!stored.contains(&secret), "the client secret is in the store ({url})");

        // A secret the endpoint refuses: the exchange fails, recorded, naming the endpoint.
        let refused_proxy = start(&route(&dir.join("wrong-secret")), &url).await;
        let refused = refused_proxy.client.send(Method::GET, "/Users", None, &idp).await;
        assert_eq!(refused.status, StatusCode::BAD_GATEWAY, "{}", refused.body);
        let exchange = outcome(&refused_proxy, &refused).await;
        assert_eq!(exchange.outcome(), "unreachable");
        let error = exchange.error().unwrap_or_default();
        assert!(
            error.contains("token endpoint") && error.contains("401") && error.contains("invalid_client"),
            "{error}"
        );
        assert!(!error.contains("not-the-secret"));
        refused_proxy.running.shutdown().await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
    app.shutdown().await;
}
