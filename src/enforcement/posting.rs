//! The authoritative check, when a payment posts: the gift's money movement, its decision
//! and, when some of it must go back, the entry setting that part aside as owed
//! (`income:donations` → `liabilities:refunds_due`), all in one transaction under the
//! person's lock.
//!
//! The intake posts through a [`Screener`], which batches concurrent payments the way the
//! `Journal` batches entries; a batch that fails is retried payment by payment, so one bad
//! payment fails alone.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{election_of, screening, set_aside_entry, PersonHistory, SetAside, StoredRuling};
use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::combiner::{Combiner, CombinerOptions};
use crate::compliance::screen::Method;
use crate::compliance::{Declaration, RulePack, Ruling};
use crate::intake::ContributionRef;
use crate::ledger::Entry;
use crate::money::Money;
use crate::store::{Store, StoreError};

/// A payment on its way into the books, with what screening it needs.
#[derive(Debug, Clone)]
pub struct Payment {
    pub campaign: Campaign,
    pub pack: RulePack,
    pub gift: ContributionRef,
    /// The checkout reservation it fulfils, released when it posts.
    pub reservation: Option<i64>,
    /// The money movement (a Stripe charge's balance transaction, a cheque received).
    pub entry: Entry,
    pub amount: Money,
    pub paid_at: DateTime<Utc>,
    pub method: Method,
    pub declaration: Declaration,
    pub donor_name: Option<String>,
    pub has_address: bool,
}

impl Payment {
    /// The election the gift counts for.
    pub fn election(&self) -> Option<String> {
        election_of(&self.campaign, self.declaration.election.as_deref()).map(|e| e.key)
    }

    /// The pack's ruling on this money received at `paid_at`, given the person's history.
    /// Pure.
    pub fn screen(&self, history: PersonHistory) -> Result<Ruling, StoreError> {
        let screening = screening(
            &self.campaign,
            &self.declaration,
            self.donor_name.as_deref(),
            self.has_address,
            &history,
            self.amount,
            self.paid_at,
            self.method,
        );
        Ruling::decide(&self.pack, screening)
            .map_err(|e| StoreError::Refused(format!("screening: {e}")))
    }
}

/// The law's answer for `payment`, given the person's history: the ruling and, when part of
/// the gift must go back, the entry setting it aside. Pure.
pub fn rule(
    payment: &Payment,
    history: PersonHistory,
) -> Result<(Ruling, Option<Entry>), StoreError> {
    let ruling = payment.screen(history)?;
    let set_aside = owed_entry(payment, &ruling)?;
    Ok((ruling, set_aside))
}

/// Screens one payment against the person's history and posts it with its decision, in its
/// own transaction (gifts recorded by hand; see [`Screener`] for the intake's flow).
pub async fn post_payment(
    store: &Store,
    payment: &Payment,
    now: DateTime<Utc>,
) -> Result<StoredRuling, StoreError> {
    store
        .post_screened_payment(
            &payment.campaign,
            payment.gift,
            payment.reservation,
            &payment.entry,
            now,
            |history| rule(payment, history),
        )
        .await
}

/// The intake's way in: concurrent payments are screened and posted in batches, one
/// transaction each (the persons of the batch locked together, in id order), a payment
/// seeing the earlier payments of its batch as part of its person's history. Each caller gets
/// its own ruling, once its batch is durable.
#[derive(Clone)]
pub struct Screener {
    combiner: Combiner<Payment, StoredRuling>,
}

impl Screener {
    pub fn start(store: Store, clock: Arc<dyn Clock>, options: CombinerOptions) -> Screener {
        let combiner = Combiner::start("screener", options, move |payments: Vec<Payment>| {
            let store = store.clone();
            let now = clock.now();
            async move { store.post_screened_payments(&payments, now, rule).await }
        });
        Screener { combiner }
    }

    pub async fn post(&self, payment: Payment) -> Result<StoredRuling, StoreError> {
        self.combiner.submit(payment).await
    }
}

/// The entry moving what the campaign owes back out of its income, effective with the gift
/// so that no report, as of any date, counts it as raised.
fn owed_entry(payment: &Payment, ruling: &Ruling) -> Result<Option<Entry>, StoreError> {
    if !ruling.owed.is_positive() {
        return Ok(None);
    }
    let contribution = payment.gift.contribution_id;
    let rule = ruling.decision.rule.as_deref().unwrap_or("the rule pack");
    let aside = SetAside {
        key: format!("owed:{contribution}"),
        source: format!("decision:{contribution}"),
        description: format!("Owed back to the donor ({}, {rule})", ruling.verdict),
        at: payment.paid_at,
    };
    set_aside_entry(&payment.campaign, payment.gift, ruling.owed, aside).map(Some)
}
