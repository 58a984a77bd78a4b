//! What an exchange is, read from the SCIM request (and its response): resource type and id,
//! operation, lifecycle event, userName. Pure: no I/O.

use scimtrail_scim::filter::{AttrTest, CompValue, CompareOp};
use scimtrail_scim::{endpoint, json, Filter};
use serde_json::Value;

/// The classification of one exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classification {
    /// `Users`, `Groups`, `Bulk`, `Schemas`, `ResourceTypes`, `ServiceProviderConfig`, `Me`, or
    /// the first path segment for anything else.
    pub resource_type: Option<String>,
    /// The id in `/Users/{id}`.
    pub resource_id: Option<String>,
    /// `create`, `replace`, `patch`, `delete`, `get`, `search`, `bulk`, `discovery`, `other`.
    pub operation: &'static str,
    /// `provision`, `update`, `deactivate`, `reactivate`, `deprovision`, `membership`, `lookup`.
    pub lifecycle: Option<&'static str>,
    /// The userName the request names (body, PATCH value, or `userName eq` filter).
    pub user_name: Option<String>,
}

const ENDPOINTS: [&str; 8] = [
    "Users",
    "Groups",
    "Bulk",
    "Schemas",
    "ResourceTypes",
    "ServiceProviderConfig",
    "Me",
    ".search",
];
const DISCOVERY: [&str; 3] = ["Schemas", "ResourceTypes", "ServiceProviderConfig"];

/// Classifies a request. `path` is relative to the route (`/Users/42`, or `/scim/v2/Users/42`
/// when the IdP's base URL carries a prefix); `query` is the raw query string.
pub fn classify(method: &str, path: &str, query: Option<&str>, body: Option<&Value>) -> Classification {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Endpoints match whatever their case: the application decides how it reads a path, and
    // many match routes ignoring case, so what may reach `/Users` is read as `/Users` — for the
    // record, and for what is refused (a bulk operation naming `/BULK` is a nested bulk).
    let position = segments
        .iter()
        .position(|s| ENDPOINTS.iter().any(|e| e.eq_ignore_ascii_case(s)));
    let (resource_type, resource_id) = match position {
        Some(i) => {
            let endpoint = ENDPOINTS
                .iter()
                .find(|e| e.eq_ignore_ascii_case(segments[i]))
                .copied()
                .unwrap_or_default();
            let id = segments
                .get(i + 1)
                .filter(|s| !s.eq_ignore_ascii_case(".search"))
                .map(|s| (*s).to_owned());
            (Some(endpoint.to_owned()), id)
        }
        None => (segments.first().map(|s| (*s).to_owned()), None),
    };
    let is_search = segments.last().is_some_and(|s| s.eq_ignore_ascii_case(".search"));
    let endpoint = resource_type.as_deref().unwrap_or_default();
    let filter = query_filter(query).or_else(|| {
        if is_search {
            body.and_then(|b| b.get("filter"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        } else {
            None
        }
    });
    let operation = match (method, endpoint, resource_id.is_some()) {
        (_, e, _) if DISCOVERY.contains(&e) => "discovery",
        ("POST", _, _) if is_search => "search",
        ("POST", "Bulk", _) => "bulk",
        ("POST", _, false) if endpoint::is_create(method, path) => "create",
        ("GET", "Users" | "Groups", false) => "search",
        ("GET", "Users" | "Groups" | "Me", true) | ("GET", "Me", false) => "get",
        ("PUT", "Users" | "Groups" | "Me", _) => "replace",
        ("PATCH", "Users" | "Groups" | "Me", _) => "patch",
        ("DELETE", "Users" | "Groups" | "Me", _) => "delete",
        _ => "other",
    };
    let lifecycle = lifecycle(operation, endpoint, body, filter.is_some());
    let user_name = match endpoint {
        "Users" | "Me" => body_user_name(operation, body).or_else(|| filter.as_deref().and_then(filter_user_name)),
        _ => None,
    };
    Classification {
        resource_type,
        resource_id,
        operation,
        lifecycle,
        user_name,
    }
}

fn query_filter(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("filter"))
        .map(|(_, v)| v.into_owned())
}

/// A PATCH or PUT that sets `active` false deactivates; a PATCH that sets it true reactivates
/// (a PUT always carries `active`, so `true` there is an ordinary update).
fn lifecycle(operation: &str, endpoint: &str, body: Option<&Value>, has_filter: bool) -> Option<&'static str> {
    match (operation, endpoint) {
        ("search", _) if has_filter => Some("lookup"),
        ("create", "Users" | "Groups") => Some("provision"),
        ("delete", "Users" | "Groups") => Some("deprovision"),
        ("replace", "Users") => match body
            .and_then(|b| b.as_object())
            .and_then(|b| json::get(b, "active"))
            .and_then(as_bool)
        {
            Some(false) => Some("deactivate"),
            _ => Some("update"),
        },
        ("patch", "Users") => match patched_active(body) {
            Some(false) => Some("deactivate"),
            Some(true) => Some("reactivate"),
            None => Some("update"),
        },
        ("replace", "Groups") => Some(
            if body
                .and_then(|b| b.as_object())
                .is_some_and(|b| json::get(b, "members").is_some())
            {
                "membership"
            } else {
                "update"
            },
        ),
        ("patch", "Groups") => Some(if patch_touches_members(body) {
            "membership"
        } else {
            "update"
        }),
        _ => None,
    }
}

/// Booleans as IdPs send them: `false`, and Entra's `"False"`.
fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn operations(body: Option<&Value>) -> impl Iterator<Item = &serde_json::Map<String, Value>> {
    body.and_then(|b| b.as_object()).into_iter().flat_map(operations_of)
}

fn operations_of(body: &serde_json::Map<String, Value>) -> impl Iterator<Item = &serde_json::Map<String, Value>> {
    json::get(body, "Operations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// The last value a PATCH gives `active`, by path or in a path-less value.
fn patched_active(body: Option<&Value>) -> Option<bool> {
    let mut active = None;
    for op in operations(body) {
        let value = json::get(op, "value");
        match json::get(op, "path").and_then(Value::as_str) {
            Some(path)
                if path.eq_ignore_ascii_case("active") || path.to_ascii_lowercase().ends_with(":user:active") =>
            {
                active = value.and_then(as_bool).or(active);
            }
            Some(_) => {}
            None => {
                if let Some(found) = value
                    .and_then(Value::as_object)
                    .and_then(|v| json::get(v, "active"))
                    .and_then(as_bool)
                {
                    active = Some(found);
                }
            }
        }
    }
    active
}

fn patch_touches_members(body: Option<&Value>) -> bool {
    operations(body).any(|op| match json::get(op, "path").and_then(Value::as_str) {
        Some(path) => path.trim_start().to_ascii_lowercase().starts_with("members"),
        None => json::get(op, "value")
            .and_then(Value::as_object)
            .is_some_and(|v| json::get(v, "members").is_some()),
    })
}

fn body_user_name(operation: &str, body: Option<&Value>) -> Option<String> {
    let body = body?.as_object()?;
    match operation {
        "create" | "replace" => json::get(body, "userName").and_then(Value::as_str).map(str::to_owned),
        "patch" => operations_of(body).find_map(|op| {
            let value = json::get(op, "value")?;
            match json::get(op, "path").and_then(Value::as_str) {
                Some(path) if path.eq_ignore_ascii_case("userName") => value.as_str().map(str::to_owned),
                Some(_) => None,
                None => value
                    .as_object()
                    .and_then(|v| json::get(v, "userName"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }
        }),
        _ => None,
    }
}

/// `userName eq "x"` anywhere in a filter.
fn filter_user_name(filter: &str) -> Option<String> {
    fn find(filter: &Filter) -> Option<String> {
        match filter {
            Filter::Attr {
                path,
                test: AttrTest::Compare(CompareOp::Eq, CompValue::String(value)),
            } if path.is("userName") => Some(value.clone()),
            Filter::And(l, r) | Filter::Or(l, r) => find(l).or_else(|| find(r)),
            _ => None,
        }
    }
    find(&Filter::parse(filter).ok()?)
}

/// Whether an exchange only reads: a GET (or HEAD), or a search by POST to `.search`
/// (RFC 7644 §3.4.3). A read changes nothing in the application, so it is recorded once,
/// whole, after the answer; everything else is recorded in flight before it is forwarded.
pub fn is_read(method: &str, operation: &str) -> bool {
    matches!(method, "GET" | "HEAD") || (method == "POST" && operation == "search")
}

/// What the response adds: the id of a created resource, a userName the request did not show.
pub fn learn_from_response(
    classification: &Classification,
    response: Option<&Value>,
) -> (Option<String>, Option<String>) {
    let Some(body) = response.and_then(Value::as_object) else {
        return (None, None);
    };
    let id = match classification.operation {
        "create" if classification.resource_id.is_none() => {
            json::get(body, "id").and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    };
    let user_name = match (classification.resource_type.as_deref(), &classification.user_name) {
        (Some("Users"), None) => json::get(body, "userName").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    (id, user_name)
}

/// What a resource is called: its id, userName, externalId and displayName.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The resource id.
    pub id: String,
    /// `userName`.
    pub user_name: Option<String>,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
}

/// The names of every resource a response shows: the resource itself (a create, a read, a
/// reply to a write) or each of a list's `Resources`. A redacted name is not a name.
pub fn names_shown(response: Option<&Value>) -> Vec<Names> {
    let Some(body) = response.and_then(Value::as_object) else {
        return Vec::new();
    };
    let of = |resource: &serde_json::Map<String, Value>| {
        let text = |name: &str| {
            json::get(resource, name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty() && *v != scimtrail_scim::redact::REDACTED)
                .map(str::to_owned)
        };
        let names = Names {
            id: text("id")?,
            user_name: text("userName"),
            external_id: text("externalId"),
            display_name: text("displayName"),
        };
        (names.user_name.is_some() || names.external_id.is_some() || names.display_name.is_some()).then_some(names)
    };
    match json::get(body, "Resources").and_then(Value::as_array) {
        Some(resources) => resources.iter().filter_map(Value::as_object).filter_map(of).collect(),
        None => of(body).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_gets_and_searches_only() {
        let cases = [
            ("GET", "/Users/1", true),
            ("GET", "/Users", true),
            ("GET", "/ServiceProviderConfig", true),
            ("POST", "/Users/.search", true),
            ("POST", "/.search", true),
            ("POST", "/Users", false),
            ("POST", "/Bulk", false),
            ("POST", "/Schemas", false),
            ("PUT", "/Users/1", false),
            ("PATCH", "/Users/1", false),
            ("DELETE", "/Users/1", false),
            ("OPTIONS", "/Users", false),
        ];
        for (method, path, read) in cases {
            let operation = classify(method, path, None, None).operation;
            assert_eq!(is_read(method, operation), read, "{method} {path} ({operation})");
        }
    }
    use serde_json::json;

    #[track_caller]
    fn check(
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Value,
        expected: (&str, Option<&str>, Option<&str>, Option<&str>, Option<&str>),
    ) {
        let body = (!body.is_null()).then_some(body);
        let c = classify(method, path, query, body.as_ref());
        let got = (
            c.operation,
            c.lifecycle,
            c.resource_type.as_deref(),
            c.resource_id.as_deref(),
            c.user_name.as_deref(),
        );
        assert_eq!(got, expected, "{method} {path}");
    }

    #[test]
    fn lifecycle_of_okta_shapes() {
        let patch =
            |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        // Okta.
        check(
            "GET",
            "/Users",
            Some("filter=userName%20eq%20%22a%40b.c%22&startIndex=1&count=100"),
            Value::Null,
            ("search", Some("lookup"), Some("Users"), None, Some("a@b.c")),
        );
        check(
            "POST",
            "/Users",
            None,
            json!({"userName": "a@b.c"}),
            ("create", Some("provision"), Some("Users"), None, Some("a@b.c")),
        );
        check(
            "PUT",
            "/Users/42",
            None,
            json!({"userName": "a@b.c", "active": true}),
            ("replace", Some("update"), Some("Users"), Some("42"), Some("a@b.c")),
        );
        check(
            "PUT",
            "/Users/42",
            None,
            json!({"userName": "a@b.c", "active": false}),
            ("replace", Some("deactivate"), Some("Users"), Some("42"), Some("a@b.c")),
        );
        check(
            "PATCH",
            "/Users/42",
            None,
            patch(json!([{"op": "replace", "value": {"active": false}}])),
            ("patch", Some("deactivate"), Some("Users"), Some("42"), None),
        );
        check(
            "PATCH",
            "/Users/42",
            None,
            patch(json!([{"op": "replace", "value": {"active": true}}])),
            ("patch", Some("reactivate"), Some("Users"), Some("42"), None),
        );
        check(
            "PATCH",
            "/Groups/g",
            None,
            patch(json!([{"op": "remove", "path": "members[value eq \"u\"]"}])),
            ("patch", Some("membership"), Some("Groups"), Some("g"), None),
        );
        check(
            "PATCH",
            "/Groups/g",
            None,
            patch(json!([{"op": "replace", "value": {"id": "g", "displayName": "x"}}])),
            ("patch", Some("update"), Some("Groups"), Some("g"), None),
        );
        check(
            "DELETE",
            "/Groups/g",
            None,
            Value::Null,
            ("delete", Some("deprovision"), Some("Groups"), Some("g"), None),
        );
    }

    #[test]
    fn lifecycle_of_entra_shapes() {
        let patch =
            |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        // Entra, default and flag shapes.
        check(
            "PATCH",
            "/Users/42",
            None,
            patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
            ("patch", Some("deactivate"), Some("Users"), Some("42"), None),
        );
        check(
            "PATCH",
            "/Users/42",
            None,
            patch(json!([{"op": "replace", "path": "active", "value": false}])),
            ("patch", Some("deactivate"), Some("Users"), Some("42"), None),
        );
        check(
            "PATCH",
            "/Users/42",
            None,
            patch(json!([{"op": "Replace", "path": "userName", "value": "new@b.c"}])),
            ("patch", Some("update"), Some("Users"), Some("42"), Some("new@b.c")),
        );
        check(
            "PATCH",
            "/Groups/g",
            None,
            patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "u"}]}])),
            ("patch", Some("membership"), Some("Groups"), Some("g"), None),
        );
        check(
            "GET",
            "/Groups",
            Some("excludedAttributes=members&filter=displayName+eq+%22Eng%22"),
            Value::Null,
            ("search", Some("lookup"), Some("Groups"), None, None),
        );
        check(
            "DELETE",
            "/Users/42",
            None,
            Value::Null,
            ("delete", Some("deprovision"), Some("Users"), Some("42"), None),
        );
    }

    #[test]
    fn prefixed_paths_search_bulk_discovery_and_other() {
        // Prefixed base paths, search, bulk, discovery, other.
        check(
            "GET",
            "/scim/v2/Users/42",
            None,
            Value::Null,
            ("get", None, Some("Users"), Some("42"), None),
        );
        check(
            "POST",
            "/Users/.search",
            None,
            json!({"filter": "userName eq \"x\""}),
            ("search", Some("lookup"), Some("Users"), None, Some("x")),
        );
        check(
            "POST",
            "/Bulk",
            None,
            json!({}),
            ("bulk", None, Some("Bulk"), None, None),
        );
        check(
            "GET",
            "/ServiceProviderConfig",
            None,
            Value::Null,
            ("discovery", None, Some("ServiceProviderConfig"), None, None),
        );
        check(
            "GET",
            "/Users",
            Some("startIndex=1&count=100"),
            Value::Null,
            ("search", None, Some("Users"), None, None),
        );
        check(
            "GET",
            "/healthcheck",
            None,
            Value::Null,
            ("other", None, Some("healthcheck"), None, None),
        );
    }

    /// One place decides what a create is (`endpoint::is_create`): the record, the rules and
    /// the read-back agree on every path, whatever the endpoint's case.
    #[test]
    fn the_record_calls_a_create_what_the_rules_call_a_create() {
        for (method, path, create) in [
            ("POST", "/Users", true),
            ("POST", "/Groups/", true),
            ("POST", "/scim/v2/Users", true),
            ("POST", "/users", true),
            ("POST", "/scim/v2/GROUPS", true),
            ("post", "/Users", false),
            ("POST", "/Users/42", false),
            ("POST", "/Users/.search", false),
            ("POST", "/Bulk", false),
            ("PUT", "/Users", false),
        ] {
            let recorded = classify(method, path, None, None).operation == "create";
            assert_eq!(
                (recorded, endpoint::is_create(method, path)),
                (create, create),
                "{method} {path}"
            );
        }
        check(
            "POST",
            "/users",
            None,
            json!({"userName": "a"}),
            ("create", Some("provision"), Some("Users"), None, Some("a")),
        );
    }

    #[test]
    fn responses_teach_the_created_id_and_user_name() {
        let created = classify("POST", "/Users", None, Some(&json!({"userName": "a"})));
        assert_eq!(
            learn_from_response(&created, Some(&json!({"id": "9", "userName": "a"}))),
            (Some("9".into()), None)
        );
        let read = classify("GET", "/Users/9", None, None);
        assert_eq!(
            learn_from_response(&read, Some(&json!({"id": "9", "userName": "a"}))),
            (None, Some("a".into()))
        );
    }
}
