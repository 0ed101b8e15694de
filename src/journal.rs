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
    let original = store
        .entry(campaign.id, id)
        .await?
        .ok_or(StoreError::NoSuchEntry(id))?;
    let draft = original.reversal(
        key,
        effective_at,
        format!("reversal of entry {id}: {reason}"),
    )?;
    record(store, clock, campaign, draft).await
}
