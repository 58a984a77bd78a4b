//! Arbitrary bytes read as an exchange's parts, for the targets that take structured input:
//! fields cut at each 0xFF byte (which UTF-8 text never holds) — a selector, a path, a
//! query, a request body, a status, a response body and a resource's state. Short inputs give
//! empty fields, so every input is some exchange.

use scimtrail_rules::{Request, Response};
use serde_json::Value;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const ENDPOINTS: [&str; 9] = [
    "/Users",
    "/Users/u1",
    "/Groups",
    "/Groups/g1",
    "/Bulk",
    "/.search",
    "/Users/.search",
    "/ServiceProviderConfig",
    "/Me",
];

/// An input's fields.
pub(crate) struct Parts<'a> {
    fields: Vec<&'a [u8]>,
}

impl<'a> Parts<'a> {
    pub(crate) fn of(data: &'a [u8]) -> Parts<'a> {
        Parts {
            fields: data.split(|byte| *byte == 0xFF).collect(),
        }
    }

    fn field(&self, index: usize) -> &'a [u8] {
        self.fields.get(index).copied().unwrap_or_default()
    }

    fn text(&self, index: usize) -> String {
        String::from_utf8_lossy(self.field(index)).into_owned()
    }

    fn json(&self, index: usize) -> Option<Value> {
        serde_json::from_slice(self.field(index)).ok()
    }

    fn selector(&self, at: usize) -> usize {
        self.field(0).get(at).copied().map_or(0, usize::from)
    }

    /// One of `among` choices, by the selector's byte `at` (selector bytes: 0 the method,
    /// 1 the endpoint, then what the target chooses).
    pub(crate) fn choice(&self, at: usize, among: usize) -> usize {
        self.selector(at) % among.max(1)
    }

    /// The request: a method and an endpoint chosen by the selector, the path field after it.
    pub(crate) fn request(&self) -> Request {
        let query = self.text(2);
        Request {
            method: METHODS[self.selector(0) % METHODS.len()].to_owned(),
            path: format!("{}{}", ENDPOINTS[self.selector(1) % ENDPOINTS.len()], self.text(1)),
            query: (!query.is_empty()).then_some(query),
            content_type: Some("application/scim+json".to_owned()),
            body: self.json(3),
            if_match: None,
            post_filter: None,
            then: Vec::new(),
            pages: None,
        }
    }

    /// The `filter` of the query, decoded.
    pub(crate) fn filter(&self) -> Option<String> {
        let query = self.text(2);
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("filter="))
            .map(|f| f.replace("%20", " ").replace("%22", "\""))
    }

    /// The application's answer.
    pub(crate) fn response(&self) -> Response {
        let status = match self.field(4) {
            [high, low, ..] => 100 + (u16::from(*high) << 8 | u16::from(*low)) % 500,
            _ => 200,
        };
        let body = self.field(5);
        Response {
            status,
            content_type: Some("application/scim+json".to_owned()),
            body: serde_json::from_slice(body).ok(),
            has_body: !body.is_empty(),
            retry_after: Some(self.text(6)).filter(|r| !r.is_empty()),
            received_at_secs: 1_700_000_000,
        }
    }

    /// A resource's state, as a stateful rule or read-back would have read it.
    pub(crate) fn state(&self) -> Option<Value> {
        self.json(7)
    }
}
