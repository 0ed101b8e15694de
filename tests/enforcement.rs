//! Campaign-finance law enforced on real payments, on both stores: the real server, the
//! simulated Stripe account, signed webhooks, and the reservations of the checkout. Caps
//! add up per person (cards, emails, spellings, campaigns), net of refunds and chargebacks;
//! what passes a cap is set aside, refunded exactly once, and settled in the books.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::stripe::{harness, Harness, CAMPAIGN, SECRET};
use common::TestDb;
use obole::campaign::Campaign;
use obole::clock::Clock;
use obole::compliance::pack::Attestation;
use obole::compliance::{Declaration, Packs};
use obole::enforcement::checkout::{reserve, CheckoutVerdict, GiftRequest};
use obole::enforcement::new_donor;
use obole::intake::{identity_key, ContributionRef, GiftKey, NewContribution};
use obole::money::{Currency, Money};
use obole::provider::stripe::objects::{Address, Payer};
use obole::provider::stripe::sim::{Donation, Gift, SimEvent};

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

/// A gift of `euros` whole euros to the test campaign.
fn gift(euros: i64, email: &str) -> Gift {
    Gift::new(euros * 100, CAMPAIGN, email)
}

/// Pays `gift` at the simulated Stripe and delivers its events; waits until posted.
async fn give(h: &Harness, db: &TestDb, gift: &Gift) -> Donation {
    let donation = h.sim.donate(gift);
    h.deliver(db, &donation.events).await;
    h.settle(db).await;
    donation
}

/// Delivers what Stripe sends after Obole's own API calls (the refunds it asked for), until
/// `expected` such events have come, then waits until they are posted.
async fn deliver_stripe_replies(h: &Harness, db: &TestDb, expected: usize) -> Vec<SimEvent> {
    let mut all = Vec::new();
    for _ in 0..400 {
        let events = h.sim.take_outbox();
        h.deliver(db, &events).await;
        all.extend(events);
        if all.len() >= expected {
            break;
        }
        db.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        all.len(),
        expected,
        "events Stripe sent after Obole's calls"
    );
    h.settle(db).await;
    all
}

/// The refunds Stripe holds for a charge: (amount, Obole's owed marker).
async fn refunds_at_stripe(h: &Harness, charge: &str) -> Vec<(i64, Option<String>)> {
    let client = h.client();
    let mut refunds = Vec::new();
    for refund in client.refunds_of_charge(charge).await.unwrap() {
        let txn = client
            .balance_transaction(refund.balance_transaction.as_deref().unwrap())
            .await
            .unwrap();
        refunds.push((-txn.amount, refund.metadata.get("obole_owed").cloned()));
    }
    refunds
}

/// The balance of `account` once everything has happened, in minor units.
async fn balance(db: &TestDb, campaign: &Campaign, account: &str) -> i64 {
    db.balances(campaign.id)
        .await
        .get(account)
        .copied()
        .unwrap_or(0)
}

/// The verdict stored for the gift paid by `charge`.
async fn verdict_of(db: &TestDb, campaign: &Campaign, charge: &str) -> (String, String) {
    let contribution = db
        .store
        .contribution_by_charge(charge)
        .await
        .unwrap()
        .unwrap();
    let decision = db
        .store
        .decisions(campaign.id, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.contribution_id == Some(contribution.id))
        .expect("every posted gift has a decision");
    (decision.verdict, decision.decision)
}

/// Every stored decision replays to itself from its stored inputs.
async fn assert_decisions_replay(db: &TestDb, campaign: &Campaign) {
    let packs = Packs::embedded().unwrap();
    let decisions = db.store.decisions(campaign.id, 0, 10_000).await.unwrap();
    assert!(!decisions.is_empty());
    for d in decisions {
        obole::compliance::replay(&packs, &d.pack, d.pack_version, &d.inputs, &d.decision)
            .unwrap_or_else(|e| panic!("decision {} does not replay: {e}", d.id));
    }
}

async fn an_excess_is_set_aside_refunded_exactly_once_and_settled(db: &TestDb) {
    let h = harness(db).await;
    give(&h, db, &gift(4000, "marie@example.fr")).await;
    let second = give(&h, db, &gift(1000, "marie@example.fr")).await;

    let (verdict, decision) = verdict_of(db, &h.campaign, &second.charge).await;
    assert_eq!(verdict, "accept_part");
    assert!(
        decision.contains(r#""rule":"cap-per-election""#),
        "{decision}"
    );
    // €400 set aside with the gift, effective when it was paid: no report counts it as raised.
    let contribution = contribution_of(db, &second).await;
    let owed_key = format!("owed:{contribution}");
    assert_eq!(
        db.store
            .existing_keys(h.campaign.id, std::slice::from_ref(&owed_key))
            .await
            .unwrap(),
        vec![owed_key]
    );
    assert_eq!(balance(db, &h.campaign, "income:donations").await, -460_000);

    // The worker asked Stripe for exactly the excess; Stripe's webhooks bring it back (the
    // worker may already have seen the refund on the charge, which changes nothing).
    deliver_stripe_replies(&h, db, 2).await;
    assert_eq!(
        refunds_at_stripe(&h, &second.charge).await,
        vec![(40_000, Some(contribution.to_string()))]
    );
    assert_eq!(balance(db, &h.campaign, "liabilities:refunds_due").await, 0);
    assert_eq!(
        balance(db, &h.campaign, "income:donations:refunds").await,
        0,
        "returning an excess is not a refund of the campaign's money"
    );
    let owed = db
        .store
        .owed_refunds(Some(h.campaign.id), None, 10)
        .await
        .unwrap();
    assert_eq!(owed.len(), 1);
    assert!(owed[0].outstanding.is_zero());
    assert!(owed[0].refund_id.is_some());

    // Redelivering everything, and more worker rounds, refund nothing more.
    h.deliver(db, &second.events).await;
    h.settle(db).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.sim.take_outbox().is_empty());
    assert_eq!(refunds_at_stripe(&h, &second.charge).await.len(), 1);
    assert_decisions_replay(db, &h.campaign).await;
    h.server.shutdown().await;
}

/// What the campaign's decisions made owed, gift by gift.
async fn owed(db: &TestDb, campaign: &Campaign) -> Vec<Money> {
    db.store
        .owed_refunds(Some(campaign.id), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.amount)
        .collect()
}

async fn a_refund_stripe_fails_to_make_is_asked_again_later_and_made_once(db: &TestDb) {
    let h = harness(db).await;
    h.sim.fail_refunds(2);
    give(&h, db, &gift(4600, "lea@example.fr")).await;
    let over = give(&h, db, &gift(50, "lea@example.fr")).await;
    let contribution = contribution_of(db, &over).await;
    // Two failures, each retried after a backoff on the worker's clock, then the refund.
    deliver_stripe_replies(&h, db, 2).await;
    assert_eq!(
        refunds_at_stripe(&h, &over.charge).await,
        vec![(5_000, Some(contribution.to_string()))]
    );
    let owed = db
        .store
        .owed_refunds(Some(h.campaign.id), None, 10)
        .await
        .unwrap();
    assert_eq!(owed[0].attempts, 3);
    assert!(owed[0].outstanding.is_zero());
    let keys: Vec<_> = h
        .sim
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/v1/refunds"))
        .map(|r| r.idempotency_key)
        .collect();
    let key = Some(format!("obole-owed-{contribution}"));
    assert_eq!(
        keys,
        vec![key.clone(), key.clone(), key],
        "one key for every attempt"
    );
    h.server.shutdown().await;
}

async fn contribution_of(db: &TestDb, donation: &Donation) -> i64 {
    db.store
        .contribution_by_charge(&donation.charge)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn two_cards_and_two_emails_are_one_person(db: &TestDb) {
    let h = harness(db).await;
    let card_x = |g: Gift| Gift {
        card_fingerprint: "fp_card_x".into(),
        ..g
    };
    // Email 1 with card X; email 2 with card X (linked by the card); email 2 with card Y
    // (linked by the email). Each from a different home, so only the card and email link them.
    give(&h, db, &card_x(gift(2000, "jp@example.fr"))).await;
    give(&h, db, &card_x(gift(2000, "jean-pierre@example.org"))).await;
    let third = give(
        &h,
        db,
        &Gift {
            card_fingerprint: "fp_card_y".into(),
            ..gift(1000, "jean-pierre@example.org")
        },
    )
    .await;
    let (verdict, _) = verdict_of(db, &h.campaign, &third.charge).await;
    assert_eq!(verdict, "accept_part");
    assert_eq!(owed(db, &h.campaign).await, vec![eur(40_000)]);
    h.server.shutdown().await;
}

async fn a_name_written_differently_at_the_same_address_is_one_person(db: &TestDb) {
    let h = harness(db).await;
    let at_home = |name: &str, line1: &str, email: &str, euros: i64| Gift {
        name: name.into(),
        address_line1: line1.into(),
        ..gift(euros, email)
    };
    give(
        &h,
        db,
        &at_home(
            "Jean-Pierre DUPONT",
            "3, rue des Lilas",
            "jp1@example.fr",
            4600,
        ),
    )
    .await;
    let again = give(
        &h,
        db,
        &at_home(
            "dupont jean pierre",
            "3 Rue des Lilas",
            "jp2@example.fr",
            100,
        ),
    )
    .await;
    assert_eq!(verdict_of(db, &h.campaign, &again.charge).await.0, "refuse");
    // Another person of the same name at another address is someone else.
    let namesake = give(
        &h,
        db,
        &at_home(
            "Jean-Pierre Dupont",
            "90 avenue Foch",
            "jp3@example.fr",
            100,
        ),
    )
    .await;
    assert_ne!(
        verdict_of(db, &h.campaign, &namesake.charge).await.0,
        "refuse"
    );
    h.server.shutdown().await;
}

async fn a_refund_frees_room_and_a_chargeback_too(db: &TestDb) {
    let h = harness(db).await;
    let first = give(&h, db, &gift(4600, "claire@example.fr")).await;
    // The treasurer refunds €1,000: €1,000 of room comes back.
    let (_, refunded) = h.sim.refund(&first.charge, 100_000);
    h.deliver(db, &refunded).await;
    h.settle(db).await;
    let second = give(&h, db, &gift(1000, "claire@example.fr")).await;
    let (verdict, _) = verdict_of(db, &h.campaign, &second.charge).await;
    assert!(verdict == "accept" || verdict == "hold", "{verdict}");
    assert_eq!(balance(db, &h.campaign, "liabilities:refunds_due").await, 0);

    // Now at the cap; the bank charges the €1,000 gift back: room for it again.
    let (dispute, opened) = h.sim.dispute(&second.charge, 1500);
    h.deliver(db, &opened).await;
    h.deliver(db, &h.sim.close_dispute(&dispute, false)).await;
    h.settle(db).await;
    let third = give(&h, db, &gift(1000, "claire@example.fr")).await;
    let (verdict, _) = verdict_of(db, &h.campaign, &third.charge).await;
    assert!(verdict == "accept" || verdict == "hold", "{verdict}");
    // And nothing more.
    let fourth = give(&h, db, &gift(1, "claire@example.fr")).await;
    assert_eq!(
        verdict_of(db, &h.campaign, &fourth.charge).await.0,
        "refuse"
    );
    deliver_stripe_replies(&h, db, 2).await;
    assert_eq!(
        refunds_at_stripe(&h, &fourth.charge).await,
        vec![(100, Some(contribution_of(db, &fourth).await.to_string()))],
        "a refused gift is refunded whole"
    );
    assert_decisions_replay(db, &h.campaign).await;
    h.server.shutdown().await;
}

async fn a_won_dispute_owes_back_what_it_reinstates_over_the_cap(db: &TestDb) {
    let h = harness(db).await;
    let first = give(&h, db, &gift(4600, "louise@example.fr")).await;
    // The bank withdraws the whole gift; the donor gives €1,000 into the room that freed.
    let (dispute, opened) = h.sim.dispute(&first.charge, 1500);
    h.deliver(db, &opened).await;
    h.settle(db).await;
    let second = give(&h, db, &gift(1000, "louise@example.fr")).await;
    let (verdict, _) = verdict_of(db, &h.campaign, &second.charge).await;
    assert!(verdict == "accept" || verdict == "hold", "{verdict}");
    assert_eq!(balance(db, &h.campaign, "liabilities:refunds_due").await, 0);

    // The campaign wins the dispute: €4,600 returns, €1,000 of it over the cap.
    let closed = h.sim.close_dispute(&dispute, true);
    h.deliver(db, &closed).await;
    h.settle(db).await;
    deliver_stripe_replies(&h, db, 2).await;
    let contribution = contribution_of(db, &first).await;
    assert_eq!(
        refunds_at_stripe(&h, &first.charge).await,
        vec![(100_000, Some(contribution.to_string()))],
        "the excess the reinstatement brought is refunded from the reinstated gift"
    );
    assert_eq!(
        balance(db, &h.campaign, "income:donations").await
            + balance(db, &h.campaign, "income:donations:chargebacks").await,
        -460_000,
        "the books keep the cap"
    );
    assert_eq!(balance(db, &h.campaign, "liabilities:refunds_due").await, 0);
    let rounds: Vec<(i32, bool)> = db
        .store
        .owed_refunds(Some(h.campaign.id), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.round, o.outstanding.is_zero() && o.refund_id.is_some()))
        .collect();
    assert_eq!(
        rounds,
        vec![(1, true)],
        "a refund round of its own, settled"
    );

    // Redelivered, the reinstatement is not screened again; nothing more is refunded.
    h.deliver(db, &closed).await;
    h.settle(db).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.sim.take_outbox().is_empty());
    assert_eq!(refunds_at_stripe(&h, &first.charge).await.len(), 1);
    h.server.shutdown().await;
}

async fn the_french_cap_spans_every_candidate_of_the_election(db: &TestDb) {
    let h = harness(db).await;
    let other = db.campaign("autre-candidat").await;
    give(&h, db, &gift(4000, "paul@example.fr")).await;
    let elsewhere = give(
        &h,
        db,
        &Gift {
            campaign: Some("autre-candidat".into()),
            ..gift(1000, "paul@example.fr")
        },
    )
    .await;
    let (verdict, _) = verdict_of(db, &other, &elsewhere.charge).await;
    assert_eq!(verdict, "accept_part");
    assert_eq!(owed(db, &other).await, vec![eur(40_000)]);
    h.server.shutdown().await;
}

/// Fifty gifts of €10 from one donor who has €4,500 on the books, posted at once: ten fit.
async fn fifty_simultaneous_webhook_gifts_never_pass_the_cap(db: &TestDb) {
    let h = harness(db).await;
    give(&h, db, &gift(4500, "rush@example.fr")).await;
    let donations: Vec<Donation> = (0..50)
        .map(|_| h.sim.donate(&gift(10, "rush@example.fr")))
        .collect();
    // Every event of the fifty, delivered concurrently.
    let mut deliveries = tokio::task::JoinSet::new();
    for event in donations.iter().flat_map(|d| d.events.clone()) {
        let url = format!("{}/webhooks/stripe", h.server.base);
        let signature = event.signature(&[SECRET], db.clock.now().timestamp());
        deliveries.spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("Stripe-Signature", signature)
                .body(event.body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        });
    }
    while let Some(done) = deliveries.join_next().await {
        done.unwrap();
    }
    h.settle(db).await;

    let mut verdicts = BTreeMap::new();
    for d in &donations {
        *verdicts
            .entry(verdict_of(db, &h.campaign, &d.charge).await.0)
            .or_insert(0) += 1;
    }
    let kept = 50 - verdicts.get("refuse").copied().unwrap_or(0);
    assert_eq!(kept, 10, "{verdicts:?}");
    assert_eq!(balance(db, &h.campaign, "income:donations").await, -460_000);
    // Forty refunds, each of exactly one refused gift, each asked once.
    deliver_stripe_replies(&h, db, 80).await;
    let mut refunded = 0;
    for d in &donations {
        let refunds = refunds_at_stripe(&h, &d.charge).await;
        assert!(refunds.len() <= 1, "{refunds:?}");
        refunded += refunds.iter().map(|r| r.0).sum::<i64>();
    }
    assert_eq!(refunded, 40 * 1000);
    assert_eq!(balance(db, &h.campaign, "liabilities:refunds_due").await, 0);
    h.server.shutdown().await;
}

fn checkout<'a>(
    campaign: &'a Campaign,
    pack: &'a obole::compliance::RulePack,
    euros: i64,
) -> GiftRequest<'a> {
    let payer = Payer {
        name: Some("Rose Lambert".into()),
        email: Some("rose@example.fr".into()),
        address: Address {
            line1: Some("8 rue Mercière".into()),
            postal_code: Some("69002".into()),
            city: Some("Lyon".into()),
            country: Some("FR".into()),
            ..Address::default()
        },
        ..Payer::default()
    };
    GiftRequest {
        campaign,
        pack,
        donor: new_donor(identity_key(&payer, "checkout"), &payer),
        amount: eur(euros * 100),
        method: obole::compliance::screen::Method::Card,
        declaration: Declaration {
            nationality: Some("FR".into()),
            residence: Some("FR".into()),
            attestations: [Attestation::NaturalPerson, Attestation::OwnFunds].into(),
            ..Declaration::default()
        },
        hold_for: chrono::Duration::minutes(30),
    }
}

/// Fifty checkouts of €100 at once from a donor with €4,000 given: six are reserved; the
/// others are told how much they may still give. Expired room comes back.
async fn fifty_simultaneous_checkouts_never_reserve_past_the_cap(db: &TestDb) {
    let h = harness(db).await;
    let packs = Packs::embedded().unwrap();
    let pack = packs.get("fr-candidate").unwrap().clone();
    give(
        &h,
        db,
        &Gift {
            name: "Rose Lambert".into(),
            address_line1: "8 rue Mercière".into(),
            ..gift(4000, "rose@example.fr")
        },
    )
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let store = db.store.clone();
        let campaign = h.campaign.clone();
        let pack = pack.clone();
        let now = db.clock.now();
        tasks.spawn(async move {
            reserve(&store, &checkout(&campaign, &pack, 100), now)
                .await
                .unwrap()
                .0
        });
    }
    let mut reserved = 0;
    let mut told = Vec::new();
    while let Some(verdict) = tasks.join_next().await {
        match verdict.unwrap() {
            CheckoutVerdict::Reserved { .. } => reserved += 1,
            CheckoutVerdict::Refused { room, .. } => told.push(room),
        }
    }
    assert_eq!(reserved, 6);
    assert!(told.iter().all(|room| *room == Some(eur(0))), "{told:?}");

    // Half an hour later the reservations have expired: the room is free again.
    db.clock.advance(chrono::Duration::minutes(31));
    let (later, _) = reserve(
        &db.store,
        &checkout(&h.campaign, &pack, 600),
        db.clock.now(),
    )
    .await
    .unwrap();
    let CheckoutVerdict::Reserved { reservation_id, .. } = later else {
        panic!("expired reservations still hold room: {later:?}");
    };
    // The donor pays it; the posted gift replaces the reservation, counted once.
    let paid = give(
        &h,
        db,
        &Gift {
            name: "Rose Lambert".into(),
            address_line1: "8 rue Mercière".into(),
            metadata: vec![("reservation".into(), reservation_id.to_string())],
            ..gift(600, "rose@example.fr")
        },
    )
    .await;
    assert_eq!(verdict_of(db, &h.campaign, &paid.charge).await.0, "accept");
    let (full, _) = reserve(&db.store, &checkout(&h.campaign, &pack, 1), db.clock.now())
        .await
        .unwrap();
    assert!(matches!(full, CheckoutVerdict::Refused { .. }), "{full:?}");
    let (_, stored) = reserve(&db.store, &checkout(&h.campaign, &pack, 1), db.clock.now())
        .await
        .unwrap();
    assert_eq!(stored.verdict, "refuse");
    assert_decisions_replay(db, &h.campaign).await;
    h.server.shutdown().await;
}

/// A paid gift to `campaign` from someone with this email and card, at a home of their own.
fn paid(campaign: &Campaign, charge: &str, email: &str, card: &str) -> NewContribution {
    let payer = Payer {
        name: Some(format!("Donor {email}")),
        email: Some(email.into()),
        card_fingerprint: Some(card.into()),
        address: Address {
            line1: Some(format!("{charge} rue des Lilas")),
            postal_code: Some("75011".into()),
            country: Some("FR".into()),
            ..Address::default()
        },
        ..Payer::default()
    };
    NewContribution {
        campaign_id: campaign.id,
        donor: new_donor(identity_key(&payer, charge), &payer),
        charge_id: charge.into(),
        method: obole::compliance::screen::Method::Card,
        payment_intent_id: None,
        checkout_session_id: None,
        amount: eur(1000),
        paid_at: db_now(),
        custom_fields: None,
        declared: None,
        election: None,
        review_reason: None,
    }
}

fn db_now() -> chrono::DateTime<chrono::Utc> {
    common::start_time()
}

/// Records `gifts` in one batch, each expected to succeed.
async fn record_batch(db: &TestDb, gifts: &[NewContribution]) -> Vec<ContributionRef> {
    db.store
        .record_contributions(gifts, db_now())
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Gifts recorded in one batch end linked as if recorded one after another: a chain of
/// shared keys inside the batch (card X joins email A and B; email B's second card joins
/// it), a donor twice in the batch, a person linked to one recorded before, and a stranger.
async fn a_batch_of_gifts_links_its_donors_as_one_by_one_would(db: &TestDb) {
    let h = harness(db).await;
    let c = &h.campaign;
    let before = db
        .store
        .record_contribution(&paid(c, "ch_0", "old@example.fr", "fp_w"), db_now())
        .await
        .unwrap();
    let batch = [
        paid(c, "ch_1", "a@example.fr", "fp_x"),
        paid(c, "ch_2", "b@example.fr", "fp_y"),
        paid(c, "ch_3", "b@example.fr", "fp_x"),
        paid(c, "ch_4", "stranger@example.fr", "fp_z"),
        paid(c, "ch_5", "a@example.fr", "fp_w"),
    ];
    let recorded = record_batch(db, &batch).await;
    assert_eq!(
        recorded[1].donor_id, recorded[2].donor_id,
        "one email, one donor"
    );
    assert_eq!(
        recorded[0].donor_id, recorded[4].donor_id,
        "one email, one donor"
    );
    let person_of =
        |donor: i64| async move { db.store.person(donor).await.unwrap().unwrap().person_id };
    let joined = person_of(before.donor_id).await;
    assert_eq!(joined, before.donor_id, "the earliest donor is the person");
    for gift in [0, 1, 2, 4] {
        assert_eq!(
            person_of(recorded[gift].donor_id).await,
            joined,
            "gift {gift}"
        );
    }
    assert_eq!(
        person_of(recorded[3].donor_id).await,
        recorded[3].donor_id,
        "a stranger is their own person"
    );
    let person = db.store.person(before.donor_id).await.unwrap().unwrap();
    assert_eq!(person.donors.len(), 3);
    // Each moved donor's last move is logged, into the person it ended in.
    for donor in person.donors.iter().filter(|d| d.donor_id != joined) {
        let last = person
            .changes
            .iter()
            .rfind(|c| c.donor_id == donor.donor_id);
        assert_eq!(last.map(|c| c.to_person), Some(joined), "{donor:?}");
    }
    // Recorded again, in another batch: the same ids, nothing moves.
    let again = record_batch(db, &batch[2..]).await;
    assert_eq!(again, recorded[2..]);
    let unchanged = db.store.person(before.donor_id).await.unwrap().unwrap();
    assert_eq!(unchanged.changes.len(), person.changes.len());
    h.server.shutdown().await;
}

/// A donor keeps the details first seen and gains those it lacked; a gift that adds nothing
/// leaves the row as it was and is still recorded against it, in a batch and alone.
async fn a_returning_donor_keeps_its_details_and_gains_the_missing_ones(db: &TestDb) {
    let h = harness(db).await;
    let c = &h.campaign;
    let gift = |charge: &str, name: &str, postal_code: Option<&str>| {
        let mut gift = paid(c, charge, "same@example.fr", "fp_same");
        gift.donor.payer.name = Some(name.into());
        gift.donor.payer.address.postal_code = postal_code.map(Into::into);
        gift
    };
    let first = db
        .store
        .record_contribution(&gift("ch_1", "Jeanne Martin", None), db_now())
        .await
        .unwrap();
    let batch = [
        gift("ch_2", "J. Martin", Some("69001")),
        gift("ch_3", "Jeanne Martin", Some("13001")),
    ];
    let recorded = record_batch(db, &batch).await;
    let alone = db
        .store
        .record_contribution(&gift("ch_4", "Jeanne Martin", Some("69001")), db_now())
        .await
        .unwrap();
    for later in recorded.iter().chain([&alone]) {
        assert_eq!(later.donor_id, first.donor_id, "{later:?}");
        assert_ne!(later.contribution_id, first.contribution_id);
    }
    let person = db.store.person(first.donor_id).await.unwrap().unwrap();
    assert_eq!(person.donors.len(), 1);
    let donor = &person.donors[0];
    assert_eq!(
        donor.name.as_deref(),
        Some("Jeanne Martin"),
        "the first name kept"
    );
    assert_eq!(
        donor.postal_code.as_deref(),
        Some("69001"),
        "the missing detail gained"
    );
    assert_eq!(donor.country.as_deref(), Some("FR"));
    h.server.shutdown().await;
}

/// The worker reads a round's recorded gifts at once: each key gets its own answer, in
/// order, whatever the others are.
async fn recorded_gifts_answer_each_key_in_its_place(db: &TestDb) {
    let h = harness(db).await;
    let c = &h.campaign;
    let with_intent = |charge: &str, intent: &str| NewContribution {
        payment_intent_id: Some(intent.into()),
        ..paid(c, charge, &format!("{charge}@example.fr"), charge)
    };
    let gifts = [
        with_intent("ch_a", "pi_a"),
        with_intent("ch_b", "pi_twice"),
        with_intent("ch_c", "pi_twice"),
        paid(c, "ch_d", "d@example.fr", "fp_d"),
    ];
    let recorded = record_batch(db, &gifts).await;
    let keys = [
        GiftKey::PaymentIntent("pi_a"),
        GiftKey::Charge("ch_unknown"),
        GiftKey::PaymentIntent("pi_twice"),
        GiftKey::Charge("ch_d"),
        GiftKey::Charge("ch_a"),
        GiftKey::PaymentIntent("pi_unknown"),
    ];
    let found = db.store.recorded_gifts(&keys).await.unwrap();
    let gift_of = |n: usize| found[n].as_ref().map(|g| (g.gift, g.charge_id.as_str()));
    assert_eq!(found.len(), keys.len());
    assert_eq!(gift_of(0), Some((recorded[0], "ch_a")));
    assert_eq!(gift_of(1), None, "no such charge");
    assert_eq!(gift_of(2), None, "an intent paid twice is ambiguous");
    assert_eq!(gift_of(3), Some((recorded[3], "ch_d")));
    assert_eq!(gift_of(4), Some((recorded[0], "ch_a")));
    assert_eq!(gift_of(5), None, "no such intent");
    assert!(found.iter().flatten().all(|g| !g.decided && !g.has_session));
    assert_eq!(
        db.store
            .recorded_gift(GiftKey::Charge("ch_d"))
            .await
            .unwrap()
            .map(|g| g.gift),
        Some(recorded[3]),
        "one key alone reads the same"
    );
    assert!(db.store.recorded_gifts(&[]).await.unwrap().is_empty());
    h.server.shutdown().await;
}

on_both_stores!(
    a_batch_of_gifts_links_its_donors_as_one_by_one_would,
    a_returning_donor_keeps_its_details_and_gains_the_missing_ones,
    recorded_gifts_answer_each_key_in_its_place,
    an_excess_is_set_aside_refunded_exactly_once_and_settled,
    a_refund_stripe_fails_to_make_is_asked_again_later_and_made_once,
    two_cards_and_two_emails_are_one_person,
    a_name_written_differently_at_the_same_address_is_one_person,
    a_refund_frees_room_and_a_chargeback_too,
    a_won_dispute_owes_back_what_it_reinstates_over_the_cap,
    the_french_cap_spans_every_candidate_of_the_election,
    fifty_simultaneous_webhook_gifts_never_pass_the_cap,
    fifty_simultaneous_checkouts_never_reserve_past_the_cap,
);
