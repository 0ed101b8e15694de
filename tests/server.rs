//! The real server on a random port, and the `obole` binary as an operator meets it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{obole_with_url, start_time, stderr, stdout, Running, TestDb};
use obole::ids::IdempotencyKey;
use obole::journal;
use obole::ledger::EntryDraft;
use obole::money::{Currency, Money};
use obole::provider::stripe::StripeSettings;

on_both_stores!(
    health_readiness_and_metrics_answer,
    oversized_bodies_and_unknown_paths_get_clear_errors,
    shutdown_seals_what_is_queued,
    campaigns_are_created_and_listed_from_the_command_line,
    the_demo_starts_with_a_verifiable_campaign,
);

async fn serve(db: &TestDb, demo: bool) -> Running {
    Running::start(
        db,
        demo,
        StripeSettings::new(None, None, 300, None).unwrap(),
        1024,
    )
    .await
}

async fn health_readiness_and_metrics_answer(db: &TestDb) {
    let server = serve(db, false).await;
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready: serde_json::Value = http
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["store"],
        if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("obole_seal_sequence 0"), "{metrics}");
    server.shutdown().await;
}

async fn oversized_bodies_and_unknown_paths_get_clear_errors(db: &TestDb) {
    let server = serve(db, false).await;
    let http = reqwest::Client::new();
    let big = http
        .post(format!("{}/healthz", server.base))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let missing = http
        .get(format!("{}/no/such/page", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    server.shutdown().await;
}

async fn shutdown_seals_what_is_queued(db: &TestDb) {
    let c = db.campaign("shutdown").await;
    let server = serve(db, false).await;
    let eur = |m| Money::from_minor(m, Currency::EUR);
    for n in 0..20 {
        let draft = EntryDraft::new(
            IdempotencyKey::parse(format!("g{n}")).unwrap(),
            "gift",
            start_time(),
        )
        .post("assets:stripe", eur(500))
        .post("income:donations", eur(-500));
        journal::record(&db.store, db.clock.as_ref(), &c, draft)
            .await
            .unwrap();
    }
    server.shutdown().await;
    let status = db.store.seal_status().await.unwrap();
    assert_eq!((status.head.sequence, status.unsealed), (20, 0));
}

async fn campaigns_are_created_and_listed_from_the_command_line(db: &TestDb) {
    let create = |slug: &str, currency: &str, tz: &str| {
        db.obole(&[
            "campaign",
            "create",
            "--slug",
            slug,
            "--name",
            "Smith for Congress",
            "--rules",
            "us-federal-candidate-2025-2026",
            "--currency",
            currency,
            "--timezone",
            tz,
            "--election",
            "2026-general",
        ])
    };
    let out = create("smith-2026", "USD", "America/New_York");
    assert!(out.status.success(), "{}", stderr(&out));
    let again = create("smith-2026", "USD", "America/New_York");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    let bad_tz = create("jones-2026", "USD", "America/Gotham");
    assert!(
        stderr(&bad_tz).contains("unknown time zone"),
        "{}",
        stderr(&bad_tz)
    );
    let bad_currency = create("jones-2026", "USX", "America/New_York");
    assert!(
        stderr(&bad_currency).contains("unknown or unsupported currency"),
        "{}",
        stderr(&bad_currency)
    );
    let no_election = db.obole(&[
        "campaign",
        "create",
        "--slug",
        "dupont-2027",
        "--name",
        "Dupont",
        "--rules",
        "fr-candidate",
        "--currency",
        "EUR",
        "--timezone",
        "Europe/Paris",
    ]);
    assert!(
        stderr(&no_election).contains("caps gifts per election: name the campaign's election"),
        "{}",
        stderr(&no_election)
    );
    let backwards = db.obole(&[
        "campaign",
        "create",
        "--slug",
        "dupont-2027",
        "--name",
        "Dupont",
        "--rules",
        "fr-candidate",
        "--currency",
        "EUR",
        "--timezone",
        "Europe/Paris",
        "--election",
        "presidentielle-2027",
        "--financing-from",
        "2027-04-30",
        "--financing-until",
        "2026-04-01",
    ]);
    assert!(
        stderr(&backwards).contains("must end on or after it starts"),
        "{}",
        stderr(&backwards)
    );
    let list = db.obole(&["campaign", "list", "--format", "json"]);
    let campaigns: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(campaigns.as_array().unwrap().len(), 1);
    assert_eq!(campaigns[0]["slug"], "smith-2026");
    assert_eq!(campaigns[0]["timezone"], "America/New_York");
    let balance = db.obole(&["balance", "--campaign", "smith-2026"]);
    assert!(balance.status.success(), "{}", stderr(&balance));
    assert!(stdout(&balance).contains("income:donations"));
    let unknown = db.obole(&["balance", "--campaign", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no campaign \"nobody\""),
        "{}",
        stderr(&unknown)
    );
    let bad_date = db.obole(&[
        "balance",
        "--campaign",
        "smith-2026",
        "--as-of",
        "31/03/2027",
    ]);
    assert!(
        stderr(&bad_date).contains("neither a date"),
        "{}",
        stderr(&bad_date)
    );
}

async fn the_demo_starts_with_a_verifiable_campaign(db: &TestDb) {
    // Twice: a restarted demo must not write anything twice.
    for _ in 0..2 {
        serve(db, true).await.shutdown().await;
    }
    // The test clock stands at start_time(); the demo's gifts come just before it.
    let out = db.obole(&[
        "balance",
        "--campaign",
        "demo",
        "--as-of",
        "2027-03-01",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let income = json["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "income:donations")
        .unwrap();
    assert_eq!(income["balance"], "4802.00");
    let verify = db.obole(&["verify"]);
    assert!(
        stdout(&verify).starts_with("ok: 5 entries"),
        "{}",
        stdout(&verify)
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = obole_with_url("sqlite://unused.db", &["campaign", "create", "--slug", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--name"), "{}", stderr(&out));
    let out = obole_with_url("sqlite://unused.db", &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unreachable_database_is_named() {
    let out = obole_with_url("postgres://obole@127.0.0.1:1/obole", &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach the database at postgres://obole@127.0.0.1:1/obole"),
        "{}",
        stderr(&out)
    );
    let out = obole_with_url("mysql://localhost/obole", &["migrate"]);
    assert!(
        stderr(&out).contains("is not understood"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_binary_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("obole.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_obole"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("OBOLE_DATABASE_URL", &url)
        .env("OBOLE_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ready = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(ready, "server did not start");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit {:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stderr);
    // Structured logs: one JSON object per line.
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{logs}"
    );
    assert!(
        logs.contains("shutdown requested") && logs.contains("\"stopped\""),
        "{logs}"
    );
}

#[test]
fn a_bad_rule_pack_stops_the_server_naming_the_file_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("obole.db").display());
    let packs = dir.path().join("packs");
    std::fs::create_dir(&packs).unwrap();
    let pack = |limit: &str| {
        format!(
            "id = \"local-pack\"\nversion = 1\ntitle = \"Local\"\ncurrency = \"EUR\"\n\n\
             [[rules]]\nid = \"cap\"\ncheck = \"cap\"\nlimit = \"{limit}\"\nscope = \"election\"\n\
             source = \"Local code, art. 1\"\neffective_from = \"2020-01-01\"\n"
        )
    };
    std::fs::write(packs.join("local-pack.toml"), pack("100.001")).unwrap();
    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--compliance-dir",
        packs.to_str().unwrap(),
    ];
    let out = obole_with_url(&url, &serve);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("local-pack.toml, rule cap: limit \"100.001\" is not an amount in EUR"),
        "{}",
        stderr(&out)
    );

    // A valid directory that lacks the pack a campaign follows is refused too.
    std::fs::write(packs.join("local-pack.toml"), pack("100.00")).unwrap();
    let create = [
        "campaign",
        "create",
        "--slug",
        "dupont",
        "--name",
        "Dupont",
        "--rules",
        "fr-candidate",
        "--currency",
        "EUR",
        "--timezone",
        "Europe/Paris",
        "--election",
        "presidentielle-2027",
    ];
    assert!(obole_with_url(&url, &create).status.success());
    let out = obole_with_url(&url, &serve);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "campaign dupont follows rule pack \"fr-candidate\", which is not loaded (loaded: local-pack)"
        ),
        "{}",
        stderr(&out)
    );
}
