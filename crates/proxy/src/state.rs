//! The resource as the application has it: what stateful rules (N8, N20, R13) start from.
//!
//! Read fresh with a GET, with the route's credentials, every time a rule needs it: the
//! application is the authority, and a copy kept from earlier responses goes stale as soon as
//! anything else writes to the application (for N8 that would duplicate an element; for N20
//! the If-Match would fail). What was read, and what the application answered after the
//! write, are kept in the store (`resource_snapshots`), shared by every instance: the evidence
//! of what the rules decided from.

use crate::pacing::{Patience, Refused};
use crate::upstream::{self, OnBehalf, Outbound, Upstream, UpstreamError};
use crate::Route;
use bytes::Bytes;
use http::HeaderMap;
use scimtrail_store::{Snapshot, Write};
use serde_json::Value;

/// GETs `path` (relative to the route's upstream) and returns the resource, or `None` when
/// the application does not answer 200 with a JSON object in time; `Err` when the route's
/// pacing did not send the GET.
pub(crate) async fn fetch(
    upstream: &Upstream,
    route: &Route,
    idp_headers: &HeaderMap,
    path: &str,
    patience: &mut Patience,
) -> Result<Option<Value>, Refused> {
    match read_unless_paced(upstream, route, idp_headers, path, patience).await {
        Ok(found) => Ok(found),
        Err(Unread::Paced(refused)) => Err(refused),
        Err(Unread::Failed(reason)) => {
            tracing::warn!(%reason, path, "Reading the resource's state failed.");
            Ok(None)
        }
    }
}

/// Why a GET found nothing.
#[derive(Debug)]
pub(crate) enum Unread {
    /// The route's pacing did not send it.
    Paced(Refused),
    /// It was sent, and failed: why.
    Failed(String),
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Paced(refused) => write!(f, "not sent: {}", refused.detail),
            Unread::Failed(why) => f.write_str(why),
        }
    }
}

/// The GET the proxy makes of `path` (and `query`) for an exchange whose request carried
/// `idp_headers`.
pub(crate) fn get<'a>(path: &'a str, query: Option<&'a str>, idp_headers: &'a HeaderMap) -> Outbound<'a> {
    Outbound {
        method: "GET",
        path,
        query,
        body: Bytes::new(),
        content_type: None,
        if_match: None,
        on_behalf: OnBehalf::Proxy { idp_headers },
    }
}

/// GETs `path` (relative to the route's upstream, a query string allowed): the JSON object
/// answered with 200, `None` for a 404, and why otherwise.
pub(crate) async fn read(
    upstream: &Upstream,
    route: &Route,
    idp_headers: &HeaderMap,
    path: &str,
    patience: &mut Patience,
) -> Result<Option<Value>, String> {
    read_unless_paced(upstream, route, idp_headers, path, patience)
        .await
        .map_err(|unread| unread.to_string())
}

async fn read_unless_paced(
    upstream: &Upstream,
    route: &Route,
    idp_headers: &HeaderMap,
    path: &str,
    patience: &mut Patience,
) -> Result<Option<Value>, Unread> {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let request = upstream::build(route, &get(path, query, idp_headers))
        .map_err(|why| Unread::Failed(format!("GET {path}: {why}")))?;
    read_built(upstream, route, request, patience).await
}

/// Sends a GET built with [`get`] and reads its answer as [`read`] does.
pub(crate) async fn read_built(
    upstream: &Upstream,
    route: &Route,
    request: http::Request<http_body_util::Full<Bytes>>,
    patience: &mut Patience,
) -> Result<Option<Value>, Unread> {
    let uri = request.uri().clone();
    let failed = |why: String| Err(Unread::Failed(why));
    let answer = match upstream.send(route, request, patience).await {
        Ok(answer) => answer,
        Err(UpstreamError::Paced(refused)) => return Err(Unread::Paced(refused)),
        Err(UpstreamError::Timeout(_)) => return failed(format!("GET {uri} timed out")),
        Err(error) => return failed(format!("GET {uri}: the application {error}")),
    };
    match answer.parts.status {
        http::StatusCode::NOT_FOUND => return Ok(None),
        status if !status.is_success() => return failed(format!("GET {uri} was answered {status}")),
        _ => {}
    }
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(value) if value.is_object() => Ok(Some(value)),
        _ => failed(format!("GET {uri} was not answered with a JSON object")),
    }
}

/// Looks a resource up by an attribute that names it (`userName`, `displayName`,
/// `externalId`): the first match, `None` when there is none.
pub(crate) async fn find(
    upstream: &Upstream,
    route: &Route,
    idp_headers: &HeaderMap,
    endpoint: &str,
    attribute: &str,
    value: &str,
    patience: &mut Patience,
) -> Result<Option<Value>, String> {
    let filter = format!("{attribute} eq {}", Value::String(value.to_owned()));
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("filter", &filter)
        .finish();
    let list = read(upstream, route, idp_headers, &format!("{endpoint}?{query}"), patience).await?;
    Ok(list
        .as_ref()
        .and_then(|list| list.get("Resources"))
        .and_then(Value::as_array)
        .and_then(|resources| resources.first())
        .cloned())
}

/// The store write that keeps `resource` as the route's last view of it, without what the
/// route never stores.
pub(crate) fn snapshot(route: &Route, resource_type: &str, resource_id: &str, resource: &Value) -> Write {
    let mut body = resource.clone();
    route.redaction.redact(&mut body);
    let now = crate::clock::now_ms();
    Write::Snapshot(Box::new(Snapshot {
        route: route.name.clone(),
        resource_type: resource_type.to_owned(),
        resource_id: resource_id.to_owned(),
        body: Some(body.to_string()),
        updated_at_ms: now,
    }))
}

/// R6: the resource a create made, when the application answered without it — read from its
/// `Location` when that points under the route's upstream (`upstream::location_path`), else
/// looked up by the userName (or displayName) the create gave it — and how it was found, or
/// why not: the record says which.
pub(crate) async fn fetch_created(
    upstream: &Upstream,
    route: &Route,
    idp_headers: &HeaderMap,
    response_headers: &HeaderMap,
    create: &scimtrail_rules::Request,
    patience: &mut Patience,
) -> (Option<Value>, String) {
    let location = response_headers
        .get(http::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let not_followed = match location.as_deref().map(|l| upstream::location_path(route, l)) {
        Some(Ok(path)) => {
            return match fetch(upstream, route, idp_headers, &path, patience).await {
                Ok(found) => (found, format!("read from its Location, {path}")),
                Err(refused) => (None, format!("its Location, {path}, was not read: {}", refused.detail)),
            };
        }
        Some(Err(why)) => {
            tracing::warn!(%why, "The application's Location is not followed.");
            format!("{why}, so not followed; ")
        }
        None => "no Location; ".to_owned(),
    };
    let endpoint = create.path.trim_end_matches('/');
    let attribute = if endpoint.ends_with("/Groups") {
        "displayName"
    } else {
        "userName"
    };
    let Some(name) = create
        .body
        .as_ref()
        .and_then(|b| b.get(attribute))
        .and_then(Value::as_str)
    else {
        return (
            None,
            format!("{not_followed}and the create names no {attribute} to look it up by"),
        );
    };
    match find(upstream, route, idp_headers, endpoint, attribute, name, patience).await {
        Ok(Some(found)) => (Some(found), format!("{not_followed}looked up by {attribute}")),
        Ok(None) => (None, format!("{not_followed}and no resource has that {attribute}")),
        Err(reason) => {
            tracing::warn!(%reason, "Looking the created resource up failed.");
            (None, format!("{not_followed}and looking it up by {attribute} failed"))
        }
    }
}
