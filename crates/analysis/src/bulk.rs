//! `/Bulk`, one operation at a time: what each operation of a bulk request became, read from
//! the BulkResponse, for the exchange's `bulk_operations` — so that a bulk request that
//! half-failed shows which half, and replay can send only that half again. Pure.

use scimtrail_scim::json as scim_json;
use serde_json::{json, Value};

/// One entry per operation of the request, in its order: `index`, `method`, `path`, `bulkId`,
/// `status`, `outcome` (`ok`, `failed`, or `not_attempted` when the application stopped
/// early, as `failOnErrors` asks), `location`, and the error's `detail`. `None` when the
/// request is not a BulkRequest.
pub fn operations(request: Option<&Value>, response: Option<&Value>) -> Option<Value> {
    let asked = member(request?, "Operations")?.as_array()?;
    let answered: &[Value] = response
        .and_then(|r| member(r, "Operations"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut used = vec![false; answered.len()];
    let entries = asked
        .iter()
        .enumerate()
        .map(|(index, operation)| {
            let method = text(operation, "method").map(str::to_ascii_uppercase);
            let bulk_id = text(operation, "bulkId");
            // The answer with the same bulkId, else the one at the same place with the same
            // method: RFC 7644 §3.7.3 returns them in order, bulkIds echoed.
            let found = answered
                .iter()
                .enumerate()
                .position(|(i, a)| !used[i] && bulk_id.is_some() && text(a, "bulkId") == bulk_id)
                .or_else(|| {
                    answered.get(index).and_then(|a| {
                        let same = !used[index] && text(a, "method").map(str::to_ascii_uppercase) == method;
                        same.then_some(index)
                    })
                });
            let mut entry = json!({
                "index": index,
                "method": method,
                "path": text(operation, "path"),
                "bulkId": bulk_id,
            });
            match found {
                Some(i) => {
                    used[i] = true;
                    let result = &answered[i];
                    let status = status_of(result);
                    entry["status"] = json!(status);
                    entry["outcome"] = json!(match status {
                        Some(200..=299) => "ok",
                        _ => "failed",
                    });
                    entry["location"] = json!(text(result, "location"));
                    if let Some(detail) = member(result, "response").and_then(|r| text(r, "detail")) {
                        entry["detail"] = json!(detail);
                    }
                }
                None => {
                    entry["outcome"] = json!("not_attempted");
                }
            }
            entry
        })
        .collect();
    Some(Value::Array(entries))
}

/// The exchange's outcome from its operations': `failed` when none took effect, `partial`
/// when some did, `None` when all did (the outcome is then the exchange's own).
pub fn outcome(operations: &Value) -> Option<&'static str> {
    let all = operations.as_array()?;
    let ok = all.iter().filter(|o| o["outcome"] == "ok").count();
    match ok {
        _ if all.is_empty() || ok == all.len() => None,
        0 => Some("failed"),
        _ => Some("partial"),
    }
}

fn member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    scim_json::get(value.as_object()?, name)
}

fn text<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    member(value, name)?.as_str()
}

fn status_of(result: &Value) -> Option<u16> {
    match member(result, "status")? {
        Value::String(text) => text.trim().get(..3)?.parse().ok(),
        other => other.as_u64().and_then(|n| u16::try_from(n).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_gets_its_own_outcome() {
        let request = json!({"Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "x"}},
            {"method": "patch", "path": "/Groups/g1", "data": {}},
            {"method": "DELETE", "path": "/Users/u9"}
        ]});
        let response = json!({"Operations": [
            {"method": "POST", "bulkId": "a", "location": "https://app/Users/u1", "status": "201"},
            {"method": "PATCH", "location": "https://app/Groups/g1", "status": "400",
             "response": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "detail": "no such member"}}
        ]});
        let operations = operations(Some(&request), Some(&response)).unwrap();
        let outcomes: Vec<&str> = operations
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["ok", "failed", "not_attempted"]);
        assert_eq!(operations[0]["location"], "https://app/Users/u1");
        assert_eq!(operations[1]["status"], 400);
        assert_eq!(operations[1]["detail"], "no such member");
        assert_eq!(operations[1]["method"], "PATCH");
        assert_eq!(outcome(&operations), Some("partial"));
    }

    #[test]
    fn answers_are_matched_by_bulk_id_whatever_their_order() {
        let request = json!({"Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a"},
            {"method": "POST", "path": "/Users", "bulkId": "b"}
        ]});
        let response = json!({"Operations": [
            {"method": "POST", "bulkId": "b", "status": 409},
            {"method": "POST", "bulkId": "a", "status": 201}
        ]});
        let operations = operations(Some(&request), Some(&response)).unwrap();
        assert_eq!(operations[0]["outcome"], "ok");
        assert_eq!(operations[1]["outcome"], "failed");
    }

    #[test]
    fn not_a_bulk_request_has_no_operations() {
        assert_eq!(operations(Some(&json!({"userName": "x"})), None), None);
        assert_eq!(operations(None, None), None);
        let all_ok = json!([{"outcome": "ok"}]);
        assert_eq!(outcome(&all_ok), None);
        assert_eq!(outcome(&json!([{"outcome": "failed"}])), Some("failed"));
    }
}
