//! A won dispute: the money a bank withdrew from a gift comes back. Meanwhile the donor may
//! have given again into the room the withdrawal freed; for the caps, money that returns is
//! then received again, on the day it returns, and what of it passes a cap is owed back.
//!
//! Invariants:
//! - The reinstatement is screened like a gift of its amount received that day, against the
//!   person's gifts as the ledger holds them before it (the disputed gift at its withdrawn
//!   net), under the person's lock, and posted in the same transaction as its ruling.
//! - What is owed is set aside at once (`income:donations` → `liabilities:refunds_due`,
//!   effective with the reinstatement) and becomes a new refund round of the gift, which the
//!   intake refunds like any excess.
//! - A replay (the reinstatement already in the journal) decides nothing again.

use chrono::{DateTime, NaiveDate, Utc};

use super::posting::Payment;
use super::{set_aside_entry, PersonHistory, SetAside};
use crate::ledger::Entry;
use crate::money::Money;
use crate::store::{Store, StoreError};

/// A dispute's reinstating movement on its way into the books: screened as a payment of
/// the reinstated amount, received when the money returned, fulfilling no checkout.
#[derive(Debug, Clone)]
pub struct Reinstatement {
    /// The gift, with the movement's own entry (`income:donations:chargebacks` credited
    /// back), its amount and its time.
    pub payment: Payment,
    /// The provider's id of the movement: it names the owed entry, once per reinstatement.
    pub movement: String,
}

/// What a reinstatement puts over a cap: set aside by `entry`, refunded as a new round.
#[derive(Debug, Clone)]
pub struct OwedBack {
    pub entry: Entry,
    pub amount: Money,
    pub reason: String,
    pub remedy_by: Option<NaiveDate>,
}

/// The law's answer for `reinstatement` given the person's history: what must go back, if
/// anything. Pure.
pub fn rule(
    reinstatement: &Reinstatement,
    history: PersonHistory,
) -> Result<Option<OwedBack>, StoreError> {
    let payment = &reinstatement.payment;
    let ruling = payment.screen(history)?;
    if !ruling.owed.is_positive() {
        return Ok(None);
    }
    let rule = ruling.decision.rule.as_deref().unwrap_or("the rule pack");
    let movement = &reinstatement.movement;
    let aside = SetAside {
        key: format!("owed:reinstated:{movement}"),
        source: format!("reinstated:{movement}"),
        description: format!("Owed back to the donor (reinstated by a won dispute over {rule})"),
        at: payment.paid_at,
    };
    let entry = set_aside_entry(&payment.campaign, payment.gift, ruling.owed, aside)?;
    Ok(Some(OwedBack {
        entry,
        amount: ruling.owed,
        reason: format!("reinstated by a won dispute, {}", ruling.owed_reason()),
        remedy_by: ruling.remedy_by(),
    }))
}

/// Screens and posts `reinstatement` in one transaction under the person's lock; returns
/// what it put over a cap (zero when nothing, or when it was posted before).
pub async fn post_reinstatement(
    store: &Store,
    reinstatement: &Reinstatement,
    now: DateTime<Utc>,
) -> Result<Money, StoreError> {
    let payment = &reinstatement.payment;
    store
        .post_screened_reinstatement(
            &payment.campaign,
            payment.gift,
            &payment.entry,
            now,
            |history| rule(reinstatement, history),
        )
        .await
}
