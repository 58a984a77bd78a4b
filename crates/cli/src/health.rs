//! `scimtrail health`: the container's `HEALTHCHECK`, which has no curl in its image.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use scimtrail_app::Environment;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A health check can hang only this long: a container runtime's check has its own timeout,
/// but a wedged listener must still fail the check rather than pile checks up.
const DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The admin listener (default: $SCIMTRAIL_ADMIN_LISTEN, else 127.0.0.1:9180). An
    /// unspecified address (0.0.0.0, ::) is asked on loopback.
    #[arg(long)]
    admin: Option<String>,
    /// Ask /readyz (ready to take traffic) rather than /healthz (alive).
    #[arg(long)]
    ready: bool,
}

/// GETs `/healthz` (or `/readyz`) of the admin listener; an error unless it answers 200.
pub(crate) async fn run(args: HealthArgs) -> anyhow::Result<()> {
    let environment = Environment::of_process();
    let listen = args
        .admin
        .or_else(|| environment.get("SCIMTRAIL_ADMIN_LISTEN").map(str::to_owned))
        .unwrap_or_else(|| "127.0.0.1:9180".to_owned());
    let addr = asked_at(&listen)?;
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let status = tokio::time::timeout(DEADLINE, get_status(addr, path))
        .await
        .with_context(|| format!("{path} on {addr} did not answer within {DEADLINE:?}"))??;
    if status != 200 {
        bail!("{path} on {addr} answered {status}");
    }
    println!("{path} on {addr}: 200");
    Ok(())
}

/// Where to ask a listener bound to `listen`: an unspecified address means every interface,
/// loopback among them.
fn asked_at(listen: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("the admin address {listen:?} is not IP:PORT"))?;
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

/// One HTTP/1.1 GET with `Connection: close`; the status code of the answer.
async fn get_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to the admin listener on {addr}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut buffer = [0u8; 256];
    while !head.windows(2).any(|pair| pair == b"\r\n") && head.len() < 4096 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    status_of(&head).with_context(|| format!("{addr} did not answer HTTP"))
}

/// The status code of an HTTP/1.x status line.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&byte| byte == b'\r').next()?;
    let mut parts = line.split(|&byte| byte == b' ');
    let version = parts.next()?;
    if !version.starts_with(b"HTTP/1.") {
        return None;
    }
    std::str::from_utf8(parts.next()?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_address_is_asked_on_loopback() {
        let cases = [
            ("0.0.0.0:9180", "127.0.0.1:9180"),
            ("[::]:9180", "[::1]:9180"),
            ("10.1.2.3:9", "10.1.2.3:9"),
            ("127.0.0.1:1", "127.0.0.1:1"),
        ];
        for (listen, asked) in cases {
            assert_eq!(asked_at(listen).unwrap().to_string(), asked, "{listen}");
        }
        assert!(asked_at("localhost:9180").is_err());
    }

    #[test]
    fn status_lines() {
        let cases: [(&[u8], Option<u16>); 5] = [
            (b"HTTP/1.1 200 OK\r\n", Some(200)),
            (b"HTTP/1.0 503 Service Unavailable\r\n", Some(503)),
            (b"SSH-2.0-OpenSSH\r\n", None),
            (b"", None),
            (b"HTTP/1.1 abc\r\n", None),
        ];
        for (head, status) in cases {
            assert_eq!(status_of(head), status, "{head:?}");
        }
    }
}
