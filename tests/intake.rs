//! Stripe intake end to end, on both stores: the real server on a random port, a simulated
//! Stripe account serving its API over HTTP, events signed at test time and delivered to
//! `POST /webhooks/stripe`, and the intake worker posting them to the ledger.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::stripe::{harness, Harness, CAMPAIGN, KEY, SECRET};
use common::TestDb;
use obole::intake::{Contribution, InboxStatus};
use obole::provider::stripe::sim::{Gift, SimEvent, StripeSim};

async fn recorded_contribution(db: &TestDb, charge: &str) -> Contribution {
    db.store
        .contribution_by_charge(charge)
        .await
        .unwrap()
        .unwrap()
}

/// The simulated Checkout session and the custom fields it carries are recorded.
fn assert_session_recorded(contribution: &Contribution, session: &str) {
    assert_eq!(contribution.checkout_session_id.as_deref(), Some(session));
    assert_eq!(
        contribution.custom_fields.as_deref(),
        Some(r#"{"eligibility":"yes","occupation":"Enseignante"}"#)
    );
}

fn balances(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(a, m)| (a.to_string(), *m)).collect()
}

async fn a_donations_whole_life_ends_with_the_right_balance_on_every_account(db: &TestDb) {
    let h = harness(db).await;
    // A €25 gift (Stripe keeps €0.63), refunded €10 then €5; the bank disputes the rest and
    // wins (€20 dispute fee); a €100 gift; then Stripe pays the balance out to the bank.
    let gift = h
        .sim
        .donate(&Gift::new(2500, CAMPAIGN, "marie.dupont@example.fr"));
    h.deliver(db, &gift.events).await;
    let (_, first_refund) = h.sim.refund(&gift.charge, 1000);
    h.deliver(db, &first_refund).await;
    let (_, second_refund) = h.sim.refund(&gift.charge, 500);
    h.deliver(db, &second_refund).await;
    let (dispute, opened) = h.sim.dispute(&gift.charge, 2000);
    h.deliver(db, &opened).await;
    h.deliver(db, &h.sim.close_dispute(&dispute, false)).await;
    let second = h
        .sim
        .donate(&Gift::new(10_000, CAMPAIGN, "jean.martin@example.fr"));
    h.deliver(db, &second.events).await;
    let (payout, paid) = h.sim.payout();
    h.deliver(db, &paid).await;
    h.settle(db).await;

    assert_eq!(
        h.balances(db).await,
        balances(&[
            ("assets:bank", 7762),
            ("expenses:fees:disputes", 2000),
            ("expenses:fees:stripe", 63 + 175),
            ("income:donations", -12_500),
            ("income:donations:chargebacks", 1000),
            ("income:donations:refunds", 1500),
        ]),
        "assets:stripe is back to zero after the payout"
    );
    // Gift, 2 refunds, the dispute withdrawal, the second gift, the payout.
    assert_eq!(h.movements(db).await.len(), 6);

    let contribution = recorded_contribution(db, &gift.charge).await;
    assert_eq!(contribution.campaign_id, h.campaign.id);
    assert_eq!(contribution.amount.minor(), 2500);
    assert_eq!(
        contribution.donor_email.as_deref(),
        Some("marie.dupont@example.fr")
    );
    assert_eq!(contribution.card_country.as_deref(), Some("FR"));
    assert_session_recorded(&contribution, &gift.session);
    assert_eq!(contribution.review_reason, None);

    // What each donor has given, net, as the compliance engine reads it from the ledger: the
    // first gift was refunded and charged back to nothing; just after it was paid it was whole.
    let jean = recorded_contribution(db, &second.charge).await;
    let donors = [contribution.donor_id, jean.donor_id];
    let far_future = contribution.paid_at + chrono::Duration::days(3650);
    let net: Vec<(i64, i64)> = db
        .store
        .net_contributions(&donors, far_future)
        .await
        .unwrap()
        .iter()
        .map(|c| (c.id, c.net.minor()))
        .collect();
    assert_eq!(net, vec![(contribution.id, 0), (jean.id, 10_000)]);
    let at_first_gift = db
        .store
        .net_contributions(&donors, contribution.paid_at)
        .await
        .unwrap();
    assert_eq!(at_first_gift.len(), 1, "{at_first_gift:?}");
    assert_eq!(at_first_gift[0].net.minor(), 2500);
    assert!(h.sim.take_outbox().is_empty());

    // Reconciliation agrees; then Stripe moves money Obole was never told about.
    let reconcile = |h: &Harness| {
        common::obole_with_url(
            &db.url,
            &[
                "reconcile",
                "--campaign",
                CAMPAIGN,
                "--stripe-secret-key",
                KEY,
                "--stripe-api-base",
                &h.sim_base,
                "--stripe-api-rate",
                "0",
                "--format",
                "json",
            ],
        )
    };
    let agreed = reconcile(&h);
    assert!(
        agreed.status.success(),
        "{}{}",
        common::stdout(&agreed),
        common::stderr(&agreed)
    );
    let report: serde_json::Value = serde_json::from_str(&common::stdout(&agreed)).unwrap();
    assert_eq!(report["transactions"], 6);
    assert_eq!(report["payouts"], 1, "payout {payout:?} checked");
    let unheard = h.sim.donate(&Gift::new(700, CAMPAIGN, "x@example.org"));
    let differs = reconcile(&h);
    assert_eq!(differs.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_str(&common::stdout(&differs)).unwrap();
    assert_eq!(report["findings"][0]["kind"], "missing");
    assert_eq!(
        report["findings"][0]["txn"],
        unheard.balance_transaction.unwrap().as_str()
    );
    h.server.shutdown().await;
}

async fn the_same_event_delivered_twenty_times_posts_once(db: &TestDb) {
    let h = harness(db).await;
    let gift = h.sim.donate(&Gift::new(2500, CAMPAIGN, "marie@example.fr"));
    let updated = gift.events.last().unwrap().clone();
    assert_eq!(updated.kind, "charge.updated");
    let deliveries: Vec<SimEvent> = std::iter::repeat_n(updated, 20).collect();
    h.deliver(db, &deliveries).await;
    h.settle(db).await;
    h.deliver(db, &deliveries[..3]).await;
    h.settle(db).await;
    assert_eq!(h.movements(db).await.len(), 1);
    assert_eq!(
        h.balances(db).await,
        balances(&[
            ("assets:stripe", 2437),
            ("expenses:fees:stripe", 63),
            ("income:donations", -2500)
        ])
    );
    h.server.shutdown().await;
}

async fn different_events_for_one_money_movement_post_it_once(db: &TestDb) {
    let h = harness(db).await;
    let gift = h.sim.donate(&Gift::new(4000, CAMPAIGN, "marie@example.fr"));
    // checkout.session.completed, payment_intent.succeeded, charge.succeeded, charge.updated:
    // four routes to one balance transaction, delivered one at a time and all at once.
    for event in &gift.events {
        h.deliver(db, std::slice::from_ref(event)).await;
        h.settle(db).await;
    }
    assert_eq!(
        h.movements(db).await.keys().cloned().collect::<Vec<_>>(),
        vec![gift.balance_transaction.clone().unwrap()]
    );
    for event in &gift.events {
        assert_eq!(
            h.status_of(db, event).await,
            InboxStatus::Posted,
            "{}",
            event.kind
        );
    }
    h.server.shutdown().await;
}

/// All 120 orders of five events of one donation (gift, refund, dispute), each order for its
/// own donation: every donation ends with the same entries.
async fn every_order_of_a_donations_events_ends_in_the_same_ledger(db: &TestDb) {
    let h = harness(db).await;
    let orders = permutations(5);
    assert_eq!(orders.len(), 120);
    let mut charges = Vec::new();
    let mut deliveries = Vec::new();
    for (n, order) in orders.iter().enumerate() {
        let gift = h
            .sim
            .donate(&Gift::new(2500, CAMPAIGN, &format!("donor{n}@example.fr")));
        let (_, refund) = h.sim.refund(&gift.charge, 1000);
        let (_, dispute) = h.sim.dispute(&gift.charge, 1500);
        let events = [
            gift.events[0].clone(), // checkout.session.completed
            gift.events[2].clone(), // charge.succeeded (snapshot without its transaction)
            refund[0].clone(),      // refund.created
            dispute[1].clone(),     // charge.dispute.funds_withdrawn
            gift.events[1].clone(), // payment_intent.succeeded
        ];
        deliveries.extend(order.iter().map(|&i| events[i].clone()));
        charges.push(gift.charge);
    }
    h.deliver(db, &deliveries).await;
    h.settle(db).await;

    let movements = h.movements(db).await;
    assert_eq!(movements.len(), 120 * 3);
    let client = h.client();
    let expected = vec![
        vec![
            ("assets:stripe".to_owned(), 2437),
            ("expenses:fees:stripe".to_owned(), 63),
            ("income:donations".to_owned(), -2500),
        ],
        vec![
            ("assets:stripe".to_owned(), -1000),
            ("income:donations:refunds".to_owned(), 1000),
        ],
        vec![
            ("assets:stripe".to_owned(), -3000),
            ("expenses:fees:disputes".to_owned(), 1500),
            ("income:donations:chargebacks".to_owned(), 1500),
        ],
    ];
    for charge in &charges {
        let read = client.charge(charge).await.unwrap();
        let mut ids = vec![read.balance_transaction.unwrap()];
        ids.extend(
            client
                .refunds_of_charge(charge)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|r| r.balance_transaction),
        );
        ids.extend(
            client
                .disputes_of_charge(charge)
                .await
                .unwrap()
                .into_iter()
                .flat_map(|d| d.balance_transactions)
                .map(|t| t.id),
        );
        let mut shape: Vec<Vec<(String, i64)>> = ids
            .iter()
            .map(|id| {
                let mut postings = movements.get(id).cloned().unwrap_or_default();
                postings.sort();
                postings
            })
            .collect();
        shape.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(shape, want, "charge {charge}");
    }
    h.server.shutdown().await;
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut order = rest.clone();
            order.insert(at, n - 1);
            all.push(order);
        }
    }
    all
}

async fn a_capture_not_yet_settled_is_retried_until_its_fee_is_known(db: &TestDb) {
    let h = harness(db).await;
    let mut gift = Gift::new(2500, CAMPAIGN, "marie@example.fr");
    gift.settled = false;
    let donation = h.sim.donate(&gift);
    h.deliver(db, &donation.events).await;
    // The worker finds no balance transaction: it must wait, not guess the fee.
    for _ in 0..200 {
        let event = db
            .store
            .stripe_event(&donation.events[2].id)
            .await
            .unwrap()
            .unwrap();
        if event.attempts > 0 {
            assert_eq!(event.status, InboxStatus::Pending);
            assert!(event.last_error.unwrap().contains("capture not settled"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(h.movements(db).await.is_empty());
    let (_, updated) = h.sim.settle(&donation.charge);
    h.settle(db).await;
    assert_eq!(h.movements(db).await.len(), 1);
    h.deliver(db, &updated).await;
    h.settle(db).await;
    assert_eq!(h.balances(db).await.get("expenses:fees:stripe"), Some(&63));
    h.server.shutdown().await;
}

async fn a_payment_naming_no_campaign_goes_to_the_accounts_campaign_for_review(db: &TestDb) {
    let h = harness(db).await;
    let mut gift = Gift::new(1500, CAMPAIGN, "walkin@example.fr");
    gift.campaign = None;
    let donation = h.sim.donate(&gift);
    h.deliver(db, &donation.events).await;
    h.settle(db).await;
    let contribution = recorded_contribution(db, &donation.charge).await;
    assert_eq!(contribution.campaign_id, h.campaign.id);
    assert!(contribution
        .review_reason
        .unwrap()
        .contains("no campaign metadata"));
    assert_eq!(h.balances(db).await.get("income:donations"), Some(&-1500));
    h.server.shutdown().await;
}

async fn an_event_that_keeps_failing_is_parked_listed_and_can_be_retried(db: &TestDb) {
    let h = harness(db).await;
    // A refund of a charge Stripe does not know: every attempt fails.
    let body = serde_json::json!({
        "id": "evt_1Orphan", "object": "event", "type": "refund.created", "created": 1_764_012_345,
        "livemode": false, "api_version": "2026-09-30.endive",
        "data": {"object": {"id": "re_1Orphan", "object": "refund", "charge": "ch_1Missing"}},
    })
    .to_string();
    let orphan = SimEvent {
        id: "evt_1Orphan".into(),
        kind: "refund.created".into(),
        body,
    };
    h.deliver(db, std::slice::from_ref(&orphan)).await;
    h.settle(db).await;
    let parked = db.store.stripe_event("evt_1Orphan").await.unwrap().unwrap();
    assert_eq!(parked.status, InboxStatus::Parked);
    assert_eq!(parked.attempts, 4);
    assert!(
        parked
            .last_error
            .as_deref()
            .unwrap()
            .contains("gave up after 4 attempts"),
        "{parked:?}"
    );
    assert!(h.movements(db).await.is_empty());

    let listed = db.obole(&["intake", "failures", "--format", "json"]);
    assert!(listed.status.success(), "{}", common::stderr(&listed));
    let listed: serde_json::Value = serde_json::from_str(&common::stdout(&listed)).unwrap();
    assert_eq!(listed[0]["event"], "evt_1Orphan");
    assert!(listed[0]["error"]
        .as_str()
        .unwrap()
        .contains("No such charge"));

    let retried = db.obole(&["intake", "retry", "evt_1Orphan"]);
    assert!(retried.status.success(), "{}", common::stderr(&retried));
    assert_eq!(h.status_of(db, &orphan).await, InboxStatus::Pending);
    let again = db.obole(&["intake", "retry", "evt_1Orphan"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "only a parked event can be retried"
    );
    h.server.shutdown().await;
}

/// Starts `obole serve` as its own process against `db`, posting with one Stripe object at a
/// time; returns it once ready.
async fn serve_process(db: &TestDb, sim_base: &str) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_obole"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--intake-concurrency",
            "1",
        ])
        .env("OBOLE_DATABASE_URL", &db.url)
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("STRIPE_SECRET_KEY", KEY)
        .env("STRIPE_API_BASE", sim_base)
        .env("STRIPE_API_RATE", "0")
        .env("STRIPE_CAMPAIGN", CAMPAIGN)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status() == 200 {
                return (child, base);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("obole serve did not become ready");
}

async fn the_worker_killed_between_two_events_loses_nothing_and_posts_nothing_twice(db: &TestDb) {
    let campaign = db.campaign(CAMPAIGN).await;
    let sim = StripeSim::new(1_764_012_000);
    let sim_base = sim.serve().await.unwrap();
    // Slow Stripe answers spread the worker's posts out, so the kill lands between them.
    sim.set_latency(Duration::from_millis(40));
    let (mut server, base) = serve_process(db, &sim_base).await;
    let mut events = Vec::new();
    for n in 0..20 {
        events.extend(
            sim.donate(&Gift::new(1000 + n, CAMPAIGN, &format!("d{n}@example.fr")))
                .events,
        );
    }
    let client = reqwest::Client::new();
    for event in &events {
        let now = chrono::Utc::now().timestamp();
        let response = client
            .post(format!("{base}/webhooks/stripe"))
            .header("Stripe-Signature", event.signature(&[SECRET], now))
            .body(event.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let posted = || async {
        db.store
            .sourced_postings(campaign.id, "stripe:")
            .await
            .unwrap()
            .len()
            / 3
    };
    while posted().await < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let at_kill = posted().await;
    let pending = db
        .store
        .stripe_events_with_status(InboxStatus::Pending, 1000)
        .await
        .unwrap();
    assert!(at_kill < 20, "killed mid-way, after {at_kill} of 20 gifts");
    assert!(
        !pending.is_empty(),
        "some events were acknowledged but not yet settled"
    );

    sim.set_latency(Duration::ZERO);
    let (mut restarted, _) = serve_process(db, &sim_base).await;
    for _ in 0..400 {
        if db
            .store
            .stripe_events_with_status(InboxStatus::Pending, 1)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    for event in &events {
        let stored = db.store.stripe_event(&event.id).await.unwrap().unwrap();
        assert_eq!(
            stored.status,
            InboxStatus::Posted,
            "{} {}",
            event.id,
            event.kind
        );
    }
    let postings = db
        .store
        .sourced_postings(campaign.id, "stripe:")
        .await
        .unwrap();
    let mut sources: Vec<&String> = postings.iter().map(|(s, _, _)| s).collect();
    sources.dedup();
    assert_eq!(sources.len(), 20, "every gift once");
    assert_eq!(postings.len(), 60, "three postings each, none twice");
    let income: i64 = postings
        .iter()
        .filter(|(_, account, _)| account == "income:donations")
        .map(|(_, _, amount)| amount)
        .sum();
    assert_eq!(income, -(0..20).map(|n| 1000 + n).sum::<i64>());
}

/// A Checkout session's event that arrives after its payment posted asks Stripe nothing: the
/// session's id and the donor's custom fields are recorded from its verified snapshot. A
/// refund's events still ask.
async fn events_after_the_payment_posted_ask_stripe_nothing_new(db: &TestDb) {
    let h = harness(db).await;
    let gift = h
        .sim
        .donate(&Gift::new(2500, CAMPAIGN, "marie.dupont@example.fr"));
    let (session, payment): (Vec<SimEvent>, Vec<SimEvent>) = gift
        .events
        .iter()
        .cloned()
        .partition(|e| e.kind == "checkout.session.completed");
    h.deliver(db, &payment).await;
    h.settle(db).await;
    let calls = h.sim.seen().len();
    let recorded = recorded_contribution(db, &gift.charge).await;
    assert_eq!(recorded.checkout_session_id, None);
    assert_eq!(recorded.custom_fields, None);

    h.deliver(db, &session).await;
    h.settle(db).await;
    assert_eq!(
        h.sim.seen().len(),
        calls,
        "no Stripe call for what is known"
    );
    assert_session_recorded(
        &recorded_contribution(db, &gift.charge).await,
        &gift.session,
    );

    let (_, refund) = h.sim.refund(&gift.charge, 1000);
    h.deliver(db, &refund).await;
    h.settle(db).await;
    assert!(h.sim.seen().len() > calls, "a refund is fetched");
    assert_eq!(h.movements(db).await.len(), 2);
    h.server.shutdown().await;
}

on_both_stores!(
    events_after_the_payment_posted_ask_stripe_nothing_new,
    the_worker_killed_between_two_events_loses_nothing_and_posts_nothing_twice,
    a_donations_whole_life_ends_with_the_right_balance_on_every_account,
    the_same_event_delivered_twenty_times_posts_once,
    different_events_for_one_money_movement_post_it_once,
    every_order_of_a_donations_events_ends_in_the_same_ledger,
    a_capture_not_yet_settled_is_retried_until_its_fee_is_known,
    a_payment_naming_no_campaign_goes_to_the_accounts_campaign_for_review,
    an_event_that_keeps_failing_is_parked_listed_and_can_be_retried,
);
