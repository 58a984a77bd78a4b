//! Applications that misbehave at the SCIM level: an HTTP front that forwards to a reference
//! application and bends its answers in one chosen way.

use crate::Client;
use bytes::Bytes;
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How the front bends the application's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A create answers 201 with an empty body and only a `Location` header.
    EmptyCreateBody,
    /// `active` is silently left out of every user write: a leaver stays active, and the
    /// answer is 200 with the unchanged user.
    IgnoreActive,
    /// `title` is silently dropped from every write and every answer.
    DropTitle,
    /// A filtered search answers the whole list, filter ignored.
    IgnoreFilters,
    /// Errors come back as an HTML page.
    HtmlErrors,
    /// Like `IgnoreActive`, but a PATCH is answered 204 with no body: only reading the user
    /// back shows it still active.
    IgnoreActiveQuietly,
    /// A DELETE is answered 204 and nothing is deleted.
    IgnoreDelete,
    /// Like `EmptyCreateBody`, with a `Location` whose authority carries the front's address
    /// as user information before this one: `http://FRONT@THIS/Users/{id}`, a URL that names
    /// another host than it seems to.
    EmptyCreateBodyLocatedAt(SocketAddr),
    /// Every answer with a body is gzip-encoded, whatever the client asked.
    GzipAnswers,
    /// A body sent as `application/scim+json` is refused 415: only `application/json` is
    /// taken (an application built on a plain JSON framework).
    JsonOnly,
    /// PATCH is refused 405: only PUT changes a resource.
    NoPatch,
}

/// Starts the front on `127.0.0.1:0` before the application at `app`; returns its address.
pub async fn start(app: String, misbehaviour: Misbehaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Arc::new(Client::new(app));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let app = Arc::clone(&app);
                    async move { Ok::<_, Infallible>(answer(&app, request, addr, misbehaviour).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn answer(
    app: &Client,
    request: http::Request<Incoming>,
    front: SocketAddr,
    misbehaviour: Misbehaviour,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    if let Some(refusal) = refused(&parts, misbehaviour) {
        return refusal;
    }
    let mut bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let mut path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) {
        let dropped = match misbehaviour {
            Misbehaviour::IgnoreActive | Misbehaviour::IgnoreActiveQuietly => Some("active"),
            Misbehaviour::DropTitle => Some("title"),
            _ => None,
        };
        if let Some(name) = dropped {
            drop_attribute(&mut json, name);
            bytes = Bytes::from(json.to_string());
        }
    }
    if misbehaviour == Misbehaviour::IgnoreFilters && parts.method == Method::GET {
        if let Some((base, _)) = path.split_once('?') {
            path = base.to_owned();
        }
    }
    if misbehaviour == Misbehaviour::IgnoreDelete && parts.method == Method::DELETE {
        let mut done = Response::new(Full::new(Bytes::new()));
        *done.status_mut() = http::StatusCode::NO_CONTENT;
        return done;
    }
    let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok());
    // A PATCH left with no operation is "applied" by answering the resource unchanged.
    let emptied = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|json| json.get("Operations").and_then(Value::as_array).map(Vec::is_empty))
        .unwrap_or(false);
    let answered = if emptied {
        app.send_raw(Method::GET, &path, Bytes::new(), None, &[]).await
    } else {
        app.send_raw(parts.method.clone(), &path, bytes, content_type, &[])
            .await
    };
    if misbehaviour == Misbehaviour::IgnoreActiveQuietly
        && parts.method == Method::PATCH
        && answered.status.is_success()
    {
        let mut quiet = Response::new(Full::new(Bytes::new()));
        *quiet.status_mut() = http::StatusCode::NO_CONTENT;
        return quiet;
    }
    let mut returned_bytes = answered.bytes.clone();
    if misbehaviour == Misbehaviour::DropTitle {
        let mut json = answered.body.clone();
        drop_attribute(&mut json, "title");
        returned_bytes = Bytes::from(json.to_string());
    }
    if misbehaviour == Misbehaviour::HtmlErrors && answered.status.as_u16() >= 400 {
        let mut page = Response::new(Full::new(Bytes::from_static(
            b"<html><body><h1>Error</h1></body></html>",
        )));
        *page.status_mut() = answered.status;
        page.headers_mut()
            .insert("content-type", http::HeaderValue::from_static("text/html"));
        return page;
    }
    let mut response = Response::new(Full::new(returned_bytes));
    *response.status_mut() = answered.status;
    *response.headers_mut() = answered.headers.clone();
    response.headers_mut().remove("content-length");
    let located_at = match misbehaviour {
        Misbehaviour::EmptyCreateBody => Some(front.to_string()),
        Misbehaviour::EmptyCreateBodyLocatedAt(elsewhere) => Some(format!("{front}@{elsewhere}")),
        _ => None,
    };
    if misbehaviour == Misbehaviour::GzipAnswers && !answered.bytes.is_empty() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&answered.bytes).expect("gzip into memory");
        let (mut parts, _) = response.into_parts();
        parts
            .headers
            .insert("content-encoding", http::HeaderValue::from_static("gzip"));
        return Response::from_parts(parts, Full::new(Bytes::from(encoder.finish().expect("gzip"))));
    }
    if let (Some(authority), true) = (located_at, parts.method == Method::POST && answered.status.is_success()) {
        let id = answered.body["id"].as_str().unwrap_or_default();
        let location = format!("http://{authority}{path}/{id}");
        let mut empty = Response::new(Full::new(Bytes::new()));
        *empty.status_mut() = answered.status;
        empty
            .headers_mut()
            .insert("location", location.parse().expect("a header value"));
        return empty;
    }
    response
}

/// What `JsonOnly` and `NoPatch` refuse, as a SCIM error.
fn refused(parts: &http::request::Parts, misbehaviour: Misbehaviour) -> Option<Response<Full<Bytes>>> {
    let scim_json = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/scim+json"));
    let (status, detail) = match misbehaviour {
        Misbehaviour::JsonOnly if scim_json => (415, "only application/json is supported"),
        Misbehaviour::NoPatch if parts.method == Method::PATCH => (405, "PATCH is not supported"),
        _ => return None,
    };
    let body = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.to_string(),
        "detail": detail
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("a status");
    response
        .headers_mut()
        .insert("content-type", http::HeaderValue::from_static("application/json"));
    Some(response)
}

/// Removes an attribute from a resource, a list's resources, PATCH operations (by path or
/// inside a path-less value) and bulk data.
fn drop_attribute(value: &mut Value, name: &str) {
    match value {
        Value::Object(object) => {
            object.retain(|key, _| !key.eq_ignore_ascii_case(name));
            if let Some(Value::Array(operations)) = object.get_mut("Operations") {
                operations.retain(|op| {
                    !op.get("path")
                        .and_then(Value::as_str)
                        .is_some_and(|p| p.eq_ignore_ascii_case(name))
                });
            }
            for inner in object.values_mut() {
                drop_attribute(inner, name);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| drop_attribute(item, name)),
        _ => {}
    }
}
