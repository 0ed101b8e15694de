//! `POST /webhooks/stripe` on the real server, both stores, with events signed at test time:
//! genuine events are stored raw once and acknowledged; everything else is refused with a
//! reason and leaves nothing behind.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Running, TestDb};
use obole::provider::stripe::signature::sign;
use obole::provider::stripe::StripeSettings;
use serde_json::{json, Value};

on_both_stores!(
    a_genuine_event_is_stored_raw_and_acknowledged,
    twenty_deliveries_of_one_event_store_it_once,
    concurrent_deliveries_of_many_events_each_get_their_own_answer,
    unknown_types_are_acknowledged_and_kept_as_ignored,
    forged_stale_and_unsigned_requests_leave_nothing,
    either_secret_is_accepted_while_rolling,
    signed_bodies_that_are_not_events_are_refused,
    events_of_the_other_mode_are_refused,
    oversized_bodies_are_refused,
    a_server_without_secrets_refuses_webhooks,
);

const SECRET: &str = "whsec_test_obole";

/// A snapshot event in Stripe's shape (API 2026-09-30.endive), for a charge refunded in part.
fn event(id: &str, kind: &str, livemode: bool) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "id": id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": 1_764_012_345,
        "data": {
            "object": {
                "id": "ch_3SXyTestCharge0001",
                "object": "charge",
                "amount": 2500,
                "amount_refunded": 1000,
                "balance_transaction": "txn_3SXyTestTxn0001",
                "currency": "eur",
                "livemode": livemode,
                "metadata": { "campaign": "dupont-2027", "donation_id": "don_0001" },
                "payment_intent": "pi_3SXyTestPi0001",
                "refunded": false
            },
            "previous_attributes": { "amount_refunded": 0 }
        },
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind
    }))
    .unwrap()
}

async fn start(db: &TestDb, secrets: Option<&str>, key: Option<&str>) -> Running {
    Running::start(
        db,
        false,
        StripeSettings::new(secrets, key, 300, None).unwrap(),
        64 * 1024,
    )
    .await
}

fn now(db: &TestDb) -> i64 {
    use obole::clock::Clock;
    db.clock.now().timestamp()
}

async fn deliver(server: &Running, body: Vec<u8>, signature: Option<String>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/stripe", server.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn a_genuine_event_is_stored_raw_and_acknowledged(db: &TestDb) {
    let server = start(db, Some(SECRET), None).await;
    let body = event("evt_1Genuine", "charge.refunded", false);
    let (status, answer) =
        deliver(&server, body.clone(), Some(sign(&body, &[SECRET], now(db)))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], false);
    assert_eq!(answer["status"], "pending");
    let stored = db
        .store
        .stripe_event("evt_1Genuine")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.payload.as_bytes(),
        body.as_slice(),
        "the raw bytes are kept exactly"
    );
    assert_eq!(stored.kind, "charge.refunded");
    assert_eq!(stored.created, 1_764_012_345);
    server.shutdown().await;
}

async fn twenty_deliveries_of_one_event_store_it_once(db: &TestDb) {
    let server = std::sync::Arc::new(start(db, Some(SECRET), None).await);
    let body = event("evt_1Repeated", "payment_intent.succeeded", false);
    let mut deliveries = Vec::new();
    for n in 0..20 {
        // Each retry carries a fresh timestamp and signature, as Stripe's do.
        let signature = sign(&body, &[SECRET], now(db) - n);
        let (server, body) = (server.clone(), body.clone());
        deliveries.push(tokio::spawn(async move {
            deliver(&server, body, Some(signature)).await
        }));
    }
    let mut first_deliveries = 0;
    for delivery in deliveries {
        let (status, answer) = delivery.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        first_deliveries += usize::from(answer["duplicate"] == false);
    }
    assert_eq!(first_deliveries, 1);
    assert!(db
        .store
        .stripe_event("evt_1Repeated")
        .await
        .unwrap()
        .is_some());
    std::sync::Arc::into_inner(server).unwrap().shutdown().await;
}

/// Concurrent deliveries are stored in shared batches (the inbox's write combiner): each
/// still gets the answer for its own event, and each event is stored once.
async fn concurrent_deliveries_of_many_events_each_get_their_own_answer(db: &TestDb) {
    let server = std::sync::Arc::new(start(db, Some(SECRET), None).await);
    let kinds = ["charge.succeeded", "customer.created"];
    let mut deliveries = Vec::new();
    for n in 0..40 {
        let id = format!("evt_1Batch{n:02}");
        let body = event(&id, kinds[n % 2], false);
        for _ in 0..2 {
            let signature = sign(&body, &[SECRET], now(db));
            let (server, body, id) = (server.clone(), body.clone(), id.clone());
            deliveries.push(tokio::spawn(async move {
                (id, deliver(&server, body, Some(signature)).await)
            }));
        }
    }
    let mut first_deliveries = std::collections::BTreeMap::new();
    for delivery in deliveries {
        let (id, (status, answer)) = delivery.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["event"], id.as_str(), "{answer}");
        let expected = if id["evt_1Batch".len()..].parse::<usize>().unwrap() % 2 == 0 {
            "pending"
        } else {
            "ignored"
        };
        assert_eq!(answer["status"], expected, "{answer}");
        *first_deliveries.entry(id).or_insert(0) += usize::from(answer["duplicate"] == false);
    }
    assert_eq!(first_deliveries.len(), 40);
    assert!(
        first_deliveries.values().all(|&n| n == 1),
        "{first_deliveries:?}"
    );
    for id in first_deliveries.keys() {
        let stored = db.store.stripe_event(id).await.unwrap().unwrap();
        assert_eq!(&stored.event_id, id);
    }
    std::sync::Arc::into_inner(server).unwrap().shutdown().await;
}

async fn unknown_types_are_acknowledged_and_kept_as_ignored(db: &TestDb) {
    let server = start(db, Some(SECRET), None).await;
    let body = event("evt_1Unknown", "customer.tax_id.created", false);
    let (status, answer) =
        deliver(&server, body.clone(), Some(sign(&body, &[SECRET], now(db)))).await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "ignored");
    let stored = db
        .store
        .stripe_event("evt_1Unknown")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, obole::intake::InboxStatus::Ignored);
    server.shutdown().await;
}

async fn forged_stale_and_unsigned_requests_leave_nothing(db: &TestDb) {
    let server = start(db, Some(SECRET), None).await;
    let body = event("evt_1Forged", "charge.refunded", false);
    let t = now(db);
    let tampered = {
        let mut b = body.clone();
        let at = b.windows(4).position(|w| w == b"2500").unwrap();
        b[at] = b'9';
        b
    };
    let cases: Vec<(Vec<u8>, Option<String>, &str)> = vec![
        (
            body.clone(),
            Some(sign(&body, &["whsec_wrong"], t)),
            "no v1 signature matches",
        ),
        (
            tampered,
            Some(sign(&body, &[SECRET], t)),
            "no v1 signature matches",
        ),
        (
            body.clone(),
            Some(sign(&body, &[SECRET], t - 301)),
            "301 s away from now",
        ),
        (
            body.clone(),
            Some(sign(&body, &[SECRET], t + 3600)),
            "away from now",
        ),
        (body.clone(), None, "no Stripe-Signature header"),
        (body.clone(), Some(format!("t={t}")), "no v1 signature"),
        (
            body.clone(),
            Some(sign(&body, &[SECRET], t).replace("v1=", "v0=")),
            "no v1 signature",
        ),
        (body.clone(), Some("garbage".into()), "malformed"),
    ];
    for (body, signature, reason) in cases {
        let (status, answer) = deliver(&server, body, signature.clone()).await;
        assert_eq!(status, 400, "{signature:?}: {answer}");
        assert_eq!(answer["code"], "bad_signature");
        assert!(
            answer["message"].as_str().unwrap().contains(reason),
            "{signature:?}: {answer}"
        );
    }
    assert!(db
        .store
        .stripe_event("evt_1Forged")
        .await
        .unwrap()
        .is_none());
    server.shutdown().await;
}

async fn either_secret_is_accepted_while_rolling(db: &TestDb) {
    let server = start(db, Some("whsec_old, whsec_new"), None).await;
    for (id, secrets) in [
        ("evt_1Old", vec!["whsec_old"]),
        ("evt_1New", vec!["whsec_new"]),
        ("evt_1Both", vec!["whsec_old", "whsec_new"]),
    ] {
        let body = event(id, "charge.refunded", false);
        let (status, answer) =
            deliver(&server, body.clone(), Some(sign(&body, &secrets, now(db)))).await;
        assert_eq!(status, 200, "{id}: {answer}");
        assert!(db.store.stripe_event(id).await.unwrap().is_some());
    }
    server.shutdown().await;
}

async fn signed_bodies_that_are_not_events_are_refused(db: &TestDb) {
    let server = start(db, Some(SECRET), None).await;
    for body in [&b"not json at all"[..], b"{\"id\":\"evt_1\"", br#"{"id":"evt_1NoData","object":"event","type":"charge.refunded","created":1,"livemode":false}"#, b"\xff\xfe\xfd"] {
        let (status, answer) = deliver(&server, body.to_vec(), Some(sign(body, &[SECRET], now(db)))).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], "bad_event");
    }
    assert!(db
        .store
        .stripe_event("evt_1NoData")
        .await
        .unwrap()
        .is_none());
    server.shutdown().await;
}

async fn events_of_the_other_mode_are_refused(db: &TestDb) {
    let test_deployment = start(db, Some(SECRET), Some("sk_test_123")).await;
    let live = event("evt_1Live", "charge.refunded", true);
    let (status, answer) = deliver(
        &test_deployment,
        live.clone(),
        Some(sign(&live, &[SECRET], now(db))),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("wrong_mode")),
        "{answer}"
    );
    test_deployment.shutdown().await;
    let live_deployment = start(db, Some(SECRET), Some("sk_live_123")).await;
    let test = event("evt_1Test", "charge.refunded", false);
    let (status, answer) = deliver(
        &live_deployment,
        test.clone(),
        Some(sign(&test, &[SECRET], now(db))),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("wrong_mode")),
        "{answer}"
    );
    let (status, _) = deliver(
        &live_deployment,
        live.clone(),
        Some(sign(&live, &[SECRET], now(db))),
    )
    .await;
    assert_eq!(status, 200);
    assert!(db.store.stripe_event("evt_1Test").await.unwrap().is_none());
    live_deployment.shutdown().await;
}

async fn oversized_bodies_are_refused(db: &TestDb) {
    let server = start(db, Some(SECRET), None).await;
    let body = vec![b' '; 65 * 1024];
    let (status, _) = deliver(&server, body.clone(), Some(sign(&body, &[SECRET], now(db)))).await;
    assert_eq!(status, 413);
    server.shutdown().await;
}

async fn a_server_without_secrets_refuses_webhooks(db: &TestDb) {
    let server = start(db, None, None).await;
    let body = event("evt_1Unconfigured", "charge.refunded", false);
    let (status, answer) =
        deliver(&server, body.clone(), Some(sign(&body, &[SECRET], now(db)))).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (503, Some("webhooks_not_configured"))
    );
    assert!(db
        .store
        .stripe_event("evt_1Unconfigured")
        .await
        .unwrap()
        .is_none());
    server.shutdown().await;
}
