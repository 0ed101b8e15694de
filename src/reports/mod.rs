//! Treasurer reports: what the books say as of an instant, in shapes people and regulators
//! read (JSON, CSV). Each report is a query here and a pure computation and rendering in its
//! own module.
//!
//! Invariants: a report is a pure function of what the store read as of its instant (the
//! end of a day in the campaign's time zone, or an exact instant); amounts are exact decimal
//! strings in the campaign's currency; every report names the seal that covered the books
//! when it was read, and how many entries were not sealed yet.

mod csv;
pub mod exceptions;
pub mod summary;
pub mod trial_balance;

pub use exceptions::Exceptions;
pub use summary::{GiftFigure, Summary};
pub use trial_balance::TrialBalance;

use chrono::{DateTime, Utc};

use crate::campaign::Campaign;
use crate::intake::InboxStatus;
use crate::store::{Store, StoreError};

/// The reports Obole serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Summary,
    TrialBalance,
    Exceptions,
}

impl Kind {
    /// The name used on the command line and in URLs.
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "summary" => Kind::Summary,
            "trial-balance" => Kind::TrialBalance,
            "exceptions" => Kind::Exceptions,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Summary => "summary",
            Kind::TrialBalance => "trial-balance",
            Kind::Exceptions => "exceptions",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// A report of `campaign` as of `as_of`, rendered. The seal is read first: it covers at least
/// every entry sealed before the figures were read.
pub async fn render(
    store: &Store,
    campaign: &Campaign,
    kind: Kind,
    as_of: DateTime<Utc>,
    format: Format,
) -> Result<String, StoreError> {
    let seal = store.seal_status().await?;
    let corrupt = |e: crate::money::MoneyError| {
        StoreError::Corrupt(format!("report of {}: {e}", campaign.slug))
    };
    let json =
        |value: serde_json::Result<String>| value.map_err(|e| StoreError::Corrupt(e.to_string()));
    Ok(match kind {
        Kind::Summary => {
            let balances = store.balances(campaign.id, as_of).await?;
            let gifts = store.kept_gifts(campaign.id, as_of).await?;
            let report =
                Summary::compute(campaign, as_of, &balances, &gifts, seal.head, seal.unsealed)
                    .map_err(corrupt)?;
            match format {
                Format::Json => json(serde_json::to_string_pretty(&report))?,
                Format::Csv => report.to_csv(),
            }
        }
        Kind::TrialBalance => {
            let balances = store.balances(campaign.id, as_of).await?;
            let report =
                TrialBalance::compute(campaign, as_of, &balances, seal.head, seal.unsealed)
                    .map_err(corrupt)?;
            match format {
                Format::Json => json(serde_json::to_string_pretty(&report))?,
                Format::Csv => report.to_csv(),
            }
        }
        Kind::Exceptions => {
            let owed = store
                .owed_refunds(Some(campaign.id), None, i64::MAX)
                .await?;
            let decisions = store.decisions(campaign.id, 0, i64::MAX).await?;
            let parked = store
                .stripe_events_with_status(InboxStatus::Parked, 10_000)
                .await?;
            let report = Exceptions::compute(
                campaign,
                as_of,
                &owed,
                &decisions,
                &parked,
                seal.head,
                seal.unsealed,
            );
            match format {
                Format::Json => json(serde_json::to_string_pretty(&report))?,
                Format::Csv => report.to_csv(),
            }
        }
    })
}
