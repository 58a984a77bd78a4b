//! The resource as the application has it: what stateful rules (N8, N20, R13) start from.
//!
//! Read fresh with a GET, with the route's credentials, every time a rule needs it: the
//! application is the authority, and a copy kept from earlier responses goes stale as soon as
//! anything else writes to the application (for N8 that would duplicate an element; for N20
//! the If-Match would fail). What was read, and what the application answered after the
//! write, are kept in the store (`resource_snapshots`), shared by every instance: the evidence
//! of what the rules decided from.

use crate::exchange::set_upstream_auth;
use crate::upstream::UpstreamClient;
use crate::Route;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::{BodyExt, Full, Limited};
use scimtrail_scim::redact::redact_passwords;
use scimtrail_store::{Snapshot, Write};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest resource read back, in bytes.
const MAX_RESOURCE_BYTES: usize = 4 * 1024 * 1024;

/// GETs `path` (relative to the route's upstream) and returns the resource, or `None` when
/// the application does not answer 200 with a JSON object in time.
pub(crate) async fn fetch(
    client: &UpstreamClient,
    route: &Route,
    idp_headers: &HeaderMap,
    path: &str,
) -> Option<Value> {
    match read(client, route, idp_headers, path).await {
        Ok(found) => found,
        Err(reason) => {
            tracing::warn!(%reason, path, "Reading the resource's state failed.");
            None
        }
    }
}

/// GETs `path` (relative to the route's upstream): the JSON object answered with 200,
/// `None` for a 404, and why otherwise.
pub(crate) async fn read(
    client: &UpstreamClient,
    route: &Route,
    idp_headers: &HeaderMap,
    path: &str,
) -> Result<Option<Value>, String> {
    read_with(client, route, &read_headers(route, idp_headers), path).await
}

/// The headers of a GET the proxy makes itself: the route's credentials (without credentials
/// of its own, the route passes the IdP's, as for the request itself).
pub(crate) fn read_headers(route: &Route, idp_headers: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/scim+json"));
    if let Some(authorization) = idp_headers.get(AUTHORIZATION) {
        headers.insert(AUTHORIZATION, authorization.clone());
    }
    set_upstream_auth(&mut headers, route);
    headers
}

/// [`read`] with the headers given.
pub(crate) async fn read_with(
    client: &UpstreamClient,
    route: &Route,
    headers: &HeaderMap,
    path: &str,
) -> Result<Option<Value>, String> {
    let uri = format!("{}{path}", route.upstream.to_string().trim_end_matches('/'));
    let mut request = Request::get(&uri)
        .body(Full::new(Bytes::new()))
        .map_err(|error| format!("GET {uri} cannot be built: {error}"))?;
    *request.headers_mut() = headers.clone();
    let response = match tokio::time::timeout(route.timeout, client.request(request)).await {
        Ok(Ok(response)) if response.status() == http::StatusCode::NOT_FOUND => return Ok(None),
        Ok(Ok(response)) if response.status().is_success() => response,
        Ok(Ok(response)) => return Err(format!("GET {uri} was answered {}", response.status())),
        Ok(Err(error)) => return Err(format!("GET {uri} failed: {error}")),
        Err(_) => return Err(format!("GET {uri} timed out")),
    };
    let bytes = Limited::new(response.into_body(), MAX_RESOURCE_BYTES)
        .collect()
        .await
        .map_err(|error| format!("the answer to GET {uri} could not be read: {error}"))?
        .to_bytes();
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) if value.is_object() => Ok(Some(value)),
        _ => Err(format!("GET {uri} was not answered with a JSON object")),
    }
}

/// Looks a resource up by an attribute that names it (`userName`, `displayName`,
/// `externalId`): the first match, `None` when there is none.
pub(crate) async fn find(
    client: &UpstreamClient,
    route: &Route,
    idp_headers: &HeaderMap,
    endpoint: &str,
    attribute: &str,
    value: &str,
) -> Result<Option<Value>, String> {
    let filter = format!("{attribute} eq {}", Value::String(value.to_owned()));
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("filter", &filter)
        .finish();
    let list = read(client, route, idp_headers, &format!("{endpoint}?{query}")).await?;
    Ok(list
        .as_ref()
        .and_then(|list| list.get("Resources"))
        .and_then(Value::as_array)
        .and_then(|resources| resources.first())
        .cloned())
}

/// The store write that keeps `resource` as the route's last view of it, without passwords.
pub(crate) fn snapshot(route: &Route, resource_type: &str, resource_id: &str, resource: &Value) -> Write {
    let mut body = resource.clone();
    redact_passwords(&mut body);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Write::Snapshot(Box::new(Snapshot {
        route: route.name.clone(),
        resource_type: resource_type.to_owned(),
        resource_id: resource_id.to_owned(),
        body: Some(body.to_string()),
        updated_at_ms: now,
    }))
}

/// R6: the resource a create made, when the application answered without it: read from its
/// `Location`, or looked up by the userName (or displayName) the create gave it.
pub(crate) async fn fetch_created(
    client: &UpstreamClient,
    route: &Route,
    idp_headers: &HeaderMap,
    response_headers: &HeaderMap,
    create: &scimtrail_rules::Request,
) -> Option<Value> {
    let base = route.upstream.to_string();
    let base = base.trim_end_matches('/');
    let located = response_headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| location.strip_prefix(base))
        .map(str::to_owned);
    if let Some(path) = located {
        return fetch(client, route, idp_headers, &path).await;
    }
    let endpoint = create.path.trim_end_matches('/');
    let attribute = if endpoint.ends_with("/Groups") {
        "displayName"
    } else {
        "userName"
    };
    let name = create.body.as_ref()?.get(attribute)?.as_str()?;
    find(client, route, idp_headers, endpoint, attribute, name)
        .await
        .unwrap_or_else(|reason| {
            tracing::warn!(%reason, "Looking the created resource up failed.");
            None
        })
}
