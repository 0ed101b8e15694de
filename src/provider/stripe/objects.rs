//! Stripe's objects as Obole reads them: plain values, independent of the API client's wire
//! types, so the posting rules and the worker's decisions stay pure and testable.
//!
//! Invariants: amounts are Stripe's signed integer minor units in the object's currency
//! (lower-case ISO code, as Stripe writes it); times are Unix seconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A Stripe balance transaction: one movement of money in the Stripe balance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BalanceTransaction {
    pub id: String,
    /// Signed, in minor units of `currency` (the settlement currency).
    pub amount: i64,
    pub fee: i64,
    pub net: i64,
    pub currency: String,
    /// Unix seconds: when the money moved.
    pub created: i64,
    pub reporting_category: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The object that caused the movement: `ch_…`, `re_…`, `du_…`, `po_…`.
    #[serde(default)]
    pub source: Option<String>,
}

/// A postal address as Stripe collects it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub state: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
}

/// Who paid, as the charge states it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Payer {
    pub name: Option<String>,
    pub email: Option<String>,
    pub address: Address,
    /// The card's issuing country: a signal for eligibility checks, not proof of nationality.
    pub card_country: Option<String>,
    /// Stripe's per-card identity across payments.
    pub card_fingerprint: Option<String>,
    pub card_brand: Option<String>,
    pub card_funding: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Succeeded,
    Pending,
    Failed,
}

/// A charge's current state at Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub id: String,
    pub status: ChargeStatus,
    pub amount: i64,
    pub currency: String,
    pub created: i64,
    pub payment_intent: Option<String>,
    /// Unset until the payment is captured and settled (asynchronous capture).
    pub balance_transaction: Option<String>,
    /// That balance transaction itself, when Stripe sent it expanded (one call instead of
    /// two; see `StripeClient::charge`).
    pub payment_transaction: Option<BalanceTransaction>,
    pub amount_refunded: i64,
    pub disputed: bool,
    pub metadata: BTreeMap<String, String>,
    pub payer: Payer,
}

/// A refund's money movements: the refund itself and, if it failed after succeeding, the
/// movement that returned the money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub charge: Option<String>,
    pub status: String,
    pub balance_transaction: Option<String>,
    pub failure_balance_transaction: Option<String>,
    /// What Obole wrote on a refund it asked for (`obole_owed`: the contribution whose owed
    /// money it returns).
    pub metadata: BTreeMap<String, String>,
}

/// The metadata key Obole sets on a refund of money owed back to a donor.
pub const OWED_REFUND_KEY: &str = "obole_owed";

/// A dispute with the balance transactions it caused (withdrawal, reinstatement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    pub id: String,
    pub charge: String,
    pub status: String,
    pub balance_transactions: Vec<BalanceTransaction>,
}

/// A payout to the campaign's bank account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// `pending`, `in_transit`, `paid`, `failed` or `canceled`.
    pub status: String,
    /// Unix seconds: when the bank receives (or received) the money.
    pub arrival_date: i64,
    pub balance_transaction: Option<String>,
    /// Set when a payout failed or was canceled: the movement that returned the money.
    pub failure_balance_transaction: Option<String>,
}

/// A hosted Checkout session to open for one donation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckoutSession {
    /// Minor units.
    pub amount: i64,
    /// Lower-case ISO code.
    pub currency: String,
    /// The line the donor sees ("Don à Dupont 2027").
    pub description: String,
    /// Set on the session and on its payment intent: `campaign`, `reservation`.
    pub metadata: BTreeMap<String, String>,
    /// Stripe's `client_reference_id`: the reservation.
    pub client_reference: String,
    pub customer_email: Option<String>,
    /// `fr` or `en`.
    pub locale: String,
    /// Unix seconds; Stripe takes 30 minutes to 24 hours from now.
    pub expires_at: i64,
    /// May contain `{CHECKOUT_SESSION_ID}`, which Stripe fills in.
    pub success_url: String,
    pub cancel_url: String,
    /// Names the reservation, so a retried request opens one session, not two.
    pub idempotency_key: String,
}

/// An opened Checkout session: where to send the donor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: String,
    pub url: Option<String>,
}
