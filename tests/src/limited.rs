//! An application with a rate limit, as SaaS applications have one: a front before a reference
//! application that answers 429 when it is asked more than it takes, and keeps the time each
//! request arrived (its head read), so that a test can look at the traffic as the application
//! saw it.

use crate::Client;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What the front takes.
#[derive(Debug, Clone)]
pub enum Limit {
    /// No more than this many requests in any one second (the last second before each
    /// arrival, that one included): the rest are answered 429 with `Retry-After: 1`. Every
    /// request it receives counts, those it refuses too, as such limiters count.
    PerSecond(usize),
    /// Its first request is answered 429 with this `Retry-After` (none: without one); every
    /// other is passed on.
    RefuseFirst(Option<String>),
}

/// A running front.
#[derive(Clone)]
pub struct Limited {
    /// Where it listens.
    pub addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<(Instant, String)>>>,
    refused: Arc<AtomicUsize>,
}

impl Limited {
    /// Its base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// When each request arrived, and its method and path, in arrival order.
    pub fn arrivals(&self) -> Vec<(Instant, String)> {
        self.arrivals.lock().expect("the log").clone()
    }

    /// How many requests it answered 429.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// The most requests that arrived within any one second.
    pub fn busiest_second(&self) -> usize {
        let times: Vec<Instant> = self.arrivals().into_iter().map(|(at, _)| at).collect();
        times
            .iter()
            .map(|at| {
                times
                    .iter()
                    .filter(|other| **other <= *at && *at - **other < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

/// Starts a front on `127.0.0.1:0` before the application at `app`.
pub async fn start(app: String, limit: Limit) -> Limited {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let limited = Limited {
        addr: listener.local_addr().expect("addr"),
        arrivals: Arc::default(),
        refused: Arc::default(),
    };
    let front = limited.clone();
    let app = Arc::new(Client::new(app));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (app, front, limit) = (Arc::clone(&app), front.clone(), limit.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (app, front, limit) = (Arc::clone(&app), front.clone(), limit.clone());
                    async move { Ok::<_, Infallible>(front.answer(&app, &limit, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    limited
}

impl Limited {
    async fn answer(
        &self,
        app: &Client,
        limit: &Limit,
        request: http::Request<hyper::body::Incoming>,
    ) -> Response<Full<Bytes>> {
        let arrived = Instant::now();
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let (refuse, retry_after) = {
            let mut arrivals = self.arrivals.lock().expect("the log");
            arrivals.push((arrived, format!("{} {target}", request.method())));
            match limit {
                Limit::PerSecond(most) => {
                    let within = arrivals
                        .iter()
                        .filter(|(at, _)| arrived - *at < Duration::from_secs(1))
                        .count();
                    (within > *most, Some("1".to_owned()))
                }
                Limit::RefuseFirst(retry_after) => (arrivals.len() == 1, retry_after.clone()),
            }
        };
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        if refuse {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let error = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "429",
                "detail": "too many requests",
            });
            let mut response = Response::new(Full::new(Bytes::from(error.to_string())));
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/scim+json"));
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_str(&value).expect("a header value"));
            }
            return response;
        }
        let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok());
        let answered = app
            .send_raw(parts.method.clone(), &target, body, content_type, &[])
            .await;
        let mut response = Response::new(Full::new(answered.bytes));
        *response.status_mut() = answered.status;
        *response.headers_mut() = answered.headers;
        response.headers_mut().remove("content-length");
        response
    }
}
