//! The demo campaign `obole serve --demo` starts with, so a newcomer sees books with
//! something in them. Idempotent: restarting the demo writes nothing twice.

use chrono::Duration;

use crate::campaign::{Campaign, NewCampaign};
use crate::clock::Clock;
use crate::ids::{IdempotencyKey, Slug};
use crate::journal::{self, JournalError};
use crate::ledger::{EntryDraft, Links};
use crate::money::Money;
use crate::store::{Store, StoreError};

pub const SLUG: &str = "demo";

/// Gifts seeded into the demo: (minor units, Stripe fee in minor units).
const GIFTS: &[(i64, i64)] = &[
    (2_500, 63),
    (5_000, 100),
    (10_000, 175),
    (2_700, 66),
    (460_000, 6_925),
];

pub async fn seed(store: &Store, clock: &dyn Clock) -> Result<Campaign, JournalError> {
    let slug = Slug::parse(SLUG).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let campaign = match store.campaign(&slug).await? {
        Some(campaign) => campaign,
        None => {
            let new = NewCampaign::parse(
                SLUG,
                "Demo campaign",
                "fr-candidate",
                "EUR",
                "Europe/Paris",
                Some("demo-election"),
            )
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            // Open for gifts from well before today to a year ahead, so the checkout works.
            let today = clock.now().with_timezone(&new.timezone).date_naive();
            let new = NewCampaign {
                financing_period: Some((today - Duration::days(365), today + Duration::days(365))),
                ..new
            };
            store.create_campaign(&new, clock.now()).await?
        }
    };
    // Dated from the campaign's creation, not from now, so that a restart re-posts
    // identical entries (idempotent replays) rather than conflicting ones.
    let first_day = campaign.created_at - Duration::days(GIFTS.len() as i64);
    for (n, (gross, fee)) in GIFTS.iter().enumerate() {
        let key = IdempotencyKey::parse(format!("demo:gift:{n}"))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let money = |minor| Money::from_minor(minor, campaign.currency);
        let draft = EntryDraft::new(
            key,
            format!("demo gift #{}", n + 1),
            first_day + Duration::days(n as i64),
        )
        .post("assets:stripe", money(gross - fee))
        .post("expenses:fees:stripe", money(*fee))
        .post("income:donations", money(-gross))
        .links(Links {
            source: Some(format!("demo:txn_{n}")),
            ..Links::default()
        });
        journal::record(store, clock, &campaign, draft).await?;
    }
    Ok(campaign)
}
