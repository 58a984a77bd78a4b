//! What the store does with what a peer sends, through the real listener on both backends.

use http::StatusCode;
use scimtrail_integration::postgres_cluster::Cluster;
use scimtrail_integration::proxy::{fresh_store_urls, single_route, start, TestProxy};
use scimtrail_integration::refapp;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
        let with_nul = recorded.iter().filter(|e| {
            e.begun
                .user_name
                .as_deref()
                .is_some_and(|u| u.starts_with("a\u{FFFD}b-"))
        });
        assert_eq!(with_nul.count(), 2, "{store_url}");
        assert!(
            recorded
                .iter()
                .filter(|e| e
                    .begun
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
            assert_eq!(record.begun.client.as_deref(), Some("127.0.0.1"), "{store_url}");
            let kept = record.begun.request_headers.to_string().len();
            assert!(kept < 5 * 1024, "{store_url}: {kept} bytes of headers kept");
            assert!(
                record.begun.request_headers.to_string().contains("scimtrail-not-kept"),
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
            metrics = proxy.metrics().await;
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
        // Audited as the instance's own action, with what it deleted; the rounds that
        // deleted nothing (one a second here) are not.
        let audit = proxy.admin.get("/api/v1/audit?action=prune").await;
        let entries = audit.body["items"].as_array().unwrap().clone();
        assert!(!entries.is_empty(), "{store_url}: {}", audit.body);
        let mut pruned = 0;
        for entry in &entries {
            assert_eq!(entry["actor"], "scimtrail", "{store_url}: {entry}");
            assert!(
                entry["origin"].as_str().unwrap().contains("prune_every"),
                "{store_url}: {entry}"
            );
            let deleted = entry["detail"]["exchanges"].as_object().unwrap();
            assert!(!deleted.is_empty(), "{store_url}: an empty round audited: {entry}");
            pruned += deleted.values().map(|n| n.as_u64().unwrap()).sum::<u64>();
        }
        assert_eq!(pruned, 5, "{store_url}: {entries:?}");
    }
}

/// PostgreSQL stops under load and comes back (a restart, a failover), with
/// `on_store_failure = "spool"`: the proxy keeps answering and stays ready (degraded), and
/// once PostgreSQL is back every acknowledged exchange is in it, exactly once, and the
/// application holds each user once. A cluster of the test's own, not the shared one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopping_under_load_loses_nothing_with_a_spool() {
    let Some(cluster) = Cluster::start() else {
        eprintln!("SKIPPED: postgres_stopping_under_load_loses_nothing_with_a_spool needs Debian's PostgreSQL binaries and permission to run them as postgres");
        return;
    };
    let spool = std::env::temp_dir().join(format!("scimtrail-spool-{}", uuid::Uuid::new_v4()));
    let (app, app_client) = refapp::start().await;
    let config = format!(
        "[record]\non_store_failure = \"spool\"\nspool_dir = \"{}\"\n{}",
        spool.display(),
        single_route(&app.base_url(), "")
    );
    let proxy = start(&config, &cluster.url()).await;

    let load = Load::start(&proxy);
    wait(700).await;
    let spooled = a_stopped_postgres_leaves_the_proxy_ready_and_spooling(&proxy, &cluster).await;
    an_erasure_is_refused_while_records_are_spooled(&proxy).await;
    assert!(cluster.up(), "the test's PostgreSQL starts again");
    the_spool_drains_into_postgres_under_load(&proxy).await;
    wait(500).await;
    let answers = load.stop().await;

    let acknowledged = every_acknowledged_exchange_is_recorded_once(&proxy, answers).await;
    let users = app_client.get("/Users?count=1").await.body["totalResults"]
        .as_u64()
        .unwrap();
    assert_eq!(users as usize, acknowledged, "the application holds each user once");
    eprintln!(
        "outage: {acknowledged} acknowledged, {spooled} spooled while PostgreSQL was away, all in PostgreSQL after"
    );
    proxy.store.close().await;
}

/// Sleeps `ms` milliseconds.
async fn wait(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// A request's answer under [`Load`]: its status, and the exchange id it carried.
type Answer = (StatusCode, Option<String>);

/// Clients creating users through a proxy until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    clients: tokio::task::JoinSet<Vec<Answer>>,
}

impl Load {
    /// Four clients start creating users, each keeping every answer it gets.
    fn start(proxy: &TestProxy) -> Load {
        // Load: four clients creating users until told to stop; every answer is kept.
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = tokio::task::JoinSet::new();
        for client_n in 0..4 {
            let (client, stop) = (proxy.client.clone(), Arc::clone(&stop));
            clients.spawn(async move {
                let mut answers = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let user = json!({"schemas": [USER], "userName": format!("load-{client_n}-{n}")});
                    let response = client.post("/Users", &user).await;
                    answers.push((
                        response.status,
                        response.header("scimtrail-exchange-id").map(str::to_owned),
                    ));
                    n += 1;
                }
                answers
            });
        }
        Load { stop, clients }
    }

    /// The clients stopped: every answer each of them got.
    async fn stop(mut self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Release);
        let mut answers = Vec::new();
        while let Some(done) = self.clients.join_next().await {
            answers.extend(done.expect("a load task"));
        }
        answers
    }
}

/// With the cluster stopped, the proxy stays ready (degraded: spooling) and acknowledges
/// exchanges into its spool; how many it holds.
async fn a_stopped_postgres_leaves_the_proxy_ready_and_spooling(proxy: &TestProxy, cluster: &Cluster) -> u64 {
    assert!(cluster.down(), "the test's PostgreSQL stops");
    let mut degraded = json!(null);
    for _ in 0..50 {
        degraded = proxy.admin.get("/readyz").await.body;
        if degraded["degraded"] == "spooling" {
            break;
        }
        wait(100).await;
    }
    assert_eq!(degraded["degraded"], "spooling", "{degraded}");
    assert_eq!(degraded["ready"], true, "{degraded}");
    let readyz = proxy.admin.get("/readyz").await;
    assert_eq!(readyz.status, StatusCode::OK);
    wait(1500).await;
    let spooled = proxy.admin.get("/readyz").await.body["spooled_records"]
        .as_u64()
        .unwrap_or(0);
    assert!(spooled > 0, "exchanges were acknowledged while PostgreSQL was away");
    spooled
}

/// While records are spooled, an erasure is refused, naming the spool.
async fn an_erasure_is_refused_while_records_are_spooled(proxy: &TestProxy) {
    // An erasure now would miss what the spool holds, which drained later would write the
    // person back: refused.
    let erasure = scimtrail_store::Erasure {
        user: Some("load-0-0".into()),
        ..Default::default()
    };
    match proxy.store.erase(&erasure, false).await {
        Err(scimtrail_store::StoreError::Refused(why)) => assert!(why.contains("spool"), "{why}"),
        other => panic!("an erasure while records are spooled: {other:?}"),
    }
}

/// With PostgreSQL back, the spool drains into it (within two minutes) while the load goes on.
async fn the_spool_drains_into_postgres_under_load(proxy: &TestProxy) {
    // A backlog drains while the load goes on (each write drains a chunk before its own).
    for _ in 0..1200 {
        if proxy.store.spooling().is_none() {
            break;
        }
        wait(100).await;
    }
    assert_eq!(proxy.store.spooling(), None, "the spool drained into PostgreSQL");
}

/// Every request was served, each with an exchange id of its own, and the store holds
/// exactly the acknowledged exchanges, each once and ok; how many were acknowledged.
async fn every_acknowledged_exchange_is_recorded_once(proxy: &TestProxy, answers: Vec<Answer>) -> usize {
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != StatusCode::CREATED)
        .collect();
    assert!(refused.is_empty(), "every request was served: {refused:?}");
    let mut ids: Vec<String> = answers.into_iter().filter_map(|(_, id)| id).collect();
    let acknowledged = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), acknowledged);
    let mut recorded = 0;
    let mut cursor = None;
    loop {
        let page = proxy
            .store
            .list(&scimtrail_store::ExchangeQuery {
                route: Some("app".into()),
                limit: 1000,
                cursor,
                ..Default::default()
            })
            .await
            .expect("the store lists");
        for exchange in &page.items {
            assert_eq!(exchange.outcome(), "ok", "{exchange:?}");
            assert!(
                ids.binary_search(&exchange.begun.id).is_ok(),
                "{} was not acknowledged",
                exchange.begun.id
            );
        }
        recorded += page.items.len();
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        recorded, acknowledged,
        "every acknowledged exchange is in PostgreSQL, once"
    );
    acknowledged
}

/// A small file system of the test's own (tmpfs), unmounted when dropped; `None` when this
/// process may not mount one.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!("scimtrail-small-disk-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .output()
            .ok()?
            .status
            .success();
        mounted.then_some(SmallDisk(dir))
    }

    /// Gives the file system room again, as an operator freeing space would.
    fn grow(&self, bytes: u64) -> bool {
        std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|status| status.success())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Creates users until the proxy refuses one with 503 (at most 200): the ids of those it
/// acknowledged, and the refusal.
async fn post_until_refused(
    client: &scimtrail_integration::Client,
    user: impl Fn(usize) -> serde_json::Value,
) -> (Vec<String>, Option<scimtrail_integration::TestResponse>) {
    let mut acknowledged = Vec::new();
    for n in 0..200 {
        let response = client.post("/Users", &user(n)).await;
        if response.status == StatusCode::SERVICE_UNAVAILABLE {
            return (acknowledged, Some(response));
        }
        assert_eq!(response.status, StatusCode::CREATED, "request {n}: {:?}", response.body);
        acknowledged.push(response.header("scimtrail-exchange-id").expect("an id").to_owned());
    }
    (acknowledged, None)
}

/// The store's disk fills up: exchanges are refused (503, nothing forwarded unrecorded)
/// rather than lost, and once there is room again the proxy records and serves by itself,
/// without a restart; every exchange it acknowledged is in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_fails_closed_and_recovers_by_itself_when_space_comes_back() {
    let Some(disk) = SmallDisk::mount(3 << 20) else {
        eprintln!("SKIPPED: a_full_disk_fails_closed_and_recovers_by_itself_when_space_comes_back needs permission to mount a tmpfs");
        return;
    };
    let (app, _) = refapp::start().await;
    let store_url = format!("sqlite://{}", disk.0.join("store.db").display());
    let proxy = start(&single_route(&app.base_url(), ""), &store_url).await;
    let big =
        |n: usize| json!({"schemas": [USER], "userName": format!("big-{n}"), "displayName": incompressible(60_000)});
    let (mut acknowledged, refused) = post_until_refused(&proxy.client, big).await;
    let refused = refused.expect("the disk filled up and the proxy failed closed");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("could not be recorded")),
        "{:?}",
        refused.body
    );
    assert!(!acknowledged.is_empty());

    assert!(disk.grow(64 << 20), "the disk is given room");
    let mut recovered = false;
    for n in 200..600 {
        let response = proxy.client.post("/Users", &big(n)).await;
        if response.status == StatusCode::CREATED {
            acknowledged.push(response.header("scimtrail-exchange-id").expect("an id").to_owned());
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the proxy records and serves again by itself");
    for id in &acknowledged {
        let exchange = proxy.store.get(id).await.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(exchange.outcome(), "ok", "{id}");
    }
    proxy.store.close().await;
}

/// PostgreSQL refuses one exchange's in-flight record (a constraint, here a trigger): that
/// exchange alone is refused with 503 before anything is forwarded, and counted; the others
/// of its batch go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_flight_record_the_store_refuses_fails_its_exchange_alone_before_forwarding() {
    if std::env::var("SCIMTRAIL_TEST_POSTGRES_URL").is_err() {
        eprintln!("SKIPPED: an_in_flight_record_the_store_refuses_fails_its_exchange_alone_before_forwarding needs SCIMTRAIL_TEST_POSTGRES_URL");
        return;
    }
    let store_url = fresh_store_urls().await.pop().expect("a PostgreSQL store");
    let (app, app_client) = refapp::start().await;
    let proxy = start(&single_route(&app.base_url(), ""), &store_url).await;
    {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&store_url).await.expect("connects");
        sqlx::query(
            "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN \
             IF NEW.user_name = 'refused-by-store' THEN RAISE EXCEPTION 'a test trigger refuses this row' USING ERRCODE = '23514'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        .execute(&mut db)
        .await
        .expect("a function");
        sqlx::query("CREATE TRIGGER refuse_one BEFORE INSERT ON exchanges FOR EACH ROW EXECUTE FUNCTION refuse_one()")
            .execute(&mut db)
            .await
            .expect("a trigger");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..30 {
        let client = proxy.client.clone();
        tasks.spawn(async move {
            let name = if n == 15 {
                "refused-by-store".to_owned()
            } else {
                format!("kept-{n}")
            };
            (
                name.clone(),
                client
                    .post("/Users", &json!({"schemas": [USER], "userName": name}))
                    .await
                    .status,
            )
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (name, status) = done.expect("a request");
        let expected = if name == "refused-by-store" {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::CREATED
        };
        assert_eq!(status, expected, "{name}");
    }
    let found = app_client
        .get("/Users?filter=userName%20eq%20%22refused-by-store%22")
        .await
        .body;
    assert_eq!(found["totalResults"], 0, "nothing was forwarded for the refused record");
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("scimtrail_records_isolated_total{result=\"refused\"}"),
        "{metrics}"
    );
}

/// The spool's own disk fills while PostgreSQL is away: exchanges are refused (503) rather
/// than acknowledged unrecorded, and once there is room the spool takes records again; when
/// PostgreSQL is back, every acknowledged exchange is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_spool_disk_fails_closed_and_recovers_when_space_comes_back() {
    let (Some(cluster), Some(disk)) = (
        scimtrail_integration::postgres_cluster::Cluster::start(),
        SmallDisk::mount(2 << 20),
    ) else {
        eprintln!("SKIPPED: a_full_spool_disk_fails_closed_and_recovers_when_space_comes_back needs PostgreSQL's binaries and permission to mount a tmpfs");
        return;
    };
    let (app, _) = refapp::start().await;
    let config = format!(
        "[record]\non_store_failure = \"spool\"\nspool_dir = \"{}\"\n{}",
        disk.0.join("spool").display(),
        single_route(&app.base_url(), "")
    );
    let proxy = start(&config, &cluster.url()).await;
    assert!(cluster.down());
    let big = |n: usize| json!({"schemas": [USER], "userName": format!("spooled-{n}"), "displayName": incompressible(50_000)});
    let (mut acknowledged, _) = post_until_refused(&proxy.client, big).await;
    assert!(
        !acknowledged.is_empty(),
        "the spool took records before its disk filled"
    );
    assert!(disk.grow(64 << 20));
    let response = proxy.client.post("/Users", &big(1000)).await;
    assert_eq!(response.status, StatusCode::CREATED, "the spool takes records again");
    acknowledged.push(response.header("scimtrail-exchange-id").expect("an id").to_owned());
    assert!(cluster.up());
    for _ in 0..600 {
        if proxy.store.spooling().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(proxy.store.spooling(), None, "drained");
    for id in &acknowledged {
        assert_eq!(
            proxy
                .store
                .get(id)
                .await
                .unwrap_or_else(|e| panic!("{id}: {e}"))
                .outcome(),
            "ok"
        );
    }
    proxy.store.close().await;
}
