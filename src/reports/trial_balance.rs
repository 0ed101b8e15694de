//! The `trial-balance` report: every account of the campaign with its debit or credit balance
//! as of the report's instant; the two columns total the same, or the books are broken.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::csv;
use super::summary::SealRef;
use crate::campaign::Campaign;
use crate::ledger::seal::Seal;
use crate::ledger::AccountBalance;
use crate::money::{Money, MoneyError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountLine {
    pub account: String,
    pub kind: String,
    /// Decimal strings; one of the two is "0.00".
    pub debit: String,
    pub credit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrialBalance {
    pub campaign: String,
    pub currency: String,
    pub as_of: String,
    pub accounts: Vec<AccountLine>,
    pub total_debit: String,
    pub total_credit: String,
    pub seal: SealRef,
    pub unsealed: i64,
}

impl TrialBalance {
    pub fn compute(
        campaign: &Campaign,
        as_of: DateTime<Utc>,
        balances: &[AccountBalance],
        seal: Seal,
        unsealed: i64,
    ) -> Result<TrialBalance, MoneyError> {
        let zero = Money::zero(campaign.currency);
        let (mut debits, mut credits) = (zero, zero);
        let mut accounts = Vec::with_capacity(balances.len());
        for b in balances {
            let (debit, credit) = if b.signed.is_positive() {
                (b.signed, zero)
            } else {
                (
                    zero,
                    Money::from_minor(-b.signed.minor(), b.signed.currency()),
                )
            };
            debits = debits.checked_add(debit)?;
            credits = credits.checked_add(credit)?;
            accounts.push(AccountLine {
                account: b.account.clone(),
                kind: b.kind.as_str().to_owned(),
                debit: debit.to_decimal().to_string(),
                credit: credit.to_decimal().to_string(),
            });
        }
        Ok(TrialBalance {
            campaign: campaign.slug.to_string(),
            currency: campaign.currency.to_string(),
            as_of: as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
            accounts,
            total_debit: debits.to_decimal().to_string(),
            total_credit: credits.to_decimal().to_string(),
            seal: SealRef::of(seal),
            unsealed,
        })
    }

    /// One row per account, then a `total` row; the seal in the last row.
    pub fn to_csv(&self) -> String {
        let mut out = csv::row(&["account", "kind", "debit", "credit"]);
        for a in &self.accounts {
            out.push_str(&csv::row(&[&a.account, &a.kind, &a.debit, &a.credit]));
        }
        out.push_str(&csv::row(&[
            "total",
            "",
            &self.total_debit,
            &self.total_credit,
        ]));
        out.push_str(&csv::row(&csv::seal_cells(
            4,
            "seal",
            self.seal.sequence,
            &self.seal.hash,
            self.unsealed,
        )));
        out
    }
}
