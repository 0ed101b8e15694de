//! Where the intake records gifts and their donors: through a write combiner, so that the
//! gifts synchronised at once share one transaction (a handful of statements on PostgreSQL,
//! one commit on either store) instead of paying a transaction each.
//!
//! Invariant: `record` answers only once the gift, its donor and the donor's links to a person
//! are durable; recording a gift again returns the same ids (idempotent on the charge).

use std::sync::Arc;

use super::{ContributionRef, NewContribution};
use crate::clock::Clock;
use crate::combiner::{Combiner, CombinerOptions};
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct Registrar {
    combiner: Combiner<NewContribution, ContributionRef>,
}

impl Registrar {
    /// Starts the combiner's flushers; they stop when the last clone is dropped.
    pub fn start(store: Store, clock: Arc<dyn Clock>, options: CombinerOptions) -> Registrar {
        let combiner = Combiner::start("registrar", options, move |gifts: Vec<NewContribution>| {
            let store = store.clone();
            let now = clock.now();
            async move { store.record_contributions(&gifts, now).await }
        });
        Registrar { combiner }
    }

    /// Records `gift` and its donor; returns the stored ids.
    pub async fn record(&self, gift: NewContribution) -> Result<ContributionRef, StoreError> {
        self.combiner.submit(gift).await
    }
}
