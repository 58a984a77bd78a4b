//! A webhook receiver on loopback: it records every alert POSTed to it and answers from a
//! script (`503` a few times, then `200`), so that retries can be seen.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// One alert as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// Its body, as text (to scan for secrets) and as JSON.
    pub text: String,
    /// Its body as JSON.
    pub body: Value,
    /// The status answered.
    pub answered: u16,
}

/// A running receiver.
pub struct Receiver {
    /// `http://ADDR/hook`.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("not poisoned").clone()
    }

    /// Waits until `count` alerts were accepted (answered 200), for 20 s at most.
    pub async fn accepted(&self, count: usize) -> Vec<Received> {
        let accepted = || -> Vec<Received> { self.received().into_iter().filter(|r| r.answered == 200).collect() };
        for _ in 0..200 {
            if accepted().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let accepted = accepted();
        assert!(
            accepted.len() >= count,
            "fewer than {count} alerts arrived: {:?}",
            self.received()
        );
        accepted
    }
}

/// Starts a receiver that answers `503` to the first `failures` requests, then `200`.
pub async fn start(failures: usize) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            let service = service_fn(move |request: Request<Incoming>| {
                let log = Arc::clone(&log);
                async move {
                    let authorization = request
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let bytes = request
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let mut log = log.lock().expect("not poisoned");
                    let answered = if log.len() < failures { 503 } else { 200 };
                    log.push(Received {
                        authorization,
                        body: serde_json::from_str(&text).unwrap_or(Value::Null),
                        text,
                        answered,
                    });
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = StatusCode::from_u16(answered).expect("a status");
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Receiver {
        url: format!("http://{addr}/hook"),
        received,
    }
}
