//! `obole verify`: reads the whole chain and re-derives it with [`ChainAudit`], each sealed
//! entry's gift movement (what the donor register reads) from its postings, and the
//! summary's tallies from the gifts they count.
//!
//! Read-only. Entries not yet sealed are counted, not judged: the chain cannot vouch for
//! them until the sealer reaches them.

use crate::ledger::seal::{AuditSummary, ChainAudit, ChainBreak, Seal, SealedEntry};
use crate::reports::tally::gift_movement;
use crate::store::{Store, StoreError};

/// Sealed entries read per query.
const PAGE: i64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the books do not verify: {0}")]
    Broken(#[from] ChainBreak),
    #[error("the reports' derived data does not match the books: {0}")]
    Derived(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the chain grew during each of {0} attempts to read it; retry when writes are quieter"
    )]
    Busy(usize),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    #[serde(flatten)]
    pub summary: AuditSummary,
    /// Entries written after the chain head; not covered by this verification.
    pub unsealed: i64,
}

/// How many times verify starts over when the sealer moved the chain while it read.
const ATTEMPTS_MAX: usize = 5;

/// Verifies the whole journal; `checkpoints` are seals printed earlier (on reports) that the
/// chain must still contain.
pub async fn verify(store: &Store, checkpoints: &[Seal]) -> Result<Verified, VerifyError> {
    for _ in 0..ATTEMPTS_MAX {
        if let Some(verified) = verify_once(store, checkpoints).await? {
            return Ok(verified);
        }
    }
    Err(VerifyError::Busy(ATTEMPTS_MAX))
}

/// One pass; `None` when the head moved during the pass (the roll-ups read at the end then
/// include seals this pass did not check, so it cannot conclude).
async fn verify_once(store: &Store, checkpoints: &[Seal]) -> Result<Option<Verified>, VerifyError> {
    let status = store.seal_status().await?;
    let mut audit = ChainAudit::with_checkpoints(checkpoints.iter().copied());
    let mut after = 0;
    while after < status.head.sequence {
        let page = store
            .sealed_entries(after, PAGE.min(status.head.sequence - after))
            .await?;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        for link in &page {
            audit.check(link)?;
        }
        check_gift_movements(store, &page).await?;
    }
    if let Some(difference) = store.tally_differences().await?.into_iter().next() {
        return Err(VerifyError::Derived(difference));
    }
    let rollups = store.rollups().await?;
    let now = store.seal_status().await?;
    if now.head != status.head {
        return Ok(None);
    }
    let recorded_head = Some(status.head).filter(|head| head.sequence > 0);
    let summary = audit.finish(recorded_head, rollups)?;
    Ok(Some(Verified {
        summary,
        unsealed: now.unsealed,
    }))
}

/// Each sealed entry linked to a gift has its movement stored as its postings say, and no
/// other entry has one.
async fn check_gift_movements(store: &Store, page: &[SealedEntry]) -> Result<(), VerifyError> {
    let ids: Vec<i64> = page.iter().map(|link| link.entry.id.0).collect();
    let stored = store.gift_movements(&ids).await?;
    let mut expected: Vec<_> = page
        .iter()
        .filter_map(|link| gift_movement(&link.entry))
        .collect();
    // The store lists by entry id; seal order differs from it when a batch that took its
    // ids earlier committed later.
    expected.sort_unstable_by_key(|movement| movement.entry_id);
    if stored == expected {
        return Ok(());
    }
    let first_difference = expected
        .iter()
        .zip(&stored)
        .find(|(e, s)| e != s)
        .map(|(e, s)| format!("entry {}: stored {s:?}, postings say {e:?}", e.entry_id))
        .unwrap_or_else(|| {
            format!(
                "{} gift movements stored for entries {}..={}, {} expected",
                stored.len(),
                ids.first().unwrap_or(&0),
                ids.last().unwrap_or(&0),
                expected.len()
            )
        });
    Err(VerifyError::Derived(first_difference))
}
