//! The JSON API's handlers: health, readiness, metrics, the exchanges (list, one, export),
//! replays, erasures and the audit. An export is the one answer streamed rather than built
//! whole.

use super::access::refusal;
use super::params::{audit_query, export_query, list_query};
use super::Admin;
use crate::audit::Caller;
use crate::clock::now_ms;
use crate::erasure;
use crate::export;
use crate::reconcile::{ReconcileError, Repairing};
use crate::replay::{ReplayError, Selection};
use axum::body::Body;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use http::{StatusCode, Uri};
use http_body_util::BodyExt;
use scimtrail_store::{AuditEntry, Erasure, ExchangeQuery, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;

/// Largest replay or erasure request body, in bytes.
const MAX_ADMIN_BODY: usize = 64 * 1024;

pub(super) async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

pub(super) async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))],
        admin.metrics.render(),
    )
        .into_response()
}

pub(super) async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    let store = admin.store.ping().await;
    // Spooling, the proxy serves and records: ready, degraded — a load balancer must not
    // take every instance out at once because their shared database is away.
    let spooled = admin.store.spooling();
    // Stopping, the instance still serves what is sent, but asks to be sent nothing new.
    let stopping = admin.stopping.load(std::sync::atomic::Ordering::Relaxed);
    let ready = (store.is_ok() || spooled.is_some()) && admin.routes > 0 && !stopping;
    let mut body = json!({
        "ready": ready,
        "store": if store.is_ok() { "reachable" } else { "unreachable" },
        "routes": admin.routes,
    });
    if stopping {
        body["stopping"] = json!(true);
    }
    if let Err(error) = &store {
        body["store_error"] = json!(error.to_string());
    }
    if let Some(records) = spooled {
        body["degraded"] = json!("spooling");
        body["spooled_records"] = json!(records);
        if let Some(error) = admin.store.spool_failing() {
            body["spool_error"] = json!(error);
        }
    }
    // Ready still: what SQLite refused no longer blocks anything, but someone should look.
    if let Some((file, count)) = admin.store.moved_aside() {
        body["records_moved_aside"] = json!({"count": count, "file": file.display().to_string()});
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

/// `GET /api/v1/exchanges?<filters>`: a page, newest first; `next_cursor` continues it.
pub(super) async fn list(State(admin): State<Arc<Admin>>, RawQuery(query): RawQuery) -> Response {
    let filter = match list_query(query.as_deref(), now_ms()) {
        Ok(filter) => filter,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    match admin.store.list(&filter).await {
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

/// `GET /api/v1/exchanges/{id}`.
pub(super) async fn get(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    match admin.store.get(&id).await {
        Ok(exchange) => json_response(StatusCode::OK, &exchange.to_json()),
        Err(StoreError::NotFound(_)) => refusal(StatusCode::NOT_FOUND, format!("no exchange with id {id}")),
        Err(error) => store_failure(&error),
    }
}

/// `GET /api/v1/audit?action=&since=&until=&before=&limit=`: operators' actions, newest
/// first; `next` is the `before` of the next page.
pub(super) async fn audit(State(admin): State<Arc<Admin>>, RawQuery(query): RawQuery) -> Response {
    let filter = match audit_query(query.as_deref(), now_ms()) {
        Ok(filter) => filter,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    match admin.store.audit_list(&filter).await {
        Ok(entries) => {
            let full = i64::try_from(entries.len()).is_ok_and(|n| n == filter.limit);
            let next = entries.last().filter(|_| full).map(|e| e.id.clone());
            let items: Vec<Value> = entries.iter().map(AuditEntry::to_json).collect();
            json_response(StatusCode::OK, &json!({"items": items, "next": next}))
        }
        Err(error) => store_failure(&error),
    }
}

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

/// `GET /api/v1/exchanges/export?format=har|jsonl&<the list's keys>`: every exchange the
/// filters select (`limit` bounds how many, `cursor` where it starts), streamed as it is
/// read, audited.
pub(super) async fn export(
    State(admin): State<Arc<Admin>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Response {
    let (format, max, filter) = match export_query(query.as_deref(), now_ms()) {
        Ok(asked) => asked,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    stream_export(admin, caller, format, max, filter, "scimtrail-exchanges").await
}

/// An export streamed into a response as it is read (the UI's downloads are one too).
pub(crate) async fn stream_export(
    admin: Arc<Admin>,
    caller: Caller,
    format: export::Format,
    max: Option<u64>,
    filter: ExchangeQuery,
    file_name: &str,
) -> Response {
    // Its own slot: the export outlives the request's.
    let Ok(slot) = Arc::clone(&admin.slots).acquire_owned().await else {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    };
    let (sender, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(EXPORT_PIECES);
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
    let mut response = Response::new(Body::new(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    let file = format!("attachment; filename=\"{file_name}.{}\"", format.name());
    if let Ok(value) = HeaderValue::from_str(&file) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    response
}

/// `POST /api/v1/erasures` with `{"user": TEXT | "resource": ID, "route": R, "dry_run":
/// bool}`: erases the person's records (see `Store::erase`), audited.
pub(super) async fn erase(
    State(admin): State<Arc<Admin>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Response {
    let request = match json_body(body).await {
        Ok(request) => request,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
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
        let dry_run = dry_run(&request)?;
        erasure::check(&erasure)?;
        Ok((erasure, dry_run))
    })();
    let (erasure, dry_run) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    let key = admin.proxy.redactor.key();
    match erasure::erase(
        &admin.store,
        key,
        &admin.proxy.config.instance,
        &caller,
        &erasure,
        dry_run,
    )
    .await
    {
        Ok(report) => {
            if !dry_run {
                admin.proxy.names_written.forget();
            }
            json_response(StatusCode::OK, &report.to_json())
        }
        Err(refused @ StoreError::Refused(_)) => refusal(StatusCode::CONFLICT, refused.to_string()),
        Err(error) => store_failure(&error),
    }
}

/// `POST /api/v1/reconciliations` with `{"route": NAME, "resource": "Users" | "Groups",
/// "repair": bool, "dry_run": bool}`: reconciles the route now (see `reconcile/`); the run,
/// with its counts by kind and what its repair did. With `"repair": true` it sends the writes
/// that restore the IdP's intent (with `"dry_run": true` too, it only plans them). Its drifts
/// are read with `GET /api/v1/reconciliations/{id}`, its repairs with `…/{id}/repairs`.
pub(super) async fn reconcile(
    State(admin): State<Arc<Admin>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Response {
    let request = match json_body(body).await {
        Ok(request) => request,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    let Some(route) = request.get("route").and_then(Value::as_str) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "give the route to reconcile: {\"route\": NAME}".to_owned(),
        );
    };
    let types: Vec<String> = match request.get("resource") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(resource)) => vec![resource.clone()],
        Some(other) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                format!("resource must be \"Users\" or \"Groups\", not {other}"),
            )
        }
    };
    let flag = |name: &str| match request.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(other) => Err(format!("{name} must be true or false, not {other}")),
    };
    let repairing = match (flag("repair"), flag("dry_run")) {
        (Err(error), _) | (_, Err(error)) => return refusal(StatusCode::BAD_REQUEST, error),
        (Ok(false), Ok(true)) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "dry_run plans a repair: give it with \"repair\": true".to_owned(),
            )
        }
        (Ok(false), Ok(false)) => Repairing::No,
        (Ok(true), Ok(true)) => Repairing::DryRun,
        (Ok(true), Ok(false)) => Repairing::Send,
    };
    match admin.proxy.reconcile(route, &types, repairing, &caller).await {
        Ok(report) => json_response(StatusCode::OK, &report.to_json()),
        Err(error @ (ReconcileError::NoRoute(_) | ReconcileError::ResourceType(_))) => {
            refusal(StatusCode::BAD_REQUEST, error.to_string())
        }
        Err(ReconcileError::Store(error)) => store_failure(&error),
        Err(error) => refusal(StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

/// `?offset=&limit=` of a run's list: from 0, at most 1000 (100 when not given).
fn run_page(query: Option<String>) -> Result<(i64, i64), String> {
    let mut offset = 0;
    let mut limit = 100;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let number = value.parse::<i64>().ok().filter(|n| *n >= 0);
        match (name.as_ref(), number) {
            ("offset", Some(n)) => offset = n,
            ("limit", Some(n)) => limit = n.clamp(1, 1000),
            _ => return Err(format!("{name}={value} is not an offset or limit this list takes")),
        }
    }
    Ok((offset, limit))
}

/// `GET /api/v1/reconciliations/{id}?offset=&limit=`: a run and a page of its drifts, in
/// report order (a leaver with access first).
pub(super) async fn reconciliation(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (offset, limit) = match run_page(query) {
        Ok(page) => page,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    match admin.store.reconciliation(&id, offset, limit).await {
        Ok(Some((run, drifts))) => {
            let mut body = crate::reconcile::ReconcileReport { run }.to_json();
            body["drifts"] = json!(drifts);
            body["offset"] = json!(offset);
            json_response(StatusCode::OK, &body)
        }
        Ok(None) => refusal(StatusCode::NOT_FOUND, format!("no reconciliation {id}")),
        Err(error) => store_failure(&error),
    }
}

/// `GET /api/v1/reconciliations/{id}/repairs?offset=&limit=`: a page of the writes a run's
/// repair sent or (dry) planned, in order, each with what became of it.
pub(super) async fn reconciliation_repairs(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (offset, limit) = match run_page(query) {
        Ok(page) => page,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    match admin.store.reconciliation(&id, 0, 0).await {
        Ok(Some(_)) => {}
        Ok(None) => return refusal(StatusCode::NOT_FOUND, format!("no reconciliation {id}")),
        Err(error) => return store_failure(&error),
    }
    match admin.store.reconciliation_repairs(&id, offset, limit).await {
        Ok(repairs) => json_response(StatusCode::OK, &json!({"id": id, "offset": offset, "repairs": repairs})),
        Err(error) => store_failure(&error),
    }
}

/// `POST /api/v1/exchanges/{id}/replay` with `{"dry_run": bool}`.
pub(super) async fn replay_one(
    State(admin): State<Arc<Admin>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (_, dry_run) = match replay_request(body).await {
        Ok(asked) => asked,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    replay(&admin, Selection::Ids(vec![id]), dry_run, &caller).await
}

/// `POST /api/v1/replays` with `{"filter": {…the list's keys…}, "dry_run": bool}`.
pub(super) async fn replay_matching(
    State(admin): State<Arc<Admin>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Response {
    let (request, dry_run) = match replay_request(body).await {
        Ok(asked) => asked,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    // Everything failed, on every route, is a choice to make, not a default.
    if request.get("filter").is_none() {
        return refusal(
            StatusCode::BAD_REQUEST,
            "give a \"filter\" ({} for every replayable exchange)".to_owned(),
        );
    }
    let filter = match replay_filter(request.get("filter")) {
        Ok(filter) => filter,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, error),
    };
    replay(&admin, Selection::Filter(Box::new(filter)), dry_run, &caller).await
}

/// A replay run (or its dry run) and its report, as the API and the UI answer it.
pub(crate) async fn replay(admin: &Admin, selection: Selection, dry_run: bool, caller: &Caller) -> Response {
    match admin.proxy.replay(selection, dry_run, caller).await {
        Ok(report) => json_response(StatusCode::OK, &report.to_json()),
        Err(ReplayError::Store(StoreError::NotFound(id))) => {
            refusal(StatusCode::NOT_FOUND, format!("no exchange with id {id}"))
        }
        Err(busy @ ReplayError::Busy { .. }) => refusal(StatusCode::CONFLICT, busy.to_string()),
        Err(ReplayError::Store(error)) => store_failure(&error),
    }
}

/// A replay request's body, and whether it asks for a dry run.
async fn replay_request(body: Body) -> Result<(Value, bool), String> {
    let request = json_body(body).await?;
    let dry_run = dry_run(&request)?;
    Ok((request, dry_run))
}

fn dry_run(request: &Value) -> Result<bool, String> {
    match request.get("dry_run") {
        None => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(other) => Err(format!("dry_run must be true or false, not {other}")),
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

/// An admin request's body: a JSON object (at most [`MAX_ADMIN_BODY`] bytes), `{}` if empty.
async fn json_body(body: Body) -> Result<Value, String> {
    let body = http_body_util::Limited::new(body, MAX_ADMIN_BODY)
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

pub(super) async fn not_found(uri: Uri) -> Response {
    refusal(StatusCode::NOT_FOUND, format!("nothing at {}", uri.path()))
}

pub(super) async fn method_not_allowed(OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    let posts = path == "/api/v1/replays" || path == "/api/v1/erasures" || path.ends_with("/replay");
    let allowed = if posts { "POST" } else { "GET" };
    refusal(StatusCode::METHOD_NOT_ALLOWED, format!("{path} serves {allowed} only"))
}

/// The store's details stay in the log; the client learns only that it failed.
pub(crate) fn store_failure(error: &StoreError) -> Response {
    tracing::error!(%error, "The admin API could not read the store.");
    refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the store could not be read".to_owned(),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}
