//! Treasurer reports: what the books say as of an instant, in shapes people and regulators
//! read (JSON, CSV, and PDF typeset from the CSV). Each report is read here and computed and
//! rendered, purely, in its own module.
//!
//! Invariants: a report is a pure function of what the store read as of its instant (the
//! end of a day in the campaign's time zone, or an exact instant); amounts are exact decimal
//! strings in the campaign's currency; every report names the seal that covered the books
//! when it was read, and how many entries were not sealed yet. Reports that grow with the
//! campaign (the donor register, the journal) are written a page at a time into a bounded channel, so
//! memory stays bounded whatever their size and a slow reader slows the reading down.

pub mod chart;
mod csv;
pub mod donors;
pub mod exceptions;
#[cfg(test)]
mod fixtures;
pub mod journal;
pub mod pdf;
pub mod reconciliation;
pub mod summary;
pub mod tally;
pub mod trial_balance;

pub use exceptions::Exceptions;
pub use summary::{GiftFigure, Summary};
pub use trial_balance::TrialBalance;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::campaign::Campaign;
use crate::compliance::{Packs, RulePack};
use crate::intake::InboxStatus;
use crate::ledger::entry::StoredEntry;
use crate::ledger::AccountBalance;
use crate::store::{SealStatus, Store, StoreError};
pub use donors::View;

/// The reports Obole serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Summary,
    Donors,
    TrialBalance,
    Journal,
    Reconciliation,
    Exceptions,
}

impl Kind {
    /// The name used on the command line and in URLs.
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "summary" => Kind::Summary,
            "donors" => Kind::Donors,
            "trial-balance" => Kind::TrialBalance,
            "journal" => Kind::Journal,
            "reconciliation" => Kind::Reconciliation,
            "exceptions" => Kind::Exceptions,
            _ => return None,
        })
    }

    /// The heading a printed report carries.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Summary => "Summary",
            Kind::Donors => "Donor register",
            Kind::TrialBalance => "Trial balance",
            Kind::Journal => "Journal",
            Kind::Reconciliation => "Payout reconciliation",
            Kind::Exceptions => "Exceptions",
        }
    }

    /// The columns a printed page keeps of a wide report (`None`: all).
    fn printed_columns(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Donors => Some(donors::PRINTED_COLUMNS),
            Kind::Journal => Some(journal::PRINTED_COLUMNS),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Summary => "summary",
            Kind::Donors => "donors",
            Kind::TrialBalance => "trial-balance",
            Kind::Journal => "journal",
            Kind::Reconciliation => "reconciliation",
            Kind::Exceptions => "exceptions",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    /// The CSV's table, typeset, with the seal on every page (built whole, not streamed).
    Pdf,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Pdf => "pdf",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Pdf => "application/pdf",
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
/// Pages of the donor register read at once (one per core of a small database server).
const REGISTER_PAGES_IN_FLIGHT: usize = 2;
/// Entries per page of the journal.
const JOURNAL_PAGE: i64 = 2_000;

/// A report of `campaign`, whole (for small reports and tests; exports stream with [`write`]).
pub async fn render(
    store: &Store,
    packs: &Packs,
    campaign: &Campaign,
    request: Request,
) -> Result<Vec<u8>, StoreError> {
    let seal = store.seal_status().await?;
    if request.format == Format::Pdf {
        return typeset(store, packs, campaign, request, seal).await;
    }
    collect_text(store, packs, campaign, request, seal).await
}

/// Writes a report of `campaign` to `out`, in chunks. The seal is read first: it covers at
/// least every entry sealed before the figures were read. Stops early, without error, when
/// the reader has gone.
pub async fn write(
    store: &Store,
    packs: &Packs,
    campaign: &Campaign,
    request: Request,
    out: mpsc::Sender<Vec<u8>>,
) -> Result<(), StoreError> {
    let seal = store.seal_status().await?;
    if request.format == Format::Pdf {
        let pdf = typeset(store, packs, campaign, request, seal).await?;
        let _ = out.send(pdf).await;
        return Ok(());
    }
    write_text(store, packs, campaign, request, seal, out).await
}

/// The report as PDF, typeset from its CSV.
async fn typeset(
    store: &Store,
    packs: &Packs,
    campaign: &Campaign,
    request: Request,
    seal: SealStatus,
) -> Result<Vec<u8>, StoreError> {
    let table = Request {
        format: Format::Csv,
        ..request
    };
    let csv = collect_text(store, packs, campaign, table, seal).await?;
    Ok(pdf::render(&pdf_document(campaign, request, &csv, seal)?))
}

/// A text report's chunks, gathered.
async fn collect_text(
    store: &Store,
    packs: &Packs,
    campaign: &Campaign,
    request: Request,
    seal: SealStatus,
) -> Result<Vec<u8>, StoreError> {
    let (out, mut chunks) = mpsc::channel::<Vec<u8>>(8);
    let mut whole = Vec::new();
    let gather = async {
        while let Some(chunk) = chunks.recv().await {
            whole.extend_from_slice(&chunk);
        }
    };
    let (written, ()) = tokio::join!(
        write_text(store, packs, campaign, request, seal, out),
        gather
    );
    written.map(|()| whole)
}

/// The PDF of a report: its CSV's table (the summary's one row turned into
/// "figure, value" lines), the seal's row moved to every page's footer.
fn pdf_document(
    campaign: &Campaign,
    request: Request,
    csv_text: &[u8],
    seal: SealStatus,
) -> Result<pdf::Document, StoreError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv_text);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| StoreError::Corrupt(format!("report table: {e}")))?;
        rows.push(record.iter().map(str::to_owned).collect::<Vec<_>>());
    }
    let mut columns = if rows.is_empty() {
        Vec::new()
    } else {
        rows.remove(0)
    };
    rows.retain(|row| !matches!(row.first().map(String::as_str), Some("seal" | "#seal")));
    if let Some(printed) = request.kind.printed_columns() {
        let kept: Vec<bool> = columns
            .iter()
            .map(|c| printed.contains(&c.as_str()))
            .collect();
        let keep = |cells: Vec<String>| -> Vec<String> {
            cells
                .into_iter()
                .zip(&kept)
                .filter_map(|(cell, keep)| keep.then_some(cell))
                .collect()
        };
        rows = rows.into_iter().map(keep).collect();
        columns = keep(columns);
    }
    let (columns, rows) = if request.kind == Kind::Summary && rows.len() == 1 {
        let row = rows.remove(0);
        let pairs = columns
            .into_iter()
            .zip(row)
            .map(|(c, v)| vec![c, v])
            .collect();
        (vec!["figure".to_owned(), "value".to_owned()], pairs)
    } else {
        (columns, rows)
    };
    let local = request.as_of.with_timezone(&campaign.timezone);
    let seal_ref = format!("{}:{}", seal.head.sequence, seal.head.hash.to_hex());
    Ok(pdf::Document {
        title: format!("{} — {}", campaign.name, request.kind.title()),
        subtitle: vec![format!(
            "{} · {} · as of {} ({}){}",
            campaign.slug,
            campaign.currency,
            local.format("%Y-%m-%d %H:%M:%S"),
            campaign.timezone.name(),
            if request.view == View::Masked {
                " · donor details masked"
            } else {
                ""
            }
        )],
        columns,
        rows,
        footer: format!(
            "Seal {seal_ref} ({} entries not yet sealed) · obole verify --seal {seal_ref}",
            seal.unsealed
        ),
    })
}

/// Writes a text report (JSON or CSV) with the seal already read.
async fn write_text(
    store: &Store,
    packs: &Packs,
    campaign: &Campaign,
    request: Request,
    seal: SealStatus,
    out: mpsc::Sender<Vec<u8>>,
) -> Result<(), StoreError> {
    let Request {
        kind,
        as_of,
        format,
        view,
    } = request;
    let corrupt = |e: crate::money::MoneyError| {
        StoreError::Corrupt(format!("report of {}: {e}", campaign.slug))
    };
    let json =
        |value: serde_json::Result<String>| value.map_err(|e| StoreError::Corrupt(e.to_string()));
    let whole = match kind {
        Kind::Summary => {
            let balances = store.balances(campaign.id, as_of).await?;
            let report = summary(store, campaign, as_of, seal, &balances).await?;
            match format {
                Format::Json => json(serde_json::to_string_pretty(&report))?,
                Format::Csv | Format::Pdf => report.to_csv(),
            }
        }
        Kind::Donors => {
            let pack = pack_of(packs, campaign)?;
            let mut register = donors::Register::new(campaign, pack, view, format, as_of);
            if !send(&out, register.header(seal.head, seal.unsealed)).await {
                return Ok(());
            }
            // Pages of persons are found one after another (an index range each), and the
            // gifts of two pages read at once: the database reads the next page while this
            // one is written out.
            let read_gifts = |after: i64, through: i64| {
                let (store, id) = (store.clone(), campaign.id);
                tokio::spawn(async move { store.register_gifts(id, as_of, after, through).await })
            };
            let mut in_flight = std::collections::VecDeque::new();
            let (mut after, mut more) = (0, true);
            loop {
                while more && in_flight.len() < REGISTER_PAGES_IN_FLIGHT {
                    match store
                        .register_span(campaign.id, after, REGISTER_PAGE)
                        .await?
                    {
                        Some(through) => {
                            in_flight.push_back(read_gifts(after, through));
                            after = through;
                        }
                        None => more = false,
                    }
                }
                let Some(page) = in_flight.pop_front() else {
                    break;
                };
                let gifts = page
                    .await
                    .map_err(|e| StoreError::Corrupt(format!("a register page: {e}")))??;
                if !send(&out, register.page(&gifts).map_err(corrupt)?).await {
                    return Ok(());
                }
            }
            register.footer(seal.head, seal.unsealed)
        }
        Kind::Journal => {
            let french = donors::Shape::of(pack_of(packs, campaign)?) == donors::Shape::Cnccfp;
            let mut journal = journal::Journal::new(campaign, format, as_of, french);
            if !send(&out, journal.header(seal.head, seal.unsealed)).await {
                return Ok(());
            }
            let mut pages = JournalPages::new(store, campaign, as_of);
            while let Some(entries) = pages.next().await? {
                if !send(&out, journal.page(&entries).map_err(corrupt)?).await {
                    return Ok(());
                }
            }
            journal.footer(seal.head, seal.unsealed)
        }
        Kind::Reconciliation => {
            let mut reconciler = reconciliation::Reconciler::new();
            let mut pages = JournalPages::new(store, campaign, as_of);
            while let Some(entries) = pages.next().await? {
                reconciler.add(&entries).map_err(corrupt)?;
            }
            let report = reconciler
                .finish(campaign, as_of, seal.head, seal.unsealed)
                .map_err(corrupt)?;
            match format {
                Format::Json => json(serde_json::to_string_pretty(&report))?,
                Format::Csv | Format::Pdf => report.to_csv(),
            }
        }
        Kind::TrialBalance => {
            let balances = store.balances(campaign.id, as_of).await?;
            let report =
                TrialBalance::compute(campaign, as_of, &balances, seal.head, seal.unsealed)
                    .map_err(corrupt)?;
            match format {
                Format::Json => json(serde_json::to_string_pretty(&report))?,
                Format::Csv | Format::Pdf => report.to_csv(),
            }
        }
        Kind::Exceptions => {
            let balances = store.balances(campaign.id, as_of).await?;
            let report = exceptions(store, campaign, as_of, seal, &balances).await?;
            match format {
                Format::Json => json(serde_json::to_string_pretty(&report))?,
                Format::Csv | Format::Pdf => report.to_csv(),
            }
        }
    };
    // A reader that has gone needs nothing more.
    send(&out, whole).await;
    Ok(())
}

/// The summary, from the campaign's `balances` as of `as_of` and its gift counts.
async fn summary(
    store: &Store,
    campaign: &Campaign,
    as_of: DateTime<Utc>,
    seal: SealStatus,
    balances: &[AccountBalance],
) -> Result<Summary, StoreError> {
    let counts = store.gift_counts(campaign.id, as_of).await?;
    Summary::compute(campaign, as_of, balances, &counts, seal.head, seal.unsealed)
        .map_err(|e| StoreError::Corrupt(format!("report of {}: {e}", campaign.slug)))
}

/// The exceptions, with the campaign's `balances` as of `as_of` (for the money at Stripe).
async fn exceptions(
    store: &Store,
    campaign: &Campaign,
    as_of: DateTime<Utc>,
    seal: SealStatus,
    balances: &[AccountBalance],
) -> Result<Exceptions, StoreError> {
    let findings = exceptions::Findings {
        owed: store
            .owed_refunds(Some(campaign.id), None, i64::MAX)
            .await?,
        decisions: store.decisions(campaign.id, 0, i64::MAX).await?,
        parked: store
            .stripe_events_with_status(InboxStatus::Parked, 10_000)
            .await?,
        at_stripe: at_stripe(store, campaign, as_of, balances).await?,
    };
    Ok(Exceptions::compute(
        campaign,
        as_of,
        &findings,
        seal.head,
        seal.unsealed,
    ))
}

/// Money at Stripe by `as_of`, and the movements there the reconciliation cannot explain.
async fn at_stripe(
    store: &Store,
    campaign: &Campaign,
    as_of: DateTime<Utc>,
    balances: &[AccountBalance],
) -> Result<exceptions::AtStripe, StoreError> {
    let balance = balances
        .iter()
        .find(|b| b.account == "assets:stripe")
        .map(AccountBalance::natural);
    let (first, last_payout) = store.stripe_payout_times(campaign.id, as_of).await?;
    let beyond = store
        .stripe_entries_beyond(
            campaign.id,
            as_of,
            reconciliation::EXPLAINING_ACCOUNTS,
            1_000,
        )
        .await?;
    let mut unexplained = Vec::new();
    for entry in beyond {
        let minor = reconciliation::unexplained_at_stripe(&entry)
            .map_err(|e| StoreError::Corrupt(format!("entry {}: {e}", entry.id.0)))?;
        if minor != 0 {
            unexplained.push(exceptions::Unexplained {
                entry: entry.id.0,
                effective_at: entry.content.effective_at,
                description: entry.content.description.clone(),
                amount: crate::money::Money::from_minor(minor, campaign.currency),
            });
        }
    }
    Ok(exceptions::AtStripe {
        balance,
        unpaid_since: last_payout.or(first),
        unexplained,
    })
}

/// What the treasurer's dashboard shows.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub summary: Summary,
    /// Items on the exceptions report.
    pub exceptions: usize,
    /// Money raised per day, as SVG.
    pub chart: String,
}

/// The dashboard of `campaign` as of `as_of`.
pub async fn dashboard(
    store: &Store,
    campaign: &Campaign,
    as_of: DateTime<Utc>,
) -> Result<Dashboard, StoreError> {
    let seal = store.seal_status().await?;
    let balances = store.balances(campaign.id, as_of).await?;
    let summary = summary(store, campaign, as_of, seal, &balances).await?;
    let exceptions = exceptions(store, campaign, as_of, seal, &balances).await?;
    let from = as_of - chrono::Days::new(chart::MAX_DAYS + 1);
    let raised = store.raised_per_hour(campaign.id, from, as_of).await?;
    let days = chart::raised_per_day(&raised, campaign.timezone, as_of);
    let chart = chart::svg(&days, campaign.currency, "Raised per day")
        .map_err(|e| StoreError::Corrupt(format!("chart of {}: {e}", campaign.slug)))?;
    Ok(Dashboard {
        summary,
        exceptions: exceptions.exceptions.len(),
        chart,
    })
}

/// The campaign's journal by an instant, a page of entries at a time, in writing order.
struct JournalPages<'a> {
    store: &'a Store,
    campaign: &'a Campaign,
    as_of: DateTime<Utc>,
    after: i64,
}

impl<'a> JournalPages<'a> {
    fn new(store: &'a Store, campaign: &'a Campaign, as_of: DateTime<Utc>) -> JournalPages<'a> {
        JournalPages {
            store,
            campaign,
            as_of,
            after: 0,
        }
    }

    /// The next page; `None` after the last.
    async fn next(&mut self) -> Result<Option<Vec<StoredEntry>>, StoreError> {
        let entries = self
            .store
            .journal_page(self.campaign.id, self.as_of, self.after, JOURNAL_PAGE)
            .await?;
        Ok(entries.last().map(|last| last.id.0).map(|last| {
            self.after = last;
            entries
        }))
    }
}

/// The head of a streamed JSON report: `head`'s fields, then `"list":[` left open for the
/// items that follow (the report's footer closes both).
fn open_object(head: serde_json::Value, list: &str) -> String {
    let text = head.to_string();
    let fields = text.strip_suffix('}').unwrap_or(&text);
    format!("{fields},\"{list}\":[")
}

/// Sends a piece of a text report; false when the reader has gone.
async fn send(out: &mpsc::Sender<Vec<u8>>, text: String) -> bool {
    out.send(text.into_bytes()).await.is_ok()
}

fn pack_of<'p>(packs: &'p Packs, campaign: &Campaign) -> Result<&'p RulePack, StoreError> {
    packs.get(&campaign.rule_pack).ok_or_else(|| {
        StoreError::Corrupt(format!("rule pack {} is not loaded", campaign.rule_pack))
    })
}
