//! The donation form under load (results go in BENCHMARKS.md): `C` concurrent clients (a
//! closed loop: each sends its next request when the last is answered, optionally paced to a
//! total offered rate) first render `GET /donate/demo`, then submit it: each submission a new
//! donor, screened under their person's lock, reserved, with a Checkout session opened at the
//! demo provider (which speaks Stripe's API over HTTP on localhost), answered with the 303.
//! Latency is measured per request at the client; the form fetch before each submission
//! (for its token and cookie) is not counted in the submit latency.
//!
//! Everything runs in this one process on this machine, with the database.
//!
//! `cargo bench --bench checkout -- --database-url postgres://… --clients 200 --requests 20000`

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::Parser;
use obole::app::{App, ServeSettings};
use obole::checkout::guard::CheckoutLimits;
use obole::clock::SystemClock;
use obole::http::Limits;
use obole::intake::worker::WorkerOptions;
use obole::provider::stripe::StripeSettings;
use obole::store::{Store, StoreOptions};
use support::{per_second, summary};

#[derive(Parser)]
#[command(about = "Obole donation form benchmark")]
struct Args {
    #[arg(
        long,
        env = "OBOLE_DATABASE_URL",
        default_value = "sqlite://bench-checkout.db"
    )]
    database_url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Renders, then submissions, in all.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Total offered requests per second (0: each client as fast as it is answered).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What one client needs to submit: the form's cookie and token.
async fn open_form(client: &reqwest::Client, url: &str) -> anyhow::Result<(String, String)> {
    let page = client.get(url).send().await?;
    ensure!(page.status() == 200, "render: {}", page.status());
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let body = page.text().await?;
    let marker = r#"name="form_token" value=""#;
    let start = body.find(marker).map(|i| i + marker.len()).unwrap_or(0);
    let token = body[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok((cookie, token))
}

fn form(token: &str, n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("form_token", token.to_owned()),
        ("amount", "other".into()),
        ("amount_other", format!("{}", 5 + n % 200)),
        ("name", format!("Donor {n}")),
        ("email", format!("donor{n}@example.fr")),
        ("address_line1", format!("{} rue de la Paix", n + 1)),
        ("postal_code", "75002".into()),
        ("city", "Paris".into()),
        ("country", "FR".into()),
        ("nationality", "FR".into()),
        ("attest", "natural_person".into()),
        ("attest", "own_funds".into()),
    ]
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Render,
    Submit,
}

/// Runs `requests` of `phase` over `clients`; the latencies and the wall time.
async fn run(args: &Args, base: &str, phase: Phase) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let interval = (args.rate > 0).then(|| Duration::from_secs(1) / args.rate as u32);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.clients.max(1) {
        let (next, url, requests) = (next.clone(), format!("{base}/donate/demo"), args.requests);
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    return anyhow::Ok(latencies);
                }
                if let Some(interval) = interval {
                    tokio::time::sleep_until((start + interval * n as u32).into()).await;
                }
                let began = Instant::now();
                match phase {
                    Phase::Render => {
                        let page = client.get(&url).send().await?;
                        ensure!(page.status() == 200, "render: {}", page.status());
                        page.bytes().await?;
                        latencies.push(began.elapsed());
                    }
                    Phase::Submit => {
                        let (cookie, token) = open_form(&client, &url).await?;
                        let began = Instant::now();
                        let answer = client
                            .post(&url)
                            .header("cookie", cookie)
                            .form(&form(&token, n))
                            .send()
                            .await?;
                        ensure!(answer.status() == 303, "submit: {}", answer.status());
                        latencies.push(began.elapsed());
                    }
                }
            }
        });
    }
    let mut all = Vec::with_capacity(args.requests);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok((all, start.elapsed()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = ServeSettings {
        database_url: args.database_url.clone(),
        listen: "127.0.0.1:0".parse()?,
        store: StoreOptions {
            pool_size: 32,
            ..StoreOptions::default()
        },
        limits: Limits {
            request_timeout: Duration::from_secs(30),
            body_bytes_max: 256 * 1024,
        },
        stripe: StripeSettings::new(None, None, 300, None)?,
        stripe_campaign: None,
        intake: WorkerOptions::default(),
        demo: true,
        compliance_dir: None,
        public_url: None,
        checkout_limits: CheckoutLimits::unlimited(),
        form_secret: None,
    };
    let app = App::build(&settings, Arc::new(SystemClock)).await?;
    let base = format!("http://{}", app.local_addr()?);
    let store: Store = app.store().clone();
    let before = store.kind();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    println!(
        "store: {before}  cores: {}  clients: {}  requests per phase: {}  offered rate: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.clients,
        args.requests,
        if args.rate == 0 {
            "as fast as answered".to_owned()
        } else {
            format!("{}/s", args.rate)
        },
    );
    for phase in [Phase::Render, Phase::Submit] {
        let (mut latencies, took) = run(&args, &base, phase).await?;
        println!(
            "{:<7} {:>6} requests in {:>6.2?}  {:>6}/s  {}",
            if phase == Phase::Render {
                "render"
            } else {
                "submit"
            },
            latencies.len(),
            took,
            per_second(latencies.len(), took),
            summary(&mut latencies),
        );
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}
