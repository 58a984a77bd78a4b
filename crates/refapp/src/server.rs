//! The HTTP face of the reference application: hyper 1 (HTTP/1.1 and HTTP/2), routing,
//! content types, ETags, body limits, and a SCIM error body for every failure.

use crate::directory::{weak_eq, BaseUrl, Directory, Precondition};
use crate::{discovery, MAX_BULK_OPERATIONS, MAX_PAYLOAD_BYTES};
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, ETAG, HOST, IF_MATCH, IF_NONE_MATCH, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use scimtrail_scim::message::{bulk_response, BulkRequest, ListQuery};
use scimtrail_scim::resource::Projection;
use scimtrail_scim::schema::{ResourceType, GROUP_TYPE, USER_TYPE};
use scimtrail_scim::{ScimError, ScimType};
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The SCIM media type (RFC 7644 §8.1).
pub const SCIM_MEDIA_TYPE: &str = "application/scim+json";

/// The reference application: a [`Directory`] behind a lock.
#[derive(Debug, Default)]
pub struct RefApp {
    directory: Mutex<Directory>,
}

/// A reference application serving on a socket.
#[derive(Debug)]
pub struct RunningRefApp {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningRefApp {
    /// `http://ADDR`, the service root.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish (5 s at most), and returns.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl RefApp {
    /// An empty application.
    pub fn new() -> Arc<RefApp> {
        Arc::new(RefApp::default())
    }

    /// Binds `addr` (port 0 picks a free port) and serves until shut down.
    pub async fn bind(addr: &str) -> std::io::Result<RunningRefApp> {
        let listener = TcpListener::bind(addr).await?;
        Ok(RefApp::new().serve(listener))
    }

    /// Serves on a bound listener.
    pub fn serve(self: Arc<Self>, listener: TcpListener) -> RunningRefApp {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (shutdown_tx, mut shutdown_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let graceful = GracefulShutdown::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let stream = match accepted {
                            Ok((stream, _)) => stream,
                            Err(error) => {
                                tracing::warn!(%error, "Accepting a connection failed.");
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        };
                        let _ = stream.set_nodelay(true);
                        let connection = builder
                            .serve_connection(TokioIo::new(stream), Arc::clone(&self).service(local))
                            .into_owned();
                        let connection = graceful.watch(connection);
                        tokio::spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(%error, "Connection ended with an error.");
                            }
                        });
                    }
                    _ = &mut shutdown_rx => break,
                }
            }
            drop(listener);
            let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
        });
        RunningRefApp {
            addr: local,
            shutdown: Some(shutdown_tx),
            task,
        }
    }

    /// Serves one connection (an in-process pipe, say) in a task of its own, as a listener's
    /// connections are served.
    pub fn serve_connection<IO>(self: &Arc<Self>, io: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = Arc::clone(self).service(SocketAddr::from(([127, 0, 0, 1], 0)));
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder.serve_connection(TokioIo::new(io), service).await {
                tracing::debug!(%error, "Connection ended with an error.");
            }
        });
    }

    /// The service of one connection to `local`.
    fn service(
        self: Arc<Self>,
        local: SocketAddr,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
    > + Clone {
        service_fn(move |request| {
            let app = Arc::clone(&self);
            async move { Ok::<_, Infallible>(app.handle(request, local).await) }
        })
    }

    fn directory(&self) -> std::sync::MutexGuard<'_, Directory> {
        // A panic cannot leave the directory half-updated: operations build the new state
        // first and insert it last, so a poisoned lock is still consistent.
        self.directory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn handle(&self, request: Request<Incoming>, local: SocketAddr) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let base = base_url(&parts, local);
        let response = match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
            Ok(collected) => self
                .route(&parts, &collected.to_bytes(), &base)
                .unwrap_or_else(error_response),
            Err(error) if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                error_response(ScimError::new(
                    413,
                    Some(ScimType::TooLarge),
                    format!("the request body is larger than {MAX_PAYLOAD_BYTES} bytes"),
                ))
            }
            Err(error) => error_response(ScimError::bad_request(
                ScimType::InvalidSyntax,
                format!("the request body could not be read: {error}"),
            )),
        };
        tracing::debug!(method = %parts.method, uri = %parts.uri, status = response.status().as_u16(), "Request served.");
        response
    }

    fn route(
        &self,
        parts: &http::request::Parts,
        body: &Bytes,
        base: &BaseUrl,
    ) -> Result<Response<Full<Bytes>>, ScimError> {
        let path = parts.uri.path();
        let segments: Vec<String> = path.trim_start_matches('/').split('/').map(percent_decode).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = &parts.method;
        let params: Vec<(String, String)> = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        let param_pairs = || params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        match segments.as_slice() {
            [endpoint] if resource_type(endpoint).is_some() => {
                let rt = resource_type(endpoint).ok_or_else(not_found_path(path))?;
                match *method {
                    Method::GET => {
                        let query = ListQuery::from_params(param_pairs())?;
                        let list = self.directory().search(&[rt], &query, base)?;
                        Ok(json_response(StatusCode::OK, &list.to_json()))
                    }
                    Method::POST => {
                        let body = json_body(parts, body)?;
                        let projection = projection(&params, rt)?;
                        let mut directory = self.directory();
                        let created = directory.create(rt, &body)?;
                        let rendered = directory.render(rt, &created, base, &projection);
                        Ok(resource_response(StatusCode::CREATED, &rendered, &created))
                    }
                    _ => Err(method_not_allowed(method, "GET, POST")),
                }
            }
            [endpoint, ".search"] if resource_type(endpoint).is_some() => {
                let rt = resource_type(endpoint).ok_or_else(not_found_path(path))?;
                self.search_request(parts, method, body, &[rt], base)
            }
            [".search"] => self.search_request(parts, method, body, &[&USER_TYPE, &GROUP_TYPE], base),
            [endpoint, id] if resource_type(endpoint).is_some() => {
                let rt = resource_type(endpoint).ok_or_else(not_found_path(path))?;
                self.resource(parts, method, body, rt, id, &params, base)
            }
            ["Bulk"] => {
                if *method != Method::POST {
                    return Err(method_not_allowed(method, "POST"));
                }
                let body = json_body(parts, body)?;
                let request = BulkRequest::from_json(&body)?;
                if request.operations.len() > MAX_BULK_OPERATIONS {
                    return Err(ScimError::new(
                        413,
                        Some(ScimType::TooLarge),
                        format!(
                            "{} operations exceed maxOperations ({MAX_BULK_OPERATIONS})",
                            request.operations.len()
                        ),
                    ));
                }
                let results = self.directory().bulk(&request, base);
                Ok(json_response(StatusCode::OK, &bulk_response(&results)))
            }
            ["ServiceProviderConfig"] => read_only(method, || Some(discovery::service_provider_config(base)), path),
            ["Schemas"] => read_only(method, || Some(discovery::schemas(base)), path),
            ["Schemas", id] => read_only(method, || discovery::schema(id, base), path),
            ["ResourceTypes"] => read_only(method, || Some(discovery::resource_types(base)), path),
            ["ResourceTypes", name] => read_only(method, || discovery::resource_type(name, base), path),
            ["Me", ..] => Err(ScimError::new(
                501,
                None,
                "/Me is not implemented by this service (RFC 7644 §3.11)",
            )),
            _ => Err(not_found_path(path)()),
        }
    }

    fn search_request(
        &self,
        parts: &http::request::Parts,
        method: &Method,
        body: &Bytes,
        types: &[&'static ResourceType],
        base: &BaseUrl,
    ) -> Result<Response<Full<Bytes>>, ScimError> {
        if *method != Method::POST {
            return Err(method_not_allowed(method, "POST"));
        }
        let query = ListQuery::from_search_request(&json_body(parts, body)?)?;
        let list = self.directory().search(types, &query, base)?;
        Ok(json_response(StatusCode::OK, &list.to_json()))
    }

    #[allow(clippy::too_many_arguments)]
    fn resource(
        &self,
        parts: &http::request::Parts,
        method: &Method,
        body: &Bytes,
        rt: &'static ResourceType,
        id: &str,
        params: &[(String, String)],
        base: &BaseUrl,
    ) -> Result<Response<Full<Bytes>>, ScimError> {
        let precondition = Precondition::if_match(header(parts, IF_MATCH));
        let projection = projection(params, rt)?;
        match *method {
            Method::GET => {
                let directory = self.directory();
                let stored = directory.get(rt, id)?;
                let version = stored
                    .get("meta")
                    .and_then(|m| m.get("version"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Some(tags) = header(parts, IF_NONE_MATCH) {
                    if tags.split(',').any(|t| t.trim() == "*" || weak_eq(t.trim(), version)) {
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::NOT_MODIFIED;
                        if let Ok(etag) = HeaderValue::from_str(version) {
                            response.headers_mut().insert(ETAG, etag);
                        }
                        return Ok(response);
                    }
                }
                let rendered = directory.render(rt, stored, base, &projection);
                Ok(resource_response(StatusCode::OK, &rendered, stored))
            }
            Method::PUT | Method::PATCH => {
                let body = json_body(parts, body)?;
                let mut directory = self.directory();
                let updated = if *method == Method::PUT {
                    directory.replace(rt, id, &body, &precondition)?
                } else {
                    directory.patch(rt, id, &body, &precondition)?
                };
                let rendered = directory.render(rt, &updated, base, &projection);
                Ok(resource_response(StatusCode::OK, &rendered, &updated))
            }
            Method::DELETE => {
                self.directory().delete(rt, id, &precondition)?;
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(response)
            }
            _ => Err(method_not_allowed(method, "GET, PUT, PATCH, DELETE")),
        }
    }
}

fn resource_type(endpoint: &str) -> Option<&'static ResourceType> {
    ResourceType::by_endpoint(&format!("/{endpoint}"))
}

fn projection(params: &[(String, String)], rt: &'static ResourceType) -> Result<Projection, ScimError> {
    let find = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    Projection::parse(find("attributes"), find("excludedAttributes"), &[rt])
}

fn read_only(
    method: &Method,
    body: impl FnOnce() -> Option<Value>,
    path: &str,
) -> Result<Response<Full<Bytes>>, ScimError> {
    if *method != Method::GET {
        return Err(method_not_allowed(method, "GET"));
    }
    body()
        .map(|b| json_response(StatusCode::OK, &b))
        .ok_or_else(not_found_path(path))
}

fn not_found_path(path: &str) -> impl FnOnce() -> ScimError + '_ {
    move || ScimError::not_found(format!("no SCIM endpoint or resource at \"{path}\""))
}

fn method_not_allowed(method: &Method, allowed: &str) -> ScimError {
    ScimError::new(405, None, format!("{method} is not allowed here; allowed: {allowed}"))
}

fn header(parts: &http::request::Parts, name: http::header::HeaderName) -> Option<&str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The body of a POST, PUT or PATCH: `application/scim+json` or `application/json`
/// (RFC 7644 §3.1, §8.1), valid JSON.
fn json_body(parts: &http::request::Parts, body: &Bytes) -> Result<Value, ScimError> {
    let media_type =
        header(parts, CONTENT_TYPE).map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some(SCIM_MEDIA_TYPE | "application/json") => {}
        Some(other) => {
            return Err(ScimError::new(
                415,
                None,
                format!("Content-Type \"{other}\" is not accepted; send {SCIM_MEDIA_TYPE}"),
            ))
        }
        None => {
            return Err(ScimError::new(
                415,
                None,
                format!("the request has a body but no Content-Type; send {SCIM_MEDIA_TYPE}"),
            ))
        }
    }
    serde_json::from_slice(body).map_err(|error| {
        ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("the request body is not valid JSON: {error}"),
        )
    })
}

fn base_url(parts: &http::request::Parts, local: SocketAddr) -> BaseUrl {
    let host = header(parts, HOST)
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| local.to_string());
    BaseUrl(format!("http://{host}"))
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[index],
            bytes.get(index + 1).copied().and_then(hex),
            bytes.get(index + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(SCIM_MEDIA_TYPE));
    response
}

fn resource_response(status: StatusCode, rendered: &Value, stored: &Map<String, Value>) -> Response<Full<Bytes>> {
    let mut response = json_response(status, rendered);
    let meta = stored.get("meta");
    if let Some(etag) = meta
        .and_then(|m| m.get("version"))
        .and_then(Value::as_str)
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response.headers_mut().insert(ETAG, etag);
    }
    if status == StatusCode::CREATED {
        if let Some(location) = rendered
            .pointer("/meta/location")
            .and_then(Value::as_str)
            .and_then(|l| HeaderValue::from_str(l).ok())
        {
            response.headers_mut().insert(LOCATION, location);
        }
    }
    response
}

fn error_response(error: ScimError) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &error.to_json());
    if status == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(allowed) = error
            .detail
            .split("allowed: ")
            .nth(1)
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            response.headers_mut().insert(ALLOW, allowed);
        }
    }
    response
}
