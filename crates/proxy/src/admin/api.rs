//! The admin listener: health, readiness, metrics, the exchanges API (list, one, export,
//! replay), erasures and the audit. It runs on its own address (loopback by default), never
//! on the proxy port. An export is the one answer streamed (`AdminBody::Streamed`) rather
//! than built whole.
//!
//! `/api` and `/ui` hold every recorded body and start replays, so they are guarded against
//! more than a missing token:
//! - the admin token, when configured (a listener off loopback needs one unless the
//!   configuration says `allow_unauthenticated`), compared in constant time;
//! - a `Host` that names this listener — an IP address, `localhost`, or one of
//!   `[admin] allowed_hosts` — so that a page whose domain is made to resolve to this
//!   address (DNS rebinding) cannot read it;
//! - no foreign `Origin`, and a JSON body for a POST, so that a page on another site cannot
//!   drive it (a cross-site form cannot send JSON without the browser asking first).

use crate::audit::Caller;
use crate::config::{ProxyConfig, Secret};
use crate::erasure;
use crate::exchange::now_ms;
use crate::export::{self, Format};
use crate::metrics::Metrics;
use crate::replay::{ReplayError, Selection};
use crate::server::Handler;
use crate::Proxy;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use http::{Method, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use scimtrail_store::{AuditEntry, AuditQuery, Erasure, ExchangeQuery, Store, StoreError};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub(crate) struct Admin {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) settings: AdminSettings,
    pub(crate) routes: usize,
    /// Replays run through the serving proxy, recorded like any exchange.
    pub(crate) proxy: Arc<Proxy>,
    /// Requests handled at once.
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
}

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

/// Largest replay request body, in bytes.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// An admin answer's body: whole, or an export streamed as it is read from the store.
pub(crate) enum AdminBody {
    /// Everything at once.
    Whole(Full<Bytes>),
    /// Pieces as they come (a bounded channel: the export waits for the client).
    Streamed(Channel<Bytes, std::io::Error>),
}

impl From<Full<Bytes>> for AdminBody {
    fn from(body: Full<Bytes>) -> AdminBody {
        AdminBody::Whole(body)
    }
}

impl hyper::body::Body for AdminBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            AdminBody::Whole(body) => std::pin::Pin::new(body).poll_frame(cx).map_err(|never| match never {}),
            AdminBody::Streamed(body) => std::pin::Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AdminBody::Whole(body) => body.is_end_stream(),
            AdminBody::Streamed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            AdminBody::Whole(body) => body.size_hint(),
            AdminBody::Streamed(body) => body.size_hint(),
        }
    }
}

impl Handler for Admin {
    type Body = AdminBody;

    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
        _scheme: &'static str,
        _caller: crate::server::CallerGone,
    ) -> Response<AdminBody> {
        if request.uri().path() == EXPORT_PATH && request.method() == Method::GET {
            if let Some(refused) = self.refusal(&request) {
                return refused.map(AdminBody::from);
            }
            let caller = self.caller(request.headers(), peer);
            return self.export(request.uri().query(), caller).await;
        }
        self.answer(request, peer).await.map(AdminBody::from)
    }
}

/// Where exports are served.
const EXPORT_PATH: &str = "/api/v1/exchanges/export";

/// Pieces of an export in flight between the store and the client.
const EXPORT_PIECES: usize = 4;

/// An export's pieces into a response body.
struct ChannelSink(http_body_util::channel::Sender<Bytes, std::io::Error>);

impl export::Sink for ChannelSink {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        self.0
            .send_data(bytes)
            .await
            .map_err(|_| "the client went away".to_owned())
    }
}

impl Admin {
    /// `GET /api/v1/exchanges/export?format=har|jsonl&<the list's keys>`: every exchange the
    /// filters select (`limit` bounds how many, `cursor` where it starts), streamed as it is
    /// read, audited.
    async fn export(self: Arc<Self>, query: Option<&str>, caller: Caller) -> Response<AdminBody> {
        let (format, max, filter) = match export_query(query, now_ms()) {
            Ok(asked) => asked,
            Err(error) => {
                return json_response(StatusCode::BAD_REQUEST, &json!({"error": error})).map(AdminBody::from);
            }
        };
        let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
            return json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "shutting down"}))
                .map(AdminBody::from);
        };
        let (sender, body) = Channel::new(EXPORT_PIECES);
        let admin = Arc::clone(&self);
        tokio::spawn(async move {
            let mut sink = ChannelSink(sender);
            let key = admin.proxy.redactor.key();
            let instance = &admin.proxy.config.instance;
            let exported = export::export(&admin.store, key, instance, &caller, filter, max, format, &mut sink).await;
            if let Err(error) = exported {
                tracing::warn!(%error, "An export failed: the store could not be read.");
                sink.0.abort(std::io::Error::other(error.to_string()));
            }
            drop(slot);
        });
        let mut response = Response::new(AdminBody::Streamed(body));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        let file = format!("attachment; filename=\"scimtrail-exchanges.{}\"", format.name());
        if let Ok(value) = HeaderValue::from_str(&file) {
            headers.insert(http::header::CONTENT_DISPOSITION, value);
        }
        response
    }

    async fn answer(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let replay = path == "/api/v1/replays" || (path.starts_with("/api/v1/exchanges/") && path.ends_with("/replay"));
        let erasure = path == "/api/v1/erasures";
        let allowed = if replay || erasure { Method::POST } else { Method::GET };
        if request.method() != allowed {
            return json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": format!("{path} serves {allowed} only")}),
            );
        }
        if path.starts_with("/api/") || path.starts_with("/ui") {
            if let Some(refused) = self.refusal(&request) {
                return refused;
            }
        }
        let Ok(_slot) = Arc::clone(&self.slots).acquire_owned().await else {
            return json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "shutting down"}));
        };
        match path.as_str() {
            "/healthz" => json_response(StatusCode::OK, &json!({"status": "ok"})),
            "/readyz" => self.ready().await,
            "/metrics" => {
                let mut response = Response::new(Full::new(Bytes::from(self.metrics.render())));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                response
            }
            "/api/v1/exchanges" => self.list(request.uri().query()).await,
            "/api/v1/audit" => self.audit(request.uri().query()).await,
            _ if erasure => {
                let caller = self.caller(request.headers(), peer);
                self.erase(request.into_body(), &caller).await
            }
            _ if replay => {
                let caller = self.caller(request.headers(), peer);
                self.replay(&path, request.into_body(), &caller).await
            }
            _ => match path.strip_prefix("/api/v1/exchanges/") {
                Some(id) if !id.is_empty() && !id.contains('/') => self.get(id).await,
                _ => json_response(StatusCode::NOT_FOUND, &json!({"error": format!("nothing at {path}")})),
            },
        }
    }
}

impl Admin {
    /// What `/api` and `/ui` ask of a request (see the module's documentation): the answer
    /// when it does not hold.
    fn refusal(&self, request: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
        let headers = request.headers();
        let refuse = |status: StatusCode, error: String| Some(json_response(status, &json!({"error": error})));
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| request.uri().authority().map(|a| a.to_string()));
        match host {
            Some(host) if self.settings.allows_host(&host) => {}
            Some(host) => {
                return refuse(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                    "Host \"{host}\" does not name this admin listener; add it to [admin] allowed_hosts if it should"
                ),
                )
            }
            None => return refuse(StatusCode::BAD_REQUEST, "a Host header is required".to_owned()),
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let text = origin.to_str().unwrap_or_default();
            let host = text.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
            if !host.is_some_and(|host| self.settings.allows_host(host)) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!("requests from the origin \"{text}\" are refused"),
                );
            }
        }
        if request.method() == Method::POST {
            let json = headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(|v| v.trim().to_ascii_lowercase())
                .is_some_and(|v| v == "application/json" || (v.starts_with("application/") && v.ends_with("+json")));
            if !json {
                return refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "a POST needs Content-Type: application/json".to_owned(),
                );
            }
        }
        if !self.authorized(headers) {
            let mut response = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "an admin bearer token is required"}),
            );
            response
                .headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return Some(response);
        }
        None
    }

    /// Who is asking, for the audit: the fingerprint of the token presented (when one is
    /// required), and from where.
    fn caller(&self, headers: &http::HeaderMap, peer: SocketAddr) -> Caller {
        let presented = self
            .settings
            .token
            .as_ref()
            .and_then(|_| headers.get(AUTHORIZATION))
            .and_then(|v| v.to_str().ok());
        Caller::admin(presented, self.proxy.redactor.key(), peer)
    }

    fn authorized(&self, headers: &http::HeaderMap) -> bool {
        let Some(token) = &self.settings.token else { return true };
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|presented| token.matches(presented.trim().as_bytes()))
    }

    async fn ready(&self) -> Response<Full<Bytes>> {
        let store = self.store.ping().await;
        // Spooling, the proxy serves and records: ready, degraded — a load balancer must not
        // take every instance out at once because their shared database is away.
        let spooled = self.store.spooling();
        let ready = (store.is_ok() || spooled.is_some()) && self.routes > 0;
        let mut body = json!({
            "ready": ready,
            "store": if store.is_ok() { "reachable" } else { "unreachable" },
            "routes": self.routes,
        });
        if let Err(error) = &store {
            body["store_error"] = json!(error.to_string());
        }
        if let Some(records) = spooled {
            body["degraded"] = json!("spooling");
            body["spooled_records"] = json!(records);
            if let Some(error) = self.store.spool_failing() {
                body["spool_error"] = json!(error);
            }
        }
        // Ready still: what SQLite refused no longer blocks anything, but someone should look.
        if let Some((file, count)) = self.store.moved_aside() {
            body["records_moved_aside"] = json!({"count": count, "file": file.display().to_string()});
        }
        json_response(
            if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            &body,
        )
    }

    async fn list(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let filter = match list_query(query, now_ms()) {
            Ok(filter) => filter,
            Err(error) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": error})),
        };
        match self.store.list(&filter).await {
            Ok(page) => {
                let items: Vec<Value> = page.items.iter().map(|e| e.to_json()).collect();
                json_response(
                    StatusCode::OK,
                    &json!({"items": items, "next_cursor": page.next_cursor}),
                )
            }
            Err(error) => store_failure(&error),
        }
    }

    /// `GET /api/v1/audit?action=&since=&until=&before=&limit=`: operators' actions, newest
    /// first; `next` is the `before` of the next page.
    async fn audit(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let filter = match audit_query(query, now_ms()) {
            Ok(filter) => filter,
            Err(error) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": error})),
        };
        match self.store.audit_list(&filter).await {
            Ok(entries) => {
                let full = i64::try_from(entries.len()).is_ok_and(|n| n == filter.limit);
                let next = entries.last().filter(|_| full).map(|e| e.id.clone());
                let items: Vec<Value> = entries.iter().map(AuditEntry::to_json).collect();
                json_response(StatusCode::OK, &json!({"items": items, "next": next}))
            }
            Err(error) => store_failure(&error),
        }
    }

    async fn get(&self, id: &str) -> Response<Full<Bytes>> {
        match self.store.get(id).await {
            Ok(exchange) => json_response(StatusCode::OK, &exchange.to_json()),
            Err(StoreError::NotFound(_)) => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no exchange with id {id}")}),
            ),
            Err(error) => store_failure(&error),
        }
    }
}

impl Admin {
    /// `POST /api/v1/erasures` with `{"user": TEXT | "resource": ID, "route": R, "dry_run":
    /// bool}`: erases the person's records (see `Store::erase`), audited.
    async fn erase(&self, body: Incoming, caller: &Caller) -> Response<Full<Bytes>> {
        let request = match json_body(body).await {
            Ok(request) => request,
            Err(error) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": error})),
        };
        let text = |key: &str| match request.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(format!("{key} must be a string, not {other}")),
        };
        let parsed = (|| {
            let erasure = Erasure {
                user: text("user")?,
                resource: text("resource")?,
                route: text("route")?,
            };
            let dry_run = match request.get("dry_run") {
                None => false,
                Some(Value::Bool(flag)) => *flag,
                Some(other) => return Err(format!("dry_run must be true or false, not {other}")),
            };
            erasure::check(&erasure)?;
            Ok((erasure, dry_run))
        })();
        let (erasure, dry_run) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": error})),
        };
        let key = self.proxy.redactor.key();
        match erasure::erase(&self.store, key, &self.proxy.config.instance, caller, &erasure, dry_run).await {
            Ok(report) => {
                if !dry_run {
                    self.proxy.names_written.forget();
                }
                json_response(StatusCode::OK, &report.to_json())
            }
            Err(refused @ StoreError::Refused(_)) => {
                json_response(StatusCode::CONFLICT, &json!({"error": refused.to_string()}))
            }
            Err(error) => store_failure(&error),
        }
    }

    /// `POST /api/v1/exchanges/{id}/replay` with `{"dry_run": bool}`, or `POST
    /// /api/v1/replays` with `{"filter": {…the list's keys…}, "dry_run": bool}`.
    async fn replay(&self, path: &str, body: Incoming, caller: &Caller) -> Response<Full<Bytes>> {
        let bad = |error: String| json_response(StatusCode::BAD_REQUEST, &json!({"error": error}));
        let request = match json_body(body).await {
            Ok(request) => request,
            Err(error) => return bad(error),
        };
        let dry_run = match request.get("dry_run") {
            None => false,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => return bad(format!("dry_run must be true or false, not {other}")),
        };
        let selection = if path == "/api/v1/replays" {
            // Everything failed, on every route, is a choice to make, not a default.
            if request.get("filter").is_none() {
                return bad("give a \"filter\" ({} for every replayable exchange)".to_owned());
            }
            match replay_filter(request.get("filter")) {
                Ok(filter) => Selection::Filter(filter),
                Err(error) => return bad(error),
            }
        } else {
            let id = path
                .trim_start_matches("/api/v1/exchanges/")
                .trim_end_matches("/replay")
                .trim_end_matches('/');
            Selection::Ids(vec![id.to_owned()])
        };
        match self.proxy.replay(selection, dry_run, caller).await {
            Ok(report) => json_response(StatusCode::OK, &report.to_json()),
            Err(ReplayError::Store(StoreError::NotFound(id))) => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no exchange with id {id}")}),
            ),
            Err(busy @ ReplayError::Busy { .. }) => {
                json_response(StatusCode::CONFLICT, &json!({"error": busy.to_string()}))
            }
            Err(ReplayError::Store(error)) => store_failure(&error),
        }
    }
}

/// A replay filter from JSON: the keys and values of the list's query parameters.
fn replay_filter(filter: Option<&Value>) -> Result<ExchangeQuery, String> {
    let Some(filter) = filter else {
        return Ok(ExchangeQuery::default());
    };
    let members = filter.as_object().ok_or("filter must be a JSON object")?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in members {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            other => return Err(format!("filter.{key} must be a string, number or boolean, not {other}")),
        };
        query.append_pair(key, &text);
    }
    list_query(Some(&query.finish()), now_ms()).map_err(|error| format!("filter: {error}"))
}

/// The store's details stay in the log; the client learns only that it failed.
/// An admin request's body: a JSON object (at most [`MAX_ADMIN_BODY`] bytes), `{}` if empty.
async fn json_body(body: Incoming) -> Result<Value, String> {
    let body = Limited::new(body, MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|error| format!("the request body could not be read: {error}"))?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("the body must be a JSON object".to_owned()),
        Err(error) => Err(format!("the body is not JSON: {error}")),
    }
}

fn store_failure(error: &StoreError) -> Response<Full<Bytes>> {
    tracing::error!(%error, "The admin API could not read the store.");
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"error": "the store could not be read"}),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The list filters from a query string (`outcome`, `idp`, `route`, `resource`, `user`,
/// `since`, `until`, `limit`, `cursor`, `failed`).
pub fn list_query(query: Option<&str>, now_ms: i64) -> Result<ExchangeQuery, String> {
    let mut filter = ExchangeQuery {
        limit: 50,
        ..ExchangeQuery::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        let text = (!value.is_empty()).then_some(value.clone());
        match key.as_ref() {
            "outcome" => filter.outcome = text,
            "idp" => filter.idp = text,
            "route" => filter.route = text,
            "resource" => filter.resource = text,
            "user" => filter.user = text,
            "cursor" => filter.cursor = text,
            "failed" => filter.failed = matches!(value.as_str(), "" | "true" | "1"),
            "since" => filter.since_ms = Some(parse_time(&value, now_ms)?),
            "until" => filter.until_ms = Some(parse_time(&value, now_ms)?),
            "limit" => {
                filter.limit = value
                    .parse()
                    .map_err(|_| format!("limit \"{value}\" is not a number"))?
            }
            other => return Err(format!("unknown parameter \"{other}\"")),
        }
    }
    Ok(filter)
}

/// An export's query string: the format, how many at most (`limit`), and the list's filters.
fn export_query(query: Option<&str>, now_ms: i64) -> Result<(Format, Option<u64>, ExchangeQuery), String> {
    let mut format = Format::Har;
    let mut max = None;
    let mut filters = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "format" => format = Format::parse(&value)?,
            "limit" => {
                max = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("limit \"{value}\" is not a number"))?,
                )
            }
            _ => {
                filters.append_pair(&key, &value);
            }
        }
    }
    Ok((format, max, list_query(Some(&filters.finish()), now_ms)?))
}

/// The audit list's query string.
fn audit_query(query: Option<&str>, now_ms: i64) -> Result<AuditQuery, String> {
    let mut filter = AuditQuery {
        limit: 50,
        ..AuditQuery::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "action" => filter.action = (!value.is_empty()).then_some(value),
            "before" => filter.before = (!value.is_empty()).then_some(value),
            "since" => filter.since_ms = Some(parse_time(&value, now_ms)?),
            "until" => filter.until_ms = Some(parse_time(&value, now_ms)?),
            "limit" => {
                filter.limit = value
                    .parse::<i64>()
                    .map_err(|_| format!("limit \"{value}\" is not a number"))?
                    .clamp(1, 1000)
            }
            other => return Err(format!("unknown parameter \"{other}\"")),
        }
    }
    Ok(filter)
}

/// A point in time: an RFC 3339 timestamp, or a duration before now (`90s`, `15m`, `2h`,
/// `7d`, `1w`). Returns epoch milliseconds.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return i64::try_from(time.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| format!("\"{text}\" is out of range"));
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: i64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is neither an RFC 3339 time nor a duration like 15m, 2h or 7d"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(format!("\"{text}\": the unit must be s, m, h, d or w")),
    };
    Ok(now_ms - amount.saturating_mul(unit_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_filters() {
        assert_eq!(parse_time("15m", 1_000_000_000), Ok(1_000_000_000 - 900_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z", 0), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday", 0).is_err());
        let filter = list_query(Some("outcome=failed&idp=entra&limit=5&since=1h&failed=true"), 3_600_000).unwrap();
        assert_eq!(
            (
                filter.outcome.as_deref(),
                filter.idp.as_deref(),
                filter.limit,
                filter.since_ms,
                filter.failed
            ),
            (Some("failed"), Some("entra"), 5, Some(0), true)
        );
        assert!(list_query(Some("colour=red"), 0).is_err());
    }

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
}
