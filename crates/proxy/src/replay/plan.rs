//! Which recorded exchanges a replay sends, and which it skips and why. Pure: it decides from
//! the records alone; `replay.rs` then checks the application and sends.
//!
//! An exchange is *superseded* when everything it writes is written again, later, by exchanges
//! on the same resource that succeeded — or that this run replays. Replaying it would undo
//! them: a deactivation followed by a reactivation must not be replayed after it. What a
//! write touches is kept as keys: an attribute path (`active`, `name.givenname`, the
//! extension's `urn:…:user:manager`), one key per member for add and remove
//! (`members=<id>`), `*` for a PUT (it replaces everything) and for a DELETE (after it,
//! nothing earlier matters), and `(deleted)` for what only a later DELETE supersedes.
//! A PATCH partly superseded is replayed without its superseded operations.

use scimtrail_scim::json;
use scimtrail_store::{Exchange, REPLAYABLE_OUTCOMES};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// What a replay does with one recorded exchange.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Send it again, without the PATCH operations at these indexes (superseded ones).
    Send { left_out: Vec<usize>, notes: Vec<String> },
    /// Do not send it.
    Skip { kind: &'static str, reason: String },
}

/// A resource on a route: (route, resource type, id).
pub(crate) type ResourceKey = (String, String, String);

/// The resource an exchange wrote to, when it names one.
pub(crate) fn resource_of(exchange: &Exchange) -> Option<ResourceKey> {
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

const EVERYTHING: &str = "*";
const DELETED: &str = "(deleted)";

/// One step per candidate (in the candidates' order, oldest first). `writes` holds every
/// write recorded on each candidate's resource, replays included; `replays`, the replays of
/// each candidate.
pub(crate) fn plan(
    candidates: &[Exchange],
    writes: &HashMap<ResourceKey, Vec<Exchange>>,
    replays: &HashMap<String, Vec<Exchange>>,
) -> Vec<Step> {
    // Decided from the newest back, so that what this run will replay later is known when an
    // earlier exchange is decided.
    let mut planned: Planned = HashMap::new();
    let mut steps: Vec<Step> = candidates
        .iter()
        .rev()
        .map(|candidate| {
            let step = decide(candidate, writes, replays, &planned);
            if let (Step::Send { left_out, .. }, Some(key)) = (&step, resource_of(candidate)) {
                let mut keys = write_keys(&candidate.method, body_of(candidate).as_ref());
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

fn decide(
    candidate: &Exchange,
    writes: &HashMap<ResourceKey, Vec<Exchange>>,
    replays: &HashMap<String, Vec<Exchange>>,
    planned: &Planned,
) -> Step {
    let skip = |kind, reason: String| Step::Skip { kind, reason };
    if let Some(original) = &candidate.replay_of {
        return skip(
            "is_a_replay",
            format!("it is a replay of {original}: replay that one instead"),
        );
    }
    if let Some(done) = replays
        .get(&candidate.id)
        .and_then(|all| all.iter().find(|r| r.outcome == "ok"))
    {
        return skip(
            "already_replayed",
            format!("already replayed successfully as {}", done.id),
        );
    }
    if !REPLAYABLE_OUTCOMES.contains(&candidate.outcome.as_str()) {
        return skip(
            "not_replayable",
            format!(
                "its outcome is {}; only {} exchanges are replayed",
                candidate.outcome,
                REPLAYABLE_OUTCOMES.join(", ")
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
    let Some(key) = resource_of(candidate) else {
        // A create, or a write to a resource the record does not name.
        return Step::Send {
            left_out: Vec::new(),
            notes: Vec::new(),
        };
    };
    // What succeeded after it on the same resource, by where it stands in the IdP's order (a
    // replay stands where its original does), then what this run will replay after it.
    let mut later: Vec<(String, Keys)> = Vec::new();
    for write in writes.get(&key).map(Vec::as_slice).unwrap_or_default() {
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
    later.extend(planned.get(&key).cloned().unwrap_or_default());
    if let Some((who, _)) = later.iter().find(|(_, ops)| ops.iter().flatten().any(|k| k == DELETED)) {
        return skip(
            "superseded",
            format!("superseded: the resource was deleted later, by {who}"),
        );
    }
    let covering: BTreeSet<&str> = later
        .iter()
        .flat_map(|(_, ops)| ops.iter().flatten())
        .map(String::as_str)
        .collect();
    let ops = write_keys(&candidate.method, body_of(candidate).as_ref());
    let superseded: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, keys)| !keys.is_empty() && keys.iter().all(|k| covered(k, &covering)))
        .map(|(index, _)| index)
        .collect();
    let by: Vec<&str> = later
        .iter()
        .filter(|(_, later_ops)| {
            let theirs: BTreeSet<&str> = later_ops.iter().flatten().map(String::as_str).collect();
            superseded.iter().any(|i| ops[*i].iter().any(|k| covered(k, &theirs)))
        })
        .map(|(who, _)| who.as_str())
        .collect();
    if !ops.is_empty() && superseded.len() == ops.len() {
        return skip(
            "superseded",
            format!(
                "superseded by later successful writes to the same resource: {}",
                by.join(", ")
            ),
        );
    }
    let notes = if superseded.is_empty() {
        Vec::new()
    } else {
        let numbers: Vec<String> = superseded.iter().map(|i| (i + 1).to_string()).collect();
        vec![format!(
            "operations {} are left out: superseded by {}",
            numbers.join(", "),
            by.join(", ")
        )]
    };
    Step::Send {
        left_out: superseded,
        notes,
    }
}

/// The request body as received, parsed.
fn body_of(exchange: &Exchange) -> Option<Value> {
    exchange
        .request_body
        .as_deref()
        .and_then(|body| serde_json::from_str(body).ok())
}

fn covered(key: &str, later: &BTreeSet<&str>) -> bool {
    if key == DELETED {
        return later.contains(DELETED);
    }
    later.contains(EVERYTHING)
        || later.iter().any(|l| {
            key.strip_prefix(l)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[', '=', ':']))
        })
}

/// What a write touches: one list of keys per operation (a PUT or DELETE is one operation).
pub(crate) fn write_keys(method: &str, body: Option<&Value>) -> Keys {
    match method {
        "PUT" => vec![vec![EVERYTHING.to_owned()]],
        "DELETE" => vec![vec![DELETED.to_owned(), EVERYTHING.to_owned()]],
        "PATCH" => operations(body).iter().map(operation_keys).collect(),
        _ => Vec::new(),
    }
}

/// A PATCH body's operations (`Operations`, any casing).
pub(crate) fn operations(body: Option<&Value>) -> Vec<Value> {
    body.and_then(|body| member(body, "Operations"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    json::get(value.as_object()?, name)
}

fn operation_keys(operation: &Value) -> Vec<String> {
    let op = member(operation, "op")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let value = member(operation, "value");
    let per_member = op == "add" || op == "remove";
    match member(operation, "path").and_then(Value::as_str).map(str::to_lowercase) {
        Some(path) => {
            let path = path.trim().to_owned();
            if path == "members" && per_member {
                match value.and_then(Value::as_array) {
                    Some(values) => member_keys(values),
                    // `remove` of every member.
                    None => vec![path],
                }
            } else if let Some(id) = path
                .strip_prefix("members[value eq \"")
                .and_then(|rest| rest.strip_suffix("\"]"))
            {
                vec![format!("members={id}")]
            } else {
                vec![path]
            }
        }
        None => match value.and_then(Value::as_object) {
            Some(attributes) => attributes
                .iter()
                .flat_map(|(name, value)| {
                    let name = name.to_lowercase();
                    match value {
                        Value::Array(values) if name == "members" && per_member => member_keys(values),
                        // An extension's attributes, each its own key.
                        Value::Object(inner) if name.starts_with("urn:") => inner
                            .keys()
                            .map(|sub| format!("{name}:{}", sub.to_lowercase()))
                            .collect(),
                        _ => vec![name],
                    }
                })
                .collect(),
            None => Vec::new(),
        },
    }
}

fn member_keys(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| match member(v, "value").and_then(Value::as_str) {
            Some(id) => format!("members={}", id.to_lowercase()),
            None => "members".to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
