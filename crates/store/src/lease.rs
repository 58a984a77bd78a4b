//! What one process at a time may do over a store: the leases, and the values instances
//! agree on.

use crate::{sql, Pool, Store, StoreError};

/// What one process at a time may do over a store, under a lease in it (`replay_lease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// A replay run.
    Replay,
    /// Pruning by the retention policy.
    Prune,
    /// Folding recorded writes into the intent (`Store::fold_pending_intent`).
    Intent,
    /// The scheduled reconciliations (`[route.reconcile] every`).
    Reconcile,
}

impl Lease {
    fn name(self) -> &'static str {
        match self {
            Lease::Replay => "replay",
            Lease::Prune => "prune",
            Lease::Intent => "intent",
            Lease::Reconcile => "reconcile",
        }
    }
}

impl Store {
    /// Takes the replay lease for `holder` until `until_ms`, unless another holder has it
    /// past `now_ms`; then returns that holder and when its lease ends.
    pub async fn take_replay_lease(
        &self,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Result<(), (String, i64)>, StoreError> {
        // A prune deletes what a run decides from: a run waits for it (and a prune stops
        // between batches once a run holds its lease).
        if let Some((pruner, until)) = self.lease_holder(Lease::Prune, now_ms).await? {
            return Ok(Err((format!("{pruner} (pruning)"), until)));
        }
        self.take_lease(Lease::Replay, holder, now_ms, until_ms).await
    }

    /// The value every instance sharing the store must agree on for `name`: `value`, written
    /// now if none is, or the one written first.
    pub async fn agree_on(&self, name: &str, value: &str) -> Result<String, StoreError> {
        let insert = "INSERT INTO store_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING";
        let params = vec![
            sql::Param::Text(Some(name.to_owned())),
            sql::Param::Text(Some(value.to_owned())),
        ];
        self.execute(insert, params).await?;
        let select = "SELECT value FROM store_settings WHERE name = ?";
        let params = vec![sql::Param::Text(Some(name.to_owned()))];
        Ok(self
            .scalars(select, params)
            .await?
            .into_iter()
            .next()
            .unwrap_or_else(|| value.to_owned()))
    }

    /// Gives the replay lease up, if `holder` has it.
    pub async fn release_replay_lease(&self, holder: &str) -> Result<(), StoreError> {
        self.release_lease(Lease::Replay, holder).await
    }

    /// Takes `lease` for `holder` until `until_ms` (or renews it), unless another holder has
    /// it past `now_ms`; then returns that holder and when its lease ends.
    pub async fn take_lease(
        &self,
        lease: Lease,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Result<(), (String, i64)>, StoreError> {
        let statement = "INSERT INTO replay_lease (name, holder, expires_at) VALUES (?, ?, ?) \
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                         WHERE replay_lease.expires_at < ? OR replay_lease.holder = excluded.holder";
        let params = vec![
            sql::Param::Text(Some(lease.name().to_owned())),
            sql::Param::Text(Some(holder.to_owned())),
            sql::Param::Int(Some(until_ms)),
            sql::Param::Int(Some(now_ms)),
        ];
        let taken = self.execute(statement, params).await?;
        if taken > 0 {
            return Ok(Ok(()));
        }
        match self.lease_holder(lease, i64::MIN).await? {
            Some(held) => Ok(Err(held)),
            // Given up between the two statements: try again once.
            None => Ok(Err((String::new(), now_ms))),
        }
    }

    /// Who holds `lease` past `now_ms`, and until when.
    pub async fn lease_holder(&self, lease: Lease, now_ms: i64) -> Result<Option<(String, i64)>, StoreError> {
        let statement = "SELECT holder, expires_at FROM replay_lease WHERE name = ? AND expires_at >= ?";
        let held: Option<(String, i64)> = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sqlx::query_as(statement)
                    .bind(lease.name())
                    .bind(now_ms)
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                sqlx::query_as(&sql::numbered_placeholders(statement))
                    .bind(lease.name())
                    .bind(now_ms)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(held)
    }

    /// Gives `lease` up, if `holder` has it.
    pub async fn release_lease(&self, lease: Lease, holder: &str) -> Result<(), StoreError> {
        let statement = "DELETE FROM replay_lease WHERE name = ? AND holder = ?";
        let params = vec![
            sql::Param::Text(Some(lease.name().to_owned())),
            sql::Param::Text(Some(holder.to_owned())),
        ];
        self.execute(statement, params).await?;
        Ok(())
    }
}
