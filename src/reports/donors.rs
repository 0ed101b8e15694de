//! The `donors` report: the donor register, one block per person (a human being across the
//! cards, emails and spellings the identity engine linked), each gift of theirs, and the
//! aggregates the law counts — in the shape the campaign's regulator takes:
//!
//! - French campaigns and parties ([`Shape::Cnccfp`]): the list of donors the CNCCFP asks
//!   for, with the fiscal receipt register — one numbered receipt per gift kept, and the 66 %
//!   income-tax reduction it gives the donor (CGI art. 200).
//! - US federal committees ([`Shape::FecScheduleA`]): FEC Form 3 Schedule A line 11(a)(i)
//!   rows (`SA11AI`), each with the contributor's aggregate to date in the itemization scope
//!   (`contribution_aggregate`) and whether the contributor is itemized (aggregate over the
//!   pack's threshold, $200).
//! - Any other pack ([`Shape::Plain`]).
//!
//! Invariants: the register is written person by person from pages the store reads in
//! person order, so memory is bounded by one page whatever the register's size; every amount
//! is what the ledger held by the report's instant (a gift's `kept` is net of what was owed
//! back, refunded or charged back by then); a person's aggregates add their gifts in the
//! order paid; an auditor's view masks every detail that identifies a donor (the person is a
//! pseudonym, `P0000017`) and keeps the amounts, the dates and the countries. Text a donor
//! typed never starts a CSV cell with a formula character.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::Serialize;

use super::csv;
use super::summary::SealRef;
use crate::campaign::Campaign;
use crate::checkout::{receipt_number, FRENCH_TAX_REDUCTION};
use crate::compliance::pack::{Check, RulePack, Scope};
use crate::compliance::Declaration;
use crate::ledger::seal::Seal;
use crate::money::{Money, MoneyError};

/// Whose shape the register takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    Cnccfp,
    FecScheduleA,
    Plain,
}

impl Shape {
    /// French packs (nationality or residence in France) take the CNCCFP's list; packs with
    /// an itemization threshold take FEC Schedule A.
    pub fn of(pack: &RulePack) -> Shape {
        let checks = || pack.rules.iter().map(|r| &r.check);
        if checks()
            .any(|c| matches!(c, Check::NationalityOrResidence { country } if country == "FR"))
        {
            Shape::Cnccfp
        } else if checks().any(|c| matches!(c, Check::Itemization { .. })) {
            Shape::FecScheduleA
        } else {
            Shape::Plain
        }
    }
}

/// Who reads the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The treasurer: every detail.
    Full,
    /// An auditor: amounts, dates and countries, donors by pseudonym.
    Masked,
}

/// Who a gift's donor said they were (as the donor record holds it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DonorDetails {
    pub name: Option<String>,
    pub email: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
}

/// One gift as the store reads it for the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterGift {
    pub person_id: i64,
    pub contribution_id: i64,
    pub donor: DonorDetails,
    pub paid_at: DateTime<Utc>,
    /// `card`, `cheque`, `transfer`, `direct_debit` or `cash`.
    pub method: String,
    /// The election the gift counted for.
    pub election: Option<String>,
    /// The declaration, as stored (JSON).
    pub declared: Option<String>,
    pub amount: Money,
    /// What the books kept of it by the report's instant.
    pub kept: Money,
}

/// Totals of the whole register, written after the last person.
#[derive(Debug, Clone, Serialize)]
pub struct RegisterTotals {
    pub donors: u64,
    pub gifts: u64,
    pub received: String,
    pub kept: String,
    pub itemized_donors: u64,
    pub receipts: u64,
    pub tax_reductions: String,
}

#[derive(Serialize)]
struct PersonJson<'a> {
    person: String,
    name: &'a str,
    email: &'a str,
    address: [&'a str; 2],
    postal_code: &'a str,
    city: &'a str,
    state: &'a str,
    country: &'a str,
    nationality: &'a str,
    residence: &'a str,
    employer: &'a str,
    occupation: &'a str,
    /// Per cap scope (an election, a year, the cycle): what the person gave and the books kept.
    aggregates: BTreeMap<String, String>,
    itemized: bool,
    gifts: Vec<GiftJson>,
}

#[derive(Serialize)]
struct GiftJson {
    contribution: i64,
    paid_at: String,
    date: String,
    method: String,
    election: Option<String>,
    amount: String,
    kept: String,
    /// The person's aggregate in the gift's cap scope, this gift included.
    aggregate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tax_reduction: Option<String>,
}

/// One gift with what the register works out for it.
struct Line<'a> {
    gift: &'a RegisterGift,
    aggregate: Money,
    itemization_aggregate: Money,
    receipt: Option<String>,
    tax_reduction: Option<Money>,
}

/// Writes the register in pieces: [`Register::header`], then [`Register::page`] for each
/// page the store reads, then [`Register::footer`].
pub struct Register<'c> {
    campaign: &'c Campaign,
    shape: Shape,
    view: View,
    format: super::Format,
    as_of: DateTime<Utc>,
    cap_scope: Scope,
    itemization: Option<(Money, Scope)>,
    persons_written: u64,
    gifts: u64,
    received: Money,
    kept: Money,
    itemized: u64,
    receipts: u64,
    tax_reductions: Money,
}

impl<'c> Register<'c> {
    pub fn new(
        campaign: &'c Campaign,
        pack: &RulePack,
        view: View,
        format: super::Format,
        as_of: DateTime<Utc>,
    ) -> Register<'c> {
        let cap_scope = pack
            .rules
            .iter()
            .find_map(|r| match r.check {
                Check::Cap { scope, .. } => Some(scope),
                _ => None,
            })
            .unwrap_or(Scope::Cycle);
        let itemization = pack.rules.iter().find_map(|r| match r.check {
            Check::Itemization {
                threshold, scope, ..
            } => Some((threshold, scope)),
            _ => None,
        });
        let zero = Money::zero(campaign.currency);
        Register {
            campaign,
            shape: Shape::of(pack),
            view,
            format,
            as_of,
            cap_scope,
            itemization,
            persons_written: 0,
            gifts: 0,
            received: zero,
            kept: zero,
            itemized: 0,
            receipts: 0,
            tax_reductions: zero,
        }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The CSV columns of this register's shape.
    pub fn columns(&self) -> &'static [&'static str] {
        match self.shape {
            Shape::Cnccfp => CNCCFP_COLUMNS,
            Shape::FecScheduleA => FEC_COLUMNS,
            Shape::Plain => PLAIN_COLUMNS,
        }
    }

    /// What comes before the first person.
    pub fn header(&self, seal: Seal, unsealed: i64) -> String {
        match self.format {
            super::Format::Csv => csv::row(self.columns()),
            _ => super::open_object(
                serde_json::json!({
                    "campaign": self.campaign.slug.as_str(),
                    "currency": self.campaign.currency.to_string(),
                    "as_of": self.as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "shape": self.shape,
                    "masked": self.view == View::Masked,
                    "seal": SealRef::of(seal),
                    "unsealed": unsealed,
                }),
                "donors",
            ),
        }
    }

    /// The persons of one page (every gift of each, in the order paid).
    pub fn page(&mut self, gifts: &[RegisterGift]) -> Result<String, MoneyError> {
        let mut out = String::new();
        for person in gifts.chunk_by(|a, b| a.person_id == b.person_id) {
            self.person(person, &mut out)?;
        }
        Ok(out)
    }

    /// What comes after the last person: the totals (JSON), or the seal's row (CSV).
    pub fn footer(&self, seal: Seal, unsealed: i64) -> String {
        match self.format {
            super::Format::Csv => csv::row(&csv::seal_cells(
                self.columns().len(),
                "#seal",
                seal.sequence,
                &seal.hash.to_hex(),
                unsealed,
            )),
            _ => format!(
                "],\"totals\":{}}}\n",
                serde_json::to_string(&self.totals()).unwrap_or_default()
            ),
        }
    }

    pub fn totals(&self) -> RegisterTotals {
        RegisterTotals {
            donors: self.persons_written,
            gifts: self.gifts,
            received: self.received.to_decimal().to_string(),
            kept: self.kept.to_decimal().to_string(),
            itemized_donors: self.itemized,
            receipts: self.receipts,
            tax_reductions: self.tax_reductions.to_decimal().to_string(),
        }
    }

    fn person(&mut self, gifts: &[RegisterGift], out: &mut String) -> Result<(), MoneyError> {
        let Some(latest) = gifts.last() else {
            return Ok(());
        };
        let zero = Money::zero(self.campaign.currency);
        let mut aggregates: BTreeMap<String, Money> = BTreeMap::new();
        let mut itemization_aggregates: BTreeMap<String, Money> = BTreeMap::new();
        let mut lines = Vec::with_capacity(gifts.len());
        for gift in gifts {
            let aggregate = aggregates
                .entry(self.scope_key(self.cap_scope, gift))
                .or_insert(zero);
            *aggregate = aggregate.checked_add(gift.kept)?;
            let aggregate = *aggregate;
            let itemization_aggregate = match self.itemization {
                Some((_, scope)) => {
                    let total = itemization_aggregates
                        .entry(self.scope_key(scope, gift))
                        .or_insert(zero);
                    *total = total.checked_add(gift.kept)?;
                    *total
                }
                None => zero,
            };
            let (receipt, tax_reduction) = if self.shape == Shape::Cnccfp && gift.kept.is_positive()
            {
                (
                    Some(receipt_number(self.campaign, gift.contribution_id)),
                    Some(gift.kept.percentage(FRENCH_TAX_REDUCTION)?),
                )
            } else {
                (None, None)
            };
            self.gifts += 1;
            self.received = self.received.checked_add(gift.amount)?;
            self.kept = self.kept.checked_add(gift.kept)?;
            if let Some(reduction) = tax_reduction {
                self.receipts += 1;
                self.tax_reductions = self.tax_reductions.checked_add(reduction)?;
            }
            lines.push(Line {
                gift,
                aggregate,
                itemization_aggregate,
                receipt,
                tax_reduction,
            });
        }
        // Itemized: the person's aggregate passes the threshold in some scope, as of the report.
        let itemized = self.itemization.is_some_and(|(threshold, _)| {
            itemization_aggregates
                .values()
                .any(|total| total.minor() > threshold.minor())
        });
        if itemized {
            self.itemized += 1;
        }
        let identity = Identity::of(latest, self.view);
        match self.format {
            super::Format::Csv => {
                for line in &lines {
                    csv::push_row(out, &self.csv_cells(&identity, line, itemized));
                }
            }
            _ => {
                if self.persons_written > 0 {
                    out.push(',');
                }
                let person = PersonJson {
                    person: identity.person.clone(),
                    name: &identity.name,
                    email: &identity.email,
                    address: [&identity.line1, &identity.line2],
                    postal_code: &identity.postal_code,
                    city: &identity.city,
                    state: &identity.state,
                    country: &identity.country,
                    nationality: &identity.nationality,
                    residence: &identity.residence,
                    employer: &identity.employer,
                    occupation: &identity.occupation,
                    aggregates: aggregates
                        .iter()
                        .map(|(scope, total)| (scope.clone(), total.to_decimal().to_string()))
                        .collect(),
                    itemized,
                    gifts: lines.iter().map(|l| self.gift_json(l)).collect(),
                };
                out.push_str(&serde_json::to_string(&person).unwrap_or_default());
            }
        }
        self.persons_written += 1;
        Ok(())
    }

    /// Which cap (or itemization) period a gift adds up in: its election, its calendar year
    /// in the campaign's time zone, or the whole cycle.
    fn scope_key(&self, scope: Scope, gift: &RegisterGift) -> String {
        match scope {
            Scope::Election => gift
                .election
                .clone()
                .or_else(|| self.campaign.election.clone())
                .unwrap_or_else(|| "election".to_owned()),
            Scope::CalendarYear => gift
                .paid_at
                .with_timezone(&self.campaign.timezone)
                .year()
                .to_string(),
            Scope::Cycle => "cycle".to_owned(),
        }
    }

    fn local_date(&self, instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&self.campaign.timezone)
            .date_naive()
            .to_string()
    }

    fn gift_json(&self, line: &Line) -> GiftJson {
        let gift = line.gift;
        GiftJson {
            contribution: gift.contribution_id,
            paid_at: gift.paid_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            date: self.local_date(gift.paid_at),
            method: gift.method.clone(),
            election: gift.election.clone(),
            amount: gift.amount.to_decimal().to_string(),
            kept: gift.kept.to_decimal().to_string(),
            aggregate: line.aggregate.to_decimal().to_string(),
            receipt: line.receipt.clone(),
            tax_reduction: line.tax_reduction.map(|m| m.to_decimal().to_string()),
        }
    }

    fn csv_cells(&self, who: &Identity, line: &Line, itemized: bool) -> Vec<String> {
        let gift = line.gift;
        let money = |m: Money| m.to_decimal().to_string();
        let date = self.local_date(gift.paid_at);
        let (first, last) = split_name(&who.name);
        let text = |s: &str| csv::text(s).into_owned();
        match self.shape {
            Shape::Cnccfp => vec![
                line.receipt.clone().unwrap_or_default(),
                date,
                text(last),
                text(first),
                text(&who.line1),
                text(&who.line2),
                text(&who.postal_code),
                text(&who.city),
                text(&who.country),
                text(&who.nationality),
                text(&who.residence),
                french_method(&gift.method).to_owned(),
                money(gift.amount),
                money(gift.kept),
                money(line.aggregate),
                line.tax_reduction.map(money).unwrap_or_default(),
                who.person.clone(),
                gift.contribution_id.to_string(),
            ],
            Shape::FecScheduleA => vec![
                "SA11AI".to_owned(),
                format!("OBOLE-{}", gift.contribution_id),
                "IND".to_owned(),
                text(last),
                text(first),
                text(&who.line1),
                text(&who.line2),
                text(&who.city),
                text(&who.state),
                text(&who.postal_code),
                date,
                money(gift.kept),
                money(line.itemization_aggregate),
                text(&who.employer),
                text(&who.occupation),
                gift.election.clone().unwrap_or_default(),
                if itemized { "itemized" } else { "unitemized" }.to_owned(),
                money(gift.amount),
                who.person.clone(),
            ],
            Shape::Plain => vec![
                who.person.clone(),
                text(&who.name),
                text(&who.email),
                text(&who.line1),
                text(&who.postal_code),
                text(&who.city),
                text(&who.country),
                gift.contribution_id.to_string(),
                date,
                gift.method.clone(),
                money(gift.amount),
                money(gift.kept),
                money(line.aggregate),
            ],
        }
    }
}

/// The CNCCFP list of donors with the fiscal receipt register (French headings, as filed).
pub const CNCCFP_COLUMNS: &[&str] = &[
    "numero_recu",
    "date_don",
    "nom",
    "prenom",
    "adresse",
    "complement_adresse",
    "code_postal",
    "ville",
    "pays",
    "nationalite",
    "residence",
    "mode_de_paiement",
    "montant_verse",
    "montant_conserve",
    "cumul_election",
    "reduction_impot_66",
    "donateur",
    "contribution",
];

/// FEC Form 3 Schedule A, line 11(a)(i), with Obole's own columns after the FEC's.
pub const FEC_COLUMNS: &[&str] = &[
    "form_type",
    "transaction_id",
    "entity_type",
    "contributor_last_name",
    "contributor_first_name",
    "contributor_street_1",
    "contributor_street_2",
    "contributor_city",
    "contributor_state",
    "contributor_zip",
    "contribution_date",
    "contribution_amount",
    "contribution_aggregate",
    "contributor_employer",
    "contributor_occupation",
    "election_code",
    "itemization",
    "amount_received",
    "person",
];

/// The columns a printed register keeps (a page holds a dozen; the CSV and JSON hold all).
pub const PRINTED_COLUMNS: &[&str] = &[
    "numero_recu",
    "date_don",
    "nom",
    "prenom",
    "code_postal",
    "ville",
    "pays",
    "mode_de_paiement",
    "montant_verse",
    "montant_conserve",
    "cumul_election",
    "reduction_impot_66",
    "contributor_last_name",
    "contributor_first_name",
    "contributor_city",
    "contributor_state",
    "contributor_zip",
    "contribution_date",
    "contribution_amount",
    "contribution_aggregate",
    "contributor_employer",
    "contributor_occupation",
    "itemization",
    "person",
    "name",
    "country",
    "date",
    "method",
    "amount",
    "kept",
    "aggregate",
];

pub const PLAIN_COLUMNS: &[&str] = &[
    "person",
    "name",
    "email",
    "address",
    "postal_code",
    "city",
    "country",
    "contribution",
    "date",
    "method",
    "amount",
    "kept",
    "aggregate",
];

/// The person's details as the register shows them to its reader.
struct Identity {
    person: String,
    name: String,
    email: String,
    line1: String,
    line2: String,
    postal_code: String,
    city: String,
    state: String,
    country: String,
    nationality: String,
    residence: String,
    employer: String,
    occupation: String,
}

impl Identity {
    /// From the person's latest gift (their most recent name and address); masked for an
    /// auditor.
    fn of(latest: &RegisterGift, view: View) -> Identity {
        let declared = Declaration::from_json(latest.declared.as_deref());
        let donor = &latest.donor;
        let person = format!("P{:07}", latest.person_id);
        let show = |value: &Option<String>| value.clone().unwrap_or_default();
        let country = show(&donor.country);
        let nationality = show(&declared.nationality);
        let residence = show(&declared.residence);
        match view {
            View::Full => Identity {
                person,
                name: show(&donor.name),
                email: show(&donor.email),
                line1: show(&donor.line1),
                line2: show(&donor.line2),
                postal_code: show(&donor.postal_code),
                city: show(&donor.city),
                state: show(&donor.state),
                country,
                nationality,
                residence,
                employer: show(&declared.employer),
                occupation: show(&declared.occupation),
            },
            View::Masked => Identity {
                name: person.clone(),
                person,
                email: String::new(),
                line1: String::new(),
                line2: String::new(),
                postal_code: String::new(),
                city: String::new(),
                state: String::new(),
                country,
                nationality,
                residence,
                employer: String::new(),
                occupation: String::new(),
            },
        }
    }
}

/// (first names, family name): the family name is the last word. Forms that file names
/// split (FEC, CNCCFP) take it so; a compound family name ("de La Fontaine") is split at its
/// last word, and the full name stays in the JSON.
fn split_name(name: &str) -> (&str, &str) {
    let name = name.trim();
    match name.rsplit_once(' ') {
        Some((first, last)) => (first.trim(), last),
        None => ("", name),
    }
}

fn french_method(method: &str) -> &str {
    match method {
        "card" => "carte bancaire",
        "cheque" => "chèque",
        "transfer" => "virement",
        "direct_debit" => "prélèvement",
        "cash" => "espèces",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Packs;
    use crate::reports::fixtures::{campaign, seal};
    use crate::reports::Format;

    fn gift(person: i64, id: i64, at: &str, amount: i64, kept: i64, c: &Campaign) -> RegisterGift {
        RegisterGift {
            person_id: person,
            contribution_id: id,
            donor: DonorDetails {
                name: Some(format!("Jeanne Person{person}")),
                email: Some(format!("p{person}@example.fr")),
                line1: Some("1 rue de =cmd".into()),
                postal_code: Some("69003".into()),
                city: Some("Lyon".into()),
                country: Some("FR".into()),
                ..DonorDetails::default()
            },
            paid_at: at.parse().unwrap(),
            method: "card".into(),
            election: c.election.clone(),
            declared: Some(r#"{"nationality":"FR","employer":"ACME","occupation":"Nurse"}"#.into()),
            amount: Money::from_minor(amount, c.currency),
            kept: Money::from_minor(kept, c.currency),
        }
    }

    fn write(c: &Campaign, view: View, format: Format, gifts: &[RegisterGift]) -> String {
        let packs = Packs::embedded().unwrap();
        let pack = packs.get(&c.rule_pack).unwrap();
        let mut register = Register::new(
            c,
            pack,
            view,
            format,
            "2027-04-01T00:00:00Z".parse().unwrap(),
        );
        let seal = seal(0);
        let mut out = register.header(seal, 0);
        // Two pages, as the store would read them.
        let split = gifts.partition_point(|g| g.person_id < 2);
        out.push_str(&register.page(&gifts[..split]).unwrap());
        out.push_str(&register.page(&gifts[split..]).unwrap());
        out.push_str(&register.footer(seal, 0));
        out
    }

    #[test]
    fn a_french_register_numbers_receipts_and_adds_each_person_up() {
        let c = campaign("fr-candidate", "EUR", "Europe/Paris");
        let gifts = [
            gift(1, 10, "2027-03-01T10:00:00Z", 100_000, 100_000, &c),
            gift(1, 12, "2027-03-02T10:00:00Z", 50_000, 10_000, &c),
            gift(2, 11, "2027-03-01T23:30:00Z", 7_000, 0, &c),
        ];
        let json: serde_json::Value =
            serde_json::from_str(&write(&c, View::Full, Format::Json, &gifts)).unwrap();
        assert_eq!(json["shape"], "cnccfp");
        let donors = json["donors"].as_array().unwrap();
        assert_eq!(donors.len(), 2);
        assert_eq!(donors[0]["aggregates"]["2027-presidential"], "1100.00");
        let second = &donors[0]["gifts"][1];
        assert_eq!(second["aggregate"], "1100.00");
        assert_eq!(second["receipt"], "PRINTEMPS-2027-0000012");
        assert_eq!(second["tax_reduction"], "66.00");
        // Kept nothing (refused, refunded): no receipt. Paid 23:30 UTC is 1 March's next day in Paris.
        assert!(donors[1]["gifts"][0].get("receipt").is_none());
        assert_eq!(donors[1]["gifts"][0]["date"], "2027-03-02");
        assert_eq!(json["totals"]["donors"], 2);
        assert_eq!(json["totals"]["receipts"], 2);
        assert_eq!(json["totals"]["received"], "1570.00");
        assert_eq!(json["totals"]["kept"], "1100.00");
        assert_eq!(json["totals"]["tax_reductions"], "726.00");
    }

    #[test]
    fn csv_rows_have_the_shapes_columns_and_no_formula_cells() {
        let c = campaign("fr-candidate", "EUR", "Europe/Paris");
        let gifts = [gift(1, 10, "2027-03-01T10:00:00Z", 100_000, 100_000, &c)];
        let csv = write(&c, View::Full, Format::Csv, &gifts);
        let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(rows.len(), 3, "{csv}");
        assert!(rows[0].starts_with("numero_recu,date_don,nom,prenom"));
        assert!(rows[1].starts_with("PRINTEMPS-2027-0000010,2027-03-01,Person1,Jeanne,"));
        assert!(
            rows[1].contains(",1 rue de =cmd,"),
            "not at a cell's start: kept"
        );
        assert!(rows[2].starts_with("#seal,0,"));
        for row in &rows {
            assert_eq!(row.split(',').count(), CNCCFP_COLUMNS.len(), "{row}");
        }
        let mut hostile = gift(1, 10, "2027-03-01T10:00:00Z", 100, 100, &c);
        hostile.donor.name = Some("=HYPERLINK(\"x\") Evil".into());
        let csv = write(&c, View::Full, Format::Csv, &[hostile]);
        assert!(csv.contains(",\"'=HYPERLINK"), "{csv}");
    }

    #[test]
    fn fec_rows_carry_the_aggregate_and_itemize_over_200_dollars() {
        let c = campaign("us-federal-candidate-2025-2026", "USD", "America/New_York");
        let mut gifts = vec![
            gift(1, 1, "2026-03-01T15:00:00Z", 15_000, 15_000, &c),
            gift(1, 2, "2026-04-01T15:00:00Z", 10_000, 10_000, &c),
            gift(2, 3, "2026-04-01T15:00:00Z", 20_000, 20_000, &c),
        ];
        for g in &mut gifts {
            g.election = Some("2026-primary".into());
        }
        let csv = write(&c, View::Full, Format::Csv, &gifts);
        let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
        let at = |name: &str| FEC_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(rows[1][at("form_type")], "SA11AI");
        assert_eq!(rows[1][at("contributor_last_name")], "Person1");
        assert_eq!(rows[1][at("contributor_employer")], "ACME");
        assert_eq!(rows[2][at("contribution_aggregate")], "250.00");
        assert_eq!(rows[2][at("itemization")], "itemized");
        assert_eq!(
            rows[1][at("itemization")],
            "itemized",
            "every gift of an itemized donor"
        );
        assert_eq!(rows[3][at("contribution_aggregate")], "200.00");
        assert_eq!(
            rows[3][at("itemization")],
            "unitemized",
            "$200 is not over $200"
        );
    }

    #[test]
    fn an_auditor_sees_amounts_and_pseudonyms_not_donors() {
        let c = campaign("fr-candidate", "EUR", "Europe/Paris");
        let gifts = [gift(1, 10, "2027-03-01T10:00:00Z", 100_000, 100_000, &c)];
        for format in [Format::Json, Format::Csv] {
            let text = write(&c, View::Masked, format, &gifts);
            for secret in [
                "Jeanne",
                "Person1",
                "p1@example.fr",
                "rue de",
                "69003",
                "Lyon",
                "ACME",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(
                text.contains("P0000001") && text.contains("1000.00"),
                "{text}"
            );
        }
    }

    #[test]
    fn names_split_at_the_last_word() {
        assert_eq!(
            split_name("Jean de La Fontaine"),
            ("Jean de La", "Fontaine")
        );
        assert_eq!(split_name(" Cher "), ("", "Cher"));
    }
}
