//! The audit of operators' actions (table `audit`): every replay run, erasure, export, prune
//! and configuration reload, with who asked, from where, what and how much. Written directly
//! (not through the journal: an action is rare, and its entry must be there when the action's
//! answer is); kept at least [`AUDIT_KEEP_MS`], longer when the retention keeps records longer.

use crate::sql::Param;
use crate::{Store, StoreError};
use serde_json::{json, Value};

/// How long an audit entry is kept at least: a year.
pub const AUDIT_KEEP_MS: i64 = 366 * 24 * 3600 * 1000;

/// One operator's action.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// A UUIDv7: entries sort by it as by time.
    pub id: String,
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// Who: `admin:<token fingerprint>`, `admin` (no token configured), `cli:<OS user>`, or
    /// `scimtrail` for what the proxy does on its own (a scheduled prune).
    pub actor: String,
    /// From where: the admin caller's address, the CLI's host and process, the instance.
    pub origin: String,
    /// `replay`, `erasure`, `export`, `prune`, `reload`.
    pub action: String,
    /// The instance that carried it out.
    pub instance: String,
    /// What: the filter or selection, and the counts. Never a person's name in the clear:
    /// callers give it as a fingerprint.
    pub detail: Value,
}

impl AuditEntry {
    /// As `GET /api/v1/audit` and `scimtrail audit list` show it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "at": crate::exchange::rfc3339(self.at_ms),
            "actor": self.actor,
            "origin": self.origin,
            "action": self.action,
            "instance": self.instance,
            "detail": self.detail,
        })
    }

    fn from_json(text: &str) -> Option<AuditEntry> {
        let value: Value = serde_json::from_str(text).ok()?;
        let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        Some(AuditEntry {
            id: text("id"),
            at_ms: value.get("at_ms").and_then(Value::as_i64)?,
            actor: text("actor"),
            origin: text("origin"),
            action: text("action"),
            instance: text("instance"),
            detail: value.get("detail").cloned().unwrap_or(Value::Null),
        })
    }

    fn stored(&self) -> String {
        json!({
            "id": self.id, "at_ms": self.at_ms, "actor": self.actor, "origin": self.origin,
            "action": self.action, "instance": self.instance, "detail": self.detail,
        })
        .to_string()
    }
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Only this action.
    pub action: Option<String>,
    /// At or after, in milliseconds.
    pub since_ms: Option<i64>,
    /// Before, in milliseconds.
    pub until_ms: Option<i64>,
    /// Older than this entry (its id: the next page).
    pub before: Option<String>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// Records an operator's action.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let statement = "INSERT INTO audit (id, at_ms, action, entry) VALUES (?, ?, ?, ?)";
        let params = vec![
            Param::Text(Some(entry.id.clone())),
            Param::Int(Some(entry.at_ms)),
            Param::Text(Some(entry.action.clone())),
            Param::Text(Some(entry.stored())),
        ];
        self.execute(statement, params).await.map(|_| ())
    }

    /// The entries `query` selects, newest first.
    pub async fn audit_list(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut params = Vec::new();
        if let Some(action) = &query.action {
            conditions.push("action = ?".to_owned());
            params.push(Param::Text(Some(action.clone())));
        }
        if let Some(since) = query.since_ms {
            conditions.push("at_ms >= ?".to_owned());
            params.push(Param::Int(Some(since)));
        }
        if let Some(until) = query.until_ms {
            conditions.push("at_ms < ?".to_owned());
            params.push(Param::Int(Some(until)));
        }
        if let Some(before) = &query.before {
            conditions.push("id < ?".to_owned());
            params.push(Param::Text(Some(before.clone())));
        }
        params.push(Param::Int(Some(query.limit.clamp(1, 1000))));
        let statement = format!(
            "SELECT entry FROM audit WHERE {} ORDER BY id DESC LIMIT ?",
            conditions.join(" AND ")
        );
        let rows = self.scalars(&statement, params).await?;
        Ok(rows.iter().filter_map(|text| AuditEntry::from_json(text)).collect())
    }

    /// Deletes the entries older than `keep_ms` (never less than [`AUDIT_KEEP_MS`]) before
    /// `now_ms`; returns how many.
    pub(crate) async fn prune_audit(
        &self,
        now_ms: i64,
        keep_ms: Option<i64>,
        dry_run: bool,
    ) -> Result<u64, StoreError> {
        let Some(before) = audit_horizon(now_ms, keep_ms) else {
            return Ok(0);
        };
        if dry_run {
            let count = self
                .scalar_int_with(
                    "SELECT COUNT(*) FROM audit WHERE at_ms < ?",
                    vec![Param::Int(Some(before))],
                )
                .await?;
            return Ok(count.and_then(|n| u64::try_from(n).ok()).unwrap_or(0));
        }
        self.execute("DELETE FROM audit WHERE at_ms < ?", vec![Param::Int(Some(before))])
            .await
    }
}

/// Before when audit entries (and the reconciliation runs kept as long) go at `now_ms`: a
/// year ago, or the longest retention (`keep_ms`) ago when that is longer; `None` when
/// something is kept forever, and so are they.
pub(crate) fn audit_horizon(now_ms: i64, keep_ms: Option<i64>) -> Option<i64> {
    Some(now_ms.saturating_sub(keep_ms?.max(AUDIT_KEEP_MS)))
}
