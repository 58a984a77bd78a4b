//! The instances serving a store (table `instances`): who they are, their heartbeats, and
//! which of them a survivor or an operator has reaped. An instance's name is stable across
//! restarts (`SCIMTRAIL_INSTANCE`); each process start takes it with a new `run_id`, so a
//! process whose name another start has taken stops heartbeating under it.

use crate::sql::{self, Param};
use crate::{Pool, Store, StoreError};

/// One instance as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// Its name.
    pub name: String,
    /// Its current process start.
    pub run_id: String,
    /// The machine (or container) it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: i64,
    /// The scimtrail version it runs.
    pub version: String,
    /// When this run started (epoch milliseconds).
    pub started_at_ms: i64,
    /// Its last heartbeat.
    pub heartbeat_at_ms: i64,
    /// When it stopped cleanly, if it did.
    pub stopped_at_ms: Option<i64>,
    /// When its exchanges left in flight were marked interrupted, if they were.
    pub reaped_at_ms: Option<i64>,
    /// Who did that: a surviving instance's name, or `cli:<user>`.
    pub reaped_by: Option<String>,
}

/// What an instance is, seen at one moment with one bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Its heartbeat is within the bound.
    Live,
    /// It stopped cleanly.
    Stopped,
    /// Its heartbeat is older than the bound and it did not say it stopped: killed, crashed,
    /// or cut off from the store.
    Silent,
}

impl InstanceState {
    /// As `scimtrail instances list` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Live => "live",
            InstanceState::Stopped => "stopped",
            InstanceState::Silent => "silent",
        }
    }
}

impl InstanceRecord {
    /// Live while its last heartbeat is younger than `dead_after_ms` at `now_ms`.
    pub fn state(&self, now_ms: i64, dead_after_ms: i64) -> InstanceState {
        if self.stopped_at_ms.is_some() {
            InstanceState::Stopped
        } else if now_ms.saturating_sub(self.heartbeat_at_ms) < dead_after_ms {
            InstanceState::Live
        } else {
            InstanceState::Silent
        }
    }
}

type Row = (
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

const COLUMNS: &str = "name, run_id, host, pid, version, started_at, heartbeat_at, stopped_at, reaped_at, reaped_by";

fn record((name, run_id, host, pid, version, started, heartbeat, stopped, reaped, by): Row) -> InstanceRecord {
    InstanceRecord {
        name,
        run_id,
        host,
        pid,
        version,
        started_at_ms: started,
        heartbeat_at_ms: heartbeat,
        stopped_at_ms: stopped,
        reaped_at_ms: reaped,
        reaped_by: by,
    }
}

impl Store {
    /// Every instance that ever served this store, by name.
    pub async fn instances(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        self.instance_rows(&format!("SELECT {COLUMNS} FROM instances ORDER BY name"), Vec::new())
            .await
    }

    /// The instance called `name`, if one ever served this store.
    pub async fn instance(&self, name: &str) -> Result<Option<InstanceRecord>, StoreError> {
        let statement = format!("SELECT {COLUMNS} FROM instances WHERE name = ?");
        let rows = self.instance_rows(&statement, vec![text(name)]).await?;
        Ok(rows.into_iter().next())
    }

    /// Takes `record.name` for `record.run_id`: a new start, live, neither stopped nor reaped.
    /// Whether the name is free to take is the caller's decision (see the proxy's
    /// `instances.rs`).
    pub async fn register_instance(&self, record: &InstanceRecord) -> Result<(), StoreError> {
        let statement = "INSERT INTO instances (name, run_id, host, pid, version, started_at, heartbeat_at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?) \
                         ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id, host = excluded.host, \
                         pid = excluded.pid, version = excluded.version, started_at = excluded.started_at, \
                         heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, reaped_at = NULL, reaped_by = NULL";
        let params = vec![
            text(&record.name),
            text(&record.run_id),
            text(&record.host),
            Param::Int(Some(record.pid)),
            text(&record.version),
            Param::Int(Some(record.started_at_ms)),
            Param::Int(Some(record.heartbeat_at_ms)),
        ];
        self.execute(statement, params).await?;
        Ok(())
    }

    /// `name`'s heartbeat at `now_ms`, if `run_id` still holds the name; false when another
    /// start has taken it. A heartbeat after a reap makes the instance live again.
    pub async fn heartbeat(&self, name: &str, run_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let statement = "UPDATE instances SET heartbeat_at = ?, reaped_at = NULL, reaped_by = NULL \
                         WHERE name = ? AND run_id = ?";
        let params = vec![Param::Int(Some(now_ms)), text(name), text(run_id)];
        Ok(self.execute(statement, params).await? > 0)
    }

    /// `name` (run `run_id`) stopped cleanly at `now_ms`.
    pub async fn instance_stopped(&self, name: &str, run_id: &str, now_ms: i64) -> Result<(), StoreError> {
        let statement = "UPDATE instances SET stopped_at = ? WHERE name = ? AND run_id = ?";
        let params = vec![Param::Int(Some(now_ms)), text(name), text(run_id)];
        self.execute(statement, params).await?;
        Ok(())
    }

    /// Claims, for `by`, every instance silent at `now_ms` (no heartbeat for `dead_after_ms`),
    /// not stopped cleanly (a clean stop leaves nothing in flight) and not yet reaped; returns
    /// their names. Each silent instance is claimed once, by one
    /// caller, whoever else is asking at the same moment: the claim is one conditional update.
    pub async fn claim_silent_instances(
        &self,
        by: &str,
        now_ms: i64,
        dead_after_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let statement = "UPDATE instances SET reaped_at = ?, reaped_by = ? \
                         WHERE heartbeat_at < ? AND stopped_at IS NULL AND reaped_at IS NULL AND name <> ? \
                         RETURNING name";
        let params = vec![
            Param::Int(Some(now_ms)),
            text(by),
            Param::Int(Some(now_ms.saturating_sub(dead_after_ms))),
            text(by),
        ];
        self.names_returned(statement, params).await
    }

    /// Claims `name` for `by` if it is not live at `now_ms` (stopped, or silent for
    /// `dead_after_ms`); returns whether it was claimed.
    pub async fn claim_instance(
        &self,
        name: &str,
        by: &str,
        now_ms: i64,
        dead_after_ms: i64,
    ) -> Result<bool, StoreError> {
        let statement = "UPDATE instances SET reaped_at = ?, reaped_by = ? \
                         WHERE name = ? AND (heartbeat_at < ? OR stopped_at IS NOT NULL) RETURNING name";
        let params = vec![
            Param::Int(Some(now_ms)),
            text(by),
            text(name),
            Param::Int(Some(now_ms.saturating_sub(dead_after_ms))),
        ];
        Ok(!self.names_returned(statement, params).await?.is_empty())
    }

    async fn instance_rows(&self, statement: &str, params: Vec<Param>) -> Result<Vec<InstanceRecord>, StoreError> {
        let rows: Vec<Row> = self.rows(statement, params).await?;
        Ok(rows.into_iter().map(record).collect())
    }

    async fn names_returned(&self, statement: &str, params: Vec<Param>) -> Result<Vec<String>, StoreError> {
        let names: Vec<(String,)> = self.rows(statement, params).await?;
        Ok(names.into_iter().map(|(name,)| name).collect())
    }

    pub(crate) async fn rows<T>(&self, statement: &str, params: Vec<Param>) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
        T: Send + Unpin,
    {
        let rows = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sql::bind_sqlite_as(sqlx::query_as(statement), params)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(statement);
                sql::bind_postgres_as(sqlx::query_as(&statement), params)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows)
    }
}

fn text(value: &str) -> Param {
    Param::Text(Some(value.to_owned()))
}
