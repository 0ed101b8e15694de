//! The reports' derived data against the ledger read entry by entry, on both stores: after
//! every step of a seeded history — gifts by cheque (some over the cap, some refused),
//! sealing, persons linked by name and address, merged and split by the treasurer — the
//! summary's counts by kept amount and distinct donors (tallies), and the donor register's
//! kept amounts (gift movements), as of many instants (day and month boundaries in Paris and
//! UTC, mid-day, far ahead), equal the reference. A failure names its seed and step.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{DateTime, Utc};
use common::rng::Rng;
use common::{stderr, TestDb};
use obole::campaign::Campaign;
use obole::reports::tally::GiftCounts;

const NAMES: &[&str] = &[
    "Paul Girard",
    "Inès Faure",
    "Léa Martin",
    "Hugo Blanc",
    "Emma Roux",
];
const AMOUNTS: &[&str] = &["20.00", "50.00", "100.00", "250.00", "1000.00", "3000.00"];
const DAYS: &[&str] = &[
    "2027-03-29",
    "2027-03-30",
    "2027-03-31",
    "2027-04-01",
    "2027-04-02",
];

/// The instants every step is checked at.
fn instants() -> Vec<DateTime<Utc>> {
    [
        "2027-03-28T12:00:00Z",
        "2027-03-29T21:59:59Z",
        "2027-03-30T00:00:00Z",
        "2027-03-30T11:00:00Z",
        "2027-03-30T23:59:59Z",
        "2027-03-31T21:59:59Z",
        "2027-03-31T23:59:59Z",
        "2027-04-01T00:00:00Z",
        "2027-04-01T12:00:00Z",
        "2027-04-02T21:59:59Z",
        "2027-04-30T12:00:00Z",
        "2028-01-01T00:00:00Z",
    ]
    .iter()
    .map(|t| t.parse().unwrap())
    .collect()
}

async fn reference(db: &TestDb, campaign: &Campaign, as_of: DateTime<Utc>) -> GiftCounts {
    let gifts = db.store.kept_gifts(campaign.id, as_of).await.unwrap();
    let mut counts = GiftCounts::default();
    let mut persons: Vec<i64> = gifts.iter().map(|g| g.person_id).collect();
    persons.sort_unstable();
    persons.dedup();
    for gift in &gifts {
        counts.add(gift.kept.minor(), 1);
    }
    counts.donors = persons.len() as u64;
    counts
}

/// The register's (contribution, kept) as of `as_of`, and the reference: the net of each
/// gift of the donors of `references`, read from its entries' postings.
async fn register_and_reference(
    db: &TestDb,
    campaign: &Campaign,
    references: &[String],
    as_of: DateTime<Utc>,
) -> (Vec<(i64, i64)>, Vec<(i64, i64)>) {
    let mut register: Vec<(i64, i64)> = db
        .store
        .register_gifts(campaign.id, as_of, 0, i64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|g| (g.contribution_id, g.kept.minor()))
        .collect();
    register.sort_unstable();
    let mut donors = donor_ids(db, references).await;
    donors.sort_unstable();
    donors.dedup();
    let mut reference: Vec<(i64, i64)> = db
        .store
        .net_contributions(&donors, as_of)
        .await
        .unwrap()
        .iter()
        .map(|c| (c.id, c.net.minor()))
        .collect();
    reference.sort_unstable();
    (register, reference)
}

async fn donor_ids(db: &TestDb, references: &[String]) -> Vec<i64> {
    let mut ids = Vec::new();
    for reference in references {
        let gift = db.store.contribution_by_charge(reference).await.unwrap();
        ids.push(gift.unwrap().donor_id);
    }
    ids
}

/// A treasurer's merge or split either succeeds or is refused with a reason (a donor merged
/// into their own person, a donor alone split): never a failure of the store.
fn refused_only_by_the_rules(out: &std::process::Output, seed: u64, step: u32) {
    if !out.status.success() {
        let error = stderr(out);
        assert!(
            !error.contains("database error"),
            "seed {seed} step {step}: {error}"
        );
    }
}

async fn play(db: &TestDb, seed: u64) {
    let campaign = db.campaign("printemps-2027").await;
    let mut random = Rng(seed);
    let mut references: Vec<String> = Vec::new();
    for step in 0..30 {
        let what = random.below(10);
        let action = match what {
            0..=5 => {
                let reference = format!("T-{step}");
                let name = *random.pick(NAMES);
                // Two addresses per name: the same name at the same address is linked.
                let street = random.below(2) + 1;
                let amount = *random.pick(AMOUNTS);
                let day = *random.pick(DAYS);
                let line1 = format!("{street} rue Garibaldi");
                let out = common::cheque(db, amount, day, &reference, name, &line1);
                // 4: refused (the person is at the cap); the gift is recorded, nothing kept.
                assert!(
                    matches!(out.status.code(), Some(0 | 4)),
                    "seed {seed} step {step}: {}",
                    stderr(&out)
                );
                references.push(format!("printemps-2027/cheque:{reference}"));
                format!("cheque {amount} on {day} from {name} ({street})")
            }
            6 | 9 => {
                let out = db.obole(&["seal"]);
                assert!(out.status.success(), "{}", stderr(&out));
                "seal".to_owned()
            }
            7 if references.len() >= 2 => {
                let donors = donor_ids(db, &references).await;
                let (a, b) = (*random.pick(&donors), *random.pick(&donors));
                let out = db.obole(&[
                    "donor",
                    "merge",
                    "--donor",
                    &a.to_string(),
                    "--into",
                    &b.to_string(),
                    "--reason",
                    "same person",
                ]);
                refused_only_by_the_rules(&out, seed, step);
                format!("merge {a} into {b}: exit {:?}", out.status.code())
            }
            8 if !references.is_empty() => {
                let donors = donor_ids(db, &references).await;
                let a = *random.pick(&donors);
                let out = db.obole(&[
                    "donor",
                    "split",
                    "--donor",
                    &a.to_string(),
                    "--reason",
                    "not the same person",
                ]);
                refused_only_by_the_rules(&out, seed, step);
                format!("split {a}: exit {:?}", out.status.code())
            }
            _ => "nothing".to_owned(),
        };
        for as_of in instants() {
            let tallied = db.store.gift_counts(campaign.id, as_of).await.unwrap();
            let expected = reference(db, &campaign, as_of).await;
            assert_eq!(
                tallied, expected,
                "seed {seed}, step {step} ({action}), as of {as_of}"
            );
            let (register, reference) =
                register_and_reference(db, &campaign, &references, as_of).await;
            assert_eq!(
                register, reference,
                "register: seed {seed}, step {step} ({action}), as of {as_of}"
            );
        }
    }
    // Sealed at the end, the books (tallies included) verify.
    db.obole(&["seal"]);
    let verify = db.obole(&["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", common::stdout(&verify));
}

async fn the_tallies_equal_the_gifts_read_one_by_one(db: &TestDb) {
    play(db, 0x0b01e).await;
    // A gift movement changed behind the books' back: `obole verify` names it.
    db.raw_sql(
        "UPDATE gift_movements SET amount = amount - 100
         WHERE entry_id = (SELECT min(entry_id) FROM gift_movements)",
    )
    .await
    .unwrap();
    let verify = db.obole(&["verify"]);
    assert_eq!(verify.status.code(), Some(3), "{}", common::stdout(&verify));
    assert!(
        common::stdout(&verify).contains("stored GiftMovement"),
        "{}",
        common::stdout(&verify)
    );
}

async fn another_history_agrees_too(db: &TestDb) {
    play(db, 2027).await;
    // A tally changed behind the books' back: `obole verify` names it.
    db.raw_sql("UPDATE tallies SET count = count + 1 WHERE figure = 'gifts' AND span = 'month'")
        .await
        .unwrap();
    let verify = db.obole(&["verify"]);
    assert_eq!(verify.status.code(), Some(3), "{}", common::stdout(&verify));
    assert!(
        common::stdout(&verify).contains("gifts tally of month"),
        "{}",
        common::stdout(&verify)
    );
}

on_both_stores!(
    the_tallies_equal_the_gifts_read_one_by_one,
    another_history_agrees_too,
);
