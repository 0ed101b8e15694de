//! The sealer: extends the hash chain in the background, beside ingestion.
//!
//! Writers only queue their entry (`pending_seal`); this task takes queued entries in
//! batches and seals them, so no writer ever waits for "the previous hash". One sealer per
//! server; several servers on one PostgreSQL take turns on the head's row lock.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// Entries sealed per transaction: large enough to keep up with thousands of writes a
/// second, small enough that one transaction stays well under a second.
pub const BATCH_MAX: i64 = 2_000;
/// How long the sealer sleeps when the queue is empty: the delay before a new entry is sealed.
const IDLE_WAIT: Duration = Duration::from_millis(25);
/// How long it waits after a failure before trying again.
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// Seals until the queue is empty; returns how many entries were sealed.
pub async fn seal_all(store: &Store, clock: &dyn Clock) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let sealed = store.seal_pending(BATCH_MAX, clock.now()).await?;
        total += sealed;
        if sealed == 0 {
            return Ok(total);
        }
    }
}

/// Runs until `stop` is cancelled, then seals what is left and returns.
pub async fn run(store: Store, clock: Arc<dyn Clock>, stop: CancellationToken) {
    loop {
        let wait = match store.seal_pending(BATCH_MAX, clock.now()).await {
            Ok(sealed) if sealed as i64 == BATCH_MAX => continue,
            Ok(_) => IDLE_WAIT,
            Err(error) => {
                tracing::error!(%error, "sealing failed; will retry");
                RETRY_WAIT
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    match seal_all(&store, clock.as_ref()).await {
        Ok(sealed) => tracing::info!(sealed, "sealer stopped"),
        Err(error) => tracing::error!(%error, "final sealing pass failed; entries stay queued"),
    }
}

/// A sealer running in the background.
pub struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Starts [`run`] on its own task.
pub fn spawn(store: Store, clock: Arc<dyn Clock>) -> Running {
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(store, clock, stop.clone()));
    Running { stop, task }
}

impl Running {
    /// Stops the sealer after it has sealed what is queued.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the sealer task failed");
        }
    }
}
