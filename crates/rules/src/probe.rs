//! What `scimtrail probe` learnt about an application, turned into the [`Target`] that pins
//! it and the `[route.target]` block that says so, a comment per key naming the probe that
//! decided it. Pure: the requests are the CLI's; this module only reads what they showed.

use crate::Target;

/// One question the probe asks the application. Its [`Probe::name`] is what the report and
/// the emitted block call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    /// Which request media types a create is accepted with, and which one answers carry.
    ContentType,
    /// Whether `"op":"Replace"` (capitalised) is accepted.
    OpCase,
    /// Whether a PATCH without `path` (the value an object of attributes) is applied.
    PathlessPatch,
    /// Whether `remove` with `members[value eq "…"]` removes that member only.
    MemberFilterPath,
    /// Whether `replace` with `emails[type eq "work"].value` changes that email.
    ValueFilterPath,
    /// What `remove` of `members` with a value array does.
    ValueArrayRemoval,
    /// Whether `replace` of `members` with `[]` empties the group.
    EmptyMembersReplace,
    /// Whether a member without `type` is accepted.
    MemberType,
    /// Whether PATCH is supported.
    PatchSupport,
    /// Whether PUT is supported.
    PutSupport,
    /// How a successful PATCH is answered: 200 with the resource, or 204.
    PatchAnswer,
    /// What `"active":"False"` (a string) does.
    StringBoolean,
    /// Whether `userName eq` matches another casing.
    UserNameCase,
    /// What a second create of a userName (same, and another casing) gets.
    UserNameUniqueness,
    /// Each filter operator on each attribute.
    Filters,
    /// The page size it really gives, and `totalResults`.
    Paging,
    /// Whether `sortBy` sorts.
    Sorting,
    /// `/Bulk`: advertised, and a real small one.
    Bulk,
    /// ETags: advertised, given, and `If-Match` enforced.
    Etags,
    /// How a deleted user reads back.
    Deletion,
    /// How a deactivated user reads back.
    Deactivation,
}

impl Probe {
    /// Every probe, in the order the battery runs them.
    pub const ALL: [Probe; 21] = [
        Probe::ContentType,
        Probe::OpCase,
        Probe::PathlessPatch,
        Probe::MemberFilterPath,
        Probe::ValueFilterPath,
        Probe::ValueArrayRemoval,
        Probe::EmptyMembersReplace,
        Probe::MemberType,
        Probe::PatchSupport,
        Probe::PutSupport,
        Probe::PatchAnswer,
        Probe::StringBoolean,
        Probe::UserNameCase,
        Probe::UserNameUniqueness,
        Probe::Filters,
        Probe::Paging,
        Probe::Sorting,
        Probe::Bulk,
        Probe::Etags,
        Probe::Deletion,
        Probe::Deactivation,
    ];

    /// The probe's name in the report and the emitted block.
    pub fn name(self) -> &'static str {
        match self {
            Probe::ContentType => "content-type",
            Probe::OpCase => "op-case",
            Probe::PathlessPatch => "pathless-patch",
            Probe::MemberFilterPath => "member-filter-path",
            Probe::ValueFilterPath => "value-filter-path",
            Probe::ValueArrayRemoval => "value-array-removal",
            Probe::EmptyMembersReplace => "empty-members-replace",
            Probe::MemberType => "member-type",
            Probe::PatchSupport => "patch-support",
            Probe::PutSupport => "put-support",
            Probe::PatchAnswer => "patch-answer",
            Probe::StringBoolean => "string-boolean",
            Probe::UserNameCase => "username-case",
            Probe::UserNameUniqueness => "username-uniqueness",
            Probe::Filters => "filters",
            Probe::Paging => "paging",
            Probe::Sorting => "sorting",
            Probe::Bulk => "bulk",
            Probe::Etags => "etags",
            Probe::Deletion => "deletion",
            Probe::Deactivation => "deactivation",
        }
    }
}

/// One request a probe sent and what came back: the evidence of its finding. It never holds
/// a header: the credentials are not evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// `PATCH /Users/8d1…`, the path relative to the application's base URL, with its query.
    pub request: String,
    /// The answer's status; `None` when none came (the excerpt says why).
    pub status: Option<u16>,
    /// The start of the answer's body, on one line.
    pub excerpt: String,
}

/// What `remove` of `members` with a value array (`[{"value": id}]`) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayRemoval {
    /// Removed the named member only (lenient: RFC 7644 gives `remove` no value).
    OnlyNamed,
    /// Removed every member (RFC 7644 §3.5.2.2 read strictly).
    All,
    /// Refused it.
    Refused,
    /// Accepted it and removed nothing.
    Nothing,
}

/// What `"active":"False"` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringBoolean {
    /// Refused it (strict).
    Refused,
    /// Took it as `false`.
    Applied,
    /// Accepted it and left the user active.
    Ignored,
}

/// What a second create of a userName got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uniqueness {
    /// The status of a create of the same userName.
    pub same: Option<u16>,
    /// The status of a create of the userName in another casing.
    pub other_case: Option<u16>,
}

/// One filter the probe asked, and whether the answer was right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterCheck {
    /// `userName`, `externalId`, `emails.value`, `displayName`.
    pub attribute: String,
    /// `eq` … `le`, `pr`, `and`, `or`, `not`.
    pub operator: String,
    /// `Some(true)`: the right users; `Some(false)`: refused or the wrong ones; `None`:
    /// cannot tell (the page was cut before the users it looked for).
    pub correct: Option<bool>,
}

/// `/Bulk` as advertised by `ServiceProviderConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BulkAdvertised {
    /// `bulk.supported`.
    pub supported: bool,
    /// `bulk.maxOperations`.
    pub max_operations: Option<u64>,
    /// `bulk.maxPayloadSize`.
    pub max_payload_bytes: Option<u64>,
}

/// ETags, as seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Etags {
    /// `etag.supported` in `ServiceProviderConfig`.
    pub advertised: Option<bool>,
    /// Whether a GET of a user carried an `ETag` header (or `meta.version`).
    pub given: bool,
    /// The status of a write with a stale `If-Match`; `None` when not tried (no ETag).
    pub stale_if_match: Option<u16>,
}

/// How a deleted user read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterDelete {
    /// The DELETE's status.
    pub delete_status: u16,
    /// A GET of it afterwards.
    pub get_status: u16,
    /// Whether a `userName eq` search still lists it.
    pub still_listed: bool,
}

/// How a deactivated user read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterDeactivate {
    /// Whether a GET shows `active: false`.
    pub reads_inactive: bool,
    /// Whether a `userName eq` search still lists it.
    pub still_listed: bool,
}

/// What the battery found. `None` (or empty): the probe could not tell (it failed, or what
/// it needed failed before it); the key it decides stays at its default, and says so.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observations {
    /// A create with `application/scim+json` was accepted.
    pub accepts_scim_json: Option<bool>,
    /// A create with `application/json` was accepted.
    pub accepts_json: Option<bool>,
    /// The media type of its answers.
    pub answers_content_type: Option<String>,
    /// `"op":"Replace"` accepted and applied.
    pub op_case_insensitive: Option<bool>,
    /// A path-less PATCH applied.
    pub pathless_patch: Option<bool>,
    /// `remove members[value eq "…"]` removed that member only.
    pub member_filter_path: Option<bool>,
    /// `replace emails[type eq "work"].value` applied.
    pub value_filter_path: Option<bool>,
    /// What `remove members` with a value array did.
    pub value_array_removal: Option<ArrayRemoval>,
    /// `replace members []` emptied the group.
    pub empty_members_replace: Option<bool>,
    /// A member without `type` was refused where one with `type` was taken.
    pub member_type_required: Option<bool>,
    /// PATCH supported.
    pub patch: Option<bool>,
    /// PUT supported.
    pub put: Option<bool>,
    /// The status of a successful PATCH.
    pub patch_status: Option<u16>,
    /// What `"active":"False"` did.
    pub string_boolean: Option<StringBoolean>,
    /// `userName eq` in another casing did not find the user.
    pub user_name_case_exact: Option<bool>,
    /// Second creates of a userName.
    pub uniqueness: Option<Uniqueness>,
    /// Each filter asked.
    pub filters: Vec<FilterCheck>,
    /// `filter.maxResults` in `ServiceProviderConfig`.
    pub advertised_max_results: Option<u64>,
    /// The most it returned in one page when asked for more and holding more; `None` when it
    /// gave all it held.
    pub page_cap: Option<u64>,
    /// A small `count` was honoured (no more resources than asked).
    pub count_honoured: Option<bool>,
    /// Lists carry `totalResults`.
    pub total_results: Option<bool>,
    /// `sort.supported` in `ServiceProviderConfig`.
    pub sort_advertised: Option<bool>,
    /// `sortBy=userName&sortOrder=descending` ordered the users so.
    pub sorting: Option<bool>,
    /// `/Bulk` as advertised.
    pub bulk_advertised: Option<BulkAdvertised>,
    /// A real bulk request of one create succeeded.
    pub bulk_works: Option<bool>,
    /// ETags.
    pub etags: Option<Etags>,
    /// How a deleted user read back.
    pub after_delete: Option<AfterDelete>,
    /// How a deactivated user read back.
    pub after_deactivate: Option<AfterDeactivate>,
}

/// One key of the emitted block: its value, the probe that decided it and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinned {
    /// The `[route.target]` key.
    pub key: &'static str,
    /// Its value, as TOML.
    pub value: toml::Value,
    /// The probe that decided it.
    pub probe: Probe,
    /// What the probe saw, in a few words.
    pub why: String,
}

/// A finding no key expresses, or one an operator must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The probe that found it.
    pub probe: Probe,
    /// What it found.
    pub text: String,
    /// Whether it breaks provisioning whatever the target says (a deactivation that does not
    /// take effect): the report flags it.
    pub warning: bool,
}

/// The findings decided: the target, its keys, and what is only reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The target the keys make (the default where no probe decided).
    pub target: Target,
    /// The keys, in the order they are emitted.
    pub keys: Vec<Pinned>,
    /// Keys the probe could not decide, with the probe that was to decide them.
    pub undecided: Vec<(&'static str, Probe)>,
    /// Report-only findings.
    pub notes: Vec<Note>,
}

/// The attributes the filter probe asks about, in order.
pub const FILTER_ATTRIBUTES: [&str; 4] = ["userName", "externalId", "emails.value", "displayName"];

/// The operators the filter probe asks about, in order.
pub const FILTER_OPERATORS: [&str; 13] = [
    "eq", "ne", "co", "sw", "ew", "pr", "gt", "ge", "lt", "le", "and", "or", "not",
];

/// The keys the probe never decides (they stay at the default, unless the operator sets
/// them): they are said in the block's header.
pub const NOT_PROBED: [&str; 6] = [
    "password_sync",
    "max_patch_operations",
    "max_operation_values",
    "max_aggregate_results",
    "max_requests_per_second",
    "max_in_flight",
];

mod block;
mod decide;

pub use decide::decide;

#[cfg(test)]
mod tests;
