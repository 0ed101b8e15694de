//! The `summary` report on a seeded campaign, on both stores: the as-of boundary, what is
//! owed back left out of "raised", persons counted once, CSV, the API's access rules, and a
//! seal that `obole verify` accepts.
#![allow(clippy::unwrap_used)]

mod common;

use common::{stderr, stdout, TestDb};

fn cheque(db: &TestDb, amount: &str, received: &str, reference: &str, name: &str) {
    let out = db.obole(&[
        "contribution",
        "add",
        "--campaign",
        "printemps-2027",
        "--method",
        "cheque",
        "--amount",
        amount,
        "--received",
        received,
        "--reference",
        reference,
        "--name",
        name,
        "--address-line1",
        &format!("{} rue Garibaldi", name.len()),
        "--postal-code",
        "69003",
        "--country",
        "FR",
        "--nationality",
        "FR",
        "--attest",
        "natural_person,own_funds",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn summary(db: &TestDb, as_of: &str) -> serde_json::Value {
    let out = db.obole(&[
        "report",
        "summary",
        "--campaign",
        "printemps-2027",
        "--as-of",
        as_of,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

async fn the_summary_counts_what_was_kept_by_the_date_and_each_person_once(db: &TestDb) {
    db.campaign("printemps-2027").await;
    cheque(db, "100.00", "2027-03-30", "1", "Paul Girard");
    cheque(db, "4000.00", "2027-03-31", "2", "Paul Girard");
    // Over the cap by €400: kept €500, €400 owed back.
    cheque(db, "900.00", "2027-03-31", "3", "Paul Girard");
    cheque(db, "50.00", "2027-03-31", "4", "Inès Faure");
    cheque(db, "70.00", "2027-04-01", "5", "Inès Faure");

    let march = summary(db, "2027-03-31");
    assert_eq!(march["campaign"], "printemps-2027");
    assert_eq!(march["currency"], "EUR");
    assert_eq!(
        march["as_of"], "2027-03-31T21:59:59Z",
        "end of 31 March in Paris"
    );
    assert_eq!(march["gross"], "4650.00");
    assert_eq!(march["net"], "4650.00");
    assert_eq!(march["contributions"], 4);
    assert_eq!(march["donors"], 2);
    assert_eq!(march["average_gift"], "1162.50");
    assert_eq!(march["median_gift"], "300.00");
    assert_eq!(march["cheques_to_deposit"], "5050.00");
    assert_eq!(march["owed_to_donors"], "400.00");

    let april = summary(db, "2027-04-01");
    assert_eq!(april["gross"], "4720.00");
    assert_eq!(april["contributions"], 5);
    assert_eq!(april["donors"], 2);

    // CSV: a header and one row, the columns named.
    let out = db.obole(&[
        "report",
        "summary",
        "--campaign",
        "printemps-2027",
        "--as-of",
        "2027-03-31",
        "--format",
        "csv",
    ]);
    let csv = stdout(&out);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(header.len(), row.len());
    let column = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(column("gross"), "4650.00");
    assert_eq!(column("donors"), "2");

    // The trial balance balances; the exceptions name the €400 owed back.
    let report = |kind: &str, format: &str| {
        let out = db.obole(&[
            "report",
            kind,
            "--campaign",
            "printemps-2027",
            "--as-of",
            "2027-03-31",
            "--format",
            format,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let trial: serde_json::Value = serde_json::from_str(&report("trial-balance", "json")).unwrap();
    assert_eq!(trial["total_debit"], trial["total_credit"]);
    assert_eq!(trial["total_debit"], "5050.00");
    assert!(report("trial-balance", "csv").contains("total,,5050.00,5050.00"));
    let exceptions: serde_json::Value =
        serde_json::from_str(&report("exceptions", "json")).unwrap();
    let items = exceptions["exceptions"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["kind"], "owed");
    assert_eq!(items[0]["amount"], "400.00");
    assert!(items[0]["detail"]
        .as_str()
        .unwrap()
        .contains("cap-per-election"));
    assert!(report("exceptions", "csv").starts_with("kind,reference,amount,due_by,detail\r\nowed,"));

    // The seal printed on the report verifies.
    db.obole(&["seal"]);
    let sealed = summary(db, "2027-03-31");
    let seal = format!(
        "{}:{}",
        sealed["seal"]["sequence"],
        sealed["seal"]["hash"].as_str().unwrap()
    );
    let verify = db.obole(&["verify", "--seal", &seal]);
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
}

async fn the_report_api_opens_to_the_campaigns_treasurer_and_auditor_only(db: &TestDb) {
    db.campaign("printemps-2027").await;
    db.campaign("autre-2027").await;
    cheque(db, "100.00", "2027-03-30", "1", "Paul Girard");
    let token = |campaign: &str, role: &str| {
        let out = db.obole(&["token", "create", "--campaign", campaign, "--role", role]);
        stdout(&out).trim().to_owned()
    };
    let auditor = token("printemps-2027", "auditor");
    let other = token("autre-2027", "treasurer");
    let server = common::Running::start(
        db,
        false,
        obole::provider::stripe::StripeSettings::new(None, None, 300, None).unwrap(),
        64 * 1024,
    )
    .await;
    let url = |query: &str| {
        format!(
            "{}/api/v1/campaigns/printemps-2027/reports/summary{query}",
            server.base
        )
    };
    let client = reqwest::Client::new();
    let get = |url: String, token: Option<&str>| {
        let mut request = client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get(url(""), None).await.unwrap().status(), 401);
    assert_eq!(get(url(""), Some(&other)).await.unwrap().status(), 403);
    let ok = get(url("?as_of=2027-03-31"), Some(&auditor)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["gross"], "100.00");
    let csv = get(url("?as_of=2027-03-31&format=csv"), Some(&auditor))
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(csv
        .text()
        .await
        .unwrap()
        .starts_with("campaign,currency,as_of,gross"));
    assert_eq!(
        get(url("?as_of=31/03/2027"), Some(&auditor))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        get(url("?format=pdf"), Some(&auditor))
            .await
            .unwrap()
            .status(),
        400
    );
    server.shutdown().await;
}

on_both_stores!(
    the_summary_counts_what_was_kept_by_the_date_and_each_person_once,
    the_report_api_opens_to_the_campaigns_treasurer_and_auditor_only,
);
