//! Every normalisation there is: a closed set. A rule file picks actions from it by name;
//! adding a behaviour means adding a variant here, with its tests.

use serde::{Deserialize, Serialize};

/// One action. Request actions (N…) edit what is forwarded; response actions (R…) edit what
/// the IdP receives. The rule ids in the comments are those of IDP-QUIRKS.md.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// N1: `Add`/`Replace`/`Remove` → `add`/`replace`/`remove`.
    LowercasePatchOps,
    /// N2: `"True"`/`"False"` (any case) → JSON booleans wherever the schema says boolean:
    /// bodies, PATCH values, path-less value objects, and comparisons inside PATCH paths.
    CoerceBooleanStrings,
    /// N3: `remove` of a multi-valued attribute with a `value` array → one `remove` per value
    /// with a `[value eq "…"]` filter. Forwarded as is, a strict application removes them all.
    SplitMultiValueRemove,
    /// N4: path-less `add`/`replace` whose value has dotted or URN-qualified keys → one
    /// operation per such key, with that key as `path`.
    ExpandDottedKeys,
    /// N5: `"$ref": null` dropped wherever it appears.
    DropNullRefs,
    /// N6: `manager` as a bare string or a one-element array → `{"value": …}`; the legacy
    /// PATCH path `manager` → the enterprise extension's.
    NormalizeManager,
    /// N8 (state): `add`/`replace` of `emails[type eq "work"].value` when the resource has no
    /// such element → `add` of `emails` with a new element built from the filter (primary when
    /// no other value is).
    CreateMissingFilteredElement,
    /// N20 (state): for an application without PATCH (`target.patch = false`), a PATCH → a
    /// PUT of the current resource with the PATCH applied, guarded by `If-Match`; for one
    /// without PUT (`target.put = false`), a PUT → a PATCH of the differences from it.
    ShapeMethod,
    /// R13 (state): for an application without value-path filters in PATCH paths
    /// (`target.value_path_filters = false`), such an operation → a `replace` of the whole
    /// attribute, computed from the current resource.
    WholeAttributeReplace,
    /// N7: roles whose `value` is a JSON-encoded object (Entra's AppRoleAssignmentsComplex)
    /// → the object.
    ParseJsonRoles,
    /// N16: a create's placeholder `password` dropped, for an application without password
    /// sync (`target.password_sync = false`).
    StripPlaceholderPassword,
    /// N19: `replace members []` → `remove members`, for an application that refuses an
    /// empty replace (`target.empty_members_replace = false`). Same meaning: no members.
    EmptyMembersReplaceAsRemove,
    /// R12, N21: a filter the application cannot evaluate (an attribute outside
    /// `target.filter_attributes`, or `userName` on an application whose userName matching is
    /// case-sensitive) is evaluated by the proxy over one page of `target.max_results`.
    EvaluateFilterInProxy,
    /// R16: a PATCH with more operations than the application takes
    /// (`target.max_patch_operations`), or an operation with more values
    /// (`target.max_operation_values`), → several PATCHes, sent in order.
    SplitPatch,
    /// R5: a paged, unfiltered list without `sortBy` → sorted by `id`, so pages do not
    /// overlap or skip (when `target.sorting`).
    StableOrder,
    /// R4: a list whose `count` is above what the application returns in one page
    /// (`target.max_results`) → several pages, merged into one for the IdP.
    AggregatePages,
    /// N9: bare filter literals quoted (`externalId eq jyoung` → `externalId eq "jyoung"`), then
    /// typed by the schema: a whole `manager` compared by its `value`, numbers and booleans
    /// compared with string attributes quoted.
    QuoteFilterLiterals,
    /// N10: the query string decoded (`+` and `%20`), emptied parameters and the listed IdP
    /// flags dropped, the filter's attribute names canonical, then re-encoded with `%20`.
    CanonicalQuery {
        /// Parameters the application must not see (`aadOptscim062020` …), any case.
        #[serde(default)]
        drop_params: Vec<String>,
    },
    /// N11: SCIM 1.1 and made-up core/enterprise URNs → the RFC 7643 ones (the extension
    /// object moves with its URN); unknown vendor URNs dropped; a missing `schemas` added.
    RepairSchemaUrns,
    /// N12: an extension object present in the body is declared in `schemas`.
    DeclareExtensionSchemas,
    /// N13: a multi-valued attribute sent as one object → an array of it;
    /// `manager.managerId` → `manager.value`.
    WrapSingleValues,
    /// N14: read-only attributes the client sent (`meta`, a User's `groups`; an `id` equal to
    /// the resource's in a path-less PATCH value) dropped.
    StripReadOnly,
    /// N15: `null`-valued attributes dropped from POST and PUT bodies (for both, RFC 7643
    /// §2.5 makes null and absent the same state).
    DropNulls,
    /// N17: group members without `type` get `"type": "User"`, when the target requires it.
    AddMemberType,
    /// N22: the request's content type → the target's (`application/scim+json`).
    ScimContentType,
    /// N24: at most one `primary: true` per multi-valued attribute (the first one is kept).
    SinglePrimary,
    /// R1: a filtered search answered 404, `[]`, `null` or nothing → 200 and an empty
    /// ListResponse.
    ZeroHitsAsEmptyList,
    /// R2: `schemas` on every resource, ListResponse and error; an error's `status` a string.
    EnsureSchemas,
    /// R3: `totalResults`, `startIndex`, `itemsPerPage` integers, and present.
    IntegerPaging,
    /// R6: a create answered 200 with the resource → 201.
    CreatedStatus,
    /// R7: a create refused as a duplicate → 409 with `scimType: uniqueness`.
    UniquenessConflict,
    /// R9: a group PATCH answered 200 with the group → 204; members dropped from responses
    /// to requests with `excludedAttributes=members`.
    LeanGroupResponses,
    /// R10: no `null` attribute values in returned resources; `manager` as an object.
    NoNullsInResources,
    /// R14: `Retry-After` as an HTTP-date → integer seconds.
    IntegerRetryAfter,
    /// R17: `/ServiceProviderConfig` advertises what clients get through the proxy: PATCH and
    /// filters supported, bulk not.
    AdvertiseCapabilities,
    /// R8: the response's content type → the one this IdP wants.
    ResponseContentType {
        /// The media type (`application/scim+json`, or `application/json` for OneLogin).
        content_type: String,
    },
}

impl Action {
    /// Its name in rule files.
    pub fn name(&self) -> &'static str {
        match self {
            Action::LowercasePatchOps => "lowercase_patch_ops",
            Action::CoerceBooleanStrings => "coerce_boolean_strings",
            Action::SplitMultiValueRemove => "split_multi_value_remove",
            Action::ExpandDottedKeys => "expand_dotted_keys",
            Action::DropNullRefs => "drop_null_refs",
            Action::NormalizeManager => "normalize_manager",
            Action::CreateMissingFilteredElement => "create_missing_filtered_element",
            Action::ShapeMethod => "shape_method",
            Action::WholeAttributeReplace => "whole_attribute_replace",
            Action::ParseJsonRoles => "parse_json_roles",
            Action::StripPlaceholderPassword => "strip_placeholder_password",
            Action::EmptyMembersReplaceAsRemove => "empty_members_replace_as_remove",
            Action::EvaluateFilterInProxy => "evaluate_filter_in_proxy",
            Action::CreatedStatus => "created_status",
            Action::UniquenessConflict => "uniqueness_conflict",
            Action::LeanGroupResponses => "lean_group_responses",
            Action::NoNullsInResources => "no_nulls_in_resources",
            Action::IntegerRetryAfter => "integer_retry_after",
            Action::AdvertiseCapabilities => "advertise_capabilities",
            Action::SplitPatch => "split_patch",
            Action::StableOrder => "stable_order",
            Action::AggregatePages => "aggregate_pages",
            Action::QuoteFilterLiterals => "quote_filter_literals",
            Action::CanonicalQuery { .. } => "canonical_query",
            Action::RepairSchemaUrns => "repair_schema_urns",
            Action::DeclareExtensionSchemas => "declare_extension_schemas",
            Action::WrapSingleValues => "wrap_single_values",
            Action::StripReadOnly => "strip_read_only",
            Action::DropNulls => "drop_nulls",
            Action::AddMemberType => "add_member_type",
            Action::ScimContentType => "scim_content_type",
            Action::SinglePrimary => "single_primary",
            Action::ZeroHitsAsEmptyList => "zero_hits_as_empty_list",
            Action::EnsureSchemas => "ensure_schemas",
            Action::IntegerPaging => "integer_paging",
            Action::ResponseContentType { .. } => "response_content_type",
        }
    }

    /// The keys a rule with this action may have besides `id` and `why`.
    pub(crate) fn parameters(&self) -> &'static [&'static str] {
        match self {
            Action::CanonicalQuery { .. } => &["action", "drop_params"],
            Action::ResponseContentType { .. } => &["action", "content_type"],
            _ => &["action"],
        }
    }

    /// Whether it needs the resource's current state.
    pub fn needs_state(&self) -> bool {
        matches!(
            self,
            Action::CreateMissingFilteredElement | Action::ShapeMethod | Action::WholeAttributeReplace
        )
    }

    /// Whether it edits responses (else requests).
    pub fn on_response(&self) -> bool {
        matches!(
            self,
            Action::ZeroHitsAsEmptyList
                | Action::EnsureSchemas
                | Action::IntegerPaging
                | Action::ResponseContentType { .. }
                | Action::CreatedStatus
                | Action::UniquenessConflict
                | Action::LeanGroupResponses
                | Action::NoNullsInResources
                | Action::IntegerRetryAfter
                | Action::AdvertiseCapabilities
        )
    }
}
