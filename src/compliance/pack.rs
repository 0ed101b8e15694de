//! Rule packs: campaign-finance law as data, one TOML file per regime in `compliance/`.
//!
//! Invariants of a loaded [`RulePack`]: its id is its file's name; its version is ≥ 1; rule
//! ids are unique within it; every amount is exact in the pack's currency and positive; every
//! rule names its legal source and its effective dates (`from` before `until`); at most one
//! cap per scope. A file that breaks any of these is refused with an error naming the file
//! and the rule, and the server does not start.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};

/// The packs shipped in the binary, so it runs from any directory.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "fr-candidate.toml",
        include_str!("../../compliance/fr-candidate.toml"),
    ),
    (
        "fr-party.toml",
        include_str!("../../compliance/fr-party.toml"),
    ),
    (
        "us-federal-candidate-2025-2026.toml",
        include_str!("../../compliance/us-federal-candidate-2025-2026.toml"),
    ),
];

/// A regime's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePack {
    pub id: String,
    pub version: u32,
    pub title: String,
    pub currency: Currency,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    /// The legal text the rule applies, as a citation a treasurer can look up.
    pub source: String,
    pub effective_from: NaiveDate,
    /// Exclusive; `None`: in force until a new pack replaces it.
    pub effective_until: Option<NaiveDate>,
    pub check: Check,
}

impl Rule {
    /// Whether the rule governs a gift made on `date`.
    pub fn in_force_on(&self, date: NaiveDate) -> bool {
        self.effective_from <= date && self.effective_until.is_none_or(|until| date < until)
    }
}

/// Over which gifts a cap or a threshold adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The same election (for US federal law: primary and general are separate elections).
    Election,
    /// The calendar year of the gift.
    CalendarYear,
    /// The election cycle: every election of the pack's period.
    Cycle,
}

/// Whose gifts a cap adds up: the recipient's alone, or every campaign of this deployment
/// that runs under the same pack (French law caps a person across all candidates of an
/// election, and across all parties in a year).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Across {
    /// Gifts to this campaign only.
    #[default]
    Campaign,
    /// Gifts to every campaign of the deployment under this pack.
    Deployment,
}

/// What a donor attests, by ticking a box at checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attestation {
    NaturalPerson,
    OwnFunds,
    CitizenOrPermanentResident,
    NotFederalContractor,
    OwnCard,
}

/// A donor detail a rule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DonorField {
    Name,
    Address,
    Employer,
    Occupation,
}

/// What a rule checks, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Only natural persons may give.
    NaturalPersonsOnly,
    /// Nationals of `country`, or residents of it.
    NationalityOrResidence { country: String },
    /// Citizens of `country`, or its lawfully admitted permanent residents.
    CitizenOrPermanentResident { country: String },
    /// The donor must attest each of these.
    Attestations { required: BTreeSet<Attestation> },
    /// A donor's gifts over `scope`, net of refunds and chargebacks, stay within `limit`.
    Cap {
        limit: Money,
        scope: Scope,
        across: Across,
    },
    /// A cash gift is at most `limit`; more must come by cheque, transfer, debit or card.
    CashPerGift { limit: Money },
    /// A donor's cash over `scope` stays within `limit`.
    CashAggregate { limit: Money, scope: Scope },
    /// An anonymous gift is at most `limit`.
    AnonymousPerGift { limit: Money },
    /// Gifts only inside the election's financing period.
    FinancingPeriod,
    /// Above `threshold` over `scope`, a donor is itemized, with `fields` sought.
    Itemization {
        threshold: Money,
        scope: Scope,
        fields: BTreeSet<DonorField>,
    },
    /// An excess must be remedied within this many days.
    ExcessRemedy { within_days: u32 },
}

/// A pack that cannot be used, with where the fault is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PackError {
    pub file: String,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "rule pack {}, rule {rule}: {}", self.file, self.message),
            None => write!(f, "rule pack {}: {}", self.file, self.message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPack {
    id: String,
    version: u32,
    title: String,
    currency: String,
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    check: String,
    source: String,
    effective_from: NaiveDate,
    effective_until: Option<NaiveDate>,
    limit: Option<String>,
    threshold: Option<String>,
    scope: Option<Scope>,
    across: Option<Across>,
    country: Option<String>,
    required: Option<BTreeSet<Attestation>>,
    fields: Option<BTreeSet<DonorField>>,
    within_days: Option<u32>,
}

impl RulePack {
    /// Reads and validates the pack in `text`, which came from file `file` (`<id>.toml`).
    pub fn parse(file: &str, text: &str) -> Result<RulePack, PackError> {
        let fault = |rule: Option<&str>, message: String| PackError {
            file: file.to_owned(),
            rule: rule.map(str::to_owned),
            message,
        };
        let raw: RawPack = toml::from_str(text).map_err(|e| fault(None, e.to_string()))?;
        let stem = file.strip_suffix(".toml").unwrap_or(file);
        let stem = stem.rsplit(['/', '\\']).next().unwrap_or(stem);
        if raw.id != stem {
            return Err(fault(
                None,
                format!("id {:?} must match the file name {stem:?}", raw.id),
            ));
        }
        if raw.version == 0 {
            return Err(fault(None, "version must be 1 or more".into()));
        }
        if raw.title.trim().is_empty() {
            return Err(fault(None, "title is empty".into()));
        }
        let currency = Currency::parse(&raw.currency).map_err(|e| fault(None, e.to_string()))?;
        if raw.rules.is_empty() {
            return Err(fault(None, "a pack needs at least one rule".into()));
        }
        let mut ids = BTreeSet::new();
        let mut capped = BTreeSet::new();
        let mut rules = Vec::with_capacity(raw.rules.len());
        for raw_rule in raw.rules {
            let id = raw_rule.id.clone();
            let rule = Rule::from_raw(raw_rule, currency).map_err(|m| fault(Some(&id), m))?;
            if !ids.insert(id.clone()) {
                return Err(fault(Some(&id), "a second rule with this id".into()));
            }
            if let Check::Cap { scope, .. } = rule.check {
                if !capped.insert(scope) {
                    return Err(fault(Some(&id), format!("a second cap over {scope:?}")));
                }
            }
            rules.push(rule);
        }
        Ok(RulePack {
            id: raw.id,
            version: raw.version,
            title: raw.title,
            currency,
            rules,
        })
    }

    /// The rules in force on `date`, in the pack's order.
    /// Whether a cap of this pack counts per election (so a campaign must name its election).
    pub fn caps_per_election(&self) -> bool {
        self.rules.iter().any(|r| {
            matches!(
                r.check,
                Check::Cap {
                    scope: Scope::Election,
                    ..
                }
            )
        })
    }

    pub fn rules_on(&self, date: NaiveDate) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.in_force_on(date))
    }
}

impl Rule {
    fn from_raw(raw: RawRule, currency: Currency) -> Result<Rule, String> {
        if raw.id.is_empty()
            || !raw
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err("a rule id is lowercase letters, digits and hyphens".into());
        }
        if raw.source.trim().is_empty() {
            return Err("every rule names its legal source".into());
        }
        if raw
            .effective_until
            .is_some_and(|until| until <= raw.effective_from)
        {
            return Err("effective_until must come after effective_from".into());
        }
        let mut used = vec!["id", "check", "source", "effective_from", "effective_until"];
        let amount = |name: &'static str, value: &Option<String>| -> Result<Money, String> {
            let text = value
                .as_deref()
                .ok_or_else(|| format!("check {:?} needs {name}", raw.check))?;
            let money = Money::parse(text, currency)
                .map_err(|e| format!("{name} {text:?} is not an amount in {currency}: {e}"))?;
            if money.minor() <= 0 {
                return Err(format!("{name} must be positive"));
            }
            Ok(money)
        };
        let needed = |name: &'static str| format!("check {:?} needs {name}", raw.check);
        let check = match raw.check.as_str() {
            "natural_persons_only" => Check::NaturalPersonsOnly,
            "nationality_or_residence" | "citizen_or_permanent_resident" => {
                used.push("country");
                let country = raw.country.clone().ok_or_else(|| needed("country"))?;
                if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(format!(
                        "country {country:?} is not an ISO 3166 code like FR"
                    ));
                }
                if raw.check == "nationality_or_residence" {
                    Check::NationalityOrResidence { country }
                } else {
                    Check::CitizenOrPermanentResident { country }
                }
            }
            "attestations" => {
                used.push("required");
                let required = raw.required.clone().ok_or_else(|| needed("required"))?;
                if required.is_empty() {
                    return Err("required lists at least one attestation".into());
                }
                Check::Attestations { required }
            }
            "cap" | "cash_aggregate" => {
                used.extend(["limit", "scope"]);
                let limit = amount("limit", &raw.limit)?;
                let scope = raw.scope.ok_or_else(|| needed("scope"))?;
                if raw.check == "cap" {
                    used.push("across");
                    Check::Cap {
                        limit,
                        scope,
                        across: raw.across.unwrap_or_default(),
                    }
                } else {
                    Check::CashAggregate { limit, scope }
                }
            }
            "cash_per_gift" | "anonymous_per_gift" => {
                used.push("limit");
                let limit = amount("limit", &raw.limit)?;
                if raw.check == "cash_per_gift" {
                    Check::CashPerGift { limit }
                } else {
                    Check::AnonymousPerGift { limit }
                }
            }
            "financing_period" => Check::FinancingPeriod,
            "itemization" => {
                used.extend(["threshold", "scope", "fields"]);
                Check::Itemization {
                    threshold: amount("threshold", &raw.threshold)?,
                    scope: raw.scope.ok_or_else(|| needed("scope"))?,
                    fields: raw.fields.clone().ok_or_else(|| needed("fields"))?,
                }
            }
            "excess_remedy" => {
                used.push("within_days");
                let within_days = raw.within_days.ok_or_else(|| needed("within_days"))?;
                if within_days == 0 {
                    return Err("within_days must be 1 or more".into());
                }
                Check::ExcessRemedy { within_days }
            }
            other => return Err(format!("unknown check {other:?}")),
        };
        let given = [
            ("limit", raw.limit.is_some()),
            ("threshold", raw.threshold.is_some()),
            ("scope", raw.scope.is_some()),
            ("across", raw.across.is_some()),
            ("country", raw.country.is_some()),
            ("required", raw.required.is_some()),
            ("fields", raw.fields.is_some()),
            ("within_days", raw.within_days.is_some()),
        ];
        if let Some((name, _)) = given.iter().find(|(n, set)| *set && !used.contains(n)) {
            return Err(format!("check {:?} takes no {name}", raw.check));
        }
        Ok(Rule {
            id: raw.id,
            source: raw.source,
            effective_from: raw.effective_from,
            effective_until: raw.effective_until,
            check,
        })
    }
}

/// Every pack a deployment knows, validated.
#[derive(Debug, Clone)]
pub struct Packs {
    packs: Vec<RulePack>,
}

impl Packs {
    /// The packs shipped in the binary (`compliance/*.toml` at build time).
    pub fn embedded() -> Result<Packs, PackError> {
        Packs::from_files(EMBEDDED.iter().map(|(f, t)| (f.to_string(), t.to_string())))
    }

    /// Every `*.toml` in `dir`: a deployment's own packs, replacing the embedded ones.
    pub fn load_dir(dir: &Path) -> Result<Packs, PackError> {
        let unreadable = |message: String| PackError {
            file: dir.display().to_string(),
            rule: None,
            message,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| unreadable(e.to_string()))? {
            let path = entry.map_err(|e| unreadable(e.to_string()))?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).map_err(|e| PackError {
                    file: path.display().to_string(),
                    rule: None,
                    message: e.to_string(),
                })?;
                files.push((path.display().to_string(), text));
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(unreadable("no *.toml rule pack in this directory".into()));
        }
        Packs::from_files(files)
    }

    fn from_files(files: impl IntoIterator<Item = (String, String)>) -> Result<Packs, PackError> {
        let mut packs: Vec<RulePack> = Vec::new();
        for (file, text) in files {
            let pack = RulePack::parse(&file, &text)?;
            if packs.iter().any(|p| p.id == pack.id) {
                return Err(PackError {
                    file,
                    rule: None,
                    message: format!("a second pack with id {:?}", pack.id),
                });
            }
            packs.push(pack);
        }
        Ok(Packs { packs })
    }

    pub fn get(&self, id: &str) -> Option<&RulePack> {
        self.packs.iter().find(|p| p.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.packs.iter().map(|p| p.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "test-pack"
version = 2
title = "A test regime"
currency = "EUR"

[[rules]]
id = "cap"
check = "cap"
limit = "100.00"
scope = "election"
source = "Test code, art. 1"
effective_from = "2020-01-01"
effective_until = "2030-01-01"
"#;

    fn parse(text: &str) -> Result<RulePack, PackError> {
        RulePack::parse("compliance/test-pack.toml", text)
    }

    /// The message of the error for `GOOD` with `from` replaced by `to`.
    fn fault(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from}");
        parse(&GOOD.replace(from, to)).unwrap_err().to_string()
    }

    #[test]
    fn the_shipped_packs_load_and_are_the_ones_campaigns_may_name() {
        let packs = Packs::embedded().unwrap();
        let ids: Vec<&str> = packs.ids().collect();
        assert_eq!(ids, crate::campaign::RULE_PACKS);
        for id in ids {
            let pack = packs.get(id).unwrap();
            assert!(pack.rules.iter().all(|r| !r.source.is_empty()), "{id}");
        }
    }

    #[test]
    fn a_good_pack_reads_into_typed_rules() {
        let pack = parse(GOOD).unwrap();
        assert_eq!((pack.id.as_str(), pack.version), ("test-pack", 2));
        let rule = &pack.rules[0];
        assert_eq!(
            rule.check,
            Check::Cap {
                limit: Money::from_minor(10_000, pack.currency),
                scope: Scope::Election,
                across: Across::Campaign,
            }
        );
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert!(!rule.in_force_on(day("2019-12-31")));
        assert!(rule.in_force_on(day("2020-01-01")));
        assert!(!rule.in_force_on(day("2030-01-01")));
    }

    #[test]
    fn every_fault_names_the_file_and_the_rule() {
        for (from, to, expected) in [
            (
                "\"100.00\"",
                "\"100.001\"",
                "rule cap: limit \"100.001\" is not an amount in EUR",
            ),
            ("\"100.00\"", "\"0\"", "rule cap: limit must be positive"),
            (
                "check = \"cap\"",
                "check = \"ceiling\"",
                "rule cap: unknown check \"ceiling\"",
            ),
            (
                "scope = \"election\"\n",
                "",
                "rule cap: check \"cap\" needs scope",
            ),
            (
                "source = \"Test code, art. 1\"",
                "source = \" \"",
                "rule cap: every rule names its legal source",
            ),
            (
                "effective_until = \"2030-01-01\"",
                "effective_until = \"2019-01-01\"",
                "rule cap: effective_until must come after",
            ),
            (
                "scope = \"election\"",
                "scope = \"election\"\nwithin_days = 3",
                "rule cap: check \"cap\" takes no within_days",
            ),
            (
                "id = \"cap\"",
                "id = \"Cap Rule\"",
                "lowercase letters, digits and hyphens",
            ),
            (
                "id = \"test-pack\"",
                "id = \"other\"",
                "must match the file name",
            ),
            ("version = 2", "version = 0", "version must be 1 or more"),
            (
                "currency = \"EUR\"",
                "currency = \"EURO\"",
                "rule pack compliance/test-pack.toml:",
            ),
            (
                "scope = \"election\"",
                "scope = \"decade\"",
                "unknown variant `decade`",
            ),
        ] {
            let message = fault(from, to);
            assert!(
                message.starts_with("rule pack compliance/test-pack.toml"),
                "{message}"
            );
            assert!(message.contains(expected), "{from} -> {to}: {message}");
        }
    }

    #[test]
    fn a_rule_id_or_a_cap_scope_may_appear_once() {
        let twice = format!("{GOOD}\n{}", &GOOD[GOOD.find("[[rules]]").unwrap()..]);
        assert!(parse(&twice)
            .unwrap_err()
            .to_string()
            .contains("rule cap: a second rule"));
        let second_cap = twice.replacen("id = \"cap\"", "id = \"cap-2\"", 1);
        assert!(parse(&second_cap)
            .unwrap_err()
            .to_string()
            .contains("a second cap over Election"));
    }

    #[test]
    fn a_directory_of_packs_loads_and_a_bad_one_stops_it() {
        let dir = std::env::temp_dir().join(format!("obole-packs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("test-pack.toml"), GOOD).unwrap();
        let packs = Packs::load_dir(&dir).unwrap();
        assert!(packs.get("test-pack").is_some());
        std::fs::write(dir.join("broken.toml"), "id = ").unwrap();
        let error = Packs::load_dir(&dir).unwrap_err();
        assert!(error.file.ends_with("broken.toml"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
