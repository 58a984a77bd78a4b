//! Protocol messages: list queries (query parameters and SearchRequest), ListResponse, and
//! BulkRequest/BulkResponse (RFC 7644 §3.4, §3.7).

use crate::filter::Filter;
use crate::json;
use crate::path::AttrPath;
use crate::{ScimError, ScimType};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The ListResponse message schema URN.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The SearchRequest message schema URN.
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// The BulkRequest message schema URN.
pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The BulkResponse message schema URN.
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// A list query: filter, sorting, pagination and attribute selection (RFC 7644 §3.4.2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// `filter`.
    pub filter: Option<Filter>,
    /// `sortBy`.
    pub sort_by: Option<AttrPath>,
    /// `sortOrder=descending`.
    pub descending: bool,
    /// `startIndex`, 1-based; values below 1 are 1 (§3.4.2.4).
    pub start_index: u64,
    /// `count`; negative values are 0 (§3.4.2.4).
    pub count: Option<u64>,
    /// `attributes`, comma-separated.
    pub attributes: Option<String>,
    /// `excludedAttributes`, comma-separated.
    pub excluded_attributes: Option<String>,
}

impl ListQuery {
    /// Reads the query parameters of a GET (names case-insensitive; unknown ones ignored).
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<ListQuery, ScimError> {
        let mut query = ListQuery {
            start_index: 1,
            ..ListQuery::default()
        };
        for (name, value) in params {
            match name.to_ascii_lowercase().as_str() {
                "filter" => query.filter = Some(Filter::parse(value).map_err(|e| e.to_scim_error())?),
                "sortby" => query.sort_by = Some(parse_sort_by(value)?),
                "sortorder" => query.descending = parse_sort_order(value)?,
                "startindex" => query.start_index = parse_integer("startIndex", value)?.max(1) as u64,
                "count" => query.count = Some(parse_integer("count", value)?.max(0) as u64),
                "attributes" => query.attributes = Some(value.to_owned()),
                "excludedattributes" => query.excluded_attributes = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(query)
    }

    /// Reads a SearchRequest body (RFC 7644 §3.4.3).
    pub fn from_search_request(body: &Value) -> Result<ListQuery, ScimError> {
        let syntax = |detail: String| ScimError::bad_request(ScimType::InvalidSyntax, detail);
        let Value::Object(members) = body else {
            return Err(syntax("the body must be a SearchRequest object".into()));
        };
        check_message_schema(members, SEARCH_REQUEST_SCHEMA)?;
        let mut query = ListQuery {
            start_index: 1,
            ..ListQuery::default()
        };
        for (key, value) in members {
            let text = || {
                value.as_str().ok_or_else(|| {
                    ScimError::bad_request(ScimType::InvalidValue, format!("\"{key}\" must be a string"))
                })
            };
            let list = || -> Result<String, ScimError> {
                match value {
                    Value::Array(items) => items
                        .iter()
                        .map(|i| {
                            i.as_str().ok_or_else(|| {
                                ScimError::bad_request(
                                    ScimType::InvalidValue,
                                    format!("\"{key}\" must be an array of strings"),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(|v| v.join(",")),
                    _ => Err(ScimError::bad_request(
                        ScimType::InvalidValue,
                        format!("\"{key}\" must be an array of strings"),
                    )),
                }
            };
            let integer = || {
                value.as_i64().ok_or_else(|| {
                    ScimError::bad_request(ScimType::InvalidValue, format!("\"{key}\" must be an integer"))
                })
            };
            match key.to_ascii_lowercase().as_str() {
                "schemas" => {}
                "filter" => query.filter = Some(Filter::parse(text()?).map_err(|e| e.to_scim_error())?),
                "sortby" => query.sort_by = Some(parse_sort_by(text()?)?),
                "sortorder" => query.descending = parse_sort_order(text()?)?,
                "startindex" => query.start_index = integer()?.max(1) as u64,
                "count" => query.count = Some(integer()?.max(0) as u64),
                "attributes" => query.attributes = Some(list()?),
                "excludedattributes" => query.excluded_attributes = Some(list()?),
                _ => return Err(syntax(format!("unknown member \"{key}\" in a SearchRequest"))),
            }
        }
        Ok(query)
    }
}

fn parse_sort_by(value: &str) -> Result<AttrPath, ScimError> {
    AttrPath::parse(value).map_err(|e| ScimError::bad_request(ScimType::InvalidValue, format!("\"sortBy\": {e}")))
}

fn parse_sort_order(value: &str) -> Result<bool, ScimError> {
    match value {
        "ascending" => Ok(false),
        "descending" => Ok(true),
        other => Err(ScimError::bad_request(
            ScimType::InvalidValue,
            format!("\"sortOrder\" is \"{other}\"; it must be \"ascending\" or \"descending\""),
        )),
    }
}

fn parse_integer(name: &str, value: &str) -> Result<i64, ScimError> {
    value.parse::<i64>().map_err(|_| {
        ScimError::bad_request(
            ScimType::InvalidValue,
            format!("\"{name}\" is \"{value}\"; it must be an integer"),
        )
    })
}

fn check_message_schema(members: &Map<String, Value>, urn: &str) -> Result<(), ScimError> {
    match json::get(members, "schemas") {
        Some(Value::Array(urns))
            if urns.len() == 1 && urns[0].as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn)) =>
        {
            Ok(())
        }
        _ => Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("\"schemas\" must be [\"{urn}\"]"),
        )),
    }
}

/// A ListResponse (RFC 7644 §3.4.2): paging fields are integers.
#[derive(Debug, Clone, PartialEq)]
pub struct ListResponse {
    /// Number of results matching the query.
    pub total_results: u64,
    /// 1-based index of the first result in this page.
    pub start_index: u64,
    /// The results in this page.
    pub resources: Vec<Value>,
}

impl ListResponse {
    /// The message body.
    pub fn to_json(&self) -> Value {
        json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": self.total_results,
            "startIndex": self.start_index,
            "itemsPerPage": self.resources.len(),
            "Resources": self.resources,
        })
    }
}

/// The methods a bulk operation may use (RFC 7644 §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkMethod {
    /// Create.
    Post,
    /// Replace.
    Put,
    /// Modify.
    Patch,
    /// Delete.
    Delete,
}

impl BulkMethod {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkMethod::Post => "POST",
            BulkMethod::Put => "PUT",
            BulkMethod::Patch => "PATCH",
            BulkMethod::Delete => "DELETE",
        }
    }
}

/// One operation of a BulkRequest.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOperation {
    /// The method.
    pub method: BulkMethod,
    /// The client's temporary identifier (required for POST).
    pub bulk_id: Option<String>,
    /// The resource version for `If-Match`.
    pub version: Option<String>,
    /// The resource path, relative to the service root (`/Users`, `/Groups/{id}`).
    pub path: String,
    /// The body (POST, PUT, PATCH).
    pub data: Option<Value>,
}

/// A BulkRequest (RFC 7644 §3.7).
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// Stop after this many errors.
    pub fail_on_errors: Option<u64>,
    /// The operations, in order.
    pub operations: Vec<BulkOperation>,
}

impl BulkRequest {
    /// Parses a BulkRequest strictly.
    pub fn from_json(body: &Value) -> Result<BulkRequest, ScimError> {
        let syntax = |detail: String| ScimError::bad_request(ScimType::InvalidSyntax, detail);
        let Value::Object(members) = body else {
            return Err(syntax("the body must be a BulkRequest object".into()));
        };
        check_message_schema(members, BULK_REQUEST_SCHEMA)?;
        if let Some(key) = members.keys().find(|k| {
            !["schemas", "Operations", "failOnErrors"]
                .iter()
                .any(|m| k.eq_ignore_ascii_case(m))
        }) {
            return Err(syntax(format!("unknown member \"{key}\" in a BulkRequest")));
        }
        let fail_on_errors = match json::get(members, "failOnErrors") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => n.as_u64(),
            Some(other) => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    format!("\"failOnErrors\" must be a positive integer, not {other}"),
                ))
            }
        };
        let Some(Value::Array(operations)) = json::get(members, "Operations") else {
            return Err(syntax("\"Operations\" must be an array".into()));
        };
        let operations = operations
            .iter()
            .enumerate()
            .map(|(i, op)| parse_bulk_operation(i, op))
            .collect::<Result<_, _>>()?;
        Ok(BulkRequest {
            fail_on_errors,
            operations,
        })
    }
}

fn parse_bulk_operation(index: usize, op: &Value) -> Result<BulkOperation, ScimError> {
    let syntax =
        |detail: String| ScimError::bad_request(ScimType::InvalidSyntax, format!("Operations[{index}]: {detail}"));
    let Value::Object(members) = op else {
        return Err(syntax("an operation must be an object".into()));
    };
    if let Some(key) = members.keys().find(|k| {
        !["method", "bulkId", "version", "path", "data"]
            .iter()
            .any(|m| k.eq_ignore_ascii_case(m))
    }) {
        return Err(syntax(format!("unknown member \"{key}\"")));
    }
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        match json::get(members, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(syntax(format!("\"{name}\" must be a string, not {other}"))),
        }
    };
    let method = match text("method")?.as_deref() {
        Some("POST") => BulkMethod::Post,
        Some("PUT") => BulkMethod::Put,
        Some("PATCH") => BulkMethod::Patch,
        Some("DELETE") => BulkMethod::Delete,
        Some(other) => {
            return Err(syntax(format!(
                "\"method\" is \"{other}\"; it must be POST, PUT, PATCH or DELETE"
            )))
        }
        None => return Err(syntax("\"method\" is missing".into())),
    };
    let bulk_id = text("bulkId")?;
    if method == BulkMethod::Post && bulk_id.is_none() {
        return Err(syntax("\"bulkId\" is required for POST (RFC 7644 §3.7)".into()));
    }
    let path = text("path")?
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| syntax("\"path\" must be a resource path such as \"/Users\"".into()))?;
    let data = json::get(members, "data").filter(|d| !d.is_null()).cloned();
    if method != BulkMethod::Delete && data.is_none() {
        return Err(syntax(format!("\"data\" is required for {}", method.as_str())));
    }
    Ok(BulkOperation {
        method,
        bulk_id,
        version: text("version")?,
        path,
        data,
    })
}

impl BulkOperation {
    /// The operation's path and data with every `bulkId:X` reference replaced by the id
    /// `resolved` maps X to, and the references left unresolved.
    pub fn resolved(&self, resolved: &HashMap<String, String>) -> (String, Option<Value>, Vec<String>) {
        let mut unresolved = Vec::new();
        let path = resolve_in_str(&self.path, resolved, &mut unresolved);
        let data = self.data.clone().map(|mut data| {
            unresolved.extend(resolve_bulk_ids(&mut data, resolved));
            data
        });
        (path, data, unresolved)
    }
}

/// Replaces every `bulkId:X` reference in `value`'s strings by the id `resolved` maps X to
/// (RFC 7644 §3.7.2); returns the references it could not resolve, left as they were.
pub fn resolve_bulk_ids(value: &mut Value, resolved: &HashMap<String, String>) -> Vec<String> {
    let mut unresolved = Vec::new();
    walk_strings(value, &mut |text| {
        *text = resolve_in_str(text, resolved, &mut unresolved)
    });
    unresolved
}

fn walk_strings(value: &mut Value, visit: &mut impl FnMut(&mut String)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter_mut().for_each(|item| walk_strings(item, visit)),
        Value::Object(members) => members.values_mut().for_each(|member| walk_strings(member, visit)),
        _ => {}
    }
}

/// A reference runs from `bulkId:` to the next `/`, `"` or `?`, or the end.
fn resolve_in_str(text: &str, resolved: &HashMap<String, String>, unresolved: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("bulkId:") {
        out.push_str(&rest[..start]);
        let reference = &rest[start + "bulkId:".len()..];
        let end = reference.find(['/', '"', '?']).unwrap_or(reference.len());
        match resolved.get(&reference[..end]) {
            Some(id) => out.push_str(id),
            None => {
                unresolved.push(reference[..end].to_owned());
                out.push_str(&rest[start..start + "bulkId:".len() + end]);
            }
        }
        rest = &reference[end..];
    }
    out.push_str(rest);
    out
}

/// The result of one bulk operation.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOperationResult {
    /// The method.
    pub method: BulkMethod,
    /// The client's bulkId, echoed.
    pub bulk_id: Option<String>,
    /// The resulting version.
    pub version: Option<String>,
    /// The resource location.
    pub location: Option<String>,
    /// The HTTP status.
    pub status: u16,
    /// The error body, for failures.
    pub response: Option<Value>,
}

impl BulkOperationResult {
    /// An operation that failed with `error`, the error as its `response`.
    pub fn failed(operation: &BulkOperation, error: &ScimError) -> BulkOperationResult {
        BulkOperationResult {
            method: operation.method,
            bulk_id: operation.bulk_id.clone(),
            version: None,
            location: None,
            status: error.status,
            response: Some(error.to_json()),
        }
    }
}

/// A BulkResponse: `status` values are strings, as in RFC 7644 §3.7.3's examples.
pub fn bulk_response(results: &[BulkOperationResult]) -> Value {
    let operations: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut op = Map::new();
            op.insert("method".into(), json!(r.method.as_str()));
            if let Some(bulk_id) = &r.bulk_id {
                op.insert("bulkId".into(), json!(bulk_id));
            }
            if let Some(version) = &r.version {
                op.insert("version".into(), json!(version));
            }
            if let Some(location) = &r.location {
                op.insert("location".into(), json!(location));
            }
            op.insert("status".into(), json!(r.status.to_string()));
            if let Some(response) = &r.response {
                op.insert("response".into(), response.clone());
            }
            Value::Object(op)
        })
        .collect();
    json!({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": operations})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_id_references_are_resolved_where_known_and_reported_where_not() {
        let resolved = HashMap::from([("a".to_owned(), "id-a".to_owned())]);
        let mut data = json!({"members": [{"value": "bulkId:a"}, {"value": "bulkId:b"}], "n": 1,
            "x": "bulkId:a/bulkId:b?"});
        let unresolved = resolve_bulk_ids(&mut data, &resolved);
        assert_eq!(
            data,
            json!({"members": [{"value": "id-a"}, {"value": "bulkId:b"}], "n": 1, "x": "id-a/bulkId:b?"})
        );
        assert_eq!(unresolved, ["b", "b"]);
        let operation = BulkOperation {
            method: BulkMethod::Patch,
            bulk_id: None,
            version: None,
            path: "/Groups/bulkId:a".into(),
            data: None,
        };
        assert_eq!(
            operation.resolved(&resolved),
            ("/Groups/id-a".to_owned(), None, Vec::new())
        );
    }

    #[test]
    fn query_parameters() {
        let query = ListQuery::from_params([
            ("filter", "userName eq \"a\""),
            ("SORTBY", "name.familyName"),
            ("sortOrder", "descending"),
            ("startIndex", "-3"),
            ("count", "-1"),
            ("aadOptscim062020", ""),
        ])
        .unwrap();
        assert_eq!(query.start_index, 1);
        assert_eq!(query.count, Some(0));
        assert!(query.descending);
        assert!(query.filter.is_some());
        for (name, value, scim_type) in [
            ("filter", "userName eq", ScimType::InvalidFilter),
            ("count", "ten", ScimType::InvalidValue),
            ("sortOrder", "up", ScimType::InvalidValue),
            ("sortBy", "a b", ScimType::InvalidValue),
        ] {
            assert_eq!(
                ListQuery::from_params([(name, value)]).unwrap_err().scim_type,
                Some(scim_type),
                "{name}={value}"
            );
        }
    }

    #[test]
    fn search_request() {
        let query = ListQuery::from_search_request(&json!({"schemas": [SEARCH_REQUEST_SCHEMA], "attributes": ["userName", "name"], "filter": "userName sw \"a\"", "count": 5})).unwrap();
        assert_eq!(query.attributes.as_deref(), Some("userName,name"));
        assert_eq!(query.count, Some(5));
        assert!(ListQuery::from_search_request(&json!({"schemas": [SEARCH_REQUEST_SCHEMA], "nope": 1})).is_err());
        assert!(ListQuery::from_search_request(&json!({"filter": "a pr"})).is_err());
    }

    #[test]
    fn bulk_request_parsing() {
        let body = json!({
            "schemas": [BULK_REQUEST_SCHEMA],
            "failOnErrors": null,
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "qwerty", "data": {"userName": "a"}},
                {"method": "DELETE", "path": "/Users/1", "version": "W/\"1\""}
            ]
        });
        let request = BulkRequest::from_json(&body).unwrap();
        assert_eq!(request.fail_on_errors, None);
        assert_eq!(request.operations.len(), 2);
        let refusals = [
            json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": [{"method": "POST", "path": "/Users", "data": {}}]}),
            json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": [{"method": "post", "path": "/Users", "bulkId": "a", "data": {}}]}),
            json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": [{"method": "PUT", "path": "/Users/1"}]}),
            json!({"schemas": [BULK_REQUEST_SCHEMA], "failOnErrors": "1", "Operations": []}),
            json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": [{"method": "DELETE", "path": "Users/1"}]}),
        ];
        for body in refusals {
            assert!(BulkRequest::from_json(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn bulk_response_status_is_a_string() {
        let body = bulk_response(&[BulkOperationResult {
            method: BulkMethod::Post,
            bulk_id: Some("q".into()),
            version: None,
            location: Some("http://x/Users/1".into()),
            status: 201,
            response: None,
        }]);
        assert_eq!(body["Operations"][0]["status"], "201");
        assert_eq!(
            ListResponse {
                total_results: 0,
                start_index: 1,
                resources: vec![]
            }
            .to_json()["itemsPerPage"],
            0
        );
    }
}
