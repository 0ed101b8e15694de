//! The authoritative check, when a payment posts: the gift's money movement, its decision
//! and, when some of it must go back, the entry setting that part aside as owed
//! (`income:donations` → `liabilities:refunds_due`), all in one transaction under the
//! person's lock.

use chrono::{DateTime, Utc};

use super::{screening, StoredRuling};
use crate::campaign::Campaign;
use crate::compliance::screen::Method;
use crate::compliance::{Declaration, RulePack, Ruling};
use crate::ids::IdempotencyKey;
use crate::intake::ContributionRef;
use crate::ledger::{Entry, EntryDraft, Links};
use crate::money::Money;
use crate::store::{Store, StoreError};

/// A payment on its way into the books, with what screening it needs.
#[derive(Debug, Clone)]
pub struct Payment<'a> {
    pub campaign: &'a Campaign,
    pub pack: &'a RulePack,
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

/// Screens the payment against the person's history and posts it with its decision.
pub async fn post_payment(
    store: &Store,
    payment: &Payment<'_>,
    now: DateTime<Utc>,
) -> Result<StoredRuling, StoreError> {
    store
        .post_screened_payment(
            payment.campaign,
            payment.gift,
            payment.reservation,
            &payment.entry,
            now,
            |history| {
                let screening = screening(
                    payment.campaign,
                    &payment.declaration,
                    payment.donor_name.as_deref(),
                    payment.has_address,
                    &history,
                    payment.amount,
                    payment.paid_at,
                    payment.method,
                );
                let ruling = Ruling::decide(payment.pack, screening)
                    .map_err(|e| StoreError::Refused(format!("screening: {e}")))?;
                let set_aside = owed_entry(payment, &ruling)?;
                Ok((ruling, set_aside))
            },
        )
        .await
}

/// The entry moving what the campaign owes back out of its income, effective with the gift
/// so that no report, as of any date, counts it as raised.
fn owed_entry(payment: &Payment<'_>, ruling: &Ruling) -> Result<Option<Entry>, StoreError> {
    if !ruling.owed.is_positive() {
        return Ok(None);
    }
    let key = IdempotencyKey::parse(format!("owed:{}", payment.gift.contribution_id))
        .map_err(|e| StoreError::Refused(e.to_string()))?;
    let rule = ruling.decision.rule.as_deref().unwrap_or("the rule pack");
    let owed_back = Money::from_minor(-ruling.owed.minor(), ruling.owed.currency());
    let draft = EntryDraft::new(
        key,
        format!("Owed back to the donor ({}, {rule})", ruling.verdict),
        payment.paid_at,
    )
    .links(Links {
        source: Some(format!("decision:{}", payment.gift.contribution_id)),
        event_id: None,
        donor_id: Some(payment.gift.donor_id),
        contribution_id: Some(payment.gift.contribution_id),
    })
    .post("income:donations", ruling.owed)
    .post("liabilities:refunds_due", owed_back);
    Entry::new(payment.campaign, draft)
        .map(Some)
        .map_err(|e| StoreError::Refused(e.to_string()))
}
