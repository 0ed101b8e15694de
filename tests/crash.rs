//! Crash test (issue 7), on both stores: the real `obole serve` process, fed by a Stripe-like
//! load generator at 500 donations a second, is killed with SIGKILL five times and
//! restarted each time, while the generator keeps sending and re-delivers whatever was not
//! acknowledged, as Stripe does. A server slower than that (a debug build, a busy machine)
//! holds the generator back once a second's worth of webhooks awaits acknowledgement, so the
//! run stays short; the rates reached are printed.
//!
//! The test process plays Stripe: a simulated account (`StripeSim`) serves the API the
//! server's intake worker reads, and 64 concurrent senders POST each donation's signed
//! webhooks (Checkout session, payment intent, charge succeeded, charge updated with the fee;
//! a tenth of the gifts later partly refunded: refund created, charge refunded), each
//! donation's events shuffled and some delivered twice. An event is acknowledged only by a
//! 2xx answer; a refused or reset connection, a 5xx or a timeout puts it back in the queue,
//! to be delivered again after a short backoff.
//!
//! What it proves, once every delivery is acknowledged and the inbox has drained:
//! - every acknowledged event is in the inbox, and every one of them was posted or ignored:
//!   none pending, none parked;
//! - every charge and every refund at Stripe is in the ledger exactly once, under
//!   `stripe:<balance transaction>`, with the amounts, fees and net Stripe recorded;
//! - one contribution and one compliance decision per gift, none refusing any of it, nothing
//!   owed back (the simulator's payments bypass Obole's checkout, so they are held for review
//!   for want of a sworn statement: a hold moves no money);
//! - every account's balance equals the generator's truth (gifts, Stripe's fees, refunds, the
//!   money left at Stripe);
//! - the server still stops gracefully, `obole verify` passes and `obole reconcile` finds
//!   the books equal to Stripe's;
//! - the five kills happened while the server had acknowledged but unposted events or
//!   webhooks in flight.
//!
//! The two stores' runs take turns (one load at a time on the machine). Rates and timings are
//! printed (`cargo test --test crash -- --nocapture`).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::rng::Rng;
use common::stripe::{CAMPAIGN, KEY, SECRET};
use common::TestDb;
use obole::intake::InboxStatus;
use obole::provider::stripe::sim::{Gift, SimEvent, StripeSim};
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

/// Donations the generator makes per second, every one with its own donor.
const DONATIONS_PER_SECOND: u64 = 500;
/// SIGKILLs of the server during the load.
const KILLS: usize = 5;
/// Concurrent webhook deliveries (Stripe delivers in parallel).
const SENDERS: usize = 64;
/// Percent of gifts partly refunded a little later.
const REFUND_PERCENT: u64 = 10;
/// Percent of events Stripe delivers a second time anyway.
const DUPLICATE_PERCENT: u64 = 5;
/// Time between a restart (or the start) and the next kill: a random point in this range.
const KILL_INTERVAL_MS: (u64, u64) = (800, 1_800);
/// How long the server stays dead before it is restarted: a random point in this range.
const DOWNTIME_MS: (u64, u64) = (0, 400);
/// Deliveries waiting for an acknowledgement above which the generator waits (about a
/// second of webhooks at the target rate).
const MAX_BACKLOG: usize = 2_500;
/// Load kept up on the last restarted server before the generator stops.
const LOAD_AFTER_LAST_RESTART: Duration = Duration::from_secs(1);

/// One load at a time: the two stores' runs would otherwise share the machine's cores.
static ONE_LOAD_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn per_second(count: usize, elapsed: Duration) -> u128 {
    count as u128 * 1000 / elapsed.as_millis().max(1)
}

/// The real `obole serve`, as its own process on one port, killed and restarted at will.
struct ServerProcess {
    child: Option<Child>,
    listen: String,
    base: String,
    database_url: String,
    sim_base: String,
    /// Every run's stdout and stderr, appended.
    log: PathBuf,
    _log_dir: tempfile::TempDir,
    starts: usize,
}

impl ServerProcess {
    async fn start(db: &TestDb, sim_base: &str) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_dir = tempfile::tempdir().unwrap();
        let mut server = ServerProcess {
            child: None,
            listen: format!("127.0.0.1:{port}"),
            base: format!("http://127.0.0.1:{port}"),
            database_url: db.url.clone(),
            sim_base: sim_base.to_owned(),
            log: log_dir.path().join("server.log"),
            _log_dir: log_dir,
            starts: 0,
        };
        server.restart().await;
        server
    }

    /// Starts the process (on the same port) and waits until it is ready; returns how long
    /// that took.
    async fn restart(&mut self) -> Duration {
        assert!(self.child.is_none(), "the server is already running");
        let started = Instant::now();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_obole"))
            .args(["serve", "--listen", &self.listen])
            .env("OBOLE_DATABASE_URL", &self.database_url)
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("STRIPE_SECRET_KEY", KEY)
            .env("STRIPE_API_BASE", &self.sim_base)
            .env("STRIPE_API_RATE", "0")
            .env("STRIPE_CAMPAIGN", CAMPAIGN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.starts += 1;
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(answer) = probe.get(format!("{}/readyz", self.base)).send().await {
                if answer.status().is_success() {
                    return started.elapsed();
                }
            }
            self.assert_alive();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "obole serve (start {}) was not ready within 60 s\n{}",
            self.starts,
            self.log_tail()
        );
    }

    /// SIGKILL: no shutdown of any kind, as when the machine or the OOM killer takes it.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("a running server to kill");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn assert_alive(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "obole serve exited on its own ({status})\n{}",
                    self.log_tail()
                );
            }
        }
    }

    /// SIGTERM, and the process must stop cleanly: the sealer seals what is queued.
    async fn stop_gracefully(&mut self) {
        let mut child = self.child.take().expect("a running server to stop");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let asked = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "graceful stop: {status}\n{}",
                    self.log_tail()
                );
                return;
            }
            if asked.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!(
                    "obole serve did not stop within 60 s of SIGTERM\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text
            .char_indices()
            .rev()
            .nth(6_000)
            .map_or(0, |(index, _)| index);
        format!("--- server log (end) ---\n{}", &text[start..])
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One delivery of one event; `attempt` counts the tries so far.
struct Delivery {
    event: Arc<SimEvent>,
    attempt: u32,
}

/// Stripe's delivery queue: first deliveries from the generator, re-deliveries after a
/// failure, and the counts the test reports.
struct Deliveries {
    queue: UnboundedSender<Delivery>,
    next: tokio::sync::Mutex<UnboundedReceiver<Delivery>>,
    /// Deliveries not yet answered 2xx (each stays counted through its re-deliveries).
    unacknowledged: AtomicUsize,
    /// Requests sent and not yet answered.
    in_flight: AtomicUsize,
    acknowledged: AtomicUsize,
    failed_attempts: AtomicUsize,
    /// How failed attempts failed: an HTTP status, or `connection error`.
    failures: Mutex<BTreeMap<String, usize>>,
    /// Set once everything is acknowledged and nothing more will come: the senders stop.
    finished: CancellationToken,
}

impl Deliveries {
    fn new() -> Arc<Deliveries> {
        let (queue, next) = unbounded_channel();
        Arc::new(Deliveries {
            queue,
            next: tokio::sync::Mutex::new(next),
            unacknowledged: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            acknowledged: AtomicUsize::new(0),
            failed_attempts: AtomicUsize::new(0),
            failures: Mutex::new(BTreeMap::new()),
            finished: CancellationToken::new(),
        })
    }

    fn deliver(&self, event: Arc<SimEvent>) {
        self.unacknowledged.fetch_add(1, Ordering::SeqCst);
        self.queue.send(Delivery { event, attempt: 0 }).unwrap();
    }

    /// Puts a failed delivery back in the queue after a backoff (Stripe's hours, in
    /// milliseconds: 100, 200, 400, 800, then every 1.6 s).
    fn redeliver_later(self: &Arc<Self>, delivery: Delivery, why: String) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        *self.failures.lock().unwrap().entry(why).or_default() += 1;
        let wait = Duration::from_millis(100 << delivery.attempt.min(4));
        let deliveries = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = deliveries.queue.send(Delivery {
                event: delivery.event,
                attempt: delivery.attempt + 1,
            });
        });
    }
}

/// One of Stripe's concurrent senders: signs each event now, POSTs it, and counts it
/// acknowledged only on a 2xx answer.
async fn sender(deliveries: Arc<Deliveries>, client: reqwest::Client, url: String) {
    loop {
        let next = {
            let mut next = deliveries.next.lock().await;
            tokio::select! {
                biased;
                () = deliveries.finished.cancelled() => None,
                delivery = next.recv() => delivery,
            }
        };
        let Some(delivery) = next else { return };
        let signature = delivery
            .event
            .signature(&[SECRET], chrono::Utc::now().timestamp());
        deliveries.in_flight.fetch_add(1, Ordering::SeqCst);
        let answer = client
            .post(&url)
            .header("content-type", "application/json")
            .header("Stripe-Signature", signature)
            .body(delivery.event.body.clone())
            .send()
            .await;
        deliveries.in_flight.fetch_sub(1, Ordering::SeqCst);
        match answer {
            Ok(answer) if answer.status().is_success() => {
                deliveries.acknowledged.fetch_add(1, Ordering::Relaxed);
                deliveries.unacknowledged.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(answer) => {
                let why = format!("HTTP {}", answer.status().as_u16());
                deliveries.redeliver_later(delivery, why);
            }
            Err(error) => {
                let why = if error.is_timeout() {
                    "timeout"
                } else {
                    "connection error"
                };
                deliveries.redeliver_later(delivery, why.to_owned());
                // The server is probably down: do not spin through the queue.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A gift as the generator made it.
struct GiftMade {
    charge: String,
    amount: i64,
    /// The charge's balance transaction at Stripe.
    balance_transaction: String,
}

/// A refund as the generator made it.
struct RefundMade {
    refund: String,
    charge: String,
    amount: i64,
}

/// What the simulated Stripe account was made to do: the truth the ledger must equal.
#[derive(Default)]
struct Truth {
    gifts: Vec<GiftMade>,
    refunds: Vec<RefundMade>,
    /// Every event id generated (each delivered at least once).
    events: BTreeSet<String>,
    deliveries: usize,
    generating: Duration,
    /// How long the generator waited for the server to catch up.
    held_back: Duration,
}

/// Makes donations at `DONATIONS_PER_SECOND` until `stop`, and queues their events.
async fn generate(
    sim: Arc<StripeSim>,
    deliveries: Arc<Deliveries>,
    stop: CancellationToken,
    mut rng: Rng,
) -> Truth {
    let mut truth = Truth::default();
    let mut refunded = BTreeSet::new();
    let start = Instant::now();
    let interval = Duration::from_micros(1_000_000 / DONATIONS_PER_SECOND);
    let mut due = start;
    for n in 0u64.. {
        if stop.is_cancelled() {
            break;
        }
        // A server slower than the target rate (a debug build, a busy machine) holds the
        // generator back rather than pile up a backlog the test cannot wait for.
        if deliveries.unacknowledged.load(Ordering::SeqCst) > MAX_BACKLOG {
            let held = Instant::now();
            while deliveries.unacknowledged.load(Ordering::SeqCst) > MAX_BACKLOG
                && !stop.is_cancelled()
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            truth.held_back += held.elapsed();
            due = due.max(Instant::now());
        }
        tokio::time::sleep_until(due.into()).await;
        due += interval;
        // The account's clock follows the real one (the sim ticks once per action), so
        // Stripe's timestamps are now.
        sim.set_clock(chrono::Utc::now().timestamp() - 1);
        let amount = 200 + i64::try_from(rng.below(9_801)).unwrap();
        let donation = sim.donate(&Gift {
            name: format!("Donateur {n}"),
            ..Gift::new(amount, CAMPAIGN, &format!("donor{n}@example.fr"))
        });
        let mut events = donation.events;
        truth.gifts.push(GiftMade {
            charge: donation.charge,
            amount,
            balance_transaction: donation.balance_transaction.unwrap(),
        });
        // Now and then an earlier gift is partly refunded (once at most).
        if rng.below(100) < REFUND_PERCENT {
            let which = usize::try_from(rng.below(truth.gifts.len() as u64)).unwrap();
            if refunded.insert(which) {
                let gift = &truth.gifts[which];
                let amount = gift.amount / 2;
                let (refund, refund_events) = sim.refund(&gift.charge, amount);
                truth.refunds.push(RefundMade {
                    refund,
                    charge: gift.charge.clone(),
                    amount,
                });
                events.extend(refund_events);
            }
        }
        for i in (1..events.len()).rev() {
            let j = usize::try_from(rng.below(i as u64 + 1)).unwrap();
            events.swap(i, j);
        }
        let again: Vec<SimEvent> = events
            .iter()
            .filter(|_| rng.below(100) < DUPLICATE_PERCENT)
            .cloned()
            .collect();
        events.extend(again);
        for event in events {
            truth.events.insert(event.id.clone());
            truth.deliveries += 1;
            deliveries.deliver(Arc::new(event));
        }
    }
    truth.generating = start.elapsed();
    truth
}

/// What the test saw when it killed the server.
struct Kill {
    at: Duration,
    /// Acknowledged events not yet posted, in the inbox.
    unposted: i64,
    /// Webhook requests in flight.
    in_flight: usize,
    down_for: Duration,
    restarted_in: Duration,
}

async fn unposted_events(db: &TestDb) -> i64 {
    db.count("SELECT count(*) FROM stripe_events WHERE status = 'pending'")
        .await
}

/// Every stored event's id and status.
async fn inbox(db: &TestDb) -> BTreeMap<String, String> {
    let sql = "SELECT event_id, status FROM stripe_events";
    let rows: Vec<(String, String)> = if db.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
    };
    rows.into_iter().collect()
}

/// Every balance transaction of the simulated account, read through its API.
async fn stripe_balance_transactions(sim_base: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut all: Vec<Value> = Vec::new();
    loop {
        let mut url = format!("{sim_base}/v1/balance_transactions?limit=100");
        if let Some(last) = all.last() {
            url.push_str(&format!("&starting_after={}", last["id"].as_str().unwrap()));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        if page["has_more"] != Value::Bool(true) {
            return all;
        }
    }
}

/// How many compliance decisions of each verdict and stage.
async fn verdicts(db: &TestDb) -> Vec<(String, String, i64)> {
    let sql =
        "SELECT verdict, stage || ' ' || coalesce(rule, '-'), count(*) FROM compliance_decisions \
               GROUP BY 1, 2 ORDER BY 1, 2";
    if db.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
    }
}

fn postings(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(a, m)| ((*a).to_owned(), *m)).collect()
}

async fn the_server_killed_five_times_under_load_loses_nothing_and_doubles_nothing(db: &TestDb) {
    let _alone = ONE_LOAD_AT_A_TIME.lock().await;
    let store = db.store.kind();
    let campaign = db.campaign(CAMPAIGN).await;
    let mut rng = Rng::from_clock();
    eprintln!("[{store}] crash test seed {:#x}", rng.0);
    let sim = StripeSim::new(chrono::Utc::now().timestamp());
    let sim_base = sim.serve().await.unwrap();
    let mut server = ServerProcess::start(db, &sim_base).await;

    let deliveries = Deliveries::new();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(SENDERS)
        .build()
        .unwrap();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        senders.spawn(sender(
            deliveries.clone(),
            client.clone(),
            format!("{}/webhooks/stripe", server.base),
        ));
    }
    let stop_generating = CancellationToken::new();
    let load_started = Instant::now();
    let generator = tokio::spawn(generate(
        sim.clone(),
        deliveries.clone(),
        stop_generating.clone(),
        Rng(rng.next() | 1),
    ));

    // Five kills at random moments, each while the server has work: acknowledged events it
    // has not posted yet, or webhooks it is answering.
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.between(KILL_INTERVAL_MS))).await;
        server.assert_alive();
        let mut unposted = unposted_events(db).await;
        let mut in_flight = deliveries.in_flight.load(Ordering::SeqCst);
        let waiting = Instant::now();
        while unposted == 0 && in_flight == 0 && waiting.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            unposted = unposted_events(db).await;
            in_flight = deliveries.in_flight.load(Ordering::SeqCst);
        }
        let at = load_started.elapsed();
        server.kill();
        let down_for = Duration::from_millis(rng.between(DOWNTIME_MS));
        tokio::time::sleep(down_for).await;
        let restarted_in = server.restart().await;
        kills.push(Kill {
            at,
            unposted,
            in_flight,
            down_for,
            restarted_in,
        });
    }
    tokio::time::sleep(LOAD_AFTER_LAST_RESTART).await;
    stop_generating.cancel();
    let truth = generator.await.unwrap();
    let load = load_started.elapsed();
    let acknowledged_during_load = deliveries.acknowledged.load(Ordering::SeqCst);
    let backlog_at_stop = deliveries.unacknowledged.load(Ordering::SeqCst);

    // Stripe keeps re-delivering until every event is acknowledged.
    while deliveries.unacknowledged.load(Ordering::SeqCst) > 0 {
        assert!(
            load_started.elapsed() < load + Duration::from_secs(120),
            "{} deliveries still unacknowledged 120 s after the load; failures: {:?}\n{}",
            deliveries.unacknowledged.load(Ordering::SeqCst),
            deliveries.failures.lock().unwrap(),
            server.log_tail()
        );
        server.assert_alive();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_acknowledged = load_started.elapsed();
    deliveries.finished.cancel();
    while senders.join_next().await.is_some() {}

    // The intake worker drains the inbox.
    while !db
        .store
        .stripe_events_with_status(InboxStatus::Pending, 1)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            load_started.elapsed() < all_acknowledged + Duration::from_secs(180),
            "the inbox still has {} pending events 180 s after the last acknowledgement\n{}",
            unposted_events(db).await,
            server.log_tail()
        );
        server.assert_alive();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = load_started.elapsed();

    let donations = truth.gifts.len();
    eprintln!(
        "[{store}] load {} ms: {donations} donations ({} refunds) made at {}/s (target {}/s; \
         held back {} ms for the server), {} deliveries of {} events; {} acknowledged during \
         the load ({} webhooks/s, about {} donations/s), {} waiting at its end",
        load.as_millis(),
        truth.refunds.len(),
        per_second(donations, truth.generating),
        DONATIONS_PER_SECOND,
        truth.held_back.as_millis(),
        truth.deliveries,
        truth.events.len(),
        acknowledged_during_load,
        per_second(acknowledged_during_load, load),
        per_second(
            acknowledged_during_load * donations / truth.deliveries.max(1),
            load
        ),
        backlog_at_stop,
    );
    eprintln!(
        "[{store}] every delivery acknowledged at {} ms after {} failed attempts {:?}; \
         inbox drained at {} ms ({} donations/s sustained)",
        all_acknowledged.as_millis(),
        deliveries.failed_attempts.load(Ordering::SeqCst),
        deliveries.failures.lock().unwrap(),
        drained.as_millis(),
        per_second(donations, drained),
    );
    for (n, kill) in kills.iter().enumerate() {
        eprintln!(
            "[{store}] kill {}: at {} ms, {} unposted events in the inbox, {} webhooks in \
             flight; down {} ms, ready again {} ms after restart",
            n + 1,
            kill.at.as_millis(),
            kill.unposted,
            kill.in_flight,
            kill.down_for.as_millis(),
            kill.restarted_in.as_millis(),
        );
    }

    // Five kills, each with work under way, under the load.
    assert_eq!(kills.len(), KILLS);
    for (n, kill) in kills.iter().enumerate() {
        assert!(
            kill.unposted > 0 || kill.in_flight > 0,
            "kill {} found the server idle",
            n + 1
        );
    }
    assert_eq!(server.starts, KILLS + 1);

    // Every acknowledged event is kept, once, and was posted or ignored.
    let inbox = inbox(db).await;
    let lost: Vec<&String> = truth
        .events
        .iter()
        .filter(|id| !inbox.contains_key(*id))
        .collect();
    let unknown: Vec<&String> = inbox
        .keys()
        .filter(|id| !truth.events.contains(*id))
        .collect();
    assert!(
        lost.is_empty() && unknown.is_empty(),
        "the inbox holds {} events, {} were delivered: {} lost (first {:?}), {} never sent (first {:?})",
        inbox.len(),
        truth.events.len(),
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>(),
        unknown.len(),
        unknown.iter().take(5).collect::<Vec<_>>(),
    );
    let unsettled: Vec<(&String, &String)> = inbox
        .iter()
        .filter(|(_, status)| !matches!(status.as_str(), "posted" | "ignored"))
        .take(5)
        .collect();
    assert!(unsettled.is_empty(), "events not posted: {unsettled:?}");
    assert!(db
        .store
        .stripe_events_with_status(InboxStatus::Parked, 1)
        .await
        .unwrap()
        .is_empty());

    // Stripe's own record agrees with the generator's: one balance transaction per gift
    // (amount, 1.5 % + €0.25) and per refund.
    let transactions = stripe_balance_transactions(&sim_base).await;
    assert_eq!(transactions.len(), donations + truth.refunds.len());
    let by_source: BTreeMap<&str, &Value> = transactions
        .iter()
        .map(|t| (t["source"].as_str().unwrap(), t))
        .collect();
    let mut expected: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    let (mut gross, mut fees, mut refunds) = (0i64, 0i64, 0i64);
    for gift in &truth.gifts {
        let txn = by_source[gift.charge.as_str()];
        assert_eq!(txn["id"], gift.balance_transaction.as_str());
        assert_eq!(txn["amount"], gift.amount);
        let fee = txn["fee"].as_i64().unwrap();
        assert_eq!(fee, (gift.amount * 15 + 500) / 1000 + 25, "Stripe's price");
        assert_eq!(txn["net"], gift.amount - fee);
        gross += gift.amount;
        fees += fee;
        expected.insert(
            gift.balance_transaction.clone(),
            postings(&[
                ("assets:stripe", gift.amount - fee),
                ("expenses:fees:stripe", fee),
                ("income:donations", -gift.amount),
            ]),
        );
    }
    for refund in &truth.refunds {
        let txn = by_source[refund.refund.as_str()];
        assert_eq!(txn["amount"], -refund.amount, "refund of {}", refund.charge);
        assert_eq!(txn["fee"], 0);
        refunds += refund.amount;
        expected.insert(
            txn["id"].as_str().unwrap().to_owned(),
            postings(&[
                ("assets:stripe", -refund.amount),
                ("income:donations:refunds", refund.amount),
            ]),
        );
    }
    let at_stripe: i64 = transactions
        .iter()
        .map(|t| t["net"].as_i64().unwrap())
        .sum();
    assert_eq!(at_stripe, gross - fees - refunds);

    // Every money movement is in the ledger exactly once, with Stripe's amounts.
    let mut movements: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for (source, account, amount) in db
        .store
        .sourced_postings(campaign.id, "stripe:")
        .await
        .unwrap()
    {
        movements
            .entry(source.trim_start_matches("stripe:").to_owned())
            .or_default()
            .push((account, amount));
    }
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !movements.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<&String> = movements
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} movements in the ledger, {} at Stripe; missing {missing:?}, unexpected {extra:?}",
        movements.len(),
        expected.len()
    );
    for (txn, postings) in &expected {
        assert_eq!(&movements[txn], postings, "the postings of {txn}");
    }

    // One contribution and one compliance decision per gift, none refusing any of it: nothing
    // owed back, no refund asked of Stripe. (These payments come from the simulator, not
    // through Obole's checkout, so they carry no sworn statement and are held for review;
    // a hold changes no money.)
    let n = i64::try_from(donations).unwrap();
    assert_eq!(db.count("SELECT count(*) FROM contributions").await, n);
    let decided = "SELECT count(*) FROM compliance_decisions WHERE stage = 'posting'";
    assert_eq!(db.count(decided).await, n, "one posting decision per gift");
    assert_eq!(
        db.count(&format!(
            "{decided} AND verdict IN ('refuse', 'accept_part')"
        ))
        .await,
        0,
        "nothing refused: {:?}",
        verdicts(db).await
    );
    assert_eq!(db.count("SELECT count(*) FROM excess_refunds").await, 0);
    assert!(sim.take_outbox().is_empty());

    // The balances are the generator's truth.
    let balances = db.balances(campaign.id).await;
    assert_eq!(
        balances,
        postings(&[
            ("assets:stripe", gross - fees - refunds),
            ("expenses:fees:stripe", fees),
            ("income:donations", -gross),
            ("income:donations:refunds", refunds),
        ])
        .into_iter()
        .collect::<BTreeMap<_, _>>()
    );

    // The server still stops cleanly; the books verify and reconcile with Stripe.
    server.stop_gracefully().await;
    let verify = common::obole_with_url(&db.url, &["verify"]);
    assert!(
        verify.status.success(),
        "verify: {}{}",
        common::stdout(&verify),
        common::stderr(&verify)
    );
    let reconcile = common::obole_with_url(
        &db.url,
        &[
            "reconcile",
            "--campaign",
            CAMPAIGN,
            "--stripe-secret-key",
            KEY,
            "--stripe-api-base",
            &sim_base,
            "--stripe-api-rate",
            "0",
        ],
    );
    assert!(
        reconcile.status.success(),
        "reconcile: {}{}",
        common::stdout(&reconcile),
        common::stderr(&reconcile)
    );
    eprintln!(
        "[{store}] checked: {donations} gifts and {} refunds once each, balances, verify, \
         reconcile; {} ms in all",
        truth.refunds.len(),
        load_started.elapsed().as_millis()
    );
}

on_both_stores!(the_server_killed_five_times_under_load_loses_nothing_and_doubles_nothing);
