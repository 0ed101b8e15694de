//! A write combiner: concurrent callers' items are gathered into batches, each written in one
//! transaction (one fsync, one round trip), and every caller gets its own result. Throughput
//! then grows with concurrency instead of being capped by the database's commits per second;
//! a caller alone still gets a batch of one at once.
//!
//! Invariants:
//! - A caller's answer comes only after its batch's write returned: an `Ok` is durable.
//! - Batches are formed only from what is already waiting (no timer), so combining adds no
//!   latency. `flushers` batches are written at once: one fills while others are in flight.
//! - A batch that fails as a whole fails each of its callers with the batch's error; a
//!   caller that gave up (timed out) no longer listens, and its item stands or not with its
//!   batch.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::store::{Store, StoreError};

/// What a batch write returns: one result per item, in the items' order, or an error for the
/// whole batch.
pub type BatchResult<R> = Result<Vec<Result<R, StoreError>>, StoreError>;

/// Settings of a combiner.
#[derive(Debug, Clone, Copy)]
pub struct CombinerOptions {
    /// Batches in flight at once.
    pub flushers: usize,
    /// Most items in one batch: bounds a transaction's size and a statement's parameters.
    pub batch_max: usize,
}

impl Default for CombinerOptions {
    fn default() -> Self {
        CombinerOptions {
            flushers: 2,
            batch_max: 256,
        }
    }
}

impl CombinerOptions {
    /// SQLite has one writer connection, so one flusher (more would only split batches);
    /// PostgreSQL gets the default, which measured best on a 2-core machine (BENCHMARKS.md).
    pub fn for_store(store: &Store) -> CombinerOptions {
        match store {
            Store::Sqlite(_) => CombinerOptions {
                flushers: 1,
                ..CombinerOptions::default()
            },
            Store::Postgres(_) => CombinerOptions::default(),
        }
    }
}

pub struct Combiner<T, R> {
    queue: mpsc::Sender<Job<T, R>>,
    /// What is written, for errors and logs ("journal", "inbox").
    what: &'static str,
}

impl<T, R> Clone for Combiner<T, R> {
    fn clone(&self) -> Self {
        Combiner {
            queue: self.queue.clone(),
            what: self.what,
        }
    }
}

struct Job<T, R> {
    item: T,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<T: Send + 'static, R: Send + 'static> Combiner<T, R> {
    /// Starts the flushers, which call `write` with each batch; they stop when the last
    /// clone of the combiner is dropped.
    pub fn start<W, F>(what: &'static str, options: CombinerOptions, write: W) -> Combiner<T, R>
    where
        W: Fn(Vec<T>) -> F + Send + Sync + 'static,
        F: Future<Output = BatchResult<R>> + Send + 'static,
    {
        let flushers = options.flushers.max(1);
        let batch_max = options.batch_max.max(1);
        let (queue, receiver) = mpsc::channel(batch_max * flushers * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let write = Arc::new(write);
        for _ in 0..flushers {
            tokio::spawn(flush(what, receiver.clone(), batch_max, write.clone()));
        }
        Combiner { queue, what }
    }

    /// Queues `item` and waits for its batch to be written.
    pub async fn submit(&self, item: T) -> Result<R, StoreError> {
        let stopped = || StoreError::Refused(format!("the {} is shutting down", self.what));
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { item, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn flush<T, R, W, F>(
    what: &'static str,
    receiver: Arc<Mutex<mpsc::Receiver<Job<T, R>>>>,
    batch_max: usize,
    write: Arc<W>,
) where
    W: Fn(Vec<T>) -> F,
    F: Future<Output = BatchResult<R>>,
{
    loop {
        let mut jobs = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut jobs, batch_max).await == 0 {
                return; // every sender is gone
            }
        }
        let (items, replies): (Vec<T>, Vec<_>) =
            jobs.into_iter().map(|job| (job.item, job.reply)).unzip();
        let count = items.len();
        let results = match write(items).await {
            Ok(results) if results.len() == count => results,
            Ok(results) => {
                let message = format!("{} results for {count} items", results.len());
                failed(what, count, &message)
            }
            Err(error) => failed(what, count, &error.to_string()),
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

fn failed<R>(what: &str, count: usize, message: &str) -> Vec<Result<R, StoreError>> {
    tracing::error!(%message, items = count, "a {what} batch failed");
    (0..count)
        .map(|_| Err(StoreError::Refused(format!("batch failed: {message}"))))
        .collect()
}
