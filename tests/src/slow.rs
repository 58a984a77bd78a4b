//! Upstreams that misbehave at the socket level.

use std::net::SocketAddr;
use tokio::net::TcpListener;

/// A server that accepts connections and never answers.
pub async fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// An address where nothing listens (bound, then released).
pub async fn closed() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// A server that answers every request with a head promising 1000 bytes of body, sends ten,
/// and stalls for good.
pub async fn stalls_mid_body() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0_u8; 8192];
            let _ = stream.read(&mut request).await;
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/scim+json\r\ncontent-length: 1000\r\n\r\n";
            let _ = stream.write_all(head).await;
            let _ = stream.write_all(b"{\"Resourc").await;
            held.push(stream);
        }
    });
    addr
}
