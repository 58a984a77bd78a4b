//! Every normalisation there is: two closed sets, one a side. A rule file picks actions from
//! them by name (`action = "lowercase_patch_ops"`); adding a behaviour means adding a variant
//! to one set, its name to that set's `NAMES`, and its tests.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// One rule's action: on the request or on the response. In a rule file both sets share one
/// namespace, the `action` key, and a name says which set it is from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Action {
    /// Edits what is forwarded to the application.
    Request(RequestAction),
    /// Edits what the IdP receives.
    Response(ResponseAction),
}

/// A request action (N…, and the R… rules that act on the request): it edits what is
/// forwarded. The rule ids in the comments are those of IDP-QUIRKS.md.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestAction {
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
}

/// A response action (R…): it edits what the IdP receives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseAction {
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
            Action::Request(action) => action.name(),
            Action::Response(action) => action.name(),
        }
    }

    /// The keys a rule with this action may have besides `id` and `why`.
    pub(crate) fn parameters(&self) -> &'static [&'static str] {
        match self {
            Action::Request(RequestAction::CanonicalQuery { .. }) => &["action", "drop_params"],
            Action::Response(ResponseAction::ResponseContentType { .. }) => &["action", "content_type"],
            _ => &["action"],
        }
    }
}

impl<'de> Deserialize<'de> for Action {
    /// Reads `{"action": name, parameters…}`: the set the name is from reads the rest, so
    /// that its errors (a parameter missing or of the wrong type) are the ones given.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Action, D::Error> {
        let table = Map::<String, Value>::deserialize(deserializer)?;
        let name = match table.get("action") {
            Some(Value::String(name)) => name.clone(),
            Some(_) => return Err(D::Error::custom("\"action\" must be a string")),
            None => return Err(D::Error::missing_field("action")),
        };
        let table = Value::Object(table);
        if ResponseAction::NAMES.contains(&name.as_str()) {
            return ResponseAction::deserialize(table)
                .map(Action::Response)
                .map_err(D::Error::custom);
        }
        if RequestAction::NAMES.contains(&name.as_str()) {
            return RequestAction::deserialize(table)
                .map(Action::Request)
                .map_err(D::Error::custom);
        }
        let known: Vec<String> = RequestAction::NAMES
            .iter()
            .chain(ResponseAction::NAMES)
            .map(|name| format!("`{name}`"))
            .collect();
        Err(D::Error::custom(format!(
            "unknown variant `{name}`, expected one of {}",
            known.join(", ")
        )))
    }
}

impl RequestAction {
    /// The names of every request action in rule files.
    pub const NAMES: &'static [&'static str] = &[
        "lowercase_patch_ops",
        "coerce_boolean_strings",
        "split_multi_value_remove",
        "expand_dotted_keys",
        "drop_null_refs",
        "normalize_manager",
        "create_missing_filtered_element",
        "shape_method",
        "whole_attribute_replace",
        "parse_json_roles",
        "strip_placeholder_password",
        "empty_members_replace_as_remove",
        "evaluate_filter_in_proxy",
        "split_patch",
        "stable_order",
        "aggregate_pages",
        "quote_filter_literals",
        "canonical_query",
        "repair_schema_urns",
        "declare_extension_schemas",
        "wrap_single_values",
        "strip_read_only",
        "drop_nulls",
        "add_member_type",
        "scim_content_type",
        "single_primary",
    ];

    /// Its name in rule files.
    pub fn name(&self) -> &'static str {
        match self {
            RequestAction::LowercasePatchOps => "lowercase_patch_ops",
            RequestAction::CoerceBooleanStrings => "coerce_boolean_strings",
            RequestAction::SplitMultiValueRemove => "split_multi_value_remove",
            RequestAction::ExpandDottedKeys => "expand_dotted_keys",
            RequestAction::DropNullRefs => "drop_null_refs",
            RequestAction::NormalizeManager => "normalize_manager",
            RequestAction::CreateMissingFilteredElement => "create_missing_filtered_element",
            RequestAction::ShapeMethod => "shape_method",
            RequestAction::WholeAttributeReplace => "whole_attribute_replace",
            RequestAction::ParseJsonRoles => "parse_json_roles",
            RequestAction::StripPlaceholderPassword => "strip_placeholder_password",
            RequestAction::EmptyMembersReplaceAsRemove => "empty_members_replace_as_remove",
            RequestAction::EvaluateFilterInProxy => "evaluate_filter_in_proxy",
            RequestAction::SplitPatch => "split_patch",
            RequestAction::StableOrder => "stable_order",
            RequestAction::AggregatePages => "aggregate_pages",
            RequestAction::QuoteFilterLiterals => "quote_filter_literals",
            RequestAction::CanonicalQuery { .. } => "canonical_query",
            RequestAction::RepairSchemaUrns => "repair_schema_urns",
            RequestAction::DeclareExtensionSchemas => "declare_extension_schemas",
            RequestAction::WrapSingleValues => "wrap_single_values",
            RequestAction::StripReadOnly => "strip_read_only",
            RequestAction::DropNulls => "drop_nulls",
            RequestAction::AddMemberType => "add_member_type",
            RequestAction::ScimContentType => "scim_content_type",
            RequestAction::SinglePrimary => "single_primary",
        }
    }

    /// Whether it needs the resource's current state.
    pub fn needs_state(&self) -> bool {
        matches!(
            self,
            RequestAction::CreateMissingFilteredElement
                | RequestAction::ShapeMethod
                | RequestAction::WholeAttributeReplace
        )
    }
}

impl ResponseAction {
    /// The names of every response action in rule files.
    pub const NAMES: &'static [&'static str] = &[
        "zero_hits_as_empty_list",
        "ensure_schemas",
        "integer_paging",
        "created_status",
        "uniqueness_conflict",
        "lean_group_responses",
        "no_nulls_in_resources",
        "integer_retry_after",
        "advertise_capabilities",
        "response_content_type",
    ];

    /// Its name in rule files.
    pub fn name(&self) -> &'static str {
        match self {
            ResponseAction::ZeroHitsAsEmptyList => "zero_hits_as_empty_list",
            ResponseAction::EnsureSchemas => "ensure_schemas",
            ResponseAction::IntegerPaging => "integer_paging",
            ResponseAction::CreatedStatus => "created_status",
            ResponseAction::UniquenessConflict => "uniqueness_conflict",
            ResponseAction::LeanGroupResponses => "lean_group_responses",
            ResponseAction::NoNullsInResources => "no_nulls_in_resources",
            ResponseAction::IntegerRetryAfter => "integer_retry_after",
            ResponseAction::AdvertiseCapabilities => "advertise_capabilities",
            ResponseAction::ResponseContentType { .. } => "response_content_type",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name in `NAMES` reads back as an action of that name, in its own set, and no
    /// name is in both.
    #[test]
    fn every_name_reads_back_as_its_action_in_its_own_set() {
        for (names, response) in [(RequestAction::NAMES, false), (ResponseAction::NAMES, true)] {
            for name in names {
                let mut table = serde_json::json!({"action": name});
                match *name {
                    "canonical_query" => table["drop_params"] = serde_json::json!([]),
                    "response_content_type" => table["content_type"] = serde_json::json!("x"),
                    _ => {}
                }
                let action: Action = serde_json::from_value(table).unwrap();
                assert_eq!(action.name(), *name);
                assert_eq!(matches!(action, Action::Response(_)), response, "{name}");
                let written = serde_json::to_value(&action).unwrap();
                assert_eq!(written["action"], *name);
            }
        }
        assert!(RequestAction::NAMES
            .iter()
            .all(|name| !ResponseAction::NAMES.contains(name)));
        let error = serde_json::from_value::<Action>(serde_json::json!({"action": "shout"})).unwrap_err();
        assert!(error
            .to_string()
            .starts_with("unknown variant `shout`, expected one of `lowercase_patch_ops`"));
    }
}
