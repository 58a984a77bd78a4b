//! The application's side: the pooled client, and the one place where every request to an
//! application is built ([`build`]) and sent ([`Upstream::send`]).
//!
//! Every request scimtrail sends to an application goes through here — the IdP's request
//! forwarded, the parts of a split PATCH and the pages of a list, the GETs that stateful rules,
//! R6 and read-back make, and replay's checks — so these hold for all of them:
//! - **Where:** the route's upstream base URL and nowhere else. The path is relative to the
//!   base and checked like an IdP's (`path_safety`: no dot segments, no hidden slashes), and
//!   the URL built must keep the base's scheme and authority.
//! - **Credentials:** with `upstream_auth`, the route's credentials are sent and the IdP's
//!   (`Authorization`, `Proxy-Authorization`, `Cookie`) never are. Without, the IdP's
//!   `Authorization` passes through: that is how such a route authenticates.
//! - **Time:** the route's timeout covers the whole exchange, the response body included, so an
//!   application that stalls mid-body cannot hold an exchange (or a shutdown) past it.
//! - **Bodies:** an encoded answer (`gzip`, `deflate`, `br`) is decoded, to at most
//!   `max_response_bytes`, before anyone reads it.
//! - **Pacing:** on a route with `[route.target] max_requests_per_second` or `max_in_flight`,
//!   each request waits its turn (`pacing.rs`), and an application's 429 pauses the route.
//!
//! The client is hyper-util's, over rustls (system roots plus a configured CA bundle), HTTP/1.1
//! and HTTP/2 by ALPN; a route with a client certificate (mutual TLS) has a client of its own,
//! which presents it. A route whose application asks for OAuth 2.0 client credentials gets its
//! access token from `oauth.rs`, set on the request as it is sent — after [`build`], so the
//! token is never in what is recorded.

mod oauth;

use crate::buffers::{self, NoRoom, Reserved};
use crate::config::{Route, TlsFiles, UpstreamAuth};
pub use crate::connector::Connector;
use crate::content_coding;
use crate::metrics::Metrics;
use crate::pacing::{Pacer, Patience, Refused};
use crate::path_safety::{self, PathCheck};
use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_TYPE, COOKIE, EXPECT, HOST, IF_MATCH, RETRY_AFTER,
};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
pub use oauth::ClientCredentials;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The client type.
pub type UpstreamClient = Client<HttpsConnector<Connector>, Full<Bytes>>;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA bundle could not be read.
    #[error("cannot read the CA bundle {path}: {source}")]
    CaBundle {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    /// A route's client certificate or key could not be used.
    #[error("the client certificate: {0}")]
    Identity(String),
}

/// Builds the client, over the network; with `identity`, it presents that client certificate
/// to applications that ask for one.
pub fn client(ca_bundle: Option<&Path>, identity: Option<&TlsFiles>) -> Result<UpstreamClient, ClientError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    client_over(Connector::Tcp(http), ca_bundle, identity)
}

/// Builds the client over `connector`.
pub fn client_over(
    connector: Connector,
    ca_bundle: Option<&Path>,
    identity: Option<&TlsFiles>,
) -> Result<UpstreamClient, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_bundle {
        let io_error = |source| ClientError::CaBundle {
            path: path.display().to_string(),
            source,
        };
        let pem = std::fs::read(path).map_err(io_error)?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(io_error)?;
            roots.add(cert)?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls_files::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let tls = match identity {
        None => tls.with_no_client_auth(),
        Some(files) => {
            let (chain, key) = crate::tls_files::chain_and_key(files).map_err(ClientError::Identity)?;
            tls.with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Identity(format!("{}: {e}", files.cert_path.display())))?
        }
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector))
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A request to the application, as a caller describes it: [`build`] alone makes it HTTP.
pub(crate) struct Outbound<'a> {
    /// The method.
    pub(crate) method: &'a str,
    /// The path relative to the route's upstream base (`/Users/42`).
    pub(crate) path: &'a str,
    /// The query string, without `?`.
    pub(crate) query: Option<&'a str>,
    /// The body (decoded: no content coding).
    pub(crate) body: Bytes,
    /// The body's content type, when the caller chooses it (else the IdP's, when forwarded).
    pub(crate) content_type: Option<&'a str>,
    /// `If-Match`, when the caller sets it.
    pub(crate) if_match: Option<&'a str>,
    /// Whose request it is.
    pub(crate) on_behalf: OnBehalf<'a>,
}

/// Whose request an [`Outbound`] is.
pub(crate) enum OnBehalf<'a> {
    /// The IdP's, forwarded: its end-to-end headers go with it, and `X-Forwarded-*` say who
    /// sent it (`peer`, over `scheme`).
    Forward {
        parts: &'a http::request::Parts,
        peer: IpAddr,
        scheme: &'static str,
    },
    /// The proxy's own, for an exchange whose request headers are these: only a credential
    /// can come from them.
    Proxy { idp_headers: &'a HeaderMap },
}

impl OnBehalf<'_> {
    fn idp_headers(&self) -> &HeaderMap {
        match self {
            OnBehalf::Forward { parts, .. } => &parts.headers,
            OnBehalf::Proxy { idp_headers } => idp_headers,
        }
    }
}

/// The request `outbound` describes, to `route`'s application. `Err` says why it cannot be
/// sent there (nothing is sent).
pub(crate) fn build(route: &Route, outbound: &Outbound<'_>) -> Result<Request<Full<Bytes>>, String> {
    match path_safety::check(outbound.path) {
        PathCheck::Clean => {}
        PathCheck::Collapsed(_) => return Err(format!("the path \"{}\" has empty segments", outbound.path)),
        PathCheck::Refused(why) => return Err(why),
    }
    if outbound.query.is_some_and(|q| q.contains('#')) {
        return Err("the query holds a '#'".to_owned());
    }
    let base = route.upstream.to_string();
    let mut uri = format!("{}{}", base.trim_end_matches('/'), outbound.path);
    if let Some(query) = outbound.query {
        uri.push('?');
        uri.push_str(query);
    }
    let parsed: http::Uri = uri
        .parse()
        .map_err(|error| format!("\"{uri}\" is not a URL: {error}"))?;
    if parsed.scheme() != route.upstream.scheme() || parsed.authority() != route.upstream.authority() {
        return Err(format!("\"{uri}\" is not on the route's upstream"));
    }
    let method = http::Method::from_bytes(outbound.method.as_bytes())
        .map_err(|_| format!("invalid method {}", outbound.method))?;
    let mut headers = HeaderMap::new();
    match &outbound.on_behalf {
        OnBehalf::Forward { parts, peer, scheme } => forwarded_headers(&mut headers, route, parts, *peer, scheme),
        OnBehalf::Proxy { .. } => {
            headers.insert(ACCEPT, HeaderValue::from_static("application/scim+json"));
        }
    }
    credentials(&mut headers, route, outbound.on_behalf.idp_headers());
    if let Some(content_type) = outbound.content_type {
        let value =
            HeaderValue::from_str(content_type).map_err(|_| format!("invalid content type {content_type:?}"))?;
        headers.insert(CONTENT_TYPE, value);
    }
    if let Some(version) = outbound.if_match {
        let value = HeaderValue::from_str(version).map_err(|_| format!("invalid If-Match {version:?}"))?;
        headers.insert(IF_MATCH, value);
    }
    let mut request = Request::new(Full::new(outbound.body.clone()));
    *request.method_mut() = method;
    *request.uri_mut() = parsed;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The IdP's end-to-end headers, less what belongs to its connection, to its body as it was
/// encoded, or to its credentials when the route has its own; and the forwarding headers.
fn forwarded_headers(
    headers: &mut HeaderMap,
    route: &Route,
    parts: &http::request::Parts,
    peer: IpAddr,
    scheme: &'static str,
) {
    let listed = connection_listed(&parts.headers);
    let own_credentials = route.upstream_auth.is_some();
    for (name, value) in &parts.headers {
        let lower = name.as_str();
        let skipped = HOP_BY_HOP.contains(&lower)
            || listed.iter().any(|l| l == lower)
            || [HOST, CONTENT_LENGTH, CONTENT_ENCODING, ACCEPT_ENCODING, EXPECT].contains(name)
            || (own_credentials && (name == AUTHORIZATION || name == COOKIE));
        if !skipped {
            headers.append(name.clone(), value.clone());
        }
    }
    // The body goes decoded; the answer may come encoded in what the proxy can decode.
    if parts.headers.contains_key(ACCEPT_ENCODING) {
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(content_coding::ACCEPTED));
    }
    let forwarded_for = match parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(previous) => format!("{previous}, {peer}"),
        None => peer.to_string(),
    };
    set(headers, "x-forwarded-for", &forwarded_for);
    set(headers, "x-forwarded-proto", scheme);
    headers.remove("x-forwarded-host");
    let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    // HTTP/2 carries the host in the :authority pseudo-header, which hyper puts in the URI.
    if let Some(host) = host.or_else(|| parts.uri.authority().map(|a| a.to_string())) {
        set(headers, "x-forwarded-host", &host);
    }
}

/// The one rule for credentials toward the application: the route's own, when it has them;
/// else the IdP's `Authorization`.
fn credentials(headers: &mut HeaderMap, route: &Route, idp_headers: &HeaderMap) {
    match &route.upstream_auth {
        Some(UpstreamAuth::Bearer(token)) => set(headers, "authorization", &format!("Bearer {}", token.expose())),
        Some(UpstreamAuth::Basic { username, password }) => {
            let pair = format!("{username}:{}", password.expose());
            set(headers, "authorization", &format!("Basic {}", base64(pair.as_bytes())));
        }
        Some(UpstreamAuth::Header { name, value }) => set(headers, name, &value.expose()),
        // Set by `Upstream::send`: a token is fetched, and never recorded.
        Some(UpstreamAuth::ClientCredentials(_)) => {}
        None => {
            if let Some(authorization) = idp_headers.get(AUTHORIZATION) {
                headers.insert(AUTHORIZATION, authorization.clone());
            }
        }
    }
}

fn set(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        headers.insert(name, value);
    }
}

pub(crate) fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The application's response headers, less those that belong to its connection.
pub(crate) fn end_to_end(upstream: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len() + 1);
    for (name, value) in upstream {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower) || listed.iter().any(|l| l == lower) || name == CONTENT_LENGTH {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// What the application answered, its body whole and decoded.
pub(crate) struct Answer {
    pub(crate) parts: http::response::Parts,
    pub(crate) body: Bytes,
    /// Whether the application had encoded the body (now decoded, its `Content-Encoding` gone).
    pub(crate) encoded: bool,
}

/// Why no whole answer came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// The application could not be reached, or the connection failed before an answer.
    Unreachable(String),
    /// No whole answer, body included, within the route's timeout.
    Timeout(Duration),
    /// The answer's body could not be read, was too large, or could not be decoded.
    BadResponse(String),
    /// The answer's head came, but there was no room to buffer its body.
    NoRoom(NoRoom),
    /// Not sent: the route's pacing held it back (`pacing.rs`).
    Paced(Refused),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Unreachable(why) => write!(f, "could not be reached: {why}"),
            UpstreamError::Timeout(limit) => write!(f, "did not answer whole within {} s", limit.as_secs_f64()),
            UpstreamError::BadResponse(why) => write!(f, "its answer could not be read: {why}"),
            UpstreamError::NoRoom(no_room) => write!(f, "answered, but {no_room}"),
            UpstreamError::Paced(refused) => write!(f, "was not sent: {}", refused.detail),
        }
    }
}

/// Sends requests to applications (see the module's documentation).
#[derive(Clone)]
pub(crate) struct Upstream {
    client: UpstreamClient,
    /// The clients of routes with a client certificate, by route name.
    route_clients: Arc<HashMap<String, UpstreamClient>>,
    /// The pacing of each paced route, by route name: every route whose configuration has
    /// pacing, and no other.
    pacers: Arc<HashMap<String, Pacer>>,
    max_response_bytes: usize,
    metrics: Arc<Metrics>,
}

impl Upstream {
    /// Sends with `client`, or a route's own; paces the routes in `routes` that have pacing.
    pub(crate) fn new(
        client: UpstreamClient,
        route_clients: HashMap<String, UpstreamClient>,
        routes: &[Route],
        max_response_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> Upstream {
        let pacers = routes
            .iter()
            .filter_map(|route| {
                let pacing = route.pacing.clone()?;
                Some((
                    route.name.clone(),
                    Pacer::new(&route.name, pacing, Arc::clone(&metrics)),
                ))
            })
            .collect();
        Upstream {
            client,
            route_clients: Arc::new(route_clients),
            pacers: Arc::new(pacers),
            max_response_bytes,
            metrics,
        }
    }

    /// Sends a request [`build`] made for `route`, for the exchange whose `patience` it is: its
    /// turn first, on a paced route; then the whole answer within the route's timeout (a token
    /// fetched for it included).
    pub(crate) async fn send(
        &self,
        route: &Route,
        request: Request<Full<Bytes>>,
        patience: &mut Patience,
    ) -> Result<Answer, UpstreamError> {
        self.send_within(route, request, None, patience).await
    }

    /// The same, reserving room for the answer's body in `room` once its head arrives: the
    /// wait for room (bounded in `buffers.rs`) does not count against the route's timeout.
    pub(crate) async fn send_within(
        &self,
        route: &Route,
        request: Request<Full<Bytes>>,
        room: Option<&mut Reserved>,
        patience: &mut Patience,
    ) -> Result<Answer, UpstreamError> {
        // A proxy without paced routes looks no further; the turn is held until the answer
        // is whole (or has failed).
        let pacer = match self.pacers.is_empty() {
            true => None,
            false => self.pacers.get(&route.name),
        };
        let _turn = match pacer {
            Some(pacer) => Some(pacer.turn(patience).await.map_err(UpstreamError::Paced)?),
            None => None,
        };
        let started = Instant::now();
        let timed_out = || UpstreamError::Timeout(route.timeout);
        let answer = async {
            let head = tokio::time::timeout(route.timeout, self.head(route, request)).await;
            let response = head.unwrap_or_else(|_| Err(timed_out()))?;
            if let (Some(pacer), http::StatusCode::TOO_MANY_REQUESTS) = (pacer, response.status()) {
                pacer.pause(response.headers().get(RETRY_AFTER));
            }
            let before_room = started.elapsed();
            if let Some(room) = room {
                let declared = buffers::declared(
                    hyper::body::Body::size_hint(response.body()).exact(),
                    response.headers(),
                );
                room.reserve_response(declared).await.map_err(UpstreamError::NoRoom)?;
            }
            let left = route.timeout.saturating_sub(before_room);
            tokio::time::timeout(left, self.body(response))
                .await
                .unwrap_or_else(|_| Err(timed_out()))
        }
        .await;
        self.metrics.upstream(&route.name, started.elapsed());
        answer
    }

    /// Sends the request, with the route's token when it has one: the answer's head.
    async fn head(
        &self,
        route: &Route,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let client = self.route_clients.get(&route.name).unwrap_or(&self.client);
        let token = match &route.upstream_auth {
            Some(UpstreamAuth::ClientCredentials(credentials)) => {
                let token = credentials.token(client).await.map_err(UpstreamError::Unreachable)?;
                let value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| UpstreamError::Unreachable("the access token is not a header value".to_owned()))?;
                request.headers_mut().insert(AUTHORIZATION, value);
                Some((credentials, token))
            }
            _ => None,
        };
        let response = client
            .request(request)
            .await
            .map_err(|error| UpstreamError::Unreachable(error_chain(&error)))?;
        if let Some((credentials, token)) = token {
            if response.status() == http::StatusCode::UNAUTHORIZED {
                credentials.forget(&token).await;
            }
        }
        Ok(response)
    }

    /// The answer's body, whole and decoded, within `max_response_bytes`.
    async fn body(&self, response: Response<Incoming>) -> Result<Answer, UpstreamError> {
        let (mut parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_response_bytes)
            .collect()
            .await
            .map_err(|error| {
                if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    UpstreamError::BadResponse(format!("the body is larger than {} bytes", self.max_response_bytes))
                } else {
                    UpstreamError::BadResponse(error_chain(error.as_ref()))
                }
            })?
            .to_bytes();
        let codings = content_coding::codings(&parts.headers).map_err(|e| UpstreamError::BadResponse(e.to_string()))?;
        if codings.is_empty() {
            return Ok(Answer {
                parts,
                body,
                encoded: false,
            });
        }
        let decoded = content_coding::decode(&codings, &body, self.max_response_bytes)
            .map_err(|e| UpstreamError::BadResponse(e.to_string()))?;
        parts.headers.remove(CONTENT_ENCODING);
        parts.headers.remove(CONTENT_LENGTH);
        Ok(Answer {
            parts,
            body: Bytes::from(decoded),
            encoded: true,
        })
    }
}

/// R6: where the application's `Location` for a created resource points, as a path relative
/// to the route's upstream base — only when it points there: the same scheme, host and port
/// (no user information), under the base path on a segment boundary, and a path
/// `path_safety` calls clean. `Err` says why it is not followed.
pub(crate) fn location_path(route: &Route, location: &str) -> Result<String, String> {
    let uri: http::Uri = location
        .parse()
        .map_err(|_| format!("Location \"{location}\" is not a URI"))?;
    let base = &route.upstream;
    if let Some(authority) = uri.authority() {
        if authority.as_str().contains('@') {
            return Err(format!("Location \"{location}\" carries user information"));
        }
        let same_scheme = uri
            .scheme_str()
            .zip(base.scheme_str())
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b));
        let same_host = uri
            .host()
            .zip(base.host())
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b));
        if !same_scheme || !same_host || effective_port(&uri) != effective_port(base) {
            return Err(format!("Location \"{location}\" is not on the route's upstream {base}"));
        }
    } else if !location.starts_with('/') || location.starts_with("//") {
        return Err(format!(
            "Location \"{location}\" is neither an absolute URI nor an absolute path"
        ));
    }
    let base_path = base.path().trim_end_matches('/');
    let rest = uri
        .path()
        .strip_prefix(base_path)
        .filter(|rest| rest.starts_with('/'))
        .ok_or_else(|| format!("Location \"{location}\" is not under the upstream's base path \"{base_path}/\""))?;
    match path_safety::check(rest) {
        PathCheck::Clean => Ok(rest.to_owned()),
        PathCheck::Collapsed(_) => Err(format!("Location \"{location}\" has empty path segments")),
        PathCheck::Refused(why) => Err(format!("Location \"{location}\": {why}")),
    }
}

fn effective_port(uri: &http::Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
        Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
        _ => None,
    })
}

/// An error and its sources, one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Standard base64 (RFC 4648 §4), for Basic credentials.
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
