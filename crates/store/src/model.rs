//! What is written and what is read back.

use crate::StoreError;
use serde_json::{json, Map, Value};
use sqlx::Row;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The outcome of an exchange whose response has not been recorded yet.
pub const OUTCOME_IN_FLIGHT: &str = "in_flight";

/// An exchange as it begins: the request as received (already redacted).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewExchange {
    /// UUIDv7.
    pub id: String,
    /// When the request was received, epoch milliseconds.
    pub received_at_ms: i64,
    /// The proxy instance recording it (so a restart marks only its own exchanges interrupted).
    pub instance: String,
    /// The route's name.
    pub route: Option<String>,
    /// The IdP profile of the route.
    pub idp: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path as received.
    pub path: String,
    /// Query string as received.
    pub query: Option<String>,
    /// `Users`, `Groups`, `Bulk`, …
    pub resource_type: Option<String>,
    /// The resource id, when the path names one.
    pub resource_id: Option<String>,
    /// The userName, when the request shows it.
    pub user_name: Option<String>,
    /// `create`, `replace`, `patch`, `delete`, `get`, `search`, `bulk`, `discovery`, `other`.
    pub operation: String,
    /// `provision`, `update`, `deactivate`, `reactivate`, `deprovision`, `membership`, `lookup`.
    pub lifecycle: Option<String>,
    /// Headers as `[[name, value], …]`.
    pub request_headers: Value,
    /// Body text.
    pub request_body: Option<String>,
    /// The exchange this one replays.
    pub replay_of: Option<String>,
    /// The exchange this one was made for (a read-back, a fanned-out bulk operation).
    pub parent_id: Option<String>,
    /// Who sent it: the peer's address, or behind a trusted proxy the client it names.
    #[serde(default)]
    pub client: Option<String>,
    /// The content hash of the route's IdP profile as it was when the exchange began
    /// (`scimtrail_rules::Profile::version`); `None` before a route was known.
    #[serde(default)]
    pub rules_version: Option<String>,
    /// The reconciliation run whose repair sent it: a repair restores the IdP's intent, it
    /// says none of its own.
    #[serde(default)]
    pub reconcile_of: Option<String>,
    /// What made it when it is synthetic traffic (`verify`, `probe`), not the IdP's: no
    /// intent, no alert, and left out of listings unless asked for.
    #[serde(default)]
    pub synthetic: Option<String>,
}

/// An exchange as it completes: what was forwarded, the response, the outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Completion {
    /// The exchange.
    pub id: String,
    /// From receipt to the response being ready.
    pub duration_ms: i64,
    /// Headers as sent to the application, `None` when nothing was forwarded.
    pub forwarded_headers: Option<Value>,
    /// Body as sent, `None` when identical to the request body (or nothing was forwarded).
    pub forwarded_body: Option<String>,
    /// The normalisations applied: `[{rule, pointer, before, after}]`.
    pub changes: Value,
    /// The application's status, when it answered.
    pub upstream_status: Option<u16>,
    /// The status returned to the client.
    pub status: u16,
    /// Response headers as `[[name, value], …]`.
    pub response_headers: Value,
    /// Response body text.
    pub response_body: Option<String>,
    /// `ok`, `failed`, `unreachable`, `partial`, `rejected`.
    pub outcome: String,
    /// `[{kind, detail}]`.
    pub findings: Value,
    /// For `/Bulk`: one entry per operation.
    pub bulk_operations: Option<Value>,
    /// What went wrong on the proxy's side, for a human.
    pub error: Option<String>,
    /// The resource id learned from the response (a create), if the request had none.
    pub resource_id: Option<String>,
    /// The userName learned from the response, if the request had none.
    pub user_name: Option<String>,
    /// How long its requests waited in their route's pacing queue, in milliseconds; `None`
    /// when none of them went through a paced route.
    #[serde(default)]
    pub paced_ms: Option<i64>,
}

/// The latest write to one key of a resource among the successes pruned since, as the
/// resources' summary keeps it (`summary.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceWrite {
    /// The key (`scimtrail_scim::write_keys`).
    pub key: String,
    /// Where the write stands in the IdP's order: its exchange's id, its original's for a
    /// replay, its request's for an operation of a bulk request.
    pub stands_at: String,
    /// The exchange that wrote it (pruned since).
    pub exchange_id: String,
    /// When, epoch milliseconds.
    pub written_at_ms: i64,
    /// `{"op", "value"}`, redacted as the record was.
    pub written: Option<Value>,
}

/// One write of the recorder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Write {
    /// Insert an exchange as in flight.
    Begin(Box<NewExchange>),
    /// Complete an exchange begun earlier.
    Finish(Box<Completion>),
    /// Insert a complete exchange (one the proxy answered itself, or an async-mode record).
    Whole(Box<NewExchange>, Box<Completion>),
    /// Keep (or forget) the application's last representation of a resource.
    Snapshot(Box<Snapshot>),
    /// A request shape seen on a route for the first time: (route, shape, epoch ms).
    Shape(String, String, i64),
    /// A refusal's record stands for this many identical ones (itself included): (id, count).
    Repeats(String, i64),
    /// What resources are called, as an exchange showed them (`resource_names`).
    Names(Vec<ResourceName>),
}

/// What one resource is called, as an exchange showed it: the store's index from resource
/// id to the names a person is known by.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResourceName {
    /// The route.
    pub route: String,
    /// `Users`, `Groups`.
    pub resource_type: String,
    /// The resource id.
    pub resource_id: String,
    /// Its userName, when shown.
    pub user_name: Option<String>,
    /// Its externalId, when shown.
    pub external_id: Option<String>,
    /// Its displayName, when shown.
    pub display_name: Option<String>,
    /// When, epoch milliseconds.
    pub learned_at_ms: i64,
}

impl Write {
    /// The exchange this write records, if it records one.
    pub fn exchange_id(&self) -> Option<&str> {
        match self {
            Write::Begin(new) | Write::Whole(new, _) => Some(&new.id),
            Write::Finish(done) => Some(&done.id),
            Write::Repeats(id, _) => Some(id),
            Write::Snapshot(_) | Write::Shape(..) | Write::Names(_) => None,
        }
    }

    /// About the memory this write holds: its bodies, plus a kilobyte for the rest.
    pub fn approx_bytes(&self) -> usize {
        let body = |body: &Option<String>| body.as_ref().map_or(0, String::len);
        let new = |new: &NewExchange| body(&new.request_body);
        let done = |done: &Completion| body(&done.forwarded_body) + body(&done.response_body);
        1024 + match self {
            Write::Begin(begun) => new(begun),
            Write::Finish(finished) => done(finished),
            Write::Whole(begun, finished) => new(begun) + done(finished),
            Write::Snapshot(snapshot) => body(&snapshot.body),
            Write::Shape(route, shape, _) => route.len() + shape.len(),
            Write::Repeats(id, _) => id.len(),
            Write::Names(names) => names.len() * 256,
        }
    }
}

/// The application's last representation of one resource, as a route saw it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The route.
    pub route: String,
    /// `Users`, `Groups`.
    pub resource_type: String,
    /// The resource id.
    pub resource_id: String,
    /// The resource (no password), or `None` when it was deleted.
    pub body: Option<String>,
    /// When it was seen, epoch milliseconds.
    pub updated_at_ms: i64,
}

/// Filters of `exchanges list` and `GET /api/v1/exchanges`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExchangeQuery {
    /// Only exchanges that did not succeed (any outcome but `ok` and `in_flight`).
    pub failed: bool,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only this IdP profile.
    pub idp: Option<String>,
    /// Only this route.
    pub route: Option<String>,
    /// Only this resource type (`Users`, `Groups`, …).
    pub resource: Option<String>,
    /// A person or group: exchanges whose userName, or whose resource's recorded userName,
    /// externalId or displayName (`resource_names`), contains this text, ignoring case.
    pub user: Option<String>,
    /// Only this HTTP method.
    pub method: Option<String>,
    /// Only this lifecycle event (`provision`, `deactivate`, `membership`, …).
    pub lifecycle: Option<String>,
    /// Only exchanges with at least one finding.
    pub has_findings: bool,
    /// Only exchanges with a finding of this kind.
    pub finding: Option<String>,
    /// Received at or after, epoch milliseconds.
    pub since_ms: Option<i64>,
    /// Received before, epoch milliseconds.
    pub until_ms: Option<i64>,
    /// Page size (1 to 1000).
    pub limit: u64,
    /// Continue after this exchange id (the previous page's `next_cursor`).
    pub cursor: Option<String>,
    /// Only what replay takes up: an original exchange (not itself a replay) whose outcome
    /// is `failed`, `unreachable`, `partial` or `interrupted`.
    pub replayable: bool,
    /// Only synthetic traffic (`verify`, `probe`); without it, none.
    pub synthetic: bool,
}

/// A page of exchanges, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The exchanges.
    pub items: Vec<Exchange>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

/// One exchange as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exchange {
    /// UUIDv7.
    pub id: String,
    /// Epoch milliseconds.
    pub received_at_ms: i64,
    /// Milliseconds to completion.
    pub duration_ms: Option<i64>,
    /// The route.
    pub route: Option<String>,
    /// The IdP profile.
    pub idp: Option<String>,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// userName.
    pub user_name: Option<String>,
    /// Operation.
    pub operation: String,
    /// Lifecycle event.
    pub lifecycle: Option<String>,
    /// `[[name, value], …]`.
    pub request_headers: Value,
    /// Request body.
    pub request_body: Option<String>,
    /// `[[name, value], …]`, when forwarded.
    pub forwarded_headers: Option<Value>,
    /// Forwarded body (the request body when they were identical).
    pub forwarded_body: Option<String>,
    /// Normalisations.
    pub changes: Value,
    /// Application status.
    pub upstream_status: Option<i64>,
    /// Status returned.
    pub status: Option<i64>,
    /// `[[name, value], …]`.
    pub response_headers: Option<Value>,
    /// Response body.
    pub response_body: Option<String>,
    /// Outcome.
    pub outcome: String,
    /// Findings.
    pub findings: Value,
    /// Bulk operation outcomes.
    pub bulk_operations: Option<Value>,
    /// Proxy-side error.
    pub error: Option<String>,
    /// Recording instance.
    pub instance: Option<String>,
    /// The exchange this replays.
    pub replay_of: Option<String>,
    /// Exchanges replaying this one.
    pub replays: Vec<String>,
    /// The exchange this one was made for.
    pub parent_id: Option<String>,
    /// Exchanges made for this one (read-back, bulk fan-out), oldest first.
    pub children: Vec<String>,
    /// Who sent it (see [`NewExchange::client`]).
    pub client: Option<String>,
    /// How many identical refusals this record stands for (1 for every other exchange).
    pub repeat_count: i64,
    /// Which rules applied (see [`NewExchange::rules_version`]).
    pub rules_version: Option<String>,
    /// How long its requests waited in their route's pacing queue (see
    /// [`Completion::paced_ms`]).
    pub paced_ms: Option<i64>,
    /// See [`NewExchange::reconcile_of`].
    pub reconcile_of: Option<String>,
    /// See [`NewExchange::synthetic`].
    pub synthetic: Option<String>,
}

impl Exchange {
    /// The exchange as the admin API and `--json` show it (the contract's fields).
    pub fn to_json(&self) -> Value {
        let forwarded = match &self.forwarded_headers {
            Some(headers) => {
                json!({"headers": headers_object(headers), "body": body_value(self.forwarded_body.as_deref())})
            }
            None => Value::Null,
        };
        json!({
            "id": self.id,
            "received_at": rfc3339(self.received_at_ms),
            "duration_ms": self.duration_ms,
            "paced_ms": self.paced_ms,
            "route": self.route,
            "idp": self.idp,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "user_name": self.user_name,
            "operation": self.operation,
            "lifecycle": self.lifecycle,
            "request": {"headers": headers_object(&self.request_headers), "body": body_value(self.request_body.as_deref())},
            "forwarded": forwarded,
            "changes": self.changes,
            "upstream_status": self.upstream_status,
            "status": self.status,
            "response": match &self.response_headers {
                Some(headers) => json!({"headers": headers_object(headers), "body": body_value(self.response_body.as_deref())}),
                None => Value::Null,
            },
            "outcome": self.outcome,
            "findings": self.findings,
            "bulk_operations": self.bulk_operations,
            "error": self.error,
            "replay_of": self.replay_of,
            "replays": self.replays,
            "parent_id": self.parent_id,
            "children": self.children,
            "client": self.client,
            "repeat_count": self.repeat_count,
            "rules_version": self.rules_version,
            "reconcile_of": self.reconcile_of,
            "synthetic": self.synthetic,
        })
    }
}

/// Epoch milliseconds as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// `[[name, value], …]` as an object; repeated names are joined with ", " (RFC 9110 §5.3).
fn headers_object(headers: &Value) -> Value {
    let mut out = Map::new();
    for pair in headers.as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (pair.get(0).and_then(Value::as_str), pair.get(1).and_then(Value::as_str))
        else {
            continue;
        };
        match out.get_mut(name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            _ => {
                out.insert(name.to_owned(), Value::String(value.to_owned()));
            }
        }
    }
    Value::Object(out)
}

/// A body as JSON when it is JSON, else as a string.
fn body_value(body: Option<&str>) -> Value {
    match body {
        None => Value::Null,
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
    }
}

pub(crate) fn exchange_from_row<R: Row>(row: &R) -> Result<Exchange, StoreError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let json_column = |column: &'static str| -> Result<Option<Value>, StoreError> {
        let text: Option<String> = row.try_get(column)?;
        text.map(|t| {
            crate::stored_json::from_slice(t.as_bytes()).map_err(|source| StoreError::Corrupt {
                id: id.clone(),
                column,
                source,
            })
        })
        .transpose()
    };
    let request_body: Option<String> = row.try_get("request_body")?;
    let forwarded_headers = json_column("forwarded_headers")?;
    let forwarded_body: Option<String> = row.try_get("forwarded_body")?;
    let forwarded_body = match (&forwarded_headers, forwarded_body) {
        (Some(_), None) => request_body.clone(),
        (_, body) => body,
    };
    Ok(Exchange {
        received_at_ms: row.try_get("received_at")?,
        duration_ms: row.try_get("duration_ms")?,
        route: row.try_get("route")?,
        idp: row.try_get("idp")?,
        method: row.try_get("method")?,
        path: row.try_get("path")?,
        query: row.try_get("query")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        user_name: row.try_get("user_name")?,
        operation: row.try_get("operation")?,
        lifecycle: row.try_get("lifecycle")?,
        request_headers: json_column("request_headers")?.unwrap_or(Value::Array(Vec::new())),
        request_body,
        forwarded_headers,
        forwarded_body,
        changes: json_column("changes")?.unwrap_or(Value::Array(Vec::new())),
        upstream_status: row.try_get("upstream_status")?,
        status: row.try_get("status")?,
        response_headers: json_column("response_headers")?,
        response_body: row.try_get("response_body")?,
        outcome: row.try_get("outcome")?,
        findings: json_column("findings")?.unwrap_or(Value::Array(Vec::new())),
        bulk_operations: json_column("bulk_operations")?,
        error: row.try_get("error")?,
        instance: row.try_get("instance")?,
        replay_of: row.try_get("replay_of")?,
        replays: Vec::new(),
        parent_id: row.try_get("parent_id")?,
        children: Vec::new(),
        client: row.try_get("client")?,
        repeat_count: row.try_get("repeat_count")?,
        rules_version: row.try_get("rules_version")?,
        paced_ms: row.try_get("paced_ms")?,
        reconcile_of: row.try_get("reconcile_of")?,
        synthetic: row.try_get("synthetic")?,
        id,
    })
}
