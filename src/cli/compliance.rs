//! The treasurer's compliance commands: offline gifts, donor identity (merge, split), money
//! owed back to donors, and the replay of stored decisions.

use std::process::ExitCode;

use anyhow::{anyhow, Context};
use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};

use super::{find_campaign, Format, FormatArg};
use crate::clock::Clock;
use crate::compliance::pack::Attestation;
use crate::compliance::screen::{DonorKind, Method};
use crate::compliance::{replay, Declaration, Packs};
use crate::enforcement::offline::{
    record_offline_gift, settle_owed, OfflineGift, OfflineOutcome, ReturnedFrom,
};
use crate::money::Money;
use crate::provider::stripe::objects::{Address, Payer};
use crate::store::{DonorPlacement, Store};

#[derive(Debug, Subcommand)]
pub enum ContributionCommand {
    /// Record a gift that did not come through Stripe (cheque, transfer, cash), screened by
    /// the campaign's rules; exit 4 when the rules refuse it (nothing is recorded).
    Add(ContributionArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OfflineMethod {
    Cheque,
    Transfer,
    DirectDebit,
    Cash,
}

#[derive(Debug, Args)]
pub struct ContributionArgs {
    #[arg(long)]
    pub campaign: String,
    #[arg(long, value_enum)]
    pub method: OfflineMethod,
    /// In the campaign's currency, e.g. 150.00.
    #[arg(long)]
    pub amount: String,
    /// The day the campaign received it (YYYY-MM-DD).
    #[arg(long)]
    pub received: NaiveDate,
    /// Cheque number, transfer id or cash receipt number: recording it again changes nothing.
    #[arg(long)]
    pub reference: String,
    /// The donor's full name.
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub address_line1: Option<String>,
    #[arg(long)]
    pub postal_code: Option<String>,
    #[arg(long)]
    pub city: Option<String>,
    /// ISO 3166 alpha-2 country of the postal address.
    #[arg(long)]
    pub country: Option<String>,
    /// ISO 3166 alpha-2.
    #[arg(long)]
    pub nationality: Option<String>,
    /// ISO 3166 alpha-2 country of residence.
    #[arg(long)]
    pub residence: Option<String>,
    /// What the donor attested, comma-separated: natural_person, own_funds,
    /// citizen_or_permanent_resident, not_federal_contractor, own_card.
    #[arg(long, value_delimiter = ',', value_parser = parse_attestation)]
    pub attest: Vec<Attestation>,
    /// The gift comes from a company, association or other legal person (without this flag
    /// the treasurer vouches that the donor is a natural person).
    #[arg(long)]
    pub legal_person: bool,
    #[arg(long)]
    pub employer: Option<String>,
    #[arg(long)]
    pub occupation: Option<String>,
    /// The election the donor designates (e.g. 2026-general); default the campaign's.
    #[arg(long)]
    pub election: Option<String>,
    #[command(flatten)]
    pub format: FormatArg,
}

fn parse_attestation(text: &str) -> Result<Attestation, String> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_owned())).map_err(|_| {
        format!("unknown attestation {text:?}; known: natural_person, own_funds, citizen_or_permanent_resident, not_federal_contractor, own_card")
    })
}

#[derive(Debug, Subcommand)]
pub enum DonorCommand {
    /// Show the person a donor belongs to: every donor row linked to them, and why.
    Show {
        #[arg(long)]
        donor: i64,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Make a donor (and everyone linked to them) the same person as another; their caps
    /// add up from now on.
    Merge {
        #[arg(long)]
        donor: i64,
        #[arg(long)]
        into: i64,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
    /// Make a donor a person of their own, apart from those they were linked to.
    Split {
        #[arg(long)]
        donor: i64,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ComplianceCommand {
    /// Money owed back to donors (excesses, refused gifts): due, requested, settled, overdue.
    Owed {
        #[arg(long)]
        campaign: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Record money owed back that the treasurer returned by hand (a cheque sent back, cash
    /// handed back, a transfer made).
    Settle {
        #[arg(long)]
        campaign: String,
        #[arg(long)]
        contribution: i64,
        #[arg(long)]
        amount: String,
        #[arg(long, value_enum)]
        from: SettleFrom,
        /// The returning cheque's number, transfer id or receipt.
        #[arg(long)]
        reference: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        returned: NaiveDate,
    },
    /// Re-run every stored decision of a campaign from its stored inputs; exit 3 if any
    /// comes out differently.
    Replay {
        #[arg(long)]
        campaign: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SettleFrom {
    Bank,
    Cheques,
    Cash,
}

/// Exit code for a gift the rules refuse.
const REFUSED: u8 = 4;

pub async fn contribution(
    store: &Store,
    packs: &Packs,
    clock: &dyn Clock,
    command: ContributionCommand,
) -> anyhow::Result<ExitCode> {
    let ContributionCommand::Add(args) = command;
    let campaign = find_campaign(store, &args.campaign).await?;
    let pack = packs
        .get(&campaign.rule_pack)
        .ok_or_else(|| anyhow!("rule pack {} is not known", campaign.rule_pack))?;
    let amount = Money::parse(&args.amount, campaign.currency)
        .with_context(|| format!("--amount {}", args.amount))?;
    let gift = OfflineGift {
        method: match args.method {
            OfflineMethod::Cheque => Method::Cheque,
            OfflineMethod::Transfer => Method::Transfer,
            OfflineMethod::DirectDebit => Method::DirectDebit,
            OfflineMethod::Cash => Method::Cash,
        },
        amount,
        received: args.received,
        reference: args.reference.clone(),
        payer: Payer {
            name: Some(args.name.clone()),
            email: args.email.clone(),
            address: Address {
                line1: args.address_line1.clone(),
                line2: None,
                city: args.city.clone(),
                postal_code: args.postal_code.clone(),
                state: None,
                country: args.country.clone(),
            },
            ..Payer::default()
        },
        declaration: Declaration {
            // The treasurer holds the cheque or the cash and vouches for who gave it.
            kind: Some(if args.legal_person {
                DonorKind::LegalPerson
            } else {
                DonorKind::NaturalPerson
            }),
            nationality: args.nationality.clone(),
            residence: args.residence.clone(),
            attestations: args.attest.iter().copied().collect(),
            employer: args.employer.clone(),
            occupation: args.occupation.clone(),
            election: args.election.clone(),
        },
    };
    let outcome = record_offline_gift(store, &campaign, pack, &gift, clock.now()).await?;
    if args.format.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    }
    Ok(match outcome {
        OfflineOutcome::Recorded {
            contribution_id,
            verdict,
            owed,
            ..
        } => {
            if args.format.format == Format::Text {
                println!("recorded contribution {contribution_id} ({amount}): {verdict}");
                if owed.is_positive() {
                    println!("{owed} passes a limit and is owed back to the donor; once returned, record it with `obole compliance settle`");
                }
            }
            ExitCode::SUCCESS
        }
        OfflineOutcome::Refused { reason, room, .. } => {
            if args.format.format == Format::Text {
                eprintln!("refused, nothing recorded: {reason}");
                if let Some(room) = room.filter(|r| r.is_positive()) {
                    eprintln!("this donor may still give {room}");
                }
            }
            ExitCode::from(REFUSED)
        }
    })
}

pub async fn donor(
    store: &Store,
    clock: &dyn Clock,
    command: DonorCommand,
) -> anyhow::Result<ExitCode> {
    let (donor, into, reason) = match command {
        DonorCommand::Show { donor, format } => {
            let person = store
                .person(donor)
                .await?
                .ok_or_else(|| anyhow!("no donor {donor}"))?;
            match format.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&person)?),
                Format::Text => {
                    println!("person {}:", person.person_id);
                    for d in &person.donors {
                        println!(
                            "  donor {}  campaign {}  {}  {}  {}{}",
                            d.donor_id,
                            d.campaign_id,
                            d.name.as_deref().unwrap_or("(no name)"),
                            d.email.as_deref().unwrap_or("(no email)"),
                            d.postal_code.as_deref().unwrap_or(""),
                            if d.placed_by_treasurer {
                                "  (placed by a treasurer)"
                            } else {
                                ""
                            }
                        );
                    }
                    for c in &person.changes {
                        println!(
                            "  {}  donor {} {} from person {} to {}: {}",
                            c.changed_at.format("%Y-%m-%d %H:%M"),
                            c.donor_id,
                            c.action,
                            c.from_person,
                            c.to_person,
                            c.reason
                        );
                    }
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        DonorCommand::Merge {
            donor,
            into,
            reason,
        } => (donor, Some(into), reason),
        DonorCommand::Split { donor, reason } => (donor, None, reason),
    };
    if reason.trim().is_empty() {
        return Err(anyhow!("--reason must say why, for the record"));
    }
    for id in std::iter::once(donor).chain(into) {
        if store.person(id).await?.is_none() {
            return Err(anyhow!("no donor {id}"));
        }
    }
    let person = store
        .place_donor(
            &DonorPlacement {
                donor,
                into,
                reason: reason.trim().to_owned(),
            },
            clock.now(),
        )
        .await?;
    println!("donor {donor} now belongs to person {person}; later gifts are screened with that person's history");
    Ok(ExitCode::SUCCESS)
}

pub async fn compliance(
    store: &Store,
    packs: &Packs,
    clock: &dyn Clock,
    command: ComplianceCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        ComplianceCommand::Owed { campaign, format } => {
            let campaign = find_campaign(store, &campaign).await?;
            let owed = store
                .owed_refunds(Some(campaign.id), None, i64::MAX)
                .await?;
            let today = clock.now().with_timezone(&campaign.timezone).date_naive();
            match format.format {
                Format::Json => {
                    let rows: Vec<serde_json::Value> = owed
                        .iter()
                        .map(|o| {
                            let mut row = serde_json::to_value(o).unwrap_or_default();
                            row["overdue"] = serde_json::Value::Bool(o.overdue(today));
                            row
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                }
                Format::Text => {
                    if owed.is_empty() {
                        println!("nothing is owed back to any donor");
                    }
                    for o in &owed {
                        let state = if o.outstanding.is_zero() {
                            "settled".to_owned()
                        } else if o.overdue(today) {
                            format!("OVERDUE (remedy by {})", o.remedy_by.unwrap_or(today))
                        } else if let Some(refund) = &o.refund_id {
                            format!("refund {refund} requested")
                        } else {
                            match o.remedy_by {
                                Some(by) => format!("due by {by}"),
                                None => "due".to_owned(),
                            }
                        };
                        println!(
                            "contribution {}  {}  owed {}  outstanding {}  {}\n    {}",
                            o.contribution_id,
                            o.charge_id,
                            o.amount,
                            o.outstanding,
                            state,
                            o.reason
                        );
                    }
                }
            }
        }
        ComplianceCommand::Settle {
            campaign,
            contribution,
            amount,
            from,
            reference,
            returned,
        } => {
            let campaign = find_campaign(store, &campaign).await?;
            let amount = Money::parse(&amount, campaign.currency)
                .with_context(|| format!("--amount {amount}"))?;
            let from = match from {
                SettleFrom::Bank => ReturnedFrom::Bank,
                SettleFrom::Cheques => ReturnedFrom::Cheques,
                SettleFrom::Cash => ReturnedFrom::Cash,
            };
            let posted = settle_owed(
                store,
                &campaign,
                contribution,
                amount,
                from,
                &reference,
                returned,
                clock.now(),
            )
            .await?;
            println!(
                "{amount} returned for contribution {contribution}: entry {}{}",
                posted.entry_id,
                if posted.replayed {
                    " (already recorded)"
                } else {
                    ""
                }
            );
        }
        ComplianceCommand::Replay { campaign } => {
            let campaign = find_campaign(store, &campaign).await?;
            let (mut checked, mut broken) = (0, 0);
            let mut after = 0;
            loop {
                let page = store.decisions(campaign.id, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for d in &page {
                    checked += 1;
                    if let Err(error) =
                        replay(packs, &d.pack, d.pack_version, &d.inputs, &d.decision)
                    {
                        broken += 1;
                        println!("decision {}: {error}", d.id);
                    }
                }
            }
            println!("{checked} decisions replayed, {broken} differ");
            if broken > 0 {
                return Ok(ExitCode::from(3));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
