//! What the operator's overview counts: exchanges and failures per route and IdP, and over
//! time, since a moment; the kinds of findings. Reads only.

use crate::query::id_floor;
use crate::sql::Param;
use crate::{Store, StoreError};
use serde_json::Value;
use std::collections::BTreeMap;

/// Exchanges and failures of one route and IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCounts {
    /// The route (`""` for requests no route served).
    pub route: String,
    /// Its IdP profile.
    pub idp: String,
    /// Exchanges.
    pub total: u64,
    /// Of them, not `ok` (nor in flight).
    pub failed: u64,
}

/// Exchanges and failures in one slice of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Which slice, from 0 (the oldest).
    pub index: i64,
    /// Exchanges.
    pub total: u64,
    /// Of them, not `ok` (nor in flight).
    pub failed: u64,
}

const FAILED: &str = "CASE WHEN outcome NOT IN ('ok', 'in_flight') THEN 1 ELSE 0 END";

impl Store {
    /// Exchanges and failures per route and IdP received since `since_ms`.
    pub async fn counts_by_route(&self, since_ms: i64) -> Result<Vec<RouteCounts>, StoreError> {
        self.caught_up().await;
        let rows = self
            .text_rows(
                &format!(
                    "SELECT COALESCE(route, ''), COALESCE(idp, ''), CAST(COUNT(*) AS TEXT), CAST(SUM({FAILED}) AS TEXT) \
                     FROM exchanges WHERE id >= ? GROUP BY route, idp ORDER BY 1, 2"
                ),
                vec![Param::Text(Some(id_floor(since_ms)))],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
                RouteCounts {
                    route: text(0),
                    idp: text(1),
                    total: text(2).parse().unwrap_or(0),
                    failed: text(3).parse().unwrap_or(0),
                }
            })
            .collect())
    }

    /// Exchanges and failures in `buckets` equal slices from `since_ms` to `until_ms`.
    pub async fn counts_over_time(
        &self,
        since_ms: i64,
        until_ms: i64,
        buckets: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        self.caught_up().await;
        let width = ((until_ms - since_ms) / buckets.max(1)).max(1);
        let rows = self
            .text_rows(
                &format!(
                    "SELECT CAST((received_at - ?) / ? AS TEXT), CAST(COUNT(*) AS TEXT), CAST(SUM({FAILED}) AS TEXT) \
                     FROM exchanges WHERE id >= ? GROUP BY 1"
                ),
                vec![
                    Param::Int(Some(since_ms)),
                    Param::Int(Some(width)),
                    Param::Text(Some(id_floor(since_ms))),
                ],
            )
            .await?;
        let mut out: Vec<Bucket> = (0..buckets)
            .map(|index| Bucket {
                index,
                total: 0,
                failed: 0,
            })
            .collect();
        for row in rows {
            let number = |i: usize| row.get(i).cloned().flatten().and_then(|t| t.parse::<i64>().ok());
            let (Some(index), Some(total)) = (number(0), number(1)) else {
                continue;
            };
            if let Some(bucket) = usize::try_from(index).ok().and_then(|i| out.get_mut(i)) {
                bucket.total = u64::try_from(total).unwrap_or(0);
                bucket.failed = number(2).and_then(|f| u64::try_from(f).ok()).unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// How many exchanges since `since_ms` have a finding of each kind (of the newest 10,000
    /// with findings).
    pub async fn finding_kinds(&self, since_ms: i64) -> Result<BTreeMap<String, u64>, StoreError> {
        self.caught_up().await;
        let rows = self
            .text_rows(
                "SELECT findings FROM exchanges WHERE findings <> '[]' AND id >= ? ORDER BY id DESC LIMIT 10000",
                vec![Param::Text(Some(id_floor(since_ms)))],
            )
            .await?;
        let mut kinds = BTreeMap::new();
        for findings in rows.into_iter().filter_map(|row| row.into_iter().next().flatten()) {
            let Ok(Value::Array(findings)) = serde_json::from_str::<Value>(&findings) else {
                continue;
            };
            for kind in findings.iter().filter_map(|f| f.get("kind").and_then(Value::as_str)) {
                *kinds.entry(kind.to_owned()).or_insert(0) += 1;
            }
        }
        Ok(kinds)
    }
}
