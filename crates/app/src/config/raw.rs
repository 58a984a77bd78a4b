//! The file, as written: serde types that refuse unknown keys by name.

use super::ConfigError;
use scimtrail_rules::{Mode, Target};
use serde::Deserialize;
use std::path::PathBuf;

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

pub(super) fn generic() -> String {
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
