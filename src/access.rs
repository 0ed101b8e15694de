//! Access to a campaign's API: bearer tokens, each for one campaign and one role.
//!
//! Invariants: a token is shown once, when created, and only its SHA-256 is stored, so a
//! copy of the database does not let anyone in; tokens are 256 random bits from the operating
//! system; a token opens only its own campaign, and only what its role allows.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything of the campaign, donor identities included; records offline gifts.
    Treasurer,
    /// Totals, the journal and seals; donor data masked; writes nothing.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Treasurer => "treasurer",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Treasurer, Role::Auditor]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// What a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub token_id: i64,
    pub campaign_id: crate::ids::CampaignId,
    pub role: Role,
}

/// A report served, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportAccess {
    pub campaign_id: crate::ids::CampaignId,
    /// `None`: served to the command line (an operator on the machine).
    pub token_id: Option<i64>,
    /// `treasurer`, `auditor`, or `operator` for the command line.
    pub role: &'static str,
    pub kind: &'static str,
    pub as_of: chrono::DateTime<chrono::Utc>,
    pub format: &'static str,
}

/// Tokens start with this, so a leaked one is easy to recognise (and to scan for).
const PREFIX: &str = "obole_";

/// A new token: the text to hand over once, and the hash to store.
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret)?;
    let token = format!("{PREFIX}{}", hex::encode(secret));
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_stored_only_as_hashes() {
        let (a, hash_a) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("obole_") && a.len() == 6 + 64);
        assert_eq!(hash_a, token_hash(&a));
        assert!(!hash_a.contains(&a[6..]));
    }
}
