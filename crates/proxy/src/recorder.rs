//! The recorder: one writer thread that group-commits what the proxy records.
//!
//! In `durable` mode the proxy awaits each write: an exchange is in the store (in flight)
//! before it is forwarded, and complete before its response is released. Waiting writes are
//! committed together — one transaction per batch — and every waiter of the batch is woken,
//! so durability costs one commit per batch, not per exchange. In `async` mode writes are
//! queued without waiting; when the queue is full they are dropped and counted.
//!
//! The writer is an OS thread, not a task: it takes a batch off the queue and commits it
//! itself ([`Store::write_batch_blocking`]), so an exchange's write costs one wake-up of the
//! writer and one of the exchange, with no task or thread in between. A durable exchange
//! waits for two commits, so these hand-offs are most of its added latency.

use crate::metrics::Metrics;
use scimtrail_store::{Store, Write};
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
    /// The store refused the batch.
    #[error("the store refused the write: {0}")]
    Store(String),
    /// The writer is gone (shutting down).
    #[error("the recorder has stopped")]
    Stopped,
}

struct Job {
    write: Write,
    done: Option<oneshot::Sender<Result<(), RecordError>>>,
}

/// A handle to the writer task. Cloning it is cheap; the writer stops once every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Job>,
    mode: RecordMode,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("mode", &self.mode)
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
        max_batch: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Recorder, oneshot::Receiver<()>)> {
        let (queue, jobs) = mpsc::channel(queue_capacity.max(1));
        let (stopped, on_stop) = oneshot::channel();
        let writer_metrics = Arc::clone(&metrics);
        std::thread::Builder::new()
            .name("scimtrail-recorder".into())
            .spawn(move || {
                writer(&store, jobs, max_batch.max(1), &writer_metrics);
                let _ = stopped.send(());
            })?;
        Ok((Recorder { queue, mode, metrics }, on_stop))
    }

    /// The mode.
    pub fn mode(&self) -> RecordMode {
        self.mode
    }

    /// Writes and waits for the commit (durable mode's path).
    pub async fn write(&self, write: Write) -> Result<(), RecordError> {
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Job {
                write,
                done: Some(done),
            })
            .await
            .map_err(|_| RecordError::Stopped)?;
        self.metrics
            .set_queue_depth(self.queue.max_capacity() - self.queue.capacity());
        committed.await.map_err(|_| RecordError::Stopped)?
    }

    /// Queues without waiting (async mode's path); a full queue drops the write and counts it.
    pub fn write_behind(&self, write: Write) {
        if self.queue.try_send(Job { write, done: None }).is_err() {
            self.metrics.dropped();
            tracing::warn!("Recording queue full: a record was dropped.");
        }
        self.metrics
            .set_queue_depth(self.queue.max_capacity() - self.queue.capacity());
    }
}

fn writer(store: &Store, mut jobs: mpsc::Receiver<Job>, max_batch: usize, metrics: &Metrics) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (writes, waiters): (Vec<Write>, Vec<_>) = batch.drain(..).map(|job| (job.write, job.done)).unzip();
        let started = Instant::now();
        let count = writes.len();
        let result = store
            .write_batch_blocking(writes)
            .map_err(|error| RecordError::Store(error.to_string()));
        metrics.batch(count, started.elapsed());
        metrics.set_queue_depth(jobs.len());
        if let Err(error) = &result {
            metrics.record_error();
            tracing::error!(%error, batch = count, "Writing a batch of records failed.");
        }
        for waiter in waiters {
            match waiter {
                Some(done) => {
                    let _ = done.send(result.clone());
                }
                None if result.is_err() => metrics.dropped(),
                None => {}
            }
        }
    }
}
