//! The only place that speaks SQL.
//!
//! Two stores with one behaviour: SQLite (a file in WAL mode, the embedded default) and
//! PostgreSQL (production), chosen by the database URL. Nothing above this module knows
//! which one runs. Each keeps its own migrations under `migrations/<store>/`.
//!
//! Invariants kept here, in both stores:
//! - A write is one database transaction: an entry, its postings and its place in the
//!   sealer's queue appear together or not at all.
//! - A write with a known idempotency key never writes again: the same content returns the
//!   original entry, other content is [`StoreError::IdempotencyConflict`].
//! - Seals, the chain head, the hourly roll-ups and the queue move in one transaction.
//! - Balance queries read one consistent snapshot (a single SQL statement).

pub mod people;
mod postgres;
mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::campaign::{parse_timezone, Campaign, NewCampaign};
use crate::compliance::Ruling;
use crate::enforcement::posting::Payment;
use crate::enforcement::reinstatement::OwedBack;
use crate::enforcement::{OwedRefund, Person, PersonHistory, StoredRuling};
use crate::ids::{AccountId, CampaignId, EntryId, Slug};
use crate::intake::plan::SessionFacts;
use crate::intake::{
    Contribution, ContributionRef, GiftKey, InboxEvent, InboxStatus, NetContribution,
    NewContribution, NewInboxEvent, Recorded, RecordedGift, Settlement,
};
use crate::ledger::account::AccountKind;
use crate::ledger::balance::{rollup_keys, RollupKey, Span};
use crate::ledger::entry::{EntryContent, Links, Posting, StoredEntry};
use crate::ledger::seal::{ChainBreak, Hash32, Seal, SealedEntry};
use crate::ledger::{AccountBalance, Entry};
use crate::money::{Currency, Money};

pub use people::{
    CheckoutFacts, CheckoutKey, DonorPlacement, NewDonor, NewReservation, ReservationFacts,
    StoredDecision,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?} is not understood: use sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl(String),
    #[error("cannot reach the database at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "idempotency key {key:?} was already used for entry {existing} with different content"
    )]
    IdempotencyConflict { key: String, existing: EntryId },
    #[error("a campaign with slug {0:?} already exists")]
    CampaignExists(String),
    #[error("entry {0} has already been reversed")]
    AlreadyReversed(EntryId),
    #[error("entry {0} does not exist in this campaign")]
    NoSuchEntry(EntryId),
    #[error("account {0:?} does not exist for this campaign")]
    NoSuchAccount(String),
    #[error("the database refused the write: {0}")]
    Refused(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("the seal chain cannot be extended: {0}")]
    Chain(#[from] ChainBreak),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Settings that apply to either store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool (PostgreSQL) or readers (SQLite, which has one writer).
    pub pool_size: u32,
    /// How long a request may wait for a connection before failing.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pool_size: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub entry_id: EntryId,
    /// True when the key was already recorded with the same content: nothing was written.
    pub replayed: bool,
}

/// The identity of a write: its campaign and idempotency key.
fn batch_key(entry: &Entry) -> (i64, String) {
    (
        entry.content().campaign_id.0,
        entry.content().idempotency_key.clone(),
    )
}

/// Why an entry the database skipped was skipped: its key holds the same content (a replay)
/// or other content (a conflict); with no such key, the entry reverses one already reversed,
/// the only other uniqueness rule an insert can meet.
fn resolve_skipped(entry: &Entry, existing: Option<&(i64, String)>) -> Result<Posted, StoreError> {
    match existing {
        Some((id, hash)) if *hash == entry.content_hash().to_hex() => Ok(Posted {
            entry_id: EntryId(*id),
            replayed: true,
        }),
        Some((id, _)) => Err(StoreError::IdempotencyConflict {
            key: entry.content().idempotency_key.clone(),
            existing: EntryId(*id),
        }),
        None => Err(StoreError::Refused(
            "that entry has already been reversed".into(),
        )),
    }
}

/// Where the chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SealStatus {
    pub head: Seal,
    /// Entries written but not yet sealed.
    pub unsealed: i64,
}

/// Seals, roll-up deltas and the new head computed for a batch of queued entries.
#[derive(Debug, Default)]
struct ChainExtension {
    seals: Vec<(i64, EntryId, Hash32, Hash32)>,
    rollups: BTreeMap<RollupKey, i64>,
    head: Option<Seal>,
}

/// Chains `entries` (in queue order) after `head`: the pure part of sealing.
fn extend_chain(head: Seal, entries: &[StoredEntry]) -> Result<ChainExtension, ChainBreak> {
    let mut extension = ChainExtension::default();
    let mut prev = head;
    for entry in entries {
        let sequence = prev.sequence + 1;
        let broken = |reason: String| ChainBreak::Link {
            sequence,
            entry_id: entry.id,
            reason,
        };
        // A writer computed this hash moments ago; recomputing it refuses to seal anything
        // that did not reach the database exactly as validated.
        if entry.content.hash() != entry.content_hash {
            return Err(broken(
                "content does not match its recorded hash; not sealing".into(),
            ));
        }
        entry
            .content
            .check_balanced()
            .map_err(|e| broken(format!("not sealing an invalid entry: {e}")))?;
        let hash = crate::ledger::seal::link_hash(
            prev.hash,
            sequence,
            entry.id,
            entry.content_hash,
            entry.recorded_at,
        );
        extension.seals.push((sequence, entry.id, prev.hash, hash));
        for (posting, account) in entry.content.postings.iter().zip(&entry.account_ids) {
            for key in rollup_keys(*account, entry.content.effective_at) {
                let slot = extension.rollups.entry(key).or_default();
                *slot = slot
                    .checked_add(posting.amount.minor())
                    .ok_or_else(|| broken("a roll-up overflows".into()))?;
            }
        }
        prev = Seal { sequence, hash };
    }
    extension.head = Some(prev);
    Ok(extension)
}

/// A row of `entries`, as either store reads it.
struct RawEntry {
    id: i64,
    campaign_id: i64,
    idempotency_key: String,
    content_hash: String,
    description: String,
    effective_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    reverses_entry_id: Option<i64>,
    source: Option<String>,
    event_id: Option<String>,
    donor_id: Option<i64>,
    contribution_id: Option<i64>,
}

/// A row of `postings` joined with its account's name.
struct RawPosting {
    entry_id: i64,
    account_id: i64,
    account: String,
    currency: String,
    amount: i64,
}

/// Puts entries and their postings (both ordered by entry id, postings by line) together.
fn assemble(
    entries: Vec<RawEntry>,
    postings: Vec<RawPosting>,
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut by_entry: BTreeMap<i64, Vec<RawPosting>> = BTreeMap::new();
    for posting in postings {
        by_entry.entry(posting.entry_id).or_default().push(posting);
    }
    entries
        .into_iter()
        .map(|raw| {
            let lines = by_entry.remove(&raw.id).unwrap_or_default();
            let mut postings = Vec::with_capacity(lines.len());
            let mut account_ids = Vec::with_capacity(lines.len());
            for line in lines {
                let currency = Currency::parse(&line.currency)
                    .map_err(|e| StoreError::Corrupt(format!("entry {}: {e}", raw.id)))?;
                postings.push(Posting {
                    account: line.account,
                    amount: Money::from_minor(line.amount, currency),
                });
                account_ids.push(AccountId(line.account_id));
            }
            let content_hash = Hash32::from_hex(&raw.content_hash).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "entry {}: content hash is not 64 hex digits",
                    raw.id
                ))
            })?;
            Ok(StoredEntry {
                id: EntryId(raw.id),
                content: EntryContent {
                    campaign_id: CampaignId(raw.campaign_id),
                    idempotency_key: raw.idempotency_key,
                    description: raw.description,
                    effective_at: raw.effective_at,
                    postings,
                    links: Links {
                        source: raw.source,
                        event_id: raw.event_id,
                        donor_id: raw.donor_id,
                        contribution_id: raw.contribution_id,
                    },
                    reverses: raw.reverses_entry_id.map(EntryId),
                },
                content_hash,
                recorded_at: raw.recorded_at,
                account_ids,
            })
        })
        .collect()
}

/// A row of `seals` joined with its entry.
struct RawSeal {
    sequence: i64,
    entry_id: i64,
    prev_hash: String,
    hash: String,
}

/// Pairs seals (in chain order) with their entries (in any order).
fn attach_seals(
    seals: Vec<RawSeal>,
    entries: Vec<StoredEntry>,
) -> Result<Vec<SealedEntry>, StoreError> {
    let mut by_id: HashMap<i64, StoredEntry> = entries.into_iter().map(|e| (e.id.0, e)).collect();
    seals
        .into_iter()
        .map(|seal| {
            let parse = |text: &str| {
                Hash32::from_hex(text).ok_or_else(|| {
                    StoreError::Corrupt(format!("seal #{}: {text:?} is not a hash", seal.sequence))
                })
            };
            let entry = by_id.remove(&seal.entry_id).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "seal #{}: entry {} is missing from the journal",
                    seal.sequence, seal.entry_id
                ))
            })?;
            Ok(SealedEntry {
                sequence: seal.sequence,
                prev_hash: parse(&seal.prev_hash)?,
                hash: parse(&seal.hash)?,
                entry,
            })
        })
        .collect()
}

/// Reads `rollups` rows: (account, span, bucket, amount).
fn rollup_rows(rows: Vec<(i64, String, i64, i64)>) -> Result<Vec<(RollupKey, i64)>, StoreError> {
    rows.into_iter()
        .map(|(account, span, bucket, amount)| {
            let span = Span::parse(&span)
                .ok_or_else(|| StoreError::Corrupt(format!("roll-up span {span:?}")))?;
            Ok(((AccountId(account), span, bucket), amount))
        })
        .collect()
}

/// The inbox columns a settlement writes: status, last error, next attempt.
fn settlement_columns(
    settlement: &Settlement,
) -> (InboxStatus, Option<&str>, Option<DateTime<Utc>>) {
    match settlement {
        Settlement::Posted => (InboxStatus::Posted, None, None),
        Settlement::Retry {
            error,
            next_attempt_at,
        } => (InboxStatus::Pending, Some(error), Some(*next_attempt_at)),
        Settlement::Parked { error } => (InboxStatus::Parked, Some(error), None),
    }
}

/// A charge belongs to one campaign for good: recording it again for another is refused.
fn check_contribution_campaign(gift: &NewContribution, stored: i64) -> Result<(), StoreError> {
    if stored == gift.campaign_id.0 {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "charge {} is already a contribution to campaign {stored}, not {}",
            gift.charge_id, gift.campaign_id
        )))
    }
}

fn currency_of(code: &str) -> Result<Currency, StoreError> {
    Currency::parse(code).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The ledger accounts whose postings make a gift's net amount: the gift's credit to income,
/// less refunds and chargebacks (contra accounts, debited).
const NET_GIFT_ACCOUNTS: &str =
    "('income:donations', 'income:donations:refunds', 'income:donations:chargebacks')";

/// Reads `net_contributions` rows: (id, campaign, donor, paid at, currency, net minor units).
fn net_contribution(
    (id, campaign_id, donor_id, paid_at, currency, net): (
        i64,
        i64,
        i64,
        DateTime<Utc>,
        String,
        i64,
    ),
) -> Result<NetContribution, StoreError> {
    Ok(NetContribution {
        id,
        campaign_id: CampaignId(campaign_id),
        donor_id,
        paid_at,
        net: Money::from_minor(net, currency_of(&currency)?),
    })
}

/// What a stored donor takes from a later gift's details, in both dialects (the action of
/// `ON CONFLICT (campaign_id, identity_key) DO UPDATE`): the details it lacks, so a donor
/// keeps those first seen. The row is rewritten only when one arrives: most gifts come from
/// donors already known in full, and rewriting such a row changes nothing but costs a row
/// version (on PostgreSQL, when its page is full, an entry in each of its indexes too;
/// intake bench: 15,158 rewrites for 20,000 donations, 9,601 of them so). `RETURNING` then
/// omits the row; the caller reads its id by key.
const FILL_IN_DONOR: &str = "SET
    name = coalesce(donors.name, excluded.name), email = coalesce(donors.email, excluded.email),
    line1 = coalesce(donors.line1, excluded.line1), line2 = coalesce(donors.line2, excluded.line2),
    city = coalesce(donors.city, excluded.city),
    postal_code = coalesce(donors.postal_code, excluded.postal_code),
    state = coalesce(donors.state, excluded.state),
    country = coalesce(donors.country, excluded.country)
    WHERE (donors.name IS NULL AND excluded.name IS NOT NULL)
       OR (donors.email IS NULL AND excluded.email IS NOT NULL)
       OR (donors.line1 IS NULL AND excluded.line1 IS NOT NULL)
       OR (donors.line2 IS NULL AND excluded.line2 IS NOT NULL)
       OR (donors.city IS NULL AND excluded.city IS NOT NULL)
       OR (donors.postal_code IS NULL AND excluded.postal_code IS NOT NULL)
       OR (donors.state IS NULL AND excluded.state IS NOT NULL)
       OR (donors.country IS NULL AND excluded.country IS NOT NULL)";

/// The donor register's columns, for the gifts of a page of persons (the dialects add
/// `paid_at`, the page's persons and the instant).
const REGISTER_COLUMNS: &str = "SELECT d.person_id, c.id, d.name, d.email, d.line1, d.line2,
        d.postal_code, d.city, d.state, d.country, c.method, c.election, c.declared, c.amount,
        c.currency";

/// Reads a register row of `REGISTER_COLUMNS`, then the net kept (column 15); `paid_at` is
/// read by the dialect.
fn register_gift<R: sqlx::Row>(
    row: &R,
    paid_at: DateTime<Utc>,
) -> Result<crate::reports::donors::RegisterGift, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let currency = currency_of(&row.try_get::<String, _>(14)?)?;
    Ok(crate::reports::donors::RegisterGift {
        person_id: row.try_get(0)?,
        contribution_id: row.try_get(1)?,
        donor: crate::reports::donors::DonorDetails {
            name: row.try_get(2)?,
            email: row.try_get(3)?,
            line1: row.try_get(4)?,
            line2: row.try_get(5)?,
            postal_code: row.try_get(6)?,
            city: row.try_get(7)?,
            state: row.try_get(8)?,
            country: row.try_get(9)?,
        },
        paid_at,
        method: row.try_get(10)?,
        election: row.try_get(11)?,
        declared: row.try_get(12)?,
        amount: Money::from_minor(row.try_get(13)?, currency),
        kept: Money::from_minor(row.try_get(15)?, currency),
    })
}

/// What a [`RecordedGift`] is read from, in both dialects: a row of `contributions c`.
const RECORDED_GIFT_COLUMNS: &str =
    "c.id, c.donor_id, c.charge_id, c.checkout_session_id IS NOT NULL,
    EXISTS (SELECT 1 FROM compliance_decisions k
            WHERE k.contribution_id = c.id AND k.stage = 'posting')";

/// The column a [`GiftKey`] names a gift by, and its value.
fn gift_key_column<'a>(key: &GiftKey<'a>) -> (&'static str, &'a str) {
    match *key {
        GiftKey::Charge(id) => ("charge_id", id),
        GiftKey::PaymentIntent(id) => ("payment_intent_id", id),
    }
}

/// The gift of each key among `rows` (the key's index, then id, donor, charge, has session,
/// decided), in the keys' order: one where a key has exactly one row, none where it has no
/// row or several (an intent paid twice is ambiguous).
fn recorded_gifts(
    keys: usize,
    rows: Vec<(i64, i64, i64, String, bool, bool)>,
) -> Vec<Option<RecordedGift>> {
    let mut found: Vec<Vec<RecordedGift>> = vec![Vec::new(); keys];
    for (n, contribution_id, donor_id, charge_id, has_session, decided) in rows {
        if let Some(slot) = usize::try_from(n).ok().and_then(|n| found.get_mut(n)) {
            slot.push(RecordedGift {
                gift: ContributionRef {
                    donor_id,
                    contribution_id,
                },
                charge_id,
                has_session,
                decided,
            });
        }
    }
    found
        .into_iter()
        .map(|gifts| <[RecordedGift; 1]>::try_from(gifts).ok().map(|[gift]| gift))
        .collect()
}

const CONTRIBUTION_COLUMNS: &str =
    "SELECT c.id, c.campaign_id, c.donor_id, d.name, d.email, c.charge_id,
        c.checkout_session_id, c.amount, c.currency, c.paid_at, c.card_country, c.card_fingerprint,
        c.custom_fields, c.review_reason
     FROM contributions c JOIN donors d ON d.id = c.donor_id";

fn inbox_status(text: &str) -> Result<InboxStatus, StoreError> {
    InboxStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("inbox status {text:?}")))
}

/// A row of `campaigns`.
struct RawCampaign {
    id: i64,
    slug: String,
    name: String,
    rule_pack: String,
    currency: String,
    timezone: String,
    election: Option<String>,
    financing_from: Option<chrono::NaiveDate>,
    financing_until: Option<chrono::NaiveDate>,
    created_at: DateTime<Utc>,
}

impl TryFrom<RawCampaign> for Campaign {
    type Error = StoreError;
    fn try_from(raw: RawCampaign) -> Result<Campaign, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("campaign {}: {what}", raw.id));
        Ok(Campaign {
            id: CampaignId(raw.id),
            slug: Slug::parse(raw.slug.clone()).map_err(|e| corrupt(e.to_string()))?,
            name: raw.name,
            rule_pack: raw.rule_pack,
            currency: Currency::parse(&raw.currency).map_err(|e| corrupt(e.to_string()))?,
            timezone: parse_timezone(&raw.timezone).map_err(|e| corrupt(e.to_string()))?,
            election: raw.election,
            financing_period: raw.financing_from.zip(raw.financing_until),
            created_at: raw.created_at,
        })
    }
}

fn account_balance(
    name: String,
    kind: &str,
    currency: &str,
    amount: i64,
) -> Result<AccountBalance, StoreError> {
    Ok(AccountBalance {
        kind: AccountKind::parse(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("account {name}: unknown kind {kind:?}")))?,
        signed: Money::from_minor(
            amount,
            Currency::parse(currency)
                .map_err(|e| StoreError::Corrupt(format!("account {name}: {e}")))?,
        ),
        account: name,
    })
}

/// Either store. An enum rather than a trait object: two known implementations, static
/// dispatch, and async methods without boxing.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
        }
    };
}

impl Store {
    /// Opens the database named by `url` (`sqlite://obole.db`, `postgres://…`). Does not
    /// migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url, options).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PgStore::connect(url, options).await?))
        } else {
            Err(StoreError::BadUrl(url.to_owned()))
        }
    }

    /// The store's name, for logs and benchmarks.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// Answers when the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    /// Creates a campaign with the whole chart of accounts, in one transaction.
    pub async fn create_campaign(
        &self,
        campaign: &NewCampaign,
        now: DateTime<Utc>,
    ) -> Result<Campaign, StoreError> {
        dispatch!(self, s => s.create_campaign(campaign, now).await)
    }

    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        dispatch!(self, s => s.campaigns().await)
    }

    pub async fn campaign(&self, slug: &Slug) -> Result<Option<Campaign>, StoreError> {
        dispatch!(self, s => s.campaign(slug).await)
    }

    /// Entries by `as_of` that move money at Stripe and post to an account outside
    /// `explaining`, at most `limit`, in writing order.
    pub async fn stripe_entries_beyond(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
        explaining: &[&str],
        limit: i64,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        dispatch!(self, s => s.stripe_entries_beyond(campaign, as_of, explaining, limit).await)
    }

    /// The first money at Stripe and the last payout to the bank, by `as_of`.
    pub async fn stripe_payout_times(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), StoreError> {
        dispatch!(self, s => s.stripe_payout_times(campaign, as_of).await)
    }

    /// The campaign's gifts paid by `as_of` that the books kept some of, with their person,
    /// read one by one: the reference [`Store::gift_counts`] is checked against.
    pub async fn kept_gifts(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<crate::reports::GiftFigure>, StoreError> {
        dispatch!(self, s => s.kept_gifts(campaign, as_of).await)
    }

    /// The summary's gift figures as of `as_of` (contributions by kept amount, distinct
    /// donors), from the tallies: a few thousand rows whatever the number of gifts.
    pub async fn gift_counts(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<crate::reports::tally::GiftCounts, StoreError> {
        dispatch!(self, s => s.gift_counts(campaign, as_of).await)
    }

    /// Money raised per UTC hour from `from` to `as_of`: (start of the hour, minor units).
    pub async fn raised_per_hour(
        &self,
        campaign: CampaignId,
        from: DateTime<Utc>,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>, StoreError> {
        dispatch!(self, s => s.raised_per_hour(campaign, from, as_of).await)
    }

    /// Stores a token's hash for `campaign` and `role`.
    pub async fn create_token(
        &self,
        campaign: CampaignId,
        role: crate::access::Role,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        dispatch!(self, s => s.create_token(campaign, role, hash, now).await)
    }

    /// What the live token with this hash opens.
    pub async fn token(&self, hash: &str) -> Result<Option<crate::access::Grant>, StoreError> {
        dispatch!(self, s => s.token(hash).await)
    }

    /// Writes a served report to the access log (append-only).
    pub async fn log_report(
        &self,
        access: &crate::access::ReportAccess,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.log_report(access, now).await)
    }

    /// Records a validated entry, idempotently (see the module invariants).
    pub async fn post(
        &self,
        entry: &Entry,
        recorded_at: DateTime<Utc>,
    ) -> Result<Posted, StoreError> {
        let mut results = self.post_batch(&[entry], recorded_at).await?;
        results.pop().unwrap_or_else(|| {
            Err(StoreError::Corrupt(
                "a batch of one returned nothing".into(),
            ))
        })
    }

    /// Records several entries in as few transactions as possible, with one result per
    /// entry, in order: each is idempotent on its own key and none fails because of another.
    ///
    /// Entries are written in (campaign, key) order, a lock order every batch shares, so two
    /// batches touching the same keys wait for each other but cannot deadlock. A key repeated
    /// within the batch is written after its first occurrence, as a replay or a conflict.
    pub async fn post_batch(
        &self,
        entries: &[&Entry],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<Result<Posted, StoreError>>, StoreError> {
        let mut results: Vec<Option<Result<Posted, StoreError>>> =
            entries.iter().map(|_| None).collect();
        let mut remaining: Vec<usize> = (0..entries.len()).collect();
        while !remaining.is_empty() {
            remaining.sort_by(|a, b| {
                batch_key(entries[*a])
                    .cmp(&batch_key(entries[*b]))
                    .then(a.cmp(b))
            });
            let mut round: Vec<usize> = Vec::new();
            let mut later = Vec::new();
            for index in remaining {
                if round
                    .last()
                    .is_some_and(|last| batch_key(entries[*last]) == batch_key(entries[index]))
                {
                    later.push(index);
                } else {
                    round.push(index);
                }
            }
            let batch: Vec<&Entry> = round.iter().map(|i| entries[*i]).collect();
            let written = match dispatch!(self, s => s.post_batch(&batch, recorded_at).await) {
                Ok(written) => written,
                // One bad entry can fail a whole statement (PostgreSQL): isolate it by
                // writing the round's entries one by one.
                Err(_) if batch.len() > 1 => {
                    let mut one_by_one = Vec::with_capacity(batch.len());
                    for entry in &batch {
                        let single =
                            dispatch!(self, s => s.post_batch(&[entry], recorded_at).await);
                        one_by_one.push(single.and_then(|mut r| {
                            r.pop()
                                .unwrap_or_else(|| Err(StoreError::Corrupt("empty result".into())))
                        }));
                    }
                    one_by_one
                }
                Err(error) => vec![Err(error)],
            };
            for (index, result) in round.into_iter().zip(written) {
                results[index] = Some(result);
            }
            remaining = later;
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StoreError::Corrupt(
                        "an entry of the batch got no result".into(),
                    ))
                })
            })
            .collect())
    }

    pub async fn entry(
        &self,
        campaign: CampaignId,
        id: EntryId,
    ) -> Result<Option<StoredEntry>, StoreError> {
        let mut found = dispatch!(self, s => s.entries_by_id(&[id.0]).await)?;
        Ok(found
            .pop()
            .filter(|entry| entry.content.campaign_id == campaign))
    }

    /// Every account of the campaign with its balance: the sum of its postings effective at
    /// or before `as_of`.
    pub async fn balances(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<AccountBalance>, StoreError> {
        dispatch!(self, s => s.balances(campaign, as_of).await)
    }

    /// Seals up to `limit` queued entries; returns how many it sealed.
    pub async fn seal_pending(&self, limit: i64, now: DateTime<Utc>) -> Result<usize, StoreError> {
        dispatch!(self, s => s.seal_pending(limit, now).await)
    }

    pub async fn seal_status(&self) -> Result<SealStatus, StoreError> {
        dispatch!(self, s => s.seal_status().await)
    }

    /// Sealed entries with sequence above `after`, in order, at most `limit`.
    pub async fn sealed_entries(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SealedEntry>, StoreError> {
        dispatch!(self, s => s.sealed_entries(after, limit).await)
    }

    /// Stores verified provider events in the inbox, once per event id, in one transaction;
    /// one result per event, in order. Callers go through [`crate::intake::Inbox`], which
    /// gathers concurrent webhooks into these batches.
    pub async fn record_stripe_events(
        &self,
        events: &[NewInboxEvent],
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        dispatch!(self, s => s.record_stripe_events(events).await)
    }

    /// A page of the journal: the entries of `campaign` effective by `as_of` whose id is
    /// after `after`, at most `limit`, in id (writing) order.
    pub async fn journal_page(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let ids = dispatch!(self, s => s.journal_ids(campaign, as_of, after, limit).await)?;
        let mut entries = dispatch!(self, s => s.entries_by_id(&ids).await)?;
        entries.sort_by_key(|e| e.id.0);
        Ok(entries)
    }

    /// The donor register's next page of persons: the last of the first `persons` persons
    /// of `campaign` after `after_person`; `None` when there is none.
    pub async fn register_span(
        &self,
        campaign: CampaignId,
        after_person: i64,
        persons: i64,
    ) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.register_span(campaign, after_person, persons).await)
    }

    /// The donor register's rows for the persons in `after_person..=through_person`: every
    /// gift paid to `campaign` by `as_of` and posted by then (in person order, each person's
    /// gifts in the order paid), each with what the books kept of it by `as_of`.
    pub async fn register_gifts(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
        after_person: i64,
        through_person: i64,
    ) -> Result<Vec<crate::reports::donors::RegisterGift>, StoreError> {
        dispatch!(self, s => s.register_gifts(campaign, as_of, after_person, through_person).await)
    }

    /// The contributions of `donors` paid by `as_of`, each net of the refunds and chargebacks
    /// the ledger holds by then, in the order they were paid.
    pub async fn net_contributions(
        &self,
        donors: &[i64],
        as_of: DateTime<Utc>,
    ) -> Result<Vec<NetContribution>, StoreError> {
        dispatch!(self, s => s.net_contributions(donors, as_of).await)
    }

    pub async fn stripe_event(&self, event_id: &str) -> Result<Option<InboxEvent>, StoreError> {
        dispatch!(self, s => s.stripe_event(event_id).await)
    }

    /// Pending events whose next attempt is due, oldest first.
    pub async fn due_stripe_events(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        dispatch!(self, s => s.due_stripe_events(now, limit).await)
    }

    /// Events with `status`, oldest first (e.g. the parked ones, for the treasurer).
    pub async fn stripe_events_with_status(
        &self,
        status: InboxStatus,
        limit: i64,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        dispatch!(self, s => s.stripe_events_with_status(status, limit).await)
    }

    /// Records the worker's outcome for each event, in one transaction. Only pending events
    /// change; every settlement counts an attempt.
    pub async fn settle_stripe_events(
        &self,
        settlements: &[(String, Settlement)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if settlements.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.settle_stripe_events(settlements, now).await)
    }

    /// Puts a parked event back in the queue; false if it is not parked.
    pub async fn requeue_stripe_event(&self, event_id: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.requeue_stripe_event(event_id).await)
    }

    /// Records a paid gift and its donor, idempotently on the charge: recording it again
    /// returns the same ids and only fills in what was missing (the Checkout session's custom
    /// fields arrive with their own event).
    pub async fn record_contribution(
        &self,
        gift: &NewContribution,
        now: DateTime<Utc>,
    ) -> Result<ContributionRef, StoreError> {
        dispatch!(self, s => s.record_contribution(gift, now).await)
    }

    /// [`Store::record_contribution`] for a batch of gifts in one transaction, their donors
    /// linked to persons together. One result per gift, in order. If the batch cannot be
    /// written whole, each gift is recorded alone, so that one bad gift fails alone.
    pub async fn record_contributions(
        &self,
        gifts: &[NewContribution],
        now: DateTime<Utc>,
    ) -> crate::combiner::BatchResult<ContributionRef> {
        match dispatch!(self, s => s.record_contributions(gifts, now).await) {
            Ok(recorded) => Ok(recorded),
            Err(error) if gifts.len() > 1 => {
                tracing::debug!(%error, gifts = gifts.len(), "a batch of contributions failed; recording one by one");
                let mut results = Vec::with_capacity(gifts.len());
                for gift in gifts {
                    results.push(self.record_contribution(gift, now).await);
                }
                Ok(results)
            }
            Err(error) => Ok(vec![Err(error)]),
        }
    }

    /// The gift recorded for a charge or payment intent (none if the intent has several).
    pub async fn recorded_gift(
        &self,
        key: GiftKey<'_>,
    ) -> Result<Option<RecordedGift>, StoreError> {
        Ok(self.recorded_gifts(&[key]).await?.pop().flatten())
    }

    /// [`Store::recorded_gift`] of each key, in the keys' order, read at once.
    pub async fn recorded_gifts(
        &self,
        keys: &[GiftKey<'_>],
    ) -> Result<Vec<Option<RecordedGift>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.recorded_gifts(keys).await)
    }

    /// Fills in gifts' Checkout sessions and custom fields where they are not recorded yet,
    /// in one write.
    pub async fn attach_session_facts(
        &self,
        facts: &[(i64, SessionFacts)],
    ) -> Result<(), StoreError> {
        if facts.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.attach_session_facts(facts).await)
    }

    pub async fn contribution_by_charge(
        &self,
        charge_id: &str,
    ) -> Result<Option<Contribution>, StoreError> {
        dispatch!(self, s => s.contribution_by_charge(charge_id).await)
    }

    /// Which of `keys` the campaign's journal already holds.
    pub async fn existing_keys(
        &self,
        campaign: CampaignId,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.existing_keys(campaign, keys).await)
    }

    /// (source, account, amount) for every posting of the campaign's entries whose source
    /// starts with `prefix`: the ledger side of a reconciliation.
    pub async fn sourced_postings(
        &self,
        campaign: CampaignId,
        prefix: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        dispatch!(self, s => s.sourced_postings(campaign, prefix).await)
    }

    /// The authoritative check of a gift (DESIGN.md decision 8): under the lock of the
    /// gift's person, reads the person's gifts to campaigns under the same pack (net, from the
    /// ledger), lets `decide` rule on them, and writes the payment entry, the ruling's entry
    /// (what is set aside as owed), the decision and the owed refund in one transaction. A
    /// gift decided before is not decided again: its payment entry replays and the first
    /// decision is returned.
    pub async fn post_screened_payment<F>(
        &self,
        campaign: &Campaign,
        gift: ContributionRef,
        reservation: Option<i64>,
        payment: &Entry,
        now: DateTime<Utc>,
        decide: F,
    ) -> Result<StoredRuling, StoreError>
    where
        F: FnOnce(PersonHistory) -> Result<(Ruling, Option<Entry>), StoreError>,
    {
        dispatch!(self, s => s.post_screened_payment(campaign, gift, reservation, payment, now, decide).await)
    }

    /// A won dispute's reinstatement of `gift` (see `enforcement::reinstatement`): under the
    /// lock of the gift's person, reads the person's gifts as the ledger holds them before
    /// it, lets `decide` say what it puts over a cap, and writes the reinstatement, the entry
    /// setting that part aside and a new refund round of the gift in one transaction. Returns
    /// what is owed back; zero when nothing is, or when the reinstatement was posted before.
    pub async fn post_screened_reinstatement<F>(
        &self,
        campaign: &Campaign,
        gift: ContributionRef,
        reinstatement: &Entry,
        now: DateTime<Utc>,
        decide: F,
    ) -> Result<Money, StoreError>
    where
        F: FnOnce(PersonHistory) -> Result<Option<OwedBack>, StoreError>,
    {
        dispatch!(self, s => s.post_screened_reinstatement(campaign, gift, reinstatement, now, decide).await)
    }

    /// [`Store::post_screened_payment`] for a batch of payments in one transaction: the
    /// batch's persons are locked together (in id order, so batches cannot deadlock) and each
    /// payment is ruled on by `rule` in order, seeing the earlier payments of its batch as part
    /// of its person's history. One result per payment, in order. If the batch cannot be
    /// written whole, each payment is written alone, so that one bad payment fails alone.
    pub async fn post_screened_payments<F>(
        &self,
        payments: &[Payment],
        now: DateTime<Utc>,
        rule: F,
    ) -> crate::combiner::BatchResult<StoredRuling>
    where
        F: Fn(&Payment, PersonHistory) -> Result<(Ruling, Option<Entry>), StoreError>,
    {
        let together = dispatch!(self, s => s.post_screened_payments(payments, now, &rule).await);
        match together {
            Ok(rulings) => Ok(rulings.into_iter().map(Ok).collect()),
            Err(error) if payments.len() > 1 => {
                tracing::debug!(%error, payments = payments.len(), "a screening batch failed; posting one by one");
                let mut results = Vec::with_capacity(payments.len());
                for payment in payments {
                    results.push(
                        self.post_screened_payment(
                            &payment.campaign,
                            payment.gift,
                            payment.reservation,
                            &payment.entry,
                            now,
                            |history| rule(payment, history),
                        )
                        .await,
                    );
                }
                Ok(results)
            }
            Err(error) => Ok(vec![Err(error)]),
        }
    }

    /// The check at checkout: records the donor, and under their person's lock lets `decide`
    /// rule on their gifts and the room their other open checkouts hold; a gift accepted
    /// whole gets a reservation until `expires_at`. The decision is stored either way.
    pub async fn reserve<F>(
        &self,
        campaign: &Campaign,
        request: &NewReservation,
        now: DateTime<Utc>,
        decide: F,
    ) -> Result<StoredRuling, StoreError>
    where
        F: FnOnce(PersonHistory) -> Result<Ruling, StoreError>,
    {
        dispatch!(self, s => s.reserve(campaign, request, now, decide).await)
    }

    /// Gives a reservation's room back (checkout expired or cancelled); false if it was
    /// already released or used.
    pub async fn release_reservation(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.release_reservation(id, now).await)
    }

    /// Names the provider's Checkout session of a reservation; false if it already has one.
    pub async fn attach_checkout_session(
        &self,
        reservation: i64,
        session: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.attach_checkout_session(reservation, session).await)
    }

    /// A checkout, found by its reservation or by its provider session.
    pub async fn checkout(
        &self,
        key: CheckoutKey<'_>,
    ) -> Result<Option<CheckoutFacts>, StoreError> {
        dispatch!(self, s => s.checkout(key).await)
    }

    /// A reservation's campaign, what the donor declared and the election designated.
    pub async fn reservation(&self, id: i64) -> Result<Option<ReservationFacts>, StoreError> {
        dispatch!(self, s => s.reservation(id).await)
    }

    /// Refunds owed, oldest first: of one campaign or all; with `due_for_request_at`, only
    /// the card gifts whose refund has not been obtained from the provider yet and whose next
    /// attempt is due by then.
    pub async fn owed_refunds(
        &self,
        campaign: Option<CampaignId>,
        due_for_request_at: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<OwedRefund>, StoreError> {
        dispatch!(self, s => s.owed_refunds(campaign, due_for_request_at, limit).await)
    }

    /// Records a refund request's outcome (of the gift's `round`): the provider's refund id,
    /// or the error and when to try again.
    pub async fn refund_requested(
        &self,
        contribution: i64,
        round: i32,
        outcome: Result<&str, &str>,
        now: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.refund_requested(contribution, round, outcome, now, retry_at).await)
    }

    /// A treasurer's merge or split (recorded in `identity_changes`); returns the person the
    /// donor now belongs to. Later screenings follow it.
    pub async fn place_donor(
        &self,
        placement: &DonorPlacement,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        dispatch!(self, s => s.place_donor(placement, now).await)
    }

    /// The person `donor` belongs to: every donor row linked to it, and the history of
    /// links, merges and splits that made it.
    pub async fn person(&self, donor: i64) -> Result<Option<Person>, StoreError> {
        dispatch!(self, s => s.person(donor).await)
    }

    /// The campaign's stored decisions with id above `after`, in order, at most `limit`.
    pub async fn decisions(
        &self,
        campaign: CampaignId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        dispatch!(self, s => s.decisions(campaign, after, limit).await)
    }

    /// Every stored roll-up row.
    pub async fn rollups(&self) -> Result<Vec<(RollupKey, i64)>, StoreError> {
        dispatch!(self, s => s.rollups().await)
    }

    /// Where the reports' tallies, persons' first gifts or counted gifts disagree with what
    /// they are counted from (at most a few of each, described); empty when all agree.
    pub async fn tally_differences(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.tally_differences().await)
    }

    /// The stored gift movements of `entries`, by entry id.
    pub async fn gift_movements(
        &self,
        entries: &[i64],
    ) -> Result<Vec<crate::reports::tally::GiftMovement>, StoreError> {
        dispatch!(self, s => s.gift_movements(entries).await)
    }
}
