//! The donation form: which fields and attestations a campaign's rule pack asks for
//! ([`FormSpec`]), and the validation of what the donor sent ([`validate`]). Pure: no I/O.
//!
//! Invariants:
//! - The form asks for what the pack's rules in force need, and nothing the law does not:
//!   nationality and residence where a rule restricts them, employer and occupation where
//!   a rule itemizes them, and every attestation a rule requires, unticked.
//! - [`validate`] is total: any sequence of form pairs (repeated, missing, oversized, hostile)
//!   gives either a [`ValidGift`] or a problem per field, never a panic; it keeps what the
//!   donor typed so the form can be shown again.
//! - An amount is exact: "25", "25.5", "25,50" are accepted; a third decimal, a sign, an
//!   exponent or a thousands separator is refused, never rounded.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use crate::compliance::pack::{Attestation, Check, DonorField, Scope};
use crate::compliance::{Declaration, RulePack};
use crate::money::{Currency, Money};
use crate::provider::stripe::objects::{Address, Payer};

/// Longest text accepted in any field (a name, a street, an employer).
pub const TEXT_MAX: usize = 200;
/// Longest email address (RFC 5321's path limit).
pub const EMAIL_MAX: usize = 254;

/// What the form asks, decided from the campaign's pack on a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormSpec {
    pub currency: Currency,
    /// The buttons.
    pub suggested: Vec<Money>,
    pub minimum: Money,
    pub maximum: Money,
    /// The country whose nationals or residents may give (France), if a rule says so.
    pub nationality_or_residence: Option<String>,
    /// The country whose citizens or permanent residents may give (US federal), if any.
    pub citizens_of: Option<String>,
    pub employer_and_occupation: bool,
    pub attestations: Vec<Attestation>,
    /// The tightest per-person cap and what it adds up over, for the notice.
    pub cap: Option<(Money, Scope)>,
}

/// The countries offered in the lists, ISO 3166-1 alpha-2 with their names (French,
/// English). Any other valid code is accepted when typed by a client without the list.
pub const COUNTRIES: &[(&str, &str, &str)] = &[
    ("FR", "France", "France"),
    ("US", "États-Unis", "United States"),
    ("BE", "Belgique", "Belgium"),
    ("CH", "Suisse", "Switzerland"),
    ("LU", "Luxembourg", "Luxembourg"),
    ("MC", "Monaco", "Monaco"),
    ("DE", "Allemagne", "Germany"),
    ("ES", "Espagne", "Spain"),
    ("IT", "Italie", "Italy"),
    ("PT", "Portugal", "Portugal"),
    ("NL", "Pays-Bas", "Netherlands"),
    ("IE", "Irlande", "Ireland"),
    ("GB", "Royaume-Uni", "United Kingdom"),
    ("CA", "Canada", "Canada"),
    ("MA", "Maroc", "Morocco"),
    ("DZ", "Algérie", "Algeria"),
    ("TN", "Tunisie", "Tunisia"),
    ("SN", "Sénégal", "Senegal"),
    ("MX", "Mexique", "Mexico"),
    ("BR", "Brésil", "Brazil"),
    ("CN", "Chine", "China"),
    ("IN", "Inde", "India"),
    ("JP", "Japon", "Japan"),
    ("AU", "Australie", "Australia"),
];

impl FormSpec {
    /// The form for `pack`'s rules in force on `date`.
    pub fn for_pack(pack: &RulePack, date: NaiveDate) -> FormSpec {
        let currency = pack.currency;
        let money = |minor| Money::from_minor(minor, currency);
        let mut spec = FormSpec {
            currency,
            suggested: [1_000, 2_700, 5_000, 10_000, 25_000]
                .into_iter()
                .map(money)
                .collect(),
            // A floor against card testing and fees that would eat the gift (stripe.md §6.3).
            minimum: money(200),
            maximum: money(1_000_000),
            nationality_or_residence: None,
            citizens_of: None,
            employer_and_occupation: false,
            attestations: Vec::new(),
            cap: None,
        };
        let mut attestations = BTreeSet::new();
        for rule in pack.rules_on(date) {
            match &rule.check {
                Check::NaturalPersonsOnly => {
                    attestations.insert(Attestation::NaturalPerson);
                }
                Check::NationalityOrResidence { country } => {
                    spec.nationality_or_residence = Some(country.clone());
                }
                Check::CitizenOrPermanentResident { country } => {
                    spec.citizens_of = Some(country.clone());
                    attestations.insert(Attestation::CitizenOrPermanentResident);
                }
                Check::Attestations { required } => attestations.extend(required),
                Check::Cap { limit, scope, .. } if spec.cap.is_none_or(|(cap, _)| *limit < cap) => {
                    spec.cap = Some((*limit, *scope));
                }
                Check::Itemization { fields, .. } => {
                    spec.employer_and_occupation |= fields.contains(&DonorField::Employer)
                        || fields.contains(&DonorField::Occupation);
                }
                _ => {}
            }
        }
        spec.attestations = attestations.into_iter().collect();
        // No one gift can pass the cap: the form says so before the donor pays.
        if let Some((cap, _)) = spec.cap {
            spec.maximum = spec.maximum.min(cap);
        }
        spec.suggested
            .retain(|s| *s >= spec.minimum && *s <= spec.maximum);
        spec
    }
}

/// A form field, as named in the HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Amount,
    Name,
    Email,
    AddressLine1,
    PostalCode,
    City,
    Country,
    Nationality,
    Residence,
    Employer,
    Occupation,
    Attestation(Attestation),
}

impl Field {
    /// The HTML `id` of the field's input (and of its error, with `-error`).
    pub fn id(self) -> String {
        match self {
            Field::Amount => "amount".into(),
            Field::Name => "name".into(),
            Field::Email => "email".into(),
            Field::AddressLine1 => "address_line1".into(),
            Field::PostalCode => "postal_code".into(),
            Field::City => "city".into(),
            Field::Country => "country".into(),
            Field::Nationality => "nationality".into(),
            Field::Residence => "residence".into(),
            Field::Employer => "employer".into(),
            Field::Occupation => "occupation".into(),
            Field::Attestation(a) => format!("attest-{}", attestation_key(a)),
        }
    }
}

/// An attestation's form value (`natural_person`).
pub fn attestation_key(attestation: Attestation) -> &'static str {
    match attestation {
        Attestation::NaturalPerson => "natural_person",
        Attestation::OwnFunds => "own_funds",
        Attestation::CitizenOrPermanentResident => "citizen_or_permanent_resident",
        Attestation::NotFederalContractor => "not_federal_contractor",
        Attestation::OwnCard => "own_card",
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing,
    BadAmount,
    BelowMinimum(Money),
    AboveMaximum(Money),
    BadEmail,
    BadCountry,
    TooLong,
    Unticked,
}

/// What the donor sent, as text, kept to show the form again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submitted {
    /// A suggested amount's button (minor units as text), or `other`.
    pub amount_choice: String,
    pub amount_other: String,
    pub name: String,
    pub email: String,
    pub address_line1: String,
    pub postal_code: String,
    pub city: String,
    pub country: String,
    pub nationality: String,
    pub residence: String,
    pub employer: String,
    pub occupation: String,
    pub attested: BTreeSet<String>,
    /// The anti-forgery token.
    pub form_token: String,
    pub lang: String,
}

impl Submitted {
    /// Reads URL-encoded pairs; unknown names are ignored, a repeated name keeps its last
    /// value (attestations accumulate), and every value is cut to a bounded length.
    pub fn from_pairs(pairs: &[(String, String)]) -> Submitted {
        let mut form = Submitted::default();
        for (name, value) in pairs {
            // Bounded before anything else looks at it: a hostile megabyte is not kept.
            let value: String = value.chars().take(EMAIL_MAX + 1).collect();
            let slot = match name.as_str() {
                "amount" => &mut form.amount_choice,
                "amount_other" => &mut form.amount_other,
                "name" => &mut form.name,
                "email" => &mut form.email,
                "address_line1" => &mut form.address_line1,
                "postal_code" => &mut form.postal_code,
                "city" => &mut form.city,
                "country" => &mut form.country,
                "nationality" => &mut form.nationality,
                "residence" => &mut form.residence,
                "employer" => &mut form.employer,
                "occupation" => &mut form.occupation,
                "form_token" => &mut form.form_token,
                "lang" => &mut form.lang,
                "attest" => {
                    if form.attested.len() < 16 {
                        form.attested.insert(value);
                    }
                    continue;
                }
                _ => continue,
            };
            *slot = value;
        }
        form
    }
}

/// A form that passed: the gift and the donor as the checkout takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidGift {
    pub amount: Money,
    pub payer: Payer,
    pub declaration: Declaration,
}

/// Checks every field; all problems at once, so the donor fixes them in one go.
pub fn validate(spec: &FormSpec, form: &Submitted) -> Result<ValidGift, BTreeMap<Field, Problem>> {
    let mut problems = BTreeMap::new();
    let amount = match amount(spec, form) {
        Ok(amount) => Some(amount),
        Err(problem) => {
            problems.insert(Field::Amount, problem);
            None
        }
    };
    let mut text = |field: Field, value: &str, required: bool| -> Option<String> {
        let value = clean(value);
        if value.is_empty() {
            if required {
                problems.insert(field, Problem::Missing);
            }
            return None;
        }
        if value.chars().count() > TEXT_MAX {
            problems.insert(field, Problem::TooLong);
            return None;
        }
        Some(value)
    };
    let name = text(Field::Name, &form.name, true);
    let line1 = text(Field::AddressLine1, &form.address_line1, true);
    let postal_code = text(Field::PostalCode, &form.postal_code, true);
    let city = text(Field::City, &form.city, true);
    let asks_work = spec.employer_and_occupation;
    let employer = text(Field::Employer, &form.employer, asks_work);
    let occupation = text(Field::Occupation, &form.occupation, asks_work);
    let email = clean(&form.email);
    if email.is_empty() {
        problems.insert(Field::Email, Problem::Missing);
    } else if !is_email(&email) {
        problems.insert(Field::Email, Problem::BadEmail);
    }
    let mut country = |field: Field, value: &str, required: bool| -> Option<String> {
        let code = value.trim().to_ascii_uppercase();
        if code.is_empty() {
            if required {
                problems.insert(field, Problem::Missing);
            }
            None
        } else if code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase()) {
            Some(code)
        } else {
            problems.insert(field, Problem::BadCountry);
            None
        }
    };
    let address_country = country(Field::Country, &form.country, true);
    let asks_nationality = spec.nationality_or_residence.is_some();
    let nationality = country(Field::Nationality, &form.nationality, asks_nationality);
    let mut attestations = BTreeSet::new();
    for &attestation in &spec.attestations {
        if form.attested.contains(attestation_key(attestation)) {
            attestations.insert(attestation);
        } else {
            problems.insert(Field::Attestation(attestation), Problem::Unticked);
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let amount = amount.ok_or_else(|| BTreeMap::from([(Field::Amount, Problem::BadAmount)]))?;
    Ok(ValidGift {
        amount,
        payer: Payer {
            name,
            email: Some(email),
            address: Address {
                line1,
                line2: None,
                city,
                postal_code,
                state: None,
                country: address_country.clone(),
            },
            ..Payer::default()
        },
        declaration: Declaration {
            nationality,
            // Where the donor lives is where their address is.
            residence: address_country,
            attestations,
            employer,
            occupation,
            ..Declaration::default()
        },
    })
}

fn amount(spec: &FormSpec, form: &Submitted) -> Result<Money, Problem> {
    let typed = match form.amount_choice.trim() {
        "" | "other" => form.amount_other.trim().replace(',', "."),
        // A suggested button carries minor units.
        choice => {
            let minor = choice.parse::<i64>().map_err(|_| Problem::BadAmount)?;
            return within(spec, Money::from_minor(minor, spec.currency));
        }
    };
    if typed.is_empty() {
        return Err(Problem::Missing);
    }
    if typed.starts_with(['-', '+']) {
        return Err(Problem::BadAmount);
    }
    let money = Money::parse(&typed, spec.currency).map_err(|_| Problem::BadAmount)?;
    within(spec, money)
}

fn within(spec: &FormSpec, money: Money) -> Result<Money, Problem> {
    if money < spec.minimum {
        Err(Problem::BelowMinimum(spec.minimum))
    } else if money > spec.maximum {
        Err(Problem::AboveMaximum(spec.maximum))
    } else {
        Ok(money)
    }
}

/// Trimmed, with control characters (including line breaks) removed.
fn clean(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A practical check: one `@`, a local part, a dotted domain, no spaces.
fn is_email(email: &str) -> bool {
    if email.len() > EMAIL_MAX || email.chars().any(char::is_whitespace) {
        return false;
    }
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Packs;

    fn spec(pack: &str) -> FormSpec {
        let packs = Packs::embedded().unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        FormSpec::for_pack(packs.get(pack).unwrap(), date)
    }

    fn filled() -> Submitted {
        Submitted {
            amount_choice: "other".into(),
            amount_other: "25,50".into(),
            name: "  Jeanne Martin ".into(),
            email: "jeanne@example.fr".into(),
            address_line1: "3 rue des Lilas".into(),
            postal_code: "69002".into(),
            city: "Lyon".into(),
            country: "fr".into(),
            nationality: "FR".into(),
            attested: ["natural_person".into(), "own_funds".into()].into(),
            ..Submitted::default()
        }
    }

    #[test]
    fn the_french_form_asks_nationality_and_the_sworn_statement() {
        let spec = spec("fr-candidate");
        assert_eq!(spec.nationality_or_residence.as_deref(), Some("FR"));
        assert!(!spec.employer_and_occupation);
        assert_eq!(
            spec.attestations,
            vec![Attestation::NaturalPerson, Attestation::OwnFunds]
        );
        assert_eq!(spec.maximum.minor(), 460_000);
    }

    #[test]
    fn the_us_federal_form_asks_employer_occupation_and_four_attestations() {
        let spec = spec("us-federal-candidate-2025-2026");
        assert!(spec.employer_and_occupation);
        assert_eq!(spec.citizens_of.as_deref(), Some("US"));
        assert!(spec
            .attestations
            .contains(&Attestation::NotFederalContractor));
        assert!(spec.attestations.contains(&Attestation::OwnCard));
        assert_eq!(spec.maximum.minor(), 350_000);
    }

    #[test]
    fn a_complete_form_is_a_gift_with_its_declaration() {
        let gift = validate(&spec("fr-candidate"), &filled()).unwrap();
        assert_eq!(gift.amount.minor(), 2_550);
        assert_eq!(gift.payer.name.as_deref(), Some("Jeanne Martin"));
        assert_eq!(gift.payer.address.country.as_deref(), Some("FR"));
        assert_eq!(gift.declaration.nationality.as_deref(), Some("FR"));
        assert_eq!(gift.declaration.attestations.len(), 2);
    }

    #[test]
    fn every_problem_is_named_on_its_field() {
        let spec = spec("fr-candidate");
        let form = Submitted {
            amount_other: "12.345".into(),
            email: "jeanne@".into(),
            country: "France".into(),
            attested: ["own_funds".into()].into(),
            ..filled()
        };
        let problems = validate(&spec, &form).unwrap_err();
        assert_eq!(problems[&Field::Amount], Problem::BadAmount);
        assert_eq!(problems[&Field::Email], Problem::BadEmail);
        assert_eq!(problems[&Field::Country], Problem::BadCountry);
        assert_eq!(
            problems[&Field::Attestation(Attestation::NaturalPerson)],
            Problem::Unticked
        );
        assert_eq!(problems.len(), 4);
    }

    #[test]
    fn amounts_are_exact_and_bounded() {
        let spec = spec("fr-candidate");
        let with = |other: &str| {
            validate(
                &spec,
                &Submitted {
                    amount_other: other.into(),
                    ..filled()
                },
            )
            .map(|g| g.amount.minor())
            .map_err(|p| p.get(&Field::Amount).cloned())
        };
        assert_eq!(with("25"), Ok(2_500));
        assert_eq!(with("4600"), Ok(460_000));
        assert_eq!(with("-25"), Err(Some(Problem::BadAmount)));
        assert_eq!(with("1e3"), Err(Some(Problem::BadAmount)));
        assert_eq!(with("1 000"), Err(Some(Problem::BadAmount)));
        assert_eq!(
            with("99999999999999999999999"),
            Err(Some(Problem::BadAmount))
        );
        assert_eq!(with(""), Err(Some(Problem::Missing)));
        assert!(matches!(with("1.99"), Err(Some(Problem::BelowMinimum(_)))));
        assert!(matches!(
            with("4600.01"),
            Err(Some(Problem::AboveMaximum(_)))
        ));
    }

    #[test]
    fn hostile_pairs_are_bounded_and_never_panic() {
        let long = "x".repeat(1_000_000);
        let pairs = vec![
            ("name".to_owned(), long.clone()),
            ("attest".to_owned(), long),
            ("amount".to_owned(), "９".to_owned()),
            ("\u{0}".to_owned(), "\u{0}".to_owned()),
        ];
        let form = Submitted::from_pairs(&pairs);
        assert!(form.name.chars().count() <= EMAIL_MAX + 1);
        let problems = validate(&spec("fr-candidate"), &form).unwrap_err();
        assert_eq!(problems[&Field::Name], Problem::TooLong);
        assert_eq!(problems[&Field::Amount], Problem::BadAmount);
    }
}
