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
    /// Starts the combiner's flusher; it stops when the last clone is dropped.
    ///
    /// One batch in flight, on either store: the webhooks that arrive while it commits wait
    /// for that one commit and then share the next, so batches are larger, a webhook costs
    /// less, and more of the cores are left to the worker, which sets the intake's pace
    /// (intake bench, 9 pairs: 1,994–2,201 donations/s against 1,825–2,191 with two in
    /// flight, acknowledgement p99 about the same; BENCHMARKS.md).
    pub fn start(store: Store) -> Inbox {
        let options = CombinerOptions {
            flushers: 1,
            ..CombinerOptions::default()
        };
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
