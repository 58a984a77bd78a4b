//! Admission: what a request must show before it costs the proxy, or the application,
//! anything. In this order, each refusal a SCIM error recorded `rejected`:
//! 1. a path without tricks (`path_safety`); its empty segments are collapsed and recorded;
//! 2. a route, and its IdP profile as it is now (or the one the exchange it is made for
//!    took), which the exchange keeps to its end and records the version of;
//! 3. the route's IdP token (not for a replay or a fanned-out bulk operation: those were
//!    authorised with the request they come from);
//! 4. a SCIM method: GET, POST, PUT, PATCH or DELETE;
//! 5. behind a trusted proxy, with `max_connections_per_client` set: room for its client;
//! 6. the body: room reserved for it within `max_buffered_bytes` (`buffers.rs`: its declared
//!    length, else `max_body_bytes`), then announced and decoded within `max_body_bytes`,
//!    whole within `body_timeout`;
//! 7. JSON that names each member once (`strict_json`);
//!
//! and last, for a request from the listener, an exchange slot, held by the exchange's
//! [`Patience`] (which gives it back while a request waits in a pacing queue). So a client that
//! cannot authenticate, or is slow to send its body, never holds an exchange slot; and one that
//! leaves while its request waits for a slot starts nothing (recorded `rejected`, 499).

use super::{BoxError, ExchangeError};
use crate::buffers::{self, Reserved};
use crate::capacity::{forwarded_client, is_trusted, ClientSlot};
use crate::config::Route;
use crate::content_coding::{self, DecodeError};
use crate::pacing::Patience;
use crate::path_safety::{self, PathCheck};
use crate::request_line::EncodedTarget;
use crate::{redact, Proxy};
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Limited};
use scimtrail_rules::Profile;
use scimtrail_scim::redact::Redaction;
use scimtrail_scim::strict_json::{self, StrictJsonError};
use scimtrail_scim::{ScimError, ScimType};
use scimtrail_store::NewExchange;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// A request admitted, with what admission read from it.
pub(crate) struct Admitted<'p> {
    pub(crate) route: &'p Route,
    /// The route's profile, taken once: the rules of the whole exchange.
    pub(crate) profile: Arc<Profile>,
    pub(crate) parts: http::request::Parts,
    /// The path relative to the route, empty segments collapsed.
    pub(crate) rest: String,
    /// The body, decoded.
    pub(crate) body: Bytes,
    /// The body as JSON, when it is JSON.
    pub(crate) json: Option<Value>,
    /// What admission changed (recorded as the exchange's first changes): empty path segments
    /// collapsed, a content coding decoded.
    pub(crate) changes: Vec<Value>,
    /// Held until the exchange ends.
    pub(crate) slots: Slots,
}

/// The slots an exchange from the listener holds until it ends (its exchange slot is held by
/// its [`Patience`]).
#[derive(Default)]
pub(crate) struct Slots {
    _client: Option<ClientSlot>,
    /// Its buffers' room, which the answer's is added to.
    pub(crate) buffers: Option<Reserved>,
}

/// The methods SCIM uses (RFC 7644 §3.2); anything else is not forwarded.
const SCIM_METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

impl Proxy {
    /// Admits a request (see the module's documentation), filling in what `new` records of
    /// it, or says why not; its exchange slot goes to `patience`. `pinned`: the profile the
    /// exchange this one is made for took.
    pub(crate) async fn admit<B>(
        &self,
        new: &mut NewExchange,
        parts: http::request::Parts,
        body: B,
        peer: SocketAddr,
        patience: &mut Patience,
        pinned: Option<Arc<Profile>>,
    ) -> Result<Admitted<'_>, ExchangeError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let from_listener =
            new.replay_of.is_none() && new.parent_id.is_none() && new.reconcile_of.is_none() && new.synthetic.is_none();
        let (path, mut changes) = self.safe_path(new, &parts)?;
        let (route, profile) = self.route_and_profile(new, &path, parts.uri.query(), pinned)?;
        authorised(route, &parts, from_listener)?;
        let client_slot = match from_listener {
            true => self.client_slot(&parts.headers, peer)?,
            false => None,
        };
        let buffers = match from_listener {
            true => Some(
                self.reserve_request_buffers(&parts.headers, body.size_hint().exact())
                    .await?,
            ),
            false => None,
        };
        let (body, json) = self.admit_body(new, route, &parts.headers, body, &mut changes).await?;
        if from_listener {
            self.take_exchange_slot(patience).await?;
        }
        let rest = relative_path(&path, &route.path_prefix);
        Ok(Admitted {
            route,
            profile,
            parts,
            rest,
            body,
            json,
            changes,
            slots: Slots {
                _client: client_slot,
                buffers,
            },
        })
    }

    /// A path without tricks, with the changes made to reach it: empty segments collapsed,
    /// and what the listener percent-encoded in the request line.
    fn safe_path(
        &self,
        new: &mut NewExchange,
        parts: &http::request::Parts,
    ) -> Result<(String, Vec<Value>), ExchangeError> {
        let raw_path = parts.uri.path();
        let (path, mut changes) = match path_safety::check(raw_path) {
            PathCheck::Clean => (raw_path.to_owned(), Vec::new()),
            PathCheck::Collapsed(collapsed) => {
                let change = json!({"rule": "path", "side": "request", "op": "replaced", "pointer": "path",
                    "before": raw_path, "after": collapsed, "applied": true});
                (collapsed, vec![change])
            }
            PathCheck::Refused(why) => {
                // Named after the route the path would have taken, for the record.
                self.label(new, self.route_for(raw_path));
                return Err(ExchangeError::idp(
                    ScimError::bad_request(ScimType::InvalidPath, format!("the request path is refused: {why}")),
                    "bad_path",
                ));
            }
        };
        if let Some(encoded) = parts.extensions.get::<EncodedTarget>() {
            changes.insert(
                0,
                json!({"rule": "request_line", "side": "request", "op": "encoded", "pointer": "target",
                "before": null, "after": null, "applied": true,
                "detail": format!("the listener percent-encoded what the URI parser refuses: {encoded}")}),
            );
        }
        Ok((path, changes))
    }

    /// The route serving `path`, and its IdP profile, taken once (`pinned`: the one the
    /// exchange this one is made for took): a reload of the rules reaches the exchanges that
    /// begin after it.
    fn route_and_profile(
        &self,
        new: &mut NewExchange,
        path: &str,
        query: Option<&str>,
        pinned: Option<Arc<Profile>>,
    ) -> Result<(&Route, Arc<Profile>), ExchangeError> {
        let route = self.route_for(path).ok_or_else(|| {
            ExchangeError::idp(ScimError::not_found("no route serves this path"), "no_route")
                .with_internal(format!("no route serves \"{path}\"; routes: {}", self.route_prefixes()))
        })?;
        self.label(new, Some(route));
        // The path could have been collapsed into another route's: recorded as that one redacts.
        new.query = redact::query(query, &route.redaction);
        let profile = pinned
            .filter(|profile| profile.name == route.idp)
            .or_else(|| self.profiles.of(route))
            .ok_or_else(|| ExchangeError::no_profile(route))?;
        new.rules_version = Some(profile.version().to_owned());
        Ok((route, profile))
    }

    /// Behind a trusted proxy, room for the client `X-Forwarded-For` names.
    fn client_slot(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<Option<ClientSlot>, ExchangeError> {
        let Some(per_client) = &self.capacity.per_client else {
            return Ok(None);
        };
        if !is_trusted(peer.ip(), &self.config.trusted_proxies) {
            return Ok(None);
        }
        let client = forwarded_client(headers, &self.config.trusted_proxies).unwrap_or(peer.ip());
        let slot = per_client.take(client).ok_or_else(|| {
            let detail = format!(
                "this client has {} exchanges in flight, as many as one client may have",
                per_client.limit()
            );
            ExchangeError::idp(ScimError::new(429, None, detail), "client_busy")
                .with_internal(format!("client {client} behind {}", peer.ip()))
        })?;
        Ok(Some(slot))
    }

    /// The body, read within the limits and decoded, and its JSON when it is JSON that names
    /// each member once; what `new` records of it.
    async fn admit_body<B>(
        &self,
        new: &mut NewExchange,
        route: &Route,
        headers: &HeaderMap,
        body: B,
        changes: &mut Vec<Value>,
    ) -> Result<(Bytes, Option<Value>), ExchangeError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (body, decoded) = self.read_body(headers, body).await?;
        if let Some(coding) = decoded {
            changes.push(json!({"rule": "content_coding", "side": "request", "op": "removed",
                "pointer": "header:content-encoding", "before": coding, "after": null, "applied": true}));
        }
        // A body-less request (a GET, a DELETE) costs no parse.
        let parsed = (!body.is_empty()).then(|| strict_json::parse(&body));
        let json = match parsed {
            None | Some(Err(StrictJsonError::Syntax(_))) => None,
            Some(Ok(value)) => Some(value),
            Some(Err(duplicate @ StrictJsonError::Duplicate { .. })) => {
                new.request_body = redact::body(&body, &route.redaction);
                let detail = format!("the request body is ambiguous: {duplicate}");
                return Err(ExchangeError::idp(
                    ScimError::bad_request(ScimType::InvalidSyntax, detail),
                    "duplicate_member",
                ));
            }
        };
        new.request_body = redact::body_of(&body, json.as_ref(), &route.redaction).0;
        Ok((body, json))
    }

    /// The exchange slot, held by `patience`. A client that leaves while its request waits
    /// for one starts nothing.
    async fn take_exchange_slot(&self, patience: &mut Patience) -> Result<(), ExchangeError> {
        let slot = tokio::select! {
            slot = self.capacity.exchange_slot() => slot,
            () = patience.caller().wait() => {
                let detail = "the client went away while its request waited for an exchange slot; nothing was forwarded";
                return Err(ExchangeError::idp(ScimError::new(499, None, detail), "client_gone"));
            }
        };
        if let Some(slot) = slot {
            patience.hold(slot);
        }
        Ok(())
    }

    /// The route of this name.
    pub(crate) fn route_named(&self, name: Option<&str>) -> Option<&Route> {
        let name = name?;
        self.config.routes.iter().find(|r| r.name == name)
    }

    /// The route with the longest prefix that matches the path on a segment boundary.
    pub(crate) fn route_for(&self, path: &str) -> Option<&Route> {
        self.config
            .routes
            .iter()
            .filter(|r| {
                let prefix = r.path_prefix.trim_end_matches('/');
                prefix.is_empty()
                    || path == prefix
                    || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|r| r.path_prefix.trim_end_matches('/').len())
    }

    /// What is never stored of a request to `path`: its route's redaction, or — served by
    /// none — everything any route redacts.
    pub(crate) fn redaction_for(&self, path: &str) -> &Redaction {
        self.route_for(path)
            .map_or(&self.unrouted_redaction, |route| &route.redaction)
    }

    /// The routes' prefixes, for the record of a request no route serves.
    fn route_prefixes(&self) -> String {
        self.config
            .routes
            .iter()
            .map(|r| {
                if r.path_prefix.is_empty() {
                    "/".to_owned()
                } else {
                    r.path_prefix.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn label(&self, new: &mut NewExchange, route: Option<&Route>) {
        if let Some(route) = route {
            new.route = Some(route.name.clone());
            new.idp = Some(route.idp.clone());
        }
    }

    /// Room for the request's body within `max_buffered_bytes` (`buffers::declared`: the
    /// length its framing gives, else `max_body_bytes`).
    async fn reserve_request_buffers(
        &self,
        headers: &HeaderMap,
        framed: Option<u64>,
    ) -> Result<Reserved, ExchangeError> {
        self.buffers
            .reserve_request(buffers::declared(framed, headers))
            .await
            .map_err(|no_room| ExchangeError::no_room(&no_room))
    }

    /// The whole body, decoded; and the content coding it arrived in, if any.
    async fn read_body<B>(&self, headers: &HeaderMap, body: B) -> Result<(Bytes, Option<String>), ExchangeError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let limit = self.config.max_body_bytes;
        let too_large = || {
            ExchangeError::idp(
                ScimError::new(
                    413,
                    Some(ScimType::TooLarge),
                    format!("the request body is larger than {limit} bytes"),
                ),
                "too_large",
            )
        };
        let announced = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        let timeout = self.config.body_timeout;
        let read = tokio::time::timeout(timeout, async {
            let mut body = std::pin::pin!(Limited::new(body, limit));
            let mut whole = Whole::default();
            while let Some(frame) = body.frame().await {
                if let Ok(chunk) = frame?.into_data() {
                    whole.push(chunk);
                }
            }
            Ok::<_, BoxError>(whole.into_bytes())
        })
        .await;
        let body = match read {
            Ok(Ok(body)) => body,
            Ok(Err(error)) => {
                if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    return Err(too_large());
                }
                return Err(ExchangeError::idp(
                    ScimError::bad_request(ScimType::InvalidSyntax, "the request body could not be read"),
                    "bad_body",
                )
                .with_internal(crate::upstream::error_chain(error.as_ref())));
            }
            Err(_) => {
                let detail = format!(
                    "the request body did not arrive whole within {} s",
                    timeout.as_secs_f64()
                );
                return Err(ExchangeError::idp(ScimError::new(408, None, detail), "body_timeout"));
            }
        };
        let codings = content_coding::codings(headers).map_err(|error| {
            ExchangeError::idp(
                ScimError::new(415, None, format!("the request body cannot be read: {error}")),
                "unsupported_encoding",
            )
        })?;
        if codings.is_empty() {
            return Ok((body, None));
        }
        let decoded = content_coding::decode(&codings, &body, limit).map_err(|error| match error {
            DecodeError::TooLarge(_) => too_large(),
            other => ExchangeError::idp(
                ScimError::bad_request(
                    ScimType::InvalidSyntax,
                    format!("the request body cannot be read: {other}"),
                ),
                "bad_encoding",
            ),
        })?;
        let coding = headers
            .get_all(CONTENT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        Ok((Bytes::from(decoded), Some(coding)))
    }
}

/// A body as its chunks arrive: most bodies are one chunk, kept as it is.
#[derive(Default)]
struct Whole {
    first: Bytes,
    rest: Option<bytes::BytesMut>,
}

impl Whole {
    fn push(&mut self, chunk: Bytes) {
        match &mut self.rest {
            Some(rest) => rest.extend_from_slice(&chunk),
            None if self.first.is_empty() => self.first = chunk,
            None => {
                let mut rest = bytes::BytesMut::with_capacity(self.first.len() + chunk.len());
                rest.extend_from_slice(&self.first);
                rest.extend_from_slice(&chunk);
                self.rest = Some(rest);
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        self.rest.map_or(self.first, bytes::BytesMut::freeze)
    }
}

/// The IdP's token, when the route has one and the request comes from the listener; then a
/// SCIM method.
fn authorised(route: &Route, parts: &http::request::Parts, from_listener: bool) -> Result<(), ExchangeError> {
    if let (Some(token), true) = (&route.idp_token, from_listener) {
        if !bearer_matches(&parts.headers, token) {
            let detail = "the request's bearer token is missing or not the one configured for this route";
            return Err(ExchangeError::idp(ScimError::new(401, None, detail), "unauthorized"));
        }
    }
    if !SCIM_METHODS.contains(&parts.method) {
        let detail = format!(
            "{} is not a SCIM method; this route forwards GET, POST, PUT, PATCH and DELETE",
            parts.method
        );
        return Err(ExchangeError::idp(
            ScimError::new(405, None, detail),
            "method_not_allowed",
        ));
    }
    Ok(())
}

/// Whether `Authorization: Bearer <token>` (the scheme in any case: RFC 7235 §2.1) names the
/// route's token (current or next).
fn bearer_matches(headers: &HeaderMap, token: &crate::config::Secret) -> bool {
    crate::secret::bearer(headers).is_some_and(|presented| token.matches(presented.trim().as_bytes()))
}

/// `path` after the route's `prefix`, starting with `/`.
pub(crate) fn relative_path(path: &str, prefix: &str) -> String {
    let rest = path
        .get(prefix.trim_end_matches('/').len().min(path.len())..)
        .unwrap_or_default();
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path("/entra/Users/1", "/entra"), "/Users/1");
        assert_eq!(relative_path("/entra", "/entra/"), "/");
        assert_eq!(relative_path("/Users", ""), "/Users");
    }

    /// RFC 7235 §2.1: the auth-scheme is case-insensitive. (The admin listener reads its token
    /// the same way: `admin::access`'s tests.)
    #[test]
    fn the_idp_token_is_taken_whatever_the_scheme_s_case() {
        let token = crate::config::Secret::new("the-idp-token");
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            headers
        };
        for scheme in ["Bearer", "bearer", "BEARER", "beaRER"] {
            assert!(
                bearer_matches(&with(&format!("{scheme} the-idp-token")), &token),
                "{scheme}"
            );
            assert!(!bearer_matches(&with(&format!("{scheme} another")), &token), "{scheme}");
        }
        assert!(!bearer_matches(&with("Basic dGhlLWlkcC10b2tlbg=="), &token));
        assert!(!bearer_matches(&HeaderMap::new(), &token));
    }
}
