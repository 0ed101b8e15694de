//! What a donor declares about themselves (at Obole's checkout, or to the treasurer for a
//! cheque), and how it becomes the [`Donor`] that `screen` judges.
//!
//! Invariants: nothing is inferred that the donor did not say or the payment did not show: a
//! card's issuing country is not a nationality, and an unknown stays unknown (a hold, never a
//! silent pass). Country codes are kept upper-case ISO 3166 alpha-2.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::pack::{Attestation, DonorField};
use super::screen::{Donor, DonorKind};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    #[serde(default)]
    pub kind: Option<DonorKind>,
    #[serde(default)]
    pub nationality: Option<String>,
    #[serde(default)]
    pub residence: Option<String>,
    #[serde(default)]
    pub attestations: BTreeSet<Attestation>,
    #[serde(default)]
    pub employer: Option<String>,
    #[serde(default)]
    pub occupation: Option<String>,
    /// The election the donor designates the gift for ("2026-general"); else the campaign's.
    #[serde(default)]
    pub election: Option<String>,
}

impl Declaration {
    /// Reads a stored declaration; `None` or unreadable text is an empty one (nothing known).
    pub fn from_json(text: Option<&str>) -> Declaration {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The donor as `screen` sees them: what was declared, plus which details the campaign
    /// holds (`name`, and a postal `address`).
    pub fn donor(&self, name: Option<&str>, has_address: bool) -> Donor {
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let mut known = BTreeSet::new();
        if name.is_some_and(|n| !n.trim().is_empty()) {
            known.insert(DonorField::Name);
        }
        if has_address {
            known.insert(DonorField::Address);
        }
        if present(&self.employer) {
            known.insert(DonorField::Employer);
        }
        if present(&self.occupation) {
            known.insert(DonorField::Occupation);
        }
        let country = |v: &Option<String>| {
            v.as_deref()
                .map(|c| c.trim().to_ascii_uppercase())
                .filter(|c| c.len() == 2)
        };
        // Ticking "I am a natural person" is how a card donor establishes it.
        let kind = self.kind.or(self
            .attestations
            .contains(&Attestation::NaturalPerson)
            .then_some(DonorKind::NaturalPerson));
        Donor {
            kind,
            nationality: country(&self.nationality),
            residence: country(&self.residence),
            attestations: self.attestations.clone(),
            known,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_declaration_establishes_nothing() {
        let donor = Declaration::from_json(None).donor(None, false);
        assert_eq!(donor, Donor::default());
        assert!(donor.is_anonymous());
    }

    #[test]
    fn a_declaration_round_trips_and_folds_country_codes() {
        let declared = Declaration {
            nationality: Some("fr".into()),
            attestations: [Attestation::NaturalPerson, Attestation::OwnFunds].into(),
            occupation: Some("Teacher".into()),
            ..Declaration::default()
        };
        let read = Declaration::from_json(Some(&declared.to_json()));
        assert_eq!(read, declared);
        let donor = read.donor(Some("Jeanne Martin"), true);
        assert_eq!(donor.nationality.as_deref(), Some("FR"));
        assert_eq!(donor.kind, Some(DonorKind::NaturalPerson));
        assert!(donor.known.contains(&DonorField::Occupation));
        assert!(!donor.known.contains(&DonorField::Employer));
    }
}
