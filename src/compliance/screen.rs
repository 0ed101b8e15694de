//! `screen`: may this donor give this gift, under this pack, given what they gave before?
//!
//! Invariants: pure and deterministic (no I/O, no clock: the gift carries its date), so a
//! stored decision can be replayed from its inputs ([`Screening`]). Aggregates count every
//! gift of the history in the cap's scope, net of refunds and chargebacks (the caller passes
//! net amounts as the ledger holds them when it decides) — a gift dated later but already
//! accepted counts too, since webhooks arrive in any order and the sum must stay under the
//! cap whichever came first. A refusal is decided by the first rule, in the pack's order,
//! that refuses. A hold does not stop the screening: the caps still cut a held gift, so a
//! gift awaiting review can never carry a donor past a cap.

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::pack::{Across, Attestation, Check, DonorField, Rule, RulePack, Scope};
use crate::money::{Money, MoneyError};

/// How a gift is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Card,
    Cheque,
    Transfer,
    DirectDebit,
    Cash,
}

/// Who gives, as far as the campaign knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DonorKind {
    NaturalPerson,
    /// A company, association or any other legal person.
    LegalPerson,
}

/// What the campaign knows of the donor when the gift is screened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Donor {
    /// `None`: not established.
    pub kind: Option<DonorKind>,
    /// ISO 3166 alpha-2 codes; `None`: not known.
    pub nationality: Option<String>,
    pub residence: Option<String>,
    pub attestations: BTreeSet<Attestation>,
    /// The details the campaign holds (name, address, employer, occupation).
    pub known: BTreeSet<DonorField>,
}

impl Donor {
    /// A gift whose giver the campaign cannot name.
    pub fn is_anonymous(&self) -> bool {
        !self.known.contains(&DonorField::Name)
    }
}

/// The election a gift is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Election {
    /// Gifts with the same key add up under a per-election cap ("2027-presidentielle",
    /// "2026-primary", "2026-general").
    pub key: String,
    /// The financing period, both days included; `None`: not set for this campaign.
    pub period: Option<(NaiveDate, NaiveDate)>,
}

/// A gift the person already made (or has reserved at checkout), net of what was refunded or
/// charged back, to the campaign screening or to another under the same pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastGift {
    pub amount: Money,
    /// The day of the gift, in the campaign's time zone.
    pub date: NaiveDate,
    pub method: Method,
    /// The election key it counted for, if any.
    pub election: Option<String>,
    /// Made to the campaign screening (false: to another campaign under the same pack, which
    /// counts only for caps `across = "deployment"`).
    pub to_this_campaign: bool,
}

/// The gift being screened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gift {
    pub amount: Money,
    pub date: NaiveDate,
    pub method: Method,
    pub election: Option<Election>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    /// Accept `accepted`; `excess` is to be refunded (or, where the law allows, redesignated
    /// or reattributed).
    AcceptPart {
        accepted: Money,
        excess: Money,
    },
    Refuse {
        reason: String,
    },
    /// A person must look: the rules cannot decide on what is known.
    Hold {
        reason: String,
    },
}

/// Serialised (never read back: a replay compares the JSON it recomputes with the stored one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub pack: String,
    pub pack_version: u32,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The rule that refused, held, or cut the gift; `None` when it was accepted whole.
    pub rule: Option<String>,
    /// Its legal source.
    pub source: Option<String>,
    /// Why a person must also look at a gift the caps cut: the first rule that held it.
    /// (When nothing was cut, the hold is the verdict itself.)
    pub review: Option<String>,
    /// The most the donor could give under the tightest cap before this gift; `None` when no
    /// cap applies.
    pub room: Option<Money>,
    /// The donor's aggregate passes the itemization threshold.
    pub itemize: bool,
    /// Details the itemization rule asks for that the campaign does not hold.
    pub missing: BTreeSet<DonorField>,
    /// When an excess must be remedied by (the gift's date plus the remedy period).
    pub remedy_by: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    #[error("the gift is in {gift} but the pack {pack} counts in {expected}")]
    Currency {
        pack: String,
        gift: String,
        expected: String,
    },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// What one rule says of the gift.
enum Finding {
    Pass,
    Refuse(String),
    Hold(String),
    /// Only `accepted` fits; `room` is what the rule allowed before the gift.
    Cut {
        accepted: Money,
        room: Money,
    },
    /// Within a cap that still had `room`.
    Room(Money),
    Itemize(BTreeSet<DonorField>),
    RemedyWithin(u32),
}

/// Screens `gift` from `donor`, whose earlier gifts are `history`, under `pack`.
pub fn screen(
    pack: &RulePack,
    donor: &Donor,
    history: &[PastGift],
    gift: &Gift,
) -> Result<Decision, ScreenError> {
    for amount in std::iter::once(&gift.amount).chain(history.iter().map(|g| &g.amount)) {
        if amount.currency() != pack.currency {
            return Err(ScreenError::Currency {
                pack: pack.id.clone(),
                gift: amount.currency().to_string(),
                expected: pack.currency.to_string(),
            });
        }
    }
    let history: Vec<&PastGift> = history.iter().collect();
    let mut decision = Decision {
        pack: pack.id.clone(),
        pack_version: pack.version,
        verdict: Verdict::Accept,
        rule: None,
        source: None,
        review: None,
        room: None,
        itemize: false,
        missing: BTreeSet::new(),
        remedy_by: None,
    };
    let mut accepted = gift.amount;
    let mut remedy_days = None;
    let mut hold: Option<(String, &Rule)> = None;
    for rule in pack.rules_on(gift.date) {
        let decided = |verdict| (verdict, Some(rule.id.clone()), Some(rule.source.clone()));
        match evaluate(rule, donor, &history, gift)? {
            Finding::Pass => {}
            Finding::Refuse(reason) => {
                (decision.verdict, decision.rule, decision.source) =
                    decided(Verdict::Refuse { reason });
                return Ok(decision);
            }
            Finding::Hold(reason) => {
                hold.get_or_insert((reason, rule));
            }
            Finding::Room(room) => {
                decision.room = Some(decision.room.map_or(room, |r| r.min(room)));
            }
            Finding::Cut {
                accepted: part,
                room,
            } => {
                decision.room = Some(decision.room.map_or(room, |r| r.min(room)));
                if part < accepted {
                    accepted = part;
                    decision.rule = Some(rule.id.clone());
                    decision.source = Some(rule.source.clone());
                }
            }
            Finding::Itemize(missing) => {
                decision.itemize = true;
                decision.missing = missing;
            }
            Finding::RemedyWithin(days) => remedy_days = Some(days),
        }
    }
    if accepted.is_zero() {
        decision.verdict = Verdict::Refuse {
            reason: format!(
                "the donor has already given the most the law allows here as of {}",
                gift.date
            ),
        };
        decision.review = hold.map(|(reason, _)| reason);
        decision.remedy_by = remedy_by(gift, remedy_days);
    } else if accepted == gift.amount {
        if let Some((reason, rule)) = hold {
            decision.verdict = Verdict::Hold { reason };
            decision.rule = Some(rule.id.clone());
            decision.source = Some(rule.source.clone());
        }
    } else {
        decision.review = hold.map(|(reason, _)| reason);
        decision.verdict = Verdict::AcceptPart {
            accepted,
            excess: gift.amount.checked_sub(accepted)?,
        };
        decision.remedy_by = remedy_by(gift, remedy_days);
    }
    Ok(decision)
}

/// The day an excess of `gift` must be remedied by, when the pack sets a period.
fn remedy_by(gift: &Gift, within_days: Option<u32>) -> Option<NaiveDate> {
    within_days.and_then(|d| gift.date.checked_add_signed(Duration::days(d.into())))
}

fn evaluate(
    rule: &Rule,
    donor: &Donor,
    history: &[&PastGift],
    gift: &Gift,
) -> Result<Finding, ScreenError> {
    Ok(match &rule.check {
        Check::NaturalPersonsOnly => match donor.kind {
            Some(DonorKind::NaturalPerson) => Finding::Pass,
            Some(DonorKind::LegalPerson) => Finding::Refuse(
                "only natural persons may give; this donor is a legal person".into(),
            ),
            None => Finding::Hold("not established that the donor is a natural person".into()),
        },
        Check::NationalityOrResidence { country } => {
            let (nationality, residence) = (&donor.nationality, &donor.residence);
            if nationality.as_ref() == Some(country) || residence.as_ref() == Some(country) {
                Finding::Pass
            } else if nationality.is_some() && residence.is_some() {
                Finding::Refuse(format!(
                    "the donor must be a national or a resident of {country}"
                ))
            } else {
                Finding::Hold(format!(
                    "not established that the donor is a national or a resident of {country}"
                ))
            }
        }
        Check::CitizenOrPermanentResident { country } => {
            let attested = donor
                .attestations
                .contains(&Attestation::CitizenOrPermanentResident);
            if attested || donor.nationality.as_ref() == Some(country) {
                Finding::Pass
            } else if donor.nationality.is_some() {
                Finding::Refuse(format!(
                    "a foreign national may not give: the donor must be a citizen or a permanent resident of {country}"
                ))
            } else {
                Finding::Hold(format!(
                    "not established that the donor is a citizen or a permanent resident of {country}"
                ))
            }
        }
        Check::Attestations { required } => {
            let missing: Vec<&str> = required
                .iter()
                .filter(|a| !donor.attestations.contains(a))
                .map(|a| attestation_name(*a))
                .collect();
            if missing.is_empty() {
                Finding::Pass
            } else {
                Finding::Hold(format!(
                    "the donor has not attested: {}",
                    missing.join(", ")
                ))
            }
        }
        Check::Cap {
            limit,
            scope,
            across,
        } => {
            let counts = |past: &PastGift| past.to_this_campaign || *across == Across::Deployment;
            let Some(given) = aggregate(history, gift, *scope, counts)? else {
                return Ok(Finding::Hold(
                    "the gift names no election, so its per-election cap cannot be counted".into(),
                ));
            };
            limit_finding(*limit, given, gift.amount)?
        }
        Check::CashPerGift { limit } => {
            if gift.method == Method::Cash && gift.amount > *limit {
                Finding::Refuse(format!(
                    "a cash gift may not exceed {limit}; give more by cheque, transfer or card"
                ))
            } else {
                Finding::Pass
            }
        }
        Check::CashAggregate { limit, scope } => {
            if gift.method != Method::Cash {
                return Ok(Finding::Pass);
            }
            let cash_here = |g: &PastGift| g.to_this_campaign && g.method == Method::Cash;
            let Some(given) = aggregate(history, gift, *scope, cash_here)? else {
                return Ok(Finding::Hold(
                    "the gift names no election, so its cash limit cannot be counted".into(),
                ));
            };
            match limit_finding(*limit, given, gift.amount)? {
                // Cash room is not the donor's room under the contribution cap.
                Finding::Room(_) => Finding::Pass,
                Finding::Cut { accepted, .. } => Finding::Cut {
                    accepted,
                    room: accepted,
                },
                other => other,
            }
        }
        Check::AnonymousPerGift { limit } => {
            if donor.is_anonymous() && gift.amount > *limit {
                Finding::Cut {
                    accepted: *limit,
                    room: *limit,
                }
            } else {
                Finding::Pass
            }
        }
        Check::FinancingPeriod => match gift.election.as_ref().and_then(|e| e.period) {
            Some((start, end)) if (start..=end).contains(&gift.date) => Finding::Pass,
            Some((start, end)) => Finding::Refuse(format!(
                "the financing period runs from {start} to {end}; a gift on {} falls outside it",
                gift.date
            )),
            None => Finding::Hold("the campaign has no financing period set".into()),
        },
        Check::Itemization {
            threshold,
            scope,
            fields,
        } => {
            let given = aggregate(history, gift, *scope, |g| g.to_this_campaign)?
                .unwrap_or(Money::zero(gift.amount.currency()));
            if given.checked_add(gift.amount)? > *threshold {
                Finding::Itemize(fields.difference(&donor.known).copied().collect())
            } else {
                Finding::Pass
            }
        }
        Check::ExcessRemedy { within_days } => Finding::RemedyWithin(*within_days),
    })
}

/// What `given` leaves of `limit` for `amount`.
fn limit_finding(limit: Money, given: Money, amount: Money) -> Result<Finding, ScreenError> {
    let room = limit.checked_sub(given)?.max(Money::zero(limit.currency()));
    Ok(if amount <= room {
        Finding::Room(room)
    } else {
        Finding::Cut {
            accepted: room,
            room,
        }
    })
}

/// The donor's net total over `scope` before `gift`, of the gifts `counts` keeps; `None` for
/// a per-election scope when the gift names no election.
fn aggregate(
    history: &[&PastGift],
    gift: &Gift,
    scope: Scope,
    counts: impl Fn(&PastGift) -> bool,
) -> Result<Option<Money>, MoneyError> {
    let same_scope = |past: &PastGift| match scope {
        Scope::Election => gift
            .election
            .as_ref()
            .is_some_and(|e| past.election.as_deref() == Some(e.key.as_str())),
        Scope::CalendarYear => past.date.year() == gift.date.year(),
        Scope::Cycle => true,
    };
    if scope == Scope::Election && gift.election.is_none() {
        return Ok(None);
    }
    history
        .iter()
        .filter(|g| same_scope(g) && counts(g))
        .try_fold(Money::zero(gift.amount.currency()), |total, g| {
            total.checked_add(g.amount)
        })
        .map(Some)
}

fn attestation_name(attestation: Attestation) -> &'static str {
    match attestation {
        Attestation::NaturalPerson => "natural person",
        Attestation::OwnFunds => "own funds",
        Attestation::CitizenOrPermanentResident => "citizen or permanent resident",
        Attestation::NotFederalContractor => "not a federal contractor",
        Attestation::OwnCard => "own card",
    }
}
