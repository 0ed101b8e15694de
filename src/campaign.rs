//! Campaigns: who raises the money, in which currency, under which law, in which time zone.
//!
//! Invariants: a campaign's currency, time zone and rule pack are fixed when it is created
//! (its books and its cap history depend on them); each campaign gets the whole chart of
//! accounts at creation.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::ids::{CampaignId, IdError, Slug};
use crate::money::{Currency, MoneyError};

/// The rule packs a campaign may name: the packs built in from `compliance/` (a unit test
/// keeps the two lists equal). The server also refuses to start when a campaign's pack is
/// not loaded.
pub const RULE_PACKS: &[&str] = &["fr-candidate", "fr-party", "us-federal-candidate-2025-2026"];

pub const NAME_LEN_MAX: usize = 200;
pub const ELECTION_LEN_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    #[error(transparent)]
    Slug(#[from] IdError),
    #[error("the campaign name must be 1 to {NAME_LEN_MAX} characters")]
    Name,
    #[error("unknown rule pack {0:?}; known packs: {known}", known = RULE_PACKS.join(", "))]
    RulePack(String),
    #[error(transparent)]
    Currency(#[from] MoneyError),
    #[error("unknown time zone {0:?}; use an IANA name such as Europe/Paris or America/New_York")]
    TimeZone(String),
    #[error("the election name must be 1 to {ELECTION_LEN_MAX} characters")]
    Election,
    #[error("the financing period must end on or after it starts ({0} to {1})")]
    FinancingPeriod(NaiveDate, NaiveDate),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub slug: Slug,
    pub name: String,
    pub rule_pack: String,
    pub currency: Currency,
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: Tz,
    pub election: Option<String>,
    /// The days, both included, in which the law lets the campaign collect gifts (French
    /// candidates: the financing period before the election).
    pub financing_period: Option<(NaiveDate, NaiveDate)>,
    pub created_at: DateTime<Utc>,
}

fn serialize_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// A validated request to create a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCampaign {
    pub slug: Slug,
    pub name: String,
    pub rule_pack: String,
    pub currency: Currency,
    pub timezone: Tz,
    pub election: Option<String>,
    pub financing_period: Option<(NaiveDate, NaiveDate)>,
}

impl NewCampaign {
    pub fn parse(
        slug: &str,
        name: &str,
        rule_pack: &str,
        currency: &str,
        timezone: &str,
        election: Option<&str>,
    ) -> Result<NewCampaign, CampaignError> {
        let slug = Slug::parse(slug)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > NAME_LEN_MAX {
            return Err(CampaignError::Name);
        }
        if !RULE_PACKS.contains(&rule_pack) {
            return Err(CampaignError::RulePack(rule_pack.to_owned()));
        }
        let currency = Currency::parse(currency)?;
        let timezone = parse_timezone(timezone)?;
        let election = election.map(str::trim).map(str::to_owned);
        if election
            .as_ref()
            .is_some_and(|e| e.is_empty() || e.chars().count() > ELECTION_LEN_MAX)
        {
            return Err(CampaignError::Election);
        }
        Ok(NewCampaign {
            slug,
            name: name.to_owned(),
            rule_pack: rule_pack.to_owned(),
            currency,
            timezone,
            election,
            financing_period: None,
        })
    }

    /// Sets the financing period, both days included.
    pub fn financing(
        mut self,
        from: NaiveDate,
        until: NaiveDate,
    ) -> Result<NewCampaign, CampaignError> {
        if until < from {
            return Err(CampaignError::FinancingPeriod(from, until));
        }
        self.financing_period = Some((from, until));
        Ok(self)
    }
}

impl NewCampaign {
    /// The campaign this request became, once stored under `id`.
    pub fn created(&self, id: CampaignId, created_at: DateTime<Utc>) -> Campaign {
        Campaign {
            id,
            slug: self.slug.clone(),
            name: self.name.clone(),
            rule_pack: self.rule_pack.clone(),
            currency: self.currency,
            timezone: self.timezone,
            election: self.election.clone(),
            financing_period: self.financing_period,
            created_at,
        }
    }
}

pub fn parse_timezone(name: &str) -> Result<Tz, CampaignError> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| CampaignError::TimeZone(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_campaign_parses() {
        let c = NewCampaign::parse(
            "dupont-2027",
            "Dupont 2027",
            "fr-candidate",
            "eur",
            "Europe/Paris",
            Some("presidentielle-2027"),
        )
        .unwrap();
        assert_eq!(c.currency, Currency::EUR);
        assert_eq!(c.timezone, chrono_tz::Europe::Paris);
    }

    #[test]
    fn each_bad_field_is_named() {
        let parse = |slug, name, pack, cur, tz| NewCampaign::parse(slug, name, pack, cur, tz, None);
        assert!(matches!(
            parse("Bad Slug", "n", "fr-candidate", "EUR", "Europe/Paris"),
            Err(CampaignError::Slug(_))
        ));
        assert!(matches!(
            parse("ok", " ", "fr-candidate", "EUR", "Europe/Paris"),
            Err(CampaignError::Name)
        ));
        assert!(matches!(
            parse("ok", "n", "fr-nope", "EUR", "Europe/Paris"),
            Err(CampaignError::RulePack(_))
        ));
        assert!(matches!(
            parse("ok", "n", "fr-candidate", "EUE", "Europe/Paris"),
            Err(CampaignError::Currency(_))
        ));
        assert!(matches!(
            parse("ok", "n", "fr-candidate", "EUR", "Paris"),
            Err(CampaignError::TimeZone(_))
        ));
    }
}
