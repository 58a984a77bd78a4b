//! Several `scimtrail serve` processes sharing one PostgreSQL store, as a deployment runs
//! them behind a load balancer: one killed under load loses nothing acknowledged, and only its
//! own exchanges in flight become `interrupted` (by the survivor, through heartbeats); a
//! replay asked of both at once runs once; shapes and alerts are not reported twice; each
//! instance's `/metrics` counts its own share. And a rolling restart of one instance behind a
//! front that polls `/readyz` refuses no request.
//!
//! PostgreSQL only (`SCIMTRAIL_TEST_POSTGRES_URL`): several instances share a store there.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use http::{Method, StatusCode};
use scimtrail_integration::{refapp, slow, webhook, Client};
use scimtrail_store::{ExchangeQuery, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;

const BINARY: &str = env!("CARGO_BIN_EXE_scimtrail");

/// A fresh PostgreSQL database, or `None` (the test then says it skipped).
async fn postgres_store(test: &str) -> Option<String> {
    let url = scimtrail_integration::proxy::fresh_store_urls()
        .await
        .into_iter()
        .find(|url| url.starts_with("postgres"));
    if url.is_none() {
        eprintln!(
            "{test}: SKIPPED: SCIMTRAIL_TEST_POSTGRES_URL is not set (several instances share a PostgreSQL store)"
        );
    }
    url
}

/// One `scimtrail serve` process.
struct Instance {
    name: &'static str,
    child: Child,
    proxy: Client,
    admin: Client,
    admin_addr: String,
}

impl Instance {
    async fn start(name: &'static str, config: &str, store_url: &str) -> Instance {
        let mut child = Command::new(BINARY)
            .args(["serve", "--config", config, "--store", store_url])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("SCIMTRAIL_INSTANCE", name)
            .env("SCIMTRAIL_LOG_LEVEL", "warn")
            .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("scimtrail serve starts");
        let (proxy, admin) = scimtrail_integration::process::addresses(&mut child).await;
        Instance {
            name,
            child,
            proxy: Client::new(format!("http://{proxy}")),
            admin: Client::new(format!("http://{admin}")),
            admin_addr: admin,
        }
    }

    /// SIGKILL: no drain, no clean stop.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the process ends");
    }

    /// SIGTERM, and the exit status once it has drained.
    fn terminate(mut self) -> std::process::ExitStatus {
        scimtrail_integration::process::signal(&self.child, "TERM");
        self.child.wait().expect("the process ends")
    }

    /// The value of an unlabelled counter, or the sum of a labelled one's series.
    async fn metric(&self, name: &str) -> f64 {
        let text = self.admin.get("/metrics").await;
        String::from_utf8_lossy(&text.bytes)
            .lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .filter(|line| line[name.len()..].starts_with([' ', '{']))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// A test that fails leaves no process behind.
impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(test: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("scimtrail-{test}-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Every exchange `query` selects, all pages.
async fn every(store: &Store, mut query: ExchangeQuery) -> Vec<scimtrail_store::Exchange> {
    query.limit = 1000;
    let mut all = Vec::new();
    loop {
        let page = store.list(&query).await.unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return all,
        }
    }
}

/// One route to `app`, heartbeats every second (dead after three), `listen` under `[listen]`.
fn one_route_config(test: &str, listen: &str, app: &str) -> String {
    write_config(
        test,
        &format!(
            "[listen]\n{listen}\n[store]\nheartbeat_secs = 1\ninstance_dead_after_secs = 3\n[[route]]\nname = \"app\"\nupstream = \"{app}\"\n"
        ),
    )
}

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_store_and_a_killed_one_is_reaped_by_the_survivor() {
    let test = "two_instances";
    let Some(store_url) = postgres_store(test).await else {
        return;
    };
    let (app, _) = refapp::start().await;
    let hook = webhook::start(0).await;
    let silent = slow::silent().await;
    // The "down" route's application is not there yet: its writes fail unreachable, and
    // replay finds it started (below).
    let late = slow::closed().await;
    let config = three_routes_config(test, &app.base_url(), &hook.url, late, silent);
    let alpha = Instance::start("alpha", &config, &store_url).await;
    let beta = Instance::start("beta", &config, &store_url).await;
    let store = Store::connect(&store_url).await.unwrap();

    let _late_app = a_write_fails_through_each_then_the_late_app_starts(&alpha, &beta, late).await;
    let load = RoundRobinLoad::start([alpha.proxy.clone(), beta.proxy.clone()]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    a_replay_asked_of_both_sends_each_failure_once(&alpha, &beta).await;
    let beta_counted = kill_beta_with_a_deprovision_in_flight(beta).await;
    alpha_reaps_beta(&store).await;
    let acknowledged = load.stop().await;
    // Alpha's own exchanges in flight finish; none of them was touched.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let per_instance = every_acknowledged_exchange_is_recorded_ok(&store, &acknowledged).await;
    let interrupted = only_betas_exchanges_were_interrupted(&store, &hook, &alpha).await;
    each_failure_was_replayed_once(&store).await;
    let drift = each_new_shape_is_reported_once(&store).await;
    each_instance_counts_its_own_share(&store, &alpha, beta_counted).await;
    the_operator_sees_alpha_live_and_beta_reaped(&store_url);

    let status = alpha.terminate();
    assert!(status.success(), "{status:?}");
    let alpha_record = store.instance("alpha").await.unwrap().unwrap();
    assert!(alpha_record.stopped_at_ms.is_some(), "a clean stop is written");
    eprintln!(
        "{test}: {} acknowledged (alpha {}, beta {}), {} interrupted, {} shapes",
        acknowledged.len(),
        per_instance[0],
        per_instance[1],
        interrupted.len(),
        drift.len()
    );
}

/// A configuration of three routes, "app" (to `app`, alerting `hook`, learning no shape
/// first), "down" (to `late`) and "stuck" (to `silent`, alerting `hook`), with heartbeats every
/// second (dead after three); its path.
fn three_routes_config(test: &str, app: &str, hook: &str, late: SocketAddr, silent: SocketAddr) -> String {
    write_config(
        test,
        &format!(
            r#"
[listen]
ready_grace_secs = 0
[store]
heartbeat_secs = 1
instance_dead_after_secs = 3

[[route]]
name = "app"
path_prefix = "/app"
upstream = "{app}"
shape_learning = 0
[route.webhook]
url = "{hook}"

[[route]]
name = "down"
path_prefix = "/down"
upstream = "http://{late}"

[[route]]
name = "stuck"
path_prefix = "/stuck"
upstream = "http://{silent}"
timeout_secs = 120
[route.webhook]
url = "{hook}"
"#
        ),
    )
}

/// A write to the "down" route failed through each instance; then its application started at
/// `late` (kept running while the returned handle lives).
async fn a_write_fails_through_each_then_the_late_app_starts(
    alpha: &Instance,
    beta: &Instance,
    late: SocketAddr,
) -> scimtrail_refapp::RunningRefApp {
    // Two failures to replay later, one through each instance.
    for instance in [alpha, beta] {
        let failed = instance
            .proxy
            .send(Method::POST, "/down/Users", Some(&user(instance.name)), &[])
            .await;
        assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{:?}", failed.body);
    }
    scimtrail_refapp::RefApp::bind(&late.to_string())
        .await
        .expect("the late application binds")
}

/// Eight workers writing (and now and then looking up) users through the instances in turn,
/// until stopped.
struct RoundRobinLoad {
    acknowledged: Arc<Mutex<Vec<(usize, String)>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl RoundRobinLoad {
    /// The load is running through `fronts`, in turn.
    fn start(fronts: [Client; 2]) -> RoundRobinLoad {
        // Load through a round-robin client: each acknowledged exchange with the instance that
        // acknowledged it.
        let acknowledged: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let turn = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for worker in 0..8 {
            let (fronts, acknowledged, stop, turn) = (
                fronts.clone(),
                Arc::clone(&acknowledged),
                Arc::clone(&stop),
                Arc::clone(&turn),
            );
            workers.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let which = turn.fetch_add(1, Ordering::Relaxed) % 2;
                    // Writes, and now and then a lookup of a shape that both instances meet.
                    let reply = if n % 5 == 0 {
                        let path = format!("/app/Users?filter=userName%20eq%20%22w{worker}-{}%22", n - 1);
                        fronts[which].try_send(Method::GET, &path, None).await
                    } else {
                        fronts[which]
                            .try_send(Method::POST, "/app/Users", Some(&user(&format!("w{worker}-{n}"))))
                            .await
                    };
                    match reply {
                        Ok(reply) if reply.status.is_success() => {
                            let id = reply.header("scimtrail-exchange-id").expect("exchange id").to_owned();
                            acknowledged.lock().unwrap().push((which, id));
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }));
        }
        RoundRobinLoad {
            acknowledged,
            stop,
            workers,
        }
    }

    /// The load has stopped; each exchange acknowledged, with the index of the front that
    /// acknowledged it.
    async fn stop(self) -> Vec<(usize, String)> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        acknowledged
    }
}

/// A replay asked of both instances at once ran once: each failure replayed, two sends in all.
async fn a_replay_asked_of_both_sends_each_failure_once(alpha: &Instance, beta: &Instance) {
    // A replay asked of both instances at once, while both serve: one runs it, the other is
    // told a run holds the lease. Each failure is replayed once.
    let ask = json!({"filter": {"route": "down"}});
    let (first, second) = tokio::join!(
        alpha.admin.send(Method::POST, "/api/v1/replays", Some(&ask), &[]),
        beta.admin.send(Method::POST, "/api/v1/replays", Some(&ask), &[]),
    );
    // Both may run in turn (the second then finds nothing left to replay) or one may find
    // the other's lease held (409): either way, two sends in all.
    let mut replayed = 0;
    for answer in [&first, &second] {
        match answer.status.as_u16() {
            200 => replayed += answer.body["summary"]["replayed"].as_u64().unwrap(),
            409 => assert!(answer.body["error"]
                .as_str()
                .unwrap()
                .contains("another replay run is in progress")),
            other => panic!("replay answered {other}: {:?}", answer.body),
        }
    }
    assert_eq!(replayed, 2, "{:?} / {:?}", first.body, second.body);
}

/// Beta was killed with a deprovision in flight, while the load went on; the exchanges its
/// `/metrics` counted before.
async fn kill_beta_with_a_deprovision_in_flight(beta: Instance) -> f64 {
    // A deprovision in flight on beta when it dies: the application never answers it.
    let stuck = {
        let beta_proxy = beta.proxy.clone();
        tokio::spawn(async move { beta_proxy.try_send(Method::DELETE, "/stuck/Users/leaver-1", None).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let beta_counted = beta.metric("scimtrail_exchanges_total").await;
    beta.kill();
    let _ = stuck.await;
    // Load goes on: the round robin's half that went to beta fails, alpha's succeeds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    beta_counted
}

/// Alpha has reaped beta: nothing of beta's is left in flight.
async fn alpha_reaps_beta(store: &Store) {
    // Alpha's heartbeat finds beta silent after 3 s and marks its exchanges interrupted.
    let in_flight = ExchangeQuery {
        outcome: Some("in_flight".into()),
        ..ExchangeQuery::default()
    };
    let mut reaped = false;
    for _ in 0..150 {
        let beta_record = store.instance("beta").await.unwrap().expect("beta's heartbeat");
        if beta_record.reaped_by.as_deref() == Some("alpha")
            && !every(store, in_flight.clone())
                .await
                .iter()
                .any(|e| e.begun.instance == "beta")
        {
            reaped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reaped, "alpha reaped beta within 15 s");
}

/// Every acknowledged exchange is recorded ok, under the instance that served it, and each
/// served at least 20; how many each served.
async fn every_acknowledged_exchange_is_recorded_ok(store: &Store, acknowledged: &[(usize, String)]) -> [usize; 2] {
    // Every acknowledged exchange of both is in the store, ok, under the instance that served it.
    let names = ["alpha", "beta"];
    let mut per_instance = [0usize; 2];
    for (which, id) in acknowledged {
        let exchange = store
            .get(id)
            .await
            .unwrap_or_else(|_| panic!("acknowledged {id} is recorded"));
        assert_eq!(exchange.outcome(), "ok", "{id}");
        assert_eq!(exchange.begun.instance, names[*which], "{id}");
        per_instance[*which] += 1;
    }
    assert!(
        per_instance[0] >= 20 && per_instance[1] >= 20,
        "both served: {per_instance:?}"
    );
    per_instance
}

/// Only beta's exchanges were interrupted, the deprovision among them alerted once, and alpha
/// counted what it reaped; the interrupted exchanges.
async fn only_betas_exchanges_were_interrupted(
    store: &Store,
    hook: &webhook::Receiver,
    alpha: &Instance,
) -> Vec<scimtrail_store::Exchange> {
    // Only beta's exchanges were interrupted; the deprovision among them is alerted once.
    let interrupted = every(
        store,
        ExchangeQuery {
            outcome: Some("interrupted".into()),
            ..ExchangeQuery::default()
        },
    )
    .await;
    assert!(!interrupted.is_empty(), "beta had exchanges in flight");
    assert!(
        interrupted.iter().all(|e| e.begun.instance == "beta"),
        "{interrupted:?}"
    );
    let leaver = interrupted
        .iter()
        .find(|e| e.begun.path.ends_with("/stuck/Users/leaver-1"))
        .expect("the deprovision in flight on beta is interrupted");
    let alerts = hook.accepted(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let about_leaver = hook
        .received()
        .iter()
        .filter(|alert| alert.text.contains(&leaver.begun.id))
        .count();
    assert_eq!(about_leaver, 1, "one alert for the interrupted deprovision: {alerts:?}");
    assert!(alpha.metric("scimtrail_reaped_exchanges_total").await >= 1.0);
    interrupted
}

/// Each of the two failures on the "down" route was replayed exactly once.
async fn each_failure_was_replayed_once(store: &Store) {
    // Each replayed failure was replayed once.
    let down = ExchangeQuery {
        route: Some("down".into()),
        ..ExchangeQuery::default()
    };
    let originals: Vec<_> = every(store, down)
        .await
        .into_iter()
        .filter(|e| e.begun.replay_of.is_none())
        .collect();
    assert_eq!(originals.len(), 2);
    for original in &originals {
        let replays = store.get(&original.begun.id).await.unwrap().replays;
        assert_eq!(replays.len(), 1, "{} replayed once: {replays:?}", original.begun.id);
    }
}

/// Shapes drifted, and each new shape was reported once though both instances met it; the
/// reports per shape.
async fn each_new_shape_is_reported_once(store: &Store) -> BTreeMap<String, usize> {
    // A new shape met by both instances is reported once.
    let mut drift: BTreeMap<String, usize> = BTreeMap::new();
    let drifted = ExchangeQuery {
        finding: Some("shape_drift".into()),
        ..ExchangeQuery::default()
    };
    for exchange in every(store, drifted).await {
        for finding in exchange.findings().as_array().into_iter().flatten() {
            if finding["kind"] == "shape_drift" {
                *drift.entry(finding["detail"].to_string()).or_default() += 1;
            }
        }
    }
    assert!(!drift.is_empty(), "the route learns nothing first (shape_learning = 0)");
    assert!(
        drift.values().all(|count| *count == 1),
        "each shape reported once: {drift:?}"
    );
    drift
}

/// Alpha's `/metrics` and `beta_counted` (beta's, before it died) each count no more than
/// their own instance recorded.
async fn each_instance_counts_its_own_share(store: &Store, alpha: &Instance, beta_counted: f64) {
    // Each instance's /metrics counts its own share (what it recorded, no more).
    let alpha_counted = alpha.metric("scimtrail_exchanges_total").await;
    let everything = every(store, ExchangeQuery::default()).await;
    let recorded_by = |name: &str| everything.iter().filter(|e| e.begun.instance == name).count() as f64;
    let alpha_recorded = recorded_by("alpha");
    assert!(
        alpha_counted > 0.0 && alpha_counted <= alpha_recorded,
        "alpha: {alpha_counted} counted, {alpha_recorded} recorded"
    );
    let beta_recorded = recorded_by("beta");
    assert!(
        beta_counted > 0.0 && beta_counted <= beta_recorded,
        "beta: {beta_counted} counted, {beta_recorded} recorded"
    );
    assert!(
        alpha_counted < alpha_recorded + beta_recorded,
        "alpha counts only its own"
    );
}

/// `scimtrail instances` lists alpha live and beta silent, refuses to reap alpha, and finds
/// nothing left of beta to reap.
fn the_operator_sees_alpha_live_and_beta_reaped(store_url: &str) {
    // The operator's view: alpha live, beta silent and reaped; a live instance is never reaped.
    let listed = Command::new(BINARY)
        .args([
            "instances",
            "list",
            "--store",
            store_url,
            "--dead-after-secs",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let states: HashMap<String, String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states.get("alpha").map(String::as_str), Some("live"), "{listed}");
    assert_eq!(states.get("beta").map(String::as_str), Some("silent"), "{listed}");
    let refused = Command::new(BINARY)
        .args([
            "instances",
            "reap",
            "alpha",
            "--store",
            store_url,
            "--dead-after-secs",
            "3",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is live"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let reaped_again = Command::new(BINARY)
        .args([
            "instances",
            "reap",
            "beta",
            "--store",
            store_url,
            "--dead-after-secs",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        reaped_again.status.success(),
        "{}",
        String::from_utf8_lossy(&reaped_again.stderr)
    );
    assert!(String::from_utf8_lossy(&reaped_again.stdout).contains("0 exchange(s)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_under_a_live_instance_name_refuses_to_start() {
    let test = "duplicate_name";
    let Some(store_url) = postgres_store(test).await else {
        return;
    };
    let (app, _) = refapp::start().await;
    let config = one_route_config(test, "ready_grace_secs = 0", &app.base_url());
    let first = Instance::start("twin", &config, &store_url).await;
    let second = Command::new(BINARY)
        .args(["serve", "--config", &config, "--store", &store_url])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("SCIMTRAIL_INSTANCE", "twin")
        .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY)
        .env("HOSTNAME", "another-host")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("instance name \"twin\" is held by a live process"),
        "{stderr}"
    );
    assert!(first.terminate().success());
}

/// A front like the compose file's load balancer: round robin over the instances whose
/// `/readyz` answered 200 at its last poll, no retries.
struct Front {
    members: RwLock<Vec<(String, Client, Client, bool)>>,
    turn: AtomicUsize,
}

impl Front {
    fn pick(&self) -> Option<Client> {
        let members = self.members.read().unwrap();
        let ready: Vec<&Client> = members.iter().filter(|m| m.3).map(|m| &m.1).collect();
        if ready.is_empty() {
            return None;
        }
        Some(ready[self.turn.fetch_add(1, Ordering::Relaxed) % ready.len()].clone())
    }

    async fn poll(&self) {
        let admins: Vec<(String, Client)> = self
            .members
            .read()
            .unwrap()
            .iter()
            .map(|m| (m.0.clone(), m.2.clone()))
            .collect();
        for (name, admin) in admins {
            let ready = matches!(admin.try_send(Method::GET, "/readyz", None).await, Ok(reply) if reply.status == StatusCode::OK);
            for member in self.members.write().unwrap().iter_mut().filter(|m| m.0 == name) {
                member.3 = ready;
            }
        }
    }

    fn replace(&self, instance: &Instance) {
        let mut members = self.members.write().unwrap();
        members.retain(|m| m.0 != instance.name);
        // A new member waits for its first good poll.
        members.push((
            instance.name.to_owned(),
            instance.proxy.clone(),
            instance.admin.clone(),
            false,
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_a_readiness_polling_front_refuses_no_request() {
    let test = "rolling_restart";
    let Some(store_url) = postgres_store(test).await else {
        return;
    };
    let (app, _) = refapp::start().await;
    let config = one_route_config(test, "ready_grace_secs = 2\ndrain_secs = 10", &app.base_url());
    let front = Arc::new(Front {
        members: RwLock::new(Vec::new()),
        turn: AtomicUsize::new(0),
    });
    let mut instances = vec![
        Instance::start("one", &config, &store_url).await,
        Instance::start("two", &config, &store_url).await,
    ];
    for instance in &instances {
        front.replace(instance);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (front, stop) = (Arc::clone(&front), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                front.poll().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let answers: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (front, stop, answers) = (Arc::clone(&front), Arc::clone(&stop), Arc::clone(&answers));
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let Some(client) = front.pick() else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                n += 1;
                // A write, sent once: SCIM writes are not retried.
                let answer = match client
                    .try_send(Method::POST, "/Users", Some(&user(&format!("r{worker}-{n}"))))
                    .await
                {
                    Ok(reply) => reply.status.as_u16().to_string(),
                    Err(error) => format!("error: {error}"),
                };
                *answers.lock().unwrap().entry(answer).or_default() += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // One instance at a time: SIGTERM, wait until it has drained and exited, start it again.
    for index in 0..2 {
        let old = instances.remove(0);
        let name = old.name;
        let admin_addr = old.admin_addr.clone();
        let status = tokio::task::spawn_blocking(move || old.terminate()).await.unwrap();
        assert!(status.success(), "{name} drained and exited cleanly: {status:?}");
        assert!(std::net::TcpStream::connect(&admin_addr).is_err(), "{name} is gone");
        let new = Instance::start(name, &config, &store_url).await;
        front.replace(&new);
        instances.push(new);
        tokio::time::sleep(Duration::from_millis(1500 + 500 * index)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    poller.await.unwrap();
    let answers = answers.lock().unwrap().clone();
    let created = answers.get("201").copied().unwrap_or(0);
    assert!(created >= 50, "the load ran through the restarts: {answers:?}");
    assert_eq!(answers.len(), 1, "only 201s, nothing refused: {answers:?}");
    for instance in instances {
        assert!(instance.terminate().success());
    }
    eprintln!("{test}: {answers:?}");
}
