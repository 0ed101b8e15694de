//! Webhook intake under load (results go in BENCHMARKS.md).
//!
//! Plays a Stripe account: N donations from a pool of donors, each with its realistic event
//! set (Checkout session, payment intent, charge succeeded, charge updated with the fee; a
//! share also refunded: refund created, charge refunded), each donation's events shuffled and
//! some delivered twice. Events are signed and POSTed to the real server by concurrent
//! senders at a target rate; the intake worker fetches state from the simulated Stripe API
//! and posts to the ledger. Measures webhook ack latency and how many donations per second
//! are posted until the inbox has drained, then checks every donation was posted once.
//!
//! Everything runs in this one process on this machine: the load generator, the simulated
//! Stripe API and the server share its cores with the database.
//!
//! `cargo bench --bench intake -- --database-url postgres://… --donations 20000 --rate 1000`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use obole::app::{App, ServeSettings};
use obole::campaign::NewCampaign;
use obole::clock::{Clock, SystemClock};
use obole::http::Limits;
use obole::ids::Slug;
use obole::intake::worker::WorkerOptions;
use obole::intake::InboxStatus;
use obole::provider::stripe::sim::{Gift, SimEvent, StripeSim};
use obole::provider::stripe::StripeSettings;
use obole::store::{Store, StoreOptions};

#[path = "support/mod.rs"]
mod support;

use support::{millis, per_second, percentile, raw_http, CpuTicks, Rng};

const SECRET: &str = "whsec_bench";
/// Stripe's tolerance is 300 s; a request prepared longer ago than this is signed again.
const RESIGN_AFTER_SECONDS: i64 = 240;

#[derive(Parser)]
#[command(about = "Obole webhook intake benchmark")]
struct Args {
    #[arg(
        long,
        env = "OBOLE_DATABASE_URL",
        default_value = "sqlite://bench-intake.db"
    )]
    database_url: String,
    /// Donations to play.
    #[arg(long, default_value_t = 20_000)]
    donations: usize,
    /// Distinct donors (gifts cycle through them).
    #[arg(long, default_value_t = 5_000)]
    donors: usize,
    /// Target donations per second (0: as fast as the senders go).
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Concurrent HTTP senders (Stripe delivers in parallel).
    #[arg(long, default_value_t = 64)]
    senders: usize,
    /// Percent of events delivered a second time.
    #[arg(long, default_value_t = 10)]
    duplicate_percent: u64,
    /// Percent of donations partly refunded.
    #[arg(long, default_value_t = 5)]
    refund_percent: u64,
    /// Stripe objects the worker synchronises at once.
    #[arg(long, default_value_t = WorkerOptions::default().concurrency)]
    concurrency: usize,
    /// Inbox events per worker round.
    #[arg(long, default_value_t = WorkerOptions::default().batch)]
    batch: i64,
    /// Batches of gifts, and of payments, the worker writes at once (default: the store's).
    #[arg(long)]
    flushers: Option<usize>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let clock = SystemClock;
    let store = Store::connect(&args.database_url, &StoreOptions::default()).await?;
    store.migrate().await?;
    let slug = format!("bench-intake-{}", clock.now().timestamp());
    let new = NewCampaign::parse(
        &slug,
        "Intake benchmark",
        "fr-candidate",
        "EUR",
        "Europe/Paris",
        None,
    )?;
    let campaign = store.create_campaign(&new, clock.now()).await?;

    // The Stripe account and its events, generated before the clock starts.
    let sim = StripeSim::new(clock.now().timestamp());
    let sim_base = sim.serve().await?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut refunds = 0;
    let mut plays: Vec<Vec<SimEvent>> = Vec::with_capacity(args.donations);
    for n in 0..args.donations {
        let amount = 200 + i64::try_from(rng.below(9_800)).unwrap_or(0);
        let donor = n % args.donors.max(1);
        let donation = sim.donate(&Gift {
            name: format!("Donor {donor}"),
            ..Gift::new(amount, &slug, &format!("donor{donor}@example.fr"))
        });
        let mut events = donation.events;
        if rng.below(100) < args.refund_percent {
            refunds += 1;
            events.extend(sim.refund(&donation.charge, amount / 2).1);
        }
        for i in (1..events.len()).rev() {
            let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(0);
            events.swap(i, j);
        }
        let again: Vec<SimEvent> = events
            .iter()
            .filter(|_| rng.below(100) < args.duplicate_percent)
            .cloned()
            .collect();
        events.extend(again);
        plays.push(events);
    }
    let events_total: usize = plays.iter().map(Vec::len).sum();

    let settings = ServeSettings {
        database_url: args.database_url.clone(),
        listen: "127.0.0.1:0".parse()?,
        store: StoreOptions {
            pool_size: 32,
            ..StoreOptions::default()
        },
        limits: Limits {
            request_timeout: Duration::from_secs(10),
            body_bytes_max: 256 * 1024,
        },
        // The simulator has no rate limit; pacing would measure the pacer.
        stripe: StripeSettings::new(Some(SECRET), Some("sk_test_bench"), 300, Some(&sim_base))?
            .with_api_rate(Some(0)),
        stripe_campaign: Some(Slug::parse(&slug)?),
        intake: WorkerOptions {
            concurrency: args.concurrency,
            batch: args.batch,
            flushers: args.flushers,
            ..WorkerOptions::default()
        },
        demo: false,
        compliance_dir: None,
        public_url: None,
        checkout_limits: obole::checkout::guard::CheckoutLimits::unlimited(),
        form_secret: None,
    };
    let app = App::build(&settings, Arc::new(SystemClock)).await?;
    let addr = app.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    println!(
        "store: {}  cores: {}  donations: {}  events: {events_total} (refunded {refunds}, {}% duplicated)  rate: {}/s  senders: {}",
        store.kind(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.donations,
        args.duplicate_percent,
        args.rate,
        args.senders,
    );
    // Each request prepared and signed before the clock starts, sent whole on a kept-alive
    // connection per sender: the generator's own work is kept small, since it shares the
    // cores with what it measures. A run long enough for a signature to near Stripe's
    // five-minute tolerance signs again as it sends.
    let prepare = move |event: &SimEvent, signed_at: i64| {
        let signature = event.signature(&[SECRET], signed_at);
        raw_http::post(
            addr,
            "/webhooks/stripe",
            &[
                ("content-type", "application/json"),
                ("stripe-signature", &signature),
            ],
            event.body.as_bytes(),
        )
    };
    let signed_at = clock.now().timestamp();
    let plays: Vec<Vec<(SimEvent, Vec<u8>)>> = plays
        .into_iter()
        .map(|events| {
            events
                .into_iter()
                .map(|event| {
                    let request = prepare(&event, signed_at);
                    (event, request)
                })
                .collect()
        })
        .collect();
    let plays = Arc::new(plays);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_at_start = CpuTicks::now();
    let start = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..args.senders.max(1) {
        let (plays, next, rate) = (plays.clone(), next.clone(), args.rate);
        senders.spawn(async move {
            let mut connection = raw_http::Connection::new(addr);
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(events) = plays.get(n) else { break };
                // A rate of 0 sends as fast as the server acknowledges.
                if let Some(offset_us) = (n as u64 * 1_000_000).checked_div(rate) {
                    tokio::time::sleep_until((start + Duration::from_micros(offset_us)).into())
                        .await;
                }
                for (event, request) in events {
                    let now = SystemClock.now().timestamp();
                    let resigned =
                        (now - signed_at > RESIGN_AFTER_SECONDS).then(|| prepare(event, now));
                    let sent = Instant::now();
                    let status = connection
                        .send(resigned.as_deref().unwrap_or(request))
                        .await?;
                    latencies.push(sent.elapsed());
                    ensure!(status == 200, "event {} answered {status}", event.id);
                }
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(events_total);
    while let Some(done) = senders.join_next().await {
        latencies.extend(done??);
    }
    let sent = start.elapsed();
    loop {
        let pending = store
            .stripe_events_with_status(InboxStatus::Pending, 1)
            .await?;
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = start.elapsed();
    let cpu_at_drain = CpuTicks::now();

    let postings = store.sourced_postings(campaign.id, "stripe:").await?;
    let mut sources: Vec<&str> = postings.iter().map(|(s, _, _)| s.as_str()).collect();
    sources.dedup();
    let parked = store
        .stripe_events_with_status(InboxStatus::Parked, 10)
        .await?;
    latencies.sort();
    println!(
        "sent in {} s ({} donations/s offered); inbox drained at {} s: {} donations/s sustained",
        millis(sent),
        per_second(args.donations, sent),
        millis(drained),
        per_second(args.donations, drained),
    );
    println!(
        "ack latency over {} webhooks: p50 {} ms  p90 {} ms  p99 {} ms  max {} ms",
        latencies.len(),
        millis(percentile(&latencies, 50) * 1000),
        millis(percentile(&latencies, 90) * 1000),
        millis(percentile(&latencies, 99) * 1000),
        millis(latencies[latencies.len() - 1] * 1000),
    );
    if let (Some(before), Some(after)) = (cpu_at_start, cpu_at_drain) {
        println!(
            "machine until drained, every process on it: {}",
            before.until(after, args.donations, "donation")
        );
    }
    let api_calls = sim.seen().len();
    println!(
        "Stripe API calls: {api_calls} ({}.{:02} per donation)",
        api_calls / args.donations.max(1),
        api_calls * 100 / args.donations.max(1) % 100,
    );
    println!(
        "ledger: {} movements for {} donations and {refunds} refunds; {} events parked",
        sources.len(),
        args.donations,
        parked.len()
    );
    ensure!(
        sources.len() == args.donations + refunds,
        "every money movement posted exactly once"
    );
    ensure!(
        parked.is_empty(),
        "no event parked: {:?}",
        parked.first().map(|e| &e.last_error)
    );
    let _ = stop.send(());
    server.await?.context("stopping the server")?;
    Ok(())
}
