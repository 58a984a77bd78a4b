//! How the upstream client reaches an application: over TCP (TLS on top, by the client's
//! `HttpsConnector`), or — in builds with the `fuzzing` feature only — to a service running in
//! the same process, over an in-memory pipe, so that the whole exchange path can be fuzzed
//! without a socket.

use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A way to reach applications.
#[derive(Clone)]
pub enum Connector {
    /// The network.
    Tcp(HttpConnector),
    /// A service in this process: each connection is one end of a pipe, the other handed to
    /// the function (which serves HTTP on it).
    #[cfg(feature = "fuzzing")]
    InProcess(std::sync::Arc<dyn Fn(tokio::io::DuplexStream) + Send + Sync>),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connector::Tcp(_) => f.write_str("Connector::Tcp"),
            #[cfg(feature = "fuzzing")]
            Connector::InProcess(_) => f.write_str("Connector::InProcess"),
        }
    }
}

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Connector::Tcp(http) => tower::Service::<http::Uri>::poll_ready(http, cx).map_err(Into::into),
            #[cfg(feature = "fuzzing")]
            Connector::InProcess(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        match self {
            Connector::Tcp(http) => {
                let connecting = tower::Service::call(http, uri);
                Box::pin(async move {
                    let stream = connecting.await?;
                    Ok(TokioIo::new(Stream::Tcp(stream.into_inner())))
                })
            }
            #[cfg(feature = "fuzzing")]
            Connector::InProcess(serve) => {
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                serve(theirs);
                Box::pin(async move { Ok(TokioIo::new(Stream::InProcess(ours))) })
            }
        }
    }
}

/// A connection to an application.
pub enum Stream {
    /// Over the network.
    Tcp(TcpStream),
    /// To a service in this process.
    #[cfg(feature = "fuzzing")]
    InProcess(tokio::io::DuplexStream),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Tcp(stream) => stream.connected(),
            #[cfg(feature = "fuzzing")]
            Stream::InProcess(_) => Connected::new(),
        }
    }
}

macro_rules! each {
    ($self:ident, $stream:ident => $body:expr) => {
        match $self.get_mut() {
            Stream::Tcp($stream) => $body,
            #[cfg(feature = "fuzzing")]
            Stream::InProcess($stream) => $body,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each!(self, stream => Pin::new(stream).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        each!(self, stream => Pin::new(stream).poll_write(cx, data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, stream => Pin::new(stream).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, stream => Pin::new(stream).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, stream => Pin::new(stream).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(stream) => stream.is_write_vectored(),
            #[cfg(feature = "fuzzing")]
            Stream::InProcess(stream) => stream.is_write_vectored(),
        }
    }
}
