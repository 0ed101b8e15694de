//! The `journal` report: every entry of the campaign effective by the report's instant, with
//! its postings, in the order written — in a form an accountant imports. French campaigns get
//! the columns of the *fichier des écritures comptables* (LPF art. A47 A-1: `JournalCode` …
//! `Idevise`, dates as `YYYYMMDD`, amounts with a decimal comma), each account under an
//! indicative number of the French chart of accounts (PCG) that the accountant may remap;
//! others get plain columns.
//!
//! Invariants: one line per posting; a posting's amount is on the debit side when positive
//! and on the credit side when negative, never both; every entry's lines balance, so the
//! totals of the debit and credit columns are equal; written a page of entries at a time.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::csv;
use super::summary::SealRef;
use super::Format;
use crate::campaign::Campaign;
use crate::ledger::entry::StoredEntry;
use crate::ledger::seal::Seal;
use crate::money::{Money, MoneyError};

/// The FEC's columns, in its order.
pub const FEC_COLUMNS: &[&str] = &[
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
];

/// The columns a printed journal keeps (of either form).
pub const PRINTED_COLUMNS: &[&str] = &[
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "PieceRef",
    "Debit",
    "Credit",
    "entry",
    "effective_at",
    "reference",
    "account",
    "debit",
    "credit",
];

pub const PLAIN_COLUMNS: &[&str] = &[
    "entry",
    "effective_at",
    "recorded_at",
    "description",
    "reference",
    "account",
    "debit",
    "credit",
];

/// Writes the journal in pieces, as [`super::donors::Register`] does.
pub struct Journal<'c> {
    campaign: &'c Campaign,
    format: Format,
    as_of: DateTime<Utc>,
    french: bool,
    entries: u64,
    debit: Money,
    credit: Money,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    entry: i64,
    effective_at: String,
    recorded_at: String,
    description: &'a str,
    reference: Option<&'a str>,
    reverses: Option<i64>,
    postings: Vec<PostingJson<'a>>,
}

#[derive(Serialize)]
struct PostingJson<'a> {
    account: &'a str,
    debit: String,
    credit: String,
}

impl<'c> Journal<'c> {
    /// `french`: the FEC's columns (the campaign's rule pack is French).
    pub fn new(
        campaign: &'c Campaign,
        format: Format,
        as_of: DateTime<Utc>,
        french: bool,
    ) -> Journal<'c> {
        let zero = Money::zero(campaign.currency);
        Journal {
            campaign,
            format,
            as_of,
            french,
            entries: 0,
            debit: zero,
            credit: zero,
        }
    }

    pub fn header(&self, seal: Seal, unsealed: i64) -> String {
        match self.format {
            Format::Json => super::open_object(
                serde_json::json!({
                    "campaign": self.campaign.slug.as_str(),
                    "currency": self.campaign.currency.to_string(),
                    "as_of": self.as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "seal": SealRef::of(seal),
                    "unsealed": unsealed,
                }),
                "entries",
            ),
            Format::Csv | Format::Pdf => csv::row(self.columns()),
        }
    }

    pub fn columns(&self) -> &'static [&'static str] {
        if self.french {
            FEC_COLUMNS
        } else {
            PLAIN_COLUMNS
        }
    }

    /// One page of entries, in id order.
    pub fn page(&mut self, entries: &[StoredEntry]) -> Result<String, MoneyError> {
        let mut out = String::new();
        for entry in entries {
            for posting in &entry.content.postings {
                if posting.amount.is_positive() {
                    self.debit = self.debit.checked_add(posting.amount)?;
                } else {
                    self.credit = self.credit.checked_sub(posting.amount)?;
                }
            }
            match self.format {
                Format::Json => {
                    if self.entries > 0 {
                        out.push(',');
                    }
                    out.push_str(
                        &serde_json::to_string(&self.entry_json(entry)?).unwrap_or_default(),
                    );
                }
                Format::Csv | Format::Pdf => {
                    for posting in &entry.content.postings {
                        let (debit, credit) = sides(posting.amount)?;
                        let cells = if self.french {
                            self.fec_cells(entry, &posting.account, debit, credit)
                        } else {
                            self.plain_cells(entry, &posting.account, debit, credit)
                        };
                        out.push_str(&csv::row(&cells));
                    }
                }
            }
            self.entries += 1;
        }
        Ok(out)
    }

    pub fn footer(&self, seal: Seal, unsealed: i64) -> String {
        let (debit, credit) = (self.debit.to_decimal(), self.credit.to_decimal());
        match self.format {
            Format::Json => format!(
                "],\"totals\":{{\"entries\":{},\"debit\":\"{debit}\",\"credit\":\"{credit}\"}}}}\n",
                self.entries
            ),
            Format::Csv | Format::Pdf => {
                let columns = self.columns();
                let mut cells = csv::seal_cells(
                    columns.len(),
                    "#seal",
                    seal.sequence,
                    &seal.hash.to_hex(),
                    unsealed,
                );
                // The totals under their columns ("Debit" in the FEC, "debit" otherwise).
                for (cell, column) in cells.iter_mut().zip(columns) {
                    if column.eq_ignore_ascii_case("debit") {
                        *cell = self.amount(self.debit);
                    } else if column.eq_ignore_ascii_case("credit") {
                        *cell = self.amount(self.credit);
                    }
                }
                csv::row(&cells)
            }
        }
    }

    fn entry_json<'e>(&self, entry: &'e StoredEntry) -> Result<EntryJson<'e>, MoneyError> {
        let postings = entry
            .content
            .postings
            .iter()
            .map(|p| {
                let (debit, credit) = sides(p.amount)?;
                Ok(PostingJson {
                    account: &p.account,
                    debit: debit.to_decimal().to_string(),
                    credit: credit.to_decimal().to_string(),
                })
            })
            .collect::<Result<_, MoneyError>>()?;
        Ok(EntryJson {
            entry: entry.id.0,
            effective_at: entry
                .content
                .effective_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            recorded_at: entry
                .recorded_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            description: &entry.content.description,
            reference: entry.content.links.source.as_deref(),
            reverses: entry.content.reverses.map(|id| id.0),
            postings,
        })
    }

    fn fec_cells(
        &self,
        entry: &StoredEntry,
        account: &str,
        debit: Money,
        credit: Money,
    ) -> Vec<String> {
        let (number, label) = pcg_account(account);
        let (journal, journal_label) = if account_is_payout(entry) {
            ("BQ", "Banque")
        } else {
            ("DON", "Dons (Obole)")
        };
        let date = |at: DateTime<Utc>| {
            at.with_timezone(&self.campaign.timezone)
                .format("%Y%m%d")
                .to_string()
        };
        let entry_date = date(entry.content.effective_at);
        vec![
            journal.to_owned(),
            journal_label.to_owned(),
            entry.id.0.to_string(),
            entry_date.clone(),
            number.to_owned(),
            label.to_owned(),
            String::new(),
            String::new(),
            reference(entry),
            entry_date,
            csv::text(&entry.content.description).into_owned(),
            self.amount(debit),
            self.amount(credit),
            String::new(),
            String::new(),
            date(entry.recorded_at),
            String::new(),
            String::new(),
        ]
    }

    fn plain_cells(
        &self,
        entry: &StoredEntry,
        account: &str,
        debit: Money,
        credit: Money,
    ) -> Vec<String> {
        vec![
            entry.id.0.to_string(),
            entry
                .content
                .effective_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            entry.recorded_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            csv::text(&entry.content.description).into_owned(),
            reference(entry),
            account.to_owned(),
            self.amount(debit),
            self.amount(credit),
        ]
    }

    /// "1234,56" in the FEC, "1234.56" elsewhere.
    fn amount(&self, amount: Money) -> String {
        let text = amount.to_decimal().to_string();
        if self.french {
            text.replace('.', ",")
        } else {
            text
        }
    }
}

/// (debit, credit) of a posting: one of them zero.
fn sides(amount: Money) -> Result<(Money, Money), MoneyError> {
    let zero = Money::zero(amount.currency());
    Ok(if amount.is_positive() {
        (amount, zero)
    } else {
        (zero, amount.checked_neg()?)
    })
}

/// The piece an entry rests on: the money movement, else its idempotency key.
fn reference(entry: &StoredEntry) -> String {
    entry
        .content
        .links
        .source
        .clone()
        .unwrap_or_else(|| entry.content.idempotency_key.clone())
}

/// A payout moves money from Stripe to the bank: the bank journal's.
fn account_is_payout(entry: &StoredEntry) -> bool {
    entry
        .content
        .postings
        .iter()
        .any(|p| p.account == "assets:bank")
}

/// An indicative account of the French chart of accounts (plan comptable général) for each
/// ledger account.
fn pcg_account(account: &str) -> (&'static str, &'static str) {
    match account {
        "assets:bank" => ("512000", "Banque"),
        "assets:stripe" => ("511500", "Cartes bancaires à l'encaissement (Stripe)"),
        "assets:cheques" => ("511200", "Chèques à encaisser"),
        "assets:cash" => ("530000", "Caisse"),
        "income:donations" => ("754100", "Dons manuels"),
        "income:donations:refunds" => ("754180", "Dons remboursés"),
        "income:donations:chargebacks" => ("754190", "Dons contestés (rétrofacturations)"),
        "expenses:fees:stripe" => ("627000", "Services bancaires et assimilés"),
        "expenses:fees:disputes" => ("627100", "Frais de contestation"),
        "liabilities:refunds_due" => ("467100", "Dons à rembourser"),
        _ => ("471000", "Compte d'attente"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::fixtures::{french_campaign as campaign, seal};

    fn entry(id: i64, postings: &[(&str, i64)]) -> StoredEntry {
        crate::reports::fixtures::entry(id, "gift", postings)
    }

    #[test]
    fn the_fec_has_its_columns_dates_and_decimal_commas_and_balances() {
        let c = campaign();
        let seal = seal(2);
        let mut journal = Journal::new(
            &c,
            Format::Csv,
            "2027-04-01T00:00:00Z".parse().unwrap(),
            true,
        );
        let mut out = journal.header(seal, 0);
        out.push_str(
            &journal
                .page(&[
                    entry(
                        1,
                        &[
                            ("assets:stripe", 9_735),
                            ("expenses:fees:stripe", 265),
                            ("income:donations", -10_000),
                        ],
                    ),
                    entry(2, &[("assets:bank", 9_735), ("assets:stripe", -9_735)]),
                ])
                .unwrap(),
        );
        out.push_str(&journal.footer(seal, 0));
        let mut reader = ::csv::Reader::from_reader(out.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            FEC_COLUMNS
        );
        let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 6);
        assert_eq!(&rows[0][0], "DON");
        assert_eq!(&rows[0][3], "20270331", "23:30 in Paris is still 31 March");
        assert_eq!(&rows[0][4], "511500");
        assert_eq!(&rows[0][11], "97,35");
        assert_eq!(&rows[0][12], "0,00");
        assert_eq!(&rows[2][12], "100,00");
        assert_eq!(&rows[3][0], "BQ");
        assert_eq!(&rows[5][0], "#seal");
        assert_eq!((&rows[5][11], &rows[5][12]), ("197,35", "197,35"));
    }

    #[test]
    fn the_json_journal_lists_each_entry_with_its_postings() {
        let c = campaign();
        let seal = seal(0);
        let mut journal = Journal::new(
            &c,
            Format::Json,
            "2027-04-01T00:00:00Z".parse().unwrap(),
            false,
        );
        let mut out = journal.header(seal, 3);
        out.push_str(
            &journal
                .page(&[entry(
                    7,
                    &[("assets:cash", 500), ("income:donations", -500)],
                )])
                .unwrap(),
        );
        out.push_str(&journal.footer(seal, 3));
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["entries"][0]["entry"], 7);
        assert_eq!(json["entries"][0]["postings"][1]["credit"], "5.00");
        assert_eq!(json["totals"]["debit"], "5.00");
        assert_eq!(json["unsealed"], 3);
    }
}
