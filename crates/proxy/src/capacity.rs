//! What the proxy takes on at once, so that memory and the application's load are bounded by
//! configuration, not by traffic.
//!
//! - **Connections** (`[listen] max_connections`): a slot is taken before a connection is
//!   accepted, so the next one waits in the kernel's backlog.
//! - **Exchanges in flight** (`[listen] max_exchanges`): a request is routed and its IdP
//!   authenticated from its head alone, then its body is read (within `body_timeout`), and
//!   only with the whole body does it take an exchange slot. A client that is slow to send its
//!   body, or cannot authenticate, never holds an exchange slot, so it cannot starve IdPs
//!   that can.
//! - **Bytes buffered** by exchanges, their requests and the application's answers, within
//!   `[listen] max_buffered_bytes` (`buffers.rs`), reserved whole before a body is read.
//! - **Per client** (`[listen] max_connections_per_client`, off by default): connections from
//!   one address; for a connection from a trusted proxy, exchanges in flight per client named
//!   by its `X-Forwarded-For`.

use crate::config::IpNet;
use http::HeaderMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The proxy listener's slots.
#[derive(Debug, Clone)]
pub(crate) struct Capacity {
    pub(crate) connections: Arc<Semaphore>,
    max_connections: usize,
    /// Connections open (the accept loop holds a slot ahead of the next one, so the
    /// semaphore alone would count one too many).
    open: Arc<AtomicUsize>,
    exchanges: Arc<Semaphore>,
    max_exchanges: usize,
    /// Requests that had to wait for a slot.
    waited: Arc<AtomicU64>,
    /// Connections per client address, when bounded.
    pub(crate) per_client: Option<PerClient>,
}

/// What the listener's slots are being used for, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) connections: usize,
    pub(crate) max_connections: usize,
    pub(crate) exchanges: usize,
    pub(crate) max_exchanges: usize,
    pub(crate) waited: u64,
}

impl Capacity {
    pub(crate) fn new(max_connections: usize, max_exchanges: usize, per_client: Option<PerClient>) -> Capacity {
        Capacity {
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            open: Arc::new(AtomicUsize::new(0)),
            exchanges: Arc::new(Semaphore::new(max_exchanges)),
            max_exchanges,
            waited: Arc::new(AtomicU64::new(0)),
            per_client,
        }
    }

    pub(crate) fn usage(&self) -> Usage {
        Usage {
            connections: self.open.load(Ordering::Relaxed),
            max_connections: self.max_connections,
            exchanges: self.max_exchanges - self.exchanges.available_permits(),
            max_exchanges: self.max_exchanges,
            waited: self.waited.load(Ordering::Relaxed),
        }
    }

    /// Counts a connection open while the returned guard lives.
    pub(crate) fn open(&self) -> Open {
        self.open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(&self.open))
    }

    /// A slot for one exchange, from the whole request to its response.
    pub(crate) async fn exchange_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slot(&self.exchanges).await
    }

    async fn slot(&self, semaphore: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        // The semaphores are never closed: acquiring fails only when they are.
        match Arc::clone(semaphore).try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                self.waited.fetch_add(1, Ordering::Relaxed);
                Arc::clone(semaphore).acquire_owned().await.ok()
            }
        }
    }
}

/// Counts a connection open while it lives.
#[derive(Debug)]
pub(crate) struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A bound on what one client address holds at once.
#[derive(Debug, Clone)]
pub(crate) struct PerClient {
    limit: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerClient {
    pub(crate) fn new(limit: usize) -> PerClient {
        PerClient {
            limit,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// One more for `client`, unless it holds `limit` already.
    pub(crate) fn take(&self, client: IpAddr) -> Option<ClientSlot> {
        let mut held = match self.held.lock() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        };
        let count = held.entry(client).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            client,
            held: Arc::clone(&self.held),
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

/// One client's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    client: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = match self.held.lock() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(count) = held.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

/// Whether `peer` is one of the trusted proxies.
pub(crate) fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(peer))
}

/// The client behind a connection from a trusted proxy: the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends the address it
/// saw, so the right end is the most trustworthy). `None` when the header names none.
pub(crate) fn forwarded_client(headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut nearest = None;
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in entries.iter().rev() {
        let address: IpAddr = entry
            .parse()
            .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|s| s.ip()))
            .ok()?;
        nearest = Some(address);
        if !is_trusted(address, trusted) {
            break;
        }
    }
    nearest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_limit_and_its_slots_back() {
        let per_client = PerClient::new(2);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let a = per_client.take(one).unwrap();
        let _b = per_client.take(one).unwrap();
        assert!(per_client.take(one).is_none());
        assert!(per_client.take(two).is_some());
        drop(a);
        assert!(per_client.take(one).is_some());
    }

    #[test]
    fn the_client_behind_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-for", value.parse().unwrap());
            headers
        };
        for (xff, client) in [
            ("192.0.2.7", Some("192.0.2.7")),
            ("198.51.100.1, 192.0.2.7", Some("192.0.2.7")),
            ("192.0.2.7, 10.0.0.3", Some("192.0.2.7")),
            ("10.0.0.9, 10.0.0.3", Some("10.0.0.9")),
            ("garbage, 192.0.2.7", Some("192.0.2.7")),
            ("192.0.2.7, garbage", None),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
        ] {
            assert_eq!(
                forwarded_client(&headers(xff), &trusted),
                client.map(|c| c.parse().unwrap()),
                "{xff}"
            );
        }
        assert_eq!(forwarded_client(&HeaderMap::new(), &trusted), None);
    }
}
