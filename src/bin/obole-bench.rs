//! `obole-bench`: reproducible ledger benchmarks (results go in BENCHMARKS.md).
//!
//! - `write`: posting throughput with 1, 8 and 64 concurrent writers (each a gift entry of
//!   three postings, unique key, one transaction), with the sealer running beside them as
//!   in production; then how long the sealer needs to catch up.
//! - `balance`: loads a journal of N entries spread over a year (resumable), seals it, and
//!   measures the latency of "every account's balance as of t" for random t.
//! - `reports` (PostgreSQL): seeds D donors and N contributions spread over a year (donors
//!   and contributions in bulk SQL, each gift's ledger entry through the journal and the
//!   sealer, as the intake would post it), then times the `summary` report as of random
//!   days and the donor register's export (rows per second, peak memory of the process).
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

/// The allocator the `obole` binary runs with (src/main.rs), so the bench measures what is
/// deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Summary latency and donor-register export speed over N contributions (PostgreSQL).
    Reports {
        #[arg(long, default_value_t = 1_000_000)]
        contributions: i64,
        #[arg(long, default_value_t = 200_000)]
        donors: i64,
        /// Writers used to post the gifts' entries.
        #[arg(long, default_value_t = 32)]
        load_writers: i64,
        /// Summaries to time.
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Skip loading: an earlier run seeded this database.
        #[arg(long)]
        no_load: bool,
    },
}

/// The start of the benchmark campaign's year; entries are spread over the next 365 days.
fn year_start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_798_761_600, 0).unwrap_or_default() // 2027-01-01T00:00:00Z
}

/// The donation form's preset amounts, in cents.
const PRESET_CENTS: [i64; 8] = [500, 1_000, 2_000, 2_700, 5_000, 10_000, 25_000, 50_000];

/// What the `n`th bench gift gives, in cents: nine in ten take one of the form's presets, one
/// in ten types a whole number of euros from 2 to 1,000 — the shape of small-donor campaigns,
/// where a handful of amounts make most gifts. `GIFT_CENTS_SQL` is the same in SQL.
fn gift_cents(n: i64) -> i64 {
    let mixed = (n * 2_654_435_769) % 2_147_483_648;
    if mixed % 10 == 0 {
        (2 + (mixed / 10) % 999) * 100
    } else {
        PRESET_CENTS[usize::try_from(mixed % 8).unwrap_or(0)]
    }
}

/// [`gift_cents`] of the series number `g`.
const GIFT_CENTS_SQL: &str = "CASE WHEN (g::int8 * 2654435769) % 2147483648 % 10 = 0
         THEN (2 + ((g::int8 * 2654435769) % 2147483648 / 10) % 999) * 100
         ELSE (ARRAY[500, 1000, 2000, 2700, 5000, 10000, 25000, 50000])[(g::int8 * 2654435769) % 2147483648 % 8 + 1]
    END";

fn gift(key: String, n: i64, at: DateTime<Utc>) -> anyhow::Result<EntryDraft> {
    let eur = |m| Money::from_minor(m, Currency::EUR);
    let gross = gift_cents(n);
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
        Bench::Reports {
            contributions,
            donors,
            load_writers,
            samples,
            no_load,
        } => {
            let scale = Scale {
                contributions,
                donors,
                load_writers,
            };
            reports(
                &store,
                &args.database_url,
                &clock,
                journal_options,
                scale,
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

struct Scale {
    contributions: i64,
    donors: i64,
    load_writers: i64,
}

/// Seeds the campaign: donors and contributions in bulk, then each gift's entry through the
/// journal (linked to its contribution and donor) and the sealer.
async fn seed(
    store: &Store,
    url: &str,
    clock: &Arc<dyn Clock>,
    journal_options: JournalOptions,
    c: &Campaign,
    scale: &Scale,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let pool = sqlx::PgPool::connect(url).await?;
    let spacing = YEAR_MICROS / scale.contributions.max(1);
    let first_donor: i64 = sqlx::query_scalar(
        "WITH made AS (
             INSERT INTO donors (campaign_id, identity_key, name, email, line1, postal_code, city, country, created_at)
             SELECT $1, 'bench:' || g, 'Donor ' || g, 'donor' || g || '@example.fr', g || ' rue de la Paix',
                    '75002', 'Paris', 'FR', now()
             FROM generate_series(1, $2) AS g
             RETURNING id)
         SELECT min(id) FROM made",
    )
    .bind(c.id.0)
    .bind(scale.donors)
    .fetch_one(&pool)
    .await?;
    sqlx::query("UPDATE donors SET person_id = id WHERE campaign_id = $1 AND person_id IS NULL")
        .bind(c.id.0)
        .execute(&pool)
        .await?;
    let first_gift: i64 = sqlx::query_scalar(&format!(
        "WITH made AS (
             INSERT INTO contributions (campaign_id, donor_id, charge_id, amount, currency, paid_at, created_at,
                                        method, declared)
             SELECT $1, $2 + g % $3, 'ch_bench_' || g, {GIFT_CENTS_SQL}, 'EUR',
                    $4 + make_interval(secs => (g * $5) / 1000000.0), now(), 'card', '{{\"nationality\":\"FR\"}}'
             FROM generate_series(0, $6 - 1) AS g
             RETURNING id)
         SELECT min(id) FROM made",
    ))
    .bind(c.id.0)
    .bind(first_donor)
    .bind(scale.donors)
    .bind(year_start())
    .bind(spacing)
    .bind(scale.contributions)
    .fetch_one(&pool)
    .await?;
    // The SQL amounts are the Rust ones (the entries posted below use `gift_cents`).
    let amounts: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id - $2, amount FROM contributions WHERE campaign_id = $1 AND id >= $2 ORDER BY id LIMIT 1000",
    )
    .bind(c.id.0)
    .bind(first_gift)
    .fetch_all(&pool)
    .await?;
    for (n, amount) in amounts {
        anyhow::ensure!(
            amount == gift_cents(n),
            "gift {n}: SQL {amount}, Rust {}",
            gift_cents(n)
        );
    }
    pool.close().await;
    println!(
        "seeded {} donors and {} contributions in {:?}",
        scale.donors,
        scale.contributions,
        started.elapsed()
    );

    let sealer = sealer::spawn(store.clone(), clock.clone());
    let journal = Journal::start(store.clone(), clock.clone(), journal_options);
    let mut tasks = Vec::new();
    let (count, writers, donors) = (scale.contributions, scale.load_writers, scale.donors);
    for w in 0..writers {
        let (journal, c) = (journal.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while n < count {
                let at = year_start() + chrono::Duration::microseconds(n * spacing);
                let links = obole::ledger::entry::Links {
                    source: Some(format!("stripe:txn_bench_{n}")),
                    event_id: None,
                    donor_id: Some(first_donor + n % donors),
                    contribution_id: Some(first_gift + n),
                };
                let draft = gift(format!("stripe:txn_bench_{n}"), n, at)?.links(links);
                journal.record(&c, draft).await?;
                n += writers;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await?.context("posting the gifts")?;
    }
    sealer.stop().await;
    println!(
        "posted and sealed {count} gift entries in {:?}",
        started.elapsed()
    );
    Ok(())
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

async fn reports(
    store: &Store,
    url: &str,
    clock: &Arc<dyn Clock>,
    journal_options: JournalOptions,
    scale: Scale,
    samples: usize,
    no_load: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        store.kind() == "postgres",
        "the reports bench seeds PostgreSQL"
    );
    let slug = format!("bench-reports-{}", scale.contributions);
    let c = campaign(store, &slug).await?;
    if !no_load {
        seed(store, url, clock, journal_options, &c, &scale).await?;
    }
    let packs = obole::compliance::Packs::embedded()?;
    let before = peak_memory_mib();

    // The summary as of pseudo-random days of the year (end of day, Paris).
    let mut latencies = Vec::with_capacity(samples);
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut last = serde_json::Value::Null;
    for _ in 0..samples {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let day = year_start().date_naive() + chrono::Days::new(seed % 365);
        let as_of = obole::clock::parse_as_of(&day.to_string(), c.timezone)?;
        let request = obole::reports::Request {
            kind: obole::reports::Kind::Summary,
            as_of,
            format: obole::reports::Format::Json,
            view: obole::reports::View::Full,
        };
        let start = Instant::now();
        let body = obole::reports::render(store, &packs, &c, request).await?;
        latencies.push(start.elapsed());
        last = serde_json::from_slice(&body)?;
    }
    let first = latencies[0];
    latencies.sort();
    println!(
        "summary  contributions={}  samples={samples}  first={first:?}  p50={:?}  p90={:?}  p99={:?}  max={:?}  (last: {} gifts, {} donors, gross {})",
        scale.contributions,
        percentile(&latencies, 50),
        percentile(&latencies, 90),
        percentile(&latencies, 99),
        latencies[latencies.len() - 1],
        last["contributions"],
        last["donors"],
        last["gross"],
    );

    // The donor register, whole, as CSV, read as fast as it comes.
    let request = obole::reports::Request {
        kind: obole::reports::Kind::Donors,
        as_of: year_start() + chrono::Duration::days(366),
        format: obole::reports::Format::Csv,
        view: obole::reports::View::Full,
    };
    let (out, mut chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let (mut rows, mut bytes) = (0_u64, 0_u64);
        while let Some(chunk) = chunks.recv().await {
            rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            bytes += chunk.len() as u64;
        }
        (rows, bytes)
    });
    obole::reports::write(store, &packs, &c, request, out).await?;
    let (rows, bytes) = reader.await?;
    let elapsed = start.elapsed();
    let gifts = rows.saturating_sub(2); // the header and the seal's row
    println!(
        "donors register  rows={gifts}  bytes={bytes}  in {elapsed:?}  rows/s={}  peak memory: {} MiB before the reports, {} MiB after",
        u128::from(gifts) * 1000 / elapsed.as_millis().max(1),
        before.unwrap_or(0),
        peak_memory_mib().unwrap_or(0),
    );
    Ok(())
}
