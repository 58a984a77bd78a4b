//! Who asked for an operator's action, and its entry in the store's audit (`audit` table):
//! replay runs, erasures, exports, prunes and configuration reloads. A person's name never
//! goes into an entry in the clear (an erasure must not leave it behind): a `user` filter is
//! kept as its keyed fingerprint, which still tells whether two actions were about the same
//! person.

use crate::fingerprint::Key;
use scimtrail_store::{AuditEntry, ExchangeQuery, PruneReport, Store};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;

/// Who asked, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `cli:<OS user>`, `admin:<token fingerprint>`, `admin` (no token configured),
    /// `ui:<fingerprint of the token that logged in>`, `ui` (no token configured), or
    /// `scimtrail` for what an instance does on its own.
    pub actor: String,
    /// The CLI's host and process, the admin caller's address, or the instance.
    pub origin: String,
}

impl Caller {
    /// This process, run from a shell.
    pub fn cli() -> Caller {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .or_else(uid)
            .unwrap_or_else(|| "unknown".to_owned());
        Caller {
            actor: format!("cli:{user}"),
            origin: format!("{} (pid {})", crate::config::hostname(), std::process::id()),
        }
    }

    /// The instance itself (a scheduled prune, a reload on SIGHUP).
    pub fn instance(instance: &str, how: &str) -> Caller {
        Caller {
            actor: "scimtrail".to_owned(),
            origin: format!("{instance} ({how})"),
        }
    }

    /// An admin API caller: named by the fingerprint of the token it presented.
    pub(crate) fn admin(authorization: Option<&str>, key: &Key, peer: SocketAddr) -> Caller {
        Caller {
            actor: match authorization {
                Some(value) => format!("admin:{}", key.fingerprint(value)),
                None => "admin".to_owned(),
            },
            origin: peer.to_string(),
        }
    }
}

impl Caller {
    /// A UI session, named by the fingerprint of the token that opened it (`open` where the
    /// listener requires none).
    pub(crate) fn ui(who: &str, peer: SocketAddr) -> Caller {
        Caller {
            actor: if who == "open" {
                "ui".to_owned()
            } else {
                format!("ui:{who}")
            },
            origin: peer.to_string(),
        }
    }
}

/// The uid, from `/proc/self/status`, where no user name is in the environment.
fn uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1).map(|uid| format!("uid {uid}"))
}

/// Records `action` by `caller`; a failure is logged, not returned: the action is done.
pub async fn record(store: &Store, caller: &Caller, instance: &str, action: &str, detail: Value) {
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        at_ms: crate::clock::now_ms(),
        actor: caller.actor.clone(),
        origin: caller.origin.clone(),
        action: action.to_owned(),
        instance: instance.to_owned(),
        detail,
    };
    if let Err(error) = store.audit(&entry).await {
        tracing::error!(%error, action, actor = %caller.actor, "The audit entry of an operator's action could not be written.");
    }
}

/// A list filter as an audit entry keeps it: the user name as its fingerprint.
pub fn filter(query: &ExchangeQuery, key: &Key) -> Value {
    let mut filter = Map::new();
    let mut text = |name: &str, value: &Option<String>| {
        if let Some(value) = value {
            filter.insert(name.to_owned(), Value::String(value.clone()));
        }
    };
    text("outcome", &query.outcome);
    text("idp", &query.idp);
    text("route", &query.route);
    text("resource", &query.resource);
    text("method", &query.method);
    text("lifecycle", &query.lifecycle);
    text("finding", &query.finding);
    if query.has_findings {
        filter.insert("findings".to_owned(), Value::Bool(true));
    }
    if let Some(user) = &query.user {
        filter.insert("user".to_owned(), Value::String(key.fingerprint(user)));
    }
    if let Some(since) = query.since_ms {
        filter.insert("since".to_owned(), Value::String(scimtrail_store::rfc3339(since)));
    }
    if let Some(until) = query.until_ms {
        filter.insert("until".to_owned(), Value::String(scimtrail_store::rfc3339(until)));
    }
    if query.failed {
        filter.insert("failed".to_owned(), Value::Bool(true));
    }
    Value::Object(filter)
}

/// What a prune did, as its entry keeps it.
pub fn prune(report: &PruneReport, dry_run: bool) -> Value {
    json!({
        "dry_run": dry_run,
        "exchanges": report.exchanges,
        "children": report.children,
        "snapshots": report.snapshots,
        "summary_rows": report.summary_rows,
        "audit_rows": report.audit_rows,
        "reconciliations": report.reconciliations,
        "failures_for_size": report.failures_for_size,
    })
}
