//! The proxy's runtime settings, already validated (the `app` crate reads and checks the file).

use crate::recorder::RecordMode;
use scimtrail_rules::{Mode, Profile, Target};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A secret value: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Certificate chain and private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert_path: PathBuf,
    /// The private key.
    pub key_path: PathBuf,
}

/// Credentials the proxy presents to the application, replacing the IdP's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// A custom header, e.g. `X-API-Key`.
    Header {
        /// The header name.
        name: String,
        /// Its value.
        value: Secret,
    },
}

/// Where a route's alerts go (see `alerts.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The URL alerts are POSTed to.
    pub url: http::Uri,
    /// Sent as `Authorization: Bearer <token>`, when set.
    pub bearer_token: Option<Secret>,
    /// Attempts per alert before it is given up on (at least 1).
    pub max_attempts: u32,
}

/// One route: a path prefix, the IdP it serves, and the application behind it.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its name, as recorded.
    pub name: String,
    /// `/entra`: `/entra/Users` goes to `<upstream>/Users`. Empty matches every path.
    pub path_prefix: String,
    /// The IdP profile's name.
    pub idp: String,
    /// The IdP profile's rules.
    pub profile: Arc<Profile>,
    /// Whether the rules change the exchange or only record what they would change.
    pub mode: Mode,
    /// What the application accepts.
    pub target: Target,
    /// Exchanges (per instance) before a new request shape is a `shape_drift` finding.
    pub shape_learning: u64,
    /// The application's SCIM base URL.
    pub upstream: http::Uri,
    /// How long the application may take.
    pub timeout: Duration,
    /// Credentials for the application; `None` passes the IdP's through.
    pub upstream_auth: Option<UpstreamAuth>,
    /// The bearer token the IdP must present; `None` accepts any (the application decides).
    pub idp_token: Option<Secret>,
    /// Where alerts go: failed or partial deprovisions, shape drift.
    pub webhook: Option<Webhook>,
    /// Whether a write the application accepted is followed by a GET of the resource,
    /// recorded as a child exchange and read by the findings.
    pub read_back: bool,
}

/// Everything the proxy needs to run.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The proxy listener.
    pub listen: SocketAddr,
    /// TLS on the proxy listener.
    pub tls: Option<TlsFiles>,
    /// Connections the proxy listener serves at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Exchanges in flight at once; more requests wait for a slot before they are handled.
    pub max_exchanges: usize,
    /// How long a connection may go without sending a complete request head (idle between
    /// requests included) before it is closed.
    pub idle_timeout: Duration,
    /// The admin listener.
    pub admin_listen: SocketAddr,
    /// Bearer token for `/api` and `/ui` on the admin listener.
    pub admin_token: Option<Secret>,
    /// Durable or async recording.
    pub record_mode: RecordMode,
    /// Durable mode, store failing: refuse the exchange with 503 (`true`, the default) or keep
    /// serving unrecorded (`false`; every failed write is counted in `/metrics`).
    pub fail_closed: bool,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest response body accepted from the application.
    pub max_response_bytes: usize,
    /// Writer queue capacity.
    pub queue_capacity: usize,
    /// Bytes of bodies queued for the writer behind exchanges (async mode), at most.
    pub queue_max_bytes: usize,
    /// Most writes per transaction.
    pub max_batch: usize,
    /// Headers redacted on top of Authorization, Proxy-Authorization, Cookie, Set-Cookie.
    pub redact_headers: Vec<String>,
    /// The routes; the longest matching prefix wins.
    pub routes: Vec<Route>,
    /// This instance's name in the store.
    pub instance: String,
    /// Extra CA certificates (PEM) trusted for https upstreams, besides the system's.
    pub ca_bundle: Option<PathBuf>,
}
