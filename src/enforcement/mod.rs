//! Enforcement: where the rule packs meet the books. The law is decided by the pure
//! `compliance::screen`; this shell gathers a person's history from the store, under the
//! person's lock, and writes what the decision implies in the same transaction: at checkout
//! (`checkout`: reservations), when a payment posts (`posting`: the authoritative check,
//! batched for the intake by the `Screener`), and for gifts recorded by hand (`offline`).
//!
//! Invariants:
//! - Atomic per person: the store locks the person (every donor linked to them, across
//!   campaigns) before reading their history and holds the lock until the decision and its
//!   entries are written, so concurrent gifts of one person are screened one after another
//!   and their sum never passes a cap.
//! - Aggregates come from the ledger (each gift's net of refunds and chargebacks), plus, at
//!   checkout, the room other open reservations hold. Never from a counter.
//! - At posting, exactly one decision per gift: the gift's payment entry, the decision and the
//!   excess entry (`income:donations` → `liabilities:refunds_due`) are one transaction; a
//!   retry finds the decision and replays.
//! - A won dispute's reinstatement is screened too (`reinstatement`): the money returns into
//!   a history where the donor may have given again, and what passes a cap is owed back.
//! - What is owed back is refunded through the provider with an idempotency key naming the
//!   gift and the round (the gift's own excess, then each reinstatement's), so it is refunded
//!   once however often the request is retried; the refund's own money movement then settles
//!   the liability.

pub mod checkout;
pub mod offline;
pub mod posting;
pub mod reinstatement;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::campaign::Campaign;
use crate::compliance::identity::Giver;
use crate::compliance::screen::{Election, Gift, Method, PastGift};
use crate::compliance::{Declaration, Ruling, Screening};
use crate::ids::{CampaignId, IdempotencyKey};
use crate::intake::ContributionRef;
use crate::ledger::{Entry, EntryDraft, Links};
use crate::money::Money;
use crate::provider::stripe::objects::Payer;
use crate::store::{NewDonor, StoreError};

/// A gift of the person as the ledger holds it now, to a campaign under the same pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonGift {
    pub contribution_id: i64,
    pub campaign_id: CampaignId,
    /// The election key of the campaign it went to.
    pub election: Option<String>,
    pub paid_at: DateTime<Utc>,
    pub method: Method,
    /// Given, less refunds, chargebacks and any excess set aside.
    pub net: Money,
}

/// Room an open checkout holds for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRoom {
    pub reservation_id: i64,
    pub campaign_id: CampaignId,
    pub election: Option<String>,
    pub created_at: DateTime<Utc>,
    pub amount: Money,
}

/// What the store hands `screen`'s caller under the person's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonHistory {
    /// The person: the id of the donor row the lock is taken on.
    pub person_id: i64,
    pub gifts: Vec<PersonGift>,
    /// Open reservations (checkout only; empty at posting).
    pub held: Vec<HeldRoom>,
}

impl PersonHistory {
    /// The history as `screen` takes it: dates in the campaign's time zone, elections by key,
    /// and nets below zero (a gift charged back while its excess was still owed) counted as
    /// zero, since a chargeback cannot give a donor room beyond what they never gave.
    pub fn past_gifts(&self, campaign: &Campaign) -> Vec<PastGift> {
        let day = |at: DateTime<Utc>| at.with_timezone(&campaign.timezone).date_naive();
        let gifts = self.gifts.iter().map(|g| PastGift {
            amount: g.net.max(Money::zero(g.net.currency())),
            date: day(g.paid_at),
            method: g.method,
            election: g.election.clone(),
            to_this_campaign: g.campaign_id == campaign.id,
        });
        let held = self.held.iter().map(|r| PastGift {
            amount: r.amount,
            date: day(r.created_at),
            method: Method::Card,
            election: r.election.clone(),
            to_this_campaign: r.campaign_id == campaign.id,
        });
        gifts.chain(held).collect()
    }
}

/// The election a gift counts for: the one the donor designated (US law lets a donor give to
/// the primary and to the general election separately), else the campaign's; with the
/// campaign's financing period when set.
/// Why and under which key a part of a gift is set aside as owed back.
pub(crate) struct SetAside {
    pub key: String,
    pub source: String,
    pub description: String,
    pub at: DateTime<Utc>,
}

/// The entry moving `owed` of `gift` out of the campaign's income into what it owes the
/// donor (`income:donations` → `liabilities:refunds_due`), effective `aside.at`, so that no
/// report from then on counts it as raised.
pub(crate) fn set_aside_entry(
    campaign: &Campaign,
    gift: ContributionRef,
    owed: Money,
    aside: SetAside,
) -> Result<Entry, StoreError> {
    let key = IdempotencyKey::parse(aside.key).map_err(|e| StoreError::Refused(e.to_string()))?;
    let draft = EntryDraft::new(key, aside.description, aside.at)
        .links(Links {
            source: Some(aside.source),
            event_id: None,
            donor_id: Some(gift.donor_id),
            contribution_id: Some(gift.contribution_id),
        })
        .post("income:donations", owed)
        .post(
            "liabilities:refunds_due",
            Money::from_minor(-owed.minor(), owed.currency()),
        );
    Entry::new(campaign, draft).map_err(|e| StoreError::Refused(e.to_string()))
}

pub fn election_of(campaign: &Campaign, designated: Option<&str>) -> Option<Election> {
    let key = designated
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .or_else(|| campaign.election.clone())?;
    Some(Election {
        key,
        period: campaign.financing_period,
    })
}

/// A stored decision, as its caller needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRuling {
    pub decision_id: i64,
    /// `accept`, `accept_part`, `refuse` or `hold`.
    pub verdict: String,
    /// What the campaign gives back (the excess, or the whole gift when refused).
    pub owed: Money,
    /// The decision as JSON (its reason, rule, source, room).
    pub decision: String,
    /// The reservation made (checkout, when the gift may go ahead).
    pub reservation_id: Option<i64>,
    /// False when the decision had already been taken (a retry).
    pub fresh: bool,
}

impl StoredRuling {
    /// A decision just taken and stored as `decision_id`.
    pub fn taken(decision_id: i64, ruling: Ruling, reservation_id: Option<i64>) -> StoredRuling {
        StoredRuling {
            decision_id,
            verdict: ruling.verdict.to_owned(),
            owed: ruling.owed,
            decision: ruling.decision_json,
            reservation_id,
            fresh: true,
        }
    }
}

/// What `screen` is given for a gift of `amount` paid by `method` at `at`: what the donor
/// declared (and whether the campaign holds their name and address), and the person's
/// history as the store read it under their lock.
#[allow(clippy::too_many_arguments)]
pub fn screening(
    campaign: &Campaign,
    declaration: &Declaration,
    donor_name: Option<&str>,
    has_address: bool,
    history: &PersonHistory,
    amount: Money,
    at: DateTime<Utc>,
    method: Method,
) -> Screening {
    Screening {
        donor: declaration.donor(donor_name, has_address),
        history: history.past_gifts(campaign),
        gift: Gift {
            amount,
            date: at.with_timezone(&campaign.timezone).date_naive(),
            method,
            election: election_of(campaign, declaration.election.as_deref()),
        },
    }
}

/// Money a decision made due back to a donor, and where its refund stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwedRefund {
    pub contribution_id: i64,
    /// 0 for the excess found when the gift posted; 1, 2, … for excess a won dispute
    /// reinstated later. Each round is one refund request.
    pub round: i32,
    pub campaign_id: CampaignId,
    /// The provider's charge, or the treasurer's reference for an offline gift.
    pub charge_id: String,
    pub method: Method,
    pub amount: Money,
    pub reason: String,
    pub remedy_by: Option<NaiveDate>,
    /// The provider's refund, once requested.
    pub refund_id: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// Still owed, as the ledger shows (`liabilities:refunds_due` for the gift).
    pub outstanding: Money,
}

/// A donor as a payment or a checkout names them, with the keys that link them to a person.
pub fn new_donor(identity_key: String, payer: &Payer) -> NewDonor {
    let a = &payer.address;
    let giver = Giver {
        name: payer.name.clone(),
        email: payer.email.clone(),
        card_fingerprint: payer.card_fingerprint.clone(),
        address: a.line1.clone().map(|line1| {
            (
                line1,
                a.postal_code.clone().unwrap_or_default(),
                a.country.clone().unwrap_or_default(),
            )
        }),
    };
    NewDonor {
        identity_key,
        links: giver.keys(),
        payer: payer.clone(),
    }
}

/// Whether the payer gave a postal address (a first line at least).
pub fn has_address(payer: &Payer) -> bool {
    payer
        .address
        .line1
        .as_deref()
        .is_some_and(|l| !l.trim().is_empty())
}

impl OwedRefund {
    /// Past its remedy deadline (US law: 60 days) and still owed.
    pub fn overdue(&self, today: NaiveDate) -> bool {
        self.remedy_by.is_some_and(|by| by < today) && self.outstanding.is_positive()
    }
}

/// One donor row of a person, as a treasurer reviews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonDonor {
    pub donor_id: i64,
    pub campaign_id: CampaignId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    /// Placed by a treasurer's merge or split: automatic linking leaves it alone.
    pub placed_by_treasurer: bool,
}

/// A move of a donor between persons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityChange {
    pub donor_id: i64,
    pub from_person: i64,
    pub to_person: i64,
    /// `link` (automatic), `merge` or `split` (a treasurer's).
    pub action: String,
    pub reason: String,
    pub changed_at: DateTime<Utc>,
}

/// A person: the donor rows that are one human being, and how they came together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub person_id: i64,
    pub donors: Vec<PersonDonor>,
    pub changes: Vec<IdentityChange>,
}

/// Reads a stored payment method.
pub fn method_from_str(text: &str) -> Option<Method> {
    Some(match text {
        "card" => Method::Card,
        "cheque" => Method::Cheque,
        "transfer" => Method::Transfer,
        "direct_debit" => Method::DirectDebit,
        "cash" => Method::Cash,
        _ => return None,
    })
}

/// How a payment method is stored.
pub fn method_str(method: Method) -> &'static str {
    match method {
        Method::Card => "card",
        Method::Cheque => "cheque",
        Method::Transfer => "transfer",
        Method::DirectDebit => "direct_debit",
        Method::Cash => "cash",
    }
}
