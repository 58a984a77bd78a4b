//! A list request shaped for the application: a filter it cannot evaluate, evaluated by the
//! proxy over one page (R12, N21); a stable order for paging (R5); a count larger than its
//! page fetched as several pages (R4).

use super::{filter, query, Working};
use crate::{Pages, PostFilter, Target};
use scimtrail_scim::Filter;
use serde_json::{json, Value};

impl Working {
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
            && filter::operators(&filter).iter().any(|op| {
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
        self.changes.record("?", Some(json!(raw)), Some(json!(encoded)));
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
        self.changes.record("?sortBy", None, Some(json!("id")));
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
        self.changes.record("?", before.map(Value::String), Some(json!(first)));
        if count < asked {
            self.changes
                .record("?count", Some(json!(asked.to_string())), Some(json!(count.to_string())));
        }
    }
}
