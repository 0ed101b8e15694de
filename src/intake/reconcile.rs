//! Reconciliation: Stripe's balance transactions against the ledger, decided without I/O.
//!
//! Invariants: a movement matches when the ledger holds, under `stripe:<txn id>`, exactly
//! the postings the posting rules derive from Stripe's transaction (so an edited amount or
//! account shows up); a payout matches when the net of the transactions it paid out equals
//! its amount.

use std::collections::BTreeMap;

use serde::Serialize;

use super::rules::entry_for;
use crate::campaign::Campaign;
use crate::provider::stripe::objects::BalanceTransaction;

/// One disagreement between Stripe and the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// Stripe moved money the ledger does not show.
    Missing {
        txn: String,
        category: String,
        amount: i64,
    },
    /// The ledger shows the movement with other postings.
    Different {
        txn: String,
        expected: Vec<(String, i64)>,
        found: Vec<(String, i64)>,
    },
    /// The ledger shows a Stripe movement Stripe does not list.
    UnknownToStripe { txn: String },
    /// A payout's amount is not the net of the transactions it paid out.
    PayoutMismatch {
        payout: String,
        amount: i64,
        included_net: i64,
    },
    /// Stripe's transaction cannot be posted under the campaign's rules.
    Unpostable { txn: String, reason: String },
}

/// The ledger side: postings `(account, amount)` per Stripe transaction id.
pub type LedgerMovements = BTreeMap<String, Vec<(String, i64)>>;

/// Compares Stripe's transactions with the ledger. With `complete`, `stripe` is the whole
/// history, and ledger movements absent from it are reported too.
pub fn compare(
    campaign: &Campaign,
    stripe: &[BalanceTransaction],
    ledger: &LedgerMovements,
    complete: bool,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for txn in stripe {
        let expected = match entry_for(campaign, txn, None, None) {
            Ok(draft) => {
                let mut postings: Vec<(String, i64)> = draft
                    .postings
                    .iter()
                    .map(|p| (p.account.clone(), p.amount.minor()))
                    .collect();
                postings.sort();
                postings
            }
            Err(error) => {
                findings.push(Finding::Unpostable {
                    txn: txn.id.clone(),
                    reason: error.to_string(),
                });
                continue;
            }
        };
        match ledger.get(&txn.id) {
            None => findings.push(Finding::Missing {
                txn: txn.id.clone(),
                category: txn.reporting_category.clone(),
                amount: txn.amount,
            }),
            Some(found) => {
                let mut found = found.clone();
                found.sort();
                if found != expected {
                    findings.push(Finding::Different {
                        txn: txn.id.clone(),
                        expected,
                        found,
                    });
                }
            }
        }
    }
    if complete {
        for txn in ledger.keys() {
            if !stripe.iter().any(|t| &t.id == txn) {
                findings.push(Finding::UnknownToStripe { txn: txn.clone() });
            }
        }
    }
    findings
}

/// Checks one payout: `amount` (positive, as on the payout) against the net of what it paid
/// out (the payout's own transaction excluded).
pub fn check_payout(
    payout: &str,
    amount: i64,
    own_txn: Option<&str>,
    included: &[BalanceTransaction],
) -> Option<Finding> {
    let included_net: i64 = included
        .iter()
        .filter(|t| Some(t.id.as_str()) != own_txn)
        .map(|t| t.net)
        .sum();
    (included_net != amount).then(|| Finding::PayoutMismatch {
        payout: payout.to_owned(),
        amount,
        included_net,
    })
}
