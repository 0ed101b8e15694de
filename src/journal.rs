//! Use cases on the books: validate with the pure ledger rules, then write through the store.

use chrono::{DateTime, Utc};

use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::combiner::Combiner;
pub use crate::combiner::CombinerOptions as JournalOptions;
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

/// A write-combining front to the store (see [`crate::combiner`]): concurrent callers'
/// entries are committed together, one transaction per batch, each caller getting its own
/// result.
#[derive(Clone)]
pub struct Journal {
    store: Store,
    combiner: Combiner<Entry, Posted>,
}

impl Journal {
    /// Starts the flushers; they stop when the last `Journal` clone is dropped.
    pub fn start(
        store: Store,
        clock: std::sync::Arc<dyn Clock>,
        options: JournalOptions,
    ) -> Journal {
        let writer = store.clone();
        let combiner = Combiner::start("journal", options, move |entries: Vec<Entry>| {
            let (store, clock) = (writer.clone(), clock.clone());
            async move {
                let entries: Vec<&Entry> = entries.iter().collect();
                store.post_batch(&entries, clock.now()).await
            }
        });
        Journal { store, combiner }
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
        Ok(self.combiner.submit(entry).await?)
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
