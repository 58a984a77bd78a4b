//! `scimtrail-bench-bare`: the floor of scimtrail's stack, for `bench/run`.
//!
//! A bare hyper 1 reverse proxy over the same crates scimtrail serves and forwards with
//! (hyper, hyper-util's pooled legacy client, tokio's multi-threaded runtime). What it does
//! is what any proxy written on this stack must do, and nothing more:
//!
//! - accept HTTP/1.1 on `--listen` (a loopback address), keep-alive, `TCP_NODELAY`;
//! - collect the request body whole, as scimtrail does;
//! - drop the hop-by-hop headers (RFC 9110 §7.6.1, and those `Connection` names), `Host`
//!   (the client sets it from the upstream, as nginx's `proxy_pass` does) and
//!   `Content-Length` (recomputed from the collected body);
//! - forward through one pooled `hyper_util::client::legacy::Client` (HTTP/1.1 keep-alive)
//!   to `--upstream` (`http://` on loopback only: 127.0.0.1, ::1 or localhost);
//! - collect the response body whole, as scimtrail does, and send back status, headers
//!   (the same ones dropped) and body.
//!
//! What it deliberately does not do, so that scimtrail's cost over it is scimtrail's own:
//! no recording, no parsing of bodies or paths, no IdP profile or rule, no tracing, logging or
//! metrics per request, no TLS, no HTTP/2, no timeouts, no limits, no graceful shutdown (it
//! is killed), no `X-Forwarded-*`. It uses the system allocator (scimtrail uses mimalloc). It
//! is a measuring instrument, not a proxy to deploy.
//!
//! Usage: `scimtrail-bench-bare --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT`.
//! Once bound it prints `listening on ADDRESS` on stdout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, CONNECTION, CONTENT_LENGTH, HOST};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const USAGE: &str = "usage: scimtrail-bench-bare --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT";

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1): the same list
/// scimtrail drops.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What every connection forwards with.
struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    /// The upstream's `host:port`.
    upstream: Authority,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("scimtrail-bench-bare: {message}");
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    let Some((listen, upstream)) = arguments(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let forwarder = Arc::new(Forwarder {
        client: Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector),
        upstream,
    });
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    println!("listening on {bound}");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: let the connections in hand finish.
                eprintln!("scimtrail-bench-bare: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Latency counts here: scimtrail and the reference application both set it.
        let _ = stream.set_nodelay(true);
        let forwarder = Arc::clone(&forwarder);
        tokio::spawn(async move {
            let service = service_fn(move |request| forward(Arc::clone(&forwarder), request));
            // A load generator ends its connections abruptly, by design: nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `--listen` and `--upstream`, checked; `None` when help was asked for.
fn arguments(mut args: impl Iterator<Item = String>) -> Result<Option<(SocketAddr, Authority)>, String> {
    let (mut listen, mut upstream) = (None, None);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" | "--upstream" => {
                let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                if flag == "--listen" {
                    listen = Some(value);
                } else {
                    upstream = Some(value);
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    let listen: SocketAddr = listen
        .parse()
        .map_err(|e| format!("--listen {listen:?}: {e} (an IP address and a port)"))?;
    if !listen.ip().is_loopback() {
        return Err(format!("--listen {listen}: loopback only"));
    }
    let upstream = upstream_authority(&upstream.ok_or("--upstream is required")?)?;
    Ok(Some((listen, upstream)))
}

/// The upstream's authority, from `http://HOST:PORT` with HOST on loopback and no path.
fn upstream_authority(url: &str) -> Result<Authority, String> {
    let uri: Uri = url.parse().map_err(|e| format!("--upstream {url:?}: {e}"))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(format!("--upstream {url:?}: http:// only"));
    }
    let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    if path != "/" {
        return Err(format!("--upstream {url:?}: no path (requests keep theirs)"));
    }
    let authority = uri.authority().ok_or_else(|| format!("--upstream {url:?}: no host"))?;
    let host = authority.host();
    if !(host == "127.0.0.1" || host == "[::1]" || host.eq_ignore_ascii_case("localhost")) {
        return Err(format!(
            "--upstream {url:?}: loopback only (127.0.0.1, ::1 or localhost), not {host}"
        ));
    }
    Ok(authority.clone())
}

/// One exchange: the request collected and forwarded, the response collected and returned;
/// 502 when the request's body cannot be read or the upstream cannot be reached.
async fn forward(forwarder: Arc<Forwarder>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(bad_gateway(format!("reading the request body: {e}"))),
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(forwarder.upstream.clone());
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    parts.uri = match Uri::from_parts(uri) {
        Ok(uri) => uri,
        Err(e) => return Ok(bad_gateway(format!("the request's target: {e}"))),
    };
    parts.version = Version::HTTP_11;
    drop_hop_by_hop(&mut parts.headers);
    parts.headers.remove(HOST);
    let response = match forwarder
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(response) => response,
        Err(e) => return Ok(bad_gateway(format!("forwarding: {e}"))),
    };
    let (mut parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(bad_gateway(format!("reading the response body: {e}"))),
    };
    drop_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Removes the headers of one connection: the hop-by-hop ones, those the `Connection` header
/// names, and `Content-Length` (hyper writes it again from the collected body).
fn drop_hop_by_hop(headers: &mut HeaderMap) {
    // Empty, and so allocation-free, unless `Connection` names headers.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(CONTENT_LENGTH);
}

fn bad_gateway(message: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("scimtrail-bench-bare: {message}\n"))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn upstream_is_loopback_http_without_a_path() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://[::1]:9",
            "http://LocalHost:1",
        ] {
            assert!(upstream_authority(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1:8080",
            "http://example.org:80",
            "https://127.0.0.1:8443",
            "http://127.0.0.1:8080/scim",
            "127.0.0.1:8080",
        ] {
            assert!(upstream_authority(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn listen_is_loopback() {
        let args = |listen: &str| {
            ["--listen", listen, "--upstream", "http://127.0.0.1:1"]
                .map(String::from)
                .into_iter()
        };
        assert!(arguments(args("127.0.0.1:0")).unwrap().is_some());
        assert!(arguments(args("0.0.0.0:0")).is_err());
        assert!(arguments(["--help".to_owned()].into_iter()).unwrap().is_none());
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("12"));
        headers.insert("content-type", HeaderValue::from_static("application/scim+json"));
        headers.append("etag", HeaderValue::from_static("W/\"1\""));
        drop_hop_by_hop(&mut headers);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "etag"]);
    }
}
