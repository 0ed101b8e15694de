//! Test support: a fresh database per test on each store, and `on_both_stores!`, which
//! turns one scenario into a `sqlite::name` and a `postgres::name` test.
//!
//! PostgreSQL tests need `OBOLE_TEST_POSTGRES_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates its own database there.
//! Without it they are skipped with a notice, unless `OBOLE_REQUIRE_POSTGRES=1`, which
//! makes a missing or unreachable server a failure (CI sets it).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use obole::app::{App, ServeSettings};
use obole::campaign::{Campaign, NewCampaign};
use obole::clock::ManualClock;
use obole::http::Limits;
use obole::ids::CampaignId;
use obole::intake::worker::WorkerOptions;
use obole::provider::stripe::StripeSettings;
use obole::store::{Store, StoreOptions};
use sqlx::{Connection, Executor};
use tokio::sync::oneshot;

pub mod browser;
pub mod donor;
pub mod rng;
pub mod stripe;

pub struct TestDb {
    pub url: String,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    /// Keeps the SQLite file's directory alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
    /// (admin URL, database name) of a PostgreSQL test database, dropped at `finish`.
    pg: Option<(String, String)>,
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2027-03-01T09:00:00Z")
        .unwrap()
        .to_utc()
}

pub fn day(text: &str) -> chrono::NaiveDate {
    text.parse().unwrap()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn sqlite() -> TestDb {
        TestDb::sqlite_in(tempfile::tempdir().unwrap()).await
    }

    /// A SQLite database in `dir`.
    pub async fn sqlite_in(dir: tempfile::TempDir) -> TestDb {
        let path: PathBuf = dir.path().join("obole.db");
        let url = format!("sqlite://{}", path.display());
        TestDb::open(url, Some(dir), None).await
    }

    /// `None` when no PostgreSQL is configured and none is required.
    pub async fn postgres() -> Option<TestDb> {
        TestDb::postgres_with(None).await
    }

    /// A PostgreSQL test database whose connections carry `options` (the URL parameter:
    /// settings such as `-c synchronous_commit=off`).
    pub async fn postgres_with(options: Option<&str>) -> Option<TestDb> {
        let required = std::env::var("OBOLE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let Ok(admin) = std::env::var("OBOLE_TEST_POSTGRES_URL") else {
            assert!(
                !required,
                "OBOLE_REQUIRE_POSTGRES=1 but OBOLE_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipped: set OBOLE_TEST_POSTGRES_URL to run the PostgreSQL tests");
            return None;
        };
        let name = format!(
            "obole_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_subsec_micros()
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin}: {e}"));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        conn.close().await.unwrap();
        let mut url = database_url(&admin, &name);
        if let Some(options) = options {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("options=");
            url.push_str(&options.replace(' ', "%20").replace('=', "%3D"));
        }
        Some(TestDb::open(url, None, Some((admin, name))).await)
    }

    async fn open(
        url: String,
        dir: Option<tempfile::TempDir>,
        pg: Option<(String, String)>,
    ) -> TestDb {
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        TestDb {
            url,
            store,
            clock: Arc::new(ManualClock::new(start_time())),
            _dir: dir,
            pg,
        }
    }

    pub async fn campaign(&self, slug: &str) -> Campaign {
        let new = NewCampaign::parse(
            slug,
            "Test campaign",
            "fr-candidate",
            "EUR",
            "Europe/Paris",
            Some("test-2027"),
        )
        .unwrap()
        // A financing period around the tests' clocks (2025 for the simulated Stripe, 2027).
        .financing(day("2025-01-01"), day("2027-12-31"))
        .unwrap();
        self.store
            .create_campaign(&new, start_time())
            .await
            .unwrap()
    }

    /// Every nonzero balance of `campaign`'s accounts once everything has happened (as of a
    /// date far ahead), in minor units by account name.
    pub async fn balances(&self, campaign: CampaignId) -> BTreeMap<String, i64> {
        let far = DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        self.store
            .balances(campaign, far)
            .await
            .unwrap()
            .into_iter()
            .filter(|b| b.signed.minor() != 0)
            .map(|b| (b.account, b.signed.minor()))
            .collect()
    }

    /// Runs SQL against the database directly, as an operator (or an attacker) would.
    pub async fn raw_sql(&self, sql: &str) -> Result<(), sqlx::Error> {
        if self.pg.is_some() {
            let mut conn = sqlx::PgConnection::connect(&self.url).await?;
            conn.execute(sql).await?;
            conn.close().await
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
            conn.execute(sql).await?;
            conn.close().await
        }
    }

    /// Runs a `SELECT count(*) …` directly against the database.
    pub async fn count(&self, sql: &str) -> i64 {
        if self.pg.is_some() {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Runs the `obole` binary against this database.
    pub fn obole(&self, args: &[&str]) -> Output {
        obole_with_url(&self.url, args)
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.pg {
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// The real server on a random port, stopped with [`Running::shutdown`].
pub struct Running {
    pub base: String,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn start(
        db: &TestDb,
        demo: bool,
        stripe: StripeSettings,
        body_bytes_max: usize,
    ) -> Running {
        let settings = ServeSettings {
            database_url: db.url.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            store: StoreOptions::default(),
            limits: Limits {
                request_timeout: std::time::Duration::from_secs(5),
                body_bytes_max,
            },
            stripe,
            stripe_campaign: None,
            intake: WorkerOptions::default(),
            demo,
            compliance_dir: None,
            public_url: None,
            checkout_limits: obole::checkout::guard::CheckoutLimits::unlimited(),
            form_secret: None,
        };
        Running::start_with(db, settings).await
    }

    pub async fn start_with(db: &TestDb, settings: ServeSettings) -> Running {
        let app = App::build(&settings, db.clock.clone()).await.unwrap();
        let base = format!("http://{}", app.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Running { base, stop, done }
    }

    pub async fn shutdown(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), self.done)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

pub fn obole_with_url(url: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_obole"))
        .args(args)
        .env("OBOLE_DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// `obole contribution add` of a cheque to campaign `printemps-2027` from a French donor
/// living at `line1`, Lyon (the same name at the same address is the same person).
pub fn cheque(
    db: &TestDb,
    amount: &str,
    received: &str,
    reference: &str,
    name: &str,
    line1: &str,
) -> Output {
    db.obole(&[
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
        line1,
        "--postal-code",
        "69003",
        "--country",
        "FR",
        "--nationality",
        "FR",
        "--attest",
        "natural_person,own_funds",
    ])
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Replaces the database name (the path) of a PostgreSQL URL, keeping any query string.
fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map_or((admin, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_end..]
        .find('/')
        .map_or(base.len(), |i| authority_end + i);
    let mut url = format!("{}/{}", &base[..path_start], name);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Declares scenarios `async fn name(db: &TestDb)` as tests on both stores.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}
