//! The `summary` report: the line a treasurer quotes — "€200,000 raised by 31 March from
//! 6,214 donors".
//!
//! Figures, as of the report's instant:
//! - `gross`: gifts kept (`income:donations`), so an excess owed back is never counted as
//!   raised; `refunded` and `charged_back` (the contra accounts); `net` = gross − both.
//! - `fees`: Stripe's and dispute fees; `net_of_fees` = net − fees.
//! - `contributions`: gifts paid by then that the books kept (some or all of); `donors`: the
//!   distinct persons who made them (one person across cards, emails and spellings).
//! - `average_gift`, `median_gift`: of the kept part of each gift, rounded half to even.
//! - Where the money is: at Stripe, in the bank, in cheques to deposit, in cash; and what is
//!   owed back to donors.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::csv;
use super::tally::GiftCounts;
use crate::campaign::Campaign;
use crate::ledger::seal::Seal;
use crate::ledger::AccountBalance;
use crate::money::{Money, MoneyError};

/// One kept gift as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiftFigure {
    /// The person who gave it.
    pub person_id: i64,
    /// What the books kept of it (the gift less any part owed back).
    pub kept: Money,
    pub paid_at: DateTime<Utc>,
}

/// The seal a report names: `obole verify --seal SEQUENCE:HASH` checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealRef {
    pub sequence: i64,
    pub hash: String,
}

impl SealRef {
    pub fn of(seal: Seal) -> SealRef {
        SealRef {
            sequence: seal.sequence,
            hash: seal.hash.to_hex(),
        }
    }
}

/// Amounts are decimal strings in `currency` ("200000.00").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub campaign: String,
    pub currency: String,
    /// RFC 3339, UTC.
    pub as_of: String,
    pub gross: String,
    pub refunded: String,
    pub charged_back: String,
    pub net: String,
    pub fees: String,
    pub net_of_fees: String,
    pub contributions: u64,
    pub donors: u64,
    pub average_gift: String,
    pub median_gift: String,
    pub at_stripe: String,
    pub in_bank: String,
    pub cheques_to_deposit: String,
    pub cash: String,
    pub owed_to_donors: String,
    pub seal: SealRef,
    /// Entries written but not yet sealed when the report was read.
    pub unsealed: i64,
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "campaign",
    "currency",
    "as_of",
    "gross",
    "refunded",
    "charged_back",
    "net",
    "fees",
    "net_of_fees",
    "contributions",
    "donors",
    "average_gift",
    "median_gift",
    "at_stripe",
    "in_bank",
    "cheques_to_deposit",
    "cash",
    "owed_to_donors",
    "seal_sequence",
    "seal_hash",
    "unsealed",
];

impl Summary {
    /// Computes the summary from the campaign's balances and gift counts as of `as_of`.
    pub fn compute(
        campaign: &Campaign,
        as_of: DateTime<Utc>,
        balances: &[AccountBalance],
        counts: &GiftCounts,
        seal: Seal,
        unsealed: i64,
    ) -> Result<Summary, MoneyError> {
        let currency = campaign.currency;
        let zero = Money::zero(currency);
        // Natural side: income positive when credited, assets and contra accounts when debited.
        let natural = |account: &str| {
            balances
                .iter()
                .find(|b| b.account == account)
                .map_or(zero, AccountBalance::natural)
        };
        let gross = natural("income:donations");
        let refunded = natural("income:donations:refunds");
        let charged_back = natural("income:donations:chargebacks");
        let net = gross.checked_sub(refunded)?.checked_sub(charged_back)?;
        let fees =
            natural("expenses:fees:stripe").checked_add(natural("expenses:fees:disputes"))?;
        let gifts = counts.statistics(currency)?;
        let text = |m: Money| m.to_decimal().to_string();
        Ok(Summary {
            campaign: campaign.slug.to_string(),
            currency: currency.to_string(),
            as_of: as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
            gross: text(gross),
            refunded: text(refunded),
            charged_back: text(charged_back),
            net: text(net),
            fees: text(fees),
            net_of_fees: text(net.checked_sub(fees)?),
            contributions: gifts.count,
            donors: counts.donors,
            average_gift: text(gifts.average),
            median_gift: text(gifts.median),
            at_stripe: text(natural("assets:stripe")),
            in_bank: text(natural("assets:bank")),
            cheques_to_deposit: text(natural("assets:cheques")),
            cash: text(natural("assets:cash")),
            owed_to_donors: text(natural("liabilities:refunds_due")),
            seal: SealRef::of(seal),
            unsealed,
        })
    }

    /// The summary as CSV: a header row of [`CSV_COLUMNS`] and one row of values.
    pub fn to_csv(&self) -> String {
        let values = [
            self.campaign.clone(),
            self.currency.clone(),
            self.as_of.clone(),
            self.gross.clone(),
            self.refunded.clone(),
            self.charged_back.clone(),
            self.net.clone(),
            self.fees.clone(),
            self.net_of_fees.clone(),
            self.contributions.to_string(),
            self.donors.to_string(),
            self.average_gift.clone(),
            self.median_gift.clone(),
            self.at_stripe.clone(),
            self.in_bank.clone(),
            self.cheques_to_deposit.clone(),
            self.cash.clone(),
            self.owed_to_donors.clone(),
            self.seal.sequence.to_string(),
            self.seal.hash.clone(),
            self.unsealed.to_string(),
        ];
        csv::row(CSV_COLUMNS) + &csv::row(&values)
    }
}
