//! `/ServiceProviderConfig` as clients get it through the proxy (R17).

use crate::changes::Changes;
use crate::{Request, Response, Target};
use serde_json::{json, Value};

// === R17 ===

pub(super) fn advertise_capabilities(
    request: &Request,
    response: &mut Response,
    target: &Target,
    changes: &mut Changes,
) {
    let is_config = request.method.eq_ignore_ascii_case("GET")
        && request.path.trim_end_matches('/').ends_with("/ServiceProviderConfig");
    if !is_config || response.status != 200 {
        return;
    }
    let Some(Value::Object(config)) = response.body.as_mut() else {
        return;
    };
    for (feature, supported) in [("patch", true), ("filter", true), ("bulk", target.bulk)] {
        let entry = config.entry(feature.to_owned()).or_insert_with(|| json!({}));
        let Some(entry) = entry.as_object_mut() else { continue };
        let before = entry.get("supported").cloned();
        if before != Some(Value::Bool(supported)) {
            entry.insert("supported".to_owned(), Value::Bool(supported));
            changes.record(format!("/{feature}/supported"), before, Some(Value::Bool(supported)));
        }
        if feature != "bulk" {
            continue;
        }
        // The limits the proxy enforces on a bulk request, whether it carries it out itself or
        // forwards it: within what the application advertises, when it serves `/Bulk`.
        let limits = [
            ("maxOperations", target.max_bulk_operations),
            ("maxPayloadSize", target.bulk_payload_limit()),
        ];
        for (name, ours) in limits {
            let before = entry.get(name).cloned();
            let theirs = before.as_ref().and_then(Value::as_u64).filter(|_| target.bulk);
            let advertised = theirs.map_or(ours as u64, |theirs| theirs.min(ours as u64));
            if before.as_ref().and_then(Value::as_u64) != Some(advertised) {
                entry.insert(name.to_owned(), json!(advertised));
                changes.record(format!("/bulk/{name}"), before, Some(json!(advertised)));
            }
        }
    }
}
