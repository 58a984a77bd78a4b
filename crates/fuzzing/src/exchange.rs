//! The whole exchange path: raw request bytes (HTTP/1.1, or HTTP/2 for what starts with its
//! preface) into the proxy as one client connection, routes for several IdP profiles and
//! application quirks, recording durably into SQLite, the reference application behind it in
//! process (`scimtrail_proxy::fuzzing`). Every 20,000 inputs the proxy, its store and the
//! application start afresh, so that neither disk nor the application's directory grows
//! without bound over a campaign.
//!
//! A panic anywhere — in a task the runtime would otherwise turn into a 500 — aborts the
//! process, so that libFuzzer sees it. (The answer itself is not searched for the proxy's
//! internal-error text: the proxy may echo what a request carried, and the campaign's first
//! "crash" was a content type spelling that very text.)

use scimtrail_app::config::RawConfig;
use scimtrail_app::{Overrides, Settings};
use scimtrail_proxy::fuzzing::Harness;
use scimtrail_refapp::RefApp;
use scimtrail_store::Durability;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::runtime::Runtime;

/// Inputs served before the proxy, store and application start afresh.
const RENEW_EVERY: u64 = 20_000;

/// How long one input may take before it is cut off (libFuzzer reports a hang before that).
const WAIT: Duration = Duration::from_secs(5);

const CONFIG: &str = r#"
[listen]
first_byte_timeout_secs = 1
body_timeout_secs = 1
idle_timeout_secs = 1
[record]
max_body_bytes = 65536
max_response_bytes = 1048576

[[route]]
name = "okta"
path_prefix = "/okta"
idp = "okta"
upstream = "http://application.invalid"
read_back = true
[route.target]
max_results = 2
max_aggregate_results = 6

[[route]]
name = "entra"
path_prefix = "/entra"
idp = "entra"
upstream = "http://application.invalid/"
[route.target]
patch = false
value_path_filters = false

[[route]]
name = "google"
path_prefix = "/google"
idp = "google"
upstream = "http://application.invalid"
[route.target]
put = false
max_patch_operations = 2
max_operation_values = 1
filter_operators = ["eq"]
max_bulk_operations = 3

[[route]]
name = "jumpcloud"
path_prefix = "/jumpcloud"
idp = "jumpcloud"
upstream = "http://application.invalid"
idp_token_file = "TOKEN_FILE"
upstream_auth = { header = "x-api-key", value_file = "TOKEN_FILE" }
[route.target]
member_type_required = true
empty_members_replace = false

[[route]]
name = "generic"
path_prefix = ""
idp = "generic"
upstream = "http://application.invalid"
[route.target]
bulk = true
"#;

struct World {
    runtime: Runtime,
    running: Mutex<Option<Running>>,
    token_file: PathBuf,
    generation: Mutex<u64>,
}

struct Running {
    harness: Harness,
    store_file: PathBuf,
    served: u64,
}

static WORLD: OnceLock<World> = OnceLock::new();

fn world() -> &'static World {
    WORLD.get_or_init(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            std::process::abort();
        }));
        let token_file = std::env::temp_dir().join(format!("scimtrail-fuzz-{}.token", std::process::id()));
        std::fs::write(&token_file, "fuzz-token").expect("the token file is written");
        World {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime"),
            running: Mutex::new(None),
            token_file,
            generation: Mutex::new(0),
        }
    })
}

/// The exchange path, from raw bytes.
pub fn exchange(data: &[u8]) {
    let world = world();
    let mut running = world.running.lock().unwrap_or_else(PoisonError::into_inner);
    world.runtime.block_on(async {
        if running.as_ref().is_none_or(|r| r.served >= RENEW_EVERY) {
            if let Some(old) = running.take() {
                old.harness.finish().await;
                remove_store(&old.store_file);
            }
            *running = Some(start(world).await);
        }
        let Some(current) = running.as_mut() else { return };
        // A panic in any task aborts (see `world`): what comes back needs no reading.
        let _ = current.harness.exchange(data, WAIT).await;
        current.served += 1;
    });
}

async fn start(world: &World) -> Running {
    let generation = {
        let mut generation = world.generation.lock().unwrap_or_else(PoisonError::into_inner);
        *generation += 1;
        *generation
    };
    let store_file = std::env::temp_dir().join(format!("scimtrail-fuzz-{}-{generation}.db", std::process::id()));
    remove_store(&store_file);
    let url = format!("sqlite://{}", store_file.display());
    let config = CONFIG.replace("TOKEN_FILE", &world.token_file.display().to_string());
    let raw = RawConfig::from_toml(&config, "fuzz").expect("the fuzz configuration parses");
    let settings = Settings::resolve(raw, &Overrides::default()).expect("the fuzz configuration is valid");
    let store = scimtrail_app::connect_with(&url, Durability::Process)
        .await
        .expect("the store opens")
        .with_journal()
        .expect("the journal opens");
    let application = RefApp::new();
    let serve = Arc::new(move |io: tokio::io::DuplexStream| application.serve_connection(io));
    let harness = Harness::new(settings.proxy, store, serve).expect("the proxy starts");
    Running {
        harness,
        store_file,
        served: 0,
    }
}

fn remove_store(file: &std::path::Path) {
    let name = file.display().to_string();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{name}{suffix}"));
    }
    let _ = std::fs::remove_dir_all(format!("{name}.journal"));
}
