//! The `scimtrail` binary as an operator runs it: `serve` killed with SIGKILL under concurrent
//! load loses no acknowledged exchange, and `exchanges list` shows what it recorded.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use http::Method;
use scimtrail_integration::proxy::fresh_store_urls;
use scimtrail_integration::{refapp, Client};
use scimtrail_store::{ExchangeQuery, Store};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

const BINARY: &str = env!("CARGO_BIN_EXE_scimtrail");

/// Starts `scimtrail serve --upstream …` on a free port and returns it with its address.
/// `config` names an optional configuration file.
async fn serve(upstream: &str, store_url: &str, config: Option<&str>) -> (Child, String) {
    let mut args = vec!["serve", "--upstream", upstream, "--store", store_url];
    args.extend(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    if let Some(config) = config {
        args.extend(["--config", config]);
    }
    let mut child = Command::new(BINARY)
        .args(args)
        .env("SCIMTRAIL_LOG", "warn")
        .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("scimtrail serve starts");
    let addr = scimtrail_integration::process::proxy_address(&mut child).await;
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_under_load_loses_no_acknowledged_exchange() {
    // Every durability level on every store: `power` (the default: synced before the
    // exchange goes on) and `process` (written by then, synced within 10 ms), which promises
    // exactly this too: a killed process loses nothing it acknowledged. SQLite always,
    // PostgreSQL when SCIMTRAIL_TEST_POSTGRES_URL names one (`process` is
    // `synchronous_commit = off` there).
    let process = std::env::temp_dir().join(format!("scimtrail-process-{}.toml", std::process::id()));
    std::fs::write(&process, "[record]\ndurability = \"process\"\n").unwrap();
    let process = process.display().to_string();
    let mut cases: Vec<(String, Option<&str>)> = fresh_store_urls().await.into_iter().map(|url| (url, None)).collect();
    cases.extend(
        fresh_store_urls()
            .await
            .into_iter()
            .map(|url| (url, Some(process.as_str()))),
    );
    for (store_url, config) in cases {
        let (app, _) = refapp::start().await;
        let (child, addr) = serve(&app.base_url(), &store_url, config).await;
        let load = Load::start(Client::new(format!("http://{addr}")));
        let acknowledged = kill_under_load(child, load).await;
        let killed = in_flight_when_killed(&store_url, acknowledged).await;
        a_restart_interrupts_what_was_in_flight(&app.base_url(), &store_url, config, &killed).await;
        exchanges_list_and_show_what_serve_recorded(&store_url, &killed.acknowledged[0]);
        app.shutdown().await;
    }
}

/// Exchanges left in flight: what a restart must find interrupted.
fn in_flight_query() -> ExchangeQuery {
    ExchangeQuery {
        outcome: Some("in_flight".into()),
        limit: 1000,
        ..ExchangeQuery::default()
    }
}

/// Sixteen workers creating users through `scimtrail serve`, each acknowledged exchange's id
/// kept, until told to stop.
struct Load {
    acknowledged: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// The load is running through `client`.
    fn start(client: Client) -> Load {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for worker in 0..16 {
            let (client, acknowledged, stop) = (client.clone(), Arc::clone(&acknowledged), Arc::clone(&stop));
            workers.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("w{worker}-{n}")});
                    match client.try_send(Method::POST, "/Users", Some(&body)).await {
                        Ok(response) if response.status.is_success() => {
                            let id = response.header("scimtrail-exchange-id").expect("exchange id").to_owned();
                            acknowledged.lock().unwrap().push(id);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }));
        }
        Load {
            acknowledged,
            stop,
            workers,
        }
    }
}

/// `serve` was killed with SIGKILL under `load`, which then stopped; the exchanges it had
/// acknowledged (at least 20).
async fn kill_under_load(mut child: Child, load: Load) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(800)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    load.stop.store(true, Ordering::Relaxed);
    for worker in load.workers {
        worker.await.unwrap();
    }
    let acknowledged = load.acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 20,
        "the load ran: {} acknowledged",
        acknowledged.len()
    );
    acknowledged
}

/// What a killed `serve` left in its store.
struct Killed {
    store: Store,
    /// The exchanges it acknowledged.
    acknowledged: Vec<String>,
    /// The exchanges it left in flight.
    in_flight: Vec<String>,
}

/// The exchanges the killed process left in flight for good, beside those it acknowledged.
async fn in_flight_when_killed(store_url: &str, acknowledged: Vec<String>) -> Killed {
    // A PostgreSQL server may still be committing what the killed process sent just
    // before it died: let it settle, so that "in flight" below means in flight for good.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let store = Store::connect(store_url).await.unwrap();
    let in_flight: Vec<String> = store
        .list(&in_flight_query())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.begun.id)
        .collect();
    Killed {
        store,
        acknowledged,
        in_flight,
    }
}

/// After a restart, every acknowledged exchange is recorded ok and nothing is left in flight.
async fn a_restart_interrupts_what_was_in_flight(
    upstream: &str,
    store_url: &str,
    config: Option<&str>,
    killed: &Killed,
) {
    let Killed {
        store,
        acknowledged,
        in_flight,
    } = killed;
    // Restart on the same store: the exchanges that were in flight become interrupted.
    let (mut restarted, _) = serve(upstream, store_url, config).await;
    for id in acknowledged {
        let exchange = store
            .get(id)
            .await
            .unwrap_or_else(|_| panic!("acknowledged exchange {id} has no record ({store_url})"));
        assert_eq!(exchange.outcome(), "ok", "{id}");
        assert_eq!(exchange.status(), Some(201));
    }
    for id in in_flight {
        assert_eq!(store.get(id).await.unwrap().outcome(), "interrupted", "{id}");
    }
    assert!(
        store.list(&in_flight_query()).await.unwrap().items.is_empty(),
        "nothing is left in flight"
    );
    eprintln!(
        "{store_url} ({config:?}): {} acknowledged, {} interrupted",
        acknowledged.len(),
        in_flight.len()
    );
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}

/// `exchanges list` and `exchanges show` find what serve recorded.
fn exchanges_list_and_show_what_serve_recorded(store_url: &str, acknowledged: &str) {
    // What serve recorded, as `exchanges list` shows it.
    let listed = Command::new(BINARY)
        .args(["exchanges", "list", "--store", store_url, "--limit", "5"])
        .output()
        .expect("exchanges list runs");
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("POST") && text.contains("/Users") && text.contains("default/generic"),
        "{text}"
    );
    let shown = Command::new(BINARY)
        .args(["exchanges", "show", acknowledged, "--store", store_url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("== Request as received ==") && text.contains("== Response ==") && text.contains("outcome    ok"),
        "{text}"
    );
}
