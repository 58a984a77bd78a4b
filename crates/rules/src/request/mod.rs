//! Request rules: what the application receives. Each module is named for what it repairs:
//!
//! - `patch_ops`: PATCH operations rewritten — `op` in lower case (N1), a multi-valued remove
//!   split by value (N3), dotted keys expanded (N4), an empty member replace as a remove
//!   (N19), a PATCH split to the application's limits (R16).
//! - `attributes`: values reshaped where they are written — string booleans (N2), null
//!   `$ref`s (N5), `manager` (N6), JSON-encoded roles (N7), single values wrapped (N13),
//!   member `type` (N17), one `primary` (N24).
//! - `dropped`: what the application must not receive — read-only attributes (N14), nulls
//!   (N15), a placeholder password (N16).
//! - `schemas`: the `schemas` list — URNs repaired (N11), extensions declared (N12).
//! - `filter` and `query`: the filter's text (N9, and the check every profile makes) and the
//!   query string that carries it (N10).
//! - `lists`: a list request shaped for the application — a filter it cannot evaluate
//!   (R12, N21), a stable order (R5), pages (R4).
//! - `stateful`: the rules that read the resource's current state (N8, R13, N20).
//! - `written`: the one walk over what a request writes, and the operations list, that the
//!   rules above share.

mod attributes;
mod dropped;
pub(crate) mod filter;
mod lists;
mod patch_ops;
pub(crate) mod query;
mod schemas;
mod stateful;
mod written;

#[cfg(test)]
mod tests;

use crate::action::{Action, RequestAction};
use crate::changes::{Changes, Side};
use crate::resource::{resource_id_of, resource_type_of};
use crate::{Normalized, Profile, Refusal, Request, Target};
use scimtrail_scim::schema::ResourceType;
use serde_json::{json, Value};

/// Applies the profile's request rules in order, then checks the filter (every profile
/// does: an invalid filter never reaches the application). `state` is the resource as the
/// application has it, for the rules that need it ([`needs_state`]).
pub fn normalize_request(
    request: &Request,
    profile: &Profile,
    target: &Target,
    state: Option<&Value>,
) -> Result<Normalized<Request>, Refusal> {
    let mut working = Working::new(request, state);
    for rule in &profile.rules {
        if let Action::Request(action) = &rule.action {
            working.changes.by(&rule.id);
            working.apply(action, target)?;
        }
    }
    filter::check(&working.request)?;
    Ok(Normalized {
        value: working.request,
        changes: working.changes.into_list(),
    })
}

/// Whether normalising `request` needs the resource's current state: a PATCH of one resource
/// that a stateful rule (N8, N20, R13) of the profile would act on for this target.
pub fn needs_state(request: &Request, profile: &Profile, target: &Target) -> bool {
    let actions: Vec<&RequestAction> = profile
        .rules
        .iter()
        .filter_map(|rule| match &rule.action {
            Action::Request(action) => Some(action),
            Action::Response(_) => None,
        })
        .collect();
    stateful::needs_state(&Working::new(request, None), target, &actions)
}

/// The request as the rules so far have left it, and what they changed.
struct Working {
    request: Request,
    changes: Changes,
    resource_type: Option<&'static ResourceType>,
    resource_id: Option<String>,
    /// The resource as the application has it, as the operations so far leave it.
    state: Option<Value>,
}

impl Working {
    fn new(request: &Request, state: Option<&Value>) -> Working {
        Working {
            request: request.clone(),
            changes: Changes::new(Side::Request),
            resource_type: resource_type_of(&request.path),
            resource_id: resource_id_of(&request.path),
            state: state.cloned(),
        }
    }

    fn apply(&mut self, action: &RequestAction, target: &Target) -> Result<(), Refusal> {
        match action {
            RequestAction::LowercasePatchOps => self.lowercase_patch_ops(),
            RequestAction::CoerceBooleanStrings => {
                if target.strict_booleans {
                    self.coerce_boolean_strings();
                }
            }
            RequestAction::SplitMultiValueRemove => return self.split_multi_value_remove(),
            RequestAction::ExpandDottedKeys => self.expand_dotted_keys(),
            RequestAction::DropNullRefs => self.drop_null_refs(),
            RequestAction::NormalizeManager => self.normalize_manager(),
            RequestAction::QuoteFilterLiterals => self.quote_filter_literals(),
            RequestAction::CanonicalQuery { drop_params } => self.canonical_query(drop_params),
            RequestAction::RepairSchemaUrns => self.repair_schema_urns(),
            RequestAction::DeclareExtensionSchemas => self.declare_extension_schemas(),
            RequestAction::WrapSingleValues => self.wrap_single_values(),
            RequestAction::StripReadOnly => self.strip_read_only(),
            RequestAction::DropNulls => self.drop_nulls(),
            RequestAction::AddMemberType => {
                if target.member_type_required {
                    self.add_member_type();
                }
            }
            RequestAction::ScimContentType => self.scim_content_type(target),
            RequestAction::SinglePrimary => self.single_primary(),
            RequestAction::CreateMissingFilteredElement => self.create_missing_filtered_element(),
            RequestAction::ParseJsonRoles => self.parse_json_roles(),
            RequestAction::StripPlaceholderPassword => {
                if !target.password_sync {
                    self.strip_placeholder_password();
                }
            }
            RequestAction::EmptyMembersReplaceAsRemove => {
                if !target.empty_members_replace {
                    self.empty_members_replace_as_remove();
                }
            }
            RequestAction::EvaluateFilterInProxy => self.evaluate_filter_in_proxy(target),
            RequestAction::SplitPatch => self.split_patch(target),
            RequestAction::StableOrder => self.stable_order(target),
            RequestAction::AggregatePages => self.aggregate_pages(target),
            RequestAction::WholeAttributeReplace => self.whole_attribute_replace(target),
            RequestAction::ShapeMethod => return self.shape_method(target),
        }
        Ok(())
    }

    fn is_patch(&self) -> bool {
        self.request.method.eq_ignore_ascii_case("PATCH")
    }

    /// POST or PUT of a resource (not a search, not bulk).
    fn is_resource_write(&self) -> bool {
        let method = &self.request.method;
        (method.eq_ignore_ascii_case("POST") || method.eq_ignore_ascii_case("PUT"))
            && self.resource_type.is_some()
            && !self.request.path.ends_with("/.search")
    }

    // === N22 ===

    fn scim_content_type(&mut self, target: &Target) {
        if self.request.body.is_none() {
            return;
        }
        let current = self.request.content_type.clone();
        if current.as_deref() != Some(target.content_type.as_str()) {
            self.request.content_type = Some(target.content_type.clone());
            self.changes.record(
                "header:content-type",
                current.map(Value::String),
                Some(json!(target.content_type)),
            );
        }
    }
}
