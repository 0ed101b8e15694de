//! The Stripe API client against the simulated Stripe account over real HTTP: every object
//! the simulator serves parses with async-stripe's strict types, and POSTs carry their own
//! idempotency keys.
#![allow(clippy::unwrap_used)]

use obole::provider::stripe::client::StripeClient;
use obole::provider::stripe::objects::ChargeStatus;
use obole::provider::stripe::sim::{Gift, StripeSim};
use obole::provider::stripe::StripeSettings;

async fn client_for(sim: &std::sync::Arc<StripeSim>) -> StripeClient {
    paced_client_for(sim, 0).await
}

async fn paced_client_for(sim: &std::sync::Arc<StripeSim>, rate: u32) -> StripeClient {
    let base = sim.serve().await.unwrap();
    let settings = StripeSettings::new(None, Some("sk_test_sim"), 300, Some(&base))
        .unwrap()
        .with_api_rate(Some(rate));
    StripeClient::new(&settings).unwrap()
}

/// Stripe answers 429 above its rate limits; the client queues instead, across concurrent
/// callers.
#[tokio::test]
async fn calls_are_paced_under_the_configured_rate() {
    let sim = StripeSim::new(1_764_012_000);
    let donation = sim.donate(&Gift::new(2500, "printemps-2026", "marie@example.fr"));
    let paced = paced_client_for(&sim, 20).await;
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (client, charge) = (paced.clone(), donation.charge.clone());
            tokio::spawn(async move { client.charge(&charge).await.map(|c| c.id) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), donation.charge);
    }
    // Six calls at 20 a second: the last one waits five intervals of 50 ms.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.seen().len(), 6);
}

#[tokio::test]
async fn every_object_of_a_donation_reads_back() {
    let sim = StripeSim::new(1_764_012_000);
    let client = client_for(&sim).await;
    let donation = sim.donate(&Gift::new(2500, "printemps-2026", "marie@example.fr"));

    let charge = client.charge(&donation.charge).await.unwrap();
    assert_eq!(charge.status, ChargeStatus::Succeeded);
    assert_eq!((charge.amount, charge.currency.as_str()), (2500, "eur"));
    assert_eq!(
        charge.metadata.get("campaign").map(String::as_str),
        Some("printemps-2026")
    );
    assert_eq!(charge.payer.email.as_deref(), Some("marie@example.fr"));
    assert_eq!(charge.payer.card_country.as_deref(), Some("FR"));
    assert_eq!(charge.payer.address.postal_code.as_deref(), Some("69002"));
    let txn_id = charge.balance_transaction.clone().unwrap();
    let txn = client.balance_transaction(&txn_id).await.unwrap();
    assert_eq!((txn.amount, txn.fee, txn.net), (2500, 63, 2437));
    assert_eq!(txn.reporting_category, "charge");
    assert_eq!(txn.source.as_deref(), Some(donation.charge.as_str()));
    // The charge brought the same transaction expanded: one call where two would do.
    assert_eq!(charge.payment_transaction.as_ref(), Some(&txn));

    let of_intent = client
        .charges_of_payment_intent(&donation.payment_intent)
        .await
        .unwrap();
    // Listed charges come unexpanded.
    let unexpanded = obole::provider::stripe::objects::Charge {
        payment_transaction: None,
        ..charge
    };
    assert_eq!(of_intent, vec![unexpanded]);

    sim.refund(&donation.charge, 1000);
    sim.refund(&donation.charge, 500);
    let refunds = client.refunds_of_charge(&donation.charge).await.unwrap();
    assert_eq!(refunds.len(), 2);
    for refund in &refunds {
        let t = client
            .balance_transaction(refund.balance_transaction.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!((t.fee, t.reporting_category.as_str()), (0, "refund"));
    }

    let (dispute, _) = sim.dispute(&donation.charge, 2000);
    sim.close_dispute(&dispute, true);
    let disputes = client.disputes_of_charge(&donation.charge).await.unwrap();
    assert_eq!(disputes.len(), 1);
    let categories: Vec<_> = disputes[0]
        .balance_transactions
        .iter()
        .map(|t| (t.reporting_category.as_str(), t.amount, t.fee))
        .collect();
    assert_eq!(
        categories,
        vec![("dispute", -1000, 2000), ("dispute_reversal", 1000, 0)]
    );

    // The balance is negative after that dispute; another gift brings it back above zero.
    sim.donate(&Gift::new(10_000, "printemps-2026", "jean@example.fr"));
    let (payout, _) = sim.payout();
    let payout = payout.unwrap();
    let included = client
        .balance_transactions(None, Some(&payout))
        .await
        .unwrap();
    let read = client.payout(&payout).await.unwrap();
    assert_eq!(read.status, "paid");
    assert_eq!(included.iter().map(|t| t.net).sum::<i64>(), read.amount);
    sim.fail_payout(&payout);
    let failed = client.payout(&payout).await.unwrap();
    assert_eq!(failed.status, "failed");
    assert!(failed.failure_balance_transaction.is_some());

    let all = client.balance_transactions(Some(0), None).await.unwrap();
    // 2 charges, 2 refunds, dispute, reinstatement, payout, payout failure
    assert_eq!(all.len(), 8);
}

#[tokio::test]
async fn listing_pages_through_more_than_one_page() {
    let sim = StripeSim::new(1_764_012_000);
    let client = client_for(&sim).await;
    for i in 0..130 {
        sim.donate(&Gift::new(500 + i, "c", &format!("d{i}@example.org")));
    }
    let all = client.balance_transactions(Some(0), None).await.unwrap();
    assert_eq!(all.len(), 130);
    let mut ids: Vec<_> = all.iter().map(|t| t.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 130);
}

#[tokio::test]
async fn a_refund_post_carries_its_own_idempotency_key_and_replays() {
    let sim = StripeSim::new(1_764_012_000);
    let client = client_for(&sim).await;
    let donation = sim.donate(&Gift::new(2500, "c", "marie@example.fr"));
    let first = client
        .create_refund(
            &donation.charge,
            700,
            "excess:ch_1:1",
            &[("obole_owed", "1")],
        )
        .await
        .unwrap();
    let again = client
        .create_refund(
            &donation.charge,
            700,
            "excess:ch_1:1",
            &[("obole_owed", "1")],
        )
        .await
        .unwrap();
    let other = client
        .create_refund(&donation.charge, 300, "excess:ch_1:2", &[])
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(
        first.metadata.get("obole_owed").map(String::as_str),
        Some("1")
    );
    assert_ne!(first.id, other.id);
    assert_eq!(
        client
            .refunds_of_charge(&donation.charge)
            .await
            .unwrap()
            .len(),
        2
    );
    let keys: Vec<_> = sim
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(
        keys,
        vec![
            Some("excess:ch_1:1".to_owned()),
            Some("excess:ch_1:1".to_owned()),
            Some("excess:ch_1:2".to_owned())
        ]
    );
    // Each created refund sent its events (refund.created, charge.refunded).
    assert_eq!(sim.take_outbox().len(), 4);
}

/// async-stripe's own client opened a connection (and against Stripe, a TLS session) per
/// call; Obole's transport keeps them open.
#[tokio::test]
async fn calls_reuse_their_connections() {
    let sim = StripeSim::new(1_764_012_000);
    let client = client_for(&sim).await;
    let donation = sim.donate(&Gift::new(2500, "c", "m@example.org"));
    for _ in 0..20 {
        client.charge(&donation.charge).await.unwrap();
    }
    assert_eq!(sim.connections(), 1, "one after the other: one connection");
    let calls = (0..8).map(|_| client.charge(&donation.charge));
    for charge in futures_util::future::join_all(calls).await {
        assert_eq!(charge.unwrap().id, donation.charge);
    }
    assert!(sim.connections() <= 8, "{} connections", sim.connections());
    assert_eq!(sim.seen().len(), 28);
}

#[tokio::test]
async fn a_bad_key_is_an_error_not_an_empty_answer() {
    let sim = StripeSim::new(1_764_012_000);
    let base = sim.serve().await.unwrap();
    let settings = StripeSettings::new(None, Some("sk_live_wrong"), 300, Some(&base)).unwrap();
    let client = StripeClient::new(&settings).unwrap();
    let donation = sim.donate(&Gift::new(2500, "c", "m@example.org"));
    let error = client.charge(&donation.charge).await.unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
}

#[test]
fn the_default_rate_follows_the_keys_mode_and_can_be_set() {
    let rate = |key: &str, rate: Option<u32>| {
        StripeSettings::new(None, Some(key), 300, None)
            .unwrap()
            .with_api_rate(rate)
            .api_rate
    };
    assert_eq!(rate("sk_live_x", None), 40);
    assert_eq!(rate("sk_test_x", None), 20);
    assert_eq!(rate("sk_live_x", Some(5)), 5);
    assert_eq!(rate("sk_test_x", Some(0)), 0);
}
