//! Pacing toward rate-limited applications (issue 18): an application that answers 429 above
//! its rate, and the proxy in front of it keeping within that rate, queueing what it must,
//! refusing what cannot wait with a 429 the IdP can read, pausing when the application says
//! so, and recording every exchange with its wait. On SQLite, through the real listeners.

use http::StatusCode;
use scimtrail_integration::limited::{self, Limit, Limited};
use scimtrail_integration::proxy::{fresh_store_urls, route_for, start, TestProxy};
use scimtrail_integration::{refapp, Client, TestResponse};
use scimtrail_store::Exchange;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn user(name: &str) -> Value {
    json!({"schemas": [USER], "userName": name, "active": true})
}

async fn recorded(proxy: &TestProxy, response: &TestResponse) -> Exchange {
    let id = response.header("scimtrail-exchange-id").expect("an exchange id");
    proxy.store.get(id).await.expect("the exchange is recorded")
}

/// The first SQLite store of the test's (the acceptance runs on SQLite).
async fn sqlite_store() -> String {
    fresh_store_urls().await.remove(0)
}

/// The proxy with one route, `app`, to `upstream`, with these `[route.target]` and
/// `[route.pacing]` lines.
async fn paced(upstream: &Limited, route: &str, target: &str, pacing: &str) -> TestProxy {
    let config = route_for(
        "generic",
        &upstream.base_url(),
        &format!("{route}[route.target]\n{target}[route.pacing]\n{pacing}"),
    );
    start(&config, &sqlite_store().await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_creates_from_16_connections_reaches_a_rate_limited_application_within_its_rate() {
    const RATE: usize = 100;
    let (refapp, app) = refapp::start().await;
    let upstream = limited::start(refapp.base_url(), Limit::PerSecond(RATE)).await;
    let proxy = paced(&upstream, "", "max_requests_per_second = 100\n", "").await;

    let started = Instant::now();
    let mut connections = Vec::new();
    for connection in 0..16 {
        // A client of its own: a connection of its own.
        let client = Client::new(format!("http://{}", proxy.running.proxy_addr));
        connections.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for n in (connection..500).step_by(16) {
                answers.push(client.post("/Users", &user(&format!("burst{n:03}"))).await);
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for connection in connections {
        answers.extend(connection.await.unwrap());
    }
    let took = started.elapsed();

    // The IdP's side: every create answered 201, none 429.
    assert_eq!(answers.len(), 500);
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    // The application's side: never more than its rate in any one second, so it refused
    // nothing; and it holds every user.
    let busiest = upstream.busiest_second();
    assert!(
        busiest <= RATE,
        "the application saw {busiest} requests within one second"
    );
    assert_eq!(upstream.refused(), 0);
    assert_eq!(
        upstream.arrivals().len(),
        500,
        "one request to the application per create"
    );
    assert!(
        took >= Duration::from_millis(4900),
        "500 requests at 100 a second took {took:?}"
    );
    let listed = app.get("/Users?count=0").await;
    assert_eq!(listed.body["totalResults"], 500, "{}", listed.body);

    // Every exchange recorded, each with its wait; with 16 connections and room for one
    // request each 10 ms, most waited.
    let mut waits = Vec::new();
    for answer in &answers {
        let exchange = recorded(&proxy, answer).await;
        assert_eq!((exchange.outcome(), exchange.status()), ("ok", Some(201)));
        waits.push(exchange.paced_ms().expect("a paced route's exchange records its wait"));
    }
    let waited = waits.iter().filter(|ms| **ms > 0).count();
    assert!(waited > 250, "only {waited} of 500 waited: {waits:?}");
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("scimtrail_pacing_queue_depth{route=\"app\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scimtrail_pacing_paced_total{route=\"app\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("scimtrail_pacing_refused_total{"), "{metrics}");
    assert!(
        metrics.contains("scimtrail_pacing_wait_seconds_count{route=\"app\"}"),
        "{metrics}"
    );
    proxy.running.shutdown().await;
    refapp.shutdown().await;
}

/// A full queue, and a request whose turn would come after what the IdP can wait, are
/// answered 429 at once with an integer `Retry-After`, recorded `unreachable` (replay may send
/// them) with what was wrong; the application never sees them.
#[tokio::test]
async fn what_the_queue_cannot_hold_or_wait_for_is_refused_with_a_retry_after_and_recorded() {
    let (refapp, _) = refapp::start().await;
    for (pacing, kind, detail) in [
        (
            "max_queued = 1\n",
            "queue_full",
            "the pacing queue of route app is full (max_queued = 1; at most 1 request per second, per instance); nothing was sent",
        ),
        (
            "max_wait_secs = 1\n",
            "queue_timeout",
            "the pacing queue of route app could not send the request within 1 s (max_wait_secs, which with the route's timeout keeps the answer within what the IdP waits; at most 1 request per second, per instance); nothing was sent",
        ),
    ] {
        let upstream = limited::start(refapp.base_url(), Limit::PerSecond(1)).await;
        let proxy = paced(&upstream, "timeout_secs = 5\n", "max_requests_per_second = 1\n", pacing).await;
        let first = proxy.client.post("/Users", &user(&format!("first-{kind}"))).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
        // The second waits its turn, a second on.
        let client = proxy.client.clone();
        let name = format!("second-{kind}");
        let second = tokio::spawn(async move { client.post("/Users", &user(&name)).await });
        assert!(proxy.metrics_show("scimtrail_pacing_queue_depth{route=\"app\"} 1").await);
        let arrived = Instant::now();
        let third = proxy.client.post("/Users", &user(&format!("third-{kind}"))).await;
        assert!(arrived.elapsed() < Duration::from_millis(500), "refused at once");
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{}", third.body);
        assert_eq!(third.header("scimtrail-error"), Some(kind));
        assert_eq!(third.header("retry-after"), Some("2"), "the one waiting and itself, one a second");
        let told = third.body["detail"].as_str().unwrap();
        assert!(told.starts_with(detail), "{told}");
        let exchange = recorded(&proxy, &third).await;
        assert_eq!((exchange.outcome(), exchange.status()), ("unreachable", Some(429)));
        assert!(exchange.forwarded_headers().is_none(), "nothing was sent");
        assert_eq!(exchange.paced_ms(), Some(0));
        let error = exchange.error().unwrap();
        assert!(error.starts_with(&format!("[pacing] {kind}: ")), "{error}");

        let second = second.await.unwrap();
        assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
        let waited = recorded(&proxy, &second).await.paced_ms().unwrap();
        assert!(waited >= 700, "the second waited {waited} ms");
        let sent: Vec<String> = upstream.arrivals().into_iter().map(|(_, what)| what).collect();
        assert_eq!(sent, ["POST /Users", "POST /Users"], "the third never reached the application");
        let line = format!("scimtrail_pacing_refused_total{{route=\"app\",reason=\"{kind}\"}} 1");
        assert!(proxy.metrics_show(&line).await);
        proxy.running.shutdown().await;
    }
    refapp.shutdown().await;
}

/// The application's 429 pauses the route for its `Retry-After`, in seconds or as an
/// HTTP-date: what comes next waits until then, then goes.
#[tokio::test]
async fn an_applications_429_pauses_the_route_for_its_retry_after() {
    let (refapp, _) = refapp::start().await;
    // An HTTP-date four seconds on, made as the route's proxy starts: whole seconds, read
    // against the wall clock, leave a pause of two seconds at least.
    let http_date = || {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        time::OffsetDateTime::from_unix_timestamp(now + 4)
            .unwrap()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap()
            .replace("+0000", "GMT")
    };
    for form in ["seconds", "date"] {
        let retry_after = match form {
            "seconds" => "2".to_owned(),
            _ => http_date(),
        };
        let shortest = 1950;
        let upstream = limited::start(refapp.base_url(), Limit::RefuseFirst(Some(retry_after.clone()))).await;
        let proxy = paced(&upstream, "timeout_secs = 5\n", "max_in_flight = 4\n", "").await;
        let refused = proxy.client.post("/Users", &user(&format!("refused-{form}"))).await;
        assert_eq!(
            refused.status,
            StatusCode::TOO_MANY_REQUESTS,
            "the application's own 429"
        );
        assert!(refused.header("scimtrail-error").is_none());
        assert!(
            proxy
                .metrics_show("scimtrail_pacing_pauses_total{route=\"app\"} 1")
                .await
        );
        let next = proxy.client.post("/Users", &user(&format!("next-{form}"))).await;
        assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
        let arrivals = upstream.arrivals();
        assert_eq!(arrivals.len(), 2);
        let gap = (arrivals[1].0 - arrivals[0].0).as_millis();
        assert!(
            gap >= shortest,
            "Retry-After {retry_after:?}: the next arrived {gap} ms after"
        );
        let waited = recorded(&proxy, &next).await.paced_ms().unwrap();
        assert!(waited >= 1500, "Retry-After {retry_after:?}: it waited {waited} ms");
        proxy.running.shutdown().await;
    }
    refapp.shutdown().await;
}

/// A request whose client goes away while it waits in the queue is never sent; its exchange
/// still ends recorded.
#[tokio::test]
async fn a_queued_request_whose_client_leaves_is_not_sent() {
    let (refapp, _) = refapp::start().await;
    let upstream = limited::start(refapp.base_url(), Limit::PerSecond(100)).await;
    let proxy = paced(&upstream, "", "max_requests_per_second = 1\n", "").await;
    let first = proxy.client.post("/Users", &user("stays")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let body = user("leaves").to_string();
    let mut leaving = TcpStream::connect(proxy.running.proxy_addr).await.unwrap();
    let request = format!(
        "POST /Users HTTP/1.1\r\nhost: p\r\ncontent-type: application/scim+json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    leaving.write_all(request.as_bytes()).await.unwrap();
    assert!(
        proxy
            .metrics_show("scimtrail_pacing_queue_depth{route=\"app\"} 1")
            .await
    );
    drop(leaving);
    assert!(
        proxy
            .metrics_show("scimtrail_pacing_queue_depth{route=\"app\"} 0")
            .await
    );
    assert!(
        proxy
            .metrics_show("scimtrail_pacing_refused_total{route=\"app\",reason=\"client_gone\"} 1")
            .await
    );
    let left = proxy
        .completed_exchange("app", |e| e.begun.user_name.as_deref() == Some("leaves"))
        .await
        .expect("the request that was left is recorded");
    assert_eq!((left.outcome(), left.status()), ("rejected", Some(499)));
    assert!(left.forwarded_headers().is_none(), "it was not sent");
    assert!(left.paced_ms().is_some());
    assert!(left.error().unwrap().contains("pacing queue"));
    // Past the second its turn would have come, the application has seen only the first;
    // the next request goes as the rate allows.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(upstream.arrivals().len(), 1);
    let after = proxy.client.post("/Users", &user("after")).await;
    assert_eq!(after.status, StatusCode::CREATED);
    let created = proxy.client.get("/Users?filter=userName%20eq%20%22leaves%22").await;
    assert_eq!(created.body["totalResults"], 0, "{}", created.body);
    proxy.running.shutdown().await;
    refapp.shutdown().await;
}

/// A route without pacing records no wait.
#[tokio::test]
async fn an_unpaced_route_records_no_wait() {
    let (refapp, _) = refapp::start().await;
    let proxy = start(&route_for("generic", &refapp.base_url(), ""), &sqlite_store().await).await;
    let created = proxy.client.post("/Users", &user("plain")).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(recorded(&proxy, &created).await.paced_ms(), None);
    let metrics = proxy.metrics().await;
    assert!(!metrics.contains("scimtrail_pacing_queue_depth{"), "{metrics}");
    proxy.running.shutdown().await;
    refapp.shutdown().await;
}
