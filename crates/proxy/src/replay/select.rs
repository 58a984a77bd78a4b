//! Which exchanges a run takes up, and what its plan decides from: the records of each
//! candidate's resource, in the IdP's order, the resource's summary, and each candidate's
//! replays.

use super::Selection;
use crate::Proxy;
use scimtrail_analysis::replay_plan::{self, resource_of, Kept, Record};
use scimtrail_store::{Exchange, ResourceWrite, StoreError};
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// What a run's plan decides from (`replay_plan::Recorded`), and the replays of each
/// candidate as recorded, which the run's checks read too.
pub(super) struct Gathered {
    pub(super) candidates: Vec<Record>,
    pub(super) plan: replay_plan::Recorded,
    pub(super) replays: HashMap<String, Vec<Exchange>>,
}

impl Proxy {
    /// The records the plan decides `candidates` from.
    pub(super) async fn gather(&self, candidates: &[Exchange]) -> Result<Gathered, StoreError> {
        let mut gathered = Gathered {
            candidates: candidates.iter().map(record).collect(),
            plan: replay_plan::Recorded::default(),
            replays: HashMap::new(),
        };
        for candidate in &gathered.candidates {
            if let Some(key) = resource_of(candidate) {
                if let Entry::Vacant(slot) = gathered.plan.writes.entry(key.clone()) {
                    let (route, resource_type, id) = slot.key();
                    let found = self.store.writes_to(route, resource_type, id).await?;
                    let in_order = self.in_the_idps_order(found).await?;
                    slot.insert(in_order.iter().map(record).collect());
                    let summary = self.store.resource_writes(&key.0, &key.1, &key.2).await?;
                    gathered.plan.summaries.insert(key, summary.iter().map(kept).collect());
                }
            }
            let replays = self.store.replays(&candidate.id).await?;
            gathered
                .plan
                .replays
                .insert(candidate.id.clone(), replays.iter().map(record).collect());
            gathered.replays.insert(candidate.id.clone(), replays);
        }
        Ok(gathered)
    }

    /// Writes as they stand in the IdP's order: an exchange made for a replay (a fanned-out
    /// bulk operation) stands where the replay's original stands, as the replay itself does.
    pub(super) async fn in_the_idps_order(&self, mut writes: Vec<Exchange>) -> Result<Vec<Exchange>, StoreError> {
        let mut originals: HashMap<String, Option<String>> = HashMap::new();
        for write in &mut writes {
            let Some(parent) = write.begun.parent_id.clone() else {
                continue;
            };
            let original = match originals.get(&parent) {
                Some(original) => original.clone(),
                None => {
                    let original = match self.store.get(&parent).await {
                        Ok(parent) => parent.begun.replay_of,
                        Err(StoreError::NotFound(_)) => None,
                        Err(error) => return Err(error),
                    };
                    originals.insert(parent, original.clone());
                    original
                }
            };
            if original.is_some() {
                write.begun.replay_of = original;
            }
        }
        Ok(writes)
    }

    /// The selected exchanges, oldest first, each once.
    pub(super) async fn select(&self, selection: Selection) -> Result<Vec<Exchange>, StoreError> {
        let mut found = match selection {
            Selection::Ids(ids) => {
                let mut found = Vec::with_capacity(ids.len());
                for id in ids {
                    found.push(self.store.get(&id).await?);
                }
                found
            }
            Selection::Filter(mut filter) => {
                filter.replayable = true;
                filter.limit = 1000;
                let mut all = Vec::new();
                loop {
                    let page = self.store.list(&filter).await?;
                    all.extend(page.items);
                    match page.next_cursor {
                        Some(cursor) => filter.cursor = Some(cursor),
                        None => break all,
                    }
                }
            }
        };
        // Ids are UUIDv7: their order is the order the IdP sent them in.
        found.sort_by(|a, b| a.begun.id.cmp(&b.begun.id));
        found.dedup_by(|a, b| a.begun.id == b.begun.id);
        Ok(found)
    }
}

/// An exchange's record as the plan reads it.
fn record(exchange: &Exchange) -> Record {
    Record {
        id: exchange.begun.id.clone(),
        replay_of: exchange.begun.replay_of.clone(),
        outcome: exchange.outcome().to_owned(),
        method: exchange.begun.method.clone(),
        operation: exchange.begun.operation.clone(),
        route: exchange.begun.route.clone(),
        resource_type: exchange.begun.resource_type.clone(),
        resource_id: exchange.begun.resource_id.clone(),
        request_body: exchange.begun.request_body.clone(),
        synthetic: exchange.begun.synthetic.clone(),
    }
}

/// A row of a resource's summary as the plan reads it.
fn kept(row: &ResourceWrite) -> Kept {
    Kept {
        key: row.key.clone(),
        stands_at: row.stands_at.clone(),
        exchange_id: row.exchange_id.clone(),
    }
}
