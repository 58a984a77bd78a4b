//! A small SCIM-over-HTTP client for tests.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A client bound to one service root (`http://127.0.0.1:PORT`).
#[derive(Clone)]
pub struct Client {
    base: String,
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

/// A response with its body read and, when it is JSON, parsed.
#[derive(Debug)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub bytes: Bytes,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl TestResponse {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    /// A client for `base`.
    pub fn new(base: impl Into<String>) -> Client {
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        Client {
            base: base.into(),
            inner,
        }
    }

    /// Sends a request with an optional JSON body (`application/scim+json`) and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let bytes = body
            .map(|b| Bytes::from(serde_json::to_vec(b).expect("serialise")))
            .unwrap_or_default();
        let content_type = body.map(|_| "application/scim+json");
        self.send_raw(method, path, bytes, content_type, headers).await
    }

    /// Sends a request and reports a transport failure instead of failing the test (for
    /// load against a server that is about to be killed).
    pub async fn try_send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<TestResponse, String> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut builder = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if body.is_some() {
            builder = builder.header("content-type", "application/scim+json");
        }
        let request = builder.body(Full::new(bytes)).map_err(|e| e.to_string())?;
        let response = self.inner.request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(TestResponse {
            status: parts.status,
            headers: parts.headers,
            bytes,
            body,
        })
    }

    /// Sends raw bytes with the given content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body)).expect("request");
        let response = self.inner.request(request).await.expect("the server answers");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            bytes,
            body,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, None, &[]).await
    }

    /// POST a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    /// PUT a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> TestResponse {
        self.send(Method::PUT, path, Some(body), &[]).await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> TestResponse {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, path, None, &[]).await
    }
}
