//! The `reconciliation` report: for each payout from Stripe to the bank, what made it up —
//! the gifts, Stripe's fees, the refunds, the disputes — between the previous payout and
//! this one, so the treasurer can tick each bank credit off against the gifts behind it.
//!
//! Invariants: for every payout row, `opening + gifts − fees − refunds − disputes + other −
//! payout = closing`, exactly, where `other` is whatever moved money at Stripe that is none
//! of the four (it should be zero; anything else is for the treasurer to explain); the next
//! row opens with this row's closing; the last row, "not paid out yet", holds what is at
//! Stripe by the report's instant. A failed payout (money back from the bank) is a row with
//! a negative payout. Entries are taken in the order the ledger recorded them, which is the
//! order Stripe reported them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::csv;
use super::summary::SealRef;
use crate::campaign::Campaign;
use crate::ledger::entry::StoredEntry;
use crate::ledger::seal::Seal;
use crate::money::{Money, MoneyError};

/// One payout and the money that made it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayoutRow {
    /// Stripe's payout (`po_…`), or `not paid out yet`.
    pub payout: String,
    /// When it reached the bank (the campaign's day).
    pub date: Option<String>,
    pub entry: Option<i64>,
    pub opening: String,
    pub gifts: String,
    pub fees: String,
    pub refunds: String,
    pub disputes: String,
    pub other: String,
    pub payout_amount: String,
    pub closing: String,
    /// Entries that moved money at Stripe in the period.
    pub movements: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub campaign: String,
    pub currency: String,
    pub as_of: String,
    pub payouts: Vec<PayoutRow>,
    /// Paid out to the bank in all (net of failed payouts).
    pub paid_out: String,
    pub seal: SealRef,
    pub unsealed: i64,
}

/// The running period between two payouts, in minor units.
#[derive(Debug, Default, Clone, Copy)]
struct Period {
    opening: i64,
    gifts: i64,
    fees: i64,
    refunds: i64,
    disputes: i64,
    other: i64,
    movements: u64,
}

/// Builds the report from the journal's pages.
pub struct Reconciler {
    period: Period,
    rows: Vec<Closed>,
    paid_out: i64,
}

struct Closed {
    payout: String,
    effective_at: Option<DateTime<Utc>>,
    entry: Option<i64>,
    period: Period,
    payout_amount: i64,
}

impl Default for Reconciler {
    fn default() -> Self {
        Reconciler::new()
    }
}

impl Reconciler {
    pub fn new() -> Reconciler {
        Reconciler {
            period: Period::default(),
            rows: Vec::new(),
            paid_out: 0,
        }
    }

    /// Takes the next entries, in recording order.
    pub fn add(&mut self, entries: &[StoredEntry]) -> Result<(), MoneyError> {
        for entry in entries {
            let to_bank: i64 = entry
                .content
                .postings
                .iter()
                .filter(|p| p.account == "assets:bank")
                .map(|p| p.amount.minor())
                .sum();
            let touches_stripe = entry
                .content
                .postings
                .iter()
                .any(|p| p.account == "assets:stripe");
            if !touches_stripe {
                continue;
            }
            if to_bank != 0 {
                // The money left for the bank (or came back from it): a payout row. Any fee
                // on the payout itself is a fee of the period.
                self.period.fees = checked(self.period.fees, fee_of(entry))?;
                self.period.other = checked(self.period.other, unexplained_at_stripe(entry)?)?;
                self.period.movements += 1;
                self.paid_out = checked(self.paid_out, to_bank)?;
                let period = self.period;
                let closing = closing_of(&period, to_bank)?;
                self.rows.push(Closed {
                    payout: payout_name(entry),
                    effective_at: Some(entry.content.effective_at),
                    entry: Some(entry.id.0),
                    period,
                    payout_amount: to_bank,
                });
                self.period = Period {
                    opening: closing,
                    ..Period::default()
                };
                continue;
            }
            // What the classified postings account for at Stripe (each is the other side of
            // a movement there). Gifts count as received (credits), the rest as paid (debits).
            for posting in &entry.content.postings {
                let minor = posting.amount.minor();
                let (bucket, received) = match posting.account.as_str() {
                    // Received: kept, or owed back (an excess, refunded later).
                    "income:donations" => (&mut self.period.gifts, true),
                    "liabilities:refunds_due" if minor < 0 => (&mut self.period.gifts, true),
                    "income:donations:refunds" | "liabilities:refunds_due" => {
                        (&mut self.period.refunds, false)
                    }
                    "income:donations:chargebacks" | "expenses:fees:disputes" => {
                        (&mut self.period.disputes, false)
                    }
                    "expenses:fees:stripe" => (&mut self.period.fees, false),
                    _ => continue,
                };
                *bucket = checked(*bucket, if received { -minor } else { minor })?;
            }
            self.period.other = checked(self.period.other, unexplained_at_stripe(entry)?)?;
            self.period.movements += 1;
        }
        Ok(())
    }

    pub fn finish(
        self,
        campaign: &Campaign,
        as_of: DateTime<Utc>,
        seal: Seal,
        unsealed: i64,
    ) -> Result<Reconciliation, MoneyError> {
        let money = |minor: i64| {
            Money::from_minor(minor, campaign.currency)
                .to_decimal()
                .to_string()
        };
        let mut rows = Vec::with_capacity(self.rows.len() + 1);
        let pending = Closed {
            payout: "not paid out yet".to_owned(),
            effective_at: None,
            entry: None,
            period: self.period,
            payout_amount: 0,
        };
        for closed in self.rows.into_iter().chain([pending]) {
            let p = closed.period;
            rows.push(PayoutRow {
                payout: closed.payout,
                date: closed.effective_at.map(|at| {
                    at.with_timezone(&campaign.timezone)
                        .date_naive()
                        .to_string()
                }),
                entry: closed.entry,
                opening: money(p.opening),
                gifts: money(p.gifts),
                fees: money(p.fees),
                refunds: money(p.refunds),
                disputes: money(p.disputes),
                other: money(p.other),
                payout_amount: money(closed.payout_amount),
                closing: money(closing_of(&p, closed.payout_amount)?),
                movements: p.movements,
            });
        }
        Ok(Reconciliation {
            campaign: campaign.slug.to_string(),
            currency: campaign.currency.to_string(),
            as_of: as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
            payouts: rows,
            paid_out: money(self.paid_out),
            seal: SealRef::of(seal),
            unsealed,
        })
    }
}

impl Reconciliation {
    /// One row per payout, the last for what is not paid out yet; the seal in the last row.
    pub fn to_csv(&self) -> String {
        let mut out = csv::row(CSV_COLUMNS);
        for r in &self.payouts {
            out.push_str(&csv::row(&[
                r.payout.clone(),
                r.date.clone().unwrap_or_default(),
                r.entry.map(|e| e.to_string()).unwrap_or_default(),
                r.opening.clone(),
                r.gifts.clone(),
                r.fees.clone(),
                r.refunds.clone(),
                r.disputes.clone(),
                r.other.clone(),
                r.payout_amount.clone(),
                r.closing.clone(),
                r.movements.to_string(),
            ]));
        }
        out.push_str(&csv::row(&csv::seal_cells(
            CSV_COLUMNS.len(),
            "seal",
            self.seal.sequence,
            &self.seal.hash,
            self.unsealed,
        )));
        out
    }
}

pub const CSV_COLUMNS: &[&str] = &[
    "payout",
    "date",
    "entry",
    "opening",
    "gifts",
    "fees",
    "refunds",
    "disputes",
    "other",
    "payout_amount",
    "closing",
    "movements",
];

/// opening + gifts − fees − refunds − disputes + other − payout.
fn closing_of(p: &Period, payout: i64) -> Result<i64, MoneyError> {
    let overflow = || MoneyError::Overflow("a payout period's closing balance".into());
    p.opening
        .checked_add(p.gifts)
        .and_then(|v| v.checked_sub(p.fees))
        .and_then(|v| v.checked_sub(p.refunds))
        .and_then(|v| v.checked_sub(p.disputes))
        .and_then(|v| v.checked_add(p.other))
        .and_then(|v| v.checked_sub(payout))
        .ok_or_else(overflow)
}

fn checked(total: i64, add: i64) -> Result<i64, MoneyError> {
    total
        .checked_add(add)
        .ok_or_else(|| MoneyError::Overflow(format!("{total} + {add}")))
}

/// The accounts that explain money moving at Stripe: a gift (kept or owed back), a refund, a
/// dispute, Stripe's fee, a payout to the bank. An entry moving money at Stripe against any
/// other account leaves some of it unexplained.
pub const EXPLAINING_ACCOUNTS: &[&str] = &[
    "assets:stripe",
    "assets:bank",
    "income:donations",
    "liabilities:refunds_due",
    "income:donations:refunds",
    "income:donations:chargebacks",
    "expenses:fees:disputes",
    "expenses:fees:stripe",
];

/// What `entry` moved at Stripe that its gift, refund, dispute, fee and payout postings do
/// not explain: zero for every entry the intake writes, and the `other` a treasurer must
/// explain for anything else. An entry balances, so that is what its postings to the other
/// accounts take, with the sign of money at Stripe.
pub fn unexplained_at_stripe(entry: &StoredEntry) -> Result<i64, MoneyError> {
    let postings = &entry.content.postings;
    if !postings.iter().any(|p| p.account == "assets:stripe") {
        return Ok(0);
    }
    postings
        .iter()
        .filter(|p| !EXPLAINING_ACCOUNTS.contains(&p.account.as_str()))
        .try_fold(0i64, |unexplained, p| {
            checked(unexplained, -p.amount.minor())
        })
}

fn fee_of(entry: &StoredEntry) -> i64 {
    entry
        .content
        .postings
        .iter()
        .filter(|p| p.account == "expenses:fees:stripe")
        .map(|p| p.amount.minor())
        .sum()
}

/// The payout's Stripe id, from the entry's description ("Stripe payout to the bank (po_…)").
fn payout_name(entry: &StoredEntry) -> String {
    let description = &entry.content.description;
    description
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(str::to_owned)
        .unwrap_or_else(|| description.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::fixtures::{entry, french_campaign, seal};

    #[test]
    fn each_payout_is_what_came_in_less_what_went_out_since_the_last() {
        let campaign = french_campaign();
        let gift = |id, gross: i64, fee: i64| {
            entry(
                id,
                "Stripe gift (ch_1)",
                &[
                    ("assets:stripe", gross - fee),
                    ("expenses:fees:stripe", fee),
                    ("income:donations", -gross),
                ],
            )
        };
        let mut reconciler = Reconciler::new();
        reconciler
            .add(&[
                gift(1, 10_000, 265),
                gift(2, 5_000, 170),
                entry(
                    3,
                    "Stripe refund (re_1)",
                    &[
                        ("income:donations:refunds", 2_000),
                        ("assets:stripe", -2_000),
                    ],
                ),
                entry(
                    4,
                    "Stripe payout to the bank (po_1)",
                    &[("assets:bank", 12_565), ("assets:stripe", -12_565)],
                ),
                gift(5, 3_000, 110),
                entry(
                    6,
                    "cheque",
                    &[("assets:cheques", 5_000), ("income:donations", -5_000)],
                ),
            ])
            .unwrap();
        let report = reconciler
            .finish(
                &campaign,
                "2027-04-01T00:00:00Z".parse().unwrap(),
                seal(0),
                0,
            )
            .unwrap();
        let first = &report.payouts[0];
        assert_eq!(first.payout, "po_1");
        assert_eq!(
            (
                first.gifts.as_str(),
                first.fees.as_str(),
                first.refunds.as_str()
            ),
            ("150.00", "4.35", "20.00")
        );
        assert_eq!(
            (
                first.payout_amount.as_str(),
                first.closing.as_str(),
                first.other.as_str()
            ),
            ("125.65", "0.00", "0.00")
        );
        let pending = &report.payouts[1];
        assert_eq!(pending.payout, "not paid out yet");
        assert_eq!(
            (pending.gifts.as_str(), pending.closing.as_str()),
            ("30.00", "28.90"),
            "cheques are not at Stripe"
        );
        assert_eq!(report.paid_out, "125.65");
    }
}
