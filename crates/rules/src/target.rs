//! The target-application profile: what the application behind a route accepts.

use serde::Deserialize;

/// What the application supports, where it changes what the rules do. The default is a
/// strictly RFC 7643/7644 application, such as `scimtrail refapp`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Target {
    /// The media type it accepts for request bodies (N22).
    pub content_type: String,
    /// Whether group members must carry `type` (N17).
    pub member_type_required: bool,
    /// Whether it accepts PATCH; without, PATCH becomes PUT (N20).
    pub patch: bool,
    /// Whether it accepts value-path filters in PATCH paths (`emails[type eq "work"].value`);
    /// without, such operations replace the whole attribute (R13).
    pub value_path_filters: bool,
    /// Whether it accepts PUT; without, PUT becomes PATCH (N20).
    pub put: bool,
    /// The most operations it takes in one PATCH (R16); `None`: any number.
    pub max_patch_operations: Option<usize>,
    /// The most values it takes in one operation's value array (R16); `None`: any number.
    pub max_operation_values: Option<usize>,
    /// Whether it keeps passwords; without, a create's placeholder password is dropped (N16).
    pub password_sync: bool,
    /// Whether it accepts `replace members []`; without, that becomes `remove members` (N19).
    pub empty_members_replace: bool,
    /// The attributes its filters understand; empty: all (R12).
    pub filter_attributes: Vec<String>,
    /// The filter operators it understands (`eq`, `co`, `and`, `not`, `pr` …); empty: all
    /// (R12).
    pub filter_operators: Vec<String>,
    /// Whether it refuses booleans written as strings (`"False"`); when it takes them, N2
    /// leaves them as sent.
    pub strict_booleans: bool,
    /// Whether it serves `/Bulk`, as advertised to clients (R17).
    pub bulk: bool,
    /// Whether its `userName` matching is case-sensitive, against RFC 7643 (N21, R11).
    pub user_name_case_exact: bool,
    /// The most resources it returns in one page; what the proxy evaluates a filter over
    /// (R12), and the page size it aggregates a larger `count` from (R4).
    pub max_results: u64,
    /// The most resources the proxy fetches, in pages of `max_results`, for one IdP request
    /// (R4); a larger `count` is answered with this many (RFC 7644 §3.4.2.4 allows fewer).
    /// `None`: ten pages.
    pub max_aggregate_results: Option<u64>,
    /// Whether it sorts lists (`sortBy`, R5).
    pub sorting: bool,
    /// The most operations one bulk request may carry (RFC 7644 §3.7: `maxOperations`): the
    /// proxy refuses more with 413, and advertises it where it rewrites the
    /// ServiceProviderConfig (R17).
    pub max_bulk_operations: usize,
    /// The most bytes one bulk request may carry (`maxPayloadSize`): refused and advertised
    /// likewise. `None`: the proxy's request body limit.
    pub max_bulk_payload_bytes: Option<usize>,
    /// The most requests it takes in any one second, from each proxy instance: the proxy paces
    /// what it sends to stay within it (no rule reads it). `None`: no limit.
    pub max_requests_per_second: Option<u32>,
    /// The most requests it takes at once, from each proxy instance: paced likewise. `None`:
    /// no limit.
    pub max_in_flight: Option<u32>,
}

/// `maxPayloadSize` when neither the route nor the proxy's body limit says otherwise: RFC
/// 7644's own example, and the default body limit.
pub const DEFAULT_BULK_PAYLOAD_BYTES: usize = 1024 * 1024;

impl Target {
    /// The most resources fetched for one IdP request (R4).
    pub fn aggregate_limit(&self) -> u64 {
        self.max_aggregate_results
            .unwrap_or_else(|| self.max_results.saturating_mul(10))
            .max(self.max_results.max(1))
    }

    /// The most bytes of one bulk request.
    pub fn bulk_payload_limit(&self) -> usize {
        self.max_bulk_payload_bytes.unwrap_or(DEFAULT_BULK_PAYLOAD_BYTES)
    }
}

impl Default for Target {
    fn default() -> Self {
        Target {
            content_type: "application/scim+json".to_owned(),
            member_type_required: false,
            patch: true,
            value_path_filters: true,
            put: true,
            max_patch_operations: None,
            max_operation_values: None,
            password_sync: true,
            empty_members_replace: true,
            filter_attributes: Vec::new(),
            filter_operators: Vec::new(),
            strict_booleans: true,
            bulk: false,
            user_name_case_exact: false,
            max_results: 1000,
            max_aggregate_results: None,
            sorting: true,
            max_bulk_operations: 1000,
            max_bulk_payload_bytes: None,
            max_requests_per_second: None,
            max_in_flight: None,
        }
    }
}
