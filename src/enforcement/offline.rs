//! Gifts that did not come through a payment provider: cheques, transfers, direct debits and
//! cash, recorded by the treasurer and screened by the same rules as a card.
//!
//! A gift the rules refuse outright (cash above the per-gift limit, a legal person, a foreign
//! national) is not recorded: the treasurer is told why and hands the money back. A gift that
//! passes a cap is recorded whole and its excess set aside as owed, exactly as for a card; the
//! treasurer returns it and records that with [`settle_owed`].
//!
//! Invariants: the treasurer's reference (a cheque number, a transfer id, a receipt number)
//! names the gift for good: recording it again replays, never records a second gift.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use super::checkout::{reserve, CheckoutVerdict, GiftRequest};
use super::posting::{post_payment, Payment};
use super::{has_address, method_str, new_donor, StoredRuling};
use crate::campaign::Campaign;
use crate::compliance::screen::Method;
use crate::compliance::{Declaration, RulePack};
use crate::ids::IdempotencyKey;
use crate::intake::NewContribution;
use crate::ledger::{Entry, EntryDraft, Links};
use crate::money::Money;
use crate::provider::stripe::objects::Payer;
use crate::store::{Store, StoreError};

/// A gift as the treasurer records it.
#[derive(Debug, Clone)]
pub struct OfflineGift {
    pub method: Method,
    pub amount: Money,
    /// The day the campaign received it.
    pub received: NaiveDate,
    /// The treasurer's reference: cheque number, transfer id, cash receipt number.
    pub reference: String,
    pub payer: Payer,
    pub declaration: Declaration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OfflineOutcome {
    /// In the books. `owed` is what passes a cap and must go back to the donor.
    Recorded {
        contribution_id: i64,
        verdict: String,
        owed: Money,
        decision: String,
    },
    /// Not recorded: the rules refuse this gift.
    Refused {
        reason: String,
        rule: Option<String>,
        room: Option<Money>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("a {0} gift is paid by card through the checkout, not recorded by hand")]
    Card(&'static str),
    #[error("the reference must be 1 to 100 printable characters without spaces")]
    Reference,
    #[error("the amount must be positive and in {0}")]
    Amount(crate::money::Currency),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The asset account an offline gift lands in.
fn asset_account(method: Method) -> &'static str {
    match method {
        Method::Cheque => "assets:cheques",
        Method::Cash => "assets:cash",
        Method::Transfer | Method::DirectDebit | Method::Card => "assets:bank",
    }
}

/// Screens and records an offline gift.
pub async fn record_offline_gift(
    store: &Store,
    campaign: &Campaign,
    pack: &RulePack,
    gift: &OfflineGift,
    now: DateTime<Utc>,
) -> Result<OfflineOutcome, OfflineError> {
    if gift.method == Method::Card {
        return Err(OfflineError::Card("card"));
    }
    if !gift.amount.is_positive() || gift.amount.currency() != campaign.currency {
        return Err(OfflineError::Amount(campaign.currency));
    }
    let reference = gift.reference.trim();
    if reference.is_empty() || reference.len() > 100 {
        return Err(OfflineError::Reference);
    }
    let charge_id = format!("{}/{}:{reference}", campaign.slug, method_str(gift.method));
    let key = IdempotencyKey::parse(format!("offline:{charge_id}"))
        .map_err(|_| OfflineError::Reference)?;
    let identity = crate::intake::identity_key(&gift.payer, &charge_id);
    let donor = new_donor(identity, &gift.payer);

    // Recorded before? Replay its decision rather than screening it against itself.
    if let Some(known) = store.contribution_by_charge(&charge_id).await? {
        let earlier = crate::intake::ContributionRef {
            donor_id: known.donor_id,
            contribution_id: known.id,
        };
        let ruling = post(store, campaign, pack, gift, &key, earlier, None, now).await?;
        return Ok(recorded(known.id, ruling));
    }

    // First the check before accepting the money, counting open checkouts: a refusal
    // records nothing but the decision.
    let request = GiftRequest {
        campaign,
        pack,
        donor: donor.clone(),
        amount: gift.amount,
        method: gift.method,
        declaration: gift.declaration.clone(),
        hold_for: chrono::Duration::minutes(10),
    };
    let (verdict, stored) = reserve(store, &request, now).await?;
    let reservation = match verdict {
        CheckoutVerdict::Reserved { reservation_id, .. } => Some(reservation_id),
        CheckoutVerdict::Refused { reason, rule, room } if stored.verdict == "refuse" => {
            return Ok(OfflineOutcome::Refused { reason, rule, room })
        }
        // Over a cap: the money is in hand, so it is recorded and the excess owed back.
        CheckoutVerdict::Refused { .. } => None,
    };
    let paid_at = received_at(campaign, gift.received);
    let contribution = NewContribution {
        campaign_id: campaign.id,
        donor,
        charge_id,
        method: gift.method,
        payment_intent_id: None,
        checkout_session_id: None,
        amount: gift.amount,
        paid_at,
        custom_fields: None,
        declared: Some(gift.declaration.to_json()),
        election: gift.declaration.election.clone(),
        review_reason: None,
    };
    let recorded_gift = store.record_contribution(&contribution, now).await?;
    let ruling = post(
        store,
        campaign,
        pack,
        gift,
        &key,
        recorded_gift,
        reservation,
        now,
    )
    .await?;
    Ok(recorded(recorded_gift.contribution_id, ruling))
}

fn recorded(contribution_id: i64, ruling: StoredRuling) -> OfflineOutcome {
    OfflineOutcome::Recorded {
        contribution_id,
        verdict: ruling.verdict,
        owed: ruling.owed,
        decision: ruling.decision,
    }
}

/// Noon in the campaign's time zone on the day received: inside that day whatever the
/// daylight-saving changes, so "as of" that day counts it.
fn received_at(campaign: &Campaign, day: NaiveDate) -> DateTime<Utc> {
    let noon = day.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap_or_default());
    campaign
        .timezone
        .from_local_datetime(&noon)
        .earliest()
        .map_or_else(|| noon.and_utc(), |t| t.with_timezone(&Utc))
}

#[allow(clippy::too_many_arguments)]
async fn post(
    store: &Store,
    campaign: &Campaign,
    pack: &RulePack,
    gift: &OfflineGift,
    key: &IdempotencyKey,
    recorded: crate::intake::ContributionRef,
    reservation: Option<i64>,
    now: DateTime<Utc>,
) -> Result<StoredRuling, OfflineError> {
    let paid_at = received_at(campaign, gift.received);
    let what = match gift.method {
        Method::Cheque => "cheque",
        Method::Cash => "cash",
        Method::Transfer => "bank transfer",
        Method::DirectDebit => "direct debit",
        Method::Card => "card",
    };
    let draft = EntryDraft::new(key.clone(), format!("Gift by {what}"), paid_at)
        .links(Links {
            source: Some(key.as_str().to_owned()),
            event_id: None,
            donor_id: Some(recorded.donor_id),
            contribution_id: Some(recorded.contribution_id),
        })
        .post(asset_account(gift.method), gift.amount)
        .post(
            "income:donations",
            Money::from_minor(-gift.amount.minor(), gift.amount.currency()),
        );
    let entry = Entry::new(campaign, draft).map_err(|e| StoreError::Refused(e.to_string()))?;
    let payment = Payment {
        campaign: campaign.clone(),
        pack: pack.clone(),
        gift: recorded,
        reservation,
        entry,
        amount: gift.amount,
        paid_at,
        method: gift.method,
        declaration: gift.declaration.clone(),
        donor_name: gift.payer.name.clone(),
        has_address: has_address(&gift.payer),
    };
    Ok(post_payment(store, &payment, now).await?)
}

/// Where the money owed back left from, when the treasurer returns it by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnedFrom {
    Bank,
    Cheques,
    Cash,
}

/// Records that the treasurer gave back money owed for `contribution` (a cheque or cash
/// returned, a transfer sent): the liability is settled from the account named. Idempotent on
/// the treasurer's `reference`.
#[allow(clippy::too_many_arguments)]
pub async fn settle_owed(
    store: &Store,
    campaign: &Campaign,
    contribution: i64,
    amount: Money,
    from: ReturnedFrom,
    reference: &str,
    returned_on: NaiveDate,
    now: DateTime<Utc>,
) -> Result<crate::store::Posted, StoreError> {
    let owed = store
        .owed_refunds(Some(campaign.id), None, i64::MAX)
        .await?
        .into_iter()
        .find(|o| o.contribution_id == contribution)
        .ok_or_else(|| {
            StoreError::Refused(format!(
                "contribution {contribution} owes nothing back in campaign {}",
                campaign.slug
            ))
        })?;
    if amount > owed.outstanding {
        return Err(StoreError::Refused(format!(
            "{amount} is more than the {} still owed for contribution {contribution}",
            owed.outstanding
        )));
    }
    let account = match from {
        ReturnedFrom::Bank => "assets:bank",
        ReturnedFrom::Cheques => "assets:cheques",
        ReturnedFrom::Cash => "assets:cash",
    };
    let key = IdempotencyKey::parse(format!("owed-returned:{contribution}:{}", reference.trim()))
        .map_err(|e| StoreError::Refused(e.to_string()))?;
    let draft = EntryDraft::new(
        key.clone(),
        "Money owed back returned to the donor by the treasurer",
        received_at(campaign, returned_on),
    )
    .links(Links {
        source: Some(key.as_str().to_owned()),
        event_id: None,
        donor_id: None,
        contribution_id: Some(contribution),
    })
    .post("liabilities:refunds_due", amount)
    .post(
        account,
        Money::from_minor(-amount.minor(), amount.currency()),
    );
    let entry = Entry::new(campaign, draft).map_err(|e| StoreError::Refused(e.to_string()))?;
    store.post(&entry, now).await
}
