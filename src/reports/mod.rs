//! Treasurer reports: what the books say as of an instant, in shapes people and regulators
//! read (JSON, CSV). Each report is a query here and a pure computation and rendering in its
//! own module.
//!
//! Invariants: a report is a pure function of what the store read as of its instant (the
//! end of a day in the campaign's time zone, or an exact instant); amounts are exact decimal
//! strings in the campaign's currency; every report names the seal that covered the books
//! when it was read, and how many entries were not sealed yet.

pub mod summary;

pub use summary::{GiftFigure, Summary};

use chrono::{DateTime, Utc};

use crate::campaign::Campaign;
use crate::store::{Store, StoreError};

/// The `summary` report of `campaign` as of `as_of`. The seal is read first: it covers at
/// least every entry sealed before the figures were read.
pub async fn summary(
    store: &Store,
    campaign: &Campaign,
    as_of: DateTime<Utc>,
) -> Result<Summary, StoreError> {
    let seal = store.seal_status().await?;
    let balances = store.balances(campaign.id, as_of).await?;
    let gifts = store.kept_gifts(campaign.id, as_of).await?;
    Summary::compute(campaign, as_of, &balances, &gifts, seal.head, seal.unsealed)
        .map_err(|e| StoreError::Corrupt(format!("summary of {}: {e}", campaign.slug)))
}
