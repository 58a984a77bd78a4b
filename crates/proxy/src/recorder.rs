//! The recorder: one writer thread that group-commits what the proxy records.
//!
//! In `durable` mode the proxy awaits each write: an exchange is in the store (in flight)
//! before it is forwarded, and complete before its response is released. Waiting writes are
//! committed together — one transaction per batch — and every waiter of the batch is woken,
//! so durability costs one commit per batch, not per exchange. In `async` mode writes are
//! queued without waiting; when the queue is full, by count or by the bytes of the bodies it
//! holds, they are dropped and counted.
//!
//! How durable a write is when it returns is the store's [`Durability`] (`[record]
//! durability`): at `Power` it is synced, at `Process` written and synced within the sync
//! interval. [`Recorder::write_power`] asks for `Power` whatever the store's level (a replay's
//! records), and a batch holding any such write is committed at `Power` before any of its
//! waiters is woken.
//!
//! The writer is an OS thread, not a task: it takes a batch off the queue and commits it
//! itself ([`Store::write_batch_blocking`]), so an exchange's write costs one wake-up of the
//! writer and one of the exchange, with no task or thread in between. A durable exchange
//! waits for two commits, so these hand-offs are most of its added latency.

use crate::metrics::Metrics;
use scimtrail_store::{Durability, Store, Write, Written};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// When the proxy waits for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMode {
    /// Recorded before forwarding and before responding (the default).
    Durable,
    /// Recorded behind, through a bounded queue; drops are counted.
    Async,
}

/// Why a durable write did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    /// The store failed (the batch failed as a whole).
    #[error("the store refused the write: {0}")]
    Store(String),
    /// The store refused this record on its own; the others of its batch were committed.
    #[error("the store refused this record: {0}")]
    Refused(String),
    /// The writer is gone (shutting down).
    #[error("the recorder has stopped")]
    Stopped,
}

struct Job {
    write: Write,
    /// How durable the write must be once committed.
    durability: Durability,
    done: Option<oneshot::Sender<Result<(), RecordError>>>,
    /// What the write counts against the queue's bytes (written behind only: a durable
    /// write's exchange waits for it, so `max_exchanges` bounds those).
    bytes: usize,
}

/// A handle to the writer task. Cloning it is cheap; the writer stops once every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Job>,
    /// Bytes of the writes queued behind exchanges, and their limit.
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
    mode: RecordMode,
    /// The store's level: what [`Recorder::write`] and [`Recorder::write_behind`] ask for.
    durability: Durability,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("mode", &self.mode)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts the writer thread; the receiver resolves once it has written everything and
    /// stopped.
    pub fn spawn(
        store: Store,
        mode: RecordMode,
        queue_capacity: usize,
        max_queued_bytes: usize,
        max_batch: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Recorder, oneshot::Receiver<()>)> {
        let (queue, jobs) = mpsc::channel(queue_capacity.max(1));
        let (stopped, on_stop) = oneshot::channel();
        let writer_metrics = Arc::clone(&metrics);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let taken_bytes = Arc::clone(&queued_bytes);
        let durability = store.durability();
        std::thread::Builder::new()
            .name("scimtrail-recorder".into())
            .spawn(move || {
                writer(&store, jobs, max_batch.max(1), &taken_bytes, &writer_metrics);
                let _ = stopped.send(());
            })?;
        let recorder = Recorder {
            queue,
            queued_bytes,
            max_queued_bytes,
            mode,
            durability,
            metrics,
        };
        Ok((recorder, on_stop))
    }

    /// The mode.
    pub fn mode(&self) -> RecordMode {
        self.mode
    }

    /// The level [`Recorder::write`] commits at (`[record] durability`).
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Writes and waits for the commit at the configured durability (durable mode's path).
    pub async fn write(&self, write: Write) -> Result<(), RecordError> {
        self.write_at(write, self.durability).await
    }

    /// Writes and waits until the write is synced, whatever the configured durability: for
    /// what must survive a power loss once acknowledged (a replay's records).
    pub async fn write_power(&self, write: Write) -> Result<(), RecordError> {
        self.write_at(write, Durability::Power).await
    }

    async fn write_at(&self, write: Write, durability: Durability) -> Result<(), RecordError> {
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Job {
                write,
                durability,
                done: Some(done),
                bytes: 0,
            })
            .await
            .map_err(|_| RecordError::Stopped)?;
        self.metrics
            .set_queue_depth(self.queue.max_capacity() - self.queue.capacity());
        committed.await.map_err(|_| RecordError::Stopped)?
    }

    /// Queues without waiting (async mode's path); a full queue, by count or by bytes, drops
    /// the write and counts it.
    pub fn write_behind(&self, write: Write) {
        let bytes = write.approx_bytes();
        let reserved = self
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                // One write larger than the limit still goes into an empty queue.
                (queued == 0 || queued + bytes <= self.max_queued_bytes).then_some(queued + bytes)
            })
            .is_ok();
        let queued = reserved && {
            let sent = self
                .queue
                .try_send(Job {
                    write,
                    durability: self.durability,
                    done: None,
                    bytes,
                })
                .is_ok();
            if !sent {
                self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            }
            sent
        };
        if !queued {
            self.metrics.dropped();
            tracing::warn!("Recording queue full: a record was dropped.");
        }
        self.metrics
            .set_queue_depth(self.queue.max_capacity() - self.queue.capacity());
    }
}

fn writer(
    store: &Store,
    mut jobs: mpsc::Receiver<Job>,
    max_batch: usize,
    queued_bytes: &AtomicUsize,
    metrics: &Metrics,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Off the queue: their bytes are the batch's now, which is bounded by max_batch.
        queued_bytes.fetch_sub(batch.iter().map(|job| job.bytes).sum(), Ordering::AcqRel);
        // One write that must be synced makes the whole batch synced before any waiter wakes.
        let durability = Durability::of_batch(batch.iter().map(|job| job.durability));
        let (writes, waiters): (Vec<Write>, Vec<_>) = batch.drain(..).map(|job| (job.write, job.done)).unzip();
        let started = Instant::now();
        let count = writes.len();
        let results = store.write_batch_blocking(writes, durability);
        metrics.batch(count, started.elapsed());
        metrics.set_queue_depth(jobs.len());
        let results = match results {
            Ok(results) => results,
            Err(error) => {
                metrics.record_error();
                tracing::error!(%error, batch = count, "Writing a batch of records failed.");
                vec![Written::Failed(error.to_string()); count]
            }
        };
        for (waiter, written) in waiters.into_iter().zip(results) {
            // One bad record fails alone: the store has logged which, and why.
            let result = match written {
                Written::Committed => Ok(()),
                Written::Degraded(_) => {
                    metrics.record_isolated("degraded");
                    Ok(())
                }
                Written::Refused(reason) => {
                    metrics.record_isolated("refused");
                    Err(RecordError::Refused(reason))
                }
                Written::Failed(reason) => Err(RecordError::Store(reason)),
            };
            match waiter {
                Some(done) => {
                    let _ = done.send(result);
                }
                None if result.is_err() => metrics.dropped(),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimtrail_store::Snapshot;
    use std::time::Duration;

    fn snapshot(id: &str, body_bytes: usize) -> Write {
        Write::Snapshot(Box::new(Snapshot {
            route: "app".into(),
            resource_type: "Users".into(),
            resource_id: id.into(),
            body: Some(serde_json::json!({"id": id, "pad": "x".repeat(body_bytes)}).to_string()),
            updated_at_ms: 1_700_000_000_000,
        }))
    }

    /// What a write leaves unsynced when it returns, by the store's level and the call: a
    /// replay's `write_power` is synced whatever the level, with what came before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_power_returns_synced_whatever_the_configured_durability() {
        // (the store's level, then per write: through `write_power`, records left unsynced)
        let cases: [(Durability, &[(bool, u64)]); 2] = [
            (
                Durability::Process,
                &[(false, 1), (false, 2), (true, 0), (false, 1), (true, 0)],
            ),
            (Durability::Power, &[(false, 0), (true, 0), (false, 0)]),
        ];
        for (level, steps) in cases {
            let file = std::env::temp_dir().join(format!("scimtrail-recorder-test-{}.db", uuid::Uuid::new_v4()));
            let store = Store::connect_with(&format!("sqlite://{}", file.display()), level)
                .await
                .unwrap();
            store.migrate().await.unwrap();
            // A syncer that waits an hour: only a `power` write syncs here.
            let store = store
                .with_sync_interval(Duration::from_secs(3600))
                .with_journal()
                .unwrap();
            let (recorder, stopped) = Recorder::spawn(
                store.clone(),
                RecordMode::Durable,
                100,
                1 << 20,
                256,
                Arc::new(Metrics::default()),
            )
            .unwrap();
            assert_eq!(recorder.durability(), level);
            for (n, (power, unsynced)) in steps.iter().enumerate() {
                let write = snapshot(&format!("u{n}"), 10);
                if *power {
                    recorder.write_power(write).await.unwrap();
                } else {
                    recorder.write(write).await.unwrap();
                }
                assert_eq!(store.unsynced_records(), *unsynced, "{level}, write {n}");
            }
            drop(recorder);
            stopped.await.unwrap();
            store.close().await;
            assert_eq!(store.unsynced_records(), 0, "{level}: the close syncs what is left");
            for n in 0..steps.len() {
                assert!(store
                    .snapshot("app", "Users", &format!("u{n}"))
                    .await
                    .unwrap()
                    .is_some());
            }
            let _ = std::fs::remove_file(&file);
        }
    }

    /// Async mode while the store stalls: the queue was bounded by count only (4096 writes of
    /// up to three bodies each); what its bytes cannot hold is now dropped and counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_behind_past_the_queues_bytes_are_dropped_and_counted() {
        let file = std::env::temp_dir().join(format!("scimtrail-recorder-test-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", file.display())).await.unwrap();
        store.migrate().await.unwrap();
        // Another connection holds SQLite's write lock: the writer waits on its first batch.
        let blocker = rusqlite::Connection::open(&file).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let metrics = Arc::new(Metrics::default());
        let (recorder, stopped) = Recorder::spawn(
            store.clone(),
            RecordMode::Async,
            100,
            64 * 1024,
            256,
            Arc::clone(&metrics),
        )
        .unwrap();
        recorder.write_behind(snapshot("u0", 20 * 1024));
        while recorder.queued_bytes.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // About 21 KiB each, as counted: three fit in 64 KiB, the other six are dropped.
        let each = snapshot("u1", 20 * 1024).approx_bytes();
        for n in 1..10 {
            recorder.write_behind(snapshot(&format!("u{n}"), 20 * 1024));
        }
        assert_eq!(metrics.dropped_total(), 6);
        assert_eq!(recorder.queued_bytes.load(Ordering::Acquire), 3 * each);

        blocker.execute_batch("COMMIT").unwrap();
        while recorder.queued_bytes.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A write larger than the whole limit still goes into an empty queue.
        recorder.write_behind(snapshot("large", 100 * 1024));
        assert_eq!(metrics.dropped_total(), 6);
        drop(recorder);
        stopped.await.unwrap();
        assert!(store.snapshot("app", "Users", "large").await.unwrap().is_some());
        for n in 0..10 {
            let kept = store
                .snapshot("app", "Users", &format!("u{n}"))
                .await
                .unwrap()
                .is_some();
            assert_eq!(kept, n < 4, "u{n}");
        }
        let _ = std::fs::remove_file(&file);
    }
}
