//! Who may use `/api` and `/ui`. They hold every recorded body and start replays, so they
//! are guarded against more than a missing token:
//! - the admin token, when configured (a listener off loopback needs one unless the
//!   configuration says `allow_unauthenticated`), compared in constant time: as
//!   `Authorization: Bearer` (the API's callers), or as a session cookie the UI's login form
//!   gave in exchange for it;
//! - a `Host` that names this listener — an IP address, `localhost`, or one of
//!   `[admin] allowed_hosts` — so that a page whose domain is made to resolve to this
//!   address (DNS rebinding) cannot read it;
//! - no foreign `Origin`;
//! - for a state-changing request: a JSON body on the API (a cross-site form cannot send one
//!   without the browser asking first), and the session's CSRF token whenever the session
//!   cookie is what authenticates it (the UI's forms carry it as a field, its scripts as the
//!   `x-csrf-token` header).

use super::{Admin, OverTls, Peer};
use crate::audit::Caller;
use crate::clock::now_ms;
use crate::config::{ProxyConfig, Secret};
use crate::fingerprint::Key;
use crate::secret::constant_time_eq;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, ORIGIN};
use http::{HeaderMap, Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

/// Who may use `/api` and `/ui`.
pub(crate) struct AdminSettings {
    token: Option<Secret>,
    /// `Host` values (or host names, any port) allowed besides IP addresses and `localhost`.
    allowed_hosts: Vec<String>,
}

impl AdminSettings {
    pub(crate) fn new(config: &ProxyConfig) -> AdminSettings {
        AdminSettings {
            token: config.admin_token.clone(),
            allowed_hosts: config
                .admin_allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether a token is required (else the listener is open, as on loopback by default).
    pub(crate) fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// How a request presenting `Authorization: Bearer <token>` (the scheme in any case: RFC
    /// 7235 §2.1) is let in; `None` when it presents no bearer token.
    fn bearer_access(&self, headers: &HeaderMap) -> Option<Access> {
        let presented = crate::secret::bearer(headers)?;
        Some(if !self.token_required() || self.token_matches(presented) {
            Access::Bearer
        } else {
            Access::Refused
        })
    }

    /// Whether `presented` is the admin token (or its next value, during a rotation).
    pub(crate) fn token_matches(&self, presented: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|token| token.matches(presented.trim().as_bytes()))
    }

    /// Whether a `Host` (or an `Origin`'s host and port) names this listener.
    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = host_name(&host);
        // An address cannot be rebound to another one; only a domain name can.
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| *allowed == host || (!allowed.contains(':') && *allowed == name))
    }
}

/// The host of `host[:port]`, an IPv6 address without its brackets.
fn host_name(host: &str) -> &str {
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The session cookie's name.
const SESSION_COOKIE: &str = "scimtrail_session";

/// How long a session lasts.
const SESSION_MS: i64 = 12 * 3_600_000;

/// A browser's session with the UI, held in a cookie that any instance sharing the store's
/// fingerprint key can check without remembering it: `v1.<expires>.<nonce>.<who>.<mac>`.
/// `who` is the fingerprint of the token that logged in (`open` where no token is
/// required), for the audit. The CSRF token is a MAC of the nonce: a page on another origin
/// can neither read the cookie nor compute it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    nonce: String,
    who: String,
}

impl Session {
    /// A new session and its cookie's value.
    pub(crate) fn issue(key: &Key, who: &str, now_ms: i64) -> (Session, String) {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let expires = now_ms + SESSION_MS;
        let mac = session_mac(key, expires, &nonce, who);
        let cookie = format!("v1.{expires}.{nonce}.{who}.{mac}");
        (
            Session {
                nonce,
                who: who.to_owned(),
            },
            cookie,
        )
    }

    /// The session a request's cookie holds, if it is one this key issued and it has not
    /// expired.
    pub(crate) fn from_headers(headers: &HeaderMap, key: &Key, now_ms: i64) -> Option<Session> {
        let value = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, value)| value)?;
        let mut parts = value.split('.');
        let (Some("v1"), Some(expires), Some(nonce), Some(who), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let expires: i64 = expires.parse().ok()?;
        let genuine = constant_time_eq(session_mac(key, expires, nonce, who).as_bytes(), mac.as_bytes());
        (genuine && expires > now_ms).then(|| Session {
            nonce: nonce.to_owned(),
            who: who.to_owned(),
        })
    }

    /// The CSRF token every state-changing request of this session carries.
    pub(crate) fn csrf(&self, key: &Key) -> String {
        key.mac_hex(&[b"scimtrail ui csrf\0", self.nonce.as_bytes()], 16)
    }

    /// Whether `presented` is this session's CSRF token.
    pub(crate) fn csrf_matches(&self, key: &Key, presented: &str) -> bool {
        constant_time_eq(self.csrf(key).as_bytes(), presented.trim().as_bytes())
    }

    /// Who, for the audit.
    pub(crate) fn caller(&self, peer: Peer) -> Caller {
        Caller::ui(&self.who, peer.0)
    }
}

fn session_mac(key: &Key, expires: i64, nonce: &str, who: &str) -> String {
    key.mac_hex(
        &[
            b"scimtrail ui session\0",
            expires.to_string().as_bytes(),
            b"\0",
            nonce.as_bytes(),
            b"\0",
            who.as_bytes(),
        ],
        16,
    )
}

/// `Set-Cookie` for a session: HttpOnly (no script reads it), SameSite=Strict (no other site
/// sends it), `Secure` when the listener speaks TLS.
pub(crate) fn session_cookie(value: &str, tls: OverTls) -> HeaderValue {
    let secure = if tls.0 { "; Secure" } else { "" };
    let max_age = SESSION_MS / 1000;
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("scimtrail_session=; Path=/; Max-Age=0"))
}

/// `Set-Cookie` that ends the session in this browser.
pub(crate) fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("scimtrail_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// How a request to `/api` or `/ui` is let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// `Authorization: Bearer` with the admin token, or no token required and no session
    /// cookie: the API's callers.
    Bearer,
    /// A session cookie; state-changing requests must carry its CSRF token.
    Session(Session),
    /// Neither.
    Refused,
}

impl Admin {
    /// The checks of `Host` and `Origin`: the refusal, when one fails.
    pub(crate) fn foreign(&self, request: &Request) -> Option<(StatusCode, String)> {
        let headers = request.headers();
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| request.uri().authority().map(|a| a.to_string()));
        match host {
            Some(host) if self.settings.allows_host(&host) => {}
            Some(host) => {
                return Some((
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                    "Host \"{host}\" does not name this admin listener; add it to [admin] allowed_hosts if it should"
                ),
                ))
            }
            None => return Some((StatusCode::BAD_REQUEST, "a Host header is required".to_owned())),
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let text = origin.to_str().unwrap_or_default();
            let host = text.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
            if !host.is_some_and(|host| self.settings.allows_host(host)) {
                return Some((
                    StatusCode::FORBIDDEN,
                    format!("requests from the origin \"{text}\" are refused"),
                ));
            }
        }
        None
    }

    /// How the request is let in (see [`Access`]).
    pub(crate) fn access(&self, headers: &HeaderMap) -> Access {
        if let Some(access) = self.settings.bearer_access(headers) {
            return access;
        }
        let key = self.proxy.redactor.key();
        if let Some(session) = Session::from_headers(headers, key, now_ms()) {
            // A session is worth what its token is: nothing once that token is rotated out
            // (or, for a session of an open listener, once a token is required).
            let valid = match &self.settings.token {
                None => true,
                Some(token) => token
                    .each_value()
                    .iter()
                    .any(|value| constant_time_eq(key.fingerprint(value).as_bytes(), session.who.as_bytes())),
            };
            if valid {
                return Access::Session(session);
            }
        }
        if self.settings.token_required() {
            Access::Refused
        } else {
            Access::Bearer
        }
    }

    /// Who is asking when let in as [`Access::Bearer`], for the audit: the fingerprint of the
    /// token presented, and from where. (A session names itself: [`Session::caller`].)
    pub(crate) fn bearer_caller(&self, headers: &HeaderMap, peer: Peer) -> Caller {
        let presented = self
            .settings
            .token
            .as_ref()
            .and_then(|_| headers.get(AUTHORIZATION))
            .and_then(|v| v.to_str().ok());
        Caller::admin(presented, self.proxy.redactor.key(), peer.0)
    }

    /// Who a session opened with `token` is, for the audit: the token's fingerprint.
    pub(crate) fn session_holder(&self, token: Option<&str>) -> String {
        match token {
            Some(token) => self.proxy.redactor.key().fingerprint(token),
            None => OPEN.to_owned(),
        }
    }
}

/// `who` of a session where no token is required.
const OPEN: &str = "open";

/// The API's door: `Host`, `Origin`, a JSON body for a POST, the token or a session (whose
/// POSTs carry its CSRF token in `x-csrf-token`).
pub(crate) async fn api_guard(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    if let Some((status, error)) = admin.foreign(&request) {
        return refusal(status, error);
    }
    let posted = request.method() == Method::POST;
    if posted && !is_json(request.headers()) {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a POST needs Content-Type: application/json".to_owned(),
        );
    }
    let peer = Peer::of(&request);
    // Who is asking is decided here, once, and handed to the handlers for the audit.
    let caller = match admin.access(request.headers()) {
        Access::Bearer => admin.bearer_caller(request.headers(), peer),
        Access::Session(session) => {
            let csrf = request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok());
            if posted && !csrf.is_some_and(|csrf| session.csrf_matches(admin.proxy.redactor.key(), csrf)) {
                return refusal(
                    StatusCode::FORBIDDEN,
                    "a POST with a session cookie needs its CSRF token (x-csrf-token)".to_owned(),
                );
            }
            session.caller(peer)
        }
        Access::Refused => {
            let mut response = refusal(StatusCode::UNAUTHORIZED, "an admin bearer token is required".to_owned());
            response
                .headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    let mut request = request;
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json" || (v.starts_with("application/") && v.ends_with("+json")))
}

/// A refusal as the API words it.
pub(crate) fn refusal(status: StatusCode, error: String) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json!({ "error": error }).to_string(),
    )
        .into_response()
}

/// Every admin request holds one of a bounded number of slots while it is answered.
pub(crate) async fn take_slot(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let Ok(_slot) = Arc::clone(&admin.slots).acquire_owned().await else {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_name_the_listener() {
        let settings = AdminSettings {
            token: None,
            allowed_hosts: vec!["scimtrail-admin".into(), "admin.example:8443".into()],
        };
        for host in [
            "127.0.0.1:9180",
            "[::1]:9180",
            "10.0.0.7:9180",
            "localhost:9180",
            "LOCALHOST",
            "scimtrail-admin:9180",
            "admin.example:8443",
        ] {
            assert!(settings.allows_host(host), "{host}");
        }
        for host in [
            "attacker.example:9180",
            "localhost.attacker.example",
            "admin.example:9180",
            "127.0.0.1.nip.io:9180",
            "",
        ] {
            assert!(!settings.allows_host(host), "{host}");
        }
    }

    #[test]
    fn the_admin_token_is_taken_whatever_the_scheme_s_case() {
        let settings = AdminSettings {
            token: Some(Secret::new("the-admin-token")),
            allowed_hosts: Vec::new(),
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let headers = with(&format!("{scheme} the-admin-token"));
            assert_eq!(settings.bearer_access(&headers), Some(Access::Bearer), "{scheme}");
            let wrong = with(&format!("{scheme} another-token"));
            assert_eq!(settings.bearer_access(&wrong), Some(Access::Refused), "{scheme}");
        }
        assert_eq!(settings.bearer_access(&with("Basic YWJj")), None);
        assert_eq!(settings.bearer_access(&HeaderMap::new()), None);
    }

    #[test]
    fn a_session_cookie_is_checked_and_expires() {
        let key = crate::fingerprint::KeySource::Fixed(b"a test key of enough bytes".to_vec())
            .load()
            .unwrap();
        let other = crate::fingerprint::KeySource::Fixed(b"another key of enough bytes".to_vec())
            .load()
            .unwrap();
        let (session, cookie) = Session::issue(&key, "hmac:0123456789ab", 1_000);
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                COOKIE,
                HeaderValue::from_str(&format!("a=b; {SESSION_COOKIE}={value}")).unwrap(),
            );
            headers
        };
        assert_eq!(
            Session::from_headers(&headers(&cookie), &key, 2_000),
            Some(session.clone())
        );
        assert_eq!(
            Session::from_headers(&headers(&cookie), &other, 2_000),
            None,
            "another key"
        );
        assert_eq!(
            Session::from_headers(&headers(&cookie), &key, 1_000 + SESSION_MS),
            None,
            "expired"
        );
        let forged = cookie.replace("hmac:0123456789ab", "open");
        assert_eq!(
            Session::from_headers(&headers(&forged), &key, 2_000),
            None,
            "who is signed"
        );
        assert!(session.csrf_matches(&key, &session.csrf(&key)));
        assert!(!session.csrf_matches(&key, ""));
        let (second, _) = Session::issue(&key, "open", 1_000);
        assert!(
            !second.csrf_matches(&key, &session.csrf(&key)),
            "one session's token is not another's"
        );
    }
}
