//! The `exceptions` report: everything a treasurer must act on — money owed back to donors
//! (with its deadline, and whether it is overdue), gifts held for review, webhook events the
//! intake gave up on, and Stripe movements the payout reconciliation cannot explain: money
//! moved at Stripe against an account that is not a gift, refund, dispute, fee or payout, and
//! money left at Stripe with no payout to the bank for [`PAYOUT_OVERDUE_DAYS`] days.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use super::csv;
use super::summary::SealRef;
use crate::campaign::Campaign;
use crate::enforcement::OwedRefund;
use crate::intake::InboxEvent;
use crate::ledger::seal::Seal;
use crate::money::Money;
use crate::store::StoredDecision;

/// Money at Stripe this long without a payout to the bank is for the treasurer to chase:
/// Stripe pays out daily after a delay of 2 to 14 days, by country and the account's age.
pub const PAYOUT_OVERDUE_DAYS: i64 = 14;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exception {
    /// `owed_overdue`, `owed`, `held`, `unreconciled`, `not_paid_out`, `parked_event`.
    pub kind: &'static str,
    /// The contribution, or the event id.
    pub reference: String,
    /// A decimal string, when money is at stake.
    pub amount: Option<String>,
    /// The day it must be done by, when the law sets one.
    pub due_by: Option<NaiveDate>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exceptions {
    pub campaign: String,
    pub as_of: String,
    pub exceptions: Vec<Exception>,
    pub seal: SealRef,
    pub unsealed: i64,
}

/// What the store found for the report to weigh.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub owed: Vec<OwedRefund>,
    pub decisions: Vec<StoredDecision>,
    pub parked: Vec<InboxEvent>,
    pub at_stripe: AtStripe,
}

/// Money at Stripe as the reconciliation sees it.
#[derive(Debug, Clone, Default)]
pub struct AtStripe {
    /// The balance of `assets:stripe`.
    pub balance: Option<Money>,
    /// The last payout to the bank or, before the first, the first money at Stripe.
    pub unpaid_since: Option<DateTime<Utc>>,
    /// Entries that moved money at Stripe the reconciliation cannot explain, with how much.
    pub unexplained: Vec<Unexplained>,
}

#[derive(Debug, Clone)]
pub struct Unexplained {
    pub entry: i64,
    pub effective_at: DateTime<Utc>,
    pub description: String,
    pub amount: Money,
}

/// The verdict and reason of a stored decision, from its JSON.
fn held_reason(decision: &StoredDecision) -> String {
    serde_json::from_str::<serde_json::Value>(&decision.decision)
        .ok()
        .and_then(|d| d.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "held for review".to_owned())
}

impl Exceptions {
    /// `today` is the report's day in the campaign's time zone: deadlines before it are
    /// overdue. Settled refunds are left out; the most urgent come first.
    pub fn compute(
        campaign: &Campaign,
        as_of: DateTime<Utc>,
        findings: &Findings,
        seal: Seal,
        unsealed: i64,
    ) -> Exceptions {
        let Findings {
            owed,
            decisions,
            parked,
            at_stripe,
        } = findings;
        let today = as_of.with_timezone(&campaign.timezone).date_naive();
        let mut exceptions: Vec<Exception> = owed
            .iter()
            .filter(|o| o.outstanding.is_positive())
            .map(|o| Exception {
                kind: if o.overdue(today) {
                    "owed_overdue"
                } else {
                    "owed"
                },
                reference: format!("contribution {}", o.contribution_id),
                amount: Some(o.outstanding.to_decimal().to_string()),
                due_by: o.remedy_by,
                detail: match (&o.refund_id, &o.last_error) {
                    (Some(refund), _) => format!("{}; refund {refund} requested", o.reason),
                    (None, Some(error)) => format!("{}; the refund failed: {error}", o.reason),
                    (None, None) => o.reason.clone(),
                },
            })
            .collect();
        exceptions.extend(
            decisions
                .iter()
                .filter(|d| d.stage == "posting" && d.verdict == "hold")
                .map(|d| Exception {
                    kind: "held",
                    reference: format!("contribution {}", d.contribution_id.unwrap_or_default()),
                    amount: None,
                    due_by: None,
                    detail: held_reason(d),
                }),
        );
        let day = |at: DateTime<Utc>| at.with_timezone(&campaign.timezone).date_naive();
        exceptions.extend(at_stripe.unexplained.iter().map(|u| Exception {
            kind: "unreconciled",
            reference: format!("entry {}", u.entry),
            amount: Some(u.amount.to_decimal().to_string()),
            due_by: None,
            detail: format!(
                "moved at Stripe on {} and is no gift, refund, dispute, fee or payout: {}",
                day(u.effective_at),
                u.description
            ),
        }));
        if let (Some(balance), Some(since)) = (at_stripe.balance, at_stripe.unpaid_since) {
            let days = (as_of - since).num_days();
            if balance.is_positive() && days >= PAYOUT_OVERDUE_DAYS {
                exceptions.push(Exception {
                    kind: "not_paid_out",
                    reference: "assets:stripe".to_owned(),
                    amount: Some(balance.to_decimal().to_string()),
                    due_by: None,
                    detail: format!(
                        "at Stripe with no payout to the bank since {} ({days} days)",
                        day(since)
                    ),
                });
            }
        }
        exceptions.extend(parked.iter().map(|e| Exception {
            kind: "parked_event",
            reference: e.event_id.clone(),
            amount: None,
            due_by: None,
            detail: format!(
                "{}: {}",
                e.kind,
                e.last_error.as_deref().unwrap_or("no error recorded")
            ),
        }));
        let rank = |e: &Exception| match e.kind {
            "owed_overdue" => 0,
            "owed" => 1,
            "held" => 2,
            "unreconciled" | "not_paid_out" => 3,
            _ => 4,
        };
        exceptions.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.due_by.cmp(&b.due_by)));
        Exceptions {
            campaign: campaign.slug.to_string(),
            as_of: as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
            exceptions,
            seal: SealRef::of(seal),
            unsealed,
        }
    }

    pub fn to_csv(&self) -> String {
        let mut out = csv::row(&["kind", "reference", "amount", "due_by", "detail"]);
        for e in &self.exceptions {
            out.push_str(&csv::row(&[
                e.kind.to_owned(),
                e.reference.clone(),
                e.amount.clone().unwrap_or_default(),
                e.due_by.map(|d| d.to_string()).unwrap_or_default(),
                e.detail.clone(),
            ]));
        }
        out
    }
}
