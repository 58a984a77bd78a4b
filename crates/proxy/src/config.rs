//! The proxy's runtime settings, already validated (the `app` crate reads and checks the file).

pub use crate::pacing::Pacing;
use crate::recorder::RecordMode;
pub use crate::secret::{Secret, SecretError, SecretSource};
use scimtrail_rules::{Catalog, Mode, Target};
use scimtrail_scim::redact::Redaction;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// OAuth 2.0 client credentials: `Authorization: Bearer <access token>`, the token fetched
    /// from the application's token endpoint and replaced before it expires.
    ClientCredentials(Arc<crate::upstream::ClientCredentials>),
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
    /// The IdP profile's name: one of [`ProxyConfig::profiles`]. Its rules are looked up
    /// once per exchange (`profiles.rs`), so that a reload of the operator's rule files
    /// reaches new exchanges and none in flight.
    pub idp: String,
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
    /// The client certificate presented to the application (mutual TLS), if it asks for one.
    pub client_identity: Option<TlsFiles>,
    /// The bearer token the IdP must present; `None` accepts any (the application decides).
    pub idp_token: Option<Secret>,
    /// Whether a route with `upstream_auth` and no `idp_token` was meant: anyone who reaches
    /// the listener then acts with the application's credentials.
    pub allow_anonymous_idp: bool,
    /// Where alerts go: failed or partial deprovisions, shape drift.
    pub webhook: Option<Webhook>,
    /// Whether a write the application accepted is followed by a GET of the resource,
    /// recorded as a child exchange and read by the findings.
    pub read_back: bool,
    /// What is never stored of this route's traffic: passwords and the attributes named in
    /// `[route.record] redact_attributes`.
    pub redaction: Redaction,
    /// How requests to the application are paced (`pacing.rs`); `None`: they are not.
    pub pacing: Option<Pacing>,
    /// How often the application is reconciled with the IdP's intent on its own
    /// (`[route.reconcile] every`, `reconcile/follower.rs`); `None`: only when asked.
    pub reconcile_every: Option<std::time::Duration>,
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
    /// requests included), or an HTTP/2 connection without an open stream, before it is closed.
    pub idle_timeout: Duration,
    /// How long a new connection has to send its first bytes (after its TLS handshake, which
    /// must also end within this time).
    pub first_byte_timeout: Duration,
    /// How long an authenticated request has to send its whole body, before it takes an
    /// exchange slot.
    pub body_timeout: Duration,
    /// After SIGTERM, how long `/readyz` says unready while the listeners still serve, so
    /// that a load balancer polling it stops sending before the drain begins.
    pub ready_grace: Duration,
    /// How long the drain waits for exchanges in flight before the process ends anyway.
    pub drain: Duration,
    /// How often this instance writes its heartbeat to the store (and looks for silent
    /// instances to reap).
    pub heartbeat: Duration,
    /// An instance whose heartbeat is older than this is dead to the others: its exchanges
    /// left in flight become `interrupted`.
    pub instance_dead_after: Duration,
    /// Connections (or, through a trusted proxy, exchanges) one client address may hold at
    /// once; `None`: no bound per client.
    pub max_connections_per_client: Option<usize>,
    /// Load balancers and proxies in front of scimtrail: for a connection from one of them,
    /// the client is the address it names in `X-Forwarded-For`.
    pub trusted_proxies: Vec<IpNet>,
    /// The admin listener.
    pub admin_listen: SocketAddr,
    /// Bearer token for `/api` and `/ui` on the admin listener.
    pub admin_token: Option<Secret>,
    /// `Host` values the admin listener answers `/api` and `/ui` under, besides its own
    /// address (and `localhost` when it listens on loopback): names a container or a load
    /// balancer gives it.
    pub admin_allowed_hosts: Vec<String>,
    /// Durable or async recording.
    pub record_mode: RecordMode,
    /// Durable mode, store failing: refuse the exchange with 503 (`true`, the default) or keep
    /// serving unrecorded (`false`; every failed write is counted in `/metrics`).
    pub fail_closed: bool,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest response body accepted from the application.
    pub max_response_bytes: usize,
    /// What exchanges from the listener may buffer between them, their requests and the
    /// application's answers (`buffers.rs`); at least `max_body_bytes + max_response_bytes`.
    pub max_buffered_bytes: usize,
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
    /// The IdP profiles at start: the bundled ones and the operator's (`[rules] dir`); it
    /// holds every route's `idp`. SIGHUP may swap it for another (`Running::reload`).
    pub profiles: Arc<Catalog>,
    /// This instance's name in the store.
    pub instance: String,
    /// Extra CA certificates (PEM) trusted for https upstreams, besides the system's.
    pub ca_bundle: Option<PathBuf>,
    /// Where the key credentials' fingerprints are made with comes from.
    pub fingerprint_key: crate::fingerprint::KeySource,
    /// How long each outcome is kept, and how large the store may grow.
    pub retention: scimtrail_store::Retention,
    /// How often the store is pruned.
    pub prune_every: Duration,
}

/// An address block (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<IpNet, String> {
        let bad = || format!("\"{text}\" is not an address or an address block like 10.0.0.0/8");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// This machine's name, for an instance's default name and the audit's origin of a CLI
/// action: `$HOSTNAME`, else `/etc/hostname`, else `scimtrail`.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "scimtrail".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_blocks() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()) && !all.contains("::1".parse().unwrap()));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()) && !v6.contains("fe80::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "host", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }
}
