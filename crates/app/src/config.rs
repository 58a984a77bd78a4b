//! The configuration file (TOML) and its validation: raw serde types with
//! `deny_unknown_fields`, checked into [`Settings`].

use scimtrail_proxy::fingerprint::{self, KeySource};
use scimtrail_proxy::pacing::{self, Pacing};
use scimtrail_proxy::{IpNet, ProxyConfig, RecordMode, Route, Secret, SecretSource, TlsFiles, UpstreamAuth, Webhook};
use scimtrail_rules::{Catalog, Mode, Target};
use scimtrail_scim::redact::Redaction;
use scimtrail_store::{private, Durability, Retention};
use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The default store.
pub const DEFAULT_STORE_URL: &str = "sqlite://scimtrail.db";

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown keys are named).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What and where.
        message: String,
    },
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[listen]`.
    #[serde(default)]
    pub listen: RawListen,
    /// `[admin]`.
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[store]`.
    #[serde(default)]
    pub store: RawStore,
    /// `[record]`.
    #[serde(default)]
    pub record: RawRecord,
    /// `[retention]`.
    #[serde(default)]
    pub retention: RawRetention,
    /// `[upstream]`: defaults for every route.
    #[serde(default)]
    pub upstream: RawUpstream,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
    /// `[[route]]`.
    #[serde(default)]
    pub route: Vec<RawRoute>,
    /// `[rules]`.
    #[serde(default)]
    pub rules: RawRules,
}

/// `[rules]`: the operator's own IdP profiles.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    /// A directory of rule files (`*.toml`), loaded beside the bundled profiles at start and
    /// again on SIGHUP; a route names one of its profiles like a bundled one.
    pub dir: Option<PathBuf>,
}

/// `[listen]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// Address of the proxy listener.
    pub addr: Option<String>,
    /// TLS on the proxy listener.
    pub tls: Option<RawTls>,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: Option<usize>,
    /// Exchanges in flight at once; more requests wait for a slot.
    pub max_exchanges: Option<usize>,
    /// Bytes exchanges may buffer between them, requests and answers.
    pub max_buffered_bytes: Option<usize>,
    /// Seconds a connection may go without a complete request head (or, HTTP/2, without an
    /// open stream) before it is closed.
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a new connection has to send its first bytes (and finish its TLS handshake).
    pub first_byte_timeout_secs: Option<u64>,
    /// Seconds an authenticated request has to send its whole body.
    pub body_timeout_secs: Option<u64>,
    /// Connections one client address may hold at once (off when unset).
    pub max_connections_per_client: Option<usize>,
    /// Addresses or blocks of the proxies in front (`X-Forwarded-For` names the client).
    pub trusted_proxies: Option<Vec<String>>,
    /// Seconds `/readyz` says unready after SIGTERM, while still serving, before draining.
    pub ready_grace_secs: Option<u64>,
    /// Seconds the drain waits for exchanges in flight before the process ends.
    pub drain_secs: Option<u64>,
}

/// `tls = { cert_path, key_path }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert_path: PathBuf,
    /// PEM private key.
    pub key_path: PathBuf,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin listener.
    pub addr: Option<String>,
    /// Environment variable holding the admin bearer token.
    pub token_env: Option<String>,
    /// File holding the admin bearer token (re-read on SIGHUP).
    pub token_file: Option<PathBuf>,
    /// `Host` names the admin listener answers `/api` under, besides IP addresses and
    /// `localhost`.
    pub allowed_hosts: Option<Vec<String>>,
    /// Serve `/api` off loopback without a token: anyone who reaches it reads every record.
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite://FILE` or `postgres://…`.
    pub url: Option<String>,
    /// Environment variable holding the URL (wins over `url`).
    pub url_env: Option<String>,
    /// File holding the URL (a secret file, for a URL with a password; below `url_env`).
    pub url_file: Option<PathBuf>,
    /// This instance's name in the store.
    pub instance: Option<String>,
    /// Seconds between this instance's heartbeats in the store.
    pub heartbeat_secs: Option<u64>,
    /// Seconds without a heartbeat after which an instance is dead to the others.
    pub instance_dead_after_secs: Option<u64>,
    /// Deprecated: `[record] durability` says it. `full` is `power`, `normal` is `process`.
    pub sqlite_synchronous: Option<String>,
    /// Environment variable holding the key credentials' fingerprints are made with.
    pub fingerprint_key_env: Option<String>,
    /// File holding that key.
    pub fingerprint_key_file: Option<PathBuf>,
}

/// `[record]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    /// `durable` or `async`.
    pub mode: Option<String>,
    /// `power` (the default: a write is synced before it is forwarded and before its response
    /// is released) or `process` (written by then, synced within `sync_interval_ms`).
    pub durability: Option<String>,
    /// Milliseconds a write at `process` durability may stay unsynced (default 10).
    pub sync_interval_ms: Option<u64>,
    /// Largest request body.
    pub max_body_bytes: Option<usize>,
    /// Largest response body.
    pub max_response_bytes: Option<usize>,
    /// Writer queue capacity.
    pub queue_capacity: Option<usize>,
    /// Bytes of bodies waiting for the writer, at most.
    pub queue_max_bytes: Option<usize>,
    /// Most writes per transaction.
    pub max_batch: Option<usize>,
    /// Extra headers to redact.
    pub redact_headers: Option<Vec<String>>,
    /// Deprecated: `on_store_failure` says it. `true` is `fail_closed`, `false` is
    /// `serve_unrecorded`.
    pub fail_closed: Option<bool>,
    /// When the store cannot be written: `fail_closed` (503, the default), `spool`
    /// (PostgreSQL: records spooled locally and drained once it is back), `serve_unrecorded`.
    pub on_store_failure: Option<String>,
    /// Where the spool is kept (default `scimtrail.spool` in the working directory).
    pub spool_dir: Option<PathBuf>,
}

/// `[retention]`: how long each outcome is kept (`"30d"`, `"12h"`, `"45m"`, `"forever"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Exchanges the application answered below 400 (default 30 days).
    pub ok: Option<String>,
    /// Exchanges the proxy refused (default 7 days).
    pub rejected: Option<String>,
    /// The application answered 400 or more (default 180 days).
    pub failed: Option<String>,
    /// The application could not be reached (default 180 days).
    pub unreachable: Option<String>,
    /// Some of it did not take effect (default 180 days).
    pub partial: Option<String>,
    /// The proxy stopped while it was in flight (default 180 days).
    pub interrupted: Option<String>,
    /// The bytes the store may take before the oldest exchanges go (successes first).
    pub max_store_bytes: Option<u64>,
    /// How often the store is pruned (default `"10m"`).
    pub prune_every: Option<String>,
}

/// A retention duration in milliseconds: `30d`, `12h`, `45m`, `90s`; `None` for `forever`.
fn retention_ms(key: &str, text: &str) -> Result<Option<i64>, ConfigError> {
    if text == "forever" {
        return Ok(None);
    }
    let refuse = || {
        invalid(format!(
            "[retention] {key} = \"{text}\": use a number with s, m, h or d (\"30d\"), or \"forever\""
        ))
    };
    let split = text.len().checked_sub(1).ok_or_else(refuse)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| refuse())?;
    let unit_ms: i64 = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(refuse()),
    };
    match number.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(Some(ms)),
        _ => Err(refuse()),
    }
}

impl RawRetention {
    fn resolve(&self) -> Result<(Retention, Duration), ConfigError> {
        let mut retention = Retention::default();
        for (key, value) in [
            ("ok", &self.ok),
            ("rejected", &self.rejected),
            ("failed", &self.failed),
            ("unreachable", &self.unreachable),
            ("partial", &self.partial),
            ("interrupted", &self.interrupted),
        ] {
            if let Some(text) = value {
                retention.keep_ms.insert(key.to_owned(), retention_ms(key, text)?);
            }
        }
        retention.max_store_bytes = self.max_store_bytes;
        let every = match &self.prune_every {
            Some(text) => retention_ms("prune_every", text)?
                .ok_or_else(|| invalid("[retention] prune_every cannot be \"forever\"".to_owned()))?,
            None => 10 * 60_000,
        };
        Ok((
            retention,
            Duration::from_millis(u64::try_from(every).unwrap_or(u64::MAX)),
        ))
    }
}

/// `[upstream]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Default timeout.
    pub timeout_secs: Option<u64>,
    /// Extra trusted CA certificates (PEM).
    pub ca_bundle_path: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `human` or `json`.
    pub format: Option<String>,
    /// A tracing filter, e.g. `info` or `scimtrail_proxy=debug`.
    pub level: Option<String>,
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The route's name.
    pub name: String,
    /// The path prefix.
    #[serde(default)]
    pub path_prefix: String,
    /// The IdP profile.
    #[serde(default = "generic")]
    pub idp: String,
    /// The application's SCIM base URL.
    pub upstream: String,
    /// Timeout for this route.
    pub timeout_secs: Option<u64>,
    /// Credentials for the application.
    pub upstream_auth: Option<RawUpstreamAuth>,
    /// A client certificate for the application (mutual TLS).
    pub upstream_tls: Option<RawUpstreamTls>,
    /// Environment variable holding the token the IdP must present.
    pub idp_token_env: Option<String>,
    /// File holding the token the IdP must present (re-read on SIGHUP).
    pub idp_token_file: Option<PathBuf>,
    /// With `upstream_auth` and no IdP token: anyone who reaches the listener acts with the
    /// application's credentials. Refused unless said here.
    #[serde(default)]
    pub allow_anonymous_idp: bool,
    /// `enforce` (the default) or `observe`.
    #[serde(default)]
    pub mode: Mode,
    /// What the application accepts, where it differs from a strict RFC application.
    #[serde(default)]
    pub target: Target,
    /// Exchanges before a request shape never seen on the route is a finding (default 100).
    pub shape_learning: Option<u64>,
    /// Where alerts go.
    pub webhook: Option<RawWebhook>,
    /// GET the resource after each accepted write (default false).
    #[serde(default)]
    pub read_back: bool,
    /// What of this route's traffic is recorded.
    #[serde(default)]
    pub record: RawRouteRecord,
    /// How requests wait when `[route.target] max_requests_per_second` or `max_in_flight`
    /// hold them back.
    pub pacing: Option<RawPacing>,
    /// When the application's state is reconciled with the IdP's intent on its own.
    pub reconcile: Option<RawReconcile>,
}

/// `[route.reconcile]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReconcile {
    /// How often (`"6h"`): one instance at a time reads the application's users and groups
    /// and compares them with the IdP's intent, reporting drift; it repairs nothing.
    pub every: String,
}

/// The shortest `[route.reconcile] every`: a run reads every user and group of the
/// application.
const MIN_RECONCILE_EVERY_MS: i64 = 10_000;

/// `[route.pacing]`: the queue of a route whose target has `max_requests_per_second` or
/// `max_in_flight`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPacing {
    /// Requests that may wait at once (default 256).
    pub max_queued: Option<usize>,
    /// The longest a request may wait, from its arrival (default: 54 s less the route's
    /// timeout, so that the two stay under 55 s).
    pub max_wait_secs: Option<u64>,
    /// The longest an application's `Retry-After` pauses the route (default 60).
    pub max_pause_secs: Option<u64>,
}

/// `[route.record]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteRecord {
    /// Attributes replaced by a redaction marker everywhere they appear in the record, like
    /// `password` (`"phoneNumbers"`, `"urn:…:enterprise:2.0:User:employeeNumber"`).
    #[serde(default)]
    pub redact_attributes: Vec<String>,
}

/// `[route.webhook]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// The URL alerts are POSTed to.
    pub url: String,
    /// Environment variable holding a bearer token for the webhook.
    pub bearer_token_env: Option<String>,
    /// File holding a bearer token for the webhook.
    pub bearer_token_file: Option<PathBuf>,
    /// Attempts per alert (default 5).
    pub max_attempts: Option<u32>,
}

fn generic() -> String {
    "generic".to_owned()
}

/// `upstream_auth = { … }`: exactly one form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamAuth {
    /// Bearer token, from this environment variable.
    pub bearer_token_env: Option<String>,
    /// Bearer token, from this file.
    pub bearer_token_file: Option<PathBuf>,
    /// Basic: user name.
    pub basic_username: Option<String>,
    /// Basic: password, from this environment variable.
    pub basic_password_env: Option<String>,
    /// Basic: password, from this file.
    pub basic_password_file: Option<PathBuf>,
    /// Custom header name.
    pub header: Option<String>,
    /// Custom header value, from this environment variable.
    pub value_env: Option<String>,
    /// Custom header value, from this file.
    pub value_file: Option<PathBuf>,
    /// OAuth 2.0 client credentials: the application's token endpoint.
    pub oauth_token_url: Option<String>,
    /// OAuth: the client id.
    pub oauth_client_id: Option<String>,
    /// OAuth: the client secret, from this environment variable.
    pub oauth_client_secret_env: Option<String>,
    /// OAuth: the client secret, from this file.
    pub oauth_client_secret_file: Option<PathBuf>,
    /// OAuth: the scope asked for.
    pub oauth_scope: Option<String>,
}

/// `upstream_tls = { client_cert_path, client_key_path }`: the client certificate presented
/// to an application that asks for one (mutual TLS).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// PEM certificate chain.
    pub client_cert_path: PathBuf,
    /// PEM private key.
    pub client_key_path: PathBuf,
}

/// What overrides the file: the flags, and under them the environment
/// (`environment::Environment::under`).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--upstream`: with no file, the single route's upstream.
    pub upstream: Option<String>,
    /// `--idp`: the single route's profile.
    pub idp: Option<String>,
    /// `--store`.
    pub store: Option<String>,
    /// `--admin-listen`.
    pub admin_listen: Option<String>,
    /// This instance's name (`SCIMTRAIL_INSTANCE`): stable across restarts where the host
    /// name is not (a container's).
    pub instance: Option<String>,
    /// `human` or `json` (`SCIMTRAIL_LOG_FORMAT`).
    pub log_format: Option<String>,
    /// The tracing filter (`SCIMTRAIL_LOG_LEVEL`).
    pub log_level: Option<String>,
    /// The operator's rule files (`SCIMTRAIL_RULES_DIR`).
    pub rules_dir: Option<String>,
}

/// Everything resolved and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The proxy's settings.
    pub proxy: ProxyConfig,
    /// The store URL.
    pub store_url: String,
    /// When a recorded write is durable (`[record] durability`).
    pub durability: Durability,
    /// How long a write at [`Durability::Process`] may stay unsynced.
    pub sync_interval: Duration,
    /// `on_store_failure = "spool"` on a PostgreSQL store: the spool's directory.
    pub spool_dir: Option<PathBuf>,
    /// The operator's rule files (`[rules] dir`), read again on SIGHUP; their profiles are
    /// in `proxy.profiles`.
    pub rules_dir: Option<PathBuf>,
    /// `human` or `json`.
    pub log_format: String,
    /// The tracing filter.
    pub log_level: String,
    /// What the configuration allows that an operator should know it allows: logged at start,
    /// printed by `check-config`.
    pub warnings: Vec<String>,
}

impl RawConfig {
    /// Reads a file.
    pub fn from_file(path: &std::path::Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        RawConfig::from_toml(&text, &path.display().to_string())
    }

    /// Parses TOML; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: origin.to_owned(),
            // One line: the reason is printed as the command's one-line error.
            message: error.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }
}

/// A secret named by the configuration: from the environment variable `env`, or from the
/// file `file` (never both); `None` when neither is given.
fn secret(env: Option<&str>, file: Option<&std::path::Path>, what: &str) -> Result<Option<Secret>, ConfigError> {
    let source = match (env, file) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "{what}: give the environment variable or the file, not both"
            )))
        }
        (Some(name), None) => SecretSource::Env(name.to_owned()),
        (None, Some(path)) => SecretSource::File(path.to_owned()),
        (None, None) => return Ok(None),
    };
    Secret::load(source)
        .map(Some)
        .map_err(|error| invalid(format!("{what}: {error}")))
}

/// A secret that must be given, as `keys` (`x_env` or `x_file`) say.
fn required_secret(
    env: Option<&str>,
    file: Option<&std::path::Path>,
    what: &str,
    keys: &str,
) -> Result<Secret, ConfigError> {
    secret(env, file, what)?.ok_or_else(|| invalid(format!("{what}: give {keys}")))
}

/// Whether `host` (a URL's host) is this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn address(text: &str, what: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| invalid(format!("{what} \"{text}\" is not an address like 127.0.0.1:8080")))
}

impl Settings {
    /// Resolves a file (or none) and flags into settings.
    pub fn resolve(raw: RawConfig, flags: &Overrides) -> Result<Settings, ConfigError> {
        let listen = address(
            flags
                .listen
                .as_deref()
                .or(raw.listen.addr.as_deref())
                .unwrap_or("127.0.0.1:8080"),
            "listen address",
        )?;
        let admin_listen = address(
            flags
                .admin_listen
                .as_deref()
                .or(raw.admin.addr.as_deref())
                .unwrap_or("127.0.0.1:9180"),
            "admin address",
        )?;
        let admin_token = secret(
            raw.admin.token_env.as_deref(),
            raw.admin.token_file.as_deref(),
            "[admin] token_env/token_file",
        )?;
        let mut warnings = Vec::new();
        if !admin_listen.ip().is_loopback() && admin_token.is_none() {
            if !raw.admin.allow_unauthenticated {
                return Err(invalid(format!(
                    "the admin listener {admin_listen} is off loopback without a token: anyone who reaches it could read every recorded exchange and start replays; set [admin] token_env or token_file (or allow_unauthenticated = true)"
                )));
            }
            warnings.push(format!(
                "[admin] allow_unauthenticated: the admin listener {admin_listen} serves every recorded exchange and replays to anyone who reaches it"
            ));
        }
        let StoreChoice {
            url: store_url,
            spool_dir,
            fail_closed,
            fingerprint_key,
        } = store_choice(&raw.store, &raw.record, flags, &mut warnings)?;
        let (durability, sync_interval) = durability(&raw.store, &raw.record, &mut warnings)?;
        let record_mode = match raw.record.mode.as_deref().unwrap_or("durable") {
            "durable" => RecordMode::Durable,
            "async" => RecordMode::Async,
            other => {
                return Err(invalid(format!(
                    "[record] mode \"{other}\": use \"durable\" or \"async\""
                )))
            }
        };
        let default_timeout = Duration::from_secs(raw.upstream.timeout_secs.unwrap_or(30));
        let max_body_bytes = raw.record.max_body_bytes.unwrap_or(1024 * 1024);
        let rules_dir = flags.rules_dir.as_ref().map(PathBuf::from).or(raw.rules.dir);
        let profiles = match &rules_dir {
            Some(dir) => crate::rules_dir::load(dir).map_err(|error| invalid(error.to_string()))?,
            None => Catalog::bundled().map_err(|error| invalid(error.to_string()))?,
        };
        warnings.extend(profiles.warnings().into_iter().map(|w| format!("[rules] {w}")));
        let limits = RouteLimits {
            default_timeout,
            max_body_bytes,
            profiles: &profiles,
            rules_dir: rules_dir.as_deref(),
        };
        let mut routes = raw
            .route
            .into_iter()
            .map(|r| route(r, &limits))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(upstream) = &flags.upstream {
            if !routes.is_empty() {
                return Err(invalid(
                    "--upstream makes the single route; the configuration file already declares routes",
                ));
            }
            routes.push(route(
                RawRoute {
                    name: "default".to_owned(),
                    path_prefix: String::new(),
                    idp: flags.idp.clone().unwrap_or_else(generic),
                    upstream: upstream.clone(),
                    timeout_secs: None,
                    upstream_auth: None,
                    upstream_tls: None,
                    idp_token_env: None,
                    idp_token_file: None,
                    allow_anonymous_idp: false,
                    mode: Mode::default(),
                    target: Target::default(),
                    shape_learning: None,
                    webhook: None,
                    read_back: false,
                    record: RawRouteRecord::default(),
                    pacing: None,
                    reconcile: None,
                },
                &limits,
            )?);
        } else if flags.idp.is_some() {
            return Err(invalid("--idp names the profile of the route that --upstream makes"));
        }
        if routes.is_empty() {
            return Err(invalid(
                "no route: give --upstream URL, or declare [[route]] in the configuration file",
            ));
        }
        for (index, route) in routes.iter().enumerate() {
            if routes[..index].iter().any(|other| other.name == route.name) {
                return Err(invalid(format!("two routes are named \"{}\"", route.name)));
            }
            if routes[..index]
                .iter()
                .any(|other| other.path_prefix.trim_end_matches('/') == route.path_prefix.trim_end_matches('/'))
            {
                return Err(invalid(format!(
                    "two routes have the path prefix \"{}\"",
                    route.path_prefix
                )));
            }
        }
        for route in routes.iter().filter(|r| r.allow_anonymous_idp) {
            warnings.push(format!(
                "route {}: allow_anonymous_idp: anyone who reaches the listener acts with its upstream credentials",
                route.name
            ));
        }
        let instance = flags
            .instance
            .clone()
            .or(raw.store.instance)
            .unwrap_or_else(|| format!("{}:{listen}", scimtrail_proxy::config::hostname()));
        let log_format = flags
            .log_format
            .clone()
            .or(raw.log.format)
            .unwrap_or_else(|| "human".to_owned());
        if !matches!(log_format.as_str(), "human" | "json") {
            return Err(invalid(format!(
                "[log] format \"{log_format}\": use \"human\" or \"json\""
            )));
        }
        let max_connections = capacity(raw.listen.max_connections, 1024, "max_connections")?;
        let max_exchanges = capacity(raw.listen.max_exchanges, 256, "max_exchanges")?;
        let idle_timeout_secs = seconds(raw.listen.idle_timeout_secs, 30, 1..=3600, "[listen] idle_timeout_secs")?;
        let first_byte_timeout_secs = seconds(
            raw.listen.first_byte_timeout_secs,
            10,
            1..=300,
            "[listen] first_byte_timeout_secs",
        )?;
        let body_timeout_secs = seconds(raw.listen.body_timeout_secs, 10, 1..=3600, "[listen] body_timeout_secs")?;
        let ready_grace_secs = seconds(raw.listen.ready_grace_secs, 5, 0..=300, "[listen] ready_grace_secs")?;
        let drain_secs = seconds(raw.listen.drain_secs, 30, 1..=3600, "[listen] drain_secs")?;
        let (heartbeat, instance_dead_after) =
            heartbeats(raw.store.heartbeat_secs, raw.store.instance_dead_after_secs)?;
        let max_connections_per_client = raw
            .listen
            .max_connections_per_client
            .map(|limit| capacity(Some(limit), limit, "max_connections_per_client"))
            .transpose()?;
        let trusted_proxies = raw
            .listen
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .map_err(|error| invalid(format!("[listen] trusted_proxies: {error}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let queue_max_bytes = raw.record.queue_max_bytes.unwrap_or(64 * 1024 * 1024);
        if queue_max_bytes < 1024 * 1024 {
            return Err(invalid(format!(
                "[record] queue_max_bytes = {queue_max_bytes}: use at least 1048576 (1 MiB)"
            )));
        }
        let max_response_bytes = raw.record.max_response_bytes.unwrap_or(16 * 1024 * 1024);
        let max_buffered_bytes = buffered(raw.listen.max_buffered_bytes, max_body_bytes, max_response_bytes)?;
        let (retention, prune_every) = raw.retention.resolve()?;
        Ok(Settings {
            proxy: ProxyConfig {
                listen,
                retention,
                prune_every,
                max_connections,
                max_exchanges,
                idle_timeout: Duration::from_secs(idle_timeout_secs),
                first_byte_timeout: Duration::from_secs(first_byte_timeout_secs),
                body_timeout: Duration::from_secs(body_timeout_secs),
                ready_grace: Duration::from_secs(ready_grace_secs),
                drain: Duration::from_secs(drain_secs),
                heartbeat,
                instance_dead_after,
                max_connections_per_client,
                trusted_proxies,
                tls: raw.listen.tls.map(|t| TlsFiles {
                    cert_path: t.cert_path,
                    key_path: t.key_path,
                }),
                admin_listen,
                admin_token,
                admin_allowed_hosts: raw.admin.allowed_hosts.unwrap_or_default(),
                record_mode,
                fail_closed,
                max_body_bytes,
                max_response_bytes,
                max_buffered_bytes,
                queue_capacity: raw.record.queue_capacity.unwrap_or(4096),
                queue_max_bytes,
                max_batch: raw.record.max_batch.unwrap_or(256),
                redact_headers: raw.record.redact_headers.unwrap_or_default(),
                routes,
                profiles: Arc::new(profiles),
                instance,
                ca_bundle: raw.upstream.ca_bundle_path,
                fingerprint_key,
            },
            store_url,
            durability,
            sync_interval,
            spool_dir,
            rules_dir,
            log_format,
            log_level: flags
                .log_level
                .clone()
                .or(raw.log.level)
                .unwrap_or_else(|| "info".to_owned()),
            warnings,
        })
    }

    /// The resolved settings for `check-config`: secrets and store passwords redacted.
    pub fn describe(&self) -> String {
        let p = &self.proxy;
        let mut out = format!(
            "listen = {}{} (at most {} connections, {} exchanges in flight{}; first bytes within {} s, bodies within {} s, idle connections closed after {} s{}; on SIGTERM unready for {} s, then drained within {} s)\nadmin = {} (token: {}{})\nstore = {}\ndurability = {}\ninstance = {} (heartbeat every {} s, dead to the others after {} s silent)\nrecord = {:?} ({}), max_body_bytes {}, max_response_bytes {}, queue {} ({} bytes), batch {}\nredact_headers = authorization, proxy-authorization, cookie, set-cookie{}\nlog = {} {}\n",
            p.listen,
            if p.tls.is_some() { " (TLS)" } else { "" },
            p.max_connections,
            p.max_exchanges,
            p.max_connections_per_client
                .map(|n| format!(", {n} per client"))
                .unwrap_or_default(),
            p.first_byte_timeout.as_secs(),
            p.body_timeout.as_secs(),
            p.idle_timeout.as_secs(),
            if p.trusted_proxies.is_empty() {
                String::new()
            } else {
                format!(
                    "; clients named by X-Forwarded-For behind {}",
                    p.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                )
            },
            p.ready_grace.as_secs(),
            p.drain.as_secs(),
            p.admin_listen,
            describe_secret(p.admin_token.as_ref()),
            if p.admin_allowed_hosts.is_empty() {
                String::new()
            } else {
                format!("; also answers as {}", p.admin_allowed_hosts.join(", "))
            },
            without_password(&self.store_url),
            match self.durability {
                Durability::Power => "power (a record is synced before the exchange goes on)".to_owned(),
                Durability::Process => format!(
                    "process (a record is written before the exchange goes on, and synced within {} ms; a replay's is synced)",
                    self.sync_interval.as_millis()
                ),
            },
            p.instance,
            p.heartbeat.as_secs(),
            p.instance_dead_after.as_secs(),
            p.record_mode,
            match (&self.spool_dir, p.fail_closed) {
                (Some(dir), _) => format!("store failing: spooled into {}", dir.display()),
                (None, true) => "store failing: fail closed".to_owned(),
                (None, false) => "store failing: served unrecorded".to_owned(),
            },
            p.max_body_bytes,
            p.max_response_bytes,
            p.queue_capacity,
            p.queue_max_bytes,
            p.max_batch,
            p.redact_headers.iter().map(|h| format!(", {h}")).collect::<String>(),
            self.log_format,
            self.log_level,
        );
        let keep = |outcome: &str| match p.retention.keep_ms.get(outcome) {
            Some(Some(ms)) => format!("{outcome} {} d", *ms as f64 / 86_400_000.0),
            _ => format!("{outcome} forever"),
        };
        out.push_str(&format!(
            "buffers = at most {} bytes of bodies buffered by exchanges in flight, as received (each reserves its request's length or max_body_bytes, then its answer's or max_response_bytes; parsed and recorded, an exchange holds some 10 to 25 times its bodies: bench/memory); without this bound {} exchanges at their limits would buffer {} bytes\n",
            p.max_buffered_bytes,
            p.max_exchanges,
            p.max_exchanges
                .saturating_mul(p.max_body_bytes.saturating_add(p.max_response_bytes)),
        ));
        out.push_str(&format!("fingerprint key = {}\n", p.fingerprint_key.describe()));
        out.push_str(&self.describe_rules());
        out.push_str(&format!(
            "retention = {}; max_store_bytes {}; pruned every {} s\n",
            scimtrail_store::OUTCOMES.map(keep).join(", "),
            p.retention.max_store_bytes.map_or("none".to_owned(), |b| b.to_string()),
            p.prune_every.as_secs(),
        ));
        for route in &p.routes {
            let auth = match &route.upstream_auth {
                None => "the IdP's credentials are passed through".to_owned(),
                Some(UpstreamAuth::Bearer(token)) => format!("bearer token, {}", describe_secret(Some(token))),
                Some(UpstreamAuth::Basic { username, password }) => {
                    format!("basic as {username}, password {}", describe_secret(Some(password)))
                }
                Some(UpstreamAuth::Header { name, value }) => {
                    format!("header {name}, {}", describe_secret(Some(value)))
                }
                Some(UpstreamAuth::ClientCredentials(oauth)) => format!(
                    "OAuth client credentials from {} as {}{}, client secret {}",
                    oauth.token_url,
                    oauth.client_id,
                    oauth
                        .scope
                        .as_deref()
                        .map(|s| format!(" (scope {s})"))
                        .unwrap_or_default(),
                    describe_secret(Some(&oauth.client_secret))
                ),
            };
            let auth = match &route.client_identity {
                Some(identity) => format!("{auth}; client certificate {}", identity.cert_path.display()),
                None => auth,
            };
            out.push_str(&format!(
                "route {}: {} -> {} (idp {}, rules_version {}, timeout {} s, upstream auth: {auth}, idp token: {})\n",
                route.name,
                if route.path_prefix.is_empty() {
                    "/"
                } else {
                    &route.path_prefix
                },
                route.upstream,
                route.idp,
                p.profiles.get(&route.idp).map_or("-", |profile| profile.version()),
                route.timeout.as_secs_f64(),
                match &route.idp_token {
                    Some(token) => format!("required, {}", describe_secret(Some(token))),
                    None if route.allow_anonymous_idp => "not checked (allow_anonymous_idp)".to_owned(),
                    None => "not checked".to_owned(),
                },
            ));
            if route.read_back {
                out.push_str("  reads each accepted write back with a GET\n");
            }
            if let Some(pacing) = &route.pacing {
                out.push_str(&format!(
                    "  paced: {}; at most {} requests wait, each at most {} s (with the {} s timeout, under {} s); an application's 429 pauses the route for its Retry-After, at most {} s\n",
                    pacing.limits(),
                    pacing.max_queued,
                    pacing.max_wait.as_secs(),
                    route.timeout.as_secs(),
                    pacing::IDP_PATIENCE.as_secs(),
                    pacing.max_pause.as_secs(),
                ));
            }
            out.push_str(&format!(
                "  never stored: password{}\n",
                route
                    .redaction
                    .configured()
                    .iter()
                    .map(|a| format!(", {a}"))
                    .collect::<String>()
            ));
            if let Some(hook) = &route.webhook {
                out.push_str(&format!(
                    "  alerts to {} ({} attempts, token: {})\n",
                    hook.url,
                    hook.max_attempts,
                    describe_secret(hook.bearer_token.as_ref()),
                ));
            }
        }
        for warning in &self.warnings {
            out.push_str(&format!("warning: {warning}\n"));
        }
        out
    }
}

impl Settings {
    /// `check-config`'s lines on the profiles: where the operator's come from, and each one
    /// loaded (its base, version, rules and cases, all of which passed).
    fn describe_rules(&self) -> String {
        let catalog = &self.proxy.profiles;
        let bundled = catalog.profiles().len() - catalog.operators().count();
        let Some(dir) = &self.rules_dir else {
            return format!(
                "rules = the {bundled} bundled profiles ({}); no [rules] dir\n",
                catalog.names().join(", ")
            );
        };
        let mut out = format!(
            "rules = {}: {} operator profiles beside the {bundled} bundled ones, read again on SIGHUP\n",
            dir.display(),
            catalog.operators().count()
        );
        for profile in catalog.operators() {
            let disabled = match profile.disabled.is_empty() {
                true => String::new(),
                false => format!(
                    ", disables {}",
                    profile
                        .disabled
                        .iter()
                        .map(|d| d.id.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            };
            out.push_str(&format!(
                "  profile {} ({}): {}rules_version {}, {} rules{disabled}, {} test cases passed\n",
                profile.name,
                profile.origin,
                profile
                    .extends
                    .as_ref()
                    .map(|base| format!("extends {base}, "))
                    .unwrap_or_default(),
                profile.version(),
                profile.rules.len(),
                profile.tests.len(),
            ));
        }
        out
    }
}

/// The store a configuration chooses, and how recording meets its failures.
struct StoreChoice {
    url: String,
    spool_dir: Option<PathBuf>,
    fail_closed: bool,
    fingerprint_key: KeySource,
}

/// The store phase of [`Settings::resolve`]: its URL (flags and environment, through
/// `flags.store` > `url_env` > `url_file` > `url` > the default), what happens when it fails,
/// the fingerprint key, and warnings about its files.
fn store_choice(
    store: &RawStore,
    record: &RawRecord,
    flags: &Overrides,
    warnings: &mut Vec<String>,
) -> Result<StoreChoice, ConfigError> {
    let from_file = || -> Result<Option<String>, ConfigError> {
        let Some(path) = &store.url_file else { return Ok(None) };
        let text =
            std::fs::read_to_string(path).map_err(|e| invalid(format!("[store] url_file {}: {e}", path.display())))?;
        Ok(Some(text.trim().to_owned()))
    };
    let store_url = match (
        &flags.store,
        store.url_env.as_deref().and_then(|n| std::env::var(n).ok()),
        from_file()?,
        &store.url,
    ) {
        (Some(url), ..) => url.clone(),
        (None, Some(url), ..) => url,
        (None, None, Some(url), _) => url,
        (None, None, None, Some(url)) => url.clone(),
        (None, None, None, None) => DEFAULT_STORE_URL.to_owned(),
    };
    if !(store_url.starts_with("sqlite:") || store_url.starts_with("postgres:") || store_url.starts_with("postgresql:"))
    {
        return Err(invalid(format!(
            "store URL \"{}\": use sqlite://FILE or postgres://…",
            without_password(&store_url)
        )));
    }
    let on_store_failure = match (record.on_store_failure.as_deref(), record.fail_closed) {
        (Some(mode @ ("fail_closed" | "spool" | "serve_unrecorded")), None) => mode,
        (Some(other), None) => {
            return Err(invalid(format!(
                "[record] on_store_failure = \"{other}\": use \"fail_closed\", \"spool\" or \"serve_unrecorded\""
            )))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "[record] fail_closed and on_store_failure are both set: keep on_store_failure".to_owned(),
            ))
        }
        (None, Some(closed)) => {
            let mode = if closed { "fail_closed" } else { "serve_unrecorded" };
            warnings.push(format!(
                "[record] fail_closed is deprecated: write on_store_failure = \"{mode}\""
            ));
            mode
        }
        (None, None) => "fail_closed",
    };
    let postgres = !store_url.starts_with("sqlite:");
    let spool_dir = match on_store_failure {
        "spool" if postgres => Some(
            record
                .spool_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("scimtrail.spool")),
        ),
        "spool" => {
            warnings.push(
                "[record] on_store_failure = \"spool\" applies to PostgreSQL stores: a SQLite store's journal is local already, and it fails closed"
                    .to_owned(),
            );
            None
        }
        _ => None,
    };
    let fail_closed = on_store_failure != "serve_unrecorded";
    let fingerprint_key = fingerprint_key(store, &store_url)?;
    let mut private_paths = private::store_paths(&store_url, spool_dir.as_deref());
    if let KeySource::File(path) | KeySource::BesideStore(path) = &fingerprint_key {
        private_paths.push(path.clone());
    }
    for (path, mode) in private::open_to_others(&private_paths) {
        warnings.push(format!(
            "{} is open to other users (mode {mode:o}): it holds personal data or the key to its fingerprints; chmod go-rwx {}",
            path.display(),
            path.display()
        ));
    }
    Ok(StoreChoice {
        url: store_url,
        spool_dir,
        fail_closed,
        fingerprint_key,
    })
}

/// The durability phase of [`Settings::resolve`]: `[record] durability` (or its deprecated
/// alias `[store] sqlite_synchronous`, with a warning; both set must agree) and
/// `[record] sync_interval_ms`.
fn durability(
    store: &RawStore,
    record: &RawRecord,
    warnings: &mut Vec<String>,
) -> Result<(Durability, Duration), ConfigError> {
    let chosen = match record.durability.as_deref() {
        None => None,
        Some("power") => Some(Durability::Power),
        Some("process") => Some(Durability::Process),
        Some(other) => {
            return Err(invalid(format!(
                "[record] durability = \"{other}\": use \"power\" or \"process\""
            )))
        }
    };
    let alias = match store.sqlite_synchronous.as_deref() {
        None => None,
        Some(text @ "full") => Some((text, Durability::Power)),
        Some(text @ "normal") => Some((text, Durability::Process)),
        Some(other) => {
            return Err(invalid(format!(
                "[store] sqlite_synchronous = \"{other}\" (deprecated): write [record] durability = \"power\" or \"process\""
            )))
        }
    };
    let durability = match (chosen, alias) {
        (Some(chosen), Some((text, aliased))) if chosen != aliased => {
            return Err(invalid(format!(
                "[record] durability = \"{chosen}\" and [store] sqlite_synchronous = \"{text}\" (deprecated, \"{aliased}\") disagree: keep [record] durability"
            )))
        }
        (chosen, Some((text, aliased))) => {
            warnings.push(format!(
                "[store] sqlite_synchronous is deprecated: write [record] durability = \"{aliased}\" (for \"{text}\")"
            ));
            chosen.unwrap_or(aliased)
        }
        (chosen, None) => chosen.unwrap_or(Durability::Power),
    };
    let interval_ms = seconds(record.sync_interval_ms, 10, 1..=1000, "[record] sync_interval_ms")?;
    Ok((durability, Duration::from_millis(interval_ms)))
}

/// Where the key credentials' fingerprints are made with comes from: the file or variable the
/// configuration names, else `SCIMTRAIL_FINGERPRINT_KEY`, else (SQLite) a file beside the
/// database; a PostgreSQL store, shared by instances, has none of its own.
pub fn fingerprint_key(store: &RawStore, store_url: &str) -> Result<KeySource, ConfigError> {
    Ok(match (&store.fingerprint_key_env, &store.fingerprint_key_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "[store] fingerprint_key_env and fingerprint_key_file both name the key: keep one".to_owned(),
            ))
        }
        (Some(name), None) => KeySource::Env(name.clone()),
        (None, Some(path)) => KeySource::File(path.clone()),
        (None, None) if std::env::var_os(fingerprint::KEY_ENV).is_some() => {
            KeySource::Env(fingerprint::KEY_ENV.to_owned())
        }
        (None, None) => match private::sqlite_file(store_url) {
            Some(database) => KeySource::BesideStore(private::with_suffix(&database, ".fingerprint-key")),
            None => KeySource::Missing,
        },
    })
}

/// Where a secret comes from, never its value; and whether a rotation is under way.
fn describe_secret(secret: Option<&Secret>) -> String {
    match secret {
        None => "none".to_owned(),
        Some(secret) => {
            let mut text = format!("redacted, from {}", secret.source());
            if let (true, Some(next)) = (secret.rotating(), secret.source().next_name()) {
                text.push_str(&format!(", next value from {next} also accepted"));
            }
            text
        }
    }
}

/// A listener's `[listen]` limit: `default` when unset, refused unless from 1 to 1,000,000.
fn capacity(value: Option<usize>, default: usize, key: &str) -> Result<usize, ConfigError> {
    match value.unwrap_or(default) {
        value @ 1..=1_000_000 => Ok(value),
        value => Err(invalid(format!("[listen] {key} = {value}: use 1 to 1000000"))),
    }
}

/// `[listen] max_buffered_bytes`: at least one exchange's request and answer at their
/// limits; by default 256 MiB, or that if larger.
fn buffered(configured: Option<usize>, max_body_bytes: usize, max_response_bytes: usize) -> Result<usize, ConfigError> {
    let one_exchange = max_body_bytes.saturating_add(max_response_bytes);
    match configured {
        None => Ok(one_exchange.max(256 * 1024 * 1024)),
        Some(bytes) if bytes >= one_exchange => Ok(bytes),
        Some(bytes) => Err(invalid(format!(
            "[listen] max_buffered_bytes = {bytes} cannot hold one exchange at its limits: use at least [record] max_body_bytes + max_response_bytes = {one_exchange}"
        ))),
    }
}

/// A `[listen]` number of seconds: `default` when unset, refused unless from 1 to `max`.
/// How often an instance heartbeats, and after how long without one it is dead to the others.
fn heartbeats(heartbeat_secs: Option<u64>, dead_after_secs: Option<u64>) -> Result<(Duration, Duration), ConfigError> {
    let heartbeat_secs = seconds(heartbeat_secs, 5, 1..=300, "[store] heartbeat_secs")?;
    let dead_after_secs = seconds(dead_after_secs, 30, 1..=86_400, "[store] instance_dead_after_secs")?;
    // Three heartbeats missed, at least: a busy store or a pause must not make a live
    // instance look dead (a survivor would then mark its exchanges interrupted).
    if dead_after_secs < 3 * heartbeat_secs {
        return Err(invalid(format!(
            "[store] instance_dead_after_secs = {dead_after_secs}: use at least three heartbeats ({} s with heartbeat_secs = {heartbeat_secs})",
            3 * heartbeat_secs
        )));
    }
    Ok((
        Duration::from_secs(heartbeat_secs),
        Duration::from_secs(dead_after_secs),
    ))
}

/// `key` (its section named: `[listen] drain_secs`) within `range`, or `default`.
fn seconds(value: Option<u64>, default: u64, range: RangeInclusive<u64>, key: &str) -> Result<u64, ConfigError> {
    match value.unwrap_or(default) {
        value if range.contains(&value) => Ok(value),
        value => Err(invalid(format!(
            "{key} = {value}: use {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

/// What every route is resolved against.
struct RouteLimits<'a> {
    default_timeout: Duration,
    max_body_bytes: usize,
    /// The profiles a route may name.
    profiles: &'a Catalog,
    /// Where the operator's come from, if anywhere.
    rules_dir: Option<&'a std::path::Path>,
}

fn route(raw: RawRoute, limits: &RouteLimits<'_>) -> Result<Route, ConfigError> {
    let what = format!("route \"{}\"", raw.name);
    if raw.name.is_empty() {
        return Err(invalid("a route needs a name"));
    }
    if limits.profiles.get(&raw.idp).is_none() {
        let whence = match limits.rules_dir {
            Some(dir) => format!("the bundled ones and those of [rules] dir {}", dir.display()),
            None => "the bundled ones; an operator's own profiles come from [rules] dir".to_owned(),
        };
        return Err(invalid(format!(
            "{what}: idp \"{}\" is not one of {} ({whence})",
            raw.idp,
            limits.profiles.names().join(", ")
        )));
    }
    if !raw.path_prefix.is_empty() && !raw.path_prefix.starts_with('/') {
        return Err(invalid(format!(
            "{what}: path_prefix \"{}\" must start with /",
            raw.path_prefix
        )));
    }
    let upstream = http_url(&raw.upstream, &what, "upstream", "upstream_auth")?;
    if raw.timeout_secs == Some(0) {
        return Err(invalid(format!("{what}: timeout_secs must be at least 1")));
    }
    if upstream.query().is_some() {
        return Err(invalid(format!(
            "{what}: upstream \"{}\" must not carry a query string",
            raw.upstream
        )));
    }
    let upstream_auth = raw.upstream_auth.map(|auth| upstream_auth(auth, &what)).transpose()?;
    let idp_token = secret(
        raw.idp_token_env.as_deref(),
        raw.idp_token_file.as_deref(),
        &format!("{what} idp_token_env/idp_token_file"),
    )?;
    if upstream_auth.is_some() && idp_token.is_none() && !raw.allow_anonymous_idp {
        return Err(invalid(format!(
            "{what}: upstream_auth without an IdP token lets anyone who reaches the listener act with the application's credentials; set idp_token_env or idp_token_file (or allow_anonymous_idp = true)"
        )));
    }
    let webhook = raw.webhook.map(|hook| webhook(hook, &what)).transpose()?;
    let redaction = Redaction::new(&raw.record.redact_attributes)
        .map_err(|why| invalid(format!("{what}: [route.record] {why}")))?;
    let mut target = raw.target;
    if target.max_aggregate_results.is_some_and(|max| max < target.max_results) {
        return Err(invalid(format!(
            "{what}: [route.target] max_aggregate_results must be at least max_results ({})",
            target.max_results
        )));
    }
    if target.max_bulk_operations == 0 {
        return Err(invalid(format!(
            "{what}: [route.target] max_bulk_operations must be at least 1"
        )));
    }
    match target.max_bulk_payload_bytes {
        Some(bytes) if bytes > limits.max_body_bytes => {
            return Err(invalid(format!(
                "{what}: [route.target] max_bulk_payload_bytes = {bytes} is above [record] max_body_bytes ({})",
                limits.max_body_bytes
            )))
        }
        Some(_) => {}
        None => target.max_bulk_payload_bytes = Some(limits.max_body_bytes),
    }
    let timeout = raw.timeout_secs.map_or(limits.default_timeout, Duration::from_secs);
    let pacing = route_pacing(&target, raw.pacing, timeout, &what)?;
    let reconcile_every = raw
        .reconcile
        .map(|reconcile| match retention_ms("every", &reconcile.every) {
            Ok(Some(ms)) if ms >= MIN_RECONCILE_EVERY_MS => Ok(Duration::from_millis(ms.unsigned_abs())),
            _ => Err(invalid(format!(
                "{what}: [route.reconcile] every = \"{}\": use a number with s, m, h or d, at least 10s (\"6h\"); a run reads every user and group of the application",
                reconcile.every
            ))),
        })
        .transpose()?;
    Ok(Route {
        name: raw.name,
        path_prefix: raw.path_prefix.trim_end_matches('/').to_owned(),
        idp: raw.idp,
        mode: raw.mode,
        target,
        shape_learning: raw.shape_learning.unwrap_or(100),
        upstream,
        timeout,
        upstream_auth,
        client_identity: raw.upstream_tls.map(|tls| TlsFiles {
            cert_path: tls.client_cert_path,
            key_path: tls.client_key_path,
        }),
        idp_token,
        allow_anonymous_idp: raw.allow_anonymous_idp,
        webhook,
        read_back: raw.read_back,
        redaction,
        pacing,
        reconcile_every,
    })
}

/// A route's pacing: `None` unless its target limits the requests it takes.
fn route_pacing(
    target: &Target,
    raw: Option<RawPacing>,
    timeout: Duration,
    what: &str,
) -> Result<Option<Pacing>, ConfigError> {
    let limits = [
        ("max_requests_per_second", target.max_requests_per_second),
        ("max_in_flight", target.max_in_flight),
    ];
    for (key, value) in limits {
        if let Some(value) = value.filter(|value| !(1..=100_000).contains(value)) {
            return Err(invalid(format!(
                "{what}: [route.target] {key} = {value}: use 1 to 100000"
            )));
        }
    }
    if target.max_requests_per_second.is_none() && target.max_in_flight.is_none() {
        return match raw {
            Some(_) => Err(invalid(format!(
                "{what}: [route.pacing] paces nothing: set [route.target] max_requests_per_second or max_in_flight"
            ))),
            None => Ok(None),
        };
    }
    let raw = raw.unwrap_or_default();
    let max_queued = raw.max_queued.unwrap_or(pacing::DEFAULT_MAX_QUEUED);
    if !(1..=65_536).contains(&max_queued) {
        return Err(invalid(format!(
            "{what}: [route.pacing] max_queued = {max_queued}: use 1 to 65536"
        )));
    }
    let patience = pacing::IDP_PATIENCE.as_secs();
    let max_wait = match raw.max_wait_secs {
        // 0 never waits: what cannot be sent at once is refused at once.
        Some(secs) if secs > 0 && Duration::from_secs(secs).saturating_add(timeout) >= pacing::IDP_PATIENCE => {
            return Err(invalid(format!(
                "{what}: [route.pacing] max_wait_secs = {secs} and the route's timeout of {} s make {} s, not under {patience} s: an IdP gives up after 60 s and sends the write again (R15); {}",
                timeout.as_secs(),
                secs.saturating_add(timeout.as_secs()),
                match Pacing::longest_wait(timeout) {
                    Some(longest) => format!("use at most {}", longest.as_secs()),
                    None => "with this timeout, use 0 (never wait)".to_owned(),
                }
            )))
        }
        Some(secs) => Duration::from_secs(secs),
        None => Pacing::longest_wait(timeout).ok_or_else(|| {
            invalid(format!(
                "{what}: the route's timeout of {} s leaves its pacing queue no time to wait under {patience} s (R15: an IdP gives up after 60 s and sends the write again); lower timeout_secs, or set [route.pacing] max_wait_secs = 0 to refuse at once what cannot be sent at once",
                timeout.as_secs()
            ))
        })?,
    };
    let max_pause_secs = raw.max_pause_secs.unwrap_or(pacing::DEFAULT_MAX_PAUSE.as_secs());
    if !(1..=3600).contains(&max_pause_secs) {
        return Err(invalid(format!(
            "{what}: [route.pacing] max_pause_secs = {max_pause_secs}: use 1 to 3600"
        )));
    }
    Ok(Some(Pacing {
        max_requests_per_second: target.max_requests_per_second,
        max_in_flight: target.max_in_flight,
        max_queued,
        max_wait,
        max_pause: Duration::from_secs(max_pause_secs),
    }))
}

/// An http:// or https:// URL with a host and no credentials in it (`key` names it in
/// messages; credentials go in `credentials_key` instead).
fn http_url(text: &str, what: &str, key: &str, credentials_key: &str) -> Result<http::Uri, ConfigError> {
    let url: http::Uri = text
        .parse()
        .map_err(|_| invalid(format!("{what}: {key} \"{text}\" is not a URL")))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
        return Err(invalid(format!(
            "{what}: {key} \"{text}\" must be an http:// or https:// URL"
        )));
    }
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(invalid(format!(
            "{what}: the {key} must not carry credentials; use {credentials_key}"
        )));
    }
    Ok(url)
}

fn webhook(raw: RawWebhook, what: &str) -> Result<Webhook, ConfigError> {
    let what = format!("{what} webhook");
    let url = http_url(&raw.url, &what, "url", "bearer_token_env")?;
    let max_attempts = raw.max_attempts.unwrap_or(5);
    if !(1..=20).contains(&max_attempts) {
        return Err(invalid(format!("{what}: max_attempts must be from 1 to 20")));
    }
    let bearer_token = secret(
        raw.bearer_token_env.as_deref(),
        raw.bearer_token_file.as_deref(),
        &format!("{what} bearer_token_env/bearer_token_file"),
    )?;
    // A bearer token in clear text, across a network, is a token given away.
    if bearer_token.is_some() && url.scheme_str() == Some("http") && !url.host().is_some_and(is_loopback_host) {
        return Err(invalid(format!(
            "{what}: a bearer token would cross the network in clear text to {url}; use https:// (plain http:// only to loopback)"
        )));
    }
    Ok(Webhook {
        url,
        bearer_token,
        max_attempts,
    })
}

fn upstream_auth(raw: RawUpstreamAuth, what: &str) -> Result<UpstreamAuth, ConfigError> {
    let what = format!("{what} upstream_auth");
    let RawUpstreamAuth {
        bearer_token_env,
        bearer_token_file,
        basic_username,
        basic_password_env,
        basic_password_file,
        header,
        value_env,
        value_file,
        oauth_token_url,
        oauth_client_id,
        oauth_client_secret_env,
        oauth_client_secret_file,
        oauth_scope,
    } = raw;
    let bearer = bearer_token_env.is_some() || bearer_token_file.is_some();
    let basic = basic_username.is_some() || basic_password_env.is_some() || basic_password_file.is_some();
    let custom = header.is_some() || value_env.is_some() || value_file.is_some();
    let oauth = oauth_token_url.is_some()
        || oauth_client_id.is_some()
        || oauth_client_secret_env.is_some()
        || oauth_client_secret_file.is_some()
        || oauth_scope.is_some();
    let forms = [bearer, basic, custom, oauth].into_iter().filter(|form| *form).count();
    let exactly_one = || {
        invalid(format!(
            "{what}: give exactly one of {{ bearer_token_env | bearer_token_file }}, {{ basic_username, basic_password_env | basic_password_file }}, {{ header, value_env | value_file }}, {{ oauth_token_url, oauth_client_id, oauth_client_secret_env | oauth_client_secret_file[, oauth_scope] }}"
        ))
    };
    if forms != 1 {
        return Err(exactly_one());
    }
    if oauth {
        let needs = |key: &str| invalid(format!("{what}: OAuth client credentials need {key}"));
        let token_url = http_url(
            &oauth_token_url.ok_or_else(|| needs("oauth_token_url"))?,
            &what,
            "oauth_token_url",
            "oauth_client_secret_env",
        )?;
        // The client secret crosses to the token endpoint: never in clear text over a network.
        if token_url.scheme_str() == Some("http") && !token_url.host().is_some_and(is_loopback_host) {
            return Err(invalid(format!(
                "{what}: the client secret would cross the network in clear text to {token_url}; use https:// (plain http:// only to loopback)"
            )));
        }
        let client_id = oauth_client_id.ok_or_else(|| needs("oauth_client_id"))?;
        let client_secret = required_secret(
            oauth_client_secret_env.as_deref(),
            oauth_client_secret_file.as_deref(),
            &what,
            "oauth_client_secret_env or oauth_client_secret_file",
        )?;
        return Ok(UpstreamAuth::ClientCredentials(Arc::new(
            scimtrail_proxy::upstream::ClientCredentials::new(token_url, client_id, client_secret, oauth_scope),
        )));
    }
    if bearer {
        return Ok(UpstreamAuth::Bearer(required_secret(
            bearer_token_env.as_deref(),
            bearer_token_file.as_deref(),
            &what,
            "bearer_token_env or bearer_token_file",
        )?));
    }
    if basic {
        let username = basic_username.ok_or_else(|| invalid(format!("{what}: basic needs basic_username")))?;
        let password = required_secret(
            basic_password_env.as_deref(),
            basic_password_file.as_deref(),
            &what,
            "basic_password_env or basic_password_file beside basic_username",
        )?;
        return Ok(UpstreamAuth::Basic { username, password });
    }
    let name = header.ok_or_else(|| invalid(format!("{what}: value_env or value_file needs header")))?;
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(invalid(format!("{what}: \"{name}\" is not a header name")));
    }
    let value = required_secret(
        value_env.as_deref(),
        value_file.as_deref(),
        &what,
        "value_env or value_file beside header",
    )?;
    Ok(UpstreamAuth::Header { name, value })
}

/// A URL with any password replaced, for messages.
pub fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, flags: &Overrides) -> Result<Settings, ConfigError> {
        Settings::resolve(RawConfig::from_toml(text, "test.toml")?, flags)
    }

    #[test]
    fn the_fingerprint_key_comes_from_the_configuration_else_beside_a_sqlite_store() {
        let key = |store: &str| {
            let route = "[[route]]\nname = \"a\"\nidp = \"generic\"\nupstream = \"http://127.0.0.1:9\"\n";
            resolve(&format!("[store]\n{store}\n{route}"), &Overrides::default()).map(|s| s.proxy.fingerprint_key)
        };
        assert_eq!(
            key("url = \"sqlite:///data/s.db\"\nfingerprint_key_env = \"KEY\"").unwrap(),
            KeySource::Env("KEY".into())
        );
        assert_eq!(
            key("url = \"postgres://h/db\"\nfingerprint_key_file = \"/k\"").unwrap(),
            KeySource::File("/k".into())
        );
        assert!(key("fingerprint_key_env = \"A\"\nfingerprint_key_file = \"/k\"")
            .unwrap_err()
            .to_string()
            .contains("keep one"));
        if std::env::var_os(fingerprint::KEY_ENV).is_none() {
            assert_eq!(
                key("url = \"sqlite:///data/s.db?mode=rwc\"").unwrap(),
                KeySource::BesideStore("/data/s.db.fingerprint-key".into())
            );
            assert_eq!(key("url = \"postgres://h/db\"").unwrap(), KeySource::Missing);
        }
    }

    #[test]
    fn the_store_url_can_come_from_a_file_above_url_and_below_the_flags() {
        let route = "[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:9\"\n";
        let file = std::env::temp_dir().join(format!("scimtrail-url-{}", std::process::id()));
        std::fs::write(&file, "postgres://u:secret@db:5432/s\n").unwrap();
        let text = format!(
            "[store]\nurl = \"sqlite://x.db\"\nurl_file = \"{}\"\n{route}",
            file.display()
        );
        let settings = resolve(&text, &Overrides::default()).unwrap();
        assert_eq!(settings.store_url, "postgres://u:secret@db:5432/s");
        assert!(
            !settings.describe().contains("secret"),
            "the password stays out of check-config"
        );
        let flagged = Overrides {
            store: Some("sqlite://flag.db".into()),
            ..Overrides::default()
        };
        assert_eq!(resolve(&text, &flagged).unwrap().store_url, "sqlite://flag.db");
        std::fs::remove_file(&file).unwrap();
        let missing = resolve(&text, &Overrides::default()).unwrap_err().to_string();
        assert!(
            missing.contains("[store] url_file") && missing.contains(&file.display().to_string()),
            "{missing}"
        );
    }

    #[test]
    fn the_example_file_is_valid_and_sets_every_section() {
        let text = include_str!("../../../config/scimtrail.example.toml");
        let raw = RawConfig::from_toml(text, "scimtrail.example.toml").unwrap();
        assert!(raw.listen.addr.is_some() && raw.admin.addr.is_some() && raw.store.url.is_some());
        assert!(
            raw.record.mode.is_some() && raw.record.max_body_bytes.is_some() && raw.record.redact_headers.is_some()
        );
        assert!(raw.upstream.timeout_secs.is_some() && raw.log.format.is_some() && !raw.route.is_empty());
        for key in [
            "addr",
            "tls",
            "cert_path",
            "key_path",
            "token_env",
            "url",
            "url_env",
            "url_file",
            "instance",
            "mode",
            "max_body_bytes",
            "max_response_bytes",
            "queue_capacity",
            "queue_max_bytes",
            "max_connections",
            "max_exchanges",
            "max_buffered_bytes",
            "idle_timeout_secs",
            "ready_grace_secs",
            "drain_secs",
            "heartbeat_secs",
            "instance_dead_after_secs",
            "on_store_failure",
            "spool_dir",
            "ok",
            "rejected",
            "failed",
            "unreachable",
            "partial",
            "interrupted",
            "max_store_bytes",
            "prune_every",
            "max_batch",
            "redact_headers",
            "timeout_secs",
            "ca_bundle_path",
            "format",
            "level",
            "name",
            "path_prefix",
            "idp",
            "upstream",
            "upstream_auth",
            "bearer_token_env",
            "basic_username",
            "basic_password_env",
            "header",
            "value_env",
            "idp_token_env",
            "target",
            "content_type",
            "member_type_required",
            "patch",
            "value_path_filters",
            "password_sync",
            "empty_members_replace",
            "filter_attributes",
            "user_name_case_exact",
            "max_results",
            "put",
            "max_patch_operations",
            "max_operation_values",
            "filter_operators",
            "shape_learning",
            "strict_booleans",
            "bulk",
            "sorting",
            "webhook",
            "max_attempts",
            "read_back",
            "first_byte_timeout_secs",
            "body_timeout_secs",
            "max_connections_per_client",
            "trusted_proxies",
            "token_file",
            "allowed_hosts",
            "allow_unauthenticated",
            "idp_token_file",
            "allow_anonymous_idp",
            "bearer_token_file",
            "max_aggregate_results",
            "max_bulk_operations",
            "max_bulk_payload_bytes",
            "fingerprint_key_env",
            "fingerprint_key_file",
            "durability",
            "sync_interval_ms",
            "sqlite_synchronous",
            "dir",
            "max_requests_per_second",
            "max_in_flight",
            "pacing",
            "max_queued",
            "max_wait_secs",
            "max_pause_secs",
            "reconcile",
            "every",
        ] {
            assert!(
                text.contains(&format!("{key} ="))
                    || text.contains(&format!("{key} = "))
                    || text.contains(&format!("# {key}"))
                    || text.contains(&format!(".{key}]")),
                "the example does not document {key}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = resolve("[listen]\nadress = \"127.0.0.1:1\"\n", &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("adress"), "{err}");
        let err = resolve(
            "[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\nupstrem_auth = {}\n",
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("upstrem_auth"), "{err}");
    }

    #[test]
    fn upstream_flag_alone_is_enough() {
        let settings = resolve(
            "",
            &Overrides {
                upstream: Some("http://127.0.0.1:8180".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(settings.proxy.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.proxy.admin_listen.to_string(), "127.0.0.1:9180");
        assert_eq!(settings.proxy.routes[0].idp, "generic");
        assert_eq!(settings.proxy.record_mode, RecordMode::Durable);
        assert!(resolve("", &Overrides::default())
            .unwrap_err()
            .to_string()
            .contains("no route"));
    }

    #[test]
    fn retention_reads_durations_per_outcome_and_keeps_the_defaults_for_the_rest() {
        let settings = resolve(
            "[retention]\nok = \"12h\"\nfailed = \"forever\"\nmax_store_bytes = 1000000\nprune_every = \"90s\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n",
            &Overrides::default(),
        )
        .unwrap();
        let retention = &settings.proxy.retention;
        assert_eq!(retention.keep_ms["ok"], Some(12 * 3_600_000));
        assert_eq!(retention.keep_ms["failed"], None);
        assert_eq!(retention.keep_ms["rejected"], Some(7 * 86_400_000));
        assert_eq!(retention.keep_ms["partial"], Some(180 * 86_400_000));
        assert_eq!(retention.max_store_bytes, Some(1_000_000));
        assert_eq!(settings.proxy.prune_every, Duration::from_secs(90));
        assert!(
            settings
                .describe()
                .contains("retention = ok 0.5 d, rejected 7 d, failed forever"),
            "{}",
            settings.describe()
        );
    }

    #[test]
    fn on_store_failure_says_what_happens_when_the_store_cannot_be_written() {
        let route = "[[route]]\nname = \"a\"\nupstream = \"http://x\"\n";
        let postgres = Overrides {
            store: Some("postgres://scimtrail@127.0.0.1:5432/scimtrail".into()),
            ..Overrides::default()
        };
        // ([record] lines, flags, fail closed, the spool's directory, a warning)
        type Case<'a> = (&'a str, &'a Overrides, bool, Option<&'a str>, Option<&'a str>);
        let cases: [Case<'_>; 6] = [
            ("", &postgres, true, None, None),
            (
                "on_store_failure = \"spool\"\nspool_dir = \"/var/spool/scimtrail\"\n",
                &postgres,
                true,
                Some("/var/spool/scimtrail"),
                None,
            ),
            (
                "on_store_failure = \"spool\"\n",
                &postgres,
                true,
                Some("scimtrail.spool"),
                None,
            ),
            (
                "on_store_failure = \"spool\"\n",
                &Overrides::default(),
                true,
                None,
                Some("applies to PostgreSQL stores"),
            ),
            (
                "on_store_failure = \"serve_unrecorded\"\n",
                &postgres,
                false,
                None,
                None,
            ),
            (
                "fail_closed = false\n",
                &postgres,
                false,
                None,
                Some("fail_closed is deprecated: write on_store_failure = \"serve_unrecorded\""),
            ),
        ];
        for (record, flags, fail_closed, spool, warning) in cases {
            let settings = resolve(&format!("[record]\n{record}{route}"), flags).unwrap();
            assert_eq!(settings.proxy.fail_closed, fail_closed, "{record}");
            assert_eq!(
                settings.spool_dir.as_deref(),
                spool.map(std::path::Path::new),
                "{record}"
            );
            match warning {
                Some(warning) => assert!(
                    settings.warnings.iter().any(|w| w.contains(warning)),
                    "{record}: {:?}",
                    settings.warnings
                ),
                None => assert!(settings.warnings.is_empty(), "{record}: {:?}", settings.warnings),
            }
        }
        for (record, error) in [
            (
                "on_store_failure = \"retry\"\n",
                "use \"fail_closed\", \"spool\" or \"serve_unrecorded\"",
            ),
            ("on_store_failure = \"spool\"\nfail_closed = true\n", "both set"),
        ] {
            let refused = resolve(&format!("[record]\n{record}{route}"), &postgres)
                .unwrap_err()
                .to_string();
            assert!(refused.contains(error), "{record}: {refused}");
        }
    }

    #[test]
    fn durability_is_chosen_in_record_and_its_older_key_is_an_alias_with_a_warning() {
        let route = "[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:9\"\n";
        // ([record] lines, [store] lines, durability, sync interval ms, a warning, check-config)
        type Case<'a> = (&'a str, &'a str, Durability, u64, Option<&'a str>, &'a str);
        let cases: [Case<'_>; 7] = [
            ("", "", Durability::Power, 10, None, "\ndurability = power ("),
            (
                "durability = \"power\"\n",
                "",
                Durability::Power,
                10,
                None,
                "\ndurability = power (",
            ),
            (
                "durability = \"process\"\n",
                "",
                Durability::Process,
                10,
                None,
                "\ndurability = process (a record is written before the exchange goes on, and synced within 10 ms",
            ),
            (
                "durability = \"process\"\nsync_interval_ms = 1000\n",
                "",
                Durability::Process,
                1000,
                None,
                "synced within 1000 ms",
            ),
            (
                "",
                "sqlite_synchronous = \"normal\"\n",
                Durability::Process,
                10,
                Some("[store] sqlite_synchronous is deprecated: write [record] durability = \"process\""),
                "\ndurability = process (",
            ),
            (
                "",
                "sqlite_synchronous = \"full\"\n",
                Durability::Power,
                10,
                Some("[store] sqlite_synchronous is deprecated: write [record] durability = \"power\""),
                "\ndurability = power (",
            ),
            (
                "durability = \"process\"\n",
                "sqlite_synchronous = \"normal\"\n",
                Durability::Process,
                10,
                Some("[store] sqlite_synchronous is deprecated"),
                "\ndurability = process (",
            ),
        ];
        for (record, store, durability, interval_ms, warning, described) in cases {
            let text = format!("[store]\n{store}[record]\n{record}{route}");
            let settings = resolve(&text, &Overrides::default()).unwrap();
            assert_eq!(settings.durability, durability, "{text}");
            assert_eq!(settings.sync_interval, Duration::from_millis(interval_ms), "{text}");
            let warnings: Vec<&String> = settings
                .warnings
                .iter()
                .filter(|w| w.contains("sqlite_synchronous"))
                .collect();
            match warning {
                Some(warning) => assert!(
                    warnings.len() == 1 && warnings[0].contains(warning),
                    "{text}: {warnings:?}"
                ),
                None => assert!(warnings.is_empty(), "{text}: {warnings:?}"),
            }
            let description = settings.describe();
            assert!(description.contains(described), "{text}: {description}");
            // check-config prints the deprecation as it prints every warning.
            if let Some(warning) = warning {
                assert!(description.contains(&format!("warning: {warning}")), "{description}");
            }
        }
        for (record, store, error) in [
            (
                "durability = \"power\"\n",
                "sqlite_synchronous = \"normal\"\n",
                "[record] durability = \"power\" and [store] sqlite_synchronous = \"normal\"",
            ),
            (
                "durability = \"process\"\n",
                "sqlite_synchronous = \"full\"\n",
                "[record] durability = \"process\" and [store] sqlite_synchronous = \"full\"",
            ),
            (
                "durability = \"full\"\n",
                "",
                "[record] durability = \"full\": use \"power\" or \"process\"",
            ),
            (
                "",
                "sqlite_synchronous = \"off\"\n",
                "[store] sqlite_synchronous = \"off\" (deprecated): write [record] durability",
            ),
            (
                "sync_interval_ms = 0\n",
                "",
                "[record] sync_interval_ms = 0: use 1 to 1000",
            ),
            (
                "sync_interval_ms = 1001\n",
                "",
                "[record] sync_interval_ms = 1001: use 1 to 1000",
            ),
            (
                "durability = \"process\"\nsync_interval_ms = 60000\n",
                "",
                "[record] sync_interval_ms = 60000: use 1 to 1000",
            ),
        ] {
            let text = format!("[store]\n{store}[record]\n{record}{route}");
            let refused = resolve(&text, &Overrides::default()).unwrap_err().to_string();
            assert!(refused.contains(error), "{text}: {refused}");
        }
    }

    #[test]
    fn bad_values_are_explained() {
        let cases = [
            ("[[route]]\nname = \"a\"\nidp = \"azure\"\nupstream = \"http://x\"\n", "not one of"),
            ("[[route]]\nname = \"a\"\nupstream = \"ftp://x\"\n", "http:// or https://"),
            ("[[route]]\nname = \"a\"\nupstream = \"https://u:p@x\"\n", "must not carry credentials"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\ntimeout_secs = 0\n", "at least 1"),
            ("[record]\nqueue_max_bytes = 1000\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[record] queue_max_bytes = 1000: use at least 1048576"),
            ("[retention]\nok = \"30 days\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[retention] ok = \"30 days\": use a number with s, m, h or d"),
            ("[retention]\nfailed = \"0d\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[retention] failed = \"0d\""),
            ("[retention]\nok = \"99999999999999d\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[retention] ok"),
            ("[retention]\nprune_every = \"forever\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "prune_every cannot be \"forever\""),
            ("[listen]\nidle_timeout_secs = 0\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] idle_timeout_secs = 0: use 1 to 3600"),
            ("[listen]\nmax_exchanges = 0\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] max_exchanges = 0: use 1 to 1000000"),
            ("[listen]\nmax_connections = 2000000\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] max_connections = 2000000: use 1 to 1000000"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nupstream_auth = { bearer_token_env = \"SCIMTRAIL_TEST_UNSET_VARIABLE\" }\n", "SCIMTRAIL_TEST_UNSET_VARIABLE is not set"),
            ("[store]\nheartbeat_secs = 5\ninstance_dead_after_secs = 14\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "use at least three heartbeats (15 s with heartbeat_secs = 5)"),
            ("[listen]\nready_grace_secs = 301\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] ready_grace_secs = 301: use 0 to 300"),
            ("[listen]\ndrain_secs = 0\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] drain_secs = 0: use 1 to 3600"),
            ("[listen]\nmax_buffered_bytes = 1000000\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "[listen] max_buffered_bytes = 1000000 cannot hold one exchange at its limits: use at least [record] max_body_bytes + max_response_bytes = 17825792"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nidp_token_file = \"/dev/null\"\nupstream_auth = { oauth_token_url = \"http://auth.example/token\", oauth_client_id = \"c\", oauth_client_secret_file = \"/dev/null\" }\n", "the client secret would cross the network in clear text"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nupstream_auth = { basic_username = \"u\" }\n", "give basic_password_env or basic_password_file beside basic_username"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nupstream_auth = { basic_username = \"u\", header = \"x-key\" }\n", "exactly one of"),
            ("[record]\nmode = \"eventually\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n", "durable"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[[route]]\nname = \"a\"\npath_prefix = \"/b\"\nupstream = \"http://x\"\n", "two routes are named"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.webhook]\nurl = \"ftp://h\"\n", "webhook: url \"ftp://h\" must be an http:// or https:// URL"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.record]\nredact_attributes = [\"userName\"]\n", "[route.record] redact_attributes: \"userName\" cannot be redacted"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.record]\nredact_attributes = [\"name.familyName\"]\n", "give a whole attribute"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.webhook]\nurl = \"http://h\"\nmax_attempts = 0\n", "max_attempts must be from 1 to 20"),
            ("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.webhook]\nurl = \"http://h\"\nretries = 3\n", "retries"),
        ];
        for (text, fragment) in cases {
            let err = resolve(text, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(fragment), "{text}: {err}");
        }
    }

    #[test]
    fn a_rules_dir_adds_profiles_routes_name_like_bundled_ones_and_check_config_lists_them() {
        let dir = std::env::temp_dir().join(format!("scimtrail-config-rules-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("acme.toml"),
            "[profile]\nname = \"acme\"\ndescription = \"Okta for Acme\"\nextends = \"okta\"\n\
             [[rule]]\nid = \"R5\"\ndisable = true\nwhy = \"Acme pages stably\"\n\
             [[test]]\nname = \"a lookup\"\nmethod = \"GET\"\npath = \"/Users\"\nquery = \"filter=userName+eq+%22a%22\"\n\
             expect_query = \"filter=userName%20eq%20%22a%22\"\n",
        )
        .unwrap();
        let route = "[[route]]\nname = \"a\"\nidp = \"acme\"\nupstream = \"http://127.0.0.1:9\"\n";
        let in_file = format!("[rules]\ndir = \"{}\"\n{route}", dir.display());
        let settings = resolve(&in_file, &Overrides::default()).unwrap();
        assert_eq!(settings.rules_dir.as_deref(), Some(dir.as_path()));
        let acme = settings.proxy.profiles.get("acme").unwrap();
        let described = settings.describe();
        assert!(
            described.contains(&format!(
                "rules = {}: 1 operator profiles beside the 7 bundled ones, read again on SIGHUP\n  profile acme ({}): extends okta, rules_version {}, {} rules, disables R5, 1 test cases passed\n",
                dir.display(),
                dir.join("acme.toml").display(),
                acme.version(),
                acme.rules.len()
            )),
            "{described}"
        );
        assert!(
            described.contains(&format!("(idp acme, rules_version {},", acme.version())),
            "{described}"
        );
        assert!(
            settings.warnings.is_empty(),
            "tested, with every safe repair: {:?}",
            settings.warnings
        );

        // From the environment (through the overrides), as well.
        let flagged = Overrides {
            rules_dir: Some(dir.display().to_string()),
            ..Overrides::default()
        };
        assert!(resolve(route, &flagged).unwrap().proxy.profiles.get("acme").is_some());

        // Without the directory, the route names nothing there is; the error says where from.
        let error = resolve(route, &Overrides::default()).unwrap_err().to_string();
        assert!(
            error.contains("route \"a\": idp \"acme\" is not one of okta, entra, onelogin, jumpcloud, google, ping, generic (the bundled ones; an operator's own profiles come from [rules] dir)"),
            "{error}"
        );
        let bundled_only = resolve(
            "[[route]]\nname = \"a\"\nupstream = \"http://127.0.0.1:9\"\n",
            &Overrides::default(),
        )
        .unwrap();
        assert!(bundled_only.describe().contains("rules = the 7 bundled profiles (okta, entra, onelogin, jumpcloud, google, ping, generic); no [rules] dir\n"));

        // A file that fails refuses the configuration, naming it and why; so does a key the
        // section does not have.
        std::fs::write(
            dir.join("broken.toml"),
            "[profile]\nname = \"broken\"\ndescription = \"d\"\nextends = \"nobody\"\n",
        )
        .unwrap();
        let error = resolve(&in_file, &Overrides::default()).unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "rule file {}: extends \"nobody\"",
                dir.join("broken.toml").display()
            )),
            "{error}"
        );
        std::fs::remove_file(dir.join("broken.toml")).unwrap();
        let error = resolve("[rules]\ndirectory = \"/x\"\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("directory"), "{error}");

        // A profile without cases loads, and check-config warns.
        std::fs::write(
            dir.join("bare.toml"),
            "[profile]\nname = \"bare\"\ndescription = \"d\"\nextends = \"generic\"\n",
        )
        .unwrap();
        let settings = resolve(&in_file, &Overrides::default()).unwrap();
        assert!(
            settings.describe().contains(&format!(
                "warning: [rules] profile bare ({}) has no [[test]] cases: its rules are loaded untested",
                dir.join("bare.toml").display()
            )),
            "{}",
            settings.describe()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unsafe_configurations_are_refused_unless_said_and_then_warned() {
        let dir = std::env::temp_dir().join(format!("scimtrail-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let token = token.display();
        let app_auth = format!("upstream_auth = {{ bearer_token_file = \"{token}\" }}\n");
        let cases = [
            (
                format!("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n{app_auth}"),
                "upstream_auth without an IdP token lets anyone who reaches the listener act with the application's credentials",
            ),
            (
                "[admin]\naddr = \"0.0.0.0:9180\"\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n".to_owned(),
                "the admin listener 0.0.0.0:9180 is off loopback without a token",
            ),
            (
                format!("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.webhook]\nurl = \"http://hooks.example/x\"\nbearer_token_file = \"{token}\"\n"),
                "a bearer token would cross the network in clear text to http://hooks.example/x",
            ),
            (
                format!("[[route]]\nname = \"a\"\nupstream = \"http://x\"\nidp_token_env = \"X\"\nidp_token_file = \"{token}\"\n"),
                "give the environment variable or the file, not both",
            ),
            (
                "[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.target]\nmax_results = 100\nmax_aggregate_results = 50\n".to_owned(),
                "max_aggregate_results must be at least max_results (100)",
            ),
            (
                "[record]\nmax_body_bytes = 1000\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n[route.target]\nmax_bulk_payload_bytes = 2000\n".to_owned(),
                "max_bulk_payload_bytes = 2000 is above [record] max_body_bytes (1000)",
            ),
            (
                "[listen]\ntrusted_proxies = [\"10.0.0.0/33\"]\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n".to_owned(),
                "[listen] trusted_proxies: \"10.0.0.0/33\" is not an address",
            ),
            (
                "[listen]\nfirst_byte_timeout_secs = 0\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\n".to_owned(),
                "[listen] first_byte_timeout_secs = 0: use 1 to 300",
            ),
        ];
        for (text, fragment) in &cases {
            let err = resolve(text, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(fragment), "{text}: {err}");
        }

        // Said in so many words, they start, and check-config says what they allow.
        let allowed = format!(
            "[admin]\naddr = \"0.0.0.0:9180\"\nallow_unauthenticated = true\n[[route]]\nname = \"a\"\nupstream = \"http://x\"\nallow_anonymous_idp = true\n{app_auth}[route.webhook]\nurl = \"http://127.0.0.1:9/hook\"\nbearer_token_file = \"{token}\"\n"
        );
        let settings = resolve(&allowed, &Overrides::default()).unwrap();
        assert_eq!(settings.warnings.len(), 2, "{:?}", settings.warnings);
        let described = settings.describe();
        for expected in [
            "warning: [admin] allow_unauthenticated",
            "warning: route a: allow_anonymous_idp",
            "idp token: not checked (allow_anonymous_idp)",
        ] {
            assert!(described.contains(expected), "{expected}: {described}");
        }
        assert!(!described.contains("s3cret"));
        assert_eq!(
            settings.proxy.routes[0].target.max_bulk_payload_bytes,
            Some(1024 * 1024)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_config_says_where_each_secret_comes_from_and_a_rotation() {
        let dir = std::env::temp_dir().join(format!("scimtrail-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("idp");
        std::fs::write(&token, "current").unwrap();
        std::fs::write(dir.join("idp.next"), "next").unwrap();
        let text = format!(
            "[[route]]\nname = \"a\"\nupstream = \"http://x\"\nidp_token_file = \"{}\"\n",
            token.display()
        );
        let described = resolve(&text, &Overrides::default()).unwrap().describe();
        let expected = format!(
            "idp token: required, redacted, from the file {0}, next value from {0}.next also accepted",
            token.display()
        );
        assert!(described.contains(&expected), "{described}");
        assert!(!described.contains("current") && !described.contains("next\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `[route.target] max_requests_per_second` and `max_in_flight` pace a route, with a queue
    /// whose wait and the route's timeout stay under 55 s (R15); what breaks that is refused,
    /// saying what would do.
    #[test]
    fn pacing_is_resolved_within_the_idps_patience_or_refused() {
        let route = |route: &str, target: &str, pacing: &str| {
            format!("[[route]]\nname = \"a\"\nupstream = \"http://x\"\n{route}[route.target]\n{target}{pacing}")
        };
        let refused = [
            (route("", "max_requests_per_second = 0\n", ""), "route \"a\": [route.target] max_requests_per_second = 0: use 1 to 100000"),
            (route("", "max_in_flight = 100001\n", ""), "[route.target] max_in_flight = 100001: use 1 to 100000"),
            (route("", "", "[route.pacing]\nmax_queued = 5\n"), "[route.pacing] paces nothing: set [route.target] max_requests_per_second or max_in_flight"),
            (
                route("timeout_secs = 30\n", "max_requests_per_second = 10\n", "[route.pacing]\nmax_wait_secs = 25\n"),
                "[route.pacing] max_wait_secs = 25 and the route's timeout of 30 s make 55 s, not under 55 s: an IdP gives up after 60 s and sends the write again (R15); use at most 24",
            ),
            (
                route("timeout_secs = 54\n", "max_in_flight = 2\n", ""),
                "the route's timeout of 54 s leaves its pacing queue no time to wait under 55 s",
            ),
            (
                route("timeout_secs = 60\n", "max_in_flight = 2\n", "[route.pacing]\nmax_wait_secs = 1\n"),
                "with this timeout, use 0 (never wait)",
            ),
            (route("", "max_in_flight = 2\n", "[route.pacing]\nmax_queued = 0\n"), "[route.pacing] max_queued = 0: use 1 to 65536"),
            (route("", "max_in_flight = 2\n", "[route.pacing]\nmax_pause_secs = 0\n"), "[route.pacing] max_pause_secs = 0: use 1 to 3600"),
            (route("", "max_in_flight = 2\n", "[route.pacing]\nmax_wait = 3\n"), "unknown field `max_wait`"),
            (route("", "requests_per_second = 2\n", ""), "unknown field `requests_per_second`"),
        ];
        for (text, fragment) in &refused {
            let err = resolve(text, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(fragment), "{text}: {err}");
        }

        // Defaults: the longest wait the timeout allows, 256 queued, pauses of 60 s at most.
        let paced = resolve(
            &route("", "max_requests_per_second = 100\nmax_in_flight = 8\n", ""),
            &Overrides::default(),
        )
        .unwrap();
        let expected = Pacing {
            max_requests_per_second: Some(100),
            max_in_flight: Some(8),
            max_queued: 256,
            max_wait: Duration::from_secs(24),
            max_pause: Duration::from_secs(60),
        };
        assert_eq!(paced.proxy.routes[0].pacing.as_ref(), Some(&expected));
        let described = paced.describe();
        assert!(
            described.contains("  paced: at most 100 requests per second and 8 in flight, per instance; at most 256 requests wait, each at most 24 s (with the 30 s timeout, under 55 s); an application's 429 pauses the route for its Retry-After, at most 60 s\n"),
            "{described}"
        );
        // Said: kept; 0 never waits, whatever the timeout.
        let said = route(
            "timeout_secs = 5\n",
            "max_in_flight = 1\n",
            "[route.pacing]\nmax_queued = 3\nmax_wait_secs = 49\nmax_pause_secs = 600\n",
        );
        let pacing = resolve(&said, &Overrides::default()).unwrap().proxy.routes[0]
            .pacing
            .clone()
            .unwrap();
        assert_eq!(
            (pacing.max_queued, pacing.max_wait.as_secs(), pacing.max_pause.as_secs()),
            (3, 49, 600)
        );
        let never = route(
            "timeout_secs = 90\n",
            "max_in_flight = 1\n",
            "[route.pacing]\nmax_wait_secs = 0\n",
        );
        assert_eq!(
            resolve(&never, &Overrides::default()).unwrap().proxy.routes[0]
                .pacing
                .as_ref()
                .map(|p| p.max_wait),
            Some(Duration::ZERO)
        );
        // Unpaced, a route has no pacing and says nothing of it.
        let plain = resolve(
            "[[route]]\nname = \"a\"\nupstream = \"http://x\"\n",
            &Overrides::default(),
        )
        .unwrap();
        assert!(plain.proxy.routes[0].pacing.is_none());
        assert!(!plain.describe().contains("paced"));
    }

    #[test]
    fn passwords_leave_urls_in_messages() {
        assert_eq!(
            without_password("postgres://app:s3cret@db:5432/scim"),
            "postgres://app:[redacted]@db:5432/scim"
        );
        assert_eq!(without_password("sqlite://scimtrail.db"), "sqlite://scimtrail.db");
    }
}
