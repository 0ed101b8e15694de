//! The `exceptions` report: everything a treasurer must act on — money owed back to donors
//! (with its deadline, and whether it is overdue), gifts held for review, and webhook events
//! the intake gave up on.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use super::csv;
use super::summary::SealRef;
use crate::campaign::Campaign;
use crate::enforcement::OwedRefund;
use crate::intake::InboxEvent;
use crate::ledger::seal::Seal;
use crate::store::StoredDecision;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exception {
    /// `owed_overdue`, `owed`, `held`, `parked_event`.
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
        owed: &[OwedRefund],
        decisions: &[StoredDecision],
        parked: &[InboxEvent],
        seal: Seal,
        unsealed: i64,
    ) -> Exceptions {
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
            _ => 3,
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
