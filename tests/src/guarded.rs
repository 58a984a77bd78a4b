//! An application's front that asks of scimtrail what production applications ask: a client
//! certificate from a private CA (mutual TLS, served under that CA's certificate), or an OAuth
//! 2.0 access token from the token endpoint it also serves. What passes goes on to the
//! application behind, unchanged.

use crate::Client;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The private CA's fixtures (`tests/fixtures/tls/private-ca`).
pub fn private_ca(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/private-ca")).join(name)
}

/// What the front asks for.
#[derive(Debug, Clone)]
pub enum Guard {
    /// TLS with a client certificate the private CA signed.
    ClientCertificate,
    /// `Authorization: Bearer <token>` with a token `POST /token` issued to this client (HTTP
    /// Basic), valid for `lifetime`.
    OAuth {
        /// The client id it knows.
        client_id: String,
        /// That client's secret.
        client_secret: String,
        /// How long a token is valid.
        lifetime: Duration,
    },
}

/// A running front.
pub struct Guarded {
    /// Its base URL (`https://127.0.0.1:PORT` or `http://…`).
    pub base_url: String,
    /// Its token endpoint (OAuth).
    pub token_url: String,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Tokens issued, with when they expire.
    issued: Mutex<Vec<(String, Instant)>>,
    token_requests: AtomicUsize,
    /// The `Authorization` each request to the application carried.
    presented: Mutex<Vec<Option<String>>>,
    /// Requests refused for want of a valid token.
    refused: AtomicUsize,
}

impl Guarded {
    /// Token requests the endpoint answered, good or not.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::Relaxed)
    }

    /// The tokens issued, in order.
    pub fn issued(&self) -> Vec<String> {
        self.state
            .issued
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The `Authorization` of every request to the application, in order.
    pub fn presented(&self) -> Vec<Option<String>> {
        self.state.presented.lock().expect("not poisoned").clone()
    }

    /// Requests refused 401.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::Relaxed)
    }
}

/// Starts the front on `127.0.0.1:0` before the application at `app`.
pub async fn start(app: String, guard: Guard) -> Guarded {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(State::default());
    let app = Arc::new(Client::new(app));
    let tls = matches!(guard, Guard::ClientCertificate).then(mutual_tls);
    let base_url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
    let guard = Arc::new(guard);
    let served = Arc::clone(&state);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (app, guard, state, tls) = (Arc::clone(&app), Arc::clone(&guard), Arc::clone(&served), tls.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let (app, guard, state) = (Arc::clone(&app), Arc::clone(&guard), Arc::clone(&state));
                    async move { Ok::<_, Infallible>(answer(&app, &guard, &state, request).await) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    // A client without a certificate fails the handshake: nothing is served.
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    Guarded {
        token_url: format!("{base_url}/token"),
        base_url,
        state,
    }
}

/// A TLS acceptor under `server-a`, asking every client for a certificate the CA signed.
fn mutual_tls() -> tokio_rustls::TlsAcceptor {
    let read = |name: &str| std::fs::read(private_ca(name)).expect("a fixture");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut read("ca.crt").as_slice()) {
        roots.add(cert.expect("the CA")).expect("the CA is a root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .build()
        .expect("a client verifier");
    let certs = rustls_pemfile::certs(&mut read("server-a.crt").as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = rustls_pemfile::private_key(&mut read("server-a.key").as_slice())
        .expect("a key")
        .expect("a key");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .expect("a server certificate");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn answer(app: &Client, guard: &Guard, state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Guard::OAuth {
        client_id,
        client_secret,
        lifetime,
    } = guard
    {
        if parts.uri.path() == "/token" {
            return token(
                state,
                &parts,
                &bytes,
                authorization.as_deref(),
                client_id,
                client_secret,
                *lifetime,
            );
        }
        state
            .presented
            .lock()
            .expect("not poisoned")
            .push(authorization.clone());
        let now = Instant::now();
        let valid = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| {
                state
                    .issued
                    .lock()
                    .expect("not poisoned")
                    .iter()
                    .any(|(i, until)| i == t && now < *until)
            });
        if !valid {
            state.refused.fetch_add(1, Ordering::Relaxed);
            return plain(StatusCode::UNAUTHORIZED, "{\"detail\":\"invalid token\"}");
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok());
    let answered = app
        .send_raw(parts.method.clone(), &path, bytes, content_type, &[])
        .await;
    let mut response = Response::new(Full::new(answered.bytes.clone()));
    *response.status_mut() = answered.status;
    *response.headers_mut() = answered.headers.clone();
    response.headers_mut().remove("content-length");
    response
}

/// `POST /token`: client credentials checked, a new token issued.
fn token(
    state: &State,
    parts: &http::request::Parts,
    body: &[u8],
    authorization: Option<&str>,
    client_id: &str,
    client_secret: &str,
    lifetime: Duration,
) -> Response<Full<Bytes>> {
    state.token_requests.fetch_add(1, Ordering::Relaxed);
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let expected = format!("Basic {}", basic(client_id, client_secret));
    let granted = parts.method == Method::POST
        && form.iter().any(|(k, v)| k == "grant_type" && v == "client_credentials")
        && authorization == Some(expected.as_str());
    if !granted {
        return plain(StatusCode::UNAUTHORIZED, "{\"error\":\"invalid_client\"}");
    }
    let mut issued = state.issued.lock().expect("not poisoned");
    let token = format!("tok{}x{}", issued.len() + 1, uuid::Uuid::new_v4().simple());
    issued.push((token.clone(), Instant::now() + lifetime));
    let answer = serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime.as_secs()});
    plain(StatusCode::OK, &answer.to_string())
}

fn basic(id: &str, secret: &str) -> String {
    use std::fmt::Write;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{id}:{secret}");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let _ = out.write_char(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", http::HeaderValue::from_static("application/json"));
    response
}
