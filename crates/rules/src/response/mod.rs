//! Response rules (R…): what the IdP receives. Each module is named for what it repairs:
//!
//! - `lists`: zero hits as an empty list (R1), integer paging (R3), pages merged (R4), a
//!   filter evaluated by the proxy (R12).
//! - `resources`: `schemas` everywhere (R2), lean group responses (R9), no nulls (R10).
//! - `status`: 201 on a create (R6), 409 on a duplicate (R7), the content type (R8), an
//!   integer `Retry-After` (R14).
//! - `capabilities`: `/ServiceProviderConfig` as clients get it through the proxy (R17).

mod capabilities;
mod lists;
mod resources;
mod status;

pub use lists::merge_pages;

use crate::action::{Action, RequestAction, ResponseAction};
use crate::changes::{Changes, Side};
use crate::{Normalized, Profile, Request, Response, Target};

/// Applies the profile's response rules in order. `request` is the request as forwarded;
/// `target` the application that answered.
pub fn normalize_response(
    request: &Request,
    response: &Response,
    profile: &Profile,
    target: &Target,
) -> Normalized<Response> {
    let mut working = response.clone();
    let mut changes = Changes::new(Side::Response);
    // R12: the filter the application could not evaluate, evaluated here.
    if let Some(post) = &request.post_filter {
        let rule = profile
            .rules
            .iter()
            .find(|rule| rule.action == Action::Request(RequestAction::EvaluateFilterInProxy))
            .map_or("R12", |rule| rule.id.as_str());
        changes.by(rule);
        lists::evaluate_filter(request, post, &mut working, &mut changes);
    }
    for rule in &profile.rules {
        let Action::Response(action) = &rule.action else {
            continue;
        };
        changes.by(&rule.id);
        let changes = &mut changes;
        match action {
            ResponseAction::ZeroHitsAsEmptyList => lists::zero_hits_as_empty_list(request, &mut working, changes),
            ResponseAction::EnsureSchemas => resources::ensure_schemas(request, &mut working, changes),
            ResponseAction::IntegerPaging => lists::integer_paging(&mut working, changes),
            ResponseAction::ResponseContentType { content_type } => {
                status::content_type(content_type, &mut working, changes)
            }
            ResponseAction::CreatedStatus => status::created_status(request, &mut working, changes),
            ResponseAction::UniquenessConflict => status::uniqueness_conflict(request, &mut working, changes),
            ResponseAction::LeanGroupResponses => resources::lean_group_responses(request, &mut working, changes),
            ResponseAction::NoNullsInResources => resources::no_nulls_in_resources(&mut working, changes),
            ResponseAction::IntegerRetryAfter => status::integer_retry_after(&mut working, changes),
            ResponseAction::AdvertiseCapabilities => {
                capabilities::advertise_capabilities(request, &mut working, target, changes)
            }
        }
    }
    Normalized {
        value: working,
        changes: changes.into_list(),
    }
}
