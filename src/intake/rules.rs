//! Posting rules: a Stripe balance transaction becomes one journal entry (stripe.md §2.5).
//!
//! Invariants:
//! - The entry's idempotency key is `stripe:` + the balance-transaction id, so the same money
//!   movement, however it is reached (an event, a re-delivery, another event about the same
//!   charge, reconciliation), is posted once.
//! - Amounts are Stripe's own: `amount`, `fee` and `net` as the balance transaction states
//!   them; no fee is ever computed here, and `net = amount − fee` is checked.
//! - `effective_at` is when the money moved at Stripe (`created`), not when we heard of it;
//!   a payout's caller passes the day the bank received it.
//! - The entry's content depends only on the movement and its contribution, never on which
//!   event led to it, so every route to it replays the same entry.
//!
//! Every category posts the same three movements, so every entry balances by construction:
//! `net` to `assets:stripe`, `fee` to the category's fee account, `−amount` to its counter
//! account (income for a gift, the refunds or chargebacks contra account, or the bank).

use chrono::{DateTime, Utc};

use crate::campaign::Campaign;
use crate::ids::{IdError, IdempotencyKey};
use crate::intake::ContributionRef;
use crate::ledger::{EntryDraft, Links};
use crate::money::{Currency, Money, MoneyError};

pub use crate::provider::stripe::objects::BalanceTransaction;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("balance transaction {id}: reporting category {category:?} is not one Obole posts")]
    UnsupportedCategory { id: String, category: String },
    #[error("balance transaction {id}: net {net} is not amount {amount} minus fee {fee}")]
    Inconsistent {
        id: String,
        amount: i64,
        fee: i64,
        net: i64,
    },
    #[error("balance transaction {id} settles in {currency}, but the campaign keeps its books in {expected}")]
    WrongCurrency {
        id: String,
        currency: String,
        expected: Currency,
    },
    #[error("balance transaction {id}: `created` {created} is not a valid instant")]
    BadTime { id: String, created: i64 },
    #[error("balance transaction id {0:?} cannot key an entry: {1}")]
    BadId(String, IdError),
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// (counter account, fee account, description) per reporting category.
fn accounts_for(category: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match category {
        "charge" => ("income:donations", "expenses:fees:stripe", "gift"),
        "refund" => ("income:donations:refunds", "expenses:fees:stripe", "refund"),
        "refund_failure" => (
            "income:donations:refunds",
            "expenses:fees:stripe",
            "failed refund returned",
        ),
        "dispute" => (
            "income:donations:chargebacks",
            "expenses:fees:disputes",
            "dispute: funds withdrawn",
        ),
        "dispute_reversal" => (
            "income:donations:chargebacks",
            "expenses:fees:disputes",
            "dispute: funds reinstated",
        ),
        "payout" => ("assets:bank", "expenses:fees:stripe", "payout to the bank"),
        "payout_reversal" => (
            "assets:bank",
            "expenses:fees:stripe",
            "payout failed or reversed",
        ),
        _ => return None,
    })
}

/// The entry for one balance transaction of `campaign`, linked to the gift it concerns.
/// `effective_at` overrides the transaction's own time (a payout reaches the bank later).
pub fn entry_for(
    campaign: &Campaign,
    txn: &BalanceTransaction,
    gift: Option<ContributionRef>,
    effective_at: Option<DateTime<Utc>>,
) -> Result<EntryDraft, RuleError> {
    let (counter, fee_account, what) =
        accounts_for(&txn.reporting_category).ok_or_else(|| RuleError::UnsupportedCategory {
            id: txn.id.clone(),
            category: txn.reporting_category.clone(),
        })?;
    if txn.amount.checked_sub(txn.fee) != Some(txn.net) {
        return Err(RuleError::Inconsistent {
            id: txn.id.clone(),
            amount: txn.amount,
            fee: txn.fee,
            net: txn.net,
        });
    }
    let currency = Currency::parse(&txn.currency)?;
    if currency != campaign.currency {
        return Err(RuleError::WrongCurrency {
            id: txn.id.clone(),
            currency: txn.currency.clone(),
            expected: campaign.currency,
        });
    }
    let effective_at = match effective_at {
        Some(at) => at,
        None => DateTime::from_timestamp(txn.created, 0).ok_or(RuleError::BadTime {
            id: txn.id.clone(),
            created: txn.created,
        })?,
    };
    let source = format!("stripe:{}", txn.id);
    let key =
        IdempotencyKey::parse(source.clone()).map_err(|e| RuleError::BadId(txn.id.clone(), e))?;
    let description = match &txn.source {
        Some(object) => format!("Stripe {what} ({object})"),
        None => format!("Stripe {what}"),
    };
    let money = |minor| Money::from_minor(minor, currency);
    let mut draft = EntryDraft::new(key, description, effective_at).links(Links {
        source: Some(source),
        event_id: None,
        donor_id: gift.map(|g| g.donor_id),
        contribution_id: gift.map(|g| g.contribution_id),
    });
    // Zero movements are left out: a refund has no fee, a charge may net to nothing.
    for (account, minor) in [
        ("assets:stripe", txn.net),
        (fee_account, txn.fee),
        (counter, -txn.amount),
    ] {
        if minor != 0 {
            draft = draft.post(account, money(minor));
        }
    }
    Ok(draft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::NewCampaign;
    use crate::ids::CampaignId;
    use crate::ledger::Entry;

    fn campaign() -> Campaign {
        NewCampaign::parse(
            "printemps-2026",
            "Printemps 2026",
            "fr-candidate",
            "EUR",
            "Europe/Paris",
            None,
        )
        .unwrap()
        .created(CampaignId(1), DateTime::from_timestamp(0, 0).unwrap())
    }

    fn txn(json: &str) -> BalanceTransaction {
        serde_json::from_str(json).unwrap()
    }

    /// Postings as (account, minor) pairs, after validation as a real entry.
    fn postings(t: &BalanceTransaction) -> Vec<(String, i64)> {
        let c = campaign();
        let entry = Entry::new(&c, entry_for(&c, t, None, None).unwrap()).unwrap();
        entry
            .content()
            .postings
            .iter()
            .map(|p| (p.account.clone(), p.amount.minor()))
            .collect()
    }

    // Amounts from Stripe's documented objects (the shared fixtures).
    const CHARGE: &str = r#"{"id":"txn_3SXyA9Fz8kQp3LmN1eFgHiJk","object":"balance_transaction","amount":2500,"available_on":1764547200,"created":1764012340,"currency":"eur","fee":63,"fee_details":[{"amount":63,"currency":"eur","type":"stripe_fee"}],"net":2437,"reporting_category":"charge","source":"ch_3SXyA9Fz8kQp3LmN1pQrStUv","status":"pending","type":"charge"}"#;
    const DISPUTE: &str = r#"{"id":"txn_1SZa1AFz8kQp3LmNdBtXn001","amount":-1500,"created":1765203600,"currency":"eur","fee":2000,"net":-3500,"reporting_category":"dispute","source":"du_1SZa1AFz8kQp3LmNdIsPuTe1","type":"adjustment"}"#;

    #[test]
    fn a_gift_posts_gross_fee_and_net() {
        let t = txn(CHARGE);
        assert_eq!(
            postings(&t),
            vec![
                ("assets:stripe".into(), 2437),
                ("expenses:fees:stripe".into(), 63),
                ("income:donations".into(), -2500)
            ]
        );
        let gift = ContributionRef {
            donor_id: 7,
            contribution_id: 9,
        };
        let draft = entry_for(&campaign(), &t, Some(gift), None).unwrap();
        assert_eq!(
            draft.idempotency_key.as_str(),
            "stripe:txn_3SXyA9Fz8kQp3LmN1eFgHiJk"
        );
        assert_eq!(
            draft.effective_at.timestamp(),
            1_764_012_340,
            "when the money moved"
        );
        assert_eq!(
            (draft.links.donor_id, draft.links.contribution_id),
            (Some(7), Some(9))
        );
        assert_eq!(draft.links.event_id, None, "no trace of the route taken");
        let later = DateTime::from_timestamp(1_764_100_000, 0).unwrap();
        let payout_day = entry_for(&campaign(), &t, None, Some(later)).unwrap();
        assert_eq!(payout_day.effective_at, later);
    }

    #[test]
    fn a_refund_debits_the_contra_account_without_a_fee() {
        let refund = txn(
            r#"{"id":"txn_re1","amount":-1000,"created":1764100000,"currency":"eur","fee":0,"net":-1000,"reporting_category":"refund","source":"re_1","type":"refund"}"#,
        );
        assert_eq!(
            postings(&refund),
            vec![
                ("assets:stripe".into(), -1000),
                ("income:donations:refunds".into(), 1000)
            ]
        );
    }

    #[test]
    fn a_lost_dispute_withdraws_the_gift_and_the_fee() {
        assert_eq!(
            postings(&txn(DISPUTE)),
            vec![
                ("assets:stripe".into(), -3500),
                ("expenses:fees:disputes".into(), 2000),
                ("income:donations:chargebacks".into(), 1500)
            ]
        );
    }

    #[test]
    fn a_won_dispute_reinstates_and_a_payout_reaches_the_bank() {
        let reinstated = txn(
            r#"{"id":"txn_dr1","amount":1500,"created":1766000000,"currency":"eur","fee":0,"net":1500,"reporting_category":"dispute_reversal","type":"adjustment"}"#,
        );
        assert_eq!(
            postings(&reinstated),
            vec![
                ("assets:stripe".into(), 1500),
                ("income:donations:chargebacks".into(), -1500)
            ]
        );
        let payout = txn(
            r#"{"id":"txn_po1","amount":-48213,"created":1766100000,"currency":"eur","fee":0,"net":-48213,"reporting_category":"payout","source":"po_1","type":"payout"}"#,
        );
        assert_eq!(
            postings(&payout),
            vec![
                ("assets:bank".into(), 48213),
                ("assets:stripe".into(), -48213)
            ]
        );
        let failed = txn(
            r#"{"id":"txn_pf1","amount":48213,"created":1766200000,"currency":"eur","fee":0,"net":48213,"reporting_category":"payout_reversal","source":"po_1","type":"payout_failure"}"#,
        );
        assert_eq!(
            postings(&failed),
            vec![
                ("assets:bank".into(), -48213),
                ("assets:stripe".into(), 48213)
            ]
        );
    }

    #[test]
    fn inconsistent_foreign_and_unknown_movements_are_refused() {
        let c = campaign();
        let mut t = txn(CHARGE);
        t.net = 2400;
        assert!(matches!(
            entry_for(&c, &t, None, None),
            Err(RuleError::Inconsistent { .. })
        ));
        let mut t = txn(CHARGE);
        t.currency = "usd".into();
        assert!(matches!(
            entry_for(&c, &t, None, None),
            Err(RuleError::WrongCurrency { .. })
        ));
        let mut t = txn(CHARGE);
        t.reporting_category = "topup".into();
        assert!(matches!(
            entry_for(&c, &t, None, None),
            Err(RuleError::UnsupportedCategory { .. })
        ));
        let mut t = txn(CHARGE);
        t.amount = i64::MIN;
        assert!(matches!(
            entry_for(&c, &t, None, None),
            Err(RuleError::Inconsistent { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn every_consistent_movement_becomes_a_balanced_entry(
            amount in -10_000_000_i64..10_000_000,
            fee in -100_000_i64..100_000,
            category in proptest::sample::select(vec!["charge", "refund", "refund_failure", "dispute", "dispute_reversal", "payout", "payout_reversal"]),
        ) {
            let t = BalanceTransaction {
                id: "txn_prop".into(),
                amount,
                fee,
                net: amount - fee,
                currency: "eur".into(),
                created: 1_764_012_340,
                reporting_category: category.into(),
                kind: "adjustment".into(),
                source: None,
            };
            let c = campaign();
            let draft = entry_for(&c, &t, None, None).unwrap();
            if draft.postings.len() < 2 {
                // Only a movement of nothing at all has fewer than two non-zero lines.
                proptest::prop_assert!(amount == 0 && fee == 0);
            } else {
                proptest::prop_assert!(Entry::new(&c, draft).is_ok());
            }
        }
    }
}
