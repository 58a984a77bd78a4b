//! An application's front that remembers every request it receives before passing it on
//! unchanged: what the proxy actually sent, headers and all. With no application behind it,
//! it answers every request 404 (a server an attacker would like the proxy to reach).

use crate::Client;
use bytes::Bytes;
use http::{HeaderMap, Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// One request as the front received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub target: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// A running front.
#[derive(Clone)]
pub struct Spy {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Spy {
    /// Its base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the log").clone()
    }

    /// The requests so far with this method.
    pub fn seen_with(&self, method: Method) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.method == method).collect()
    }
}

/// Starts a front before the application at `app` (`None`: nothing behind it).
pub async fn start(app: Option<String>) -> Spy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let app = app.map(|base| Arc::new(Client::new(base)));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (app, log) = (app.clone(), Arc::clone(&log));
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (app, log) = (app.clone(), Arc::clone(&log));
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
                        log.lock().expect("the log").push(Seen {
                            method: parts.method.clone(),
                            target: target.clone(),
                            headers: parts.headers.clone(),
                            body: body.clone(),
                        });
                        let Some(app) = app else {
                            let mut nothing = Response::new(Full::new(Bytes::new()));
                            *nothing.status_mut() = http::StatusCode::NOT_FOUND;
                            return Ok::<_, Infallible>(nothing);
                        };
                        let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok());
                        let mut headers: Vec<(&str, &str)> = Vec::new();
                        if let Some(value) = parts.headers.get("if-match").and_then(|v| v.to_str().ok()) {
                            headers.push(("if-match", value));
                        }
                        let answered = app
                            .send_raw(parts.method.clone(), &target, body, content_type, &headers)
                            .await;
                        let mut response = Response::new(Full::new(answered.bytes));
                        *response.status_mut() = answered.status;
                        *response.headers_mut() = answered.headers;
                        response.headers_mut().remove("content-length");
                        Ok(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Spy { addr, seen }
}
