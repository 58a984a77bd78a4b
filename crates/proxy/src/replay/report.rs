//! What a replay run did, or would do: one item per selected exchange, and the counts.

use super::check::Stop;
use scimtrail_rules::Profile;
use scimtrail_store::Exchange;
use serde_json::{json, Map, Value};

/// What a replay run did, or would do.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Whether nothing was sent.
    pub dry_run: bool,
    /// One item per selected exchange, oldest first.
    pub items: Vec<ReplayItem>,
}

/// One selected exchange and what became of it.
#[derive(Debug, Clone)]
pub struct ReplayItem {
    /// The original exchange.
    pub exchange: String,
    /// `METHOD /path` as the IdP sent it.
    pub request: String,
    /// `replayed`, `failed` (could not be replayed, or the replay failed), `skipped`,
    /// `would_replay` (dry run), `not_attempted` (after the application stopped answering).
    pub action: &'static str,
    /// Why it was skipped or failed, by kind: `superseded`, `already_replayed`,
    /// `exists_upstream`, `gone_upstream`, …
    pub kind: Option<&'static str>,
    /// The reason, in words.
    pub reason: Option<String>,
    /// The new exchange, when one was sent.
    pub replay: Option<String>,
    /// Its status and outcome.
    pub status: Option<u16>,
    /// Its outcome.
    pub outcome: Option<String>,
    /// What else the operator should know (passwords left out, operations dropped, the
    /// rules changed, …).
    pub notes: Vec<String>,
    /// When the rules the replay runs (the route's profile now) are not those the original
    /// ran: their `rules_version`s, then and now. The replay goes on: running the failure
    /// through rules fixed since is what replay is for.
    pub rules_changed: Option<RulesChanged>,
    /// Dry run: what would be sent, its diff from what was sent before, and the attribute
    /// diff against the resource as the application has it now.
    pub preview: Option<Value>,
}

/// The rules of a replay against those of its original (see [`ReplayItem::rules_changed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesChanged {
    /// The route's profile.
    pub profile: String,
    /// The original's `rules_version`.
    pub from: String,
    /// The profile's version now.
    pub to: String,
}

impl ReplayItem {
    pub(super) fn new(exchange: &Exchange) -> ReplayItem {
        ReplayItem {
            exchange: exchange.begun.id.clone(),
            request: format!("{} {}", exchange.begun.method, exchange.begun.path),
            action: "skipped",
            kind: None,
            reason: None,
            replay: None,
            status: None,
            outcome: None,
            notes: Vec::new(),
            rules_changed: None,
            preview: None,
        }
    }

    pub(super) fn skip(mut self, kind: &'static str, reason: String) -> ReplayItem {
        self.action = "skipped";
        self.kind = Some(kind);
        self.reason = Some(reason);
        self
    }

    pub(super) fn fail(mut self, kind: &'static str, reason: String) -> ReplayItem {
        self.action = "failed";
        self.kind = Some(kind);
        self.reason = Some(reason);
        self
    }

    /// The item as a check left it: skipped or failed.
    pub(super) fn stopped(self, stop: Stop) -> ReplayItem {
        match stop {
            Stop::Skip((kind, reason)) => self.skip(kind, reason),
            Stop::Fail((kind, reason)) => self.fail(kind, reason),
        }
    }

    /// Notes whether the rules the replay runs (`profile` now) are those the original ran.
    pub(super) fn compare_rules(&mut self, original: &Exchange, profile: &Profile) {
        match original.begun.rules_version.as_deref() {
            Some(from) if from != profile.version() => {
                self.notes.push(format!(
                    "the rules differ from the original's: profile {} was rules_version {from}, is {} now; the replay runs the current rules",
                    profile.name,
                    profile.version()
                ));
                self.rules_changed = Some(RulesChanged {
                    profile: profile.name.clone(),
                    from: from.to_owned(),
                    to: profile.version().to_owned(),
                });
            }
            Some(_) => {}
            None => self.notes.push(format!(
                "the original recorded no rules_version (recorded before versions were kept): its rules cannot be compared with profile {}'s now ({})",
                profile.name,
                profile.version()
            )),
        }
    }

    /// The item as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "exchange": self.exchange,
            "request": self.request,
            "action": self.action,
            "kind": self.kind,
            "reason": self.reason,
            "replay": self.replay,
            "status": self.status,
            "outcome": self.outcome,
            "notes": self.notes,
            "rules_changed": self.rules_changed.as_ref().map(|c| json!({"profile": c.profile, "from": c.from, "to": c.to})),
            "preview": self.preview,
        })
    }
}

impl ReplayReport {
    /// Counts: selected, replayed, succeeded, failed, skipped, and skipped by kind.
    pub fn summary(&self) -> Value {
        let count = |action: &str| self.items.iter().filter(|i| i.action == action).count();
        let succeeded = self
            .items
            .iter()
            .filter(|i| i.action == "replayed" && i.outcome.as_deref() == Some("ok"))
            .count();
        let mut skipped_because: Map<String, Value> = Map::new();
        for item in self.items.iter().filter(|i| i.action == "skipped") {
            let kind = item.kind.unwrap_or("other").to_owned();
            let n = skipped_because.get(&kind).and_then(Value::as_u64).unwrap_or(0);
            skipped_because.insert(kind, json!(n + 1));
        }
        json!({
            "dry_run": self.dry_run,
            "selected": self.items.len(),
            "replayed": count("replayed"),
            "succeeded": succeeded,
            "failed": count("failed") + (count("replayed") - succeeded),
            "skipped": count("skipped"),
            "skipped_because": skipped_because,
            "would_replay": count("would_replay"),
            "not_attempted": count("not_attempted"),
        })
    }

    /// Whether every replay sent succeeded and nothing failed to be checked.
    pub fn all_succeeded(&self) -> bool {
        self.items.iter().all(|i| match i.action {
            "replayed" => i.outcome.as_deref() == Some("ok"),
            "failed" | "not_attempted" => false,
            _ => true,
        })
    }

    /// The report as JSON: the items and the summary.
    pub fn to_json(&self) -> Value {
        json!({
            "items": self.items.iter().map(ReplayItem::to_json).collect::<Vec<_>>(),
            "summary": self.summary(),
        })
    }
}
