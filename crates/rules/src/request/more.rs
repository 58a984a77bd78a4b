//! Request rules for what some applications lack: JSON-encoded roles (N7), password sync
//! (N16), empty member replaces (N19), and filters they cannot evaluate (R12, N21).

use super::{Edits, Working};
use crate::{pointer_token, query, Pages, PostFilter, Target};
use scimtrail_scim::{json, Filter};
use serde_json::{json, Value};

impl Working {
    // === N7 ===

    pub(super) fn parse_json_roles(&mut self) {
        let mut edits: Edits = Vec::new();
        let parse = |roles: &mut Value, pointer: &str, edits: &mut Edits| {
            for (index, role) in roles.as_array_mut().into_iter().flatten().enumerate() {
                let Some(text) = role.get("value").and_then(Value::as_str) else {
                    continue;
                };
                if !text.trim_start().starts_with('{') {
                    continue;
                }
                let Ok(Value::Object(mut decoded)) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                // Entra's object names the role's display text `displayName`; SCIM's is `display`.
                if let Some(display) = decoded.remove("displayName") {
                    decoded.entry("display").or_insert(display);
                }
                decoded.remove("id");
                let replacement = Value::Object(decoded);
                edits.push((
                    format!("{pointer}/{index}"),
                    Some(role.clone()),
                    Some(replacement.clone()),
                ));
                *role = replacement;
            }
        };
        if self.is_resource_write() {
            if let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) {
                if let Some(key) = json::find_key(body, "roles").cloned() {
                    if let Some(roles) = body.get_mut(&key) {
                        parse(roles, &format!("/{key}"), &mut edits);
                    }
                }
            }
        }
        let key = self.operations_key();
        if let Some(operations) = self.operations() {
            for (index, operation) in operations.iter_mut().enumerate() {
                let Some(operation) = operation.as_object_mut() else {
                    continue;
                };
                let targets_roles = json::get(operation, "path")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.eq_ignore_ascii_case("roles"));
                if targets_roles {
                    if let Some(value) = json::get_mut(operation, "value") {
                        parse(value, &format!("/{key}/{index}/value"), &mut edits);
                    }
                }
            }
        }
        self.record(edits);
    }

    // === N16 ===

    pub(super) fn strip_placeholder_password(&mut self) {
        let is_create = self.request.method.eq_ignore_ascii_case("POST")
            && self.resource_type.is_some_and(|rt| rt.name == "User")
            && self.resource_id.is_none();
        if !is_create {
            return;
        }
        let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) else {
            return;
        };
        if let Some(key) = json::find_key(body, "password").cloned() {
            if let Some(password) = body.remove(&key) {
                self.record(vec![(format!("/{}", pointer_token(&key)), Some(password), None)]);
            }
        }
    }

    // === N19 ===

    pub(super) fn empty_members_replace_as_remove(&mut self) {
        let key = self.operations_key();
        let mut edits: Edits = Vec::new();
        if let Some(operations) = self.operations() {
            for (index, operation) in operations.iter_mut().enumerate() {
                let Some(object) = operation.as_object() else { continue };
                let is_replace = json::get(object, "op")
                    .and_then(Value::as_str)
                    .is_some_and(|op| op.eq_ignore_ascii_case("replace"));
                let on_members = json::get(object, "path")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.eq_ignore_ascii_case("members"));
                let empty = json::get(object, "value").is_some_and(|v| v.as_array().is_some_and(Vec::is_empty));
                if is_replace && on_members && empty {
                    let replacement = json!({"op": "remove", "path": "members"});
                    edits.push((
                        format!("/{key}/{index}"),
                        Some(operation.clone()),
                        Some(replacement.clone()),
                    ));
                    *operation = replacement;
                }
            }
        }
        self.record(edits);
    }

    // === R12, N21 ===

    pub(super) fn evaluate_filter_in_proxy(&mut self, target: &Target) {
        let Some(rt) = self.resource_type else { return };
        if !self.request.method.eq_ignore_ascii_case("GET") || self.resource_id.is_some() {
            return;
        }
        let Some(raw) = self.request.query.clone().filter(|raw| query::is_text(raw)) else {
            return;
        };
        let params = query::decode(&raw);
        let Some(text) = params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("filter"))
            .map(|(_, value)| value.clone())
        else {
            return;
        };
        let Ok(filter) = Filter::parse(&text) else { return };
        let mut beyond = false;
        filter.for_each_path(&mut |parent, path| {
            let top = parent.unwrap_or(path);
            let name = rt
                .resolve(&scimtrail_scim::AttrPath {
                    sub: None,
                    ..top.clone()
                })
                .map_or_else(|| top.name.clone(), |resolved| resolved.attr.name.to_owned());
            let unsupported = !target.filter_attributes.is_empty()
                && !target.filter_attributes.iter().any(|a| a.eq_ignore_ascii_case(&name));
            let case_exact_user_name = target.user_name_case_exact && name == "userName";
            beyond |= unsupported || case_exact_user_name;
        });
        beyond |= !target.filter_operators.is_empty()
            && operators(&filter).iter().any(|op| {
                !target
                    .filter_operators
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(op))
            });
        if !beyond {
            return;
        }
        let number = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let kept: Vec<(String, String)> = params
            .iter()
            .filter(|(name, _)| {
                !["filter", "startIndex", "count"]
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name))
            })
            .cloned()
            .chain([
                ("startIndex".to_owned(), "1".to_owned()),
                ("count".to_owned(), target.max_results.to_string()),
            ])
            .collect();
        let encoded = query::encode(&kept);
        self.request.post_filter = Some(PostFilter {
            filter: text.clone(),
            start_index: number("startIndex").unwrap_or(1).max(1),
            count: number("count"),
        });
        self.request.query = Some(encoded.clone());
        self.record(vec![("?".to_owned(), Some(json!(raw)), Some(json!(encoded)))]);
    }

    /// A GET of a collection (not one resource, not a filter the proxy evaluates).
    fn list_params(&self) -> Option<Vec<(String, String)>> {
        let is_list = self.request.method.eq_ignore_ascii_case("GET")
            && self.resource_type.is_some()
            && self.resource_id.is_none()
            && self.request.post_filter.is_none();
        is_list.then(|| query::decode(self.request.query.as_deref().unwrap_or_default()))
    }

    // === R5 ===

    pub(super) fn stable_order(&mut self, target: &Target) {
        let Some(mut params) = self.list_params() else { return };
        let has = |params: &[(String, String)], name: &str| params.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        // Imports page through everything; a filtered lookup finds one resource.
        let paged = has(&params, "startIndex") || has(&params, "count");
        if !target.sorting || !paged || has(&params, "sortBy") || has(&params, "filter") {
            return;
        }
        params.push(("sortBy".to_owned(), "id".to_owned()));
        self.request.query = Some(query::encode(&params));
        self.record(vec![("?sortBy".to_owned(), None, Some(json!("id")))]);
    }

    // === R4 ===

    pub(super) fn aggregate_pages(&mut self, target: &Target) {
        let Some(params) = self.list_params() else { return };
        let number = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().parse::<u64>())
        };
        let page = target.max_results.max(1);
        // A `count` or `startIndex` that is not a number is the application's to refuse.
        let (Some(Ok(asked)), None | Some(Ok(_))) = (number("count"), number("startIndex")) else {
            return;
        };
        if asked <= page {
            return;
        }
        let start_index = number("startIndex").and_then(Result::ok).unwrap_or(1).max(1);
        // What one IdP request may cost: RFC 7644 §3.4.2.4 lets a service return fewer
        // results than `count` asks; the IdP pages on from what it receives.
        let count = asked.min(target.aggregate_limit());
        let pages = Pages {
            params: params
                .iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("startIndex") && !n.eq_ignore_ascii_case("count"))
                .cloned()
                .collect(),
            start_index,
            count,
            page,
        };
        let Some(first) = pages.query(0) else { return };
        let before = self.request.query.replace(first.clone());
        self.request.pages = Some(pages);
        let mut edits = vec![("?".to_owned(), before.map(Value::String), Some(json!(first)))];
        if count < asked {
            edits.push((
                "?count".to_owned(),
                Some(json!(asked.to_string())),
                Some(json!(count.to_string())),
            ));
        }
        self.record(edits);
    }
}

/// Every operator a filter uses: comparison operators, `pr`, `and`, `or`, `not`.
fn operators(filter: &Filter) -> Vec<&'static str> {
    use scimtrail_scim::filter::{AttrTest, SubAttrTest};
    let test = |test: &AttrTest| match test {
        AttrTest::Present => "pr",
        AttrTest::Compare(op, _) => op.as_str(),
    };
    match filter {
        Filter::Attr { test: t, .. } => vec![test(t)],
        Filter::ValuePath { filter, then, .. } => {
            let mut ops = operators(filter);
            if let Some(SubAttrTest { test: t, .. }) = then {
                ops.push(test(t));
            }
            ops
        }
        Filter::And(left, right) => [vec!["and"], operators(left), operators(right)].concat(),
        Filter::Or(left, right) => [vec!["or"], operators(left), operators(right)].concat(),
        Filter::Not(inner) => [vec!["not"], operators(inner)].concat(),
    }
}
