//! The bytes exchanges buffer, bounded as a whole by `[listen] max_buffered_bytes`.
//!
//! Each exchange from the listener reserves up front what it may need, all at once or
//! nothing: for its request, the `Content-Length` it declares, else `max_body_bytes`; for the
//! application's answer, when its head arrives, the length it declares, else
//! `max_response_bytes`. A reservation that finds no room waits a bounded time and is then
//! refused (503): an exchange never holds part of what it needs while it waits for the rest
//! of a reservation, so no two wait on each other.
//!
//! Requests may reserve at most the budget less one response's limit, so an exchange whose
//! answer has arrived always finds room once those ahead of it finish: answers wait only on
//! answers, and each of those completes without reserving again.
//!
//! Reservations are counted in KiB (a semaphore's permits) and given back when dropped.

use http::header::CONTENT_ENCODING;
use http::HeaderMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget exchanges reserve their buffers from.
#[derive(Debug, Clone)]
pub(crate) struct Buffers {
    /// KiB of the whole budget.
    all: Arc<Semaphore>,
    /// KiB requests may take between them: the budget less one response's limit.
    requests: Arc<Semaphore>,
    max_body_bytes: usize,
    max_response_bytes: usize,
    /// The longest a reservation waits for room.
    wait: Duration,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoRoom {
    /// The bytes asked for.
    pub(crate) bytes: usize,
    /// How long it waited.
    pub(crate) waited: Duration,
}

impl std::fmt::Display for NoRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no room to buffer {} bytes within max_buffered_bytes after {} s",
            self.bytes,
            self.waited.as_secs_f64()
        )
    }
}

/// What one exchange has reserved; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reserved {
    buffers: Buffers,
    held: Vec<OwnedSemaphorePermit>,
}

impl Buffers {
    /// A budget of `max_buffered_bytes`; `None` when it cannot hold one exchange's request and
    /// answer at their limits (the configuration refuses that before this is made).
    pub(crate) fn new(
        max_buffered_bytes: usize,
        max_body_bytes: usize,
        max_response_bytes: usize,
        wait: Duration,
    ) -> Option<Buffers> {
        let all = kib(max_buffered_bytes).min(Semaphore::MAX_PERMITS);
        let requests = all.checked_sub(kib(max_response_bytes))?;
        (requests >= kib(max_body_bytes)).then(|| Buffers {
            all: Arc::new(Semaphore::new(all)),
            requests: Arc::new(Semaphore::new(requests)),
            max_body_bytes,
            max_response_bytes,
            wait,
        })
    }

    /// Reserves room for a request body that declares `declared` bytes (or none): its
    /// declared length, else the body limit.
    pub(crate) async fn reserve_request(&self, declared: Option<u64>) -> Result<Reserved, NoRoom> {
        let bytes = need(declared, self.max_body_bytes);
        let mut reserved = Reserved {
            buffers: self.clone(),
            held: Vec::new(),
        };
        let permits = self.take(&[&self.requests, &self.all], bytes).await?;
        reserved.held.extend(permits);
        Ok(reserved)
    }

    /// Takes `bytes` from each of `pools` in order, all or nothing, waiting at most `wait`.
    /// A request takes its share of the requests' pool before the whole budget's, so that
    /// while it waits it holds nothing an answer could need.
    async fn take(&self, pools: &[&Arc<Semaphore>], bytes: usize) -> Result<Vec<OwnedSemaphorePermit>, NoRoom> {
        let wanted = u32::try_from(kib(bytes)).unwrap_or(u32::MAX);
        let refused = NoRoom {
            bytes,
            waited: self.wait,
        };
        if wanted == 0 {
            return Ok(Vec::new());
        }
        tokio::time::timeout(self.wait, async {
            let mut permits = Vec::with_capacity(pools.len());
            for pool in pools {
                // Never closed: acquiring fails only when it is.
                let permit = Arc::clone(pool).acquire_many_owned(wanted).await.map_err(|_| refused)?;
                permits.push(permit);
            }
            Ok(permits)
        })
        .await
        .unwrap_or(Err(refused))
    }
}

impl Reserved {
    /// Reserves room for the application's answer, which declares `declared` bytes (or none):
    /// its declared length, else the response limit.
    pub(crate) async fn reserve_response(&mut self, declared: Option<u64>) -> Result<(), NoRoom> {
        let buffers = self.buffers.clone();
        let bytes = need(declared, buffers.max_response_bytes);
        let permits = buffers.take(&[&buffers.all], bytes).await?;
        self.held.extend(permits);
        Ok(())
    }

    /// The KiB held.
    #[cfg(test)]
    fn kib(&self) -> usize {
        self.held.iter().map(OwnedSemaphorePermit::num_permits).sum()
    }
}

/// The length a body declares for its reservation: what its framing gives (`Content-Length`,
/// or none at all), unless a content coding makes it decode to a size nothing declares.
pub(crate) fn declared(framed: Option<u64>, headers: &HeaderMap) -> Option<u64> {
    framed.filter(|_| !headers.contains_key(CONTENT_ENCODING))
}

/// What a body that declares `declared` bytes may need, within `limit`.
fn need(declared: Option<u64>, limit: usize) -> usize {
    declared.map_or(limit, |length| usize::try_from(length).unwrap_or(usize::MAX).min(limit))
}

/// Bytes as the KiB that hold them.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    fn buffers(budget_kib: usize) -> Buffers {
        Buffers::new(budget_kib * KIB, 64 * KIB, 64 * KIB, Duration::from_millis(50)).unwrap()
    }

    #[test]
    fn a_budget_below_one_exchanges_limits_is_refused() {
        let wait = Duration::from_secs(1);
        assert!(Buffers::new(127 * KIB, 64 * KIB, 64 * KIB, wait).is_none());
        assert!(Buffers::new(128 * KIB, 64 * KIB, 64 * KIB, wait).is_some());
    }

    #[tokio::test]
    async fn a_request_reserves_what_it_declares_else_the_limit() {
        let buffers = buffers(256);
        let declared = buffers.reserve_request(Some(10 * KIB as u64)).await.unwrap();
        assert_eq!(declared.kib(), 2 * 10, "from the requests' pool and the whole budget");
        let undeclared = buffers.reserve_request(None).await.unwrap();
        assert_eq!(undeclared.kib(), 2 * 64);
        let lying = buffers.reserve_request(Some(u64::MAX)).await.unwrap();
        assert_eq!(lying.kib(), 2 * 64, "never more than the limit");
    }

    #[tokio::test]
    async fn requests_leave_room_for_an_answer_so_answers_never_wait_on_requests() {
        // 192 KiB: requests may take 128 between them, so one 64 KiB answer always fits.
        let buffers = buffers(192);
        let mut first = buffers.reserve_request(None).await.unwrap();
        let _second = buffers.reserve_request(None).await.unwrap();
        let refused = buffers.reserve_request(Some(1)).await.unwrap_err();
        assert_eq!(refused.bytes, 1, "{refused}");
        first.reserve_response(None).await.unwrap();
    }

    #[tokio::test]
    async fn room_given_back_is_reserved_by_the_next_waiting() {
        let buffers = Buffers::new(128 * KIB, 64 * KIB, 64 * KIB, Duration::from_secs(30)).unwrap();
        let held = buffers.reserve_request(None).await.unwrap();
        let waiting = {
            let buffers = buffers.clone();
            tokio::spawn(async move { buffers.reserve_request(None).await.map(|r| r.kib()) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        assert_eq!(waiting.await.unwrap(), Ok(128));
    }
}
