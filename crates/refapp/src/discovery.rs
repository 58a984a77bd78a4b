//! Discovery endpoints (RFC 7644 §4): what this application supports, advertised truthfully.

use crate::directory::BaseUrl;
use crate::{MAX_BULK_OPERATIONS, MAX_PAYLOAD_BYTES, MAX_RESULTS};
use scimtrail_scim::message::ListResponse;
use scimtrail_scim::schema::{RESOURCE_TYPES, SCHEMAS};
use serde_json::{json, Value};

/// `GET /ServiceProviderConfig`.
pub fn service_provider_config(base: &BaseUrl) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": MAX_BULK_OPERATIONS, "maxPayloadSize": MAX_PAYLOAD_BYTES},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": true},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", base.0)}
    })
}

/// `GET /Schemas/{id}`.
pub fn schema(id: &str, base: &BaseUrl) -> Option<Value> {
    let schema = SCHEMAS.iter().find(|s| s.id.eq_ignore_ascii_case(id))?;
    let mut out = schema.to_json();
    out["meta"] = json!({"resourceType": "Schema", "location": format!("{}/Schemas/{}", base.0, schema.id)});
    Some(out)
}

/// `GET /Schemas`.
pub fn schemas(base: &BaseUrl) -> Value {
    let resources: Vec<Value> = SCHEMAS.iter().filter_map(|s| schema(s.id, base)).collect();
    ListResponse {
        total_results: resources.len() as u64,
        start_index: 1,
        resources,
    }
    .to_json()
}

/// `GET /ResourceTypes/{name}`.
pub fn resource_type(name: &str, base: &BaseUrl) -> Option<Value> {
    let rt = RESOURCE_TYPES.iter().find(|rt| rt.name == name)?;
    let mut out = rt.to_json();
    out["meta"] = json!({"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/{}", base.0, rt.name)});
    Some(out)
}

/// `GET /ResourceTypes`.
pub fn resource_types(base: &BaseUrl) -> Value {
    let resources: Vec<Value> = RESOURCE_TYPES
        .iter()
        .filter_map(|rt| resource_type(rt.name, base))
        .collect();
    ListResponse {
        total_results: resources.len() as u64,
        start_index: 1,
        resources,
    }
    .to_json()
}
