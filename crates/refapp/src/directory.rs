//! The in-memory resources and the SCIM operations on them.

use scimtrail_scim::json;
#[cfg(test)]
use scimtrail_scim::message::BulkRequest;
use scimtrail_scim::message::{ListQuery, ListResponse};
use scimtrail_scim::patch::PatchRequest;
use scimtrail_scim::resource::{check_input, compare_for_sort, Projection};
use scimtrail_scim::schema::{ResourceType, GROUP_TYPE, USER_TYPE};
use scimtrail_scim::{Filter, ScimError, ScimType};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::MAX_RESULTS;

/// Every resource, by resource type name and id, in creation order.
#[derive(Debug, Default)]
pub struct Directory {
    resources: HashMap<&'static str, Map<String, Value>>,
    /// Source of `meta.version`: one counter for the whole directory, so versions never repeat.
    version_counter: u64,
    /// Lowercased userName → user id: uniqueness is checked in O(1), not by a scan.
    user_names: HashMap<String, String>,
}

/// A request's view of where the service is, for `meta.location` and `$ref`.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl BaseUrl {
    fn location(&self, rt: &ResourceType, id: &str) -> String {
        format!("{}{}/{id}", self.0, rt.endpoint)
    }
}

/// A precondition from `If-Match`.
#[derive(Debug, Clone, Default)]
pub struct Precondition {
    /// The entity tags of `If-Match`, `*` included; `None` when the header is absent.
    pub if_match: Option<Vec<String>>,
}

impl Precondition {
    /// Parses an `If-Match` header value (a comma-separated list of entity tags).
    pub fn if_match(header: Option<&str>) -> Precondition {
        Precondition {
            if_match: header.map(|h| {
                h.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect()
            }),
        }
    }

    fn check(&self, current: &str) -> Result<(), ScimError> {
        let Some(tags) = &self.if_match else { return Ok(()) };
        if tags.iter().any(|t| t == "*" || weak_eq(t, current)) {
            return Ok(());
        }
        Err(ScimError::new(
            412,
            None,
            format!(
                "If-Match {} does not match the current version {current}",
                tags.join(", ")
            ),
        ))
    }
}

/// Weak comparison of entity tags (RFC 9110 §8.8.3.2): equal opaque tags, `W/` ignored.
pub fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Directory {
        Directory::default()
    }

    fn table(&self, rt: &ResourceType) -> Option<&Map<String, Value>> {
        self.resources.get(rt.name)
    }

    fn table_mut(&mut self, rt: &ResourceType) -> &mut Map<String, Value> {
        self.resources.entry(rt.name).or_default()
    }

    fn stored(&self, rt: &ResourceType, id: &str) -> Result<&Map<String, Value>, ScimError> {
        self.table(rt)
            .and_then(|t| t.get(id))
            .and_then(Value::as_object)
            .ok_or_else(|| ScimError::not_found(format!("{} \"{id}\" not found", rt.name)))
    }

    fn next_version(&mut self) -> String {
        self.version_counter += 1;
        format!("W/\"{}\"", self.version_counter)
    }

    /// The current version (`meta.version`) of a resource.
    pub fn version(&self, rt: &ResourceType, id: &str) -> Option<String> {
        let stored = self.stored(rt, id).ok()?;
        Some(stored.get("meta")?.get("version")?.as_str()?.to_owned())
    }

    // === operations ===

    /// POST: creates a resource and returns it as stored.
    pub fn create(&mut self, rt: &ResourceType, body: &Value) -> Result<Map<String, Value>, ScimError> {
        let mut resource = check_input(body, rt)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.check_references_and_uniqueness(rt, &id, &mut resource)?;
        Ok(self.store(rt, &id, resource, Map::new()))
    }

    /// GET one resource, as stored.
    pub fn get(&self, rt: &ResourceType, id: &str) -> Result<&Map<String, Value>, ScimError> {
        self.stored(rt, id)
    }

    /// PUT: replaces every client-writable attribute. The password is kept when the body
    /// has none, since clients can never read it back (`returned: never`).
    pub fn replace(
        &mut self,
        rt: &ResourceType,
        id: &str,
        body: &Value,
        precondition: &Precondition,
    ) -> Result<Map<String, Value>, ScimError> {
        let current = self.stored(rt, id)?;
        precondition.check(&current_version(current))?;
        let meta = meta_of(current);
        let password = json::get(current, "password").cloned();
        let mut resource = check_input(body, rt)?;
        self.check_references_and_uniqueness(rt, id, &mut resource)?;
        if let Some(password) = password.filter(|_| json::get(&resource, "password").is_none()) {
            resource.insert("password".into(), password);
        }
        Ok(self.store(rt, id, resource, meta))
    }

    /// PATCH: applies a PatchOp message atomically.
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        id: &str,
        body: &Value,
        precondition: &Precondition,
    ) -> Result<Map<String, Value>, ScimError> {
        let current = self.stored(rt, id)?;
        precondition.check(&current_version(current))?;
        let request = PatchRequest::from_json(body).map_err(|e| e.to_scim_error())?;
        // `apply` works on its own copy and writes back only on success.
        let mut working = Value::Object(current.clone());
        request.apply(&mut working, rt).map_err(|e| e.to_scim_error())?;
        let Value::Object(mut resource) = working else {
            return Err(ScimError::new(500, None, "the patched resource is not an object"));
        };
        let meta = meta_of(&resource);
        for key in ["id", "meta"] {
            resource.shift_remove(key);
        }
        self.check_references_and_uniqueness(rt, id, &mut resource)?;
        Ok(self.store(rt, id, resource, meta))
    }

    /// Writes a resource in canonical order (`schemas`, `id`, attributes, `meta`) with a new
    /// version; `meta` keeps what it had (`created`) and gains what it lacks.
    fn store(
        &mut self,
        rt: &ResourceType,
        id: &str,
        mut resource: Map<String, Value>,
        mut meta: Map<String, Value>,
    ) -> Map<String, Value> {
        let now = now();
        meta.entry("resourceType").or_insert_with(|| json!(rt.name));
        meta.entry("created").or_insert_with(|| json!(now));
        meta.insert("lastModified".into(), json!(now));
        meta.insert("version".into(), json!(self.next_version()));
        let mut out = Map::new();
        let schemas = resource
            .shift_remove("schemas")
            .unwrap_or_else(|| json!([rt.schema.id]));
        out.insert("schemas".into(), schemas);
        out.insert("id".into(), json!(id));
        out.extend(resource);
        out.insert("meta".into(), Value::Object(meta));
        if rt.name == USER_TYPE.name {
            let previous = self
                .table(rt)
                .and_then(|t| t.get(id))
                .and_then(|r| r.get("userName"))
                .and_then(Value::as_str)
                .map(str::to_lowercase);
            if let Some(previous) = previous {
                self.user_names.remove(&previous);
            }
            if let Some(user_name) = out.get("userName").and_then(Value::as_str) {
                self.user_names.insert(user_name.to_lowercase(), id.to_owned());
            }
        }
        self.table_mut(rt).insert(id.to_owned(), Value::Object(out.clone()));
        out
    }

    /// DELETE. A deleted user or group also leaves every group it was a member of.
    pub fn delete(&mut self, rt: &ResourceType, id: &str, precondition: &Precondition) -> Result<(), ScimError> {
        let current = self.stored(rt, id)?;
        precondition.check(&current_version(current))?;
        let user_name = current.get("userName").and_then(Value::as_str).map(str::to_lowercase);
        if let Some(user_name) = user_name {
            self.user_names.remove(&user_name);
        }
        self.table_mut(rt).shift_remove(id);
        let mut changed = Vec::new();
        if let Some(groups) = self.resources.get_mut(GROUP_TYPE.name) {
            for (group_id, group) in groups.iter_mut() {
                if let Some(Value::Array(members)) = group.get_mut("members") {
                    let before = members.len();
                    members.retain(|m| m.get("value").and_then(Value::as_str) != Some(id));
                    if members.len() != before {
                        changed.push(group_id.clone());
                    }
                }
            }
        }
        for group_id in changed {
            let version = self.next_version();
            if let Some(Value::Object(group)) = self.table_mut(&GROUP_TYPE).get_mut(&group_id) {
                if group
                    .get("members")
                    .is_some_and(|m| m.as_array().is_some_and(Vec::is_empty))
                {
                    group.shift_remove("members");
                }
                if let Some(Value::Object(meta)) = group.get_mut("meta") {
                    meta.insert("version".into(), json!(version));
                    meta.insert("lastModified".into(), json!(now()));
                }
            }
        }
        Ok(())
    }

    /// Group members must name existing users or groups; their `type` is filled in.
    /// `userName` must be unique, compared case-insensitively (`caseExact: false`).
    fn check_references_and_uniqueness(
        &self,
        rt: &ResourceType,
        id: &str,
        resource: &mut Map<String, Value>,
    ) -> Result<(), ScimError> {
        if rt.name == USER_TYPE.name {
            if let Some(user_name) = json::get(resource, "userName").and_then(Value::as_str) {
                if let Some(other_id) = self
                    .user_names
                    .get(&user_name.to_lowercase())
                    .filter(|other| other.as_str() != id)
                {
                    return Err(ScimError::new(
                        409,
                        Some(ScimType::Uniqueness),
                        format!("userName \"{user_name}\" is already used by user {other_id} (userName is unique, compared case-insensitively)"),
                    ));
                }
            }
        }
        if rt.name == GROUP_TYPE.name {
            if let Some(Value::Array(members)) = resource.get_mut("members") {
                for (index, member) in members.iter_mut().enumerate() {
                    let Some(member) = member.as_object_mut() else { continue };
                    let value = member
                        .get("value")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let kind = if self.stored(&USER_TYPE, &value).is_ok() {
                        "User"
                    } else if self.stored(&GROUP_TYPE, &value).is_ok() && value != id {
                        "Group"
                    } else {
                        return Err(ScimError::bad_request(
                            ScimType::InvalidValue,
                            format!("members[{index}].value \"{value}\" is not the id of an existing User or Group"),
                        ));
                    };
                    match member.get("type").and_then(Value::as_str) {
                        None => {
                            member.insert("type".into(), json!(kind));
                        }
                        Some(given) if given != kind => {
                            return Err(ScimError::bad_request(
                                ScimType::InvalidValue,
                                format!("members[{index}].type is \"{given}\" but \"{value}\" is a {kind}"),
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        Ok(())
    }

    // === reading for responses ===

    /// The resource as a response shows it: `meta.location`, a user's `groups`, members'
    /// `$ref`, then `attributes`/`excludedAttributes`/`returned` applied.
    pub fn render(
        &self,
        rt: &ResourceType,
        resource: &Map<String, Value>,
        base: &BaseUrl,
        projection: &Projection,
    ) -> Value {
        Value::Object(projection.apply(&self.expand(rt, resource, base), rt))
    }

    fn expand(&self, rt: &ResourceType, resource: &Map<String, Value>, base: &BaseUrl) -> Map<String, Value> {
        let mut out = resource.clone();
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(Value::Object(meta)) = out.get_mut("meta") {
            meta.insert("location".into(), json!(base.location(rt, &id)));
        }
        if rt.name == USER_TYPE.name {
            let groups: Vec<Value> = self
                .table(&GROUP_TYPE)
                .into_iter()
                .flatten()
                .filter(|(_, g)| g.get("members").and_then(Value::as_array).is_some_and(|m| m.iter().any(|m| m.get("value").and_then(Value::as_str) == Some(&id))))
                .map(|(gid, g)| {
                    json!({"value": gid, "$ref": base.location(&GROUP_TYPE, gid), "display": g.get("displayName").cloned().unwrap_or(Value::Null), "type": "direct"})
                })
                .collect();
            if !groups.is_empty() {
                // Keep `meta` last for readability.
                let meta = out.shift_remove("meta");
                out.insert("groups".into(), Value::Array(groups));
                if let Some(meta) = meta {
                    out.insert("meta".into(), meta);
                }
            }
        }
        if let Some(Value::Array(members)) = out.get_mut("members") {
            for member in members.iter_mut().filter_map(Value::as_object_mut) {
                if member.contains_key("$ref") {
                    continue;
                }
                let value = member
                    .get("value")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let target = if member.get("type").and_then(Value::as_str) == Some("Group") {
                    &GROUP_TYPE
                } else {
                    &USER_TYPE
                };
                member.insert("$ref".into(), json!(base.location(target, &value)));
            }
        }
        out
    }

    /// A list query over one resource type, or over several (`/.search` at the root).
    pub fn search(
        &self,
        types: &[&'static ResourceType],
        query: &ListQuery,
        base: &BaseUrl,
    ) -> Result<ListResponse, ScimError> {
        let projection = Projection::parse(query.attributes.as_deref(), query.excluded_attributes.as_deref(), types)?;
        let mut hits: Vec<(&'static ResourceType, Value)> = Vec::new();
        let mut checked_any = query.filter.is_none();
        let mut first_error = None;
        for &rt in types {
            if let Some(filter) = &query.filter {
                if let Err(error) = check_filter(filter, rt) {
                    first_error.get_or_insert(error);
                    continue;
                }
                checked_any = true;
            }
            for resource in self.table(rt).into_iter().flatten().filter_map(|(_, r)| r.as_object()) {
                let expanded = Value::Object(self.expand(rt, resource, base));
                if query.filter.as_ref().is_none_or(|f| f.matches(&expanded, rt)) {
                    hits.push((rt, expanded));
                }
            }
        }
        if let (false, Some(error)) = (checked_any, first_error) {
            return Err(error);
        }
        if let Some(sort_by) = &query.sort_by {
            if !types.iter().any(|rt| rt.resolve(sort_by).is_some()) {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    format!("\"sortBy\" names \"{sort_by}\", which is not an attribute"),
                ));
            }
            hits.sort_by(|(rt, a), (_, b)| {
                let ordering = compare_for_sort(a, b, rt, sort_by);
                if query.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
        let total_results = hits.len() as u64;
        let count = query.count.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
        let skip = query.start_index.saturating_sub(1);
        let resources = hits
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .filter_map(|(rt, r)| r.as_object().map(|r| Value::Object(projection.apply(r, rt))))
            .collect();
        Ok(ListResponse {
            total_results,
            start_index: query.start_index,
            resources,
        })
    }
}

/// Refuses filters the RFC grammar or the schema do not allow (400 `invalidFilter`).
fn check_filter(filter: &Filter, rt: &ResourceType) -> Result<(), ScimError> {
    if !filter.is_rfc_grammar() {
        return Err(ScimError::bad_request(
            ScimType::InvalidFilter,
            format!(
                "\"{filter}\": a comparison after a value path (\"attr[…].sub op value\") is not in the RFC 7644 §3.4.2.2 grammar; write the condition inside the brackets, e.g. emails[type eq \"work\" and value eq \"…\"]"
            ),
        ));
    }
    filter.check(rt).map_err(|e| e.to_scim_error())
}

fn meta_of(resource: &Map<String, Value>) -> Map<String, Value> {
    resource
        .get("meta")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn current_version(resource: &Map<String, Value>) -> String {
    resource
        .get("meta")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
