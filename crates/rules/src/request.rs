//! Request rules (N…): what the application receives.

use crate::action::Action;
use crate::query;
use crate::{pointer_token, Change, Normalized, Profile, Refusal, Request, Side, Target};
use scimtrail_scim::schema::{AttrType, AttributeDef, ResourceType, Schema, ENTERPRISE_USER_SCHEMA};
use scimtrail_scim::{json, Filter, PatchPath, ScimError, ScimType};
use serde_json::{json, Map, Value};

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
    for rule in profile.rules.iter().filter(|rule| !rule.action.on_response()) {
        working.rule.clone_from(&rule.id);
        working.apply(&rule.action, target)?;
    }
    check_filter(&working.request)?;
    Ok(Normalized {
        value: working.request,
        changes: working.changes,
    })
}

/// `true`/`false` for `"true"`/`"false"` in any case (surrounding spaces ignored).
pub(crate) fn boolean_string(text: &str) -> Option<bool> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `Users` or `Groups` from `/Users/42` (or `/scim/v2/Users/42`).
pub(crate) fn resource_type_of(path: &str) -> Option<&'static ResourceType> {
    path.split('/')
        .find_map(|segment| ResourceType::by_endpoint(&format!("/{segment}")))
}

fn resource_id_of(path: &str) -> Option<String> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    segments.find(|segment| ResourceType::by_endpoint(&format!("/{segment}")).is_some())?;
    segments.next().map(str::to_owned)
}

/// The filter of a GET query or a `.search` body, if any.
fn check_filter(request: &Request) -> Result<(), Refusal> {
    let from_query = request.query.as_deref().and_then(|q| {
        query::decode(q)
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("filter"))
            .map(|(_, value)| value)
    });
    let from_body = request
        .path
        .ends_with("/.search")
        .then_some(request.body.as_ref())
        .flatten()
        .and_then(|body| body.as_object())
        .and_then(|body| json::get(body, "filter"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    for filter in from_query.into_iter().chain(from_body) {
        if let Err(error) = Filter::parse(&filter) {
            return Err(Refusal {
                rule: "filter".to_owned(),
                error: ScimError::bad_request(
                    ScimType::InvalidFilter,
                    format!("the filter {filter:?} cannot be evaluated: {error}"),
                ),
            });
        }
    }
    Ok(())
}

/// Whether normalising `request` needs the resource's current state: a PATCH of one resource
/// that a stateful rule (N8, N20, R13) of the profile would act on for this target.
pub fn needs_state(request: &Request, profile: &Profile, target: &Target) -> bool {
    let actions: Vec<&Action> = profile.rules.iter().map(|rule| &rule.action).collect();
    state::needs_state(&Working::new(request, None), target, &actions)
}

struct Working {
    request: Request,
    changes: Vec<Change>,
    rule: String,
    resource_type: Option<&'static ResourceType>,
    resource_id: Option<String>,
    /// The resource as the application has it, as the operations so far leave it.
    state: Option<Value>,
}

impl Working {
    fn new(request: &Request, state: Option<&Value>) -> Working {
        Working {
            request: request.clone(),
            changes: Vec::new(),
            rule: String::new(),
            resource_type: resource_type_of(&request.path),
            resource_id: resource_id_of(&request.path),
            state: state.cloned(),
        }
    }

    fn record(&mut self, edits: Edits) {
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    fn change(&mut self, pointer: String, before: Option<Value>, after: Option<Value>) {
        self.changes.push(Change {
            rule: self.rule.clone(),
            side: Side::Request,
            pointer,
            before,
            after,
        });
    }

    fn apply(&mut self, action: &Action, target: &Target) -> Result<(), Refusal> {
        match action {
            Action::LowercasePatchOps => self.lowercase_patch_ops(),
            Action::CoerceBooleanStrings => {
                if target.strict_booleans {
                    self.coerce_boolean_strings();
                }
            }
            Action::SplitMultiValueRemove => return self.split_multi_value_remove(),
            Action::ExpandDottedKeys => self.expand_dotted_keys(),
            Action::DropNullRefs => self.drop_null_refs(),
            Action::NormalizeManager => self.normalize_manager(),
            Action::QuoteFilterLiterals => self.edit_filter(|filter, rt| {
                let quoted = query::quote_bare_literals(filter);
                Some(query::typed_literals(&quoted, rt).unwrap_or(quoted))
            }),
            Action::CanonicalQuery { drop_params } => self.canonical_query(drop_params),
            Action::RepairSchemaUrns => self.repair_schema_urns(),
            Action::DeclareExtensionSchemas => self.declare_extension_schemas(),
            Action::WrapSingleValues => self.wrap_single_values(),
            Action::StripReadOnly => self.strip_read_only(),
            Action::DropNulls => self.drop_nulls(),
            Action::AddMemberType => {
                if target.member_type_required {
                    self.add_member_type();
                }
            }
            Action::ScimContentType => self.scim_content_type(target),
            Action::SinglePrimary => self.single_primary(),
            Action::CreateMissingFilteredElement => self.create_missing_filtered_element(),
            Action::ParseJsonRoles => self.parse_json_roles(),
            Action::StripPlaceholderPassword => {
                if !target.password_sync {
                    self.strip_placeholder_password();
                }
            }
            Action::EmptyMembersReplaceAsRemove => {
                if !target.empty_members_replace {
                    self.empty_members_replace_as_remove();
                }
            }
            Action::EvaluateFilterInProxy => self.evaluate_filter_in_proxy(target),
            Action::SplitPatch => self.split_patch(target),
            Action::StableOrder => self.stable_order(target),
            Action::AggregatePages => self.aggregate_pages(target),
            Action::WholeAttributeReplace => self.whole_attribute_replace(target),
            Action::ShapeMethod => return self.shape_method(target),
            // Response actions run in `normalize_response`.
            Action::ZeroHitsAsEmptyList
            | Action::EnsureSchemas
            | Action::IntegerPaging
            | Action::ResponseContentType { .. }
            | Action::CreatedStatus
            | Action::UniquenessConflict
            | Action::LeanGroupResponses
            | Action::NoNullsInResources
            | Action::IntegerRetryAfter
            | Action::AdvertiseCapabilities => {}
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

    /// The PATCH operations, with their index.
    fn operations(&mut self) -> Option<&mut Vec<Value>> {
        if !self.is_patch() {
            return None;
        }
        let body = self.request.body.as_mut()?.as_object_mut()?;
        json::get_mut(body, "Operations")?.as_array_mut()
    }

    fn operations_key(&self) -> String {
        self.request
            .body
            .as_ref()
            .and_then(Value::as_object)
            .and_then(|body| json::find_key(body, "Operations"))
            .cloned()
            .unwrap_or_else(|| "Operations".to_owned())
    }

    // === N1 ===

    fn lowercase_patch_ops(&mut self) {
        let key = self.operations_key();
        let mut edits = Vec::new();
        if let Some(operations) = self.operations() {
            for (index, operation) in operations.iter_mut().enumerate() {
                let Some(op) = operation.as_object_mut().and_then(|o| json::get_mut(o, "op")) else {
                    continue;
                };
                let Some(text) = op.as_str() else { continue };
                let lower = text.to_ascii_lowercase();
                if lower != text && matches!(lower.as_str(), "add" | "remove" | "replace") {
                    edits.push((format!("/{key}/{index}/op"), Some(op.clone()), Some(json!(lower))));
                    *op = json!(lower);
                }
            }
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    // === N2 ===

    fn coerce_boolean_strings(&mut self) {
        let Some(rt) = self.resource_type else { return };
        let mut edits = Vec::new();
        if self.is_resource_write() {
            if let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) {
                walk_resource(body, rt, "", &mut |def, value, pointer| {
                    coerce_boolean(def, value, pointer, &mut edits)
                });
            }
        }
        let key = self.operations_key();
        if let Some(operations) = self.operations() {
            for (index, operation) in operations.iter_mut().enumerate() {
                let Some(operation) = operation.as_object_mut() else {
                    continue;
                };
                let base = format!("/{key}/{index}");
                let path_text = json::get(operation, "path").and_then(Value::as_str).map(str::to_owned);
                let value_key = json::find_key(operation, "value").cloned();
                match path_text {
                    None => {
                        if let Some(Value::Object(value)) = value_key.as_ref().and_then(|k| operation.get_mut(k)) {
                            walk_resource(value, rt, &format!("{base}/value"), &mut |def, value, pointer| {
                                coerce_boolean(def, value, pointer, &mut edits)
                            });
                        }
                    }
                    Some(text) => {
                        let Ok(mut path) = PatchPath::parse(&text) else {
                            continue;
                        };
                        if let Some(filter) = path.filter.as_mut() {
                            let parent = path.attr.clone();
                            let parent = scimtrail_scim::AttrPath { sub: None, ..parent };
                            if query::coerce_boolean_literals(filter, rt, Some(&parent)) {
                                let printed = path.to_string();
                                if let Some(key) = json::find_key(operation, "path").cloned() {
                                    edits.push((format!("{base}/{key}"), Some(json!(text)), Some(json!(printed))));
                                    operation.insert(key, json!(printed));
                                }
                            }
                        }
                        let Some(resolved) = rt.resolve(&path.attr) else {
                            continue;
                        };
                        let Some(value) = value_key.as_ref().and_then(|k| operation.get_mut(k)) else {
                            continue;
                        };
                        let pointer = format!("{base}/value");
                        match resolved.sub {
                            Some(sub) => walk_values(value, sub, &pointer, &mut |def, value, pointer| {
                                coerce_boolean(def, value, pointer, &mut edits)
                            }),
                            None if path.filter.is_some() && resolved.attr.multi_valued => {
                                // `emails[type eq "work"]` with a value: one element's sub-attributes.
                                walk_sub_attributes(value, resolved.attr, &pointer, &mut |def, value, pointer| {
                                    coerce_boolean(def, value, pointer, &mut edits)
                                })
                            }
                            None => walk_values(value, resolved.attr, &pointer, &mut |def, value, pointer| {
                                coerce_boolean(def, value, pointer, &mut edits)
                            }),
                        }
                    }
                }
            }
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    // === N3 ===

    fn split_multi_value_remove(&mut self) -> Result<(), Refusal> {
        let Some(rt) = self.resource_type else { return Ok(()) };
        let key = self.operations_key();
        let rule = self.rule.clone();
        let mut edits = Vec::new();
        if let Some(operations) = self.operations() {
            let mut index = 0;
            while index < operations.len() {
                let Some(operation) = operations[index].as_object() else {
                    index += 1;
                    continue;
                };
                let is_remove = json::get(operation, "op")
                    .and_then(Value::as_str)
                    .is_some_and(|op| op.eq_ignore_ascii_case("remove"));
                let path_text = json::get(operation, "path").and_then(Value::as_str);
                let value = json::get(operation, "value");
                let (true, Some(path_text), Some(value)) = (is_remove, path_text, value) else {
                    index += 1;
                    continue;
                };
                let Ok(path) = PatchPath::parse(path_text) else {
                    index += 1;
                    continue;
                };
                let multi_valued = rt
                    .resolve(&path.attr)
                    .is_some_and(|resolved| resolved.sub.is_none() && resolved.attr.multi_valued);
                if path.filter.is_some() || !multi_valued {
                    index += 1;
                    continue;
                }
                let elements: Vec<&Value> = match value {
                    Value::Array(elements) => elements.iter().collect(),
                    single => vec![single],
                };
                let mut replacement = Vec::with_capacity(elements.len());
                for element in elements {
                    let id = element
                        .as_object()
                        .and_then(|element| json::get(element, "value"))
                        .and_then(Value::as_str);
                    let Some(id) = id else {
                        // Forwarded as is, a strict application would remove every value.
                        return Err(Refusal {
                            rule,
                            error: ScimError::bad_request(
                                ScimType::InvalidValue,
                                format!(
                                    "{key}[{index}] removes from \"{path_text}\" the values {value}, but not every one has a string \"value\"; \
                                     a remove of \"{path_text}\" without a filter would remove all of them, so it was not forwarded"
                                ),
                            ),
                        });
                    };
                    let filter = Filter::compare(
                        scimtrail_scim::AttrPath::named("value"),
                        scimtrail_scim::filter::CompareOp::Eq,
                        scimtrail_scim::filter::CompValue::String(id.to_owned()),
                    );
                    let path = PatchPath {
                        attr: path.attr.clone(),
                        filter: Some(filter),
                    };
                    replacement.push(json!({"op": "remove", "path": path.to_string()}));
                }
                let before = operations[index].clone();
                let count = replacement.len();
                edits.push((
                    format!("/{key}/{index}"),
                    Some(before),
                    Some(Value::Array(replacement.clone())),
                ));
                operations.splice(index..=index, replacement);
                index += count;
            }
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
        Ok(())
    }

    // === N4 ===

    fn expand_dotted_keys(&mut self) {
        let Some(rt) = self.resource_type else { return };
        let key = self.operations_key();
        let mut edits = Vec::new();
        if let Some(operations) = self.operations() {
            let mut index = 0;
            while index < operations.len() {
                let Some(operation) = operations[index].as_object() else {
                    index += 1;
                    continue;
                };
                let op = json::get(operation, "op")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let has_path = json::get(operation, "path").is_some();
                let Some(Value::Object(value)) = json::get(operation, "value") else {
                    index += 1;
                    continue;
                };
                let is_write = op.eq_ignore_ascii_case("add") || op.eq_ignore_ascii_case("replace");
                let is_path_key = |k: &str| {
                    (k.contains('.') || k.starts_with("urn:")) && rt.extension(k).is_none() && !k.contains('[')
                };
                if has_path || !is_write || !value.keys().any(|k| is_path_key(k)) {
                    index += 1;
                    continue;
                }
                let mut residual = Map::new();
                let mut expanded = Vec::new();
                for (k, v) in value {
                    if is_path_key(k) {
                        expanded.push(json!({"op": op, "path": k, "value": v}));
                    } else {
                        residual.insert(k.clone(), v.clone());
                    }
                }
                let mut replacement = Vec::new();
                if !residual.is_empty() {
                    let mut kept = operation.clone();
                    if let Some(value_key) = json::find_key(&kept, "value").cloned() {
                        kept.insert(value_key, Value::Object(residual));
                    }
                    replacement.push(Value::Object(kept));
                }
                replacement.extend(expanded);
                let before = operations[index].clone();
                let count = replacement.len();
                edits.push((
                    format!("/{key}/{index}"),
                    Some(before),
                    Some(Value::Array(replacement.clone())),
                ));
                operations.splice(index..=index, replacement);
                index += count;
            }
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    // === N5 ===

    fn drop_null_refs(&mut self) {
        let mut edits = Vec::new();
        if let Some(body) = self.request.body.as_mut() {
            drop_null_refs(body, "", &mut edits);
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    // === N6 ===

    fn normalize_manager(&mut self) {
        let Some(rt) = self.resource_type.filter(|rt| rt.name == "User") else {
            return;
        };
        let mut edits = Vec::new();
        if self.is_resource_write() {
            if let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) {
                if let Some(extension) = json::get_mut(body, ENTERPRISE_USER_SCHEMA).and_then(Value::as_object_mut) {
                    if let Some(manager) = json::get_mut(extension, "manager") {
                        let pointer = format!("/{}/manager", pointer_token(ENTERPRISE_USER_SCHEMA));
                        manager_object(manager, &pointer, &mut edits);
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
                let Some(path_key) = json::find_key(operation, "path").cloned() else {
                    continue;
                };
                let Some(path_text) = operation.get(&path_key).and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let Ok(mut path) = PatchPath::parse(&path_text) else {
                    continue;
                };
                if path.filter.is_some() || !path.attr.is("manager") {
                    continue;
                }
                if path.attr.urn.is_none() && rt.resolve(&path.attr).is_none() {
                    path.attr.urn = Some(ENTERPRISE_USER_SCHEMA.to_owned());
                    let printed = path.to_string();
                    edits.push((
                        format!("/{key}/{index}/{path_key}"),
                        Some(json!(path_text)),
                        Some(json!(printed)),
                    ));
                    operation.insert(path_key, json!(printed));
                }
                if path.attr.sub.is_none() {
                    if let Some(value) = json::get_mut(operation, "value") {
                        manager_object(value, &format!("/{key}/{index}/value"), &mut edits);
                    }
                }
            }
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    // === N9, N10 ===

    /// Rewrites the `filter` query parameter in place, keeping the rest of the query as sent.
    fn edit_filter(&mut self, edit: impl Fn(&str, Option<&ResourceType>) -> Option<String>) {
        let Some(raw) = self.request.query.clone().filter(|raw| query::is_text(raw)) else {
            return;
        };
        let mut params = query::decode(&raw);
        let Some((name, filter)) = params.iter_mut().find(|(name, _)| name.eq_ignore_ascii_case("filter")) else {
            return;
        };
        let Some(edited) = edit(filter, self.resource_type) else {
            return;
        };
        if edited == *filter {
            return;
        }
        let pointer = format!("?{name}");
        let before = json!(filter);
        *filter = edited.clone();
        self.request.query = Some(query::encode(&params));
        self.change(pointer, Some(before), Some(json!(edited)));
    }

    fn canonical_query(&mut self, drop_params: &[String]) {
        self.edit_filter(query::canonical_filter);
        let Some(raw) = self.request.query.clone().filter(|raw| query::is_text(raw)) else {
            return;
        };
        let params: Vec<(String, String)> = query::decode(&raw)
            .into_iter()
            .filter(|(name, value)| {
                let flag = drop_params.iter().any(|d| d.eq_ignore_ascii_case(name));
                let empty = name.is_empty() && value.is_empty();
                !flag && !empty
            })
            .collect();
        let encoded = query::encode(&params);
        if encoded != raw {
            self.request.query = (!encoded.is_empty()).then_some(encoded.clone());
            self.change("?".to_owned(), Some(json!(raw)), Some(json!(encoded)));
        }
    }

    // === N11, N12 ===

    fn repair_schema_urns(&mut self) {
        let Some(rt) = self.resource_type else { return };
        if !self.is_resource_write() {
            return;
        }
        let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) else {
            return;
        };
        let mut edits = Vec::new();
        let schemas_key = json::find_key(body, "schemas")
            .cloned()
            .unwrap_or_else(|| "schemas".to_owned());
        let before = body.get(&schemas_key).cloned();
        let declared: Vec<String> = before
            .as_ref()
            .and_then(Value::as_array)
            .map(|urns| urns.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut repaired: Vec<String> = Vec::new();
        for urn in &declared {
            let canonical = if is_legacy_core(urn) {
                Some(rt.schema.id.to_owned())
            } else if is_legacy_enterprise(urn) && rt.extension(ENTERPRISE_USER_SCHEMA).is_some() {
                // The extension object moves to the RFC key with its URN.
                if let Some(object) = body.remove(urn) {
                    edits.push((format!("/{}", pointer_token(urn)), Some(object.clone()), None));
                    edits.push((
                        format!("/{}", pointer_token(ENTERPRISE_USER_SCHEMA)),
                        None,
                        Some(object.clone()),
                    ));
                    body.insert(ENTERPRISE_USER_SCHEMA.to_owned(), object);
                }
                Some(ENTERPRISE_USER_SCHEMA.to_owned())
            } else if urn.eq_ignore_ascii_case(rt.schema.id) {
                Some(rt.schema.id.to_owned())
            } else if let Some(extension) = rt.extension(urn) {
                Some(extension.schema.id.to_owned())
            } else if urn.starts_with("urn:") {
                // A custom extension: the application may know it.
                Some(urn.clone())
            } else {
                // A vendor marker such as http://schemas.microsoft.com/…/ADSCIM/2.0/Group.
                None
            };
            if let Some(canonical) = canonical {
                if !repaired.iter().any(|u| u.eq_ignore_ascii_case(&canonical)) {
                    repaired.push(canonical);
                }
            }
        }
        if !repaired.iter().any(|u| u == rt.schema.id) {
            repaired.insert(0, rt.schema.id.to_owned());
        }
        let after = json!(repaired);
        if Some(&after) != before.as_ref() {
            edits.push((format!("/{schemas_key}"), before, Some(after.clone())));
            body.insert(schemas_key, after);
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    fn declare_extension_schemas(&mut self) {
        if !self.is_resource_write() {
            return;
        }
        let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) else {
            return;
        };
        // A legacy core object (`urn:scim:schemas:core:1.0`) is no extension: declared, the
        // schema repair would take it for the core schema on the next pass.
        let extensions: Vec<String> = body
            .iter()
            .filter(|(k, v)| k.starts_with("urn:") && v.is_object() && !is_legacy_core(k))
            .map(|(k, _)| k.clone())
            .collect();
        let schemas_key = json::find_key(body, "schemas")
            .cloned()
            .unwrap_or_else(|| "schemas".to_owned());
        let before = body.get(&schemas_key).cloned();
        let mut urns: Vec<Value> = before.as_ref().and_then(Value::as_array).cloned().unwrap_or_default();
        for extension in extensions {
            if !urns
                .iter()
                .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(&extension)))
            {
                urns.push(json!(extension));
            }
        }
        let after = Value::Array(urns);
        if Some(&after) != before.as_ref() {
            body.insert(schemas_key.clone(), after.clone());
            self.change(format!("/{schemas_key}"), before, Some(after));
        }
    }

    // === N13 ===

    fn wrap_single_values(&mut self) {
        let Some(rt) = self.resource_type else { return };
        if !self.is_resource_write() {
            return;
        }
        let mut edits = Vec::new();
        if let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) {
            for_each_attribute(body, rt, "", &mut |def, value, pointer| {
                if def.multi_valued && value.is_object() {
                    let before = value.clone();
                    *value = Value::Array(vec![before.clone()]);
                    edits.push((pointer.to_owned(), Some(before), Some(value.clone())));
                }
                if def.name == "manager" {
                    if let Some(manager) = value.as_object_mut() {
                        if let (Some(id), None) = (json::remove(manager, "managerId"), json::get(manager, "value")) {
                            edits.push((format!("{pointer}/managerId"), Some(id.clone()), None));
                            edits.push((format!("{pointer}/value"), None, Some(id.clone())));
                            manager.insert("value".to_owned(), id);
                        }
                    }
                }
            });
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    // === N14 ===

    fn strip_read_only(&mut self) {
        let Some(rt) = self.resource_type else { return };
        let mut edits = Vec::new();
        if self.is_resource_write() {
            if let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) {
                let mut read_only = vec!["meta"];
                if rt.name == "User" {
                    read_only.push("groups");
                }
                for name in read_only {
                    if let Some(key) = json::find_key(body, name).cloned() {
                        if let Some(value) = body.remove(&key) {
                            edits.push((format!("/{key}"), Some(value), None));
                        }
                    }
                }
            }
        }
        let key = self.operations_key();
        let resource_id = self.resource_id.clone();
        if let Some(operations) = self.operations() {
            for (index, operation) in operations.iter_mut().enumerate() {
                let Some(operation) = operation.as_object_mut() else {
                    continue;
                };
                if json::get(operation, "path").is_some() {
                    continue;
                }
                let Some(value) = json::get_mut(operation, "value").and_then(Value::as_object_mut) else {
                    continue;
                };
                let Some(id_key) = json::find_key(value, "id").cloned() else {
                    continue;
                };
                if value.get(&id_key).and_then(Value::as_str) == resource_id.as_deref() {
                    if let Some(id) = value.remove(&id_key) {
                        edits.push((format!("/{key}/{index}/value/{id_key}"), Some(id), None));
                    }
                }
            }
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    // === N15 ===

    fn drop_nulls(&mut self) {
        if !self.is_resource_write() {
            return;
        }
        let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) else {
            return;
        };
        let mut edits = Vec::new();
        drop_null_members(body, "", &mut edits);
        for value in body.iter_mut().filter(|(k, _)| k.starts_with("urn:")) {
            if let (key, Value::Object(extension)) = value {
                drop_null_members(extension, &format!("/{}", pointer_token(key)), &mut edits);
            }
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    // === N17 ===

    fn add_member_type(&mut self) {
        if self.resource_type.is_none_or(|rt| rt.name != "Group") {
            return;
        }
        let mut edits = Vec::new();
        let add_type = |members: &mut Value, pointer: &str, edits: &mut Edits| {
            for (index, member) in members.as_array_mut().into_iter().flatten().enumerate() {
                if let Some(member) = member.as_object_mut() {
                    if json::get(member, "type").is_none() {
                        member.insert("type".to_owned(), json!("User"));
                        edits.push((format!("{pointer}/{index}/type"), None, Some(json!("User"))));
                    }
                }
            }
        };
        if self.is_resource_write() {
            if let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) {
                if let Some(key) = json::find_key(body, "members").cloned() {
                    if let Some(members) = body.get_mut(&key) {
                        add_type(members, &format!("/{key}"), &mut edits);
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
                let targets_members = json::get(operation, "path")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.eq_ignore_ascii_case("members"));
                if targets_members {
                    if let Some(value) = json::get_mut(operation, "value") {
                        add_type(value, &format!("/{key}/{index}/value"), &mut edits);
                    }
                }
            }
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }

    // === N22 ===

    fn scim_content_type(&mut self, target: &Target) {
        if self.request.body.is_none() {
            return;
        }
        let current = self.request.content_type.clone();
        if current.as_deref() != Some(target.content_type.as_str()) {
            self.request.content_type = Some(target.content_type.clone());
            self.change(
                "header:content-type".to_owned(),
                current.map(Value::String),
                Some(json!(target.content_type)),
            );
        }
    }

    // === N24 ===

    fn single_primary(&mut self) {
        let Some(rt) = self.resource_type else { return };
        let mut edits = Vec::new();
        let mut fix = |def: &AttributeDef, value: &mut Value, pointer: &str| {
            if !def.multi_valued || def.sub_attribute("primary").is_none() {
                return;
            }
            let mut seen = false;
            for (index, element) in value.as_array_mut().into_iter().flatten().enumerate() {
                let Some(element) = element.as_object_mut() else {
                    continue;
                };
                let Some(key) = json::find_key(element, "primary").cloned() else {
                    continue;
                };
                if element.get(&key) == Some(&Value::Bool(true)) {
                    if seen {
                        element.insert(key.clone(), Value::Bool(false));
                        edits.push((
                            format!("{pointer}/{index}/{key}"),
                            Some(json!(true)),
                            Some(json!(false)),
                        ));
                    }
                    seen = true;
                }
            }
        };
        if self.is_resource_write() {
            if let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) {
                for_each_attribute(body, rt, "", &mut fix);
            }
        }
        let key = self.operations_key();
        if let Some(operations) = self.operations() {
            for (index, operation) in operations.iter_mut().enumerate() {
                let Some(operation) = operation.as_object_mut() else {
                    continue;
                };
                let path = json::get(operation, "path")
                    .and_then(Value::as_str)
                    .and_then(|p| PatchPath::parse(p).ok());
                let Some(value) = json::get_mut(operation, "value") else {
                    continue;
                };
                let pointer = format!("/{key}/{index}/value");
                match path {
                    None => {
                        if let Some(value) = value.as_object_mut() {
                            for_each_attribute(value, rt, &pointer, &mut fix);
                        }
                    }
                    Some(path) if path.filter.is_none() => {
                        if let Some(resolved) = rt.resolve(&path.attr).filter(|r| r.sub.is_none()) {
                            fix(resolved.attr, value, &pointer);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        for (pointer, before, after) in edits {
            self.change(pointer, before, after);
        }
    }
}

fn is_legacy_core(urn: &str) -> bool {
    ["urn:scim:schemas:core:1.0", "urn:scim:schemas:core:2.0"]
        .iter()
        .any(|legacy| legacy.eq_ignore_ascii_case(urn))
}

fn is_legacy_enterprise(urn: &str) -> bool {
    [
        "urn:scim:schemas:extension:enterprise:1.0",
        "urn:scim:schemas:extension:enterprise:2.0",
    ]
    .iter()
    .any(|legacy| legacy.eq_ignore_ascii_case(urn))
}

/// Edits made while walking a body: pointer, before, after (`None`: absent).
type Edits = Vec<(String, Option<Value>, Option<Value>)>;

fn coerce_boolean(def: &AttributeDef, value: &mut Value, pointer: &str, edits: &mut Edits) {
    if def.kind != AttrType::Boolean {
        return;
    }
    if let Some(flag) = value.as_str().and_then(boolean_string) {
        edits.push((pointer.to_owned(), Some(value.clone()), Some(Value::Bool(flag))));
        *value = Value::Bool(flag);
    }
}

/// Visits every attribute of a resource-shaped object that the schema knows (extension
/// objects included) with its definition: the whole value, array or not.
fn for_each_attribute(
    object: &mut Map<String, Value>,
    rt: &ResourceType,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    for (key, value) in object.iter_mut() {
        let here = format!("{pointer}/{}", pointer_token(key));
        if let Some(extension) = rt.extension(key) {
            if let Some(inner) = value.as_object_mut() {
                for_each_in_schema(inner, extension.schema, &here, visit);
            }
        } else if let Some(def) = rt.top_attribute(key) {
            visit(def, value, &here);
        }
    }
}

fn for_each_in_schema(
    object: &mut Map<String, Value>,
    schema: &Schema,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    for (key, value) in object.iter_mut() {
        if let Some(def) = schema.attribute(key) {
            visit(def, value, &format!("{pointer}/{}", pointer_token(key)));
        }
    }
}

/// Visits every leaf value of a resource-shaped object: each element of a multi-valued
/// attribute and each sub-attribute of a complex one.
fn walk_resource(
    object: &mut Map<String, Value>,
    rt: &ResourceType,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    for_each_attribute(object, rt, pointer, &mut |def, value, pointer| {
        walk_values(value, def, pointer, visit)
    });
}

/// Visits `value` as a value of `def`: each element if it is an array, then each
/// sub-attribute if complex.
fn walk_values(
    value: &mut Value,
    def: &AttributeDef,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    match value {
        Value::Array(elements) if def.multi_valued => {
            for (index, element) in elements.iter_mut().enumerate() {
                walk_one(element, def, &format!("{pointer}/{index}"), visit);
            }
        }
        _ => walk_one(value, def, pointer, visit),
    }
}

fn walk_one(
    value: &mut Value,
    def: &AttributeDef,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    if def.kind == AttrType::Complex {
        walk_sub_attributes(value, def, pointer, visit);
    } else {
        visit(def, value, pointer);
    }
}

fn walk_sub_attributes(
    value: &mut Value,
    def: &AttributeDef,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    if let Some(object) = value.as_object_mut() {
        for (key, sub_value) in object.iter_mut() {
            if let Some(sub) = def.sub_attribute(key) {
                visit(sub, sub_value, &format!("{pointer}/{}", pointer_token(key)));
            }
        }
    }
}

fn drop_null_refs(value: &mut Value, pointer: &str, edits: &mut Edits) {
    match value {
        Value::Object(object) => {
            if object.get("$ref") == Some(&Value::Null) {
                object.remove("$ref");
                edits.push((format!("{pointer}/$ref"), Some(Value::Null), None));
            }
            for (key, inner) in object.iter_mut() {
                drop_null_refs(inner, &format!("{pointer}/{}", pointer_token(key)), edits);
            }
        }
        Value::Array(elements) => {
            for (index, inner) in elements.iter_mut().enumerate() {
                drop_null_refs(inner, &format!("{pointer}/{index}"), edits);
            }
        }
        _ => {}
    }
}

fn drop_null_members(object: &mut Map<String, Value>, pointer: &str, edits: &mut Edits) {
    let nulls: Vec<String> = object
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for key in nulls {
        object.remove(&key);
        edits.push((format!("{pointer}/{}", pointer_token(&key)), Some(Value::Null), None));
    }
}

/// A manager given as a bare id or a one-element array becomes `{"value": id}`.
fn manager_object(manager: &mut Value, pointer: &str, edits: &mut Edits) {
    let replacement = match manager {
        Value::String(id) => Some(json!({"value": id})),
        Value::Array(elements) if elements.len() == 1 => match &elements[0] {
            Value::String(id) => Some(json!({"value": id})),
            Value::Object(object) => Some(Value::Object(object.clone())),
            _ => None,
        },
        _ => None,
    };
    if let Some(replacement) = replacement {
        edits.push((pointer.to_owned(), Some(manager.clone()), Some(replacement.clone())));
        *manager = replacement;
    }
}

mod more;
mod state;

#[cfg(test)]
mod tests;
