//! A deadline for a new connection's first bytes.
//!
//! hyper's HTTP/1.1 header timeout starts once hyper reads a request head, and the server's
//! protocol detection (HTTP/1.1 or HTTP/2) waits for the first bytes with no timeout at all:
//! a connection that never sends a byte, or a TLS client that completes its handshake and goes
//! silent, would hold its connection slot for good. [`FirstBytes`] fails the connection's reads
//! once its deadline passes, unless enough bytes for that detection (the 24 of the HTTP/2
//! preface) have arrived first; after that, hyper's own timeouts and the listener's idle
//! timeout take over.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

/// Bytes after which the deadline no longer applies: the HTTP/2 connection preface's length.
const ENOUGH: usize = 24;

/// `io`, whose reads fail with `TimedOut` once `deadline` passes before its first bytes.
pub(crate) struct FirstBytes<IO> {
    io: IO,
    deadline: Option<Pin<Box<Sleep>>>,
    read: usize,
}

impl<IO> FirstBytes<IO> {
    pub(crate) fn new(io: IO, within: Duration) -> FirstBytes<IO> {
        FirstBytes {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
            read: 0,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FirstBytes<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.read += buf.filled().len() - before;
            if self.read >= ENOUGH {
                self.deadline = None;
            }
            return polled;
        }
        if polled.is_pending() {
            if let Some(deadline) = self.deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection sent no request in time",
                    )));
                }
            }
        }
        polled
    }
}

crate::read_layer::writes_pass_through!(FirstBytes);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn silence_fails_the_read_and_enough_bytes_lift_the_deadline() {
        let (client, server) = tokio::io::duplex(64);
        let mut silent = FirstBytes::new(server, Duration::from_secs(5));
        let mut buf = [0u8; 8];
        let error = silent.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut talking = FirstBytes::new(server, Duration::from_secs(5));
        client.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        let mut preface = [0u8; 24];
        talking.read_exact(&mut preface).await.unwrap();
        // Past the deadline, a read waits as any read does.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let waiting = tokio::time::timeout(Duration::from_secs(60), talking.read(&mut buf)).await;
        assert!(waiting.is_err(), "no deadline once the preface arrived");
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_bytes_then_silence_still_fail() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut stalled = FirstBytes::new(server, Duration::from_secs(5));
        client.write_all(b"P").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(stalled.read(&mut buf).await.unwrap(), 1);
        let error = stalled.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
