//! The journal on both stores: idempotency, conflicts, reversals, the database's own
//! double-entry and append-only guards, balances as of an instant, concurrent writers.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use common::{start_time, TestDb};
use obole::campaign::Campaign;
use obole::clock::{end_of_day, parse_as_of};
use obole::ids::IdempotencyKey;
use obole::journal::{self, Journal, JournalError, JournalOptions};
use obole::ledger::{Entry, EntryDraft, EntryError};
use obole::money::{Currency, Money};
use obole::sealer::seal_all;
use obole::store::StoreError;

on_both_stores!(
    a_replay_returns_the_original_entry,
    a_reused_key_with_other_content_is_a_conflict,
    the_same_key_in_two_campaigns_is_two_entries,
    a_reversal_cancels_an_entry_once,
    the_database_refuses_updates_and_deletes,
    the_database_refuses_an_unbalanced_entry,
    invalid_entries_are_refused_before_the_database,
    balances_as_of_follow_the_campaign_time_zone,
    balances_agree_before_and_after_sealing,
    concurrent_writers_post_each_key_once,
    concurrent_conflicting_writers_leave_one_winner,
    a_batch_answers_each_entry_on_its_own,
    the_write_combiner_keeps_every_write_idempotent,
);

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
}

/// A gift as Stripe settles it: gross to income, fee to expenses, net to Stripe.
fn gift(k: &str, gross: i64, fee: i64, at: chrono::DateTime<chrono::Utc>) -> EntryDraft {
    EntryDraft::new(key(k), format!("gift {k}"), at)
        .post("assets:stripe", eur(gross - fee))
        .post("expenses:fees:stripe", eur(fee))
        .post("income:donations", eur(-gross))
}

async fn balance_of(
    db: &TestDb,
    campaign: &Campaign,
    account: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> i64 {
    db.store
        .balances(campaign.id, at)
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.account == account)
        .unwrap()
        .signed
        .minor()
}

async fn entry_count(db: &TestDb) -> i64 {
    let status = db.store.seal_status().await.unwrap();
    status.head.sequence + status.unsealed
}

async fn a_replay_returns_the_original_entry(db: &TestDb) {
    let c = db.campaign("replay").await;
    let first = journal::record(
        &db.store,
        db.clock.as_ref(),
        &c,
        gift("txn_1", 2500, 63, start_time()),
    )
    .await
    .unwrap();
    assert!(!first.replayed);
    // Same movement again, postings listed in another order: the same write.
    let reordered = EntryDraft::new(key("txn_1"), "gift txn_1", start_time())
        .post("income:donations", eur(-2500))
        .post("assets:stripe", eur(2437))
        .post("expenses:fees:stripe", eur(63));
    let again = journal::record(&db.store, db.clock.as_ref(), &c, reordered)
        .await
        .unwrap();
    assert_eq!(again.entry_id, first.entry_id);
    assert!(again.replayed);
    assert_eq!(entry_count(db).await, 1);
    assert_eq!(
        balance_of(db, &c, "income:donations", start_time()).await,
        -2500
    );
}

async fn a_reused_key_with_other_content_is_a_conflict(db: &TestDb) {
    let c = db.campaign("conflict").await;
    let first = journal::record(
        &db.store,
        db.clock.as_ref(),
        &c,
        gift("txn_1", 2500, 63, start_time()),
    )
    .await
    .unwrap();
    for other in [
        gift("txn_1", 2600, 63, start_time()),
        gift("txn_1", 2500, 63, start_time() + Duration::seconds(1)),
        EntryDraft {
            description: "other words".into(),
            ..gift("txn_1", 2500, 63, start_time())
        },
    ] {
        let err = journal::record(&db.store, db.clock.as_ref(), &c, other)
            .await
            .unwrap_err();
        assert!(
            matches!(err, JournalError::Store(StoreError::IdempotencyConflict { existing, .. }) if existing == first.entry_id),
            "{err}"
        );
    }
    assert_eq!(entry_count(db).await, 1);
}

async fn the_same_key_in_two_campaigns_is_two_entries(db: &TestDb) {
    let a = db.campaign("alpha").await;
    let b = db.campaign("beta").await;
    let in_a = journal::record(
        &db.store,
        db.clock.as_ref(),
        &a,
        gift("txn_1", 1000, 10, start_time()),
    )
    .await
    .unwrap();
    let in_b = journal::record(
        &db.store,
        db.clock.as_ref(),
        &b,
        gift("txn_1", 1000, 10, start_time()),
    )
    .await
    .unwrap();
    assert_ne!(in_a.entry_id, in_b.entry_id);
    assert!(!in_b.replayed);
    assert_eq!(
        balance_of(db, &a, "income:donations", start_time()).await,
        -1000
    );
    assert_eq!(
        balance_of(db, &b, "income:donations", start_time()).await,
        -1000
    );
}

async fn a_reversal_cancels_an_entry_once(db: &TestDb) {
    let c = db.campaign("reverse").await;
    let other = db.campaign("other").await;
    let clock = db.clock.as_ref();
    let posted = journal::record(&db.store, clock, &c, gift("txn_1", 5000, 100, start_time()))
        .await
        .unwrap();
    let later = start_time() + Duration::days(2);
    let reversal = journal::reverse(
        &db.store,
        clock,
        &c,
        posted.entry_id,
        key("fix:1"),
        later,
        "posted twice by hand",
    )
    .await
    .unwrap();
    let stored = db
        .store
        .entry(c.id, reversal.entry_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.content.reverses, Some(posted.entry_id));
    // Before the reversal's date the gift stands; after it, everything is back to zero.
    assert_eq!(
        balance_of(
            db,
            &c,
            "income:donations",
            later - Duration::microseconds(1)
        )
        .await,
        -5000
    );
    for b in db.store.balances(c.id, later).await.unwrap() {
        assert_eq!(b.signed.minor(), 0, "{}", b.account);
    }
    // Replaying the reversal is fine; reversing again under a new key is refused.
    assert!(
        journal::reverse(
            &db.store,
            clock,
            &c,
            posted.entry_id,
            key("fix:1"),
            later,
            "posted twice by hand"
        )
        .await
        .unwrap()
        .replayed
    );
    let again = journal::reverse(
        &db.store,
        clock,
        &c,
        posted.entry_id,
        key("fix:2"),
        later,
        "again",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(again, JournalError::Store(StoreError::Refused(ref m)) if m.contains("already been reversed")),
        "{again}"
    );
    // An entry of another campaign cannot be reversed from this one.
    let foreign = journal::reverse(
        &db.store,
        clock,
        &other,
        posted.entry_id,
        key("fix:3"),
        later,
        "x",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(foreign, JournalError::Store(StoreError::NoSuchEntry(_))),
        "{foreign}"
    );
}

async fn the_database_refuses_updates_and_deletes(db: &TestDb) {
    let c = db.campaign("append").await;
    journal::record(
        &db.store,
        db.clock.as_ref(),
        &c,
        gift("txn_1", 2500, 63, start_time()),
    )
    .await
    .unwrap();
    seal_all(&db.store, db.clock.as_ref()).await.unwrap();
    for sql in [
        "UPDATE postings SET amount = amount + 1",
        "DELETE FROM postings",
        "UPDATE entries SET description = 'edited'",
        "DELETE FROM entries",
        "UPDATE seals SET hash = prev_hash",
        "DELETE FROM seals",
    ] {
        let err = db.raw_sql(sql).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    if db.is_postgres() {
        let err = db.raw_sql("TRUNCATE postings CASCADE").await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(
        balance_of(db, &c, "income:donations", start_time()).await,
        -2500
    );
}

async fn the_database_refuses_an_unbalanced_entry(db: &TestDb) {
    let c = db.campaign("unbalanced").await;
    let id = c.id.0;
    let hash = "a".repeat(64);
    // Written by hand, bypassing the Rust checks: postings summing to +1.
    let (now, overriding) = if db.is_postgres() {
        ("now()", "OVERRIDING SYSTEM VALUE")
    } else {
        ("0", "")
    };
    let script = format!(
        "BEGIN;
         INSERT INTO entries (id, campaign_id, idempotency_key, content_hash, description, effective_at, recorded_at, posting_count)
           {overriding} VALUES (999, {id}, 'hand', '{hash}', 'by hand', {now}, {now}, 2);
         INSERT INTO postings (entry_id, line, campaign_id, account_id, currency, amount, effective_at)
           SELECT 999, 0, {id}, a.id, 'EUR', 101, {now} FROM accounts a WHERE a.campaign_id = {id} AND a.name = 'assets:bank';
         INSERT INTO postings (entry_id, line, campaign_id, account_id, currency, amount, effective_at)
           SELECT 999, 1, {id}, a.id, 'EUR', -100, {now} FROM accounts a WHERE a.campaign_id = {id} AND a.name = 'income:donations';
         INSERT INTO pending_seal (entry_id) VALUES (999);
         COMMIT;"
    );
    let err = db.raw_sql(&script).await.unwrap_err();
    assert!(err.to_string().contains("unbalanced"), "{err}");
    let _ = db.raw_sql("ROLLBACK").await;
    assert_eq!(entry_count(db).await, 0);
    // A balanced entry with a posting on another campaign's account is refused too (a
    // foreign key on SQLite, the commit-time entry check on PostgreSQL).
    let other = db.campaign("elsewhere").await.id.0;
    let foreign = script
        .replace("'hand'", "'hand-2'")
        .replace("'EUR', 101", "'EUR', 100")
        .replace(
            "a.campaign_id = {id} AND a.name = 'assets:bank'"
                .replace("{id}", &id.to_string())
                .as_str(),
            &format!("a.campaign_id = {other} AND a.name = 'assets:bank'"),
        );
    assert!(foreign.contains(&format!("a.campaign_id = {other}")));
    let err = db.raw_sql(&foreign).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("foreign key")
            || err.to_string().contains("not of campaign"),
        "{err}"
    );
    let _ = db.raw_sql("ROLLBACK").await;
    assert_eq!(entry_count(db).await, 0);
}

async fn invalid_entries_are_refused_before_the_database(db: &TestDb) {
    let c = db.campaign("invalid").await;
    let clock = db.clock.as_ref();
    let at = start_time();
    type Expectation = fn(&EntryError) -> bool;
    let cases: Vec<(EntryDraft, Expectation)> = vec![
        (
            EntryDraft::new(key("one"), "x", at).post("assets:bank", eur(5)),
            |e| matches!(e, EntryError::TooFewPostings(1)),
        ),
        (
            EntryDraft::new(key("zero"), "x", at)
                .post("assets:bank", eur(0))
                .post("income:donations", eur(0)),
            |e| matches!(e, EntryError::ZeroPosting(_)),
        ),
        (
            EntryDraft::new(key("off"), "x", at)
                .post("assets:bank", eur(5))
                .post("income:donations", eur(-4)),
            |e| matches!(e, EntryError::Unbalanced { sum: 1, .. }),
        ),
        (
            EntryDraft::new(key("acct"), "x", at)
                .post("assets:moon", eur(5))
                .post("income:donations", eur(-5)),
            |e| matches!(e, EntryError::UnknownAccount(_)),
        ),
        (
            EntryDraft::new(key("usd"), "x", at)
                .post("assets:bank", Money::from_minor(5, Currency::USD))
                .post("income:donations", Money::from_minor(-5, Currency::USD)),
            |e| matches!(e, EntryError::WrongCurrency { .. }),
        ),
        (
            EntryDraft::new(key("long"), "x".repeat(501), at)
                .post("assets:bank", eur(5))
                .post("income:donations", eur(-5)),
            |e| matches!(e, EntryError::DescriptionTooLong(501)),
        ),
    ];
    for (draft, expected) in cases {
        let err = journal::record(&db.store, clock, &c, draft)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, JournalError::Invalid(e) if expected(e)),
            "{err}"
        );
    }
    assert_eq!(entry_count(db).await, 0);
}

async fn balances_as_of_follow_the_campaign_time_zone(db: &TestDb) {
    // The treasurer's question: what had we raised by the end of 31 March, Paris time?
    let c = db.campaign("asof").await;
    let clock = db.clock.as_ref();
    let paris = c.timezone;
    let local = |text: &str| parse_as_of(text, paris).unwrap();
    journal::record(
        &db.store,
        clock,
        &c,
        gift("in", 10_000, 175, local("2027-03-31T23:30:00+02:00")),
    )
    .await
    .unwrap();
    journal::record(
        &db.store,
        clock,
        &c,
        gift("out", 20_000, 310, local("2027-04-01T00:10:00+02:00")),
    )
    .await
    .unwrap();
    seal_all(&db.store, clock).await.unwrap();
    let end_of_march = end_of_day(NaiveDate::from_ymd_opt(2027, 3, 31).unwrap(), paris).unwrap();
    assert_eq!(end_of_march, local("2027-03-31"));
    assert_eq!(
        balance_of(db, &c, "income:donations", end_of_march).await,
        -10_000
    );
    assert_eq!(
        balance_of(db, &c, "income:donations", local("2027-04-01")).await,
        -30_000
    );
    assert_eq!(
        balance_of(db, &c, "income:donations", local("2027-03-30")).await,
        0
    );
    // The CLI reads the date the same way.
    let out = db.obole(&[
        "balance",
        "--campaign",
        "asof",
        "--as-of",
        "2027-03-31",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    let income = json["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "income:donations")
        .unwrap();
    assert_eq!(income["balance"], "100.00");
    assert_eq!(json["as_of"], "2027-03-31T21:59:59.999999Z");
}

async fn balances_agree_before_and_after_sealing(db: &TestDb) {
    // Entries spread over hours, some in the same hour as the as-of instant: the roll-up,
    // same-hour and unsealed paths must all count each posting exactly once.
    let c = db.campaign("rollup").await;
    let clock = db.clock.as_ref();
    let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
    for n in 0..40_i64 {
        let at = start_time() + Duration::minutes(n * 37);
        journal::record(
            &db.store,
            clock,
            &c,
            gift(&format!("g{n}"), 1000 + n, 10, at),
        )
        .await
        .unwrap();
        expected.insert(n, 1000 + n);
        if n == 20 {
            seal_all(&db.store, clock).await.unwrap();
        }
    }
    let probes: Vec<_> = (0..40_i64)
        .flat_map(|n| {
            let at = start_time() + Duration::minutes(n * 37);
            [
                at - Duration::microseconds(1),
                at,
                at + Duration::minutes(5),
            ]
        })
        .collect();
    let expected_at = |t: chrono::DateTime<chrono::Utc>| -> i64 {
        expected
            .iter()
            .filter(|(n, _)| start_time() + Duration::minutes(*n * 37) <= t)
            .map(|(_, g)| -g)
            .sum()
    };
    for &t in &probes {
        assert_eq!(
            balance_of(db, &c, "income:donations", t).await,
            expected_at(t),
            "half sealed, at {t}"
        );
    }
    seal_all(&db.store, clock).await.unwrap();
    for &t in &probes {
        assert_eq!(
            balance_of(db, &c, "income:donations", t).await,
            expected_at(t),
            "all sealed, at {t}"
        );
    }
}

async fn concurrent_writers_post_each_key_once(db: &TestDb) {
    // 64 tasks; every key is written by four of them at once, with identical content.
    let c = db.campaign("concurrent").await;
    const TASKS: i64 = 64;
    const PER_TASK: i64 = 25;
    const KEYS: i64 = TASKS * PER_TASK / 4;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = db.store.clone();
        let clock = db.clock.clone();
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            let mut fresh = 0;
            for i in 0..PER_TASK {
                let k = (task * PER_TASK + i) % KEYS;
                let posted = journal::record(
                    &store,
                    clock.as_ref(),
                    &c,
                    gift(&format!("k{k}"), 100 + k, 3, start_time()),
                )
                .await
                .unwrap();
                fresh += i64::from(!posted.replayed);
            }
            fresh
        }));
    }
    let mut fresh = 0;
    for handle in handles {
        fresh += handle.await.unwrap();
    }
    assert_eq!(fresh, KEYS, "each key written once");
    assert_eq!(entry_count(db).await, KEYS);
    let gross: i64 = (0..KEYS).map(|k| 100 + k).sum();
    assert_eq!(
        balance_of(db, &c, "income:donations", start_time()).await,
        -gross
    );
    seal_all(&db.store, db.clock.as_ref()).await.unwrap();
    obole::audit::verify(&db.store, &[]).await.unwrap();
}

async fn concurrent_conflicting_writers_leave_one_winner(db: &TestDb) {
    let c = db.campaign("race").await;
    let mut handles = Vec::new();
    for amount in 1..=16_i64 {
        let (store, clock, c) = (db.store.clone(), db.clock.clone(), c.clone());
        handles.push(tokio::spawn(async move {
            journal::record(
                &store,
                clock.as_ref(),
                &c,
                gift("contested", 1000 + amount, 5, start_time()),
            )
            .await
        }));
    }
    let mut winners = 0;
    for handle in handles {
        match handle.await.unwrap() {
            Ok(posted) => {
                assert!(!posted.replayed);
                winners += 1;
            }
            Err(JournalError::Store(StoreError::IdempotencyConflict { .. })) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(entry_count(db).await, 1);
}

async fn a_batch_answers_each_entry_on_its_own(db: &TestDb) {
    let c = db.campaign("batch").await;
    let first = journal::record(
        &db.store,
        db.clock.as_ref(),
        &c,
        gift("old", 700, 7, start_time()),
    )
    .await
    .unwrap();
    journal::reverse(
        &db.store,
        db.clock.as_ref(),
        &c,
        first.entry_id,
        key("undo-old"),
        start_time(),
        "test",
    )
    .await
    .unwrap();
    let entry = |draft| Entry::new(&c, draft).unwrap();
    let a = entry(gift("a", 1000, 10, start_time()));
    let a_other = entry(gift("a", 1001, 10, start_time()));
    let b = entry(gift("b", 2000, 20, start_time()));
    let old_again = entry(gift("old", 700, 7, start_time()));
    let reversed_twice = entry(
        db.store
            .entry(c.id, first.entry_id)
            .await
            .unwrap()
            .unwrap()
            .reversal(key("undo-old-2"), start_time(), "again")
            .unwrap(),
    );
    let results = db
        .store
        .post_batch(
            &[&a, &b, &a_other, &a, &old_again, &reversed_twice],
            start_time(),
        )
        .await
        .unwrap();
    let a_id = results[0].as_ref().unwrap().entry_id;
    assert!(!results[0].as_ref().unwrap().replayed);
    assert!(!results[1].as_ref().unwrap().replayed);
    assert!(
        matches!(results[2], Err(StoreError::IdempotencyConflict { existing, .. }) if existing == a_id),
        "{:?}",
        results[2]
    );
    assert_eq!(
        results[3].as_ref().unwrap(),
        &obole::store::Posted {
            entry_id: a_id,
            replayed: true
        }
    );
    assert_eq!(
        results[4].as_ref().unwrap(),
        &obole::store::Posted {
            entry_id: first.entry_id,
            replayed: true
        }
    );
    assert!(
        matches!(&results[5], Err(StoreError::Refused(m)) if m.contains("already been reversed")),
        "{:?}",
        results[5]
    );
    assert_eq!(entry_count(db).await, 4);
}

async fn the_write_combiner_keeps_every_write_idempotent(db: &TestDb) {
    // Many callers through one Journal: overlapping keys, conflicting content, and a
    // reversal of another campaign's entry, which fails a whole PostgreSQL statement and
    // must fail alone.
    let c = db.campaign("combined").await;
    let other = db.campaign("foreign").await;
    let foreign = journal::record(
        &db.store,
        db.clock.as_ref(),
        &other,
        gift("f", 100, 1, start_time()),
    )
    .await
    .unwrap();
    let journal = Journal::start(
        db.store.clone(),
        db.clock.clone(),
        JournalOptions {
            flushers: 3,
            batch_max: 32,
        },
    );
    let mut handles = Vec::new();
    for task in 0..48_i64 {
        let (journal, c) = (journal.clone(), c.clone());
        handles.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..20_i64 {
                let k = (task * 20 + i) % 300;
                // Every 7th task writes other content under the same keys: conflicts.
                let gross = if task % 7 == 6 { 9_999 } else { 100 + k };
                outcomes.push((
                    k,
                    gross,
                    journal
                        .record(&c, gift(&format!("k{k}"), gross, 3, start_time()))
                        .await,
                ));
            }
            outcomes
        }));
    }
    let sneaky = {
        let (journal, c) = (journal.clone(), c.clone());
        let draft = db
            .store
            .entry(other.id, foreign.entry_id)
            .await
            .unwrap()
            .unwrap()
            .reversal(key("sneaky"), start_time(), "x")
            .unwrap();
        tokio::spawn(async move { journal.record(&c, draft).await })
    };
    let mut winners: BTreeMap<i64, i64> = BTreeMap::new();
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.extend(handle.await.unwrap());
    }
    for (k, gross, outcome) in &outcomes {
        if let Ok(posted) = outcome {
            if !posted.replayed {
                assert!(
                    winners.insert(*k, *gross).is_none(),
                    "key {k} written twice"
                );
            }
        }
    }
    for (k, gross, outcome) in &outcomes {
        match outcome {
            Ok(_) => assert_eq!(
                winners[k], *gross,
                "key {k}: a replay must carry the winner's content"
            ),
            Err(JournalError::Store(StoreError::IdempotencyConflict { .. })) => {
                assert_ne!(winners[k], *gross)
            }
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(winners.len(), 300);
    assert!(
        sneaky.await.unwrap().is_err(),
        "a reversal of another campaign's entry must be refused"
    );
    assert_eq!(entry_count(db).await, 300 + 1);
    assert_eq!(
        balance_of(db, &c, "income:donations", start_time()).await,
        -winners.values().sum::<i64>()
    );
    seal_all(&db.store, db.clock.as_ref()).await.unwrap();
    obole::audit::verify(&db.store, &[]).await.unwrap();
}
