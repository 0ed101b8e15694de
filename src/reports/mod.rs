//! Treasurer reports: what the books say as of an instant, in shapes people and regulators
//! read (JSON, CSV). Each report is a query here and a pure computation and rendering in its
//! own module.
//!
//! Invariants: a report is a pure function of what the store read as of its instant (the
//! end of a day in the campaign's time zone, or an exact instant); amounts are exact decimal
//! strings in the campaign's currency; every report names the seal that covered the books
//! when it was read, and how many entries were not sealed yet. Reports that grow with the
//! campaign (the donor register) are written a page at a time into a bounded channel, so
//! memory stays bounded whatever their size and a slow reader slows the reading down.

mod csv;
pub mod donors;
pub mod exceptions;
pub mod summary;
pub mod trial_balance;

pub use exceptions::Exceptions;
pub use summary::{GiftFigure, Summary};
pub use trial_balance::TrialBalance;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::campaign::Campaign;
use crate::compliance::Packs;
use crate::intake::InboxStatus;
use crate::store::{Store, StoreError};
pub use donors::View;

/// The reports Obole serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Summary,
    Donors,
    TrialBalance,
    Exceptions,
}

impl Kind {
    /// The name used on the command line and in URLs.
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "summary" => Kind::Summary,
            "donors" => Kind::Donors,
            "trial-balance" => Kind::TrialBalance,
            "exceptions" => Kind::Exceptions,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Summary => "summary",
            Kind::Donors => "donors",
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

/// Which report, as of when, in which format, for whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub as_of: DateTime<Utc>,
    pub format: Format,
    pub view: View,
}

/// Persons per page of the donor register.
const REGISTER_PAGE: i64 = 1_000;

/// A report of `campaign`, whole (for small reports and tests; exports stream with [`write`]).
pub async fn render(
    store: &Store,
    packs: &Packs,
    campaign: &Campaign,
    request: Request,
) -> Result<String, StoreError> {
    let (out, mut chunks) = mpsc::channel::<String>(8);
    let mut text = String::new();
    let collect = async {
        while let Some(chunk) = chunks.recv().await {
            text.push_str(&chunk);
        }
    };
    let (written, ()) = tokio::join!(write(store, packs, campaign, request, out), collect);
    written.map(|()| text)
}

/// Writes a report of `campaign` to `out`, in chunks. The seal is read first: it covers at
/// least every entry sealed before the figures were read. Stops early, without error, when
/// the reader has gone.
pub async fn write(
    store: &Store,
    packs: &Packs,
    campaign: &Campaign,
    request: Request,
    out: mpsc::Sender<String>,
) -> Result<(), StoreError> {
    let Request {
        kind,
        as_of,
        format,
        view,
    } = request;
    let seal = store.seal_status().await?;
    let corrupt = |e: crate::money::MoneyError| {
        StoreError::Corrupt(format!("report of {}: {e}", campaign.slug))
    };
    let json =
        |value: serde_json::Result<String>| value.map_err(|e| StoreError::Corrupt(e.to_string()));
    let whole = match kind {
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
        Kind::Donors => {
            let pack = packs.get(&campaign.rule_pack).ok_or_else(|| {
                StoreError::Corrupt(format!("rule pack {} is not loaded", campaign.rule_pack))
            })?;
            let mut register = donors::Register::new(campaign, pack, view, format, as_of);
            if out
                .send(register.header(seal.head, seal.unsealed))
                .await
                .is_err()
            {
                return Ok(());
            }
            let mut after = 0;
            loop {
                let page = store
                    .register_page(campaign.id, as_of, after, REGISTER_PAGE)
                    .await?;
                let Some(through) = page.through_person else {
                    break;
                };
                after = through;
                let chunk = register.page(&page.gifts).map_err(corrupt)?;
                if out.send(chunk).await.is_err() {
                    return Ok(());
                }
            }
            register.footer(seal.head, seal.unsealed)
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
    };
    // A reader that has gone needs nothing more.
    let _ = out.send(whole).await;
    Ok(())
}
