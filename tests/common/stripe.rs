//! A running Obole wired to a simulated Stripe account: events signed at test time and
//! delivered to `POST /webhooks/stripe`, the intake worker posting them.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use obole::app::ServeSettings;
use obole::campaign::Campaign;
use obole::checkout::guard::CheckoutLimits;
use obole::clock::Clock;
use obole::http::Limits;
use obole::ids::Slug;
use obole::intake::plan::RetryPolicy;
use obole::intake::worker::WorkerOptions;
use obole::intake::InboxStatus;
use obole::provider::stripe::client::StripeClient;
use obole::provider::stripe::sim::{SimEvent, StripeSim};
use obole::provider::stripe::StripeSettings;
use obole::store::StoreOptions;

use super::{Running, TestDb};

pub const SECRET: &str = "whsec_intake_tests";
pub const KEY: &str = "sk_test_intake";
pub const CAMPAIGN: &str = "printemps-2026";

pub struct Harness {
    pub server: Running,
    pub sim: Arc<StripeSim>,
    pub sim_base: String,
    pub campaign: Campaign,
}

pub fn fast_retries() -> WorkerOptions {
    WorkerOptions {
        idle_poll: Duration::from_millis(20),
        retry: RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(4),
            max_attempts: 4,
        },
        ..WorkerOptions::default()
    }
}

pub async fn harness(db: &TestDb) -> Harness {
    harness_with(db, CheckoutLimits::unlimited()).await
}

/// A harness whose checkout counts attempts against `limits`.
pub async fn harness_with(db: &TestDb, checkout_limits: CheckoutLimits) -> Harness {
    let campaign = db.campaign(CAMPAIGN).await;
    let sim = StripeSim::new(db.clock.now().timestamp());
    let sim_base = sim.serve().await.unwrap();
    let settings = ServeSettings {
        database_url: db.url.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreOptions::default(),
        limits: Limits {
            request_timeout: Duration::from_secs(5),
            body_bytes_max: 256 * 1024,
        },
        stripe: StripeSettings::new(Some(SECRET), Some(KEY), 300, Some(&sim_base))
            .unwrap()
            .with_api_rate(Some(0)),
        stripe_campaign: Some(Slug::parse(CAMPAIGN).unwrap()),
        intake: fast_retries(),
        demo: false,
        compliance_dir: None,
        public_url: None,
        checkout_limits,
        form_secret: None,
    };
    let server = Running::start_with(db, settings).await;
    Harness {
        server,
        sim,
        sim_base,
        campaign,
    }
}

impl Harness {
    /// Delivers events as Stripe would: signed now, raw bytes, one request each.
    pub async fn deliver(&self, db: &TestDb, events: &[SimEvent]) {
        let client = reqwest::Client::new();
        for event in events {
            let response = client
                .post(format!("{}/webhooks/stripe", self.server.base))
                .header("content-type", "application/json")
                .header(
                    "Stripe-Signature",
                    event.signature(&[SECRET], db.clock.now().timestamp()),
                )
                .body(event.body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", event.kind);
        }
    }

    /// Waits until no event is pending, moving the test clock on so retries fall due.
    pub async fn settle(&self, db: &TestDb) {
        for _ in 0..400 {
            let pending = db
                .store
                .stripe_events_with_status(InboxStatus::Pending, 1)
                .await
                .unwrap();
            if pending.is_empty() {
                return;
            }
            db.clock.advance(chrono::Duration::seconds(1));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the inbox did not drain");
    }

    /// Every account's nonzero balance, in minor units.
    pub async fn balances(&self, db: &TestDb) -> BTreeMap<String, i64> {
        db.balances(self.campaign.id).await
    }

    /// Ledger postings per Stripe transaction id.
    pub async fn movements(&self, db: &TestDb) -> BTreeMap<String, Vec<(String, i64)>> {
        let mut movements: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
        for (source, account, amount) in db
            .store
            .sourced_postings(self.campaign.id, "stripe:")
            .await
            .unwrap()
        {
            movements
                .entry(source.trim_start_matches("stripe:").to_owned())
                .or_default()
                .push((account, amount));
        }
        movements
    }

    pub fn client(&self) -> StripeClient {
        StripeClient::new(
            &StripeSettings::new(None, Some(KEY), 300, Some(&self.sim_base))
                .unwrap()
                .with_api_rate(Some(0)),
        )
        .unwrap()
    }

    pub async fn status_of(&self, db: &TestDb, event: &SimEvent) -> InboxStatus {
        db.store
            .stripe_event(&event.id)
            .await
            .unwrap()
            .unwrap()
            .status
    }
}
