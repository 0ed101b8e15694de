//! PostgreSQL: the production store.
//!
//! A write is a single statement (a data-modifying CTE inserting the entry, its postings and
//! its queue row), so a posting costs one round trip and takes no lock any other write waits
//! on, except a concurrent write of the *same* idempotency key, which waits and then sees the
//! first one's row. The double-entry check runs at commit (a deferred constraint trigger).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row, Transaction};

use super::{
    account_balance, assemble, attach_seals, batch_key, currency_of, extend_chain, inbox_status,
    net_contribution, recorded_gifts, register_gift, resolve_skipped, rollup_rows,
    settlement_columns, Posted, RawCampaign, RawEntry, RawPosting, RawSeal, SealStatus, StoreError,
    StoreOptions, CONTRIBUTION_COLUMNS, RECORDED_GIFT_COLUMNS, REGISTER_COLUMNS,
};
use crate::store::NewDonor;

mod compliance;
mod contributions;
mod tallies;
use crate::access::{Grant, ReportAccess, Role};
use crate::campaign::{Campaign, NewCampaign};
use crate::clock::from_unix_micros;
use crate::ids::{CampaignId, EntryId, Slug};
use crate::intake::plan::SessionFacts;
use crate::intake::{
    Contribution, ContributionRef, GiftKey, InboxEvent, InboxStatus, NetContribution,
    NewContribution, NewInboxEvent, Recorded, RecordedGift, Settlement,
};
use crate::ledger::balance::{hour_start_micros, RollupKey, HOURS_PER_DAY};
use crate::ledger::entry::StoredEntry;
use crate::ledger::seal::{Hash32, Seal, SealedEntry};
use crate::ledger::{hour_bucket, AccountBalance, Entry, CHART};
use crate::money::Money;
use crate::reports::donors::RegisterGift;
use crate::reports::tally::GIFT_ACCOUNTS;
use crate::reports::GiftFigure;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// What the books kept of contribution `c` (its credit to income, less refunds and
/// chargebacks, the contra accounts) by `$2`: each of the gift's entries, its postings read
/// by the entry alone (filtering them by account would invite the account's index, and a
/// planner with stale statistics then reads every posting of the gifts account for each
/// gift — the whole journal per row).
const NET_KEPT: &str = "coalesce((SELECT -sum((SELECT sum(CASE WHEN p.effective_at <= $2
                 AND a.name IN ('income:donations', 'income:donations:refunds', 'income:donations:chargebacks')
                 THEN p.amount ELSE 0 END)
             FROM postings p JOIN accounts a ON a.id = p.account_id
             WHERE p.entry_id = e.id))::int8
        FROM entries e WHERE e.contribution_id = c.id), 0)";

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Queue rows deleted (and roll-ups rewritten) since the sealer last vacuumed.
    sealed_since_vacuum: Arc<AtomicUsize>,
}

/// The sealer vacuums its queue and roll-ups itself after this many seals. Autovacuum may
/// be off or slow to notice a small, busy table; without vacuuming, the queue's index fills
/// with dead entries that every sealing pass and balance query must step over.
const VACUUM_EVERY_SEALS: usize = 20_000;

/// Maps constraint violations to our errors by SQLSTATE and constraint name.
fn refused(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        let code = db.code().unwrap_or_default();
        if db.constraint() == Some("entries_reversed_once") {
            return StoreError::Refused("that entry has already been reversed".into());
        }
        // 23503 foreign key, 23514 check, 23P01 exclusion, 23001 restrict.
        if code.starts_with("23") {
            return StoreError::Refused(db.message().to_owned());
        }
    }
    StoreError::Database(error)
}

impl PgStore {
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<PgStore, StoreError> {
        // JIT compilation costs hundreds of milliseconds and pays off only for long analytic
        // queries; the planner may pick it for a short balance query whose estimate is off
        // (stale statistics on the sealer's queue), so it is off for our sessions.
        let connect = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::BadUrl(url.to_owned()))?
            .options([("jit", "off")]);
        let unreachable = |reason: String| StoreError::Unreachable {
            url: redact(url),
            reason,
        };
        // One direct connection first: a pool only reports "timed out", this names the cause
        // (connection refused, no such database, authentication failed).
        let probe = tokio::time::timeout(
            options.acquire_timeout,
            PgConnection::connect_with(&connect),
        )
        .await
        .map_err(|_| unreachable("no answer within the acquire timeout".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
        let _ = probe.close().await;
        // No ping before each use: sqlx's default sends one round trip to the server every
        // time a connection leaves the pool, a third of the intake's round trips (strace,
        // BENCHMARKS.md). A connection that broke while idle fails its next statement instead;
        // sqlx then drops it, and every caller treats a database error as worth retrying
        // (the webhook answers 503 and Stripe redelivers; the worker retries the event).
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size.max(1))
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(PgStore {
            pool,
            sealed_since_vacuum: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    /// A transaction whose BEGIN cannot be abandoned halfway. sqlx 0.8 sends BEGIN before the
    /// `Transaction` exists, so a caller cancelled in between (a task aborted, a client gone)
    /// would return the connection to the pool inside a transaction nobody owns: every later
    /// statement on it would run uncommitted, holding its locks (the simulation saw the intake
    /// stall behind one). Begun in a task of its own, a transaction its caller stopped waiting
    /// for is dropped there, once it exists, and dropping it rolls it back.
    pub(super) async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let pool = self.pool.clone();
        tokio::spawn(async move { pool.begin().await })
            .await
            .map_err(|e| StoreError::Refused(format!("beginning a transaction: {e}")))?
            .map_err(StoreError::from)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn create_campaign(
        &self,
        c: &NewCampaign,
        now: DateTime<Utc>,
    ) -> Result<Campaign, StoreError> {
        let mut tx = self.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO campaigns (slug, name, rule_pack, currency, timezone, election, created_at,
                                    financing_from, financing_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (slug) DO NOTHING RETURNING id",
        )
        .bind(c.slug.as_str())
        .bind(&c.name)
        .bind(&c.rule_pack)
        .bind(c.currency.code())
        .bind(c.timezone.name())
        .bind(&c.election)
        .bind(now)
        .bind(c.financing_period.map(|p| p.0))
        .bind(c.financing_period.map(|p| p.1))
        .fetch_optional(&mut *tx)
        .await?;
        let id = id.ok_or_else(|| StoreError::CampaignExists(c.slug.to_string()))?;
        let names: Vec<&str> = CHART.iter().map(|a| a.name).collect();
        let kinds: Vec<&str> = CHART.iter().map(|a| a.kind.as_str()).collect();
        sqlx::query(
            "INSERT INTO accounts (campaign_id, name, kind, currency)
             SELECT $1, name, kind, $4 FROM UNNEST($2::text[], $3::text[]) AS chart(name, kind)",
        )
        .bind(id)
        .bind(&names)
        .bind(&kinds)
        .bind(c.currency.code())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(c.created(CampaignId(id), now))
    }

    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let rows = sqlx::query(&format!("{CAMPAIGN_COLUMNS} ORDER BY slug"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| raw_campaign(r)?.try_into()).collect()
    }

    pub async fn campaign(&self, slug: &Slug) -> Result<Option<Campaign>, StoreError> {
        let row = sqlx::query(&format!("{CAMPAIGN_COLUMNS} WHERE slug = $1"))
            .bind(slug.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| raw_campaign(&r)?.try_into()).transpose()
    }

    /// Writes a planned batch (distinct keys, in lock order) as one statement, hence one
    /// transaction and one WAL flush for the lot.
    pub async fn post_batch(
        &self,
        batch: &[&Entry],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<Result<Posted, StoreError>>, StoreError> {
        insert_batch(&mut *self.pool.acquire().await?, batch, recorded_at).await
    }

    pub async fn entries_by_id(&self, ids: &[i64]) -> Result<Vec<StoredEntry>, StoreError> {
        load_entries(&mut *self.pool.acquire().await?, ids).await
    }

    pub async fn balances(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<AccountBalance>, StoreError> {
        let hour = hour_bucket(as_of);
        let hour_start = from_unix_micros(hour_start_micros(hour))
            .ok_or_else(|| StoreError::Corrupt("as-of instant out of range".into()))?;
        let rows = sqlx::query(
            // Disjoint parts, each computed once for all accounts: sealed postings of whole
            // days before t's day and of whole hours of t's day before t's hour (roll-ups),
            // every posting of t's hour up to t, and unsealed postings before t's hour. The
            // last is driven from the (small) queue through a fenced LATERAL, so the planner
            // cannot start from the account's whole posting history instead.
            "WITH sealed_hours AS (
                 SELECT account_id, sum(amount) AS amount FROM (
                     SELECT r.account_id, r.amount
                     FROM accounts a JOIN rollups r ON r.account_id = a.id AND r.span = 'day' AND r.bucket < $5
                     WHERE a.campaign_id = $4
                     UNION ALL
                     SELECT r.account_id, r.amount
                     FROM accounts a
                     JOIN rollups r ON r.account_id = a.id AND r.span = 'hour' AND r.bucket >= $6 AND r.bucket < $1
                     WHERE a.campaign_id = $4
                 ) AS whole_periods
                 GROUP BY account_id
             ), this_hour AS (
                 SELECT p.account_id, sum(p.amount) AS amount
                 FROM accounts a JOIN postings p ON p.account_id = a.id
                 WHERE a.campaign_id = $4 AND p.effective_at >= $2 AND p.effective_at <= $3
                 GROUP BY p.account_id
             ), unsealed AS (
                 SELECT p.account_id, sum(p.amount) AS amount
                 FROM pending_seal q
                 CROSS JOIN LATERAL (SELECT p.account_id, p.amount FROM postings p
                                     WHERE p.entry_id = q.entry_id AND p.campaign_id = $4 AND p.effective_at < $2
                                     OFFSET 0) p
                 GROUP BY p.account_id
             )
             SELECT a.name, a.kind, a.currency,
                    (coalesce(s.amount, 0) + coalesce(h.amount, 0) + coalesce(u.amount, 0))::int8 AS balance
             FROM accounts a
             LEFT JOIN sealed_hours s ON s.account_id = a.id
             LEFT JOIN this_hour h ON h.account_id = a.id
             LEFT JOIN unsealed u ON u.account_id = a.id
             WHERE a.campaign_id = $4 ORDER BY a.id",
        )
        .bind(hour)
        .bind(hour_start)
        .bind(as_of)
        .bind(campaign.0)
        .bind(hour.div_euclid(HOURS_PER_DAY))
        .bind(hour.div_euclid(HOURS_PER_DAY) * HOURS_PER_DAY)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                account_balance(
                    r.try_get("name")?,
                    r.try_get("kind")?,
                    r.try_get("currency")?,
                    r.try_get("balance")?,
                )
            })
            .collect()
    }

    pub async fn seal_pending(&self, limit: i64, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        // The head's row lock serialises sealers; writers never touch it.
        let (sequence, hash): (i64, String) =
            sqlx::query_as("SELECT sequence, hash FROM seal_head WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        let head = Seal {
            sequence,
            hash: Hash32::from_hex(&hash)
                .ok_or_else(|| StoreError::Corrupt("seal head hash".into()))?,
        };
        let queued: Vec<i64> =
            sqlx::query_scalar("SELECT entry_id FROM pending_seal ORDER BY entry_id LIMIT $1")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
        if queued.is_empty() {
            return Ok(0);
        }
        let entries = load_entries(&mut tx, &queued).await?;
        let extension = extend_chain(head, &entries)?;
        let sequences: Vec<i64> = extension.seals.iter().map(|s| s.0).collect();
        let entry_ids: Vec<i64> = extension.seals.iter().map(|s| s.1 .0).collect();
        let prevs: Vec<String> = extension.seals.iter().map(|s| s.2.to_hex()).collect();
        let hashes: Vec<String> = extension.seals.iter().map(|s| s.3.to_hex()).collect();
        sqlx::query(
            "INSERT INTO seals (sequence, entry_id, prev_hash, hash, sealed_at)
             SELECT s, e, p, h, $5 FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[]) AS t(s, e, p, h)",
        )
        .bind(&sequences)
        .bind(&entry_ids)
        .bind(&prevs)
        .bind(&hashes)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM pending_seal WHERE entry_id = ANY($1)")
            .bind(&entry_ids)
            .execute(&mut *tx)
            .await?;
        Self::count_sealed_gifts(&mut tx, &entries).await?;
        let rollup_accounts: Vec<i64> = extension.rollups.keys().map(|(a, _, _)| a.0).collect();
        let rollup_spans: Vec<&str> = extension
            .rollups
            .keys()
            .map(|(_, s, _)| s.as_str())
            .collect();
        let rollup_buckets: Vec<i64> = extension.rollups.keys().map(|(_, _, b)| *b).collect();
        let rollup_amounts: Vec<i64> = extension.rollups.values().copied().collect();
        sqlx::query(
            "INSERT INTO rollups (account_id, span, bucket, amount)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::int8[])
             ON CONFLICT (account_id, span, bucket) DO UPDATE SET amount = rollups.amount + EXCLUDED.amount",
        )
        .bind(&rollup_accounts)
        .bind(&rollup_spans)
        .bind(&rollup_buckets)
        .bind(&rollup_amounts)
        .execute(&mut *tx)
        .await?;
        if let Some(head) = extension.head {
            sqlx::query("UPDATE seal_head SET sequence = $1, hash = $2 WHERE id = 1")
                .bind(head.sequence)
                .bind(head.hash.to_hex())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let sealed = extension.seals.len();
        if self
            .sealed_since_vacuum
            .fetch_add(sealed, Ordering::Relaxed)
            + sealed
            >= VACUUM_EVERY_SEALS
        {
            self.sealed_since_vacuum.store(0, Ordering::Relaxed);
            if let Err(error) = sqlx::query(
                "VACUUM (ANALYZE) pending_seal, rollups, seal_head, tallies, donor_firsts",
            )
            .execute(&self.pool)
            .await
            {
                tracing::warn!(%error, "vacuuming the sealer's tables failed");
            }
        }
        Ok(sealed)
    }

    pub async fn seal_status(&self) -> Result<SealStatus, StoreError> {
        let row = sqlx::query(
            "SELECT h.sequence, h.hash, (SELECT count(*) FROM pending_seal) AS unsealed FROM seal_head h WHERE h.id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        let hash: String = row.try_get("hash")?;
        Ok(SealStatus {
            head: Seal {
                sequence: row.try_get("sequence")?,
                hash: Hash32::from_hex(&hash)
                    .ok_or_else(|| StoreError::Corrupt("seal head hash".into()))?,
            },
            unsealed: row.try_get("unsealed")?,
        })
    }

    pub async fn sealed_entries(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SealedEntry>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(
            "SELECT sequence, entry_id, prev_hash, hash FROM seals WHERE sequence > $1 ORDER BY sequence LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let mut seals = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            ids.push(row.try_get::<i64, _>("entry_id")?);
            seals.push(RawSeal {
                sequence: row.try_get("sequence")?,
                entry_id: row.try_get("entry_id")?,
                prev_hash: row.try_get("prev_hash")?,
                hash: row.try_get("hash")?,
            });
        }
        let entries = load_entries(&mut conn, &ids).await?;
        attach_seals(seals, entries)
    }

    /// Stores a batch of verified events in one statement (one transaction, one WAL flush).
    /// An id already stored, or repeated within the batch, is a redelivery: it keeps the
    /// first copy and reports that copy's status. Rows go in in event-id order, so two
    /// batches holding the same redelivered ids wait for each other instead of deadlocking.
    pub async fn record_stripe_events(
        &self,
        events: &[NewInboxEvent],
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        let ids: Vec<&str> = events.iter().map(|e| e.envelope.id.as_str()).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.envelope.kind.as_str()).collect();
        let livemodes: Vec<bool> = events.iter().map(|e| e.envelope.livemode).collect();
        let created: Vec<i64> = events.iter().map(|e| e.envelope.created).collect();
        let api_versions: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.envelope.api_version.as_deref())
            .collect();
        let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
        let received: Vec<DateTime<Utc>> = events.iter().map(|e| e.received_at).collect();
        let statuses: Vec<&str> = events.iter().map(|e| e.status.as_str()).collect();
        let inserted: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO stripe_events (event_id, type, livemode, created, api_version, payload, received_at, status)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::int8[], $5::text[], $6::text[],
                                  $7::timestamptz[], $8::text[])
             ORDER BY 1
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id, status",
        )
        .bind(&ids)
        .bind(&kinds)
        .bind(&livemodes)
        .bind(&created)
        .bind(&api_versions)
        .bind(&payloads)
        .bind(&received)
        .bind(&statuses)
        .fetch_all(&self.pool)
        .await?;
        let mut fresh: HashMap<String, String> = inserted.into_iter().collect();
        let mut stored = fresh.clone();
        let redelivered: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !fresh.contains_key(*id))
            .collect();
        if !redelivered.is_empty() {
            // A primary-key probe per id (see existing_keys for why not `= ANY`).
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT k.id, hit.status FROM UNNEST($1::text[]) AS k(id)
                 CROSS JOIN LATERAL (SELECT status FROM stripe_events e
                                     WHERE e.event_id = k.id LIMIT 1) AS hit",
            )
            .bind(&redelivered)
            .fetch_all(&self.pool)
            .await?;
            stored.extend(rows);
        }
        Ok(ids
            .iter()
            .map(|id| {
                let (inserted, status) = match fresh.remove(*id) {
                    Some(status) => (true, status),
                    None => (
                        false,
                        stored.get(*id).cloned().ok_or_else(|| {
                            StoreError::Corrupt(format!("inbox event {id} neither stored nor new"))
                        })?,
                    ),
                };
                Ok(Recorded {
                    inserted,
                    status: inbox_status(&status)?,
                })
            })
            .collect())
    }

    pub async fn journal_ids(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM entries WHERE campaign_id = $1 AND id > $3 AND effective_at <= $2 ORDER BY id LIMIT $4",
        )
        .bind(campaign.0)
        .bind(as_of)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn register_span(
        &self,
        campaign: CampaignId,
        after_person: i64,
        persons: i64,
    ) -> Result<Option<i64>, StoreError> {
        let page: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT person_id FROM donors WHERE campaign_id = $1 AND person_id > $2
             ORDER BY person_id LIMIT $3",
        )
        .bind(campaign.0)
        .bind(after_person)
        .bind(persons)
        .fetch_all(&self.pool)
        .await?;
        Ok(page.last().copied())
    }

    pub async fn register_gifts(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
        after_person: i64,
        through: i64,
    ) -> Result<Vec<RegisterGift>, StoreError> {
        let rows = sqlx::query(&format!(
            "WITH unsealed AS MATERIALIZED (
                 -- The few entries not sealed yet, from the sealer's queue.
                 SELECT e.contribution_id, count(DISTINCT e.id) AS entries,
                        sum(CASE WHEN a.name = ANY($5) THEN p.amount ELSE 0 END) AS amount
                 FROM pending_seal q
                 CROSS JOIN LATERAL (SELECT e.id, e.contribution_id FROM entries e
                                     WHERE e.id = q.entry_id AND e.campaign_id = $1
                                       AND e.contribution_id IS NOT NULL AND e.effective_at <= $2
                                     OFFSET 0) e
                 JOIN postings p ON p.entry_id = e.id
                 JOIN accounts a ON a.id = p.account_id
                 GROUP BY e.contribution_id
             )
             {REGISTER_COLUMNS}, -(s.amount + coalesce(u.amount, 0))::int8, c.paid_at
             FROM donors d
             -- From the page's donors to their gifts (fenced: never the other way round).
             CROSS JOIN LATERAL (SELECT * FROM contributions c WHERE c.donor_id = d.id OFFSET 0) c
             -- What the gift's sealed entries by $2 moved on its accounts (none: not posted
             -- yet, not in the register), one index range per gift.
             CROSS JOIN LATERAL (
                 SELECT coalesce(sum(m.amount), 0) AS amount, count(*) AS entries
                 FROM gift_movements m WHERE m.contribution_id = c.id AND m.effective_at <= $2
             ) s
             LEFT JOIN unsealed u ON u.contribution_id = c.id
             WHERE d.campaign_id = $1 AND d.person_id > $3 AND d.person_id <= $4 AND c.campaign_id = $1
               AND c.paid_at <= $2 AND s.entries + coalesce(u.entries, 0) > 0
             ORDER BY d.person_id, c.paid_at, c.id"
        ))
        .bind(campaign.0)
        .bind(as_of)
        .bind(after_person)
        .bind(through)
        .bind(&GIFT_ACCOUNTS[..])
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| register_gift(row, row.try_get(16)?))
            .collect()
    }

    pub async fn net_contributions(
        &self,
        donors: &[i64],
        as_of: DateTime<Utc>,
    ) -> Result<Vec<NetContribution>, StoreError> {
        let rows: Vec<(i64, i64, i64, DateTime<Utc>, String, i64)> = sqlx::query_as(&format!(
            "SELECT c.id, c.campaign_id, c.donor_id, c.paid_at, c.currency,
                    {NET_KEPT}
             FROM contributions c
             WHERE c.donor_id = ANY($1) AND c.paid_at <= $2
             ORDER BY c.paid_at, c.id"
        ))
        .bind(donors)
        .bind(as_of)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(net_contribution).collect()
    }

    pub async fn stripe_event(&self, event_id: &str) -> Result<Option<InboxEvent>, StoreError> {
        let row = sqlx::query(&format!(
            "{INBOX_FIELDS} FROM stripe_events WHERE event_id = $1"
        ))
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(inbox_event).transpose()
    }

    pub async fn due_stripe_events(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        // A function with its own planner settings (migration 0014): read in index order,
        // stopping at the limit, however many events are pending.
        let rows = sqlx::query(&format!("{INBOX_FIELDS} FROM due_stripe_events($1, $2)"))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(inbox_event).collect()
    }

    pub async fn stripe_events_with_status(
        &self,
        status: InboxStatus,
        limit: i64,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "{INBOX_FIELDS} FROM stripe_events WHERE status = $1 ORDER BY received_at, event_id LIMIT $2"
        ))
        .bind(status.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(inbox_event).collect()
    }

    pub async fn settle_stripe_events(
        &self,
        settlements: &[(String, Settlement)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut ids = Vec::with_capacity(settlements.len());
        let mut statuses = Vec::with_capacity(settlements.len());
        let mut errors = Vec::with_capacity(settlements.len());
        let mut next_attempts = Vec::with_capacity(settlements.len());
        for (event_id, settlement) in settlements {
            let (status, error, next) = settlement_columns(settlement);
            ids.push(event_id.as_str());
            statuses.push(status.as_str());
            errors.push(error);
            next_attempts.push(next);
        }
        // One statement for the whole round, each event found by its key (migration 0014).
        // Only a pending event moves: a redelivered or concurrently settled one keeps its
        // first outcome.
        sqlx::query("SELECT settle_stripe_events($1, $2, $3, $4, $5)")
            .bind(&ids)
            .bind(&statuses)
            .bind(&errors)
            .bind(&next_attempts)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn requeue_stripe_event(&self, event_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE stripe_events SET status = 'pending', next_attempt_at = NULL, attempts = 0
             WHERE event_id = $1 AND status = 'parked'",
        )
        .bind(event_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn create_token(
        &self,
        campaign: CampaignId,
        role: Role,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO api_tokens (campaign_id, role, token_hash, created_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(campaign.0)
        .bind(role.as_str())
        .bind(hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn token(&self, hash: &str) -> Result<Option<Grant>, StoreError> {
        let row: Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT id, campaign_id, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(token_id, campaign, role)| {
            Role::parse(&role)
                .map(|role| Grant {
                    token_id,
                    campaign_id: CampaignId(campaign),
                    role,
                })
                .ok_or_else(|| StoreError::Corrupt(format!("token role {role:?}")))
        })
        .transpose()
    }

    pub async fn log_report(
        &self,
        access: &ReportAccess,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO report_access (campaign_id, token_id, role, kind, as_of, format, served_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(access.campaign_id.0)
        .bind(access.token_id)
        .bind(access.role)
        .bind(access.kind)
        .bind(access.as_of)
        .bind(access.format)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Entries by `as_of` that move money at Stripe and post to an account outside
    /// `explaining` (the reconciliation's), at most `limit`, in writing order: driven from the
    /// few postings of the other accounts, never from Stripe's.
    pub async fn stripe_entries_beyond(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
        explaining: &[&str],
        limit: i64,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT p.entry_id
             FROM accounts a
             CROSS JOIN LATERAL (SELECT p.entry_id FROM postings p
                                 WHERE p.account_id = a.id AND p.effective_at <= $3 OFFSET 0) p
             WHERE a.campaign_id = $1 AND NOT (a.name = ANY($2))
               AND EXISTS (SELECT 1 FROM postings s JOIN accounts sa ON sa.id = s.account_id
                           WHERE s.entry_id = p.entry_id AND sa.name = 'assets:stripe')
             ORDER BY p.entry_id LIMIT $4",
        )
        .bind(campaign.0)
        .bind(explaining)
        .bind(as_of)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        load_entries(&mut *self.pool.acquire().await?, &ids).await
    }

    /// The first money at Stripe and the last payout to the bank, by `as_of`.
    pub async fn stripe_payout_times(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), StoreError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT min(p.effective_at) FROM accounts a JOIN postings p ON p.account_id = a.id
                     WHERE a.campaign_id = $1 AND a.name = 'assets:stripe' AND p.effective_at <= $2),
                    (SELECT max(p.effective_at) FROM accounts a JOIN postings p ON p.account_id = a.id
                     WHERE a.campaign_id = $1 AND a.name = 'assets:bank' AND p.effective_at <= $2
                       AND EXISTS (SELECT 1 FROM postings s JOIN accounts sa ON sa.id = s.account_id
                                   WHERE s.entry_id = p.entry_id AND sa.name = 'assets:stripe'))",
        )
        .bind(campaign.0)
        .bind(as_of)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn kept_gifts(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<GiftFigure>, StoreError> {
        let rows: Vec<(i64, i64, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT d.person_id, c.amount - coalesce(x.excess, 0), c.currency, c.paid_at
             FROM contributions c
             JOIN donors d ON d.id = c.donor_id
             LEFT JOIN compliance_decisions x ON x.contribution_id = c.id AND x.stage = 'posting'
             WHERE c.campaign_id = $1 AND c.paid_at <= $2
               AND c.amount - coalesce(x.excess, 0) > 0
               AND EXISTS (SELECT 1 FROM entries e WHERE e.contribution_id = c.id AND e.effective_at <= $2)",
        )
        .bind(campaign.0)
        .bind(as_of)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(person_id, kept, currency, paid_at)| {
                Ok(GiftFigure {
                    person_id,
                    kept: Money::from_minor(kept, currency_of(&currency)?),
                    paid_at,
                })
            })
            .collect()
    }

    pub async fn record_contribution(
        &self,
        gift: &NewContribution,
        now: DateTime<Utc>,
    ) -> Result<ContributionRef, StoreError> {
        self.record_contributions(std::slice::from_ref(gift), now)
            .await?
            .pop()
            .unwrap_or_else(|| {
                Err(StoreError::Corrupt(
                    "a gift recorded without a result".into(),
                ))
            })
    }

    pub async fn recorded_gifts(
        &self,
        keys: &[GiftKey<'_>],
    ) -> Result<Vec<Option<RecordedGift>>, StoreError> {
        let (ids, by_intent): (Vec<&str>, Vec<bool>) = keys
            .iter()
            .map(|key| match *key {
                GiftKey::Charge(id) => (id, false),
                GiftKey::PaymentIntent(id) => (id, true),
            })
            .unzip();
        // Index probes per key whatever the statistics say (see `existing_keys`); the branch
        // a key does not name is cut by a one-time filter. Two rows at most per key, so that
        // an intent paid twice reads as ambiguous.
        let rows = sqlx::query_as(&format!(
            "SELECT k.n - 1, g.* FROM UNNEST($1::text[], $2::bool[]) WITH ORDINALITY AS k(id, by_intent, n)
             CROSS JOIN LATERAL (
                 SELECT {RECORDED_GIFT_COLUMNS} FROM contributions c
                 WHERE NOT k.by_intent AND c.charge_id = k.id
                 UNION ALL
                 SELECT {RECORDED_GIFT_COLUMNS} FROM contributions c
                 WHERE k.by_intent AND c.payment_intent_id = k.id
                 LIMIT 2) AS g"
        ))
        .bind(&ids)
        .bind(&by_intent)
        .fetch_all(&self.pool)
        .await?;
        Ok(recorded_gifts(keys.len(), rows))
    }

    pub async fn attach_session_facts(
        &self,
        facts: &[(i64, SessionFacts)],
    ) -> Result<(), StoreError> {
        let contributions: Vec<i64> = facts.iter().map(|(id, _)| *id).collect();
        let sessions: Vec<&str> = facts.iter().map(|(_, s)| s.session_id.as_str()).collect();
        let fields: Vec<Option<&str>> = facts
            .iter()
            .map(|(_, s)| s.custom_fields.as_deref())
            .collect();
        sqlx::query(
            "UPDATE contributions AS c
             SET checkout_session_id = coalesce(c.checkout_session_id, f.session_id),
                 custom_fields = coalesce(c.custom_fields, f.custom_fields)
             FROM UNNEST($1::int8[], $2::text[], $3::text[]) AS f(id, session_id, custom_fields)
             WHERE c.id = f.id",
        )
        .bind(&contributions)
        .bind(&sessions)
        .bind(&fields)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn contribution_by_charge(
        &self,
        charge_id: &str,
    ) -> Result<Option<Contribution>, StoreError> {
        let row = sqlx::query(&format!("{CONTRIBUTION_COLUMNS} WHERE c.charge_id = $1"))
            .bind(charge_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Contribution {
                id: r.try_get("id")?,
                campaign_id: CampaignId(r.try_get("campaign_id")?),
                donor_id: r.try_get("donor_id")?,
                donor_name: r.try_get("name")?,
                donor_email: r.try_get("email")?,
                charge_id: r.try_get("charge_id")?,
                checkout_session_id: r.try_get("checkout_session_id")?,
                amount: Money::from_minor(
                    r.try_get("amount")?,
                    currency_of(r.try_get::<&str, _>("currency")?)?,
                ),
                paid_at: r.try_get("paid_at")?,
                card_country: r.try_get("card_country")?,
                card_fingerprint: r.try_get("card_fingerprint")?,
                custom_fields: r.try_get("custom_fields")?,
                review_reason: r.try_get("review_reason")?,
            })
        })
        .transpose()
    }

    pub async fn existing_keys(
        &self,
        campaign: CampaignId,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        // One unique-index probe per key, forced by the LATERAL ... LIMIT (which the planner
        // cannot flatten into a join): `= ANY($2)` or a plain join may be planned, from stale
        // statistics, as a scan of the campaign's whole journal per call, which the intake
        // bench caught costing milliseconds a call and growing with the journal.
        Ok(sqlx::query_scalar(
            "SELECT k.key FROM UNNEST($2::text[]) AS k(key)
             CROSS JOIN LATERAL (SELECT 1 FROM entries e
                                 WHERE e.campaign_id = $1 AND e.idempotency_key = k.key
                                 LIMIT 1) AS hit",
        )
        .bind(campaign.0)
        .bind(keys)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn sourced_postings(
        &self,
        campaign: CampaignId,
        prefix: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT e.source, a.name, p.amount FROM entries e
             JOIN postings p ON p.entry_id = e.id JOIN accounts a ON a.id = p.account_id
             WHERE e.campaign_id = $1 AND starts_with(e.source, $2)
             ORDER BY e.id, a.name",
        )
        .bind(campaign.0)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    pub async fn rollups(&self) -> Result<Vec<(RollupKey, i64)>, StoreError> {
        let rows = sqlx::query_as("SELECT account_id, span, bucket, amount FROM rollups ORDER BY account_id, span, bucket")
            .fetch_all(&self.pool)
            .await?;
        rollup_rows(rows)
    }
}

/// A batch as columns, for `UNNEST`: one array per entry column, and one per posting column
/// with `line_positions` naming each posting's entry.
struct BatchColumns<'a> {
    campaign_ids: Vec<i64>,
    keys: Vec<&'a str>,
    hashes: Vec<String>,
    descriptions: Vec<&'a str>,
    effective_ats: Vec<DateTime<Utc>>,
    posting_counts: Vec<i32>,
    reverses: Vec<Option<i64>>,
    sources: Vec<Option<&'a str>>,
    event_ids: Vec<Option<&'a str>>,
    donor_ids: Vec<Option<i64>>,
    contribution_ids: Vec<Option<i64>>,
    positions: Vec<i32>,
    line_positions: Vec<i32>,
    lines: Vec<i32>,
    accounts: Vec<&'a str>,
    currencies: Vec<&'static str>,
    amounts: Vec<i64>,
}

impl<'a> BatchColumns<'a> {
    fn of(batch: &[&'a Entry]) -> BatchColumns<'a> {
        let mut c = BatchColumns {
            campaign_ids: Vec::new(),
            keys: Vec::new(),
            hashes: Vec::new(),
            descriptions: Vec::new(),
            effective_ats: Vec::new(),
            posting_counts: Vec::new(),
            reverses: Vec::new(),
            sources: Vec::new(),
            event_ids: Vec::new(),
            donor_ids: Vec::new(),
            contribution_ids: Vec::new(),
            positions: Vec::new(),
            line_positions: Vec::new(),
            lines: Vec::new(),
            accounts: Vec::new(),
            currencies: Vec::new(),
            amounts: Vec::new(),
        };
        for (position, entry) in (0_i32..).zip(batch) {
            let content = entry.content();
            c.campaign_ids.push(content.campaign_id.0);
            c.keys.push(&content.idempotency_key);
            c.hashes.push(entry.content_hash().to_hex());
            c.descriptions.push(&content.description);
            c.effective_ats.push(content.effective_at);
            c.posting_counts.push(content.postings.len() as i32);
            c.reverses.push(content.reverses.map(|id| id.0));
            c.sources.push(content.links.source.as_deref());
            c.event_ids.push(content.links.event_id.as_deref());
            c.donor_ids.push(content.links.donor_id);
            c.contribution_ids.push(content.links.contribution_id);
            c.positions.push(position);
            for (line, posting) in (0_i32..).zip(&content.postings) {
                c.line_positions.push(position);
                c.lines.push(line);
                c.accounts.push(&posting.account);
                c.currencies.push(posting.amount.currency().code());
                c.amounts.push(posting.amount.minor());
            }
        }
        c
    }
}

/// Drops a password from a URL before it goes into an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}://{}@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

const CAMPAIGN_COLUMNS: &str =
    "SELECT id, slug, name, rule_pack, currency, timezone, election, financing_from, financing_until,
            created_at FROM campaigns";

/// An inbox event's select list, without its source: the table, or `due_stripe_events`.
const INBOX_FIELDS: &str = "SELECT event_id, type, livemode, created, api_version, payload, received_at, status, attempts, last_error";

fn inbox_event(r: &PgRow) -> Result<InboxEvent, StoreError> {
    Ok(InboxEvent {
        event_id: r.try_get("event_id")?,
        kind: r.try_get("type")?,
        livemode: r.try_get("livemode")?,
        created: r.try_get("created")?,
        api_version: r.try_get("api_version")?,
        payload: r.try_get("payload")?,
        received_at: r.try_get("received_at")?,
        status: inbox_status(r.try_get("status")?)?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
    })
}

fn raw_campaign(row: &PgRow) -> Result<RawCampaign, StoreError> {
    Ok(RawCampaign {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        rule_pack: row.try_get("rule_pack")?,
        currency: row.try_get("currency")?,
        timezone: row.try_get("timezone")?,
        election: row.try_get("election")?,
        financing_from: row.try_get("financing_from")?,
        financing_until: row.try_get("financing_until")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Loads entries with their postings, in id order.
async fn load_entries(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<StoredEntry>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let entry_rows = sqlx::query(
        "SELECT id, campaign_id, idempotency_key, content_hash, description, effective_at, recorded_at,
                reverses_entry_id, source, event_id, donor_id, contribution_id
         FROM entries WHERE id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let posting_rows = sqlx::query(
        "SELECT p.entry_id, p.account_id, a.name, p.currency, p.amount
         FROM postings p JOIN accounts a ON a.id = p.account_id
         WHERE p.entry_id = ANY($1) ORDER BY p.entry_id, p.line",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let entries = entry_rows
        .iter()
        .map(|r| {
            Ok(RawEntry {
                id: r.try_get("id")?,
                campaign_id: r.try_get("campaign_id")?,
                idempotency_key: r.try_get("idempotency_key")?,
                content_hash: r.try_get("content_hash")?,
                description: r.try_get("description")?,
                effective_at: r.try_get("effective_at")?,
                recorded_at: r.try_get("recorded_at")?,
                reverses_entry_id: r.try_get("reverses_entry_id")?,
                source: r.try_get("source")?,
                event_id: r.try_get("event_id")?,
                donor_id: r.try_get("donor_id")?,
                contribution_id: r.try_get("contribution_id")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let postings = posting_rows
        .iter()
        .map(|r| {
            Ok(RawPosting {
                entry_id: r.try_get("entry_id")?,
                account_id: r.try_get("account_id")?,
                account: r.try_get("name")?,
                currency: r.try_get("currency")?,
                amount: r.try_get("amount")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    assemble(entries, postings)
}

/// Writes a batch (distinct keys, in lock order) as one statement on `conn`: alone, its own
/// transaction; inside a caller's transaction, part of it.
async fn insert_batch(
    conn: &mut PgConnection,
    batch: &[&Entry],
    recorded_at: DateTime<Utc>,
) -> Result<Vec<Result<Posted, StoreError>>, StoreError> {
    let columns = BatchColumns::of(batch);
    let inserted: Vec<(i64, String, i64)> = sqlx::query_as(
            "WITH input AS (
                 SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int4[],
                                      $7::int8[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::int4[])
                     AS i(campaign_id, idempotency_key, content_hash, description, effective_at, posting_count,
                          reverses_entry_id, source, event_id, donor_id, contribution_id, position)
             ), new_entries AS (
                 INSERT INTO entries (campaign_id, idempotency_key, content_hash, description, effective_at,
                                      recorded_at, posting_count, reverses_entry_id, source, event_id,
                                      donor_id, contribution_id)
                 SELECT campaign_id, idempotency_key, content_hash, description, effective_at, $13, posting_count,
                        reverses_entry_id, source, event_id, donor_id, contribution_id
                 FROM input ORDER BY position
                 ON CONFLICT DO NOTHING
                 RETURNING id, campaign_id, idempotency_key, effective_at
             ), new_postings AS (
                 INSERT INTO postings (entry_id, line, campaign_id, account_id, currency, amount, effective_at)
                 SELECT e.id, l.line, e.campaign_id, a.id, l.currency, l.amount, e.effective_at
                 FROM new_entries e
                 JOIN input i ON i.campaign_id = e.campaign_id AND i.idempotency_key = e.idempotency_key
                 JOIN UNNEST($14::int4[], $15::int4[], $16::text[], $17::text[], $18::int8[])
                     AS l(position, line, account, currency, amount) ON l.position = i.position
                 JOIN accounts a ON a.campaign_id = e.campaign_id AND a.name = l.account
             ), queued AS (
                 INSERT INTO pending_seal (entry_id) SELECT id FROM new_entries
             )
             SELECT campaign_id, idempotency_key, id FROM new_entries",
        )
        .bind(&columns.campaign_ids)
        .bind(&columns.keys)
        .bind(&columns.hashes)
        .bind(&columns.descriptions)
        .bind(&columns.effective_ats)
        .bind(&columns.posting_counts)
        .bind(&columns.reverses)
        .bind(&columns.sources)
        .bind(&columns.event_ids)
        .bind(&columns.donor_ids)
        .bind(&columns.contribution_ids)
        .bind(&columns.positions)
        .bind(recorded_at)
        .bind(&columns.line_positions)
        .bind(&columns.lines)
        .bind(&columns.accounts)
        .bind(&columns.currencies)
        .bind(&columns.amounts)
        .fetch_all(&mut *conn)
        .await
        .map_err(refused)?;
    let inserted: HashMap<(i64, String), i64> = inserted
        .into_iter()
        .map(|(c, k, id)| ((c, k), id))
        .collect();
    // Entries the insert skipped: their key exists (a replay or a conflict), or they
    // reverse an entry that was already reversed.
    let skipped: Vec<&Entry> = batch
        .iter()
        .copied()
        .filter(|e| !inserted.contains_key(&batch_key(e)))
        .collect();
    let existing: HashMap<(i64, String), (i64, String)> = if skipped.is_empty() {
        HashMap::new()
    } else {
        let campaigns: Vec<i64> = skipped.iter().map(|e| e.content().campaign_id.0).collect();
        let keys: Vec<&str> = skipped
            .iter()
            .map(|e| e.content().idempotency_key.as_str())
            .collect();
        let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
                "SELECT e.campaign_id, e.idempotency_key, e.id, e.content_hash
                 FROM entries e JOIN UNNEST($1::int8[], $2::text[]) AS k(campaign_id, idempotency_key)
                   ON e.campaign_id = k.campaign_id AND e.idempotency_key = k.idempotency_key",
            )
            .bind(&campaigns)
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await?;
        rows.into_iter()
            .map(|(c, k, id, hash)| ((c, k), (id, hash)))
            .collect()
    };
    Ok(batch
        .iter()
        .map(|entry| match inserted.get(&batch_key(entry)) {
            Some(id) => Ok(Posted {
                entry_id: EntryId(*id),
                replayed: false,
            }),
            None => resolve_skipped(entry, existing.get(&batch_key(entry))),
        })
        .collect())
}

/// Finds or creates the campaign's donor row for `donor`, inside the caller's transaction
/// (see [`contributions::upsert_donors`]).
pub(super) async fn upsert_donor(
    conn: &mut PgConnection,
    campaign: CampaignId,
    donor: &NewDonor,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let key = (campaign.0, donor.identity_key.clone());
    contributions::upsert_donors(conn, &[(campaign, donor.clone())], now)
        .await?
        .remove(&key)
        .ok_or_else(|| StoreError::Corrupt("a donor neither stored nor new".into()))
}
