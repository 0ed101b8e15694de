//! `obole-bench`: reproducible ledger benchmarks (results go in BENCHMARKS.md).
//!
//! - `write`: posting throughput with 1, 8 and 64 concurrent writers (each a gift entry of
//!   three postings, unique key, one transaction), with the sealer running beside them as
//!   in production; then how long the sealer needs to catch up.
//! - `balance`: loads a journal of N entries spread over a year (resumable), seals it, and
//!   measures the latency of "every account's balance as of t" for random t.
//!
//! Run against a scratch database: it creates campaigns named `bench-…`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use obole::campaign::{Campaign, NewCampaign};
use obole::clock::{Clock, SystemClock};
use obole::ids::{IdempotencyKey, Slug};
use obole::journal::{Journal, JournalOptions};
use obole::ledger::EntryDraft;
use obole::money::{Currency, Money};
use obole::sealer;
use obole::store::{Store, StoreOptions};

#[derive(Parser)]
#[command(about = "Obole ledger benchmarks")]
struct Args {
    #[arg(long, env = "OBOLE_DATABASE_URL", default_value = "sqlite://bench.db")]
    database_url: String,
    /// Batches the write combiner keeps in flight.
    #[arg(long, default_value_t = JournalOptions::default().flushers)]
    flushers: usize,
    /// Most entries per batch.
    #[arg(long, default_value_t = JournalOptions::default().batch_max)]
    batch_max: usize,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Entries per second with W concurrent writers.
    Write {
        /// Writer counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        writers: Vec<u32>,
        /// How long to write for, per writer count.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Balance-as-of latency over a journal of N entries.
    Balance {
        #[arg(long, default_value_t = 1_000_000)]
        entries: i64,
        /// Writers used to load the journal.
        #[arg(long, default_value_t = 32)]
        load_writers: i64,
        /// Queries to time.
        #[arg(long, default_value_t = 2_000)]
        samples: usize,
        /// Skip loading: the journal was loaded by an earlier run on this database.
        #[arg(long)]
        no_load: bool,
    },
}

/// The start of the benchmark campaign's year; entries are spread over the next 365 days.
fn year_start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_798_761_600, 0).unwrap_or_default() // 2027-01-01T00:00:00Z
}

fn gift(key: String, n: i64, at: DateTime<Utc>) -> anyhow::Result<EntryDraft> {
    let eur = |m| Money::from_minor(m, Currency::EUR);
    let gross = 500 + n % 20_000;
    let fee = 25 + gross * 15 / 1000;
    Ok(
        EntryDraft::new(IdempotencyKey::parse(key)?, "bench gift", at)
            .post("assets:stripe", eur(gross - fee))
            .post("expenses:fees:stripe", eur(fee))
            .post("income:donations", eur(-gross)),
    )
}

async fn campaign(store: &Store, slug: &str) -> anyhow::Result<Campaign> {
    if let Some(c) = store.campaign(&Slug::parse(slug)?).await? {
        return Ok(c);
    }
    let new = NewCampaign::parse(
        slug,
        "Benchmark",
        "fr-candidate",
        "EUR",
        "Europe/Paris",
        None,
    )?;
    Ok(store.create_campaign(&new, SystemClock.now()).await?)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = StoreOptions {
        pool_size: 64,
        ..StoreOptions::default()
    };
    let journal_options = JournalOptions {
        flushers: args.flushers,
        batch_max: args.batch_max,
    };
    let store = Store::connect(&args.database_url, &options).await?;
    store.migrate().await?;
    println!(
        "store: {}  cores: {}",
        store.kind(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    match args.bench {
        Bench::Write { writers, seconds } => {
            for w in writers {
                write(
                    &store,
                    &clock,
                    journal_options,
                    w,
                    Duration::from_secs(seconds),
                )
                .await?;
            }
        }
        Bench::Balance {
            entries,
            load_writers,
            samples,
            no_load,
        } => {
            balance(
                &store,
                &clock,
                journal_options,
                entries,
                load_writers,
                samples,
                no_load,
            )
            .await?
        }
    }
    store.close().await;
    Ok(())
}

async fn write(
    store: &Store,
    clock: &Arc<dyn Clock>,
    journal_options: JournalOptions,
    writers: u32,
    length: Duration,
) -> anyhow::Result<()> {
    let run = Utc::now().timestamp_micros();
    let c = campaign(store, &format!("bench-write-{run}")).await?;
    let sealer = sealer::spawn(store.clone(), clock.clone());
    let journal = Journal::start(store.clone(), clock.clone(), journal_options);
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (journal, clock, c) = (journal.clone(), clock.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0_i64;
            while Instant::now() < deadline {
                let draft = gift(format!("w{w}-{n}"), n, clock.now())?;
                let t = Instant::now();
                journal.record(&c, draft).await?;
                latencies.push(t.elapsed());
                n += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    let backlog = store.seal_status().await?.unsealed;
    let catch_up = Instant::now();
    sealer.stop().await;
    let catch_up = catch_up.elapsed();
    latencies.sort();
    let rate = latencies.len() as u128 * 1000 / elapsed.as_millis().max(1);
    println!(
        "write  writers={writers:>3}  entries={:>7}  entries/s={rate:>6}  p50={:?}  p99={:?}  sealer backlog at end={backlog} (sealed in {catch_up:?})",
        latencies.len(),
        percentile(&latencies, 50),
        percentile(&latencies, 99),
    );
    Ok(())
}

const YEAR_MICROS: i64 = 365 * 24 * 3_600_000_000;

/// Writes `entries` gifts spread evenly over a year. Idempotent: a rerun replays what is
/// there and adds what is missing.
async fn load(
    store: &Store,
    clock: &Arc<dyn Clock>,
    journal_options: JournalOptions,
    c: &Campaign,
    entries: i64,
    load_writers: i64,
) -> anyhow::Result<()> {
    let spacing = YEAR_MICROS / entries.max(1);
    let at = move |n: i64| year_start() + chrono::Duration::microseconds(n * spacing);
    let started = Instant::now();
    let sealer = sealer::spawn(store.clone(), clock.clone());
    let journal = Journal::start(store.clone(), clock.clone(), journal_options);
    let mut tasks = Vec::new();
    for w in 0..load_writers {
        let (journal, c) = (journal.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while n < entries {
                journal.record(&c, gift(format!("b{n}"), n, at(n))?).await?;
                n += load_writers;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await?.context("loading")?;
    }
    sealer.stop().await;
    println!(
        "loaded {entries} entries (sealed) in {:?}",
        started.elapsed()
    );
    Ok(())
}

async fn balance(
    store: &Store,
    clock: &Arc<dyn Clock>,
    journal_options: JournalOptions,
    entries: i64,
    load_writers: i64,
    samples: usize,
    no_load: bool,
) -> anyhow::Result<()> {
    let c = campaign(store, &format!("bench-balance-{entries}")).await?;
    if !no_load {
        load(store, clock, journal_options, &c, entries, load_writers).await?;
    }
    // Time "every account's balance as of t" at pseudo-random instants of the year.
    let mut latencies = Vec::with_capacity(samples);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut check = 0_i64;
    for _ in 0..samples {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let t = year_start() + chrono::Duration::microseconds((seed % YEAR_MICROS as u64) as i64);
        let start = Instant::now();
        let balances = store.balances(c.id, t).await?;
        latencies.push(start.elapsed());
        check += balances.iter().map(|b| b.signed.minor()).sum::<i64>();
    }
    anyhow::ensure!(check == 0, "balances did not sum to zero");
    latencies.sort();
    println!(
        "balance-as-of  entries={entries}  samples={samples}  p50={:?}  p99={:?}  max={:?}",
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies[latencies.len() - 1]
    );
    Ok(())
}
