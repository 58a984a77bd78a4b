//! What an exchange is about, as both sides read it: the resource type and id a path
//! addresses, and the `null` members a resource may not carry.

use crate::changes::Changes;
use scimtrail_scim::schema::ResourceType;
use serde_json::{Map, Value};

/// `Users` or `Groups` from `/Users/42` (or `/scim/v2/Users/42`).
pub(crate) fn resource_type_of(path: &str) -> Option<&'static ResourceType> {
    path.split('/')
        .find_map(|segment| ResourceType::by_endpoint(&format!("/{segment}")))
}

/// `42` from `/Users/42`; `None` for a collection.
pub(crate) fn resource_id_of(path: &str) -> Option<String> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    segments.find(|segment| ResourceType::by_endpoint(&format!("/{segment}")).is_some())?;
    segments.next().map(str::to_owned)
}

/// Escapes one JSON pointer token (RFC 6901).
pub(crate) fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Removes the `null`-valued members of one object (RFC 7643 §2.5: the same as absent),
/// recording each at `pointer_of(key)`.
pub(crate) fn drop_null_members(
    object: &mut Map<String, Value>,
    changes: &mut Changes,
    pointer_of: impl Fn(&str) -> String,
) {
    let nulls: Vec<String> = object
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for key in nulls {
        object.remove(&key);
        changes.record(pointer_of(&key), Some(Value::Null), None);
    }
}
