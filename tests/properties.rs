//! Property tests of the ledger invariants on both stores, over random sequences of
//! postings, replays, reversals and sealing passes:
//! - every entry balances, and reads back exactly as written;
//! - the sum of all balances per currency is zero;
//! - replaying any prefix of the writes is a no-op;
//! - the balance as of t equals the sum of postings effective at or before t, whether the
//!   entries are sealed (roll-ups) or not;
//! - the chain verifies at the end.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Duration, Utc};
use common::{start_time, TestDb};
use obole::campaign::Campaign;
use obole::ids::{EntryId, IdempotencyKey};
use obole::journal::{self, JournalError};
use obole::ledger::{EntryDraft, CHART};
use obole::money::{Currency, Money};
use obole::sealer::seal_all;
use obole::store::StoreError;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[derive(Debug, Clone)]
enum Op {
    /// A balanced entry; keys come from a small set so that reuse, with the same or with
    /// other content, is frequent.
    Post {
        key: u8,
        lines: Vec<(usize, i64)>,
        minute: i64,
    },
    /// The same write as an earlier successful post.
    Replay {
        pick: usize,
    },
    /// Reverse an earlier entry (possibly a reversal), effective at `minute`.
    Reverse {
        pick: usize,
        minute: i64,
    },
    Seal,
}

/// Minutes over three days: many hourly roll-up buckets, some shared.
const MINUTES: i64 = 3 * 24 * 60;

fn balanced_lines() -> impl Strategy<Value = Vec<(usize, i64)>> {
    (
        prop::collection::vec(
            (
                0..CHART.len(),
                prop_oneof![-1_000_000_i64..=-1, 1..=1_000_000_i64],
            ),
            1..5,
        ),
        0..CHART.len(),
    )
        .prop_map(|(mut lines, balancing_account)| {
            let sum: i64 = lines.iter().map(|(_, amount)| amount).sum();
            if sum != 0 {
                lines.push((balancing_account, -sum));
            }
            lines
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..12_u8, balanced_lines(), 0..MINUTES).prop_map(|(key, lines, minute)| Op::Post { key, lines, minute }),
        2 => any::<usize>().prop_map(|pick| Op::Replay { pick }),
        2 => (any::<usize>(), 0..MINUTES).prop_map(|(pick, minute)| Op::Reverse { pick, minute }),
        1 => Just(Op::Seal),
    ]
}

fn at(minute: i64) -> DateTime<Utc> {
    start_time() + Duration::minutes(minute)
}

/// What the model remembers of a recorded entry.
#[derive(Debug, Clone)]
struct Recorded {
    id: EntryId,
    postings: Vec<(String, i64)>,
    effective_at: DateTime<Utc>,
}

#[derive(Default)]
struct Model {
    /// key → (content signature, entry id)
    keys: HashMap<String, (String, EntryId)>,
    entries: Vec<Recorded>,
    /// The drafts that were written for the first time, in order: the "prefix" to replay.
    fresh_writes: Vec<EntryDraft>,
    reversed: HashMap<EntryId, String>,
}

impl Model {
    fn balances_at(&self, t: DateTime<Utc>) -> BTreeMap<String, i64> {
        let mut balances: BTreeMap<String, i64> =
            CHART.iter().map(|a| (a.name.to_owned(), 0)).collect();
        for entry in self.entries.iter().filter(|e| e.effective_at <= t) {
            for (account, amount) in &entry.postings {
                *balances.get_mut(account).unwrap() += amount;
            }
        }
        balances
    }
}

fn signature(postings: &[(String, i64)], effective_at: DateTime<Utc>) -> String {
    let mut sorted = postings.to_vec();
    sorted.sort();
    format!("{sorted:?}@{effective_at}")
}

async fn store_balances(db: &TestDb, c: &Campaign, t: DateTime<Utc>) -> BTreeMap<String, i64> {
    db.store
        .balances(c.id, t)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.account, b.signed.minor()))
        .collect()
}

async fn check(db: &TestDb, c: &Campaign, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = db.clock.as_ref();
    let eur = |minor| Money::from_minor(minor, Currency::EUR);
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Post { key, lines, minute } => {
                let key = format!("k{key}");
                let postings: Vec<(String, i64)> = lines
                    .iter()
                    .map(|(a, m)| (CHART[*a].name.to_owned(), *m))
                    .collect();
                let mut draft = EntryDraft::new(
                    IdempotencyKey::parse(key.clone()).unwrap(),
                    "property",
                    at(minute),
                );
                for (account, amount) in &postings {
                    draft = draft.post(account, eur(*amount));
                }
                let sig = signature(&postings, at(minute));
                let result = journal::record(&db.store, clock, c, draft.clone()).await;
                match model.keys.get(&key) {
                    Some((known, id)) if *known == sig => {
                        let posted = result.unwrap();
                        prop_assert!(posted.replayed && posted.entry_id == *id);
                    }
                    Some((_, id)) => {
                        let conflict_names_original = matches!(result, Err(JournalError::Store(StoreError::IdempotencyConflict { existing, .. })) if existing == *id);
                        prop_assert!(conflict_names_original);
                    }
                    None => {
                        let posted = result.unwrap();
                        prop_assert!(!posted.replayed);
                        model.keys.insert(key, (sig, posted.entry_id));
                        model.entries.push(Recorded {
                            id: posted.entry_id,
                            postings,
                            effective_at: at(minute),
                        });
                        model.fresh_writes.push(draft);
                    }
                }
            }
            Op::Replay { pick } => {
                if model.fresh_writes.is_empty() {
                    continue;
                }
                let draft = model.fresh_writes[pick % model.fresh_writes.len()].clone();
                let posted = journal::record(&db.store, clock, c, draft).await.unwrap();
                prop_assert!(posted.replayed);
            }
            Op::Reverse { pick, minute } => {
                if model.entries.is_empty() {
                    continue;
                }
                let original = model.entries[pick % model.entries.len()].clone();
                let key = format!("rev:{}:{minute}", original.id);
                let result = journal::reverse(
                    &db.store,
                    clock,
                    c,
                    original.id,
                    IdempotencyKey::parse(key.clone()).unwrap(),
                    at(minute),
                    "property",
                )
                .await;
                match model.reversed.get(&original.id) {
                    Some(done) if *done == key => prop_assert!(result.unwrap().replayed),
                    Some(_) => prop_assert!(matches!(
                        result,
                        Err(JournalError::Store(StoreError::Refused(_)))
                    )),
                    None => {
                        let posted = result.unwrap();
                        prop_assert!(!posted.replayed);
                        model.reversed.insert(original.id, key);
                        let negated = original
                            .postings
                            .iter()
                            .map(|(a, m)| (a.clone(), -m))
                            .collect();
                        model.entries.push(Recorded {
                            id: posted.entry_id,
                            postings: negated,
                            effective_at: at(minute),
                        });
                    }
                }
            }
            Op::Seal => {
                seal_all(&db.store, clock).await.unwrap();
            }
        }
    }

    // Every entry reads back balanced and as written.
    for recorded in &model.entries {
        let stored = db.store.entry(c.id, recorded.id).await.unwrap().unwrap();
        prop_assert!(stored.content.check_balanced().is_ok());
        let mut read: Vec<(String, i64)> = stored
            .content
            .postings
            .iter()
            .map(|p| (p.account.clone(), p.amount.minor()))
            .collect();
        let mut written = recorded.postings.clone();
        read.sort();
        written.sort();
        prop_assert_eq!(read, written);
    }

    // Balances as of every interesting instant, part sealed and part not.
    let mut probes: Vec<DateTime<Utc>> = model
        .entries
        .iter()
        .flat_map(|e| [e.effective_at - Duration::microseconds(1), e.effective_at])
        .collect();
    probes.push(at(MINUTES));
    let check_probes = |label: &'static str| {
        let probes = probes.clone();
        let model = &model;
        async move {
            for t in probes {
                let stored = store_balances(db, c, t).await;
                prop_assert_eq!(&stored, &model.balances_at(t), "{} at {}", label, t);
                prop_assert_eq!(
                    stored.values().sum::<i64>(),
                    0,
                    "{}: all balances sum to zero",
                    label
                );
            }
            Ok(())
        }
    };
    check_probes("before replay").await?;

    // Replaying every fresh write (any prefix of them) changes nothing.
    let before = store_balances(db, c, at(MINUTES)).await;
    for draft in &model.fresh_writes {
        prop_assert!(
            journal::record(&db.store, clock, c, draft.clone())
                .await
                .unwrap()
                .replayed
        );
    }
    prop_assert_eq!(store_balances(db, c, at(MINUTES)).await, before);

    seal_all(&db.store, clock).await.unwrap();
    check_probes("all sealed").await?;
    obole::audit::verify(&db.store, &[])
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

static CASE: AtomicU32 = AtomicU32::new(0);

fn run_property(db: TestDb, rt: &tokio::runtime::Runtime, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(op(), 1..40), |ops| {
            rt.block_on(async {
                let campaign = db
                    .campaign(&format!("case-{}", CASE.fetch_add(1, Ordering::Relaxed)))
                    .await;
                check(&db, &campaign, ops).await
            })
        })
        .unwrap();
    rt.block_on(db.finish());
}

#[test]
fn ledger_invariants_hold_on_sqlite() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::sqlite());
    run_property(db, &rt, 48);
}

#[test]
fn ledger_invariants_hold_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(TestDb::postgres()) else {
        return;
    };
    run_property(db, &rt, 32);
}
