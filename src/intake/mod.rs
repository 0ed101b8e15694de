//! Intake: provider events on their way to the ledger.
//!
//! Invariants: an event is stored (raw, once per provider event id) before it is
//! acknowledged; an acknowledged event is never lost; a stored event's status only moves
//! forward (pending → posted | parked; ignored stays ignored).

pub mod rules;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where an inbox event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxStatus {
    /// Waiting for the worker.
    Pending,
    /// In the ledger.
    Posted,
    /// A type Obole does not post; kept for the record.
    Ignored,
    /// Failed too many times; listed for the treasurer.
    Parked,
}

impl InboxStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            InboxStatus::Pending => "pending",
            InboxStatus::Posted => "posted",
            InboxStatus::Ignored => "ignored",
            InboxStatus::Parked => "parked",
        }
    }

    pub fn parse(text: &str) -> Option<InboxStatus> {
        [
            InboxStatus::Pending,
            InboxStatus::Posted,
            InboxStatus::Ignored,
            InboxStatus::Parked,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// An event as the inbox holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxEvent {
    pub event_id: String,
    pub kind: String,
    pub livemode: bool,
    pub created: i64,
    pub api_version: Option<String>,
    /// The exact bytes the provider signed.
    pub payload: String,
    pub received_at: DateTime<Utc>,
    pub status: InboxStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// What recording an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// False when the event id was already in the inbox (a redelivery).
    pub inserted: bool,
    /// The stored event's status (the earlier one's, for a redelivery).
    pub status: InboxStatus,
}
