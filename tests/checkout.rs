//! The donor checkout on both stores, through the real server: the form the rule pack asks
//! for, validation and refusal before payment, anti-forgery and rate limits, the reservation
//! and the Checkout session it opens at the simulated Stripe, cancel and expiry giving the
//! room back, concurrency at the cap, and a whole gift through the offline demo provider.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::donor::{french_form, Donor, Page};
use common::stripe::{harness, harness_with, Harness, CAMPAIGN};
use common::{Running, TestDb};
use obole::campaign::NewCampaign;
use obole::checkout::guard::{CheckoutLimits, Rate};
use obole::clock::Clock;
use obole::provider::stripe::sim::CardPayment;
use obole::provider::stripe::StripeSettings;
use obole::store::CheckoutKey;
use reqwest::StatusCode;

const FORM: &str = "/donate/printemps-2026";

fn card(number: &str) -> CardPayment {
    CardPayment {
        number: number.into(),
        exp_month: 12,
        exp_year: 2030,
        cvc: "123".into(),
        name: "Jeanne Martin".into(),
        email: "jeanne@example.fr".into(),
        address_line1: "3 rue des Lilas".into(),
        postal_code: "69002".into(),
        city: "Lyon".into(),
        country: "FR".into(),
    }
}

/// The Checkout session a 303 leads to.
fn session_of(page: &Page, h: &Harness) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let prefix = format!("{}/pay/", h.sim_base);
    page.location()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{} is not the payment page", page.location()))
        .to_owned()
}

async fn reservations(db: &TestDb) -> i64 {
    db.count("SELECT count(*) FROM reservations").await
}

async fn the_form_asks_what_the_rule_pack_asks_in_the_campaigns_language(db: &TestDb) {
    let h = harness(db).await;
    let mut donor = Donor::new(&h.server.base);
    let page = donor.get(FORM).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"<html lang="fr">"#));
    for expected in [
        "Nationalité",
        r#"value="natural_person""#,
        r#"value="own_funds""#,
        "réduction d&#39;impôt sur le revenu de 66 %",
        "4\u{202f}600,00\u{a0}€",
        "art. L. 52-8 du code électoral",
    ] {
        assert!(page.body.contains(expected), "missing {expected}");
    }
    assert!(
        !page.body.contains(" checked required"),
        "an attestation comes ticked"
    );
    assert!(
        !page.body.contains("<script"),
        "no script on the donation page"
    );
    // Every input, select and checkbox has its label.
    for id in page
        .body
        .split(r#" id=""#)
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
    {
        if ["refusal", "errors"].contains(&id) || id.ends_with("-error") {
            continue;
        }
        assert!(
            page.body.contains(&format!(r#"for="{id}""#)),
            "no label for {id}"
        );
    }
    let css = donor.get("/assets/obole.css").await;
    let weight = page.body.len() + css.body.len();
    assert!(weight < 50 * 1024, "the page weighs {weight} bytes");
    let csp = page.header("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    assert!(csp.contains(&format!(
        "form-action 'self' {}",
        "https://checkout.stripe.com"
    )));
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert!(page
        .header("set-cookie")
        .contains("HttpOnly; SameSite=Strict"));

    let english = donor.get(&format!("{FORM}?lang=en")).await;
    assert!(english.body.contains("Full name") && english.body.contains("Give to"));
    assert_eq!(donor.get("/donate/no-such-campaign").await.status, 404);

    // A US federal committee's form asks for employer, occupation and four attestations (in
    // 2026: the pack's cap is the 2025-2026 cycle's).
    db.clock.advance(chrono::Duration::days(-270));
    let us = NewCampaign::parse(
        "smith-for-congress",
        "Smith for Congress",
        "us-federal-candidate-2025-2026",
        "USD",
        "America/New_York",
        Some("2026-general"),
    )
    .unwrap();
    db.store.create_campaign(&us, db.clock.now()).await.unwrap();
    let us = donor.get("/donate/smith-for-congress").await;
    assert!(us.body.contains(r#"<html lang="en">"#));
    for expected in [
        "Employer",
        "Occupation",
        "not deductible as charitable contributions",
        "$3,500.00",
        r#"value="citizen_or_permanent_resident""#,
        r#"value="not_federal_contractor""#,
        r#"value="own_card""#,
        r#"value="own_funds""#,
    ] {
        assert!(us.body.contains(expected), "missing {expected}");
    }
    h.server.shutdown().await;
}

async fn bad_input_comes_back_with_a_message_per_field_and_holds_nothing(db: &TestDb) {
    let h = harness(db).await;
    let mut donor = Donor::new(&h.server.base);
    let mut form = french_form("jeanne@", "12,345");
    form.retain(|(k, v)| !(k == "attest" && v == "own_funds"));
    let page = donor.give(CAMPAIGN, &form).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for expected in [
        r#"value="Jeanne Martin""#,
        r#"value="12,345""#,
        r#"aria-describedby="email-error""#,
        r#"id="email-error""#,
        r#"id="amount-error""#,
        r#"id="attest-own_funds-error""#,
        r##"href="#email""##,
        r#"value="natural_person" checked"#,
    ] {
        assert!(page.body.contains(expected), "missing {expected}");
    }
    assert_eq!(reservations(db).await, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM compliance_decisions").await,
        0
    );
    h.server.shutdown().await;
}

async fn a_forged_or_stale_form_is_refused(db: &TestDb) {
    let h = harness(db).await;
    let form = french_form("jeanne@example.fr", "25");
    // No token at all.
    let mut donor = Donor::new(&h.server.base);
    donor.get(FORM).await;
    assert_eq!(donor.post(FORM, &form).await.status, StatusCode::FORBIDDEN);
    // Another site posting a real token without the donor's cookie.
    let token = Donor::new(&h.server.base).get(FORM).await.form_token();
    let mut forged = form.clone();
    forged.push(("form_token".into(), token));
    let page = Donor::new(&h.server.base).post(FORM, &forged).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Le formulaire a expiré"));
    // A form left open three hours.
    let mut slow = Donor::new(&h.server.base);
    let token = slow.get(FORM).await.form_token();
    db.clock.advance(chrono::Duration::hours(3));
    let mut late = form.clone();
    late.push(("form_token".into(), token));
    assert_eq!(slow.post(FORM, &late).await.status, StatusCode::FORBIDDEN);
    assert_eq!(reservations(db).await, 0);
    h.server.shutdown().await;
}

async fn a_valid_form_holds_room_opens_checkout_and_the_payment_consumes_it(db: &TestDb) {
    let h = harness(db).await;
    let mut donor = Donor::new(&h.server.base);
    let page = donor
        .give(CAMPAIGN, &french_form("jeanne@example.fr", "25,50"))
        .await;
    let session = session_of(&page, &h);
    let opened = h.sim.session(&session).unwrap();
    assert_eq!((opened.amount, opened.currency.as_str()), (2_550, "eur"));
    assert_eq!(opened.customer_email.as_deref(), Some("jeanne@example.fr"));
    assert_eq!(opened.locale, "fr");
    let checkout = db
        .store
        .checkout(CheckoutKey::Session(&session))
        .await
        .unwrap()
        .expect("the reservation names its session");
    assert_eq!(checkout.amount.minor(), 2_550);
    let create = h
        .sim
        .seen()
        .into_iter()
        .find(|r| r.path == "/v1/checkout/sessions")
        .unwrap();
    assert_eq!(
        create.idempotency_key,
        Some(format!("obole-checkout-{}", checkout.reservation_id))
    );

    // A declined card leaves the session open; a good one pays it.
    assert!(h.sim.pay(&session, &card("4000000000000002")).is_err());
    let paid = h.sim.pay(&session, &card("4000002500000003")).unwrap();
    let completed = &paid.events[0];
    assert!(completed
        .body
        .contains(&format!(r#""reservation":"{}""#, checkout.reservation_id)));
    h.deliver(db, &paid.events).await;
    h.settle(db).await;
    let after = db
        .store
        .checkout(CheckoutKey::Session(&session))
        .await
        .unwrap()
        .unwrap();
    assert!(after.contribution_id.is_some() && after.released_at.is_some());
    let verdict = db
        .count("SELECT count(*) FROM compliance_decisions WHERE stage = 'posting' AND verdict = 'accept'")
        .await;
    assert_eq!(
        verdict, 1,
        "the declaration made at checkout reached the posting"
    );

    let thanks = donor
        .get(&format!("{FORM}/thanks?session_id={session}"))
        .await;
    assert_eq!(thanks.status, StatusCode::OK);
    assert!(thanks.body.contains("25,50\u{a0}€"));
    assert!(thanks.body.contains("enregistré dans les comptes"));
    assert!(thanks.body.contains(&format!(
        "PRINTEMPS-2026-{:07}",
        after.contribution_id.unwrap()
    )));
    assert!(
        thanks.body.contains("8,67\u{a0}€"),
        "25.50 less 66 % is 8.67"
    );
    let unknown = donor
        .get(&format!("{FORM}/thanks?session_id=cs_nope"))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    h.server.shutdown().await;
}

async fn a_gift_past_the_cap_is_refused_before_payment_with_the_room_left(db: &TestDb) {
    let h = harness(db).await;
    let mut donor = Donor::new(&h.server.base);
    let first = donor
        .give(CAMPAIGN, &french_form("jeanne@example.fr", "4500"))
        .await;
    session_of(&first, &h);
    // Same person, other email, same name and address: linked, and the open checkout counts.
    let page = donor
        .give(CAMPAIGN, &french_form("j.martin@example.org", "200"))
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Ce don ne peut pas être accepté"));
    assert!(
        page.body
            .contains("Vous pouvez encore donner 100,00\u{a0}€"),
        "{}",
        page.body
    );
    assert_eq!(reservations(db).await, 1);
    let sessions = h
        .sim
        .seen()
        .iter()
        .filter(|r| r.path == "/v1/checkout/sessions")
        .count();
    assert_eq!(sessions, 1, "no payment page for a refused gift");
    let within = donor
        .give(CAMPAIGN, &french_form("j.martin@example.org", "100"))
        .await;
    session_of(&within, &h);
    h.server.shutdown().await;
}

async fn cancel_and_expiry_give_the_room_back(db: &TestDb) {
    let h = harness(db).await;
    let mut donor = Donor::new(&h.server.base);
    let full = donor
        .give(CAMPAIGN, &french_form("jeanne@example.fr", "4600"))
        .await;
    let session = session_of(&full, &h);
    let refused = donor
        .give(CAMPAIGN, &french_form("jeanne@example.fr", "10"))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The donor turns back on the payment page: the signed link cancels.
    let cancel_url = h.sim.session(&session).unwrap().cancel_url.unwrap();
    let path = cancel_url.strip_prefix(&h.server.base).unwrap();
    let forged = path.replace("signature=", "signature=00");
    assert_eq!(donor.get(&forged).await.status, StatusCode::NOT_FOUND);
    let cancelled = donor.get(path).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert!(cancelled.body.contains("Don annulé"));
    assert_eq!(h.sim.session(&session).unwrap().status, "expired");
    assert!(h.sim.pay(&session, &card("4242424242424242")).is_err());
    let again = donor
        .give(CAMPAIGN, &french_form("jeanne@example.fr", "4600"))
        .await;
    let second = session_of(&again, &h);

    // Stripe expires the unpaid session: its event gives the room back.
    let expired = h.sim.expire_due(db.clock.now().timestamp() + 2 * 3600);
    assert_eq!(expired.len(), 1);
    h.deliver(db, &expired).await;
    h.settle(db).await;
    let released = db
        .store
        .checkout(CheckoutKey::Session(&second))
        .await
        .unwrap()
        .unwrap();
    assert!(released.released_at.is_some() && released.contribution_id.is_none());
    let once_more = donor
        .give(CAMPAIGN, &french_form("jeanne@example.fr", "4600"))
        .await;
    session_of(&once_more, &h);
    h.server.shutdown().await;
}

async fn twenty_concurrent_checkouts_of_one_donor_never_reserve_past_the_cap(db: &TestDb) {
    let h = harness(db).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let base = h.server.base.clone();
        tasks.spawn(async move {
            let mut donor = Donor::new(&base);
            donor
                .give(CAMPAIGN, &french_form("jeanne@example.fr", "500"))
                .await
                .status
        });
    }
    let mut redirected = 0;
    let mut refused = 0;
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            StatusCode::SEE_OTHER => redirected += 1,
            StatusCode::UNPROCESSABLE_ENTITY => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // 9 × 500 = 4,500 fits under 4,600; a tenth would pass it.
    assert_eq!((redirected, refused), (9, 11));
    let held = db
        .count("SELECT CAST(coalesce(sum(amount), 0) AS BIGINT) FROM reservations WHERE released_at IS NULL")
        .await;
    assert_eq!(held, 450_000);
    h.server.shutdown().await;
}

async fn card_testing_is_slowed_by_rate_limits(db: &TestDb) {
    let limits = CheckoutLimits {
        per_donor: Rate {
            max: 3,
            window: Duration::from_secs(600),
        },
        ..CheckoutLimits::default()
    };
    let h = harness_with(db, limits).await;
    let mut donor = Donor::new(&h.server.base);
    for _ in 0..3 {
        let page = donor
            .give(CAMPAIGN, &french_form("bot@example.fr", "2"))
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
    }
    let page = donor
        .give(CAMPAIGN, &french_form("bot@example.fr", "2"))
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(page.header("retry-after"), "600");
    assert!(page.body.contains("Trop de tentatives"));
    assert_eq!(reservations(db).await, 3);
    h.server.shutdown().await;
}

async fn without_a_payment_provider_the_form_says_so_and_holds_nothing(db: &TestDb) {
    db.campaign(CAMPAIGN).await;
    let stripe = StripeSettings::new(None, None, 300, None).unwrap();
    let server = Running::start(db, false, stripe, 64 * 1024).await;
    let mut donor = Donor::new(&server.base);
    let page = donor
        .give(CAMPAIGN, &french_form("jeanne@example.fr", "25"))
        .await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.body.contains("momentanément indisponible"));
    assert!(page.body.contains(r#"value="jeanne@example.fr""#));
    assert_eq!(reservations(db).await, 0);
    server.shutdown().await;
}

async fn the_demo_provider_takes_a_gift_from_form_to_ledger(db: &TestDb) {
    let stripe = StripeSettings::new(None, None, 300, None).unwrap();
    let server = Running::start(db, true, stripe, 256 * 1024).await;
    let mut donor = Donor::new(&server.base);
    let page = donor
        .give("demo", &french_form("jeanne@example.fr", "25"))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let pay_url = page.location().to_owned();
    let (demo_base, pay_path) = pay_url.split_at(pay_url.find("/pay/").unwrap());
    let mut at_stripe = Donor::new(demo_base);
    let hosted = at_stripe.get(pay_path).await;
    assert_eq!(hosted.status, StatusCode::OK);
    assert!(hosted.body.contains("MODE TEST") && hosted.body.contains("25,00\u{a0}€"));
    let pay = |number: &str| {
        [
            ("email", "jeanne@example.fr"),
            ("number", number),
            ("expiry", "12 / 30"),
            ("cvc", "123"),
            ("name", "Jeanne Martin"),
            ("line1", "3 rue des Lilas"),
            ("postal_code", "69002"),
            ("city", "Lyon"),
            ("country", "FR"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<Vec<_>>()
    };
    let declined = at_stripe.post(pay_path, &pay("4000 0000 0000 0002")).await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    assert!(declined.body.contains("Your card was declined."));
    let paid = at_stripe.post(pay_path, &pay("4242 4242 4242 4242")).await;
    assert_eq!(paid.status, StatusCode::SEE_OTHER);
    let thanks_path = paid
        .location()
        .strip_prefix(&server.base)
        .unwrap()
        .to_owned();
    let mut recorded = None;
    for _ in 0..200 {
        let thanks = donor.get(&thanks_path).await;
        assert_eq!(thanks.status, StatusCode::OK);
        if thanks.body.contains("enregistré dans les comptes") {
            recorded = Some(thanks);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let thanks = recorded.expect("the gift reached the books");
    assert!(thanks.body.contains("DEMO-"));
    let gifts = db
        .count("SELECT count(*) FROM contributions WHERE method = 'card'")
        .await;
    assert_eq!(gifts, 1);
    let accepted = db
        .count("SELECT count(*) FROM compliance_decisions WHERE stage = 'posting' AND verdict = 'accept'")
        .await;
    assert_eq!(accepted, 1);
    server.shutdown().await;
}

on_both_stores!(
    the_form_asks_what_the_rule_pack_asks_in_the_campaigns_language,
    bad_input_comes_back_with_a_message_per_field_and_holds_nothing,
    a_forged_or_stale_form_is_refused,
    a_valid_form_holds_room_opens_checkout_and_the_payment_consumes_it,
    a_gift_past_the_cap_is_refused_before_payment_with_the_room_left,
    cancel_and_expiry_give_the_room_back,
    twenty_concurrent_checkouts_of_one_donor_never_reserve_past_the_cap,
    card_testing_is_slowed_by_rate_limits,
    without_a_payment_provider_the_form_says_so_and_holds_nothing,
    the_demo_provider_takes_a_gift_from_form_to_ledger,
);
