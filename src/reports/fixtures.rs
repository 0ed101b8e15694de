//! Campaigns and stored entries for the reports' unit tests.

use chrono::DateTime;

use crate::campaign::Campaign;
use crate::ids::{AccountId, CampaignId, EntryId, Slug};
use crate::ledger::entry::Posting;
use crate::ledger::entry::{EntryContent, Links, StoredEntry};
use crate::ledger::seal::{Hash32, Seal};
use crate::money::{Currency, Money};

/// Campaign 1, `printemps-2027`, of the 2027 presidential election.
pub fn campaign(pack: &str, currency: &str, zone: &str) -> Campaign {
    Campaign {
        id: CampaignId(1),
        slug: Slug::parse("printemps-2027").unwrap(),
        name: "Printemps".into(),
        rule_pack: pack.into(),
        currency: Currency::parse(currency).unwrap(),
        timezone: zone.parse().unwrap(),
        election: Some("2027-presidential".into()),
        financing_period: None,
        created_at: DateTime::UNIX_EPOCH,
    }
}

/// A French campaign in euros, in Paris.
pub fn french_campaign() -> Campaign {
    campaign("fr-candidate", "EUR", "Europe/Paris")
}

/// Entry `id` of campaign 1 in euros, effective at 23:30 on 31 March 2027 in Paris, resting
/// on `stripe:txn_{id}`.
pub fn entry(id: i64, description: &str, postings: &[(&str, i64)]) -> StoredEntry {
    StoredEntry {
        id: EntryId(id),
        content: EntryContent {
            campaign_id: CampaignId(1),
            idempotency_key: format!("key-{id}"),
            description: description.into(),
            effective_at: "2027-03-31T21:30:00Z".parse().unwrap(),
            postings: postings
                .iter()
                .map(|(account, minor)| Posting {
                    account: (*account).into(),
                    amount: Money::from_minor(*minor, Currency::EUR),
                })
                .collect(),
            links: Links {
                source: Some(format!("stripe:txn_{id}")),
                ..Links::default()
            },
            reverses: None,
        },
        content_hash: Hash32::GENESIS,
        recorded_at: "2027-03-31T21:30:01Z".parse().unwrap(),
        account_ids: postings.iter().map(|_| AccountId(1)).collect(),
    }
}

/// A seal at `sequence` (the hash does not matter to a report's layout).
pub fn seal(sequence: i64) -> Seal {
    Seal {
        sequence,
        hash: Hash32::GENESIS,
    }
}
