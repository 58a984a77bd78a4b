//! What the store does with what a peer sends, through the real listener on both backends.

use http::StatusCode;
use scimtrail_integration::proxy::{fresh_store_urls, single_route, start};
use scimtrail_integration::refapp;
use serde_json::json;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// Random hex, which PostgreSQL cannot compress into an index entry.
fn incompressible(bytes: usize) -> String {
    let mut text = String::new();
    while text.len() < bytes {
        text.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    text.truncate(bytes);
    text
}

/// The probes that failed PostgreSQL's group commit — a NUL in a userName (the filter that
/// carried one is refused as a filter now, so a body carries it), a userName and a resource
/// id past an index entry's 2.7 KB — sent among good requests at once: 9 bad
/// among 81 good made 32 good ones 503. Now no request is refused for another's record, and
/// every one is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_with_a_nul_or_an_oversized_value_fails_no_other_exchange() {
    for store_url in fresh_store_urls().await {
        let (app, _) = refapp::start().await;
        let proxy = start(&single_route(&app.base_url(), ""), &store_url).await;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..90 {
            let client = proxy.client.clone();
            tasks.spawn(async move {
                let response = match (n % 10, n % 30) {
                    (9, 9) if n == 9 => client.get("/Users?filter=userName%20eq%20%22a%00b%22").await,
                    (9, 9) => {
                        let user = json!({"schemas": [USER], "userName": format!("a\u{0}b-{n}")});
                        client.post("/Users", &user).await
                    }
                    (9, 19) => {
                        let user = json!({"schemas": [USER], "userName": incompressible(3000)});
                        client.post("/Users", &user).await
                    }
                    (9, _) => client.get(&format!("/Users/{}", incompressible(3000))).await,
                    _ => {
                        let user = json!({"schemas": [USER], "userName": format!("good-{n}")});
                        client.post("/Users", &user).await
                    }
                };
                (n, response)
            });
        }
        let mut ids = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (n, response) = done.expect("the request task");
            assert_ne!(
                response.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{store_url}: request {n}: {:?}",
                response.body
            );
            if n % 10 != 9 {
                assert_eq!(
                    response.status,
                    StatusCode::CREATED,
                    "{store_url}: request {n}: {:?}",
                    response.body
                );
            }
            ids.push(
                response
                    .header("scimtrail-exchange-id")
                    .expect("an exchange id")
                    .to_owned(),
            );
        }
        for id in ids {
            proxy
                .store
                .get(&id)
                .await
                .unwrap_or_else(|e| panic!("{store_url}: {id} is recorded: {e}"));
        }
        // The NUL is stored as U+FFFD, the long values cut with a marker.
        let recorded = proxy.exchanges_of("app").await;
        assert_eq!(recorded.len(), 90, "{store_url}");
        let with_nul = recorded
            .iter()
            .filter(|e| e.user_name.as_deref().is_some_and(|u| u.starts_with("a\u{FFFD}b-")));
        assert_eq!(with_nul.count(), 2, "{store_url}");
        assert!(
            recorded
                .iter()
                .filter(|e| e
                    .user_name
                    .as_deref()
                    .is_some_and(|u| u.contains("…[cut from 3000 bytes]")))
                .count()
                == 3,
            "{store_url}"
        );
    }
}

/// A stranger's flood of refused requests, each with ~270 KB of headers: 20 of those grew the
/// store by 19 MB. Now each record keeps at most 4 KiB of headers, and identical refusals
/// within a second are counted into one record.
#[tokio::test]
async fn a_flood_of_refusals_is_recorded_bounded_and_counted_into_few_records() {
    for store_url in fresh_store_urls().await {
        let (app, _) = refapp::start().await;
        let proxy =
            scimtrail_integration::proxy::start_with(&single_route(&app.base_url(), ""), &store_url, |settings| {
                settings.proxy.routes[0].idp_token = Some(scimtrail_proxy::Secret::new("the-token"));
            })
            .await;
        let padding: String = (0..90)
            .map(|n| format!("x-pad-{n}: {}\r\n", "p".repeat(3000)))
            .collect();
        let started = std::time::Instant::now();
        let mut named = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let request = format!(
                "GET /Users HTTP/1.1\r\nhost: scimtrail\r\nauthorization: Bearer wrong\r\n{padding}connection: close\r\n\r\n"
            );
            let refused = scimtrail_integration::raw::send(proxy.running.proxy_addr, request.as_bytes()).await;
            assert_eq!(refused.status, 401, "{store_url}");
            named.insert(
                refused
                    .header("scimtrail-exchange-id")
                    .expect("an exchange id")
                    .to_owned(),
            );
        }
        let seconds = started.elapsed().as_secs() + 1;
        // Counted once each window has closed.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let records = proxy.exchanges_of("app").await;
        assert!(
            records.len() as u64 <= seconds + 1,
            "{store_url}: {} records in {seconds} s",
            records.len()
        );
        assert_eq!(
            records.len(),
            named.len(),
            "{store_url}: each response names its record"
        );
        assert_eq!(
            records.iter().map(|e| e.repeat_count).sum::<i64>(),
            40,
            "{store_url}: every refusal counted"
        );
        for record in &records {
            assert_eq!(record.client.as_deref(), Some("127.0.0.1"), "{store_url}");
            let kept = record.request_headers.to_string().len();
            assert!(kept < 5 * 1024, "{store_url}: {kept} bytes of headers kept");
            assert!(
                record.request_headers.to_string().contains("scimtrail-not-kept"),
                "{store_url}"
            );
        }
    }
}

/// `serve` prunes on its own, by `[retention]`, and says so in `/metrics`.
#[tokio::test]
async fn a_serving_proxy_prunes_by_its_retention_policy_and_reports_the_store() {
    for store_url in fresh_store_urls().await {
        let (app, _) = refapp::start().await;
        let config = format!(
            "[retention]\nok = \"1s\"\nprune_every = \"1s\"\n{}",
            single_route(&app.base_url(), "")
        );
        let proxy = start(&config, &store_url).await;
        for n in 0..5 {
            let user = json!({"schemas": [USER], "userName": format!("pruned-{n}")});
            assert_eq!(proxy.client.post("/Users", &user).await.status, StatusCode::CREATED);
        }
        let mut metrics = String::new();
        for _ in 0..100 {
            metrics = proxy
                .admin
                .get("/metrics")
                .await
                .bytes
                .iter()
                .map(|b| *b as char)
                .collect();
            if metrics.contains("scimtrail_store_pruned_total{outcome=\"ok\"} 5")
                && proxy.exchanges_of("app").await.is_empty()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(proxy.exchanges_of("app").await.is_empty(), "{store_url}: pruned");
        assert!(
            metrics.contains("scimtrail_store_pruned_total{outcome=\"ok\"} 5"),
            "{store_url}: {metrics}"
        );
        for gauge in [
            "scimtrail_store_bytes ",
            "scimtrail_store_exchanges ",
            "scimtrail_store_oldest_exchange_age_seconds ",
        ] {
            assert!(metrics.contains(gauge), "{store_url}: {gauge}");
        }
    }
}
