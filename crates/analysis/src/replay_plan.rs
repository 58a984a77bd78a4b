//! Which recorded exchanges a replay sends, and which it skips and why. Pure: it decides from
//! the records alone ([`Record`], [`Kept`]: what the store holds, as the plan reads it); the
//! proxy's `replay/` then checks the application and sends.
//!
//! An exchange is *superseded* when everything it writes is written again, later, by exchanges
//! on the same resource that succeeded — or that this run replays. Replaying it would undo
//! them: a deactivation followed by a reactivation must not be replayed after it. What a
//! write touches is kept as keys (`scimtrail_scim::write_keys`). The later writes are those
//! still recorded and, for those pruned since, the store's summary of the latest successful
//! write to each key of the resource. A PATCH partly superseded is replayed without its
//! superseded operations.
//!
//! The other way round, a write that would overwrite *part* of a later write — a PUT after
//! a later PATCH, `name` after a later `name.givenName`, all members after a later member
//! change — is in *conflict*: replaying it would undo the later write (a PUT with
//! `active: true` would re-enable a user deactivated since). Such operations are left out,
//! and a write left with nothing is skipped as `conflict`, saying which writes it would undo.

use scimtrail_scim::write_keys::{covered, inside, write_keys, DELETED};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One recorded exchange as the plan reads it: the fields of the store's record it decides
/// from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The exchange's id (UUIDv7: its order is the IdP's).
    pub id: String,
    /// The original, when this exchange is a replay.
    pub replay_of: Option<String>,
    /// `ok`, `failed`, `unreachable`, `partial`, `interrupted`, …
    pub outcome: String,
    /// The request's method.
    pub method: String,
    /// `create`, `replace`, `patch`, `delete`, `get`, `search`, `bulk`, … (`classify`).
    pub operation: String,
    /// The route it came in on.
    pub route: Option<String>,
    /// `Users`, `Groups`, …
    pub resource_type: Option<String>,
    /// The resource's id, when the request names one.
    pub resource_id: Option<String>,
    /// The request body as recorded (redacted).
    pub request_body: Option<String>,
    /// What made it, when it is synthetic traffic (`verify`), not the IdP's.
    pub synthetic: Option<String>,
}

/// A row of the store's summary of a resource's writes: its latest successful write to one
/// key, by an exchange pruned since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    /// The key (`scimtrail_scim::write_keys`).
    pub key: String,
    /// Where the write stands in the IdP's order.
    pub stands_at: String,
    /// The exchange that wrote it.
    pub exchange_id: String,
}

/// What a replay does with one recorded exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send it again, without the PATCH operations at these indexes (superseded ones).
    Send {
        /// PATCH operations (bulk operations, for a bulk request) not to send.
        left_out: Vec<usize>,
        /// Members (ids, lowercase) to take out of a member operation's value: each was
        /// removed or added again later.
        left_out_members: Vec<(usize, Vec<String>)>,
        /// What the operator should know.
        notes: Vec<String>,
    },
    /// Do not send it.
    Skip {
        /// Why, by kind: `superseded`, `already_replayed`, `conflict`, …
        kind: &'static str,
        /// Why, in words.
        reason: String,
    },
}

/// A resource on a route: (route, resource type, id).
pub type ResourceKey = (String, String, String);

/// The resource an exchange wrote to, when it names one.
pub fn resource_of(exchange: &Record) -> Option<ResourceKey> {
    Some((
        exchange.route.clone()?,
        exchange.resource_type.clone()?,
        exchange.resource_id.clone()?,
    ))
}

/// What one write touches: the keys of each of its operations.
type Keys = Vec<Vec<String>>;

/// The writes this run will send, per resource: who (for the reasons given), and their keys.
type Planned = HashMap<ResourceKey, Vec<(String, Keys)>>;

/// What a plan decides from, per candidate's resource: every write recorded on it, replays
/// included (`writes`), the store's summary of its latest successful write to each key
/// (`summaries`: what was pruned since); and the replays of each candidate.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Every write recorded on each candidate's resource, replays included.
    pub writes: HashMap<ResourceKey, Vec<Record>>,
    /// The store's summary of each candidate's resource.
    pub summaries: HashMap<ResourceKey, Vec<Kept>>,
    /// The replays of each candidate, by the candidate's id.
    pub replays: HashMap<String, Vec<Record>>,
}

/// One step per candidate (in the candidates' order, oldest first). `replayable`: the
/// outcomes a replay may send again (the store's `REPLAYABLE_OUTCOMES`).
pub fn plan(candidates: &[Record], recorded: &Recorded, replayable: &[&str]) -> Vec<Step> {
    // Decided from the newest back, so that what this run will replay later is known when an
    // earlier exchange is decided.
    let mut planned: Planned = HashMap::new();
    let mut steps: Vec<Step> = candidates
        .iter()
        .rev()
        .map(|candidate| {
            let step = decide(candidate, recorded, replayable, &planned);
            if let (
                Step::Send {
                    left_out,
                    left_out_members,
                    ..
                },
                Some(key),
            ) = (&step, resource_of(candidate))
            {
                let mut keys = write_keys(&candidate.method, body_of(candidate).as_ref());
                for (index, members) in left_out_members {
                    if let Some(op) = keys.get_mut(*index) {
                        op.retain(|k| !members.iter().any(|m| k == &format!("members={m}")));
                    }
                }
                for index in left_out.iter().rev() {
                    if *index < keys.len() {
                        keys.remove(*index);
                    }
                }
                planned
                    .entry(key)
                    .or_default()
                    .push((format!("this run's replay of {}", candidate.id), keys));
            }
            step
        })
        .collect();
    steps.reverse();
    steps
}

/// The step for one candidate, in phases: whether it is a candidate at all, the writes after
/// it on its resource, then each of its operations against what those write.
fn decide(candidate: &Record, recorded: &Recorded, replayable: &[&str], planned: &Planned) -> Step {
    if let Some(skip) = not_to_send(candidate, recorded, replayable) {
        return skip;
    }
    let Some(key) = resource_of(candidate) else {
        // A create, or a write to a resource the record does not name.
        return Step::Send {
            left_out: Vec::new(),
            left_out_members: Vec::new(),
            notes: Vec::new(),
        };
    };
    let later = later_writes(candidate, recorded, planned, &key);
    if let Some((who, _)) = later.iter().find(|(_, ops)| ops.iter().flatten().any(|k| k == DELETED)) {
        return Step::Skip {
            kind: "superseded",
            reason: format!("superseded: the resource was deleted later, by {who}"),
        };
    }
    // What it needs to be superseded: a DELETE, only a later DELETE; a create, nothing (the
    // runner asks the application whether it exists).
    let ops = match candidate.method.as_str() {
        "DELETE" => vec![vec![DELETED.to_owned()]],
        "POST" => Vec::new(),
        _ => write_keys(&candidate.method, body_of(candidate).as_ref()),
    };
    let sorted = Sorted::of(&ops, &later);
    sorted.into_step(&ops, &later)
}

/// Why `candidate` is not sent whatever was written after it: a replay, already replayed, an
/// outcome not replayed, a read.
fn not_to_send(candidate: &Record, recorded: &Recorded, replayable: &[&str]) -> Option<Step> {
    let skip = |kind, reason: String| Some(Step::Skip { kind, reason });
    // A replay is not synthetic: sending verify's traffic again would make it the IdP's intent.
    if let Some(made_by) = &candidate.synthetic {
        return skip(
            "not_replayable",
            format!("it is synthetic traffic ({made_by}), not the IdP's: run {made_by} again instead"),
        );
    }
    if let Some(original) = &candidate.replay_of {
        return skip(
            "is_a_replay",
            format!("it is a replay of {original}: replay that one instead"),
        );
    }
    if let Some(done) = recorded
        .replays
        .get(&candidate.id)
        .and_then(|all| all.iter().find(|r| r.outcome == "ok"))
    {
        return skip(
            "already_replayed",
            format!("already replayed successfully as {}", done.id),
        );
    }
    if !replayable.contains(&candidate.outcome.as_str()) {
        return skip(
            "not_replayable",
            format!(
                "its outcome is {}; only {} exchanges are replayed",
                candidate.outcome,
                replayable.join(", ")
            ),
        );
    }
    if !matches!(candidate.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
        || matches!(candidate.operation.as_str(), "search" | "get" | "discovery")
    {
        return skip(
            "read_only",
            "a read changes nothing: the IdP repeats its own reads".to_owned(),
        );
    }
    None
}

/// What succeeded after `candidate` on the same resource, by where it stands in the IdP's
/// order (a replay stands where its original does), then what this run will replay after it.
fn later_writes(candidate: &Record, recorded: &Recorded, planned: &Planned, key: &ResourceKey) -> Vec<(String, Keys)> {
    let mut later: Vec<(String, Keys)> = Vec::new();
    let recorded_writes = recorded.writes.get(key).map(Vec::as_slice).unwrap_or_default();
    for write in recorded_writes {
        let position = write.replay_of.as_deref().unwrap_or(&write.id);
        if write.outcome == "ok"
            && position > candidate.id.as_str()
            && write.replay_of.as_deref() != Some(&candidate.id)
        {
            let who = match &write.replay_of {
                Some(original) => format!("{} (the replay of {original})", write.id),
                None => write.id.clone(),
            };
            later.push((who, write_keys(&write.method, body_of(write).as_ref())));
        }
    }
    later.extend(pruned_later(candidate, recorded_writes, recorded.summaries.get(key)));
    later.extend(planned.get(key).cloned().unwrap_or_default());
    later
}

/// A write's operations sorted against the later writes: superseded (all it writes is
/// written later), in conflict (it would overwrite part of what was written later: a PUT
/// after a later PATCH, `name` after a later `name.givenName`), members changed again later,
/// or sent.
struct Sorted {
    superseded: Vec<usize>,
    conflicting: Vec<usize>,
    left_out_members: Vec<(usize, Vec<String>)>,
}

impl Sorted {
    fn of(ops: &Keys, later: &[(String, Keys)]) -> Sorted {
        let covering: BTreeSet<&str> = later
            .iter()
            .flat_map(|(_, ops)| ops.iter().flatten())
            .map(String::as_str)
            .collect();
        let mut sorted = Sorted {
            superseded: Vec::new(),
            conflicting: Vec::new(),
            left_out_members: Vec::new(),
        };
        for (index, keys) in ops.iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            let members_only = keys.iter().all(|k| k.starts_with("members="));
            if keys.iter().all(|k| covered(k, &covering)) {
                sorted.superseded.push(index);
            } else if members_only && keys.iter().any(|k| covered(k, &covering)) {
                // Some of its members were changed again later: sent without those.
                let ids: Vec<String> = keys
                    .iter()
                    .filter(|k| covered(k, &covering))
                    .filter_map(|k| k.strip_prefix("members=").map(str::to_owned))
                    .collect();
                sorted.left_out_members.push((index, ids));
            } else if keys
                .iter()
                .any(|k| covered(k, &covering) || covering.iter().any(|later| inside(later, k)))
            {
                sorted.conflicting.push(index);
            }
        }
        sorted
    }

    /// The step: skipped when nothing is left to send, else sent without what is left out,
    /// saying why.
    fn into_step(self, ops: &Keys, later: &[(String, Keys)]) -> Step {
        let by = |indexes: &[usize]| touching(ops, later, indexes).join(", ");
        if !ops.is_empty() && self.superseded.len() == ops.len() {
            return Step::Skip {
                kind: "superseded",
                reason: format!(
                    "superseded by later successful writes to the same resource: {}",
                    by(&self.superseded)
                ),
            };
        }
        if !ops.is_empty() && self.superseded.len() + self.conflicting.len() == ops.len() {
            return Step::Skip {
                kind: "conflict",
                reason: format!(
                    "sending it again would undo later writes to the same resource ({}); send what is still wanted from the IdP",
                    by(&self.conflicting)
                ),
            };
        }
        let mut notes = Vec::new();
        let numbers = |indexes: &[usize]| {
            indexes
                .iter()
                .map(|i| (i + 1).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.superseded.is_empty() {
            notes.push(format!(
                "operations {} are left out: superseded by {}",
                numbers(&self.superseded),
                by(&self.superseded)
            ));
        }
        if !self.conflicting.is_empty() {
            notes.push(format!(
                "operations {} are left out: they would undo later writes by {}",
                numbers(&self.conflicting),
                by(&self.conflicting)
            ));
        }
        if !self.left_out_members.is_empty() {
            let ids: Vec<String> = self.left_out_members.iter().flat_map(|(_, ids)| ids.clone()).collect();
            notes.push(format!(
                "members {} are left out: changed again later, by {}",
                ids.join(", "),
                by(&self.left_out_members.iter().map(|(i, _)| *i).collect::<Vec<_>>())
            ));
        }
        let mut left_out = self.superseded;
        left_out.extend(self.conflicting);
        left_out.sort_unstable();
        Step::Send {
            left_out,
            left_out_members: self.left_out_members,
            notes,
        }
    }
}

/// The later writes that write over part of the operations at `indexes`.
fn touching<'a>(ops: &Keys, later: &'a [(String, Keys)], indexes: &[usize]) -> Vec<&'a str> {
    later
        .iter()
        .filter(|(_, later_ops)| {
            let theirs: BTreeSet<&str> = later_ops.iter().flatten().map(String::as_str).collect();
            indexes.iter().any(|i| {
                ops[*i]
                    .iter()
                    .any(|k| covered(k, &theirs) || theirs.iter().any(|l| inside(l, k)))
            })
        })
        .map(|(who, _)| who.as_str())
        .collect()
}

/// The writes after `candidate` that were pruned since, as the resource's summary keeps
/// them: its latest successful write to each key, by the exchange that made it. A write still
/// recorded is decided from its record.
fn pruned_later(candidate: &Record, recorded: &[Record], summary: Option<&Vec<Kept>>) -> Vec<(String, Keys)> {
    let still_recorded: HashSet<&str> = recorded.iter().map(|w| w.id.as_str()).collect();
    let mut by_exchange: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for row in summary.map(Vec::as_slice).unwrap_or_default() {
        if row.stands_at.as_str() > candidate.id.as_str() && !still_recorded.contains(row.exchange_id.as_str()) {
            by_exchange
                .entry((row.stands_at.as_str(), row.exchange_id.as_str()))
                .or_default()
                .push(row.key.clone());
        }
    }
    by_exchange
        .into_iter()
        .map(|((_, id), keys)| {
            (
                format!("{id} (pruned since; the resource's summary keeps its write)"),
                vec![keys],
            )
        })
        .collect()
}

/// The request body as received, parsed.
fn body_of(exchange: &Record) -> Option<Value> {
    exchange
        .request_body
        .as_deref()
        .and_then(|body| serde_json::from_str(body).ok())
}

#[cfg(test)]
mod tests;
