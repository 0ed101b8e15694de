//! The chart of accounts every campaign starts with.
//!
//! Account names are part of entry content hashes, so a name, once used, never changes
//! meaning. New accounts may be added to [`CHART`]; existing ones are never renamed.

use serde::Serialize;

/// What an account records, which fixes its normal side: assets, expenses and contra-income
/// accounts grow with debits (positive postings); income and liabilities grow with credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Asset,
    Liability,
    Income,
    /// Reduces income: refunds and chargebacks of donations.
    ContraIncome,
    Expense,
}

impl AccountKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountKind::Asset => "asset",
            AccountKind::Liability => "liability",
            AccountKind::Income => "income",
            AccountKind::ContraIncome => "contra_income",
            AccountKind::Expense => "expense",
        }
    }

    pub fn parse(text: &str) -> Option<AccountKind> {
        [
            AccountKind::Asset,
            AccountKind::Liability,
            AccountKind::Income,
            AccountKind::ContraIncome,
            AccountKind::Expense,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    /// +1 when debits increase the account, −1 when credits do.
    pub fn normal_sign(&self) -> i64 {
        match self {
            AccountKind::Asset | AccountKind::Expense | AccountKind::ContraIncome => 1,
            AccountKind::Liability | AccountKind::Income => -1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartAccount {
    pub name: &'static str,
    pub kind: AccountKind,
    pub purpose: &'static str,
}

/// The accounts created with each campaign (DESIGN.md, decision 4).
pub const CHART: &[ChartAccount] = &[
    ChartAccount {
        name: "assets:stripe",
        kind: AccountKind::Asset,
        purpose: "funds held at Stripe, not yet paid out",
    },
    ChartAccount {
        name: "assets:bank",
        kind: AccountKind::Asset,
        purpose: "the campaign's bank account",
    },
    ChartAccount {
        name: "assets:cheques",
        kind: AccountKind::Asset,
        purpose: "cheques received, not yet deposited",
    },
    ChartAccount {
        name: "assets:cash",
        kind: AccountKind::Asset,
        purpose: "cash received, not yet deposited",
    },
    ChartAccount {
        name: "income:donations",
        kind: AccountKind::Income,
        purpose: "gross donations received",
    },
    ChartAccount {
        name: "income:donations:refunds",
        kind: AccountKind::ContraIncome,
        purpose: "donations given back",
    },
    ChartAccount {
        name: "income:donations:chargebacks",
        kind: AccountKind::ContraIncome,
        purpose: "donations lost to disputes",
    },
    ChartAccount {
        name: "expenses:fees:stripe",
        kind: AccountKind::Expense,
        purpose: "Stripe processing fees",
    },
    ChartAccount {
        name: "expenses:fees:disputes",
        kind: AccountKind::Expense,
        purpose: "Stripe dispute fees",
    },
    ChartAccount {
        name: "liabilities:refunds_due",
        kind: AccountKind::Liability,
        purpose: "excess or refused gifts owed back to donors",
    },
];

/// Looks an account up in the chart by name.
pub fn chart_account(name: &str) -> Option<&'static ChartAccount> {
    CHART.iter().find(|account| account.name == name)
}
