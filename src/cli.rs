//! The `obole` command line. Every flag also reads an environment variable.
//!
//! Exit codes: 0 success; 1 the command could not run (bad input, unreachable database,
//! unknown campaign); 2 bad usage (from clap); 3 `verify` found the books broken, or
//! `reconcile` found the ledger and Stripe disagreeing.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use chrono::SecondsFormat;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

mod compliance;

use crate::app::{shutdown_signal, App, ServeSettings};
use crate::audit::{self, VerifyError};
use crate::campaign::{Campaign, NewCampaign};
use crate::checkout::guard::CheckoutLimits;
use crate::clock::{parse_as_of, parse_since, Clock, SystemClock};
use crate::http::Limits;
use crate::ids::Slug;
use crate::intake::reconcile::{self, LedgerMovements};
use crate::intake::worker::WorkerOptions;
use crate::intake::{InboxEvent, InboxStatus};
use crate::ledger::seal::{Hash32, Seal};
use crate::provider::stripe::client::StripeClient;
use crate::provider::stripe::{signature, StripeSettings};
use crate::sealer;
use crate::store::{Store, StoreOptions};
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "obole",
    version,
    about = "Micro-donation payment and compliance ledger for political campaigns"
)]
pub struct Cli {
    /// Database: sqlite://PATH (embedded, the default) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "OBOLE_DATABASE_URL",
        default_value = "sqlite://obole.db",
        global = true
    )]
    pub database_url: String,
    /// Database connections (PostgreSQL) or readers (SQLite).
    #[arg(long, env = "OBOLE_DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub pool_size: u32,
    /// Log lines as human-readable text or as JSON objects.
    #[arg(long, env = "OBOLE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// A directory of rule packs (*.toml) to use instead of the ones built in.
    #[arg(long, env = "OBOLE_COMPLIANCE_DIR", global = true)]
    pub compliance_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (health at /healthz, readiness at /readyz, metrics at /metrics).
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Recompute every seal link and every balance; exit 3 naming the first break.
    Verify(VerifyArgs),
    /// Seal every queued entry now (the server does this continuously).
    Seal,
    /// Campaigns: create one, list them.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Print every account's balance as of a date or instant.
    Balance(BalanceArgs),
    /// The Stripe webhook inbox: failures, retries.
    #[command(subcommand)]
    Intake(IntakeCommand),
    /// Compare Stripe's balance transactions and payouts with the ledger; exit 3 on any
    /// difference.
    Reconcile(ReconcileArgs),
    /// A report as of a date (summary, donors, trial-balance, journal, reconciliation,
    /// exceptions), as JSON, CSV or PDF, with the seal that covers it.
    Report(ReportArgs),
    /// API tokens: create one (printed once; only its hash is kept).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Gifts recorded by hand: cheques, transfers, cash.
    #[command(subcommand)]
    Contribution(compliance::ContributionCommand),
    /// Donor identity: who is the same person (show, merge, split).
    #[command(subcommand)]
    Donor(compliance::DonorCommand),
    /// Money owed back to donors, and the replay of stored decisions.
    #[command(subcommand)]
    Compliance(compliance::ComplianceCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OBOLE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The URL donors and Stripe reach this server at (the checkout's return links);
    /// default http:// and the listening address. https:// turns on HSTS and Secure cookies.
    #[arg(long, env = "OBOLE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Key of the donation form's anti-forgery tokens and signed links (32+ characters);
    /// random per process when unset, so set it when several servers share an address.
    #[arg(long, env = "OBOLE_FORM_SECRET", hide_env_values = true)]
    pub form_secret: Option<String>,
    /// Checkouts one client address may start per 10 minutes (card-testing guard).
    #[arg(long, env = "OBOLE_CHECKOUTS_PER_CLIENT", default_value_t = CheckoutLimits::default().per_client.max)]
    pub checkouts_per_client: u32,
    /// Checkouts one donor (email) may start per 10 minutes.
    #[arg(long, env = "OBOLE_CHECKOUTS_PER_DONOR", default_value_t = CheckoutLimits::default().per_donor.max)]
    pub checkouts_per_donor: u32,
    /// Seed a demo campaign with a few gifts.
    #[arg(long, env = "OBOLE_DEMO")]
    pub demo: bool,
    /// Seconds a request may take before it is answered 408.
    #[arg(long, env = "OBOLE_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "OBOLE_BODY_LIMIT_BYTES", default_value_t = 256 * 1024)]
    pub body_limit_bytes: usize,
    #[command(flatten)]
    pub stripe: StripeArgs,
    /// Stripe objects the intake worker synchronises at once (its Stripe calls overlap).
    #[arg(long, env = "OBOLE_INTAKE_CONCURRENCY", default_value_t = WorkerOptions::default().concurrency)]
    pub intake_concurrency: usize,
    /// Inbox events the intake worker takes per round.
    #[arg(long, env = "OBOLE_INTAKE_BATCH", default_value_t = WorkerOptions::default().batch)]
    pub intake_batch: i64,
}

/// How to reach the campaign's Stripe account.
#[derive(Debug, Args)]
pub struct StripeArgs {
    /// Stripe webhook signing secret(s), comma-separated while rolling (whsec_…).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// Stripe secret key (sk_live_… or sk_test_…); its mode decides which events are accepted.
    /// Without it events are stored but not posted.
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// Seconds a webhook's signed timestamp may differ from now.
    #[arg(long, env = "STRIPE_WEBHOOK_TOLERANCE_SECS", default_value_t = signature::DEFAULT_TOLERANCE_SECS)]
    pub stripe_webhook_tolerance_secs: i64,
    /// Stripe API base URL (a simulated Stripe in tests).
    #[arg(long, env = "STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
    /// Most Stripe API calls per second (default: 40 with a live key, 20 with a test key,
    /// under Stripe's limits; 0: no limit, for a simulator).
    #[arg(long, env = "STRIPE_API_RATE")]
    pub stripe_api_rate: Option<u32>,
    /// The campaign this Stripe account belongs to: payouts post to it, and so do payments
    /// that name no campaign (flagged for review).
    #[arg(long, env = "STRIPE_CAMPAIGN")]
    pub stripe_campaign: Option<String>,
}

impl StripeArgs {
    fn settings(&self) -> anyhow::Result<StripeSettings> {
        Ok(StripeSettings::new(
            self.stripe_webhook_secret.as_deref(),
            self.stripe_secret_key.as_deref(),
            self.stripe_webhook_tolerance_secs,
            self.stripe_api_base.as_deref(),
        )?
        .with_api_rate(self.stripe_api_rate))
    }

    fn campaign(&self) -> anyhow::Result<Option<Slug>> {
        self.stripe_campaign
            .as_deref()
            .map(Slug::parse)
            .transpose()
            .context("STRIPE_CAMPAIGN")
    }
}

#[derive(Debug, Subcommand)]
pub enum IntakeCommand {
    /// List the webhook events the worker gave up on, with their errors.
    Failures(FormatArg),
    /// Put a parked event back in the queue (after fixing its cause).
    Retry {
        /// The Stripe event id (evt_…).
        event_id: String,
    },
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Campaign slug.
    #[arg(long)]
    pub campaign: String,
    /// Only Stripe's transactions created from this date (campaign time zone) or instant;
    /// default: the whole history, which also reports ledger movements Stripe does not know.
    #[arg(long)]
    pub since: Option<String>,
    #[command(flatten)]
    pub stripe: StripeArgs,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign and its chart of accounts.
    Create {
        /// URL name: lower-case letters, digits, hyphens (e.g. dupont-2027).
        #[arg(long)]
        slug: String,
        /// Name shown to donors and on reports.
        #[arg(long)]
        name: String,
        /// Rule pack: fr-candidate, fr-party or us-federal-candidate-2025-2026.
        #[arg(long)]
        rules: String,
        /// ISO 4217 currency of the campaign's books (EUR, USD, …).
        #[arg(long)]
        currency: String,
        /// IANA time zone in which dates are read (Europe/Paris, America/New_York, …).
        #[arg(long)]
        timezone: String,
        /// The election the campaign runs in; caps are counted per election.
        #[arg(long)]
        election: Option<String>,
        /// First day of the financing period, when the law sets one (YYYY-MM-DD).
        #[arg(long, requires = "financing_until")]
        financing_from: Option<chrono::NaiveDate>,
        /// Last day of the financing period (YYYY-MM-DD), included.
        #[arg(long, requires = "financing_from")]
        financing_until: Option<chrono::NaiveDate>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List campaigns.
    List(FormatArg),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(value_enum)]
    pub kind: ReportKind,
    #[arg(long)]
    pub campaign: String,
    /// A date (the end of that day in the campaign's time zone) or an RFC 3339 instant;
    /// default now.
    #[arg(long)]
    pub as_of: Option<String>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
    pub format: ReportFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportKind {
    /// Gross, refunds, chargebacks, net, fees, gifts, donors, where the money is.
    Summary,
    /// The donor register: each person, each gift, aggregates, itemization, receipts.
    Donors,
    /// Every account's debit or credit balance.
    TrialBalance,
    /// Every entry with its postings (French campaigns: the FEC's columns).
    Journal,
    /// Per payout to the bank: the gifts, fees, refunds and disputes that made it up.
    Reconciliation,
    /// What the treasurer must act on: money owed back, held gifts, parked events.
    Exceptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
    Csv,
    Pdf,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token for one campaign's API and print it once.
    Create {
        #[arg(long)]
        campaign: String,
        #[arg(long, value_enum)]
        role: TokenRole,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    /// Sees donor identities; records offline gifts.
    Treasurer,
    /// Sees totals, the journal and seals; donor data masked.
    Auditor,
}

#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// Campaign slug.
    #[arg(long)]
    pub campaign: String,
    /// A date (end of that day in the campaign's time zone) or an RFC 3339 instant; default now.
    #[arg(long)]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A seal printed on a report, as SEQUENCE:HASH; the chain must still contain it.
    /// Repeat for several reports.
    #[arg(long = "seal", value_parser = parse_seal)]
    pub seals: Vec<Seal>,
    #[command(flatten)]
    pub format: FormatArg,
}

fn parse_seal(text: &str) -> Result<Seal, String> {
    let (sequence, hash) = text
        .split_once(':')
        .ok_or("expected SEQUENCE:HASH, e.g. 42:9f86d0…")?;
    Ok(Seal {
        sequence: sequence
            .parse()
            .map_err(|_| format!("{sequence:?} is not a sequence number"))?,
        hash: Hash32::from_hex(hash).ok_or_else(|| format!("{hash:?} is not 64 hex digits"))?,
    })
}

#[derive(Debug, Args)]
pub struct FormatArg {
    /// Output as a table for people or JSON for programs.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let options = StoreOptions {
        pool_size: cli.pool_size,
        ..StoreOptions::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if let Command::Serve(args) = cli.command {
        let settings = ServeSettings {
            database_url: cli.database_url,
            listen: args.listen,
            store: options,
            limits: Limits {
                request_timeout: Duration::from_secs(args.request_timeout_secs),
                body_bytes_max: args.body_limit_bytes,
            },
            stripe: args.stripe.settings()?,
            stripe_campaign: args.stripe.campaign()?,
            intake: WorkerOptions {
                concurrency: args.intake_concurrency.max(1),
                batch: args.intake_batch.max(1),
                ..WorkerOptions::default()
            },
            demo: args.demo,
            compliance_dir: cli.compliance_dir.clone(),
            public_url: args.public_url,
            checkout_limits: {
                let mut limits = CheckoutLimits::default();
                limits.per_client.max = args.checkouts_per_client;
                limits.per_donor.max = args.checkouts_per_donor;
                limits
            },
            form_secret: args.form_secret,
        };
        let app = App::build(&settings, clock).await?;
        app.run_until_stopped(shutdown_signal()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let packs = match &cli.compliance_dir {
        Some(dir) => crate::compliance::Packs::load_dir(dir)?,
        None => crate::compliance::Packs::embedded()?,
    };
    let store = Store::connect(&cli.database_url, &options).await?;
    store.migrate().await.context("migrating the database")?;
    let result = command(cli.command, &store, &packs, clock.as_ref()).await;
    store.close().await;
    result
}

async fn command(
    command: Command,
    store: &Store,
    packs: &crate::compliance::Packs,
    clock: &dyn Clock,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(_) => unreachable!("`execute` runs `serve` without this shared store"),
        Command::Migrate => {
            println!("database is up to date ({})", store.kind());
        }
        Command::Seal => {
            let sealed = sealer::seal_all(store, clock).await?;
            let status = store.seal_status().await?;
            println!(
                "sealed {sealed} entries; head #{} {}",
                status.head.sequence, status.head.hash
            );
        }
        Command::Verify(args) => return verify(store, &args.seals, args.format.format).await,
        Command::Campaign(CampaignCommand::Create {
            slug,
            name,
            rules,
            currency,
            timezone,
            election,
            financing_from,
            financing_until,
            format,
        }) => {
            let mut new = NewCampaign::parse(
                &slug,
                &name,
                &rules,
                &currency,
                &timezone,
                election.as_deref(),
            )?;
            if let (Some(from), Some(until)) = (financing_from, financing_until) {
                new = new.financing(from, until)?;
            }
            if let Some(pack) = packs.get(&new.rule_pack) {
                if pack.caps_per_election() && new.election.is_none() {
                    return Err(anyhow!(
                        "rule pack {} caps gifts per election: name the campaign's election with --election",
                        pack.id
                    ));
                }
            }
            let campaign = store.create_campaign(&new, clock.now()).await?;
            match format.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&campaign)?),
                Format::Text => println!(
                    "created campaign {} ({}, {}, {})",
                    campaign.slug, campaign.currency, campaign.timezone, campaign.rule_pack
                ),
            }
        }
        Command::Campaign(CampaignCommand::List(FormatArg { format })) => {
            let campaigns = store.campaigns().await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&campaigns)?),
                Format::Text => print_campaigns(&campaigns),
            }
        }
        Command::Balance(args) => balance(store, clock, args).await?,
        Command::Intake(IntakeCommand::Failures(FormatArg { format })) => {
            let parked = store
                .stripe_events_with_status(InboxStatus::Parked, 10_000)
                .await?;
            match format {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&failures_json(&parked))?)
                }
                Format::Text => print_failures(&parked),
            }
        }
        Command::Intake(IntakeCommand::Retry { event_id }) => {
            if !store.requeue_stripe_event(&event_id).await? {
                return Err(anyhow!(
                    "event {event_id} is not parked (see `obole intake failures`)"
                ));
            }
            println!("event {event_id} is queued again; a running server will post it");
        }
        Command::Reconcile(args) => return reconcile(store, args).await,
        Command::Report(args) => {
            let campaign = find_campaign(store, &args.campaign).await?;
            let as_of = match &args.as_of {
                Some(text) => parse_as_of(text, campaign.timezone)?,
                None => clock.now(),
            };
            let kind = match args.kind {
                ReportKind::Summary => crate::reports::Kind::Summary,
                ReportKind::Donors => crate::reports::Kind::Donors,
                ReportKind::TrialBalance => crate::reports::Kind::TrialBalance,
                ReportKind::Journal => crate::reports::Kind::Journal,
                ReportKind::Reconciliation => crate::reports::Kind::Reconciliation,
                ReportKind::Exceptions => crate::reports::Kind::Exceptions,
            };
            let format = match args.format {
                ReportFormat::Json => crate::reports::Format::Json,
                ReportFormat::Csv => crate::reports::Format::Csv,
                ReportFormat::Pdf => crate::reports::Format::Pdf,
            };
            let access = crate::access::ReportAccess {
                campaign_id: campaign.id,
                token_id: None,
                role: "operator",
                kind: kind.as_str(),
                as_of,
                format: format.as_str(),
            };
            store.log_report(&access, clock.now()).await?;
            let request = crate::reports::Request {
                kind,
                as_of,
                format,
                view: crate::reports::View::Full,
            };
            write_report(store, packs, &campaign, request, args.output.as_deref()).await?;
        }
        Command::Token(TokenCommand::Create { campaign, role }) => {
            let campaign = find_campaign(store, &campaign).await?;
            let role = match role {
                TokenRole::Treasurer => crate::access::Role::Treasurer,
                TokenRole::Auditor => crate::access::Role::Auditor,
            };
            let (token, hash) = crate::access::generate()
                .map_err(|e| anyhow!("no randomness from the operating system: {e}"))?;
            store
                .create_token(campaign.id, role, &hash, clock.now())
                .await?;
            eprintln!(
                "{} token for {} (shown once; keep it secret):",
                role.as_str(),
                campaign.slug
            );
            println!("{token}");
        }
        Command::Contribution(command) => {
            return compliance::contribution(store, packs, clock, command).await
        }
        Command::Donor(command) => return compliance::donor(store, clock, command).await,
        Command::Compliance(command) => {
            return compliance::compliance(store, packs, clock, command).await
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn failures_json(parked: &[InboxEvent]) -> serde_json::Value {
    json!(parked
        .iter()
        .map(|e| json!({
            "event": e.event_id,
            "type": e.kind,
            "received_at": e.received_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "attempts": e.attempts,
            "error": e.last_error,
        }))
        .collect::<Vec<_>>())
}

fn print_failures(parked: &[InboxEvent]) {
    if parked.is_empty() {
        println!("no parked events: every Stripe event received has been handled or is queued");
        return;
    }
    for e in parked {
        println!(
            "{}  {}  received {}  {} attempts\n    {}",
            e.event_id,
            e.kind,
            e.received_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            e.attempts,
            e.last_error.as_deref().unwrap_or("(no error recorded)")
        );
    }
    println!("fix the cause, then `obole intake retry EVENT_ID`");
}

/// Lists Stripe's transactions (all, or since a date) and the payouts among them, compares
/// them with the ledger, and prints every finding.
async fn reconcile(store: &Store, args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let campaign = find_campaign(store, &args.campaign).await?;
    let api = StripeClient::new(&args.stripe.settings()?).context("configuring Stripe")?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, campaign.timezone).map(|at| at.timestamp()))
        .transpose()?;
    let stripe = api
        .balance_transactions(since, None)
        .await
        .context("listing Stripe's balance transactions")?;
    let mut ledger: LedgerMovements = LedgerMovements::new();
    for (source, account, amount) in store.sourced_postings(campaign.id, "stripe:").await? {
        if let Some(txn) = source.strip_prefix("stripe:") {
            ledger
                .entry(txn.to_owned())
                .or_default()
                .push((account, amount));
        }
    }
    let mut findings = reconcile::compare(&campaign, &stripe, &ledger, since.is_none());
    let mut payouts = 0;
    for txn in stripe.iter().filter(|t| t.reporting_category == "payout") {
        let Some(payout) = txn.source.as_deref() else {
            continue;
        };
        payouts += 1;
        let included = api.balance_transactions(None, Some(payout)).await?;
        findings.extend(reconcile::check_payout(
            payout,
            -txn.amount,
            Some(&txn.id),
            &included,
        ));
    }
    match args.format.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "campaign": campaign.slug,
                "since": since,
                "transactions": stripe.len(),
                "payouts": payouts,
                "findings": findings,
            }))?
        ),
        Format::Text => {
            println!(
                "{}: {} Stripe transactions and {payouts} payouts checked{}",
                campaign.slug,
                stripe.len(),
                if since.is_some() {
                    " (since the given date)"
                } else {
                    ""
                }
            );
            for finding in &findings {
                println!("  {}", serde_json::to_string(finding)?);
            }
            if findings.is_empty() {
                println!("the ledger agrees with Stripe");
            }
        }
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn print_campaigns(campaigns: &[Campaign]) {
    if campaigns.is_empty() {
        println!("no campaigns yet: create one with `obole campaign create`");
        return;
    }
    println!(
        "{:<24} {:<8} {:<20} {:<32} name",
        "slug", "currency", "timezone", "rules"
    );
    for c in campaigns {
        println!(
            "{:<24} {:<8} {:<20} {:<32} {}",
            c.slug,
            c.currency,
            c.timezone.name(),
            c.rule_pack,
            c.name
        );
    }
}

/// Streams a report to `output` (written beside it, then renamed: a failed report never
/// leaves a truncated file behind) or to standard output.
async fn write_report(
    store: &Store,
    packs: &crate::compliance::Packs,
    campaign: &crate::campaign::Campaign,
    request: crate::reports::Request,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let partial = output.map(|path| path.with_extension("partial"));
    let mut sink: Box<dyn Write> = match &partial {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout()),
    };
    let (out, mut chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    // Text ends with a line break (a terminal's prompt starts on its own line); a PDF as is.
    let text = request.format != crate::reports::Format::Pdf;
    let drain = async {
        let mut ends_a_line = true;
        while let Some(chunk) = chunks.recv().await {
            sink.write_all(&chunk)?;
            if let Some(last) = chunk.last() {
                ends_a_line = *last == b'\n';
            }
        }
        if text && !ends_a_line {
            sink.write_all(b"\n")?;
        }
        sink.flush()
    };
    let (written, drained) = tokio::join!(
        crate::reports::write(store, packs, campaign, request, out),
        drain
    );
    written?;
    drained.context("writing the report")?;
    if let (Some(partial), Some(path)) = (&partial, output) {
        std::fs::rename(partial, path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn find_campaign(store: &Store, slug: &str) -> anyhow::Result<Campaign> {
    let slug = Slug::parse(slug)?;
    store
        .campaign(&slug)
        .await?
        .ok_or_else(|| anyhow!("no campaign \"{slug}\"; `obole campaign list` shows the campaigns"))
}

async fn balance(store: &Store, clock: &dyn Clock, args: BalanceArgs) -> anyhow::Result<()> {
    let campaign = find_campaign(store, &args.campaign).await?;
    let as_of = match &args.as_of {
        Some(text) => parse_as_of(text, campaign.timezone)?,
        None => clock.now(),
    };
    let balances = store.balances(campaign.id, as_of).await?;
    let seal = store.seal_status().await?;
    let as_of_utc = as_of.to_rfc3339_opts(SecondsFormat::Micros, true);
    match args.format.format {
        Format::Json => {
            let accounts: Vec<_> = balances
                .iter()
                .map(|b| json!({ "account": b.account, "kind": b.kind, "balance": b.natural().to_decimal().to_string(), "signed": b.signed.to_decimal().to_string() }))
                .collect();
            let body = json!({
                "campaign": campaign.slug,
                "currency": campaign.currency,
                "as_of": as_of_utc,
                "accounts": accounts,
                "seal": seal.head,
                "unsealed": seal.unsealed,
            });
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        Format::Text => {
            let local = as_of.with_timezone(&campaign.timezone);
            println!(
                "{} ({}), as of {} {} ({as_of_utc})",
                campaign.name,
                campaign.currency,
                local.format("%Y-%m-%d %H:%M:%S"),
                campaign.timezone.name()
            );
            println!("{:<32} {:<14} {:>18}", "account", "kind", "balance");
            for b in &balances {
                println!(
                    "{:<32} {:<14} {:>18}",
                    b.account,
                    b.kind.as_str(),
                    b.natural().to_decimal()
                );
            }
            println!(
                "seal: #{} {} ({} entries not yet sealed)",
                seal.head.sequence, seal.head.hash, seal.unsealed
            );
        }
    }
    Ok(())
}

async fn verify(store: &Store, checkpoints: &[Seal], format: Format) -> anyhow::Result<ExitCode> {
    match audit::verify(store, checkpoints).await {
        Ok(verified) => {
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "ok": true, "report": verified }))?
                ),
                Format::Text => {
                    let head = verified
                        .summary
                        .head
                        .map(|h| format!("#{} {}", h.sequence, h.hash))
                        .unwrap_or_else(|| "empty".into());
                    println!(
                        "ok: {} entries and {} postings verified; chain head {head}; {} entries not yet sealed",
                        verified.summary.entries_sealed, verified.summary.postings, verified.unsealed
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ (VerifyError::Broken(_) | VerifyError::Derived(_))) => {
            let brk = match &error {
                VerifyError::Broken(brk) => brk.to_string(),
                derived => derived.to_string(),
            };
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({ "ok": false, "break": brk.to_string() })
                    )?
                ),
                Format::Text => println!("BROKEN: {brk}"),
            }
            eprintln!("verify failed: {brk}");
            Ok(ExitCode::from(3))
        }
        Err(error) => Err(error.into()),
    }
}
