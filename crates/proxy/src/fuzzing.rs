//! For `fuzz/` only (feature `fuzzing`): the whole exchange path in process. Raw bytes go in
//! as one client connection, served as the listener serves one (timeouts, admission, rules,
//! recording); the application is a service in the same process, reached over an in-memory
//! pipe. No socket is opened.

use crate::connector::Connector;
use crate::server::{self, Connection, Timeouts};
use crate::{upstream, Background, Proxy, ProxyConfig, StartError};
use scimtrail_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

/// The proxy of a configuration, its applications served in process.
pub struct Harness {
    proxy: Arc<Proxy>,
    background: Background,
    timeouts: Timeouts,
    shutdown: watch::Sender<bool>,
}

impl Harness {
    /// The proxy of `config` over `store`; every connection to an application is handed to
    /// `application` (which serves HTTP on it).
    pub fn new(
        config: ProxyConfig,
        store: Store,
        application: Arc<dyn Fn(DuplexStream) + Send + Sync>,
    ) -> Result<Harness, StartError> {
        let timeouts = Timeouts {
            first_byte: config.first_byte_timeout,
            idle: config.idle_timeout,
            drain: config.drain,
        };
        let client = upstream::client_over(Connector::InProcess(application), None, None)?;
        // A store of the harness's own: no other instance to agree with.
        let key = config.fingerprint_key.load().map_err(StartError::FingerprintKey)?;
        let (proxy, background) = Proxy::new(config, store, client, key)?;
        let (shutdown, _) = watch::channel(false);
        Ok(Harness {
            proxy: Arc::new(proxy),
            background,
            timeouts,
            shutdown,
        })
    }

    /// Serves `request` (raw bytes, HTTP/1.1 or HTTP/2) as one connection that then closes
    /// its sending side, and returns what the proxy wrote back (within `wait`).
    pub async fn exchange(&self, request: &[u8], wait: Duration) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let connection = Connection {
            builder: server::http_builder(self.timeouts),
            handler: Arc::clone(&self.proxy),
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
            scheme: "http",
            timeouts: self.timeouts,
            metrics: Arc::clone(&self.proxy.metrics),
            shutdown: self.shutdown.subscribe(),
        };
        let serving = tokio::spawn(connection.serve(server));
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(wait, async {
            let _ = client.write_all(request).await;
            let _ = client.shutdown().await;
            let _ = client.read_to_end(&mut answer).await;
        })
        .await;
        drop(client);
        let _ = tokio::time::timeout(wait, serving).await;
        answer
    }

    /// Stops: the recorder drains into the store.
    pub async fn finish(self) {
        let _ = self.shutdown.send(true);
        drop(self.proxy);
        self.background.finish().await;
    }
}
