//! Erasure of one person's records: every exchange about them — found by the userName it
//! shows, by the resource it addresses (`resource_names` knows which resources are theirs,
//! so requests by id, every deactivation among them, are included) and by any of their names
//! in its text — keeps its row, outcome, status and timing (for counts) and loses its bodies,
//! headers, query, userName, changes and finding details to [`ERASED`]. Their resources'
//! snapshots and names go; the resources' summary keeps its keys and forgets their values.
//!
//! Nothing is left behind in the files: SQLite rewrites with `secure_delete` (freed cells and
//! pages zeroed), truncates its WAL, and the journal drops every segment written before
//! (`Journal::scrub`). PostgreSQL rows are rewritten and the tables vacuumed; the server's
//! own files keep old bytes until it reuses them (`VACUUM FULL` for that).

use crate::query::like_escaped;
use crate::sql::{self, Param};
use crate::{Pool, Store, StoreError};
use serde_json::{json, Value};
use sqlx::Row;

/// What erased content is replaced with.
pub const ERASED: &str = "[ERASED]";

/// Exchanges rewritten per transaction.
const BATCH: usize = 200;

/// A name shorter than this is not searched for in the records' text: it would match
/// everyone's (the userName and resource ids still find the person's own records).
const MIN_TERM_CHARS: usize = 3;

/// Whose records to erase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erasure {
    /// A userName, externalId or displayName (any casing): the user resources it names.
    pub user: Option<String>,
    /// A resource id.
    pub resource: Option<String>,
    /// Only on this route.
    pub route: Option<String>,
}

/// One resource whose records were erased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErasedResource {
    /// The route.
    pub route: String,
    /// `Users`, `Groups`.
    pub resource_type: String,
    /// The id.
    pub resource_id: String,
}

/// What an erasure did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErasureReport {
    /// The resources found to be the person's.
    pub resources: Vec<ErasedResource>,
    /// Exchanges rewritten.
    pub exchanges: u64,
    /// Snapshots deleted.
    pub snapshots: u64,
    /// Rows of the resources' summary whose values were forgotten.
    pub summary_rows: u64,
    /// What is left for the operator to know (the journal, PostgreSQL's own files).
    pub notes: Vec<String>,
}

impl ErasureReport {
    /// As the CLI and `POST /api/v1/erasures` show it.
    pub fn to_json(&self) -> Value {
        json!({
            "resources": self.resources.iter().map(|r| json!({
                "route": r.route, "resource_type": r.resource_type, "resource_id": r.resource_id,
            })).collect::<Vec<_>>(),
            "exchanges": self.exchanges,
            "snapshots": self.snapshots,
            "summary_rows": self.summary_rows,
            "notes": self.notes,
        })
    }
}

/// The exchange columns searched for a name, and rewritten.
const TEXT_COLUMNS: [&str; 11] = [
    "query",
    "request_body",
    "forwarded_body",
    "response_body",
    "request_headers",
    "forwarded_headers",
    "response_headers",
    "changes",
    "findings",
    "bulk_operations",
    "error",
];

const REWRITE: &str = "UPDATE exchanges SET \
    query = CASE WHEN query IS NULL THEN NULL ELSE ? END, \
    user_name = CASE WHEN user_name IS NULL THEN NULL ELSE ? END, \
    request_headers = '[]', \
    request_body = CASE WHEN request_body IS NULL THEN NULL ELSE ? END, \
    forwarded_headers = CASE WHEN forwarded_headers IS NULL THEN NULL ELSE '[]' END, \
    forwarded_body = CASE WHEN forwarded_body IS NULL THEN NULL ELSE ? END, \
    response_headers = CASE WHEN response_headers IS NULL THEN NULL ELSE '[]' END, \
    response_body = CASE WHEN response_body IS NULL THEN NULL ELSE ? END, \
    changes = '[]', findings = ?, \
    bulk_operations = CASE WHEN bulk_operations IS NULL THEN NULL ELSE '[]' END, \
    error = CASE WHEN error IS NULL THEN NULL ELSE ? END \
    WHERE id = ?";

impl Store {
    /// Erases the records of the person (or resource) `erasure` names; `dry_run` only counts.
    pub async fn erase(&self, erasure: &Erasure, dry_run: bool) -> Result<ErasureReport, StoreError> {
        // What is journaled and not applied yet is erased with the rest.
        self.caught_up().await;
        let (resources, names) = self.erased_resources(erasure).await?;
        let mut report = ErasureReport {
            resources,
            ..ErasureReport::default()
        };
        let mut terms: Vec<String> = erasure.user.iter().chain(&names).map(|n| n.to_lowercase()).collect();
        terms.retain(|t| t.chars().count() >= MIN_TERM_CHARS);
        // A query string holds them percent-encoded.
        let encoded: Vec<String> = terms
            .iter()
            .flat_map(|t| {
                let form: String = form_urlencoded::byte_serialize(t.as_bytes()).collect();
                [form.replace('+', "%20"), form]
            })
            .collect();
        terms.extend(encoded);
        terms.sort();
        terms.dedup();
        let user_names: Vec<String> = erasure.user.iter().chain(&names).map(|n| n.to_lowercase()).collect();
        let selected = self
            .erased_exchanges(erasure, &report.resources, &user_names, &terms)
            .await?;
        report.exchanges = selected.len() as u64;
        if dry_run {
            report.snapshots = self.count_resources("resource_snapshots", &report.resources).await?;
            report.summary_rows = self.count_resources("resource_writes", &report.resources).await?;
            return Ok(report);
        }
        for batch in selected.chunks(BATCH) {
            let statements = batch
                .iter()
                .map(|(id, findings)| {
                    let erased = Param::Text(Some(ERASED.to_owned()));
                    let mut params = vec![erased; 5];
                    params.push(Param::Text(Some(erased_findings(findings))));
                    params.push(Param::Text(Some(ERASED.to_owned())));
                    params.push(Param::Text(Some(id.clone())));
                    (REWRITE.to_owned(), params)
                })
                .collect();
            self.execute_securely(statements).await?;
        }
        let mut statements = Vec::new();
        for resource in &report.resources {
            let key = || {
                vec![
                    Param::Text(Some(resource.route.clone())),
                    Param::Text(Some(resource.resource_type.clone())),
                    Param::Text(Some(resource.resource_id.clone())),
                ]
            };
            let at = "WHERE route = ? AND resource_type = ? AND resource_id = ?";
            report.snapshots += self
                .count_resources("resource_snapshots", std::slice::from_ref(resource))
                .await?;
            report.summary_rows += self
                .count_resources("resource_writes", std::slice::from_ref(resource))
                .await?;
            statements.push((format!("DELETE FROM resource_snapshots {at}"), key()));
            statements.push((format!("UPDATE resource_writes SET written = NULL {at}"), key()));
            statements.push((format!("DELETE FROM resource_names {at}"), key()));
        }
        self.execute_securely(statements).await?;
        report.notes = self.leave_nothing_behind().await;
        Ok(report)
    }

    /// The resources `erasure` names, and every name they are known by.
    async fn erased_resources(&self, erasure: &Erasure) -> Result<(Vec<ErasedResource>, Vec<String>), StoreError> {
        let (mut by_names, mut by_exchanges, mut params) = match (&erasure.user, &erasure.resource) {
            (Some(user), _) => {
                let user = user.to_lowercase();
                (
                    "resource_type = 'Users' AND (LOWER(user_name) = ? OR LOWER(external_id) = ? OR LOWER(display_name) = ?)".to_owned(),
                    "resource_type = 'Users' AND resource_id IS NOT NULL AND LOWER(user_name) = ?".to_owned(),
                    (vec![user.clone(); 3], vec![user]),
                )
            }
            (None, Some(id)) => (
                "resource_id = ?".to_owned(),
                "resource_id = ?".to_owned(),
                (vec![id.clone()], vec![id.clone()]),
            ),
            (None, None) => return Ok((Vec::new(), Vec::new())),
        };
        if let Some(route) = &erasure.route {
            by_names.push_str(" AND route = ?");
            by_exchanges.push_str(" AND route = ?");
            params.0.push(route.clone());
            params.1.push(route.clone());
        }
        let texts = |values: Vec<String>| values.into_iter().map(|v| Param::Text(Some(v))).collect();
        let mut rows = self
            .text_rows(
                &format!("SELECT route, resource_type, resource_id, user_name, external_id, display_name FROM resource_names WHERE {by_names}"),
                texts(params.0),
            )
            .await?;
        rows.extend(
            self.text_rows(
                &format!("SELECT DISTINCT COALESCE(route, ''), resource_type, resource_id, user_name, NULL, NULL FROM exchanges WHERE {by_exchanges}"),
                texts(params.1),
            )
            .await?,
        );
        let mut resources = Vec::new();
        let mut names = Vec::new();
        for row in rows {
            let [route, resource_type, resource_id, known @ ..] = row.as_slice() else {
                continue;
            };
            let (Some(route), Some(resource_type), Some(resource_id)) = (route, resource_type, resource_id) else {
                continue;
            };
            resources.push(ErasedResource {
                route: route.clone(),
                resource_type: resource_type.clone(),
                resource_id: resource_id.clone(),
            });
            names.extend(known.iter().flatten().cloned());
        }
        // The names of those resources find their records whatever their route.
        resources.sort();
        resources.dedup();
        names.sort();
        names.dedup();
        Ok((resources, names))
    }

    /// The exchanges to rewrite, with their findings: those addressing the resources, showing
    /// one of the user names, or holding one of the terms anywhere in their text.
    async fn erased_exchanges(
        &self,
        erasure: &Erasure,
        resources: &[ErasedResource],
        user_names: &[String],
        terms: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut any = Vec::new();
        let mut params = Vec::new();
        for resource in resources {
            any.push("(resource_type = ? AND resource_id = ?)".to_owned());
            params.push(Param::Text(Some(resource.resource_type.clone())));
            params.push(Param::Text(Some(resource.resource_id.clone())));
        }
        for name in user_names {
            any.push("LOWER(user_name) = ?".to_owned());
            params.push(Param::Text(Some(name.clone())));
        }
        for term in terms {
            for column in TEXT_COLUMNS {
                any.push(format!("LOWER({column}) LIKE ? ESCAPE '\\'"));
                params.push(Param::Text(Some(format!("%{}%", like_escaped(term)))));
            }
        }
        if any.is_empty() {
            return Ok(Vec::new());
        }
        let mut statement = format!("SELECT id, findings FROM exchanges WHERE ({})", any.join(" OR "));
        if let Some(route) = &erasure.route {
            statement.push_str(" AND route = ?");
            params.push(Param::Text(Some(route.clone())));
        }
        Ok(self
            .text_rows(&statement, params)
            .await?
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [Some(id), findings] => Some((id.clone(), findings.clone().unwrap_or_default())),
                _ => None,
            })
            .collect())
    }

    async fn count_resources(&self, table: &str, resources: &[ErasedResource]) -> Result<u64, StoreError> {
        let mut count = 0;
        for r in resources {
            let params = vec![
                Param::Text(Some(r.route.clone())),
                Param::Text(Some(r.resource_type.clone())),
                Param::Text(Some(r.resource_id.clone())),
            ];
            let statement =
                format!("SELECT COUNT(*) FROM {table} WHERE route = ? AND resource_type = ? AND resource_id = ?");
            count += self.scalar_int_with(&statement, params).await?.unwrap_or(0);
        }
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Runs `statements` in one transaction; on SQLite with `secure_delete`, so that what
    /// they replace is zeroed in the file rather than left in free space.
    async fn execute_securely(&self, mut statements: Vec<(String, Vec<Param>)>) -> Result<(), StoreError> {
        if statements.is_empty() {
            return Ok(());
        }
        if matches!(self.pool, Pool::Sqlite(..)) {
            statements.insert(0, ("PRAGMA secure_delete = ON".to_owned(), Vec::new()));
            statements.push(("PRAGMA secure_delete = OFF".to_owned(), Vec::new()));
        }
        self.execute_in_one_transaction(statements).await
    }

    /// After the rewrite: SQLite's WAL truncated (it held the old pages) and the journal's
    /// older segments deleted; PostgreSQL's tables vacuumed. What could not be done, said.
    async fn leave_nothing_behind(&self) -> Vec<String> {
        let mut notes = Vec::new();
        match &self.pool {
            Pool::Sqlite(pool, _, sqlite) => {
                if let Some(journal) = &sqlite.journal {
                    if let Err(error) = journal.scrub().await {
                        notes.push(error.to_string());
                    }
                }
                // Free pages, which may still hold what was freed before, leave the file.
                if let Err(error) = sqlx::query("PRAGMA incremental_vacuum").execute(pool).await {
                    notes.push(format!("free pages could not be given back: {error}"));
                }
                let mut truncated = false;
                for _ in 0..50 {
                    let busy: Result<i64, _> = sqlx::query_scalar("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(pool)
                        .await;
                    if matches!(busy, Ok(0)) {
                        truncated = true;
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                if !truncated {
                    notes.push(
                        "the WAL could not be truncated (readers held it): its old pages go at the next checkpoint"
                            .to_owned(),
                    );
                }
            }
            Pool::Postgres(pool, _) => {
                for table in ["exchanges", "resource_snapshots", "resource_writes", "resource_names"] {
                    if let Err(error) = sqlx::query(&format!("VACUUM {table}")).execute(pool).await {
                        notes.push(format!("VACUUM {table} failed: {error}"));
                    }
                }
                notes.push("PostgreSQL keeps the old row versions' bytes in its files until it reuses them: run VACUUM FULL exchanges (and a CHECKPOINT) where that matters".to_owned());
            }
        }
        notes
    }

    /// Rows of text columns (`?` placeholders).
    async fn text_rows(&self, statement: &str, params: Vec<Param>) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        let rows = match &self.pool {
            Pool::Sqlite(pool, ..) => sql::bind_sqlite(sqlx::query(statement), params)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| row.try_get::<Option<String>, _>(i).ok().flatten())
                        .collect()
                })
                .collect(),
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(statement);
                sql::bind_postgres(sqlx::query(&statement), params)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.try_get::<Option<String>, _>(i).ok().flatten())
                            .collect()
                    })
                    .collect()
            }
        };
        Ok(rows)
    }
}

/// Findings with their kinds kept (they count) and their details erased (they quote values).
fn erased_findings(findings: &str) -> String {
    let kept: Vec<Value> = serde_json::from_str::<Value>(findings)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|f| json!({"kind": f.get("kind").cloned().unwrap_or(Value::Null), "detail": ERASED}))
        .collect();
    Value::Array(kept).to_string()
}
