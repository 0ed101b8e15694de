//! End to end in a real headless Chromium, on both stores: a donor opens the campaign's
//! page, fills it by its labels, pays on the demo provider's hosted page with Stripe's test
//! card, lands on the thanks page, and the gift is in the ledger. A screenshot of each page
//! is saved under `target/browser/`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::browser::Browser;
use common::{Running, TestDb};
use obole::provider::stripe::StripeSettings;

async fn a_donor_gives_through_the_page_and_the_demo_provider(db: &TestDb) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stripe = StripeSettings::new(None, None, 300, None).unwrap();
    let server = Running::start(db, true, stripe, 256 * 1024).await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/browser")
        .join(if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        });

    browser.goto(&format!("{}/donate/demo", server.base)).await;
    browser.wait_for("Faire un don à Demo campaign").await;
    browser.tick("27,00").await;
    browser.fill("Nom et prénom", "Jeanne Martin").await;
    browser
        .fill("Adresse électronique", "jeanne@example.fr")
        .await;
    browser.fill("Adresse", "3 rue des Lilas").await;
    browser.fill("Code postal", "69002").await;
    browser.fill("Ville", "Lyon").await;
    browser.choose("Pays de résidence", "France").await;
    browser.choose("Nationalité", "France").await;
    browser.tick("personne physique").await;
    browser.tick("fonds personnels").await;
    browser.screenshot(&shots.join("1-form.png")).await;
    browser.press("Continuer vers le paiement").await;

    // The demo provider's hosted page, as Stripe's test mode shows it.
    browser.wait_for("MODE TEST").await;
    assert!(browser.url().await.contains("/pay/cs_test_"));
    browser.fill("Numéro de carte", "4242 4242 4242 4242").await;
    browser.fill("Expiration (MM / AA)", "12 / 34").await;
    browser.fill("Cryptogramme (CVC)", "123").await;
    browser.fill("Titulaire de la carte", "Jeanne Martin").await;
    browser
        .fill("Adresse de facturation", "3 rue des Lilas")
        .await;
    browser.fill("Code postal", "69002").await;
    browser.fill("Ville", "Lyon").await;
    browser.fill("Pays (code à 2 lettres)", "FR").await;
    browser.screenshot(&shots.join("2-payment.png")).await;
    browser.press("Faire un don").await;

    browser.wait_for("Merci pour votre don").await;
    let thanks = browser.wait_for("enregistré dans les comptes").await;
    assert!(browser
        .url()
        .await
        .starts_with(&format!("{}/donate/demo/thanks", server.base)));
    assert!(thanks.contains("27,00"), "{thanks}");
    assert!(thanks.contains("DEMO-"), "{thanks}");
    browser.screenshot(&shots.join("3-thanks.png")).await;
    browser.quit().await;

    let kept = db
        .count("SELECT CAST(sum(amount) AS BIGINT) FROM contributions WHERE method = 'card'")
        .await;
    assert_eq!(kept, 2_700);
    let accepted = db
        .count("SELECT count(*) FROM compliance_decisions WHERE stage = 'posting' AND verdict = 'accept'")
        .await;
    assert_eq!(accepted, 1);
    server.shutdown().await;
}

on_both_stores!(a_donor_gives_through_the_page_and_the_demo_provider);
