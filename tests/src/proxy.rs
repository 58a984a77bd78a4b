//! scimtrail itself, started in-process through the same composition root as the binary,
//! on loopback port 0, with a fresh store.

use crate::Client;
use scimtrail_app::config::RawConfig;
use scimtrail_app::{Overrides, Settings};
use scimtrail_proxy::Running;
use scimtrail_store::Store;

/// A fresh store URL per backend: a new SQLite file, and a new PostgreSQL database when
/// `SCIMTRAIL_TEST_POSTGRES_URL` names a server (`.ci/run` starts one).
pub async fn fresh_store_urls() -> Vec<String> {
    let file = std::env::temp_dir().join(format!("scimtrail-it-{}.db", uuid::Uuid::new_v4()));
    let mut urls = vec![format!("sqlite://{}", file.display())];
    if let Ok(url) = std::env::var("SCIMTRAIL_TEST_POSTGRES_URL") {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&url)
            .await
            .expect("SCIMTRAIL_TEST_POSTGRES_URL connects");
        let name = format!("scimtrail_it_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let (base, _) = url.rsplit_once('/').expect("a database URL");
        urls.push(format!("{base}/{name}"));
    }
    urls
}

/// Every byte the store at `url` keeps, as text: for SQLite its database, WAL, shared memory
/// and journal files (every file read whole, as anyone who can read them would); for
/// PostgreSQL every row of every table of its schema.
pub async fn everything_stored(url: &str) -> String {
    let mut everything = String::new();
    if let Some(file) = scimtrail_store::private::sqlite_file(url) {
        let mut paths = scimtrail_store::private::database_paths(&file);
        while let Some(path) = paths.pop() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                paths.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            } else if let Ok(bytes) = std::fs::read(&path) {
                everything.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        return everything;
    }
    use sqlx::{Connection, Row};
    let mut db = sqlx::PgConnection::connect(url)
        .await
        .expect("the test database connects");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut db)
    .await
    .expect("list the tables");
    for table in tables {
        let row = sqlx::query(&format!(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t"
        ))
        .fetch_one(&mut db)
        .await
        .expect("read a table");
        everything.push_str(&row.get::<String, _>(0));
    }
    everything
}

impl TestProxy {
    /// What the admin listener's `/metrics` shows now.
    pub async fn metrics(&self) -> String {
        String::from_utf8_lossy(&self.admin.get("/metrics").await.bytes).into_owned()
    }

    /// Whether `/metrics` shows `line` within five seconds.
    pub async fn metrics_show(&self, line: &str) -> bool {
        for _ in 0..200 {
            if self.metrics().await.contains(line) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        false
    }

    /// The newest exchange on `route` that `matches` once it has completed (its outcome no
    /// longer `in_flight`), waited for five seconds at most.
    pub async fn completed_exchange(
        &self,
        route: &str,
        matches: impl Fn(&scimtrail_store::Exchange) -> bool,
    ) -> Option<scimtrail_store::Exchange> {
        for _ in 0..200 {
            let found = self
                .exchanges_of(route)
                .await
                .into_iter()
                .find(|e| e.outcome() != scimtrail_store::OUTCOME_IN_FLIGHT && matches(e));
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        None
    }

    /// Every exchange recorded on `route` (the first thousand), newest first.
    pub async fn exchanges_of(&self, route: &str) -> Vec<scimtrail_store::Exchange> {
        let query = scimtrail_store::ExchangeQuery {
            route: Some(route.to_owned()),
            limit: 1000,
            ..Default::default()
        };
        self.store.list(&query).await.expect("the store lists").items
    }
}

/// A running proxy with its store and clients for both listeners.
pub struct TestProxy {
    /// The running proxy.
    pub running: Running,
    /// Its store.
    pub store: Store,
    /// The store URL.
    pub store_url: String,
    /// A client for the proxy listener.
    pub client: Client,
    /// A client for the admin listener.
    pub admin: Client,
    /// What it was started with (what `scimtrail_app::reload` reads again).
    pub settings: Settings,
}

/// The key the tests' proxies fingerprint credentials with ([`crate::FINGERPRINT_KEY`]).
pub fn fingerprint_key() -> scimtrail_proxy::fingerprint::KeySource {
    scimtrail_proxy::fingerprint::KeySource::Fixed(crate::FINGERPRINT_KEY.as_bytes().to_vec())
}

/// Starts scimtrail from a configuration text (listen addresses are forced to port 0).
pub async fn start(config: &str, store_url: &str) -> TestProxy {
    start_with(config, store_url, |_| {}).await
}

/// Like [`start`], with a last change to the resolved settings (e.g. secrets, which the
/// configuration file reads from the environment).
pub async fn start_with(config: &str, store_url: &str, adjust: impl FnOnce(&mut Settings)) -> TestProxy {
    let raw = RawConfig::from_toml(config, "test config").expect("a valid test configuration");
    // Proxies of one test share a store under names of their own, as instances do: the
    // default name (host and listen address) is the same for every port-0 listener.
    let named = raw.store.instance.is_some();
    let flags = Overrides {
        listen: Some("127.0.0.1:0".into()),
        admin_listen: Some("127.0.0.1:0".into()),
        store: Some(store_url.to_owned()),
        ..Overrides::default()
    };
    let mut settings = Settings::resolve(raw, &flags).expect("valid settings");
    settings.proxy.fingerprint_key = fingerprint_key();
    if !named {
        settings.proxy.instance = format!("test-{}", uuid::Uuid::new_v4().simple());
    }
    adjust(&mut settings);
    let (running, store) = scimtrail_app::start(&settings).await.expect("scimtrail starts");
    let client = Client::new(format!("http://{}", running.proxy_addr));
    let admin = Client::new(format!("http://{}", running.admin_addr));
    TestProxy {
        running,
        store,
        store_url: store_url.to_owned(),
        client,
        admin,
        settings,
    }
}

/// A configuration with one route to `upstream`.
pub fn single_route(upstream: &str, extra: &str) -> String {
    route_for("okta", upstream, extra)
}

/// The same for another IdP profile.
pub fn route_for(idp: &str, upstream: &str, extra: &str) -> String {
    format!("[[route]]\nname = \"app\"\nidp = \"{idp}\"\nupstream = \"{upstream}\"\n{extra}")
}
