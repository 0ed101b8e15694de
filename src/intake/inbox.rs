//! The inbox's front door: webhook handlers store events through a write combiner, so
//! concurrent deliveries share one transaction instead of paying a commit each.
//!
//! Invariant: `record` answers only once the event is durable (or was already stored), so a
//! 2xx sent after it never acknowledges an event that could be lost.

use super::{NewInboxEvent, Recorded};
use crate::combiner::{Combiner, CombinerOptions};
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct Inbox {
    combiner: Combiner<NewInboxEvent, Recorded>,
}

impl Inbox {
    /// Starts the combiner's flushers; they stop when the last clone is dropped.
    pub fn start(store: Store) -> Inbox {
        let options = CombinerOptions::for_store(&store);
        let combiner = Combiner::start("inbox", options, move |events: Vec<NewInboxEvent>| {
            let store = store.clone();
            async move { store.record_stripe_events(&events).await }
        });
        Inbox { combiner }
    }

    /// Stores `event` once per event id; a redelivery reports the stored copy's status.
    pub async fn record(&self, event: NewInboxEvent) -> Result<Recorded, StoreError> {
        self.combiner.submit(event).await
    }
}
