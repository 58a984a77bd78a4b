//! What is written and what is read back.

use serde_json::Value;

/// The outcome of an exchange whose response has not been recorded yet.
pub const OUTCOME_IN_FLIGHT: &str = "in_flight";

/// An exchange as it begins: the request as received (already redacted).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
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
