//! One bad record fails alone.
//!
//! A batch is one transaction, so one record the database refuses used to fail every other
//! exchange waiting in it (on PostgreSQL, 9 bad requests among 81 good ones refused 32 good
//! ones). When a batch fails on something about a record (a data exception, a constraint, a
//! limit), its writes are committed one by one: the others commit, and the bad one is
//! - committed in a lesser form when it is a completion — the application has already applied
//!   the write, so refusing the record would make the IdP send it again — first without what
//!   the peers sent (headers, bodies, query, changes), then without findings and bulk
//!   operations too, its `error` saying so ([`Written::Degraded`]);
//! - refused when it is an in-flight record, whose exchange has not been forwarded yet: the
//!   proxy answers 503 ([`Written::Refused`]). The journal's applier, whose records are all
//!   acknowledged already, lessens in-flight records too ([`Lessen::Everything`]).
//!
//! When the batch fails on the store itself (connection lost, disk full, locked), nothing is
//! retried here: every write gets the store's failure, as before.

use crate::model::{Completion, NewExchange, Write};
use crate::StoreError;
use serde_json::Value;
use std::slice;

/// What became of one write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Committed as given.
    Committed,
    /// The store refused this record on its own and took a lesser form of it (the reason):
    /// its `error` says what was left out.
    Degraded(String),
    /// The store refused this record on its own, and no lesser form may stand in for it.
    Refused(String),
    /// The store failed (not this record): nothing was written.
    Failed(String),
}

impl Written {
    /// Whether the write is in the store, whole or lessened.
    pub fn is_stored(&self) -> bool {
        matches!(self, Written::Committed | Written::Degraded(_))
    }
}

/// Which records may be stored in a lesser form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lessen {
    /// Completions and whole records: their exchange has been answered by the application.
    Completions,
    /// In-flight records too (the journal's, acknowledged before they are applied).
    Everything,
}

impl StoreError {
    /// Whether the database refused something about the record (a value, a constraint, a
    /// limit), rather than failing as a whole: only then is a batch retried record by record.
    pub fn is_about_a_record(&self) -> bool {
        match self {
            // SQLSTATE classes 22 (data exception), 23 (integrity constraint violation),
            // 54 (program limit exceeded, such as an index row too large).
            StoreError::Database(sqlx::Error::Database(error)) => error
                .code()
                .and_then(|code| code.get(..2).map(|class| matches!(class, "22" | "23" | "54")))
                .unwrap_or(false),
            StoreError::Database(sqlx::Error::Encode(_)) => true,
            StoreError::SqliteWrite(rusqlite::Error::SqliteFailure(error, _)) => matches!(
                error.code,
                rusqlite::ErrorCode::ConstraintViolation
                    | rusqlite::ErrorCode::TooBig
                    | rusqlite::ErrorCode::TypeMismatch
            ),
            StoreError::SqliteWrite(rusqlite::Error::ToSqlConversionFailure(_)) => true,
            _ => false,
        }
    }
}

/// Commits `writes` with `commit` (one transaction per call): all in one when the store takes
/// them, else one by one when a record is at fault. One result per write, in order; the
/// store's error when the batch failed on the store itself (nothing was written).
pub(crate) fn commit_isolated(
    writes: &[Write],
    lessen: Lessen,
    mut commit: impl FnMut(&[Write]) -> Result<(), StoreError>,
) -> Result<Vec<Written>, StoreError> {
    let error = match commit(writes) {
        Ok(()) => return Ok(vec![Written::Committed; writes.len()]),
        Err(error) => error,
    };
    if !error.is_about_a_record() {
        return Err(error);
    }
    let mut results = Vec::with_capacity(writes.len());
    let mut store_failed: Option<String> = None;
    for write in writes {
        if let Some(reason) = &store_failed {
            results.push(Written::Failed(reason.clone()));
            continue;
        }
        let written = match commit(slice::from_ref(write)) {
            Ok(()) => Written::Committed,
            Err(error) if !error.is_about_a_record() => Written::Failed(error.to_string()),
            Err(error) => commit_lesser(write, &error.to_string(), lessen, &mut commit),
        };
        if let Written::Failed(reason) = &written {
            // The store itself fails now: the rest would fail alike.
            store_failed = Some(reason.clone());
        }
        results.push(written);
    }
    Ok(results)
}

/// Commits the lesser forms of a write the store refused alone, least lessened first.
fn commit_lesser(
    write: &Write,
    reason: &str,
    lessen: Lessen,
    commit: &mut impl FnMut(&[Write]) -> Result<(), StoreError>,
) -> Written {
    for level in [Level::WithoutPeerContent, Level::Identity] {
        let Some(lesser) = lesser(write, reason, lessen, level) else {
            return Written::Refused(reason.to_owned());
        };
        match commit(slice::from_ref(&lesser)) {
            Ok(()) => return Written::Degraded(reason.to_owned()),
            Err(error) if !error.is_about_a_record() => return Written::Failed(error.to_string()),
            Err(_) => {}
        }
    }
    Written::Refused(reason.to_owned())
}

/// How much of a record a lesser form leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// What the peers sent: headers, bodies, the query, the changes made to them.
    WithoutPeerContent,
    /// Also findings and bulk operations: only what identifies the exchange and its outcome.
    Identity,
}

/// The lesser form of `write` at `level`, if it may have one.
fn lesser(write: &Write, reason: &str, lessen: Lessen, level: Level) -> Option<Write> {
    match write {
        Write::Begin(new) if lessen == Lessen::Everything => Some(Write::Begin(Box::new(lesser_begin(new, reason)))),
        Write::Finish(done) => Some(Write::Finish(Box::new(lesser_completion(done, reason, level)))),
        Write::Whole(new, done) => Some(Write::Whole(
            Box::new(lesser_begin(new, reason)),
            Box::new(lesser_completion(done, reason, level)),
        )),
        Write::Begin(_) | Write::Snapshot(_) | Write::Shape(..) | Write::Repeats(..) | Write::Names(_) => None,
    }
}

fn left_out(reason: &str) -> String {
    format!("[scimtrail: not recorded; the store refused this record whole: {reason}]")
}

fn lesser_begin(new: &NewExchange, reason: &str) -> NewExchange {
    NewExchange {
        query: None,
        request_headers: Value::Array(Vec::new()),
        request_body: new.request_body.as_ref().map(|_| left_out(reason)),
        ..new.clone()
    }
}

fn lesser_completion(done: &Completion, reason: &str, level: Level) -> Completion {
    let what = match level {
        Level::WithoutPeerContent => "headers, bodies, query and changes",
        Level::Identity => "headers, bodies, query, changes, findings and bulk operations",
    };
    let note = format!("recorded in part: the store refused the whole record ({reason}); its {what} were left out");
    let identity = level == Level::Identity;
    Completion {
        forwarded_headers: done.forwarded_headers.as_ref().map(|_| Value::Array(Vec::new())),
        forwarded_body: done.forwarded_body.as_ref().map(|_| left_out(reason)),
        changes: Value::Array(Vec::new()),
        response_headers: Value::Array(Vec::new()),
        response_body: done.response_body.as_ref().map(|_| left_out(reason)),
        findings: if identity {
            Value::Array(Vec::new())
        } else {
            done.findings.clone()
        },
        bulk_operations: if identity { None } else { done.bulk_operations.clone() },
        error: Some(match &done.error {
            Some(error) => format!("{error}; {note}"),
            None => note,
        }),
        ..done.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn begin(id: &str, path: &str) -> Write {
        Write::Begin(Box::new(NewExchange {
            id: id.into(),
            received_at_ms: 0,
            instance: "i".into(),
            route: Some("app".into()),
            idp: Some("okta".into()),
            method: "POST".into(),
            path: path.into(),
            query: None,
            resource_type: Some("Users".into()),
            resource_id: None,
            user_name: None,
            operation: "create".into(),
            lifecycle: None,
            request_headers: json!([["content-type", "application/scim+json"]]),
            request_body: Some("{}".into()),
            replay_of: None,
            parent_id: None,
            client: None,
            rules_version: None,
            reconcile_of: None,
            synthetic: None,
        }))
    }

    fn finish(id: &str, body: &str) -> Write {
        Write::Finish(Box::new(Completion {
            id: id.into(),
            duration_ms: 1,
            forwarded_headers: None,
            forwarded_body: None,
            changes: json!([]),
            upstream_status: Some(201),
            status: 201,
            response_headers: json!([]),
            response_body: Some(body.into()),
            outcome: "ok".into(),
            findings: json!([{"kind": "poison"}]),
            bulk_operations: None,
            error: None,
            resource_id: None,
            user_name: None,
            paced_ms: None,
        }))
    }

    /// A store that refuses any write whose record mentions one of `bad` (as a constraint
    /// would), or everything once `down`.
    fn store<'a>(
        bad: &'a [&'a str],
        down: bool,
        calls: &'a mut usize,
    ) -> impl FnMut(&[Write]) -> Result<(), StoreError> + 'a {
        move |writes: &[Write]| {
            *calls += 1;
            if down {
                return Err(StoreError::Journal("the database is gone".into()));
            }
            let text = format!("{writes:?}");
            if bad.iter().any(|b| text.contains(b)) {
                let error = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT);
                return Err(StoreError::SqliteWrite(rusqlite::Error::SqliteFailure(
                    error,
                    Some("refused".into()),
                )));
            }
            Ok(())
        }
    }

    #[test]
    fn a_good_batch_is_one_commit() {
        let mut calls = 0;
        let writes = [begin("a", "/Users"), begin("b", "/Users")];
        let results = commit_isolated(&writes, Lessen::Completions, store(&[], false, &mut calls)).unwrap();
        assert_eq!(results, vec![Written::Committed, Written::Committed]);
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_bad_begin_is_refused_alone_and_the_others_commit() {
        let mut calls = 0;
        let writes = [begin("a", "/Users"), begin("b", "/Users/bad"), begin("c", "/Users")];
        let results = commit_isolated(&writes, Lessen::Completions, store(&["bad"], false, &mut calls)).unwrap();
        assert_eq!(results[0], Written::Committed);
        assert!(
            matches!(&results[1], Written::Refused(reason) if reason.contains("refused")),
            "{results:?}"
        );
        assert_eq!(results[2], Written::Committed);
    }

    #[test]
    fn a_bad_completion_is_kept_without_what_the_peers_sent_then_without_its_findings() {
        // The body is what the store refuses: the first lesser form stands.
        let mut calls = 0;
        let writes = [finish("a", "poisoned body"), finish("b", "{}")];
        let mut committed = Vec::new();
        let mut inner = store(&["poisoned"], false, &mut calls);
        let results = commit_isolated(&writes, Lessen::Completions, |writes: &[Write]| {
            inner(writes).inspect(|()| committed.extend(writes.iter().cloned()))
        })
        .unwrap();
        assert!(matches!(&results[0], Written::Degraded(_)), "{results:?}");
        assert_eq!(results[1], Written::Committed);
        let Some(Write::Finish(kept)) = committed.first() else {
            panic!("{committed:?}")
        };
        assert_eq!(kept.id, "a");
        assert_eq!(kept.status, 201);
        assert_eq!(kept.findings, json!([{"kind": "poison"}]));
        assert!(kept
            .response_body
            .as_deref()
            .unwrap()
            .starts_with("[scimtrail: not recorded"));
        assert!(kept
            .error
            .as_deref()
            .unwrap()
            .contains("headers, bodies, query and changes were left out"));

        // The findings are what it refuses: only the identity stands.
        let mut calls = 0;
        let mut committed = Vec::new();
        let mut inner = store(&["poison\""], false, &mut calls);
        let results = commit_isolated(&writes[..1], Lessen::Completions, |writes: &[Write]| {
            inner(writes).inspect(|()| committed.extend(writes.iter().cloned()))
        })
        .unwrap();
        assert!(matches!(&results[0], Written::Degraded(_)), "{results:?}");
        let Some(Write::Finish(kept)) = committed.first() else {
            panic!("{committed:?}")
        };
        assert_eq!(kept.findings, json!([]));
        assert!(kept
            .error
            .as_deref()
            .unwrap()
            .contains("findings and bulk operations were left out"));
    }

    #[test]
    fn the_journal_lessens_begins_too_and_refuses_what_no_lesser_form_saves() {
        let mut calls = 0;
        let writes = [begin("a", "/Users/bad"), begin("b", "/Users")];
        // The path stays in every lesser form: this one cannot be saved.
        let results = commit_isolated(&writes, Lessen::Everything, store(&["/Users/bad"], false, &mut calls)).unwrap();
        assert!(matches!(&results[0], Written::Refused(_)), "{results:?}");
        assert_eq!(results[1], Written::Committed);
        // The body is what it refuses: the begin is kept without it.
        let mut calls = 0;
        let writes = [begin("a", "/Users")];
        let results = commit_isolated(&writes, Lessen::Everything, store(&["{}"], false, &mut calls)).unwrap();
        assert!(matches!(&results[0], Written::Degraded(_)), "{results:?}");
    }

    #[test]
    fn a_store_that_fails_whole_is_not_retried_record_by_record() {
        let mut calls = 0;
        let writes = [begin("a", "/Users"), finish("b", "{}"), begin("c", "/Users")];
        let result = commit_isolated(&writes, Lessen::Everything, store(&[], true, &mut calls));
        assert!(matches!(result, Err(StoreError::Journal(_))), "{result:?}");
        assert_eq!(calls, 1);
    }
}
