//! Intake: provider events on their way to the ledger.
//!
//! Invariants: an event is stored (raw, once per provider event id) before it is
//! acknowledged; an acknowledged event is never lost; a stored event's status only moves
//! forward (pending → posted | parked; ignored stays ignored).

pub mod inbox;
pub mod plan;
pub mod reconcile;
pub mod registrar;
pub mod rules;
pub mod worker;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use inbox::Inbox;

use crate::provider::stripe::event::Envelope;

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

/// A verified event on its way into the inbox.
#[derive(Debug, Clone)]
pub struct NewInboxEvent {
    pub envelope: Envelope,
    /// The exact bytes the provider signed.
    pub payload: String,
    pub status: InboxStatus,
    pub received_at: DateTime<Utc>,
}

/// What recording an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// False when the event id was already in the inbox (a redelivery).
    pub inserted: bool,
    /// The stored event's status (the earlier one's, for a redelivery).
    pub status: InboxStatus,
}

/// What the worker decided for one inbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Handled: its money movements are in the ledger (or it had none).
    Posted,
    /// Failed this time; try again at `next_attempt_at`.
    Retry {
        error: String,
        next_attempt_at: DateTime<Utc>,
    },
    /// Failed for good (or too often): listed for the treasurer.
    Parked { error: String },
}

/// A paid gift as the provider (or the treasurer, for a cheque) describes it, ready to
/// become a contribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContribution {
    pub campaign_id: crate::ids::CampaignId,
    pub donor: crate::store::NewDonor,
    /// The provider's charge id; for an offline gift, the method and the treasurer's
    /// reference (`cheque:0001234`).
    pub charge_id: String,
    pub method: crate::compliance::screen::Method,
    pub payment_intent_id: Option<String>,
    /// Set from `checkout.session.*` events only; kept once known.
    pub checkout_session_id: Option<String>,
    pub amount: crate::money::Money,
    pub paid_at: DateTime<Utc>,
    /// Checkout's custom fields as a JSON object; kept once known.
    pub custom_fields: Option<String>,
    /// What the donor declared (`compliance::Declaration` as JSON); kept once known.
    pub declared: Option<String>,
    /// The election the donor designated, if any.
    pub election: Option<String>,
    pub review_reason: Option<String>,
}

/// The stored donor and contribution a gift's entries link to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContributionRef {
    pub donor_id: i64,
    pub contribution_id: i64,
}

/// The key that groups a donor's gifts until the compliance engine resolves identities:
/// the email, trimmed and lower-cased; else the card; else the charge itself.
pub fn identity_key(payer: &crate::provider::stripe::objects::Payer, charge_id: &str) -> String {
    if let Some(email) = payer
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        return format!("email:{}", email.to_lowercase());
    }
    if let Some(card) = payer.card_fingerprint.as_deref().filter(|f| !f.is_empty()) {
        return format!("card:{card}");
    }
    format!("charge:{charge_id}")
}

/// A contribution as the ledger stands at some instant: what the donor gave, less what was
/// refunded or charged back by then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetContribution {
    pub id: i64,
    pub campaign_id: crate::ids::CampaignId,
    pub donor_id: i64,
    pub paid_at: DateTime<Utc>,
    pub net: crate::money::Money,
}

/// How the intake looks a recorded gift up before asking Stripe anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiftKey<'a> {
    Charge(&'a str),
    /// A Checkout session names the payment intent; one intent is paid by one charge.
    PaymentIntent(&'a str),
}

/// A gift as recorded, with what the intake needs to know whether anything is left to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedGift {
    pub gift: ContributionRef,
    pub charge_id: String,
    /// Its Checkout session is recorded (with what the donor typed into it).
    pub has_session: bool,
    /// Its payment is posted: screened, decided and in the ledger (one transaction).
    pub decided: bool,
}

/// A stored contribution with its donor's name and email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contribution {
    pub id: i64,
    pub campaign_id: crate::ids::CampaignId,
    pub donor_id: i64,
    pub donor_name: Option<String>,
    pub donor_email: Option<String>,
    pub charge_id: String,
    pub checkout_session_id: Option<String>,
    pub amount: crate::money::Money,
    pub paid_at: DateTime<Utc>,
    pub card_country: Option<String>,
    pub card_fingerprint: Option<String>,
    pub custom_fields: Option<String>,
    pub review_reason: Option<String>,
}
