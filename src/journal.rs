//! Use cases on the books: validate with the pure ledger rules, then write through the store.

use chrono::{DateTime, Utc};

use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::ids::{EntryId, IdempotencyKey};
use crate::ledger::{Entry, EntryDraft, EntryError};
use crate::money::MoneyError;
use crate::store::{Posted, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Invalid(#[from] EntryError),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records an entry for `campaign`, idempotently on the draft's key.
pub async fn record(
    store: &Store,
    clock: &dyn Clock,
    campaign: &Campaign,
    draft: EntryDraft,
) -> Result<Posted, JournalError> {
    let entry = Entry::new(campaign, draft)?;
    Ok(store.post(&entry, clock.now()).await?)
}

/// Cancels entry `id` with a new entry that negates each of its postings, effective at
/// `effective_at`. Idempotent on `key` like any write; an entry is reversed at most once.
pub async fn reverse(
    store: &Store,
    clock: &dyn Clock,
    campaign: &Campaign,
    id: EntryId,
    key: IdempotencyKey,
    effective_at: DateTime<Utc>,
    reason: &str,
) -> Result<Posted, JournalError> {
    let draft = reversal_draft(store, campaign, id, key, effective_at, reason).await?;
    record(store, clock, campaign, draft).await
}

async fn reversal_draft(
    store: &Store,
    campaign: &Campaign,
    id: EntryId,
    key: IdempotencyKey,
    effective_at: DateTime<Utc>,
    reason: &str,
) -> Result<EntryDraft, JournalError> {
    let original = store
        .entry(campaign.id, id)
        .await?
        .ok_or(StoreError::NoSuchEntry(id))?;
    Ok(original.reversal(
        key,
        effective_at,
        format!("reversal of entry {id}: {reason}"),
    )?)
}

/// A write-combining front to the store: concurrent callers' entries are gathered into
/// batches, each written in one transaction (one fsync, one round trip), and every caller
/// gets its own result. Throughput then grows with concurrency instead of being capped by
/// the database's commits per second; a caller alone still gets a batch of one at once.
///
/// Batches are formed only from what is already waiting (no timer), so combining adds no
/// latency. `flushers` batches are written at once: one fills while others are in flight.
#[derive(Clone)]
pub struct Journal {
    store: Store,
    queue: tokio::sync::mpsc::Sender<Job>,
}

struct Job {
    entry: Entry,
    reply: tokio::sync::oneshot::Sender<Result<Posted, StoreError>>,
}

/// Settings of the write combiner.
#[derive(Debug, Clone, Copy)]
pub struct JournalOptions {
    /// Batches in flight at once.
    pub flushers: usize,
    /// Most entries in one batch: bounds a transaction's size and a statement's parameters.
    pub batch_max: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            flushers: 2,
            batch_max: 256,
        }
    }
}

impl JournalOptions {
    /// SQLite has one writer connection, so one flusher (more would only split batches);
    /// PostgreSQL gets the default, which measured best on a 2-core machine (BENCHMARKS.md).
    pub fn for_store(store: &Store) -> JournalOptions {
        match store {
            Store::Sqlite(_) => JournalOptions {
                flushers: 1,
                ..JournalOptions::default()
            },
            Store::Postgres(_) => JournalOptions::default(),
        }
    }
}

impl Journal {
    /// Starts the flushers; they stop when the last `Journal` clone is dropped.
    pub fn start(
        store: Store,
        clock: std::sync::Arc<dyn Clock>,
        options: JournalOptions,
    ) -> Journal {
        let (queue, receiver) =
            tokio::sync::mpsc::channel::<Job>(options.batch_max * options.flushers * 4);
        let receiver = std::sync::Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..options.flushers.max(1) {
            tokio::spawn(flush(
                store.clone(),
                clock.clone(),
                receiver.clone(),
                options.batch_max.max(1),
            ));
        }
        Journal { store, queue }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Validates and records an entry for `campaign`, idempotently on the draft's key.
    pub async fn record(
        &self,
        campaign: &Campaign,
        draft: EntryDraft,
    ) -> Result<Posted, JournalError> {
        let entry = Entry::new(campaign, draft)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped =
            || JournalError::Store(StoreError::Refused("the journal is shutting down".into()));
        self.queue
            .send(Job { entry, reply })
            .await
            .map_err(|_| stopped())?;
        Ok(answer.await.map_err(|_| stopped())??)
    }

    /// Reverses entry `id` (see [`reverse`]) through the combiner.
    pub async fn reverse(
        &self,
        campaign: &Campaign,
        id: EntryId,
        key: IdempotencyKey,
        effective_at: DateTime<Utc>,
        reason: &str,
    ) -> Result<Posted, JournalError> {
        let draft = reversal_draft(&self.store, campaign, id, key, effective_at, reason).await?;
        self.record(campaign, draft).await
    }
}

async fn flush(
    store: Store,
    clock: std::sync::Arc<dyn Clock>,
    receiver: std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Job>>>,
    batch_max: usize,
) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut jobs, batch_max).await == 0 {
                return; // every sender is gone
            }
        }
        let entries: Vec<&Entry> = jobs.iter().map(|job| &job.entry).collect();
        let results = match store.post_batch(&entries, clock.now()).await {
            Ok(results) => results,
            Err(error) => {
                let message = error.to_string();
                tracing::error!(%message, entries = jobs.len(), "a journal batch failed");
                entries
                    .iter()
                    .map(|_| Err(StoreError::Refused(format!("batch failed: {message}"))))
                    .collect()
            }
        };
        for (job, result) in jobs.into_iter().zip(results) {
            // A caller that gave up (timed out) no longer listens; its entry stands.
            let _ = job.reply.send(result);
        }
    }
}
