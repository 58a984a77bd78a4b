//! Normalisation: what scimtrail changes in an exchange so that an IdP's dialect reaches the
//! application as the application accepts it, and the application's answer reaches the IdP as
//! that IdP expects it.
//!
//! # Brief overview
//! - [`Profile`]: an IdP profile, read from a rule file (`config/idps/<name>.toml`, built in
//!   with [`builtin_profiles`]): the rules that IdP needs, each an [`Action`] from one of two
//!   closed sets ([`RequestAction`], [`ResponseAction`]), and test cases that `scimtrail rules test` and `cargo test` run.
//! - [`Catalog`]: every profile a route may name — the bundled ones and the operator's own
//!   rule files, which may extend another profile and add, replace or disable its rules by
//!   id — each with its [`Profile::version`] (`rules_version`, a hash of its rules).
//! - [`Target`]: what the application supports (PATCH or only PUT, filter operators, the most
//!   operations per PATCH, member `type`, content type …). Target-dependent actions read it.
//! - [`probe`]: what `scimtrail probe` learnt about an application, decided into a
//!   [`Target`] and the `[route.target]` block that pins it.
//! - [`normalize_request`] and [`normalize_response`]: pure and total. They return the
//!   exchange as it should be forwarded, and one [`Change`] per edit (rule, where, before,
//!   after), or a [`Refusal`] when forwarding would be unsafe (an invalid filter; a member
//!   removal that a strict application would apply to the whole group).
//!
//! # Invariants
//! - No I/O: rule files are parsed from strings; the built-in ones are compiled in.
//! - Every edit is reported as a [`Change`]; nothing changes silently, and a request no rule
//!   touches comes back equal to what went in.
//! - No rule drops data the IdP meant to write: rules that rewrite a removal or a
//!   replacement keep its meaning (each has a test showing what remains).

mod action;
mod catalog;
mod changes;
pub mod probe;
mod profile;
mod request;
mod resource;
mod response;
mod retry_after;
mod target;
mod testcase;

pub use action::{Action, RequestAction, ResponseAction};
pub use catalog::{rules_version, Catalog, LoadError, Resolution, RuleSource};
pub use changes::{Change, Side};
pub use profile::{
    builtin_profile, builtin_profiles, Disabled, Mode, Origin, Profile, ProfileError, Rule, SAFE_REPAIRS,
};
pub use request::{needs_state, normalize_request};
pub use response::{merge_pages, normalize_response};
pub use retry_after::retry_after_seconds;
pub use target::{Target, DEFAULT_BULK_PAYLOAD_BYTES};
pub use testcase::{run_tests, TestCase, TestOutcome};

use serde_json::Value;

/// A request as the rules see it: the path relative to the route (`/Users/42`), the raw query
/// string, the content type, and the body when it is JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The path after the route prefix.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body, when it parsed as JSON.
    pub body: Option<Value>,
    /// The `If-Match` to send: set when a rule builds the request from the resource's state
    /// (N20), so that a resource changed since fails instead of being overwritten.
    pub if_match: Option<String>,
    /// A filter the proxy evaluates over the application's list (R12), with the IdP's paging.
    pub post_filter: Option<PostFilter>,
    /// Requests to send after this one, in order, each only if the one before succeeded
    /// (R16 splits a PATCH the application would refuse as too large).
    pub then: Vec<Request>,
    /// R4: this request is the first page of a list larger than the application's page; the
    /// rest are fetched one at a time, as [`Pages::query`] gives them, and merged.
    pub pages: Option<Pages>,
}

/// R4: the pages of one list the IdP asked for in one request. Built lazily, one query at a
/// time, so that what the IdP asks costs nothing before each page is sent; `count` is already
/// within the route's `max_aggregate_results`, and every sum is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pages {
    /// The query parameters other than `startIndex` and `count`, decoded, in order.
    pub params: Vec<(String, String)>,
    /// The IdP's `startIndex` (1-based).
    pub start_index: u64,
    /// How many resources in all (the IdP's `count`, clamped).
    pub count: u64,
    /// The application's page size.
    pub page: u64,
}

impl Pages {
    /// The query of page `n` (0 is the first), or `None` past the last one (or past what a
    /// `startIndex` can say).
    pub fn query(&self, n: u64) -> Option<String> {
        let offset = n.checked_mul(self.page).filter(|offset| *offset < self.count)?;
        let start_index = self.start_index.checked_add(offset)?;
        let count = self.page.min(self.count - offset);
        let mut params = self.params.clone();
        params.push(("startIndex".to_owned(), start_index.to_string()));
        params.push(("count".to_owned(), count.to_string()));
        Some(request::query::encode(&params))
    }

    /// How many pages there are at most.
    pub fn len(&self) -> u64 {
        self.count.div_ceil(self.page.max(1))
    }

    /// Whether there is no page at all.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A filter the application cannot evaluate, kept for the response (R12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostFilter {
    /// The filter, canonical.
    pub filter: String,
    /// The IdP's `startIndex` (1-based).
    pub start_index: u64,
    /// The IdP's `count`, if any.
    pub count: Option<u64>,
}

/// A response as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body, when it parsed as JSON.
    pub body: Option<Value>,
    /// Whether there was a body at all (JSON or not).
    pub has_body: bool,
    /// The `Retry-After` header.
    pub retry_after: Option<String>,
    /// When the response arrived, epoch seconds (to turn an HTTP-date into seconds: R14).
    pub received_at_secs: i64,
}

/// Why a request must not be forwarded as it is: a SCIM error for the IdP, and the rule
/// that refused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The rule id, or `filter` for the filter check every profile makes.
    pub rule: String,
    /// The error to answer with.
    pub error: scimtrail_scim::ScimError,
}

/// What a request became.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized<T> {
    /// The request or response to send on.
    pub value: T,
    /// Every edit made, in order.
    pub changes: Vec<Change>,
}
