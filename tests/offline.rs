//! Gifts recorded by hand and the treasurer's compliance commands, through the real `obole`
//! binary on both stores: cash limits, cheques over a cap, money owed back and its deadline,
//! merging and splitting donors, and the replay of every decision.
#![allow(clippy::unwrap_used)]

mod common;

use common::{stderr, stdout, TestDb};
use obole::campaign::NewCampaign;

/// `obole contribution add` for the test campaign, with a French donor's declarations.
fn add(
    db: &TestDb,
    method: &str,
    amount: &str,
    reference: &str,
    name: &str,
) -> std::process::Output {
    db.obole(&[
        "contribution",
        "add",
        "--campaign",
        "printemps-2027",
        "--method",
        method,
        "--amount",
        amount,
        "--received",
        "2027-02-15",
        "--reference",
        reference,
        "--name",
        name,
        "--address-line1",
        &format!("{} rue de la Paix", name.len()),
        "--postal-code",
        "75002",
        "--city",
        "Paris",
        "--country",
        "FR",
        "--nationality",
        "FR",
        "--attest",
        "natural_person,own_funds",
    ])
}

fn code(output: &std::process::Output) -> i32 {
    output.status.code().unwrap()
}

async fn balance(db: &TestDb, slug: &str, account: &str) -> i64 {
    let campaign = db
        .store
        .campaign(&obole::ids::Slug::parse(slug).unwrap())
        .await
        .unwrap()
        .unwrap();
    let far = chrono::DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    db.store
        .balances(campaign.id, far)
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.account == account)
        .unwrap()
        .signed
        .minor()
}

async fn donor_of(db: &TestDb, reference: &str) -> i64 {
    db.store
        .contribution_by_charge(reference)
        .await
        .unwrap()
        .unwrap()
        .donor_id
}

async fn cash_at_150_is_taken_and_at_150_01_refused(db: &TestDb) {
    db.campaign("printemps-2027").await;
    let at_limit = add(db, "cash", "150.00", "R-001", "Anne Petit");
    assert_eq!(code(&at_limit), 0, "{}", stderr(&at_limit));
    let over = add(db, "cash", "150.01", "R-002", "Anne Petit");
    assert_eq!(code(&over), 4, "{}", stdout(&over));
    assert!(
        stderr(&over).contains("a cash gift may not exceed 150.00 EUR"),
        "{}",
        stderr(&over)
    );
    assert_eq!(balance(db, "printemps-2027", "assets:cash").await, 15_000);
    // Recording the same receipt again changes nothing.
    assert_eq!(code(&add(db, "cash", "150.00", "R-001", "Anne Petit")), 0);
    assert_eq!(balance(db, "printemps-2027", "assets:cash").await, 15_000);
}

async fn a_cheque_over_the_cap_is_owed_back_and_settled_by_the_treasurer(db: &TestDb) {
    db.campaign("printemps-2027").await;
    assert_eq!(
        code(&add(db, "cheque", "4000.00", "C-1", "Louis Martin")),
        0
    );
    let over = add(db, "cheque", "1000.00", "C-2", "MARTIN Louis");
    assert_eq!(code(&over), 0, "{}", stderr(&over));
    assert!(
        stdout(&over).contains("400.00 EUR passes a limit"),
        "{}",
        stdout(&over)
    );
    assert_eq!(
        balance(db, "printemps-2027", "liabilities:refunds_due").await,
        -40_000
    );
    let contribution = db
        .store
        .contribution_by_charge("printemps-2027/cheque:C-2")
        .await
        .unwrap()
        .unwrap()
        .id;
    let owed = db.obole(&["compliance", "owed", "--campaign", "printemps-2027"]);
    assert!(
        stdout(&owed).contains("outstanding 400.00 EUR"),
        "{}",
        stdout(&owed)
    );

    // More than is owed is refused; the €400 cheque sent back settles it.
    let settle = |amount: &str| {
        db.obole(&[
            "compliance",
            "settle",
            "--campaign",
            "printemps-2027",
            "--contribution",
            &contribution.to_string(),
            "--amount",
            amount,
            "--from",
            "cheques",
            "--reference",
            "back-C-2",
            "--returned",
            "2027-02-20",
        ])
    };
    assert_eq!(code(&settle("400.01")), 1);
    let settled = settle("400.00");
    assert_eq!(code(&settled), 0, "{}", stderr(&settled));
    assert_eq!(
        balance(db, "printemps-2027", "liabilities:refunds_due").await,
        0
    );
    assert_eq!(
        balance(db, "printemps-2027", "assets:cheques").await,
        460_000
    );
    let owed = db.obole(&["compliance", "owed", "--campaign", "printemps-2027"]);
    assert!(stdout(&owed).contains("settled"), "{}", stdout(&owed));
    let replay = db.obole(&["compliance", "replay", "--campaign", "printemps-2027"]);
    assert_eq!(code(&replay), 0, "{}", stdout(&replay));
    assert!(stdout(&replay).contains("0 differ"));
}

async fn merging_donors_adds_their_gifts_up_and_splitting_separates_them(db: &TestDb) {
    db.campaign("printemps-2027").await;
    assert_eq!(
        code(&add(db, "cheque", "3000.00", "M-1", "Sophie Bernard")),
        0
    );
    assert_eq!(
        code(&add(db, "cheque", "3000.00", "M-2", "Sophie Durand")),
        0
    );
    let (a, b) = (
        donor_of(db, "printemps-2027/cheque:M-1").await,
        donor_of(db, "printemps-2027/cheque:M-2").await,
    );
    // The treasurer learns Mme Bernard and Mme Durand are one person (a married name).
    let merge = db.obole(&[
        "donor",
        "merge",
        "--donor",
        &b.to_string(),
        "--into",
        &a.to_string(),
        "--reason",
        "married name; same person per ID check",
    ]);
    assert_eq!(code(&merge), 0, "{}", stderr(&merge));
    let refused = add(db, "cheque", "100.00", "M-3", "Sophie Bernard");
    assert_eq!(code(&refused), 4, "{}", stdout(&refused));
    let show = db.obole(&["donor", "show", "--donor", &a.to_string()]);
    assert!(stdout(&show).contains("merge"), "{}", stdout(&show));
    assert!(stdout(&show).contains("married name"));

    let split = db.obole(&[
        "donor",
        "split",
        "--donor",
        &b.to_string(),
        "--reason",
        "the ID check was wrong",
    ]);
    assert_eq!(code(&split), 0, "{}", stderr(&split));
    let accepted = add(db, "cheque", "100.00", "M-4", "Sophie Bernard");
    assert_eq!(code(&accepted), 0, "{}", stderr(&accepted));
    assert!(
        stdout(&accepted).contains("accept"),
        "{}",
        stdout(&accepted)
    );
}

/// A US committee: the primary and the general are separate elections; an excess not
/// refunded within 60 days is overdue.
async fn us_primary_and_general_are_separate_and_an_old_excess_is_overdue(db: &TestDb) {
    let new = NewCampaign::parse(
        "smith-2026",
        "Smith for Congress",
        "us-federal-candidate-2025-2026",
        "USD",
        "America/New_York",
        Some("2026-primary"),
    )
    .unwrap();
    db.store
        .create_campaign(&new, common::start_time())
        .await
        .unwrap();
    let give = |amount: &str, reference: &str, received: &str, election: Option<&str>| {
        let mut args = vec![
            "contribution",
            "add",
            "--campaign",
            "smith-2026",
            "--method",
            "cheque",
            "--amount",
            amount,
            "--received",
            received,
            "--reference",
            reference,
            "--name",
            "John Q. Public",
            "--address-line1",
            "1 Main St",
            "--postal-code",
            "20001",
            "--country",
            "US",
            "--nationality",
            "US",
            "--employer",
            "Acme",
            "--occupation",
            "Engineer",
            "--attest",
            "citizen_or_permanent_resident,own_funds,not_federal_contractor,own_card",
        ];
        if let Some(election) = election {
            args.extend(["--election", election]);
        }
        db.obole(&args)
    };
    assert_eq!(code(&give("3000.00", "101", "2026-03-01", None)), 0);
    let general = give("3500.00", "102", "2026-03-02", Some("2026-general"));
    assert_eq!(code(&general), 0, "{}", stderr(&general));
    assert!(
        stdout(&general).contains(": accept"),
        "{}",
        stdout(&general)
    );
    let excess = give("1000.00", "103", "2026-03-03", None);
    assert!(
        stdout(&excess).contains("500.00 USD passes a limit"),
        "{}",
        stdout(&excess)
    );
    // 2026-03-03 + 60 days is long past (the CLI runs on today's clock).
    let owed = db.obole(&["compliance", "owed", "--campaign", "smith-2026"]);
    assert!(
        stdout(&owed).contains("OVERDUE (remedy by 2026-05-02)"),
        "{}",
        stdout(&owed)
    );
}

/// The same through `POST /api/v1/campaigns/{slug}/contributions` with a treasurer's token.
async fn the_api_records_offline_gifts_for_a_treasurer_only(db: &TestDb) {
    db.campaign("printemps-2027").await;
    db.campaign("autre-2027").await;
    let token = |campaign: &str, role: &str| {
        let out = db.obole(&["token", "create", "--campaign", campaign, "--role", role]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        stdout(&out).trim().to_owned()
    };
    let treasurer = token("printemps-2027", "treasurer");
    let auditor = token("printemps-2027", "auditor");
    let elsewhere = token("autre-2027", "treasurer");
    let server = common::Running::start(
        db,
        false,
        obole::provider::stripe::StripeSettings::new(None, None, 300, None).unwrap(),
        64 * 1024,
    )
    .await;
    let url = format!(
        "{}/api/v1/campaigns/printemps-2027/contributions",
        server.base
    );
    let gift = |amount: &str, method: &str, reference: &str| {
        serde_json::json!({
            "method": method, "amount": amount, "received": "2027-02-15", "reference": reference,
            "donor": {"name": "Hélène Roux", "email": "helene@example.fr",
                      "address": {"line1": "5 quai Saint-Vincent", "postal_code": "69001",
                                  "city": "Lyon", "country": "FR"}},
            "declaration": {"nationality": "FR", "attestations": ["natural_person", "own_funds"]}
        })
    };
    let client = reqwest::Client::new();
    let post = |token: Option<&str>, body: serde_json::Value| {
        let mut request = client.post(&url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(post(None, gift("50.00", "cheque", "A1")).await.unwrap()),
        401
    );
    assert_eq!(
        status(
            post(Some("obole_nope"), gift("50.00", "cheque", "A1"))
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(
        status(
            post(Some(&auditor), gift("50.00", "cheque", "A1"))
                .await
                .unwrap()
        ),
        403
    );
    assert_eq!(
        status(
            post(Some(&elsewhere), gift("50.00", "cheque", "A1"))
                .await
                .unwrap()
        ),
        403
    );
    assert_eq!(balance(db, "printemps-2027", "assets:cheques").await, 0);

    let recorded = post(Some(&treasurer), gift("50.00", "cheque", "A1"))
        .await
        .unwrap();
    assert_eq!(recorded.status().as_u16(), 201);
    let body: serde_json::Value = recorded.json().await.unwrap();
    assert_eq!(body["outcome"], "recorded");
    assert_eq!(body["verdict"], "accept");
    let refused = post(Some(&treasurer), gift("200.00", "cash", "A2"))
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["rule"], "cash-per-gift");
    for bad in [
        gift("50.001", "cheque", "A3"),
        gift("50.00", "card", "A3"),
        serde_json::json!({"method": "cheque"}),
    ] {
        let response = post(Some(&treasurer), bad).await.unwrap();
        assert_eq!(response.status().as_u16(), 400);
    }
    assert_eq!(balance(db, "printemps-2027", "assets:cheques").await, 5_000);
    assert_eq!(balance(db, "printemps-2027", "assets:cash").await, 0);
    server.shutdown().await;
}

on_both_stores!(
    the_api_records_offline_gifts_for_a_treasurer_only,
    cash_at_150_is_taken_and_at_150_01_refused,
    a_cheque_over_the_cap_is_owed_back_and_settled_by_the_treasurer,
    merging_donors_adds_their_gifts_up_and_splitting_separates_them,
    us_primary_and_general_are_separate_and_an_old_excess_is_overdue,
);
