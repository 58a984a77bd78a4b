//! Erasure of one person's records: every exchange about them — found by the userName it
//! shows, by the resource it addresses (`resource_names` knows which resources are theirs,
//! so requests by id, every deactivation among them, are included) and by any of their names
//! in its text — keeps its row, outcome, status and timing (for counts) and loses its bodies,
//! headers, query, userName, changes and finding details to [`ERASED`]. Their resources'
//! snapshots, names and summary rows go; other resources' snapshots that show them go (a
//! cache of the application), and other summary rows forget the values that named them.
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

/// What the records' text is searched for: each name as a whole quoted value — as JSON holds
/// it, as a filter inside JSON holds it (`\"name\"`), as a query string holds it
/// (`%22name%22`) — so that "ann" does not match "Joanna". Lowercase, as the search compares
/// `LOWER(column)`: in full (PostgreSQL folds every letter) and ASCII-only (SQLite folds only
/// ASCII); non-ASCII letters also as JSON `\u` escapes, which some IdPs send.
fn search_terms<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut terms = Vec::new();
    for name in names.filter(|n| n.chars().count() >= MIN_TERM_CHARS) {
        // (the name's text inside a JSON string, the name itself for a query string)
        let mut forms = Vec::new();
        for cased in [name.to_lowercase(), name.to_ascii_lowercase()] {
            let json = serde_json::to_string(&cased).unwrap_or_default();
            forms.push((json[1..json.len().saturating_sub(1)].to_owned(), Some(cased)));
        }
        if !name.is_ascii() {
            // As escapes: of the letter as written (`\u00c9`) and lowercased (`\u00e9`).
            for cased in [name.clone(), name.to_lowercase()] {
                let escaped: String = cased
                    .chars()
                    .map(|c| match c {
                        '"' | '\\' => format!("\\{c}"),
                        c if c.is_ascii() => c.to_ascii_lowercase().to_string(),
                        c => format!("\\u{:04x}", u32::from(c)),
                    })
                    .collect();
                forms.push((escaped, None));
            }
        }
        for (inner, plain) in forms {
            terms.push(format!("\"{inner}\""));
            terms.push(format!("\\\"{inner}\\\""));
            if let Some(plain) = plain {
                let encoded = form_urlencoded::byte_serialize(plain.as_bytes())
                    .collect::<String>()
                    .to_lowercase();
                terms.push(format!("%22{}%22", encoded.replace('+', "%20")));
                terms.push(format!("%22{encoded}%22"));
            }
        }
    }
    terms.sort();
    terms.dedup();
    terms
}

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

impl ErasedResource {
    /// Its key, bound for [`AT_RESOURCE`].
    fn key(&self) -> Vec<Param> {
        [&self.route, &self.resource_type, &self.resource_id]
            .into_iter()
            .map(|v| Param::Text(Some(v.clone())))
            .collect()
    }
}

/// One resource's rows in the tables kept per resource.
const AT_RESOURCE: &str = "route = ? AND resource_type = ? AND resource_id = ?";

/// What an erasure selected.
struct Selected {
    resources: Vec<ErasedResource>,
    /// The names, as searched for in text (see [`search_terms`]).
    terms: Vec<String>,
    /// The names themselves, lowercase (each as both backends' `LOWER` folds it), as columns
    /// that hold one name compare them.
    names: Vec<String>,
    /// (id, findings, outcome) of each exchange to rewrite.
    exchanges: Vec<(String, String, String)>,
    notes: Vec<String>,
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
    /// Rows of the resources' summary deleted (theirs) or whose values were forgotten
    /// (others' that named them).
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
        let Selected {
            resources,
            terms,
            names,
            exchanges,
            notes,
        } = self.select_erased(erasure, dry_run).await?;
        let (around, snapshots, summary_rows) = self.forget_around(&resources, &terms, &names).await?;
        let mut report = ErasureReport {
            exchanges: exchanges.len() as u64,
            snapshots,
            summary_rows,
            resources,
            notes,
        };
        if dry_run {
            return Ok(report);
        }
        self.rewrite_exchanges(&exchanges).await?;
        self.execute_securely(around).await?;
        report.notes.extend(self.leave_nothing_behind().await);
        Ok(report)
    }

    /// What an erasure takes: the resources, the exchanges about them, the names to search
    /// for; refused when the journal is behind or the request fits several people.
    async fn select_erased(&self, erasure: &Erasure, dry_run: bool) -> Result<Selected, StoreError> {
        // What is journaled and not applied yet, or spooled for PostgreSQL and not drained,
        // would write the person back once applied: refused until it is in the database.
        if !self.caught_up_fully().await {
            return Err(StoreError::Refused(
                "the journal (or the spool, while PostgreSQL was unavailable) has records not yet in the database: nothing was erased; try again in a moment"
                    .to_owned(),
            ));
        }
        let (resources, user_names, names) = self.erased_resources(erasure).await?;
        // A displayName or externalId may name several people: erasing them all is not
        // what was asked.
        if user_names.len() > 1 && erasure.user.is_some() && !dry_run {
            return Err(StoreError::Refused(format!(
                "\"{}\" names {} users with different userNames: nothing was erased; erase one by its userName or --resource (a dry run lists them)",
                erasure.user.as_deref().unwrap_or_default(),
                user_names.len()
            )));
        }
        // The same id on several routes is several applications' resources.
        let routes = resources
            .iter()
            .map(|r| r.route.as_str())
            .collect::<std::collections::BTreeSet<_>>();
        if erasure.resource.is_some() && erasure.route.is_none() && routes.len() > 1 && !dry_run {
            return Err(StoreError::Refused(format!(
                "the id names resources on {} routes ({}): nothing was erased; give the route",
                routes.len(),
                routes.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        let terms = search_terms(erasure.user.iter().chain(&names));
        // The userName asked for also finds exchanges no resource came of (a failed create);
        // compared as each backend's LOWER folds (PostgreSQL every letter, SQLite ASCII).
        let mut by_user_name: Vec<String> = Vec::new();
        for name in erasure
            .user
            .iter()
            .chain(names.iter().filter(|n| user_names.contains(&n.to_lowercase())))
        {
            by_user_name.push(name.clone());
            by_user_name.push(name.to_lowercase());
            by_user_name.push(name.to_ascii_lowercase());
        }
        by_user_name.sort();
        by_user_name.dedup();
        let mut plain_names: Vec<String> = erasure
            .user
            .iter()
            .chain(&names)
            .flat_map(|name| [name.to_lowercase(), name.to_ascii_lowercase()])
            .collect();
        plain_names.sort();
        plain_names.dedup();
        let selected = self
            .erased_exchanges(erasure, &resources, &by_user_name, &terms)
            .await?;
        let in_flight = selected
            .iter()
            .filter(|(_, _, outcome)| outcome == crate::OUTCOME_IN_FLIGHT)
            .count();
        let mut notes = Vec::new();
        if in_flight > 0 {
            notes.push(format!(
                "{in_flight} of these exchanges were in flight: their completions are recorded as they come; erase again once they are done"
            ));
        }
        Ok(Selected {
            resources,
            terms,
            names: plain_names,
            exchanges: selected,
            notes,
        })
    }

    /// Every selected exchange rewritten to [`ERASED`], in batches, its finding kinds kept.
    async fn rewrite_exchanges(&self, exchanges: &[(String, String, String)]) -> Result<(), StoreError> {
        for batch in exchanges.chunks(BATCH) {
            let statements = batch
                .iter()
                .map(|(id, findings, _)| {
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
        Ok(())
    }

    /// What else holds them, as statements, with the snapshots and summary rows they touch:
    /// their resources' snapshots, names and summary rows (a summary key is a PATCH path,
    /// which may quote a value — what it served, replaying their failures, is erased with
    /// them); other resources' snapshots that show a name (a cache of the application, read
    /// again when needed); other summary rows' values that name them.
    async fn forget_around(
        &self,
        resources: &[ErasedResource],
        terms: &[String],
        names: &[String],
    ) -> Result<(Vec<(String, Vec<Param>)>, u64, u64), StoreError> {
        let (mut snapshots, mut summary_rows) = (0, 0);
        let mut statements = Vec::new();
        for resource in resources {
            snapshots += self
                .count_where("resource_snapshots", AT_RESOURCE, resource.key())
                .await?;
            summary_rows += self.count_where("resource_writes", AT_RESOURCE, resource.key()).await?;
            for delete in [
                "resource_snapshots",
                "resource_writes",
                "resource_names",
                "intended_writes",
                "intent_aliases",
            ] {
                statements.push((format!("DELETE FROM {delete} WHERE {AT_RESOURCE}"), resource.key()));
            }
            // What reconcile found of them and wrote to repair them (kept per run, the run
            // names the route).
            for delete in ["reconciliation_drifts", "reconciliation_repairs"] {
                statements.push((
                    format!(
                        "DELETE FROM {delete} WHERE reconciliation_id IN (SELECT id FROM reconciliations WHERE route = ?) \
                         AND resource_type = ? AND resource_id = ?"
                    ),
                    resource.key(),
                ));
            }
        }
        let mention = |column: &str| {
            let any: Vec<String> = terms
                .iter()
                .map(|_| format!("LOWER({column}) LIKE ? ESCAPE '\\'"))
                .collect();
            let params: Vec<Param> = terms
                .iter()
                .map(|term| Param::Text(Some(format!("%{}%", like_escaped(term)))))
                .collect();
            (any.join(" OR "), params)
        };
        if !terms.is_empty() {
            let (shows, params) = mention("body");
            snapshots += self.count_where("resource_snapshots", &shows, params.clone()).await?;
            statements.push((format!("DELETE FROM resource_snapshots WHERE {shows}"), params));
            let (names, params) = mention("written");
            summary_rows += self.count_where("resource_writes", &names, params.clone()).await?;
            statements.push((
                format!("UPDATE resource_writes SET written = NULL WHERE {names}"),
                params.clone(),
            ));
            // The intent: another resource's write that names them (a group's members) keeps
            // its key, not its value; a create known only by their name goes.
            statements.push((
                format!("UPDATE intended_writes SET written = '{{\"op\":\"erased\"}}' WHERE {names}"),
                params,
            ));
            let (by_name, params) = mention("resource_id");
            statements.push((format!("DELETE FROM intended_writes WHERE {by_name}"), params));
        }
        // Reconcile's drifts and repairs that name them, or show them in a value: the
        // application's id of them may be another than the record's.
        if !names.is_empty() {
            let named = format!("LOWER(name) IN ({})", vec!["?"; names.len()].join(", "));
            let named_params: Vec<Param> = names.iter().map(|n| Param::Text(Some(n.clone()))).collect();
            for (table, columns) in [
                ("reconciliation_drifts", ["intended", "actual"]),
                ("reconciliation_repairs", ["body", "resource_id"]),
            ] {
                let mut conditions = vec![named.clone()];
                let mut params = named_params.clone();
                if !terms.is_empty() {
                    for column in columns {
                        let (shows, shown) = mention(column);
                        conditions.push(shows);
                        params.extend(shown);
                    }
                }
                statements.push((format!("DELETE FROM {table} WHERE {}", conditions.join(" OR ")), params));
            }
        }
        Ok((statements, snapshots, summary_rows))
    }

    /// The resources `erasure` names, the userNames they show (lowercase), and every name the
    /// user resources among them are known by (a group's name is no person's).
    async fn erased_resources(
        &self,
        erasure: &Erasure,
    ) -> Result<(Vec<ErasedResource>, Vec<String>, Vec<String>), StoreError> {
        let (mut by_names, mut by_exchanges, mut params) = match (&erasure.user, &erasure.resource) {
            (Some(user), _) => {
                // Every user's names, compared below in any casing (SQLite's LOWER folds ASCII
                // only): one row per resource, and erasures are rare.
                let forms = [user.clone(), user.to_lowercase(), user.to_ascii_lowercase()];
                (
                    "resource_type = 'Users'".to_owned(),
                    "resource_type = 'Users' AND resource_id IS NOT NULL AND (user_name = ? OR LOWER(user_name) IN (?, ?))"
                        .to_owned(),
                    (Vec::new(), forms.to_vec()),
                )
            }
            (None, Some(id)) => (
                "resource_id = ?".to_owned(),
                "resource_id = ?".to_owned(),
                (vec![id.clone()], vec![id.clone()]),
            ),
            (None, None) => return Ok((Vec::new(), Vec::new(), Vec::new())),
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
        let mut user_names = Vec::new();
        let mut names = Vec::new();
        for row in rows {
            let [route, resource_type, resource_id, user_name, known @ ..] = row.as_slice() else {
                continue;
            };
            let (Some(route), Some(resource_type), Some(resource_id)) = (route, resource_type, resource_id) else {
                continue;
            };
            let asked = erasure.user.as_deref().map(str::to_lowercase);
            let named = |name: &Option<String>| name.as_deref().map(str::to_lowercase) == asked;
            if asked.is_some() && !named(user_name) && !known.iter().any(named) {
                continue;
            }
            resources.push(ErasedResource {
                route: route.clone(),
                resource_type: resource_type.clone(),
                resource_id: resource_id.clone(),
            });
            if resource_type == "Users" {
                user_names.extend(user_name.iter().map(|n| n.to_lowercase()));
                names.extend(user_name.iter().chain(known.iter().flatten()).cloned());
            }
        }
        // The names of those resources find their records whatever their route.
        resources.sort();
        resources.dedup();
        user_names.sort();
        user_names.dedup();
        names.sort();
        names.dedup();
        Ok((resources, user_names, names))
    }

    /// The exchanges to rewrite, with their findings: those addressing the resources, showing
    /// one of the user names, or holding one of the terms anywhere in their text.
    async fn erased_exchanges(
        &self,
        erasure: &Erasure,
        resources: &[ErasedResource],
        user_names: &[String],
        terms: &[String],
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut any = Vec::new();
        let mut params = Vec::new();
        for resource in resources {
            // The same id on another route is another application's resource: not theirs.
            any.push("(COALESCE(route, '') = ? AND resource_type = ? AND resource_id = ?)".to_owned());
            params.push(Param::Text(Some(resource.route.clone())));
            params.push(Param::Text(Some(resource.resource_type.clone())));
            params.push(Param::Text(Some(resource.resource_id.clone())));
        }
        for name in user_names {
            any.push("user_name = ? OR LOWER(user_name) = ?".to_owned());
            params.push(Param::Text(Some(name.clone())));
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
        let mut statement = format!(
            "SELECT id, findings, outcome FROM exchanges WHERE ({})",
            any.join(" OR ")
        );
        if let Some(route) = &erasure.route {
            statement.push_str(" AND route = ?");
            params.push(Param::Text(Some(route.clone())));
        }
        Ok(self
            .text_rows(&statement, params)
            .await?
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [Some(id), findings, outcome] => Some((
                    id.clone(),
                    findings.clone().unwrap_or_default(),
                    outcome.clone().unwrap_or_default(),
                )),
                _ => None,
            })
            .collect())
    }

    async fn count_where(&self, table: &str, condition: &str, params: Vec<Param>) -> Result<u64, StoreError> {
        let statement = format!("SELECT COUNT(*) FROM {table} WHERE {condition}");
        let count = self.scalar_int_with(&statement, params).await?.unwrap_or(0);
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
            // Back to what every connection runs with (see `Store::connect_with`).
            statements.push(("PRAGMA secure_delete = FAST".to_owned(), Vec::new()));
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
    pub(crate) async fn text_rows(
        &self,
        statement: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        let rows = match &self.pool {
            Pool::Sqlite(pool, ..) => sql::bind_sqlite(sqlx::query(statement), params)
                .fetch_all(pool)
                .await?
                .iter()
                .map(texts)
                .collect(),
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(statement);
                sql::bind_postgres(sqlx::query(&statement), params)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(texts)
                    .collect()
            }
        };
        Ok(rows)
    }
}

/// A row's columns as text (`None` for NULL or what is not text), on either backend.
fn texts<R>(row: &R) -> Vec<Option<String>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    (0..row.len())
        .map(|i| row.try_get::<Option<String>, _>(i).ok().flatten())
        .collect()
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_is_searched_for_as_a_whole_quoted_value_in_every_form() {
        let terms = super::search_terms([String::from("Élodie M"), String::from("al")].iter());
        for expected in [
            "\"élodie m\"",
            "\"Élodie m\"",
            "\\\"élodie m\\\"",
            "\"\\u00c9lodie m\"",
            "\"\\u00e9lodie m\"",
            "%22%c3%a9lodie%20m%22",
            "%22%c3%a9lodie+m%22",
        ] {
            assert!(terms.contains(&expected.to_owned()), "{expected} not in {terms:?}");
        }
        assert!(
            !terms.iter().any(|t| t.contains("al")),
            "too short to search: {terms:?}"
        );
    }
}
