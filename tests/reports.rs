//! Reports on seeded campaigns, on both stores: the as-of boundary in the campaign's time zone,
//! what is owed back left out of "raised", later refunds leaving earlier reports alone,
//! persons counted once across cards and emails, the donor register in a CSV parser, the API's
//! access rules and an auditor's masked view, and a seal that `obole verify` accepts.
#![allow(clippy::unwrap_used)]

mod common;

use common::stripe::harness;
use common::{stderr, stdout, TestDb};
use obole::provider::stripe::sim::Gift;

fn cheque(db: &TestDb, amount: &str, received: &str, reference: &str, name: &str) {
    let street = format!("{} rue Garibaldi", name.len());
    let out = common::cheque(db, amount, received, reference, name, &street);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `obole report KIND --format pdf --output FILE`, read back by poppler's `pdftotext`.
fn pdf_text(db: &TestDb, kind: &str, campaign: &str, as_of: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    let out = db.obole(&[
        "report",
        kind,
        "--campaign",
        campaign,
        "--as-of",
        as_of,
        "--format",
        "pdf",
        "--output",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(&path).unwrap().starts_with(b"%PDF-"));
    let text = std::process::Command::new("pdftotext")
        .args(["-layout", path.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (Debian's poppler-utils; scripts/ensure-test-tools installs it)");
    assert!(text.status.success());
    String::from_utf8(text.stdout).unwrap()
}

/// `obole verify --seal SEQ:HASH` accepts the seal `report` names.
fn assert_seal_verifies(db: &TestDb, report: &serde_json::Value) {
    let seal = format!(
        "{}:{}",
        report["seal"]["sequence"],
        report["seal"]["hash"].as_str().unwrap()
    );
    let verify = db.obole(&["verify", "--seal", &seal]);
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
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

    // The PDF prints the same figures, and the seal on its pages.
    let printed = pdf_text(db, "summary", "printemps-2027", "2027-03-31");
    for expected in [
        "Summary",
        "as of 2027-03-31 23:59:59 (Europe/Paris)",
        "gross",
        "4650.00",
        "owed_to_donors",
        "400.00",
        "Seal ",
    ] {
        assert!(printed.contains(expected), "{expected:?} in {printed}");
    }

    // The seal printed on the report verifies.
    db.obole(&["seal"]);
    assert_seal_verifies(db, &summary(db, "2027-03-31"));
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
    let pdf = get(url("?format=pdf"), Some(&auditor)).await.unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));
    assert_eq!(
        get(url("?format=xlsx"), Some(&auditor))
            .await
            .unwrap()
            .status(),
        400
    );

    // The dashboard: a sign-in page, then a session cookie that opens this campaign only.
    let treasurer = token("printemps-2027", "treasurer");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let board = format!("{}/treasurer/printemps-2027", server.base);
    let page = browser.get(&board).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains(r#"<label for="token">Access token</label>"#));
    let sign_in = |token: &str| {
        browser
            .post(format!("{board}/login"))
            .form(&[("token", token)])
            .send()
    };
    assert_eq!(sign_in("not-a-token").await.unwrap().status(), 401);
    assert_eq!(sign_in(&other).await.unwrap().status(), 403);
    let forged = browser
        .post(format!("{board}/login"))
        .header("origin", "https://evil.example")
        .form(&[("token", treasurer.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a sign-in posted from another site");
    let signed_in = sign_in(&treasurer).await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let set_cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/treasurer/printemps-2027",
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let session = set_cookie.split(';').next().unwrap().to_owned();
    let dashboard = browser
        .get(format!("{board}?as_of=2027-03-31"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    let html = dashboard.text().await.unwrap();
    for expected in [
        "100.00 EUR",
        "<svg",
        "30/03",
        "Donor register",
        "reports/donors?format=pdf",
        "signed in as treasurer",
    ] {
        assert!(html.contains(expected), "{expected:?} in {html}");
    }
    let download = |cookie: Option<&str>| {
        let mut request = browser.get(format!(
            "{board}/reports/donors?format=csv&as_of=2027-03-31"
        ));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let csv = download(Some(&session)).await.unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("printemps-2027-donors.csv"));
    assert!(csv.text().await.unwrap().contains("Girard"));
    assert_eq!(download(None).await.unwrap().status(), 401);
    // A cookie edited to name another role no longer opens anything.
    let edited = session.replace(".treasurer.", ".auditor.");
    assert_ne!(edited, session);
    assert_eq!(download(Some(&edited)).await.unwrap().status(), 401);
    let signed_out = browser
        .post(format!("{board}/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert!(signed_out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    server.shutdown().await;
}

/// `obole report KIND --campaign printemps-2026 --as-of AS_OF --format FORMAT`, its output.
fn report(db: &TestDb, kind: &str, as_of: &str, format: &str) -> String {
    let out = db.obole(&[
        "report",
        kind,
        "--campaign",
        "printemps-2026",
        "--as-of",
        as_of,
        "--format",
        format,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Unix seconds of an RFC 3339 instant.
fn unix(instant: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(instant)
        .unwrap()
        .timestamp()
}

async fn the_register_and_the_day_boundary_follow_paris_time(db: &TestDb) {
    let h = harness(db).await;
    let card_x = |g: Gift| Gift {
        card_fingerprint: "fp_card_x".into(),
        ..g
    };
    let give = |at: &str, gift: Gift| {
        h.sim.set_clock(unix(at));
        h.sim.donate(&gift)
    };
    // One person: email 1 with card X, email 2 with card X, email 2 with card Y. Paris is on
    // summer time (UTC+2) from 28 March 2027: 21:30Z is 23:30 on 31 March, 22:10Z is 00:10 on
    // 1 April.
    let first = give(
        "2027-03-31T21:30:00Z",
        card_x(Gift::new(10_000, "printemps-2026", "marie@example.fr")),
    );
    let second = give(
        "2027-03-31T21:40:00Z",
        card_x(Gift::new(5_000, "printemps-2026", "m.dupont@example.org")),
    );
    let third = give(
        "2027-03-31T22:10:00Z",
        Gift {
            card_fingerprint: "fp_card_y".into(),
            ..Gift::new(3_000, "printemps-2026", "m.dupont@example.org")
        },
    );
    let other = give(
        "2027-03-31T10:00:00Z",
        Gift {
            name: "Inès Faure".into(),
            ..Gift::new(2_000, "printemps-2026", "ines@example.fr")
        },
    );
    for donation in [&first, &second, &third, &other] {
        h.deliver(db, &donation.events).await;
    }
    h.settle(db).await;
    // A payout on 2 April, of everything at Stripe; a refund on 5 April.
    h.sim.set_clock(unix("2027-04-02T06:00:00Z"));
    let (payout, paid) = h.sim.payout();
    h.deliver(db, &paid).await;
    h.settle(db).await;
    // A refund on 5 April.
    h.sim.set_clock(unix("2027-04-05T09:00:00Z"));
    let (_, refunded) = h.sim.refund(&first.charge, 2_000);
    h.deliver(db, &refunded).await;
    h.settle(db).await;

    let march = json(&report(db, "summary", "2027-03-31", "json"));
    assert_eq!(march["as_of"], "2027-03-31T21:59:59Z");
    assert_eq!(
        march["gross"], "170.00",
        "23:30 on 31 March is in, 00:10 on 1 April is not"
    );
    assert_eq!(march["contributions"], 3);
    assert_eq!(march["donors"], 2);
    assert_eq!(
        march["refunded"], "0.00",
        "April's refund leaves March alone"
    );
    let april = json(&report(db, "summary", "2027-04-01", "json"));
    assert_eq!(april["gross"], "200.00");
    assert_eq!(
        april["donors"], 2,
        "three gifts, two emails, two cards: one person"
    );
    assert_eq!(april["refunded"], "0.00");
    let later = json(&report(db, "summary", "2027-04-30", "json"));
    assert_eq!(later["refunded"], "20.00");
    assert_eq!(later["net"], "180.00");

    // The register as of 31 March, in a CSV parser: the CNCCFP's columns, one row per gift,
    // the person's two gifts added up, then the seal's row.
    let text = report(db, "donors", "2027-03-31", "csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    for column in [
        "numero_recu",
        "date_don",
        "nom",
        "prenom",
        "montant_verse",
        "cumul_election",
        "reduction_impot_66",
        "donateur",
    ] {
        assert!(
            headers.iter().any(|h| h == column),
            "{column} in {headers:?}"
        );
    }
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4, "{text}");
    let cell = |row: &csv::StringRecord, name: &str| {
        row[headers.iter().position(|h| h == name).unwrap()].to_owned()
    };
    let marie: Vec<&csv::StringRecord> =
        rows.iter().filter(|r| cell(r, "nom") == "Dupont").collect();
    assert_eq!(marie.len(), 2);
    assert_eq!(cell(marie[0], "donateur"), cell(marie[1], "donateur"));
    assert_eq!(cell(marie[0], "date_don"), "2027-03-31");
    assert_eq!(cell(marie[1], "cumul_election"), "150.00");
    assert_eq!(cell(marie[0], "reduction_impot_66"), "66.00");
    assert!(cell(marie[0], "numero_recu").starts_with("PRINTEMPS-2026-"));
    assert_eq!(cell(&rows[3], "numero_recu"), "#seal");

    let printed = pdf_text(db, "donors", "printemps-2026", "2027-03-31");
    for expected in ["Donor register", "Dupont", "Faure", "150.00", "Seal "] {
        assert!(printed.contains(expected), "{expected:?} in {printed}");
    }

    // As of the end of April, in JSON: one person, three gifts, the refund netted.
    let register = json(&report(db, "donors", "2027-04-30", "json"));
    let persons = register["donors"].as_array().unwrap();
    assert_eq!(persons.len(), 2);
    let marie = persons
        .iter()
        .find(|p| p["gifts"].as_array().unwrap().len() == 3)
        .unwrap();
    assert_eq!(marie["aggregates"]["test-2027"], "160.00");
    assert_eq!(marie["gifts"][0]["kept"], "80.00");
    assert_eq!(register["totals"]["received"], "200.00");
    assert_eq!(register["totals"]["kept"], "180.00");
    assert_eq!(register["totals"]["receipts"], 4);

    // The journal as of 31 March, as the FEC: the three gifts' entries, balanced, the
    // income under the French chart's gifts account, nothing of April.
    let fec = report(db, "journal", "2027-03-31", "csv");
    let mut reader = csv::Reader::from_reader(fec.as_bytes());
    assert_eq!(&reader.headers().unwrap()[0], "JournalCode");
    let lines: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let (seal_row, postings) = lines.split_last().unwrap();
    assert_eq!(&seal_row[0], "#seal");
    assert_eq!(&seal_row[11], &seal_row[12], "debits equal credits");
    let mut income: Vec<&str> = postings
        .iter()
        .filter(|r| &r[4] == "754100")
        .map(|r| &r[12])
        .collect();
    income.sort_unstable();
    assert_eq!(income, ["100,00", "20,00", "50,00"]);
    assert!(postings.iter().all(|r| r[3].starts_with("202703")), "{fec}");
    let journal = json(&report(db, "journal", "2027-04-30", "json"));
    assert_eq!(journal["totals"]["debit"], journal["totals"]["credit"]);
    assert!(journal["entries"].as_array().unwrap().len() > postings.len() / 3);

    // The payout is the gifts less Stripe's fees; April's refund waits for the next one.
    let reconciliation = json(&report(db, "reconciliation", "2027-04-30", "json"));
    let rows = reconciliation["payouts"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{reconciliation}");
    assert_eq!(rows[0]["payout"], payout.unwrap().as_str());
    assert_eq!(rows[0]["gifts"], "200.00");
    let fees = rust_decimal::Decimal::from_str_exact(rows[0]["fees"].as_str().unwrap()).unwrap();
    let paid_out =
        rust_decimal::Decimal::from_str_exact(rows[0]["payout_amount"].as_str().unwrap()).unwrap();
    assert!(fees > rust_decimal::Decimal::ZERO);
    assert_eq!(paid_out + fees, rust_decimal::Decimal::new(20_000, 2));
    assert_eq!(
        (&rows[0]["closing"], &rows[0]["other"]),
        (&"0.00".into(), &"0.00".into())
    );
    assert_eq!(rows[1]["payout"], "not paid out yet");
    assert_eq!(rows[1]["refunds"], "20.00");
    assert_eq!(rows[1]["closing"], "-20.00");

    // Over the API: the treasurer sees the donors, an auditor sees pseudonyms.
    let token = |role: &str| {
        let out = db.obole(&[
            "token",
            "create",
            "--campaign",
            "printemps-2026",
            "--role",
            role,
        ]);
        stdout(&out).trim().to_owned()
    };
    let client = reqwest::Client::new();
    let url = format!(
        "{}/api/v1/campaigns/printemps-2026/reports/donors?as_of=2027-04-30&format=csv",
        h.server.base
    );
    let fetch = |token: String| client.get(&url).bearer_auth(token).send();
    let treasurer = fetch(token("treasurer")).await.unwrap();
    assert_eq!(treasurer.status(), 200);
    let full = treasurer.text().await.unwrap();
    assert!(full.contains("Dupont") && full.contains("#seal"), "{full}");
    let masked = fetch(token("auditor")).await.unwrap().text().await.unwrap();
    assert!(
        !masked.contains("Dupont") && !masked.contains("Lyon"),
        "{masked}"
    );
    assert!(masked.contains(",80.00,"), "amounts stay: {masked}");

    // Sealed, the register reads the same (from the gifts' sealed movements, no longer from
    // the queue), and the seal it names verifies.
    db.obole(&["seal"]);
    let sealed = json(&report(db, "donors", "2027-04-30", "json"));
    assert_eq!(sealed["donors"], register["donors"]);
    assert_eq!(sealed["totals"], register["totals"]);
    assert_seal_verifies(db, &sealed);
    h.server.shutdown().await;
}

/// Money left at Stripe with no payout for two weeks, and a movement at Stripe that is no
/// gift, refund, dispute, fee or payout, are on the exceptions report; neither before.
async fn stripe_money_unpaid_or_unexplained_is_an_exception(db: &TestDb) {
    use obole::ledger::{Entry, EntryDraft};
    use obole::money::{Currency, Money};
    let campaign = db.campaign("printemps-2027").await;
    let eur = |minor| Money::from_minor(minor, Currency::EUR);
    let at = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let post = |key: &str, when: &str, other: &str| {
        Entry::new(
            &campaign,
            EntryDraft::new(
                obole::ids::IdempotencyKey::parse(key).unwrap(),
                format!("test {key}"),
                at(when),
            )
            .post("assets:stripe", eur(4_000))
            .post(other, eur(-4_000)),
        )
        .unwrap()
    };
    // A gift's money at Stripe on 1 March, explained.
    db.store
        .post(
            &post("gift", "2027-03-01T10:00:00Z", "income:donations"),
            at("2027-03-01T10:00:00Z"),
        )
        .await
        .unwrap();
    let kinds = |as_of: &str| -> Vec<(String, String)> {
        let out = db.obole(&[
            "report",
            "exceptions",
            "--campaign",
            "printemps-2027",
            "--as-of",
            as_of,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        report["exceptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_owned(),
                    e["amount"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(kinds("2027-03-10"), vec![], "nine days at Stripe is normal");
    assert_eq!(
        kinds("2027-03-20"),
        vec![("not_paid_out".to_owned(), "40.00".to_owned())]
    );
    // Cash booked into Stripe's account: nothing explains it.
    db.store
        .post(
            &post("odd", "2027-03-21T10:00:00Z", "assets:cash"),
            at("2027-03-21T10:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        kinds("2027-03-22"),
        vec![
            ("unreconciled".to_owned(), "40.00".to_owned()),
            ("not_paid_out".to_owned(), "80.00".to_owned())
        ]
    );
    assert_eq!(kinds("2027-03-20").len(), 1, "not before it moved");
}

on_both_stores!(
    stripe_money_unpaid_or_unexplained_is_an_exception,
    the_summary_counts_what_was_kept_by_the_date_and_each_person_once,
    the_report_api_opens_to_the_campaigns_treasurer_and_auditor_only,
    the_register_and_the_day_boundary_follow_paris_time,
);
