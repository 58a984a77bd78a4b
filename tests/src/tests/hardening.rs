//! Hardening: no IdP, application or stranger can take the proxy down, steal a credential
//! through it, or slip past it. One test (or more) per defect, each through the real listeners
//! on loopback, each failing on the proxy as it was before the fix.

use http::{Method, StatusCode};
use scimtrail_integration::misbehave::{self, Misbehaviour};
use scimtrail_integration::proxy::{fresh_store_urls, route_for, single_route, start, start_with, TestProxy};
use scimtrail_integration::raw::{self, RawResponse};
use scimtrail_integration::spy;
use scimtrail_integration::{refapp, slow, TestResponse};
use scimtrail_proxy::{Secret, UpstreamAuth};
use scimtrail_store::Exchange;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

fn user(name: &str) -> Value {
    json!({"schemas": [USER], "userName": name})
}

async fn record(proxy: &TestProxy, id: Option<&str>) -> Exchange {
    let id = id.expect("every response carries its exchange id");
    proxy.store.get(id).await.expect("the exchange is recorded")
}

async fn recorded(proxy: &TestProxy, response: &TestResponse) -> Exchange {
    record(proxy, response.header("scimtrail-exchange-id")).await
}

async fn recorded_raw(proxy: &TestProxy, response: &RawResponse) -> Exchange {
    record(proxy, response.header("scimtrail-exchange-id")).await
}

/// The rules (and proxy changes) an exchange's record names, in order.
fn changes_of(exchange: &Exchange) -> Vec<Value> {
    exchange.changes().as_array().cloned().unwrap_or_default()
}

// === 1. R4 page aggregation is bounded ===

#[tokio::test]
async fn r4_a_huge_count_costs_at_most_the_aggregate_bound_in_pages_sent_one_at_a_time() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, direct) = refapp::start().await;
    for n in 0..30 {
        direct.post("/Users", &user(&format!("user{n:02}"))).await;
    }
    let spy = spy::start(Some(app.base_url())).await;
    let proxy = start(
        &route_for("okta", &spy.base_url(), "[route.target]\nmax_results = 2\n"),
        &store_url,
    )
    .await;

    // Before: 5 × 10^11 page requests built before the first was sent.
    let page = proxy.client.get("/Users?startIndex=1&count=1000000000000").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["totalResults"], 30);
    assert_eq!(page.body["itemsPerPage"], 20, "ten pages of two: the default bound");
    assert_eq!(spy.seen_with(Method::GET).len(), 10);
    let exchange = recorded(&proxy, &page).await;
    assert!(
        changes_of(&exchange)
            .iter()
            .any(|c| c["pointer"] == "?count" && c["before"] == "1000000000000" && c["after"] == "20"),
        "the clamp is recorded: {:#}",
        exchange.changes()
    );

    // Near the end of the list, the pages stop where it does.
    let before = spy.seen_with(Method::GET).len();
    let tail = proxy.client.get("/Users?startIndex=25&count=1000").await;
    assert_eq!(tail.body["itemsPerPage"], 6, "{}", tail.body);
    assert_eq!(
        spy.seen_with(Method::GET).len() - before,
        3,
        "25-26, 27-28, 29-30, and no more"
    );

    // A startIndex near the top of what a number holds: nothing wraps around to page one.
    let before = spy.seen_with(Method::GET).len();
    let top = proxy
        .client
        .get("/Users?startIndex=9223372036854775806&count=100")
        .await;
    assert_eq!(top.status, StatusCode::OK, "{}", top.body);
    assert_eq!(top.body["Resources"], json!([]));
    assert_eq!(spy.seen_with(Method::GET).len() - before, 1);
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 2. Bulk: maxOperations, maxPayloadSize, no bulk inside a bulk ===

#[tokio::test]
async fn a_bulk_request_is_bounded_by_its_advertised_limits_and_cannot_nest() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let spy = spy::start(Some(app.base_url())).await;
    let limits = "[route.target]\nmax_bulk_operations = 3\nmax_bulk_payload_bytes = 4096\n";
    let proxy = start(&route_for("entra", &spy.base_url(), limits), &store_url).await;

    // Advertised where the proxy rewrites the ServiceProviderConfig (R17).
    let config = proxy.client.get("/ServiceProviderConfig").await;
    assert_eq!(config.body["bulk"]["maxOperations"], 3, "{}", config.body);
    assert_eq!(config.body["bulk"]["maxPayloadSize"], 4096);

    let operation = |name: &str| json!({"method": "POST", "path": "/Users", "data": user(name)});
    let bulk = |operations: Vec<Value>| json!({"schemas": [BULK], "Operations": operations});
    let too_many = proxy
        .client
        .post("/Bulk", &bulk((0..4).map(|n| operation(&format!("u{n}"))).collect()))
        .await;
    assert_eq!(too_many.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", too_many.body);
    assert_eq!(too_many.body["scimType"], "tooLarge");
    assert!(too_many.body["detail"].as_str().unwrap().contains("maxOperations (3)"));
    assert_eq!(recorded(&proxy, &too_many).await.outcome(), "rejected");

    let big = proxy
        .client
        .post("/Bulk", &bulk(vec![operation(&"x".repeat(5000))]))
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.body);
    assert!(big.body["detail"].as_str().unwrap().contains("maxPayloadSize (4096)"));
    assert!(
        spy.seen_with(Method::POST).is_empty(),
        "nothing of either reached the application"
    );

    // A bulk operation that is itself a bulk request, however the path is spelled.
    let nested: Vec<Value> = ["/BULK", "/Bulk/x", "/bulk/"]
        .iter()
        .enumerate()
        .map(|(n, path)| {
            json!({"method": "POST", "path": path, "bulkId": format!("b{n}"),
            "data": {"schemas": [BULK], "Operations": []}})
        })
        .collect();
    let answered = proxy.client.post("/Bulk", &bulk(nested)).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
    for result in answered.body["Operations"].as_array().unwrap() {
        assert_eq!(result["status"], "400", "{result}");
        assert_eq!(result["response"]["scimType"], "invalidPath", "{result}");
    }
    assert!(spy.seen_with(Method::POST).is_empty(), "no nested bulk was sent");
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 3. Duplicate member names ===

#[tokio::test]
async fn a_body_that_names_a_member_twice_is_refused_not_read_one_way_and_sent_another() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, direct) = refapp::start().await;
    let id = direct.post("/Users", &user("dup@example.com")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let spy = spy::start(Some(app.base_url())).await;
    let proxy = start(&single_route(&spy.base_url(), ""), &store_url).await;
    // Read last-wins this deactivates; an application that keeps the first sets a title.
    let ambiguous = format!(
        r#"{{"schemas":["{PATCH_OP}"],"Operations":[{{"op":"replace","path":"title","value":false,"path":"active"}}]}}"#
    );
    let other_casing = format!(r#"{{"schemas":["{USER}"],"userName":"a","UserName":"b"}}"#);
    for (method, path, body) in [
        (Method::PATCH, format!("/Users/{id}"), ambiguous),
        (Method::POST, "/Users".to_owned(), other_casing),
    ] {
        let refused = proxy
            .client
            .send_raw(method, &path, body.into(), Some("application/scim+json"), &[])
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        assert_eq!(refused.body["scimType"], "invalidSyntax");
        let detail = refused.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("twice") || detail.contains("case-insensitive"),
            "{detail}"
        );
        let exchange = recorded(&proxy, &refused).await;
        assert_eq!(exchange.outcome(), "rejected");
        assert!(
            exchange.begun.request_body.is_some(),
            "the ambiguous body is kept as evidence"
        );
    }
    assert!(spy.seen().is_empty(), "nothing reached the application");
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 4. Path tricks ===

#[tokio::test]
async fn path_tricks_are_refused_and_empty_segments_collapsed() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let spy = spy::start(Some(app.base_url())).await;
    let proxy = start(&single_route(&spy.base_url(), "path_prefix = \"/okta\"\n"), &store_url).await;
    let addr = proxy.running.proxy_addr;
    let mut first: Option<(String, &str)> = None;
    for path in [
        "/okta/Users/..;/admin",
        "/okta/..%2fadmin",
        "/okta/Users/a%2fb",
        "/okta/Users/a%5cb",
        "/okta/Users\\..\\admin",
        "/okta/Users/%252e%252e/admin",
        "/okta/Users/%00",
        "/okta/%2e%2e/admin",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: scimtrail\r\nconnection: close\r\n\r\n");
        let refused = raw::send(addr, request.as_bytes()).await;
        assert_eq!(refused.status, 400, "{path}: {:?}", refused.json());
        assert_eq!(refused.json()["scimType"], "invalidPath", "{path}");
        let exchange = recorded_raw(&proxy, &refused).await;
        // Identical refusals (one client, route and status) within a second are counted
        // into the first one's record.
        let (first_id, first_path) = first.get_or_insert((exchange.begun.id.clone(), path));
        assert_eq!(&exchange.begun.id, first_id, "{path}");
        assert_eq!(
            (exchange.outcome(), exchange.begun.path.as_str()),
            ("rejected", *first_path)
        );
        assert_eq!(exchange.begun.route.as_deref(), Some("app"), "{path}");
    }
    assert!(spy.seen().is_empty(), "no trick reached the application");
    let (first_id, _) = first.expect("a refusal");
    let mut counted = 0;
    for _ in 0..100 {
        counted = proxy.store.get(&first_id).await.expect("recorded").repeat_count;
        if counted == 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(counted, 8, "every refusal is counted");
    // `%5c` in the query is a filter's escape, not a path trick.
    let query = raw::send(
        addr,
        b"GET /okta/Users?filter=userName%20eq%20%22a%5c%22b%22 HTTP/1.1\r\nhost: s\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(query.status, 200, "{:?}", query.json());

    // A tenant URL typed with a trailing slash: `//Users`, collapsed and recorded.
    let doubled = proxy.client.get("/okta//Users").await;
    assert_eq!(doubled.status, StatusCode::OK, "{}", doubled.body);
    assert_eq!(spy.seen().last().unwrap().target, "/Users");
    let exchange = recorded(&proxy, &doubled).await;
    assert_eq!(exchange.begun.path, "/okta//Users", "recorded as received");
    assert!(
        changes_of(&exchange)
            .iter()
            .any(|c| c["rule"] == "path" && c["before"] == "/okta//Users" && c["after"] == "/okta/Users"),
        "{:#}",
        exchange.changes()
    );
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 5. Slow and silent peers ===

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_first_byte_timeout() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let config = format!(
        "[listen]\nfirst_byte_timeout_secs = 1\nidle_timeout_secs = 60\n{}",
        single_route(&app.base_url(), "")
    );
    let proxy = start(&config, &store_url).await;
    let mut silent = TcpStream::connect(proxy.running.proxy_addr).await.unwrap();
    // One byte of `POST`, then nothing: the protocol cannot be told yet either.
    let mut stalled = TcpStream::connect(proxy.running.proxy_addr).await.unwrap();
    stalled.write_all(b"P").await.unwrap();
    let started = Instant::now();
    assert!(
        raw::closed_within(&mut silent, Duration::from_secs(5)).await,
        "still open"
    );
    assert!(
        raw::closed_within(&mut stalled, Duration::from_secs(5)).await,
        "still open"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert!(
        proxy
            .metrics_show("scimtrail_connections_closed_total{reason=\"first_byte_timeout\"} 2")
            .await
    );
    proxy.running.shutdown().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_tls_client_that_handshakes_and_goes_silent_is_closed() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls");
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let config = format!(
        "[listen]\nfirst_byte_timeout_secs = 1\nidle_timeout_secs = 60\ntls = {{ cert_path = \"{fixtures}/localhost.crt\", key_path = \"{fixtures}/localhost.key\" }}\n{}",
        single_route(&app.base_url(), "")
    );
    let proxy = start(&config, &store_url).await;
    let mut tls = tls_connect(proxy.running.proxy_addr, fixtures).await;
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0_u8; 64];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a silent TLS client kept its connection");
    assert!(started.elapsed() >= Duration::from_millis(800));
    proxy.running.shutdown().await;
    app.shutdown().await;
}

/// A TLS connection to the proxy, handshake done, trusting the fixture certificate.
async fn tls_connect(addr: std::net::SocketAddr, fixtures: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let pem = std::fs::read(format!("{fixtures}/localhost.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let stream = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, stream).await.expect("the handshake completes")
}

#[tokio::test]
async fn an_http2_connection_with_no_open_stream_is_closed_after_the_idle_timeout() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let config = format!("[listen]\nidle_timeout_secs = 1\n{}", single_route(&app.base_url(), ""));
    let proxy = start(&config, &store_url).await;
    let stream = TcpStream::connect(proxy.running.proxy_addr).await.unwrap();
    // hyper's HTTP/2 client answers the server's pings: a peer alive and idle.
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/Users", proxy.running.proxy_addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(8), connection).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection was kept open");
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert!(
        proxy
            .metrics_show("scimtrail_connections_closed_total{reason=\"idle\"} 1")
            .await
    );
    proxy.running.shutdown().await;
    app.shutdown().await;
}

#[tokio::test]
async fn one_client_address_holds_at_most_its_bound_directly_and_behind_a_trusted_proxy() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let config = format!(
        "[listen]\nmax_connections_per_client = 2\nfirst_byte_timeout_secs = 30\n{}",
        single_route(&app.base_url(), "")
    );
    let proxy = start(&config, &store_url).await;
    let addr = proxy.running.proxy_addr;
    let _first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        raw::closed_within(&mut third, Duration::from_secs(3)).await,
        "a third connection was kept"
    );
    assert!(
        proxy
            .metrics_show("scimtrail_connections_closed_total{reason=\"per_client\"} 1")
            .await
    );
    proxy.running.shutdown().await;

    // Behind a load balancer every connection comes from its address: the bound applies to
    // the client that X-Forwarded-For names, per exchange in flight.
    let silent = slow::silent().await;
    let config = format!(
        "[listen]\nmax_connections_per_client = 1\ntrusted_proxies = [\"127.0.0.1\"]\n{}",
        single_route(&format!("http://{silent}"), "timeout_secs = 3\n")
    );
    let proxy = start(&config, &store_url).await;
    let from = |client: &'static str| {
        let proxy = proxy.client.clone();
        tokio::spawn(async move {
            proxy
                .send(Method::GET, "/Users", None, &[("x-forwarded-for", client)])
                .await
        })
    };
    let holding = from("192.0.2.1");
    assert!(proxy.metrics_show("scimtrail_exchanges_in_flight 1").await);
    let refused = from("192.0.2.1").await.unwrap();
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.body);
    assert_eq!(recorded(&proxy, &refused).await.outcome(), "rejected");
    let other = from("198.51.100.7").await.unwrap();
    assert_eq!(
        other.status,
        StatusCode::GATEWAY_TIMEOUT,
        "another client is not held back"
    );
    assert_eq!(holding.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 6. Authenticate, then read the body, then take a slot ===

#[tokio::test]
async fn slow_bodies_and_strangers_never_hold_an_exchange_slot() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let config = format!(
        "[listen]\nmax_exchanges = 1\nbody_timeout_secs = 2\n{}",
        single_route(&app.base_url(), "")
    );
    let proxy = start_with(&config, &store_url, |settings| {
        settings.proxy.routes[0].idp_token = Some(Secret::new("idp-token"));
    })
    .await;
    let addr = proxy.running.proxy_addr;
    let head = |token: &str| {
        format!(
            "POST /Users HTTP/1.1\r\nhost: s\r\nauthorization: Bearer {token}\r\ncontent-type: application/scim+json\r\ncontent-length: 100\r\n\r\n{{\"schemas\":"
        )
    };
    // An authenticated IdP that sends a tenth of its body and stalls, and a stranger.
    let mut slow_body = TcpStream::connect(addr).await.unwrap();
    slow_body.write_all(head("idp-token").as_bytes()).await.unwrap();
    let mut stranger = TcpStream::connect(addr).await.unwrap();
    stranger.write_all(head("guess").as_bytes()).await.unwrap();
    let unauthorized = raw::read_response(&mut stranger, Duration::from_secs(2)).await;
    assert_eq!(unauthorized.map(|r| r.status), Some(401), "refused from its head alone");

    let started = Instant::now();
    let served = proxy
        .client
        .send(Method::GET, "/Users", None, &[("authorization", "Bearer idp-token")])
        .await;
    assert_eq!(served.status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the only exchange slot was free: {:?}",
        started.elapsed()
    );
    let timed_out = raw::read_response(&mut slow_body, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(timed_out.status, 408, "{:?}", timed_out.json());
    assert_eq!(recorded_raw(&proxy, &timed_out).await.outcome(), "rejected");
    proxy.running.shutdown().await;
    app.shutdown().await;
}

#[tokio::test]
async fn bodies_in_flight_stay_within_max_buffered_bytes_reserved_whole_before_they_are_read() {
    let store_url = fresh_store_urls().await.remove(0);
    let silent = slow::silent().await;
    // 192 KiB: requests may reserve 128 KiB between them, one answer's limit is kept free.
    let config = format!(
        "[listen]\nmax_buffered_bytes = 196608\nbody_timeout_secs = 1\n[record]\nmax_body_bytes = 65536\nmax_response_bytes = 65536\n{}",
        single_route(&format!("http://{silent}"), "timeout_secs = 4\n")
    );
    let proxy = start(&config, &store_url).await;
    // Two creates of 64 KiB each, held while the application takes its time to answer.
    let full = |name: &str| {
        let mut user = json!({"schemas": [USER], "userName": name, "displayName": ""});
        let pad = 65536 - user.to_string().len();
        user["displayName"] = json!("x".repeat(pad));
        user
    };
    let mut held = Vec::new();
    for name in ["first", "second"] {
        let (client, body) = (proxy.client.clone(), full(name));
        held.push(tokio::spawn(async move { client.post("/Users", &body).await }));
    }
    assert!(proxy.metrics_show("scimtrail_exchanges_in_flight 2").await);
    // No room for a third body, however small: refused once the wait is over, not forwarded.
    let refused = proxy.client.post("/Users", &user("third")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.body);
    assert_eq!(refused.header("scimtrail-error"), Some("buffers_full"));
    let exchange = recorded(&proxy, &refused).await;
    assert_eq!(exchange.outcome(), "rejected");
    assert!(exchange.forwarded_headers().is_none(), "it was not forwarded");
    assert!(exchange.error().unwrap().contains("max_buffered_bytes"));
    // A body-less request reserves nothing for its body, and room is kept for its answer:
    // it reaches the application (which never answers).
    let read = proxy.client.get("/Users").await;
    assert_eq!(read.status, StatusCode::GATEWAY_TIMEOUT, "{}", read.body);
    // The creates end and give their room back: the next one is forwarded.
    for create in held {
        assert_eq!(create.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    }
    let after = proxy.client.post("/Users", &user("fourth")).await;
    assert_eq!(after.status, StatusCode::GATEWAY_TIMEOUT, "{}", after.body);
    proxy.running.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_while_waiting_for_a_slot_starts_nothing() {
    let store_url = fresh_store_urls().await.remove(0);
    let silent = slow::silent().await;
    let config = format!(
        "[listen]\nmax_exchanges = 1\n{}",
        single_route(&format!("http://{silent}"), "timeout_secs = 2\n")
    );
    let proxy = start(&config, &store_url).await;
    let client = proxy.client.clone();
    let first = tokio::spawn(async move { client.get("/Users/first").await });
    assert!(proxy.metrics_show("scimtrail_exchanges_in_flight 1").await);
    let mut leaving = TcpStream::connect(proxy.running.proxy_addr).await.unwrap();
    leaving
        .write_all(b"GET /Users/second HTTP/1.1\r\nhost: s\r\n\r\n")
        .await
        .unwrap();
    assert!(proxy.metrics_show("scimtrail_exchanges_waited_total 1").await);
    drop(leaving);
    assert_eq!(first.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    let second = proxy
        .completed_exchange("app", |e| e.begun.path == "/Users/second")
        .await
        .expect("the request that was left is recorded");
    assert_eq!((second.outcome(), second.status()), ("rejected", Some(499)));
    assert!(second.forwarded_headers().is_none(), "it was not forwarded");
    proxy.running.shutdown().await;
}

// === 7. The route timeout covers the whole upstream exchange ===

#[tokio::test]
async fn an_application_that_stalls_mid_body_is_cut_off_at_the_route_timeout() {
    let store_url = fresh_store_urls().await.remove(0);
    let stalling = slow::stalls_mid_body().await;
    let proxy = start(
        &single_route(&format!("http://{stalling}"), "timeout_secs = 1\n"),
        &store_url,
    )
    .await;
    let started = Instant::now();
    let response = proxy.client.get("/Users").await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT, "{}", response.body);
    let exchange = recorded(&proxy, &response).await;
    assert_eq!(exchange.outcome(), "unreachable");
    let stopping = Instant::now();
    proxy.running.shutdown().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "shutdown waited for the stalled body"
    );
}

// === 8. R6 follows a Location only under the route's upstream ===

#[tokio::test]
async fn r6_never_follows_a_location_to_another_host() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let elsewhere = spy::start(None).await;
    let front = misbehave::start(app.base_url(), Misbehaviour::EmptyCreateBodyLocatedAt(elsewhere.addr)).await;
    let proxy = start_with(
        &route_for("okta", &format!("http://{front}"), ""),
        &store_url,
        |settings| {
            let route = &mut settings.proxy.routes[0];
            route.idp_token = Some(Secret::new("idp-token"));
            route.upstream_auth = Some(UpstreamAuth::Bearer(Secret::new("app-token")));
        },
    )
    .await;
    let created = proxy
        .client
        .send(
            Method::POST,
            "/Users",
            Some(&user("ida@example.com")),
            &[("authorization", "Bearer idp-token")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["userName"], "ida@example.com", "looked up instead");
    assert!(elsewhere.seen().is_empty(), "a credential went to {}", elsewhere.addr);
    let exchange = recorded(&proxy, &created).await;
    let r6 = changes_of(&exchange).into_iter().find(|c| c["rule"] == "R6").unwrap();
    let detail = r6["detail"].as_str().unwrap();
    assert!(
        detail.contains("carries user information") && detail.contains("looked up by userName"),
        "{detail}"
    );
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 9. The IdP's credentials never go beside the route's own ===

#[tokio::test]
async fn requests_the_proxy_makes_carry_the_routes_credentials_and_never_the_idps() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, direct) = refapp::start().await;
    let id = direct.post("/Users", &user("cred@example.com")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let spy = spy::start(Some(app.base_url())).await;
    let proxy = start_with(
        &route_for("entra", &spy.base_url(), "read_back = true\n"),
        &store_url,
        |settings| {
            let route = &mut settings.proxy.routes[0];
            route.idp_token = Some(Secret::new("idp-token"));
            route.upstream_auth = Some(UpstreamAuth::Header {
                name: "x-api-key".into(),
                value: Secret::new("app-key"),
            });
        },
    )
    .await;
    let idp = [("authorization", "Bearer idp-token"), ("cookie", "idp-session=1")];
    // N8 reads the user first (no work email yet), read-back reads it after.
    let patch = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "cred@work.example"}]});
    let patched = proxy
        .client
        .send(Method::PATCH, &format!("/Users/{id}"), Some(&patch), &idp)
        .await;
    assert!(patched.status.is_success(), "{}", patched.body);
    let created = proxy
        .client
        .send(Method::POST, "/Users", Some(&user("new@example.com")), &idp)
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let seen = spy.seen();
    assert!(
        seen.iter().filter(|s| s.method == Method::GET).count() >= 3,
        "state and read-back GETs: {seen:?}"
    );
    for request in &seen {
        assert!(
            request.headers.get("authorization").is_none(),
            "{} {} carried {:?}",
            request.method,
            request.target,
            request.headers
        );
        assert!(
            request.headers.get("cookie").is_none(),
            "{} {}",
            request.method,
            request.target
        );
        assert_eq!(
            request.headers["x-api-key"], "app-key",
            "{} {}",
            request.method, request.target
        );
    }
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 10. Only SCIM methods ===

#[tokio::test]
async fn a_method_scim_does_not_use_is_refused_405_and_recorded() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let spy = spy::start(Some(app.base_url())).await;
    let proxy = start(&single_route(&spy.base_url(), ""), &store_url).await;
    for method in [Method::OPTIONS, Method::TRACE, Method::from_bytes(b"PROPFIND").unwrap()] {
        let refused = proxy.client.send(method.clone(), "/Users", None, &[]).await;
        assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(refused.header("allow"), Some("GET, POST, PUT, PATCH, DELETE"));
        assert_eq!(recorded(&proxy, &refused).await.outcome(), "rejected");
    }
    let head = proxy.client.send(Method::HEAD, "/Users", None, &[]).await;
    assert_eq!(head.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(spy.seen().is_empty(), "nothing reached the application");
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 12. The admin listener cannot be driven from a browser page ===

#[tokio::test]
async fn the_admin_api_answers_only_its_own_host_no_foreign_origin_and_json_posts() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let proxy = start_with(&single_route(&app.base_url(), ""), &store_url, |settings| {
        settings.proxy.admin_token = Some(Secret::new("admin-token"));
    })
    .await;
    let admin = proxy.running.admin_addr;
    let token = ("authorization", "Bearer admin-token");
    let replays = json!({"filter": {}, "dry_run": true});

    let fine = proxy
        .admin
        .send(Method::POST, "/api/v1/replays", Some(&replays), &[token])
        .await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.body);

    // DNS rebinding: a page whose domain now resolves to the listener.
    let rebound = raw::send(
        admin,
        b"GET /api/v1/exchanges HTTP/1.1\r\nhost: attacker.example:9180\r\nauthorization: Bearer admin-token\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(rebound.status, 421, "{:?}", rebound.json());
    // A page on another site posting to the listener.
    let foreign = proxy
        .admin
        .send(
            Method::POST,
            "/api/v1/replays",
            Some(&replays),
            &[token, ("origin", "https://attacker.example")],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    // A cross-site form can send text/plain without asking the browser first: refused.
    let form = proxy
        .admin
        .send_raw(
            Method::POST,
            "/api/v1/replays",
            replays.to_string().into(),
            Some("text/plain"),
            &[token],
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for wrong in ["Bearer admin-toke", "Bearer admin-token-and-more", "Bearer "] {
        let refused = proxy
            .admin
            .send(Method::GET, "/api/v1/exchanges", None, &[("authorization", wrong)])
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    // Health checks come from anywhere a probe runs.
    let health = raw::send(
        admin,
        b"GET /healthz HTTP/1.1\r\nhost: pod-7:9180\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(health.status, 200);
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 13. Token rotation ===

#[tokio::test]
async fn an_idp_token_rotates_through_its_next_file_and_a_reload() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, _) = refapp::start().await;
    let dir = std::env::temp_dir().join(format!("scimtrail-rotation-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("idp-token");
    std::fs::write(&file, "old-token\n").unwrap();
    std::fs::write(dir.join("idp-token.next"), "new-token\n").unwrap();
    let extra = format!("idp_token_file = \"{}\"\n", file.display());
    let proxy = start(&single_route(&app.base_url(), &extra), &store_url).await;
    let status = |token: &'static str| {
        let client = proxy.client.clone();
        async move {
            client
                .send(Method::GET, "/Users", None, &[("authorization", token)])
                .await
                .status
        }
    };
    // During the rotation both are accepted.
    assert_eq!(status("Bearer old-token").await, StatusCode::OK);
    assert_eq!(status("Bearer new-token").await, StatusCode::OK);
    // The rotation done: the new one is current, the old one gone, read without a restart.
    std::fs::write(&file, "new-token\n").unwrap();
    std::fs::remove_file(dir.join("idp-token.next")).unwrap();
    let report = proxy.running.reload_secrets().await;
    assert!(
        report.iter().any(|line| line.contains("idp token: changed")),
        "{report:?}"
    );
    assert_eq!(status("Bearer old-token").await, StatusCode::UNAUTHORIZED);
    assert_eq!(status("Bearer new-token").await, StatusCode::OK);
    // A file half-written keeps the token in force.
    std::fs::write(&file, "").unwrap();
    let report = proxy.running.reload_secrets().await;
    assert!(
        report.iter().any(|line| line.contains("kept its previous value")),
        "{report:?}"
    );
    assert_eq!(status("Bearer new-token").await, StatusCode::OK);
    proxy.running.shutdown().await;
    app.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

// === 14. Compressed bodies, both ways ===

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn compressed_bodies_are_read_redacted_and_bounded_both_ways() {
    let store_url = fresh_store_urls().await.remove(0);
    let (app, direct) = refapp::start().await;
    let spy = spy::start(Some(app.base_url())).await;
    let config = format!(
        "[record]\nmax_body_bytes = 65536\n{}",
        single_route(&spy.base_url(), "")
    );
    let proxy = start(&config, &store_url).await;

    // An IdP's gzip body: normalised, recorded and forwarded decoded, its password redacted.
    let body = json!({"schemas": [USER], "userName": "zip@example.com", "password": "Hunter2!secret"});
    let created = proxy
        .client
        .send_raw(
            Method::POST,
            "/Users",
            gzip(body.to_string().as_bytes()).into(),
            Some("application/scim+json"),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let forwarded = spy.seen_with(Method::POST).pop().unwrap();
    assert!(forwarded.headers.get("content-encoding").is_none());
    assert_eq!(
        serde_json::from_slice::<Value>(&forwarded.body).unwrap()["userName"],
        "zip@example.com"
    );
    let exchange = recorded(&proxy, &created).await;
    let stored = exchange.begun.request_body.clone().unwrap();
    assert!(
        stored.contains("zip@example.com") && !stored.contains("Hunter2"),
        "{stored}"
    );

    // A decompression bomb: 20 KB that inflate to 20 MB.
    let bomb = gzip(&vec![b' '; 20 * 1024 * 1024]);
    assert!(bomb.len() < 65536);
    let refused = proxy
        .client
        .send_raw(
            Method::POST,
            "/Users",
            bomb.into(),
            Some("application/scim+json"),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(recorded(&proxy, &refused).await.outcome(), "rejected");
    proxy.running.shutdown().await;

    // An application that gzips its answers and ignores deactivations: the finding is made.
    let leaver = json!({"schemas": [USER], "userName": "leaver@example.com", "active": true});
    let id = direct.post("/Users", &leaver).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ignoring = misbehave::start(app.base_url(), Misbehaviour::IgnoreActive).await;
    let zipping = misbehave::start(format!("http://{ignoring}"), Misbehaviour::GzipAnswers).await;
    let proxy = start(&single_route(&format!("http://{zipping}"), ""), &store_url).await;
    let deactivate =
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let answered = proxy
        .client
        .send(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&deactivate),
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::OK);
    assert_eq!(
        answered.header("content-encoding"),
        Some("gzip"),
        "encoded again for an IdP that asked"
    );
    let exchange = recorded(&proxy, &answered).await;
    assert_eq!(exchange.outcome(), "partial");
    assert!(
        exchange.findings().to_string().contains("deprovision_not_applied"),
        "{}",
        exchange.findings()
    );
    assert!(exchange.response_body().unwrap().contains("leaver@example.com"));
    // An IdP that did not ask gets it as it can read it.
    let plain = proxy.client.get(&format!("/Users/{id}")).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body["userName"], "leaver@example.com");
    proxy.running.shutdown().await;
    app.shutdown().await;
}

// === 15. What a caller is told of the proxy's insides: nothing ===

#[tokio::test]
async fn errors_to_callers_name_the_exchange_and_keep_the_insides_in_the_record() {
    let store_url = fresh_store_urls().await.remove(0);
    let down = slow::closed().await;
    let proxy = start(&single_route(&format!("http://{down}"), ""), &store_url).await;
    let unreachable = proxy.client.get("/Users").await;
    assert_eq!(unreachable.status, StatusCode::BAD_GATEWAY);
    let detail = unreachable.body["detail"].as_str().unwrap().to_owned();
    let id = unreachable.header("scimtrail-exchange-id").unwrap();
    assert_eq!(
        detail,
        format!("the application could not be reached (scimtrail exchange {id})")
    );
    let exchange = recorded(&proxy, &unreachable).await;
    let error = exchange.error().unwrap();
    assert!(
        error.contains(&down.port().to_string()),
        "the record keeps where and why: {error}"
    );
    proxy.running.shutdown().await;

    // The store fails: the caller learns that, not the database's words.
    let (app, _) = refapp::start().await;
    let proxy = start(&single_route(&app.base_url(), ""), &store_url).await;
    crate::proxy::break_store(&store_url, true).await;
    let mut refused = proxy.client.get("/Users").await;
    for _ in 0..100 {
        if refused.status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        refused = proxy.client.get("/Users").await;
    }
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    let detail = refused.body["detail"].as_str().unwrap();
    for inside in ["exchanges", "table", "sqlite", "SQLITE", "journal"] {
        assert!(!detail.contains(inside), "{detail}");
    }
    assert!(detail.contains("(scimtrail exchange "), "{detail}");
    crate::proxy::break_store(&store_url, false).await;
    proxy.running.shutdown().await;
    app.shutdown().await;
}
