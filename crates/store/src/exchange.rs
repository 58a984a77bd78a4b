//! What is read back: one exchange as stored, made of the very halves the recorder wrote
//! ([`NewExchange`] as it began, [`Completion`] as it ended), and its JSON for the contract.

use crate::model::{Completion, NewExchange, OUTCOME_IN_FLIGHT};
use crate::StoreError;
use serde_json::{json, Map, Value};
use sqlx::Row;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The outcome of an exchange its instance stopped without completing.
pub const OUTCOME_INTERRUPTED: &str = "interrupted";

/// One exchange as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// The request as received (redacted). Its `resource_id` and `user_name` are the stored
    /// ones: learned from the response when the request showed none.
    pub begun: NewExchange,
    /// How it ended, so far.
    pub end: End,
    /// Exchanges replaying this one.
    pub replays: Vec<String>,
    /// Exchanges made for this one (read-back, bulk fan-out), oldest first.
    pub children: Vec<String>,
    /// How many identical refusals this record stands for (1 for every other exchange).
    pub repeat_count: i64,
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Not completed yet.
    InFlight,
    /// Its instance stopped before completing it ([`crate::Store::mark_interrupted`]).
    Interrupted {
        /// Why, as the store wrote it.
        error: Option<String>,
    },
    /// Completed. Read back, its `resource_id` and `user_name` are `None` (they are the
    /// begun half's), and `forwarded_body` is `None` when it was the request body: ask
    /// [`Exchange::forwarded_body`].
    Completed(Box<Completion>),
}

/// `[]`, for what an exchange that has not completed has none of.
static NONE_YET: Value = Value::Array(Vec::new());

impl Exchange {
    /// An exchange as it is recorded when it begins: in flight, nothing linked to it.
    pub fn begun(begun: NewExchange) -> Exchange {
        Exchange {
            begun,
            end: End::InFlight,
            replays: Vec::new(),
            children: Vec::new(),
            repeat_count: 1,
        }
    }

    /// The same exchange, completed.
    pub fn completed(mut self, completion: Completion) -> Exchange {
        self.end = End::Completed(Box::new(completion));
        self
    }

    /// Its completion, once it has one.
    pub fn completion(&self) -> Option<&Completion> {
        match &self.end {
            End::Completed(done) => Some(done),
            End::InFlight | End::Interrupted { .. } => None,
        }
    }

    /// `in_flight`, `interrupted`, or the completion's outcome.
    pub fn outcome(&self) -> &str {
        match &self.end {
            End::InFlight => OUTCOME_IN_FLIGHT,
            End::Interrupted { .. } => OUTCOME_INTERRUPTED,
            End::Completed(done) => &done.outcome,
        }
    }

    /// What went wrong on the proxy's side, if anything did.
    pub fn error(&self) -> Option<&str> {
        match &self.end {
            End::InFlight => None,
            End::Interrupted { error } => error.as_deref(),
            End::Completed(done) => done.error.as_deref(),
        }
    }

    /// Milliseconds from receipt to the response being ready, once it was.
    pub fn duration_ms(&self) -> Option<i64> {
        self.completion().map(|done| done.duration_ms)
    }

    /// How long its requests waited in their route's pacing queue (see [`Completion::paced_ms`]).
    pub fn paced_ms(&self) -> Option<i64> {
        self.completion().and_then(|done| done.paced_ms)
    }

    /// The status returned to the client, once it was.
    pub fn status(&self) -> Option<u16> {
        self.completion().map(|done| done.status)
    }

    /// The application's status, when it answered.
    pub fn upstream_status(&self) -> Option<u16> {
        self.completion().and_then(|done| done.upstream_status)
    }

    /// The headers sent to the application, when anything was forwarded.
    pub fn forwarded_headers(&self) -> Option<&Value> {
        self.completion().and_then(|done| done.forwarded_headers.as_ref())
    }

    /// The body sent to the application, when anything was forwarded: the request body
    /// when the two were the same.
    pub fn forwarded_body(&self) -> Option<&str> {
        let done = self.completion()?;
        done.forwarded_headers.as_ref()?;
        done.forwarded_body.as_deref().or(self.begun.request_body.as_deref())
    }

    /// The response body, once there was one.
    pub fn response_body(&self) -> Option<&str> {
        self.completion().and_then(|done| done.response_body.as_deref())
    }

    /// The response headers as `[[name, value], …]`, once there was a response.
    pub fn response_headers(&self) -> Option<&Value> {
        self.completion().map(|done| &done.response_headers)
    }

    /// For `/Bulk`: what became of each operation.
    pub fn bulk_operations(&self) -> Option<&Value> {
        self.completion().and_then(|done| done.bulk_operations.as_ref())
    }

    /// The normalisations applied (`[]` until it completed).
    pub fn changes(&self) -> &Value {
        self.completion().map_or(&NONE_YET, |done| &done.changes)
    }

    /// The findings (`[]` until it completed).
    pub fn findings(&self) -> &Value {
        self.completion().map_or(&NONE_YET, |done| &done.findings)
    }

    /// The exchange as the admin API and `--json` show it (the contract's fields).
    pub fn to_json(&self) -> Value {
        let begun = &self.begun;
        let done = self.completion();
        let forwarded = match self.forwarded_headers() {
            Some(headers) => json!({"headers": headers_object(headers), "body": body_value(self.forwarded_body())}),
            None => Value::Null,
        };
        let response = match done {
            Some(done) => {
                json!({"headers": headers_object(&done.response_headers), "body": body_value(done.response_body.as_deref())})
            }
            None => Value::Null,
        };
        json!({
            "id": begun.id,
            "received_at": rfc3339(begun.received_at_ms),
            "duration_ms": self.duration_ms(),
            "paced_ms": self.paced_ms(),
            "route": begun.route,
            "idp": begun.idp,
            "method": begun.method,
            "path": begun.path,
            "query": begun.query,
            "resource_type": begun.resource_type,
            "resource_id": begun.resource_id,
            "user_name": begun.user_name,
            "operation": begun.operation,
            "lifecycle": begun.lifecycle,
            "request": {"headers": headers_object(&begun.request_headers), "body": body_value(begun.request_body.as_deref())},
            "forwarded": forwarded,
            "changes": self.changes(),
            "upstream_status": self.upstream_status(),
            "status": self.status(),
            "response": response,
            "outcome": self.outcome(),
            "findings": self.findings(),
            "bulk_operations": self.bulk_operations(),
            "error": self.error(),
            "replay_of": begun.replay_of,
            "replays": self.replays,
            "parent_id": begun.parent_id,
            "children": self.children,
            "client": begun.client,
            "repeat_count": self.repeat_count,
            "rules_version": begun.rules_version,
            "reconcile_of": begun.reconcile_of,
            "synthetic": begun.synthetic,
        })
    }
}

/// A page of exchanges, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The exchanges.
    pub items: Vec<Exchange>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
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

/// One row of `exchanges` (the columns of `query::EXCHANGE_COLUMNS`) as an [`Exchange`];
/// its replays and children are the caller's to fill.
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
    let status_column = |column: &'static str| -> Result<Option<u16>, StoreError> {
        let status: Option<i64> = row.try_get(column)?;
        status
            .map(|status| {
                u16::try_from(status).map_err(|_| inconsistent(&id, format!("{column} {status} is no HTTP status")))
            })
            .transpose()
    };
    let outcome: String = row.try_get("outcome")?;
    let error: Option<String> = row.try_get("error")?;
    let end = match outcome.as_str() {
        OUTCOME_IN_FLIGHT => End::InFlight,
        OUTCOME_INTERRUPTED => End::Interrupted { error },
        _ => {
            let missing = |column: &str| inconsistent(&id, format!("outcome {outcome} but no {column}"));
            End::Completed(Box::new(Completion {
                id: id.clone(),
                duration_ms: row
                    .try_get::<Option<i64>, _>("duration_ms")?
                    .ok_or_else(|| missing("duration_ms"))?,
                forwarded_headers: json_column("forwarded_headers")?,
                forwarded_body: row.try_get("forwarded_body")?,
                changes: json_column("changes")?.unwrap_or_else(|| NONE_YET.clone()),
                upstream_status: status_column("upstream_status")?,
                status: status_column("status")?.ok_or_else(|| missing("status"))?,
                response_headers: json_column("response_headers")?.unwrap_or_else(|| NONE_YET.clone()),
                response_body: row.try_get("response_body")?,
                findings: json_column("findings")?.unwrap_or_else(|| NONE_YET.clone()),
                bulk_operations: json_column("bulk_operations")?,
                error,
                resource_id: None,
                user_name: None,
                paced_ms: row.try_get("paced_ms")?,
                outcome: outcome.clone(),
            }))
        }
    };
    let begun = NewExchange {
        received_at_ms: row.try_get("received_at")?,
        instance: row.try_get::<Option<String>, _>("instance")?.unwrap_or_default(),
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
        request_headers: json_column("request_headers")?.unwrap_or_else(|| NONE_YET.clone()),
        request_body: row.try_get("request_body")?,
        replay_of: row.try_get("replay_of")?,
        parent_id: row.try_get("parent_id")?,
        client: row.try_get("client")?,
        rules_version: row.try_get("rules_version")?,
        reconcile_of: row.try_get("reconcile_of")?,
        synthetic: row.try_get("synthetic")?,
        id,
    };
    Ok(Exchange {
        begun,
        end,
        replays: Vec::new(),
        children: Vec::new(),
        repeat_count: row.try_get("repeat_count")?,
    })
}

fn inconsistent(id: &str, detail: String) -> StoreError {
    StoreError::Inconsistent {
        id: id.to_owned(),
        detail,
    }
}
