//! What both stores share for persons and enforcement: the requests they take and the SQL
//! text that is the same in both dialects.

use chrono::{DateTime, Utc};

use crate::money::Money;
use crate::provider::stripe::objects::Payer;

/// A donor as a payment or a checkout describes them, before they are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDonor {
    /// The key that finds the donor row within the campaign (see `intake::identity_key`).
    pub identity_key: String,
    pub payer: Payer,
    /// The identity keys that link the donor to a person (`compliance::identity::Giver::keys`).
    pub links: Vec<String>,
}

/// A checkout's request to hold room for a gift while the donor pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    pub donor: NewDonor,
    pub amount: Money,
    /// What the donor declared, as JSON (`compliance::Declaration`).
    pub declared: String,
    /// The election the gift counts for, when the donor designated one.
    pub election: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// A treasurer's placement of a donor: merged into the person of `into`, or split off on its
/// own (`into` = `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DonorPlacement {
    pub donor: i64,
    pub into: Option<i64>,
    pub reason: String,
}

/// Refund requests tried this often without success are left to the treasurer (with the
/// worker's backoff, about two hours of trying).
pub(crate) const MAX_REFUND_ATTEMPTS: i32 = 16;

/// Reads a stored payment method.
pub(crate) fn stored_method(
    text: &str,
) -> Result<crate::compliance::screen::Method, super::StoreError> {
    crate::enforcement::method_from_str(text)
        .ok_or_else(|| super::StoreError::Corrupt(format!("payment method {text:?}")))
}

/// An owed refund with what the ledger still shows owed (`liabilities:refunds_due`, credited
/// by the decision and debited by the refund). The gift's postings are found by its entries
/// alone, never through the account's index, whose size grows with the campaign.
pub(crate) const OWED_REFUND_COLUMNS: &str =
    "SELECT x.contribution_id, x.round, x.campaign_id, c.charge_id,
        c.method, x.amount, x.currency, x.reason, x.remedy_by, x.refund_id, x.attempts,
        x.last_error,
        coalesce((SELECT CAST(-sum(CASE WHEN a.name = 'liabilities:refunds_due'
                                        THEN p.amount ELSE 0 END) AS BIGINT)
                  FROM entries e
                  JOIN postings p ON p.entry_id = e.id
                  JOIN accounts a ON a.id = p.account_id
                  WHERE e.contribution_id = x.contribution_id), 0) AS outstanding
     FROM excess_refunds x JOIN contributions c ON c.id = x.contribution_id";

/// A reservation as the payment that fulfils it needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationFacts {
    pub id: i64,
    pub campaign_id: crate::ids::CampaignId,
    pub declared: String,
    pub election: Option<String>,
}

/// A checkout as the donor's pages and the provider's session events see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutFacts {
    pub reservation_id: i64,
    pub campaign_id: crate::ids::CampaignId,
    pub donor_id: i64,
    pub amount: Money,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the room went back: paid, cancelled or expired.
    pub released_at: Option<DateTime<Utc>>,
    /// The gift that paid it, once posted.
    pub contribution_id: Option<i64>,
    pub checkout_session_id: Option<String>,
}

/// How a checkout is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutKey<'a> {
    Reservation(i64),
    /// The provider's Checkout session id.
    Session(&'a str),
}

/// The columns [`CheckoutFacts`] is read from, in its field order.
pub(crate) const CHECKOUT_COLUMNS: &str = "SELECT id, campaign_id, donor_id, amount, currency,
        created_at, expires_at, released_at, contribution_id, checkout_session_id
     FROM reservations";

/// A stored decision, for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDecision {
    pub id: i64,
    pub stage: String,
    pub contribution_id: Option<i64>,
    pub pack: String,
    pub pack_version: u32,
    pub verdict: String,
    pub inputs: String,
    pub decision: String,
}
