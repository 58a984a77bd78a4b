//! Applications that misbehave at the SCIM level: an HTTP front that forwards to a reference
//! application and bends its answers in one chosen way.

use crate::Client;
use bytes::Bytes;
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How the front bends the application's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A create answers 201 with an empty body and only a `Location` header.
    EmptyCreateBody,
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
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok());
    let answered = app
        .send_raw(parts.method.clone(), &path, bytes, content_type, &[])
        .await;
    let mut response = Response::new(Full::new(answered.bytes.clone()));
    *response.status_mut() = answered.status;
    *response.headers_mut() = answered.headers.clone();
    if misbehaviour == Misbehaviour::EmptyCreateBody && parts.method == Method::POST && answered.status.is_success() {
        let id = answered.body["id"].as_str().unwrap_or_default();
        let location = format!("http://{front}{path}/{id}");
        let mut empty = Response::new(Full::new(Bytes::new()));
        *empty.status_mut() = answered.status;
        empty
            .headers_mut()
            .insert("location", location.parse().expect("a header value"));
        return empty;
    }
    response
}
