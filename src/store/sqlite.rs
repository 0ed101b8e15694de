//! SQLite: one file in WAL mode, one writer connection, a pool of readers.
//!
//! SQLite allows one writer at a time; giving writes a single connection queues them in
//! the pool instead of failing with SQLITE_BUSY, while WAL lets readers proceed during a
//! write. `synchronous = FULL`: a committed entry survives a power cut, not just a crash.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

use super::{
    account_balance, assemble, attach_seals, check_contribution_campaign, currency_of,
    extend_chain, gift_key_column, inbox_status, net_contribution, recorded_gifts, register_gift,
    resolve_skipped, rollup_rows, settlement_columns, Posted, RawCampaign, RawEntry, RawPosting,
    RawSeal, SealStatus, StoreError, StoreOptions, CONTRIBUTION_COLUMNS, RECORDED_GIFT_COLUMNS,
    REGISTER_COLUMNS,
};
use crate::store::{NewDonor, FILL_IN_DONOR};

mod compliance;
mod tallies;
use crate::access::{Grant, ReportAccess, Role};
use crate::campaign::{Campaign, NewCampaign};
use crate::clock::{from_unix_micros, unix_micros};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// What the books kept of contribution `c` (its credit to income, less refunds and
/// chargebacks, the contra accounts) by `?2`: driven from the gift's own entries
/// (`CROSS JOIN` fixes the join order, so the planner cannot start from every posting of the
/// gifts account instead).
const NET_KEPT: &str = "coalesce((SELECT -sum(p.amount) FROM entries e
        CROSS JOIN postings p ON p.entry_id = e.id
        CROSS JOIN accounts a ON a.id = p.account_id
        WHERE e.contribution_id = c.id AND p.effective_at <= ?2
          AND a.name IN ('income:donations', 'income:donations:refunds', 'income:donations:chargebacks')), 0)";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    from_unix_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("instant {micros} out of range")))
}

/// Maps SQLite's constraint messages (it has no constraint names) to our errors.
fn refused(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) => {
            let message = db.message();
            if message.contains("entries.reverses_entry_id") {
                StoreError::Refused("that entry has already been reversed".into())
            } else if message.contains("FOREIGN KEY") {
                StoreError::Refused(format!(
                    "{message}: an account or reversed entry of another campaign"
                ))
            } else if message.contains("unbalanced")
                || message.contains("CHECK")
                || message.contains("append-only")
            {
                StoreError::Refused(message.to_owned())
            } else {
                StoreError::Database(error)
            }
        }
        _ => StoreError::Database(error),
    }
}

impl SqliteStore {
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        let unreachable = |e: sqlx::Error| StoreError::Unreachable {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::BadUrl(url.to_owned()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.acquire_timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(unreachable)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.pool_size.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(unreachable)?;
        Ok(SqliteStore { writer, reader })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.writer).await?)
    }

    /// A write transaction holding the database's write lock from its first statement
    /// (`BEGIN IMMEDIATE`). Another process writing the same file (`obole contribution add`
    /// beside `obole serve`) then makes it wait, under the busy timeout; a deferred
    /// transaction would instead fail at once with "database is locked" when its first write
    /// finds that the other process wrote since its first read.
    pub(crate) async fn write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        loop {
            match self.writer.begin_with("BEGIN IMMEDIATE").await {
                Err(sqlx::Error::InvalidSavePointStatement) => {
                    self.writer_connection().await?;
                }
                begun => return begun,
            }
        }
    }

    /// The writer connection, outside any transaction.
    ///
    /// Why the check: sqlx 0.8's SQLite worker acknowledges a `BEGIN` before the
    /// `Transaction` that would roll it back exists, so a caller cancelled at that moment (a
    /// client gone, a task aborted) leaves the connection inside a transaction nobody owns.
    /// Used as is, it would hold the write lock for good, and every later write would join
    /// that transaction and never be committed. Such a connection is closed, which rolls the
    /// orphan back, and a fresh one opened.
    pub(crate) async fn writer_connection(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, sqlx::Error> {
        loop {
            let mut conn = self.writer.acquire().await?;
            // Commands run in order: the ping runs after any rollback a dropped
            // transaction queued, so what remains open after it is an orphan.
            conn.ping().await?;
            if !conn.is_in_transaction() {
                return Ok(conn);
            }
            tracing::warn!(
                "closing a SQLite connection left inside a transaction by a cancelled BEGIN"
            );
            conn.close().await?;
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    pub async fn create_campaign(
        &self,
        c: &NewCampaign,
        now: DateTime<Utc>,
    ) -> Result<Campaign, StoreError> {
        let mut tx = self.write().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO campaigns (slug, name, rule_pack, currency, timezone, election, created_at,
                                    financing_from, financing_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (slug) DO NOTHING RETURNING id",
        )
        .bind(c.slug.as_str())
        .bind(&c.name)
        .bind(&c.rule_pack)
        .bind(c.currency.code())
        .bind(c.timezone.name())
        .bind(&c.election)
        .bind(unix_micros(now))
        .bind(c.financing_period.map(|p| p.0))
        .bind(c.financing_period.map(|p| p.1))
        .fetch_optional(&mut *tx)
        .await?;
        let id = id.ok_or_else(|| StoreError::CampaignExists(c.slug.to_string()))?;
        for account in CHART {
            sqlx::query(
                "INSERT INTO accounts (campaign_id, name, kind, currency) VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(id)
            .bind(account.name)
            .bind(account.kind.as_str())
            .bind(c.currency.code())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(c.created(CampaignId(id), now))
    }

    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let rows = sqlx::query(&format!("{CAMPAIGN_COLUMNS} ORDER BY slug"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|r| raw_campaign(r)?.try_into()).collect()
    }

    pub async fn campaign(&self, slug: &Slug) -> Result<Option<Campaign>, StoreError> {
        let row = sqlx::query(&format!("{CAMPAIGN_COLUMNS} WHERE slug = ?1"))
            .bind(slug.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| raw_campaign(&r)?.try_into()).transpose()
    }

    /// Writes a planned batch (distinct keys) in one transaction, hence one fsync; each
    /// entry inside a savepoint, so one refused entry leaves the others written.
    pub async fn post_batch(
        &self,
        batch: &[&Entry],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<Result<Posted, StoreError>>, StoreError> {
        let mut tx = self.write().await?;
        let mut results = Vec::with_capacity(batch.len());
        for entry in batch {
            sqlx::query("SAVEPOINT entry").execute(&mut *tx).await?;
            let result = insert_entry(&mut tx, entry, recorded_at).await;
            if result.is_err() {
                sqlx::query("ROLLBACK TO entry").execute(&mut *tx).await?;
            }
            sqlx::query("RELEASE entry").execute(&mut *tx).await?;
            results.push(result);
        }
        tx.commit().await?;
        Ok(results)
    }

    pub async fn entries_by_id(&self, ids: &[i64]) -> Result<Vec<StoredEntry>, StoreError> {
        load_entries(&mut *self.reader.acquire().await?, ids).await
    }

    pub async fn balances(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<AccountBalance>, StoreError> {
        let hour = hour_bucket(as_of);
        let rows = sqlx::query(
            // Disjoint parts, each computed once for all accounts: sealed postings of whole
            // days before t's day and of whole hours of t's day before t's hour (roll-ups),
            // every posting of t's hour up to t, and unsealed postings before t's hour. The
            // last is driven from the (small) queue: SQLite keeps the left table of a CROSS
            // JOIN as the outer loop.
            "WITH sealed_hours AS (
                 SELECT account_id, sum(amount) AS amount FROM (
                     SELECT r.account_id, r.amount
                     FROM accounts a JOIN rollups r ON r.account_id = a.id AND r.span = 'day' AND r.bucket < ?5
                     WHERE a.campaign_id = ?4
                     UNION ALL
                     SELECT r.account_id, r.amount
                     FROM accounts a
                     JOIN rollups r ON r.account_id = a.id AND r.span = 'hour' AND r.bucket >= ?6 AND r.bucket < ?1
                     WHERE a.campaign_id = ?4
                 ) AS whole_periods
                 GROUP BY account_id
             ), this_hour AS (
                 SELECT p.account_id, sum(p.amount) AS amount
                 FROM accounts a JOIN postings p ON p.account_id = a.id
                 WHERE a.campaign_id = ?4 AND p.effective_at >= ?2 AND p.effective_at <= ?3
                 GROUP BY p.account_id
             ), unsealed AS (
                 SELECT p.account_id, sum(p.amount) AS amount
                 FROM pending_seal q CROSS JOIN postings p ON p.entry_id = q.entry_id
                 WHERE p.campaign_id = ?4 AND p.effective_at < ?2
                 GROUP BY p.account_id
             )
             SELECT a.name, a.kind, a.currency,
                    coalesce(s.amount, 0) + coalesce(h.amount, 0) + coalesce(u.amount, 0) AS balance
             FROM accounts a
             LEFT JOIN sealed_hours s ON s.account_id = a.id
             LEFT JOIN this_hour h ON h.account_id = a.id
             LEFT JOIN unsealed u ON u.account_id = a.id
             WHERE a.campaign_id = ?4 ORDER BY a.id",
        )
        .bind(hour)
        .bind(hour_start_micros(hour))
        .bind(unix_micros(as_of))
        .bind(campaign.0)
        .bind(hour.div_euclid(HOURS_PER_DAY))
        .bind(hour.div_euclid(HOURS_PER_DAY) * HOURS_PER_DAY)
        .fetch_all(&self.reader)
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
        let mut tx = self.write().await?;
        let (sequence, hash): (i64, String) =
            sqlx::query_as("SELECT sequence, hash FROM seal_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        let head = Seal {
            sequence,
            hash: Hash32::from_hex(&hash)
                .ok_or_else(|| StoreError::Corrupt("seal head hash".into()))?,
        };
        let queued: Vec<i64> =
            sqlx::query_scalar("SELECT entry_id FROM pending_seal ORDER BY entry_id LIMIT ?1")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
        if queued.is_empty() {
            return Ok(0);
        }
        let entries = load_entries(&mut tx, &queued).await?;
        let extension = extend_chain(head, &entries)?;
        for (sequence, entry_id, prev, hash) in &extension.seals {
            sqlx::query("INSERT INTO seals (sequence, entry_id, prev_hash, hash, sealed_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                .bind(sequence)
                .bind(entry_id.0)
                .bind(prev.to_hex())
                .bind(hash.to_hex())
                .bind(unix_micros(now))
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM pending_seal WHERE entry_id = ?1")
                .bind(entry_id.0)
                .execute(&mut *tx)
                .await?;
        }
        Self::count_sealed_gifts(&mut tx, &entries).await?;
        for ((account, span, bucket), amount) in &extension.rollups {
            sqlx::query(
                "INSERT INTO rollups (account_id, span, bucket, amount) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account_id, span, bucket) DO UPDATE SET amount = amount + excluded.amount",
            )
            .bind(account.0)
            .bind(span.as_str())
            .bind(bucket)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(head) = extension.head {
            sqlx::query("UPDATE seal_head SET sequence = ?1, hash = ?2 WHERE id = 1")
                .bind(head.sequence)
                .bind(head.hash.to_hex())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(extension.seals.len())
    }

    pub async fn seal_status(&self) -> Result<SealStatus, StoreError> {
        let row = sqlx::query(
            "SELECT h.sequence, h.hash, (SELECT count(*) FROM pending_seal) AS unsealed FROM seal_head h WHERE h.id = 1",
        )
        .fetch_one(&self.reader)
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
        let rows = sqlx::query(
            "SELECT sequence, entry_id, prev_hash, hash FROM seals WHERE sequence > ?1 ORDER BY sequence LIMIT ?2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
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
        let entries = load_entries(&mut *self.reader.acquire().await?, &ids).await?;
        attach_seals(seals, entries)
    }

    /// Stores a batch of verified events in one transaction (one fsync for the lot).
    pub async fn record_stripe_events(
        &self,
        events: &[NewInboxEvent],
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        let mut tx = self.write().await?;
        let mut recorded = Vec::with_capacity(events.len());
        for event in events {
            let envelope = &event.envelope;
            let inserted: Option<String> = sqlx::query_scalar(
                "INSERT INTO stripe_events (event_id, type, livemode, created, api_version, payload, received_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (event_id) DO NOTHING RETURNING status",
            )
            .bind(&envelope.id)
            .bind(&envelope.kind)
            .bind(envelope.livemode)
            .bind(envelope.created)
            .bind(&envelope.api_version)
            .bind(&event.payload)
            .bind(unix_micros(event.received_at))
            .bind(event.status.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let (inserted, status) = match inserted {
                Some(status) => (true, status),
                None => {
                    let status: String =
                        sqlx::query_scalar("SELECT status FROM stripe_events WHERE event_id = ?1")
                            .bind(&envelope.id)
                            .fetch_one(&mut *tx)
                            .await?;
                    (false, status)
                }
            };
            recorded.push(inbox_status(&status).map(|status| Recorded { inserted, status }));
        }
        tx.commit().await?;
        Ok(recorded)
    }

    pub async fn journal_ids(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM entries WHERE campaign_id = ?1 AND id > ?3 AND effective_at <= ?2 ORDER BY id LIMIT ?4",
        )
        .bind(campaign.0)
        .bind(unix_micros(as_of))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    pub async fn register_span(
        &self,
        campaign: CampaignId,
        after_person: i64,
        persons: i64,
    ) -> Result<Option<i64>, StoreError> {
        let page: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT person_id FROM donors WHERE campaign_id = ?1 AND person_id > ?2
             ORDER BY person_id LIMIT ?3",
        )
        .bind(campaign.0)
        .bind(after_person)
        .bind(persons)
        .fetch_all(&self.reader)
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
                 SELECT e.contribution_id,
                        sum(CASE WHEN a.name IN (SELECT value FROM json_each(?5)) THEN p.amount ELSE 0 END) AS amount
                 FROM pending_seal q CROSS JOIN entries e ON e.id = q.entry_id
                 JOIN postings p ON p.entry_id = e.id
                 JOIN accounts a ON a.id = p.account_id
                 WHERE e.campaign_id = ?1 AND e.contribution_id IS NOT NULL AND e.effective_at <= ?2
                 GROUP BY e.contribution_id
             )
             {REGISTER_COLUMNS},
                    -((SELECT coalesce(sum(m.amount), 0) FROM gift_movements m
                       WHERE m.contribution_id = c.id AND m.effective_at <= ?2) + coalesce(u.amount, 0)),
                    c.paid_at
             FROM donors d CROSS JOIN contributions c ON c.donor_id = d.id
             LEFT JOIN unsealed u ON u.contribution_id = c.id
             WHERE d.campaign_id = ?1 AND d.person_id > ?3 AND d.person_id <= ?4
               AND c.campaign_id = ?1 AND c.paid_at <= ?2
               -- Posted by then: a sealed movement, or an entry in the queue.
               AND (u.contribution_id IS NOT NULL
                    OR EXISTS (SELECT 1 FROM gift_movements m WHERE m.contribution_id = c.id AND m.effective_at <= ?2))
             ORDER BY d.person_id, c.paid_at, c.id"
        ))
        .bind(campaign.0)
        .bind(unix_micros(as_of))
        .bind(after_person)
        .bind(through)
        .bind(serde_json::to_string(&GIFT_ACCOUNTS).unwrap_or_default())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| register_gift(row, time(row.try_get(16)?)?))
            .collect()
    }

    pub async fn net_contributions(
        &self,
        donors: &[i64],
        as_of: DateTime<Utc>,
    ) -> Result<Vec<NetContribution>, StoreError> {
        let donors =
            serde_json::to_string(donors).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let rows: Vec<(i64, i64, i64, i64, String, i64)> = sqlx::query_as(&format!(
            "SELECT c.id, c.campaign_id, c.donor_id, c.paid_at, c.currency,
                    {NET_KEPT}
             FROM contributions c
             WHERE c.donor_id IN (SELECT value FROM json_each(?1)) AND c.paid_at <= ?2
             ORDER BY c.paid_at, c.id"
        ))
        .bind(&donors)
        .bind(unix_micros(as_of))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(id, campaign, donor, paid_at, currency, net)| {
                net_contribution((id, campaign, donor, time(paid_at)?, currency, net))
            })
            .collect()
    }

    pub async fn stripe_event(&self, event_id: &str) -> Result<Option<InboxEvent>, StoreError> {
        let row = sqlx::query(&format!("{INBOX_COLUMNS} WHERE event_id = ?1"))
            .bind(event_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(inbox_event).transpose()
    }

    pub async fn due_stripe_events(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "{INBOX_COLUMNS} WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1)
             ORDER BY received_at, event_id LIMIT ?2"
        ))
        .bind(unix_micros(now))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(inbox_event).collect()
    }

    pub async fn stripe_events_with_status(
        &self,
        status: InboxStatus,
        limit: i64,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "{INBOX_COLUMNS} WHERE status = ?1 ORDER BY received_at, event_id LIMIT ?2"
        ))
        .bind(status.as_str())
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(inbox_event).collect()
    }

    pub async fn settle_stripe_events(
        &self,
        settlements: &[(String, Settlement)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (event_id, settlement) in settlements {
            let (status, error, next) = settlement_columns(settlement);
            // Only a pending event moves: a redelivered or concurrently settled one keeps
            // its first outcome.
            sqlx::query(
                "UPDATE stripe_events SET status = ?2, last_error = ?3, next_attempt_at = ?4,
                        attempts = attempts + 1, processed_at = ?5
                 WHERE event_id = ?1 AND status = 'pending'",
            )
            .bind(event_id)
            .bind(status.as_str())
            .bind(error)
            .bind(next.map(unix_micros))
            .bind(unix_micros(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn requeue_stripe_event(&self, event_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE stripe_events SET status = 'pending', next_attempt_at = NULL, attempts = 0
             WHERE event_id = ?1 AND status = 'parked'",
        )
        .bind(event_id)
        .execute(&mut *self.writer_connection().await?)
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
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )
        .bind(campaign.0)
        .bind(role.as_str())
        .bind(hash)
        .bind(unix_micros(now))
        .fetch_one(&mut *self.writer_connection().await?)
        .await?)
    }

    pub async fn token(&self, hash: &str) -> Result<Option<Grant>, StoreError> {
        let row: Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT id, campaign_id, role FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.reader)
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(access.campaign_id.0)
        .bind(access.token_id)
        .bind(access.role)
        .bind(access.kind)
        .bind(unix_micros(access.as_of))
        .bind(access.format)
        .bind(unix_micros(now))
        .execute(&mut *self.writer_connection().await?)
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
             FROM accounts a CROSS JOIN postings p ON p.account_id = a.id AND p.effective_at <= ?3
             WHERE a.campaign_id = ?1 AND a.name NOT IN (SELECT value FROM json_each(?2))
               AND EXISTS (SELECT 1 FROM postings s JOIN accounts sa ON sa.id = s.account_id
                           WHERE s.entry_id = p.entry_id AND sa.name = 'assets:stripe')
             ORDER BY p.entry_id LIMIT ?4",
        )
        .bind(campaign.0)
        .bind(serde_json::to_string(explaining).unwrap_or_default())
        .bind(unix_micros(as_of))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        load_entries(&mut *self.reader.acquire().await?, &ids).await
    }

    /// The first money at Stripe and the last payout to the bank, by `as_of`.
    pub async fn stripe_payout_times(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), StoreError> {
        let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT min(p.effective_at) FROM accounts a JOIN postings p ON p.account_id = a.id
                     WHERE a.campaign_id = ?1 AND a.name = 'assets:stripe' AND p.effective_at <= ?2),
                    (SELECT max(p.effective_at) FROM accounts a JOIN postings p ON p.account_id = a.id
                     WHERE a.campaign_id = ?1 AND a.name = 'assets:bank' AND p.effective_at <= ?2
                       AND EXISTS (SELECT 1 FROM postings s JOIN accounts sa ON sa.id = s.account_id
                                   WHERE s.entry_id = p.entry_id AND sa.name = 'assets:stripe'))",
        )
        .bind(campaign.0)
        .bind(unix_micros(as_of))
        .fetch_one(&self.reader)
        .await?;
        Ok((first.map(time).transpose()?, last.map(time).transpose()?))
    }

    pub async fn kept_gifts(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<GiftFigure>, StoreError> {
        let rows: Vec<(i64, i64, String, i64)> = sqlx::query_as(
            "SELECT d.person_id, c.amount - coalesce(x.excess, 0), c.currency, c.paid_at
             FROM contributions c
             JOIN donors d ON d.id = c.donor_id
             LEFT JOIN compliance_decisions x ON x.contribution_id = c.id AND x.stage = 'posting'
             WHERE c.campaign_id = ?1 AND c.paid_at <= ?2
               AND c.amount - coalesce(x.excess, 0) > 0
               AND EXISTS (SELECT 1 FROM entries e WHERE e.contribution_id = c.id AND e.effective_at <= ?2)",
        )
        .bind(campaign.0)
        .bind(unix_micros(as_of))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(person_id, kept, currency, paid_at)| {
                Ok(GiftFigure {
                    person_id,
                    kept: Money::from_minor(kept, currency_of(&currency)?),
                    paid_at: time(paid_at)?,
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

    /// Records each gift and its donor, and links the donors to persons, one after another
    /// in one transaction: a batch costs one commit.
    pub async fn record_contributions(
        &self,
        gifts: &[NewContribution],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<ContributionRef, StoreError>>, StoreError> {
        let mut tx = self.write().await?;
        let mut stored = Vec::with_capacity(gifts.len());
        for gift in gifts {
            stored.push(Self::record_contribution_in(&mut tx, gift, now).await?);
        }
        tx.commit().await?;
        Ok(gifts
            .iter()
            .zip(stored)
            .map(|(gift, (recorded, campaign))| {
                check_contribution_campaign(gift, campaign)?;
                Ok(recorded)
            })
            .collect())
    }

    /// Records one gift inside the caller's transaction; returns it with the campaign it is
    /// stored under (another than the gift's if its charge was recorded for another).
    async fn record_contribution_in(
        conn: &mut SqliteConnection,
        gift: &NewContribution,
        now: DateTime<Utc>,
    ) -> Result<(ContributionRef, i64), StoreError> {
        let donor_id = upsert_donor(&mut *conn, gift.campaign_id, &gift.donor, now).await?;
        let payer = &gift.donor.payer;
        // On a charge recorded before, the row as stored: its own donor and campaign.
        let (contribution_id, stored_campaign, donor_id): (i64, i64, i64) = sqlx::query_as(
            "INSERT INTO contributions (campaign_id, donor_id, charge_id, payment_intent_id, checkout_session_id,
                amount, currency, paid_at, card_country, card_fingerprint, card_brand, card_funding,
                custom_fields, review_reason, created_at, method, declared, election)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
             ON CONFLICT (charge_id) DO UPDATE SET
                checkout_session_id = coalesce(contributions.checkout_session_id, excluded.checkout_session_id),
                custom_fields = coalesce(contributions.custom_fields, excluded.custom_fields),
                declared = coalesce(contributions.declared, excluded.declared),
                election = coalesce(contributions.election, excluded.election)
             RETURNING id, campaign_id, donor_id",
        )
        .bind(gift.campaign_id.0)
        .bind(donor_id)
        .bind(&gift.charge_id)
        .bind(&gift.payment_intent_id)
        .bind(&gift.checkout_session_id)
        .bind(gift.amount.minor())
        .bind(gift.amount.currency().code())
        .bind(unix_micros(gift.paid_at))
        .bind(&payer.card_country)
        .bind(&payer.card_fingerprint)
        .bind(&payer.card_brand)
        .bind(&payer.card_funding)
        .bind(&gift.custom_fields)
        .bind(&gift.review_reason)
        .bind(unix_micros(now))
        .bind(crate::enforcement::method_str(gift.method))
        .bind(&gift.declared)
        .bind(&gift.election)
        .fetch_one(&mut *conn)
        .await?;
        Self::link_identity(&mut *conn, donor_id, &gift.donor.links, now).await?;
        Ok((
            ContributionRef {
                donor_id,
                contribution_id,
            },
            stored_campaign,
        ))
    }

    pub async fn recorded_gifts(
        &self,
        keys: &[GiftKey<'_>],
    ) -> Result<Vec<Option<RecordedGift>>, StoreError> {
        // One read per key: SQLite answers in-process, with no round trip to spare.
        let mut rows = Vec::new();
        for (n, key) in (0_i64..).zip(keys) {
            let (column, id) = gift_key_column(key);
            let found: Vec<(i64, i64, i64, String, bool, bool)> = sqlx::query_as(&format!(
                "SELECT ?1, {RECORDED_GIFT_COLUMNS} FROM contributions c
                 WHERE c.{column} = ?2 LIMIT 2"
            ))
            .bind(n)
            .bind(id)
            .fetch_all(&self.reader)
            .await?;
            rows.extend(found);
        }
        Ok(recorded_gifts(keys.len(), rows))
    }

    pub async fn attach_session_facts(
        &self,
        facts: &[(i64, SessionFacts)],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (contribution_id, session) in facts {
            sqlx::query(
                "UPDATE contributions SET checkout_session_id = coalesce(checkout_session_id, ?2),
                    custom_fields = coalesce(custom_fields, ?3)
                 WHERE id = ?1",
            )
            .bind(contribution_id)
            .bind(&session.session_id)
            .bind(&session.custom_fields)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn contribution_by_charge(
        &self,
        charge_id: &str,
    ) -> Result<Option<Contribution>, StoreError> {
        let row = sqlx::query(&format!("{CONTRIBUTION_COLUMNS} WHERE c.charge_id = ?1"))
            .bind(charge_id)
            .fetch_optional(&self.reader)
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
                paid_at: time(r.try_get("paid_at")?)?,
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
        let mut found = Vec::new();
        for key in keys {
            let hit: Option<String> = sqlx::query_scalar(
                "SELECT idempotency_key FROM entries WHERE campaign_id = ?1 AND idempotency_key = ?2",
            )
            .bind(campaign.0)
            .bind(key)
            .fetch_optional(&self.reader)
            .await?;
            found.extend(hit);
        }
        Ok(found)
    }

    pub async fn sourced_postings(
        &self,
        campaign: CampaignId,
        prefix: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT e.source, a.name, p.amount FROM entries e
             JOIN postings p ON p.entry_id = e.id JOIN accounts a ON a.id = p.account_id
             WHERE e.campaign_id = ?1 AND substr(e.source, 1, length(?2)) = ?2
             ORDER BY e.id, a.name",
        )
        .bind(campaign.0)
        .bind(prefix)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows)
    }

    pub async fn rollups(&self) -> Result<Vec<(RollupKey, i64)>, StoreError> {
        let rows = sqlx::query_as("SELECT account_id, span, bucket, amount FROM rollups ORDER BY account_id, span, bucket")
            .fetch_all(&self.reader)
            .await?;
        rollup_rows(rows)
    }
}

const INBOX_COLUMNS: &str = "SELECT event_id, type, livemode, created, api_version, payload, received_at, status, attempts, last_error FROM stripe_events";

fn inbox_event(r: &SqliteRow) -> Result<InboxEvent, StoreError> {
    Ok(InboxEvent {
        event_id: r.try_get("event_id")?,
        kind: r.try_get("type")?,
        livemode: r.try_get("livemode")?,
        created: r.try_get("created")?,
        api_version: r.try_get("api_version")?,
        payload: r.try_get("payload")?,
        received_at: time(r.try_get("received_at")?)?,
        status: inbox_status(r.try_get("status")?)?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
    })
}

const CAMPAIGN_COLUMNS: &str =
    "SELECT id, slug, name, rule_pack, currency, timezone, election, financing_from, financing_until,
            created_at FROM campaigns";

fn raw_campaign(row: &SqliteRow) -> Result<RawCampaign, StoreError> {
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
        created_at: time(row.try_get("created_at")?)?,
    })
}

/// Inserts one entry with its postings and queue row, or resolves why it was skipped.
async fn insert_entry(
    conn: &mut SqliteConnection,
    entry: &Entry,
    recorded_at: DateTime<Utc>,
) -> Result<Posted, StoreError> {
    let content = entry.content();
    let effective_at = unix_micros(content.effective_at);
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO entries (campaign_id, idempotency_key, content_hash, description, effective_at,
                              recorded_at, posting_count, reverses_entry_id, source, event_id,
                              donor_id, contribution_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(content.campaign_id.0)
    .bind(&content.idempotency_key)
    .bind(entry.content_hash().to_hex())
    .bind(&content.description)
    .bind(effective_at)
    .bind(unix_micros(recorded_at))
    .bind(content.postings.len() as i64)
    .bind(content.reverses.map(|id| id.0))
    .bind(&content.links.source)
    .bind(&content.links.event_id)
    .bind(content.links.donor_id)
    .bind(content.links.contribution_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(refused)?;
    let Some(entry_id) = inserted else {
        let existing: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, content_hash FROM entries WHERE campaign_id = ?1 AND idempotency_key = ?2",
        )
        .bind(content.campaign_id.0)
        .bind(&content.idempotency_key)
        .fetch_optional(&mut *conn)
        .await?;
        return resolve_skipped(entry, existing.as_ref());
    };
    for (line, posting) in content.postings.iter().enumerate() {
        let written = sqlx::query(
            "INSERT INTO postings (entry_id, line, campaign_id, account_id, currency, amount, effective_at)
             SELECT ?1, ?2, ?3, a.id, ?4, ?5, ?6 FROM accounts a WHERE a.campaign_id = ?3 AND a.name = ?7",
        )
        .bind(entry_id)
        .bind(line as i64)
        .bind(content.campaign_id.0)
        .bind(posting.amount.currency().code())
        .bind(posting.amount.minor())
        .bind(effective_at)
        .bind(&posting.account)
        .execute(&mut *conn)
        .await
        .map_err(refused)?;
        if written.rows_affected() != 1 {
            return Err(StoreError::NoSuchAccount(posting.account.clone()));
        }
    }
    sqlx::query("INSERT INTO pending_seal (entry_id) VALUES (?1)")
        .bind(entry_id)
        .execute(&mut *conn)
        .await
        .map_err(refused)?;
    Ok(Posted {
        entry_id: EntryId(entry_id),
        replayed: false,
    })
}

/// Loads entries with their postings, in id order. `ids` is bound as a JSON array so the
/// statement text does not depend on how many there are.
async fn load_entries(
    conn: &mut SqliteConnection,
    ids: &[i64],
) -> Result<Vec<StoredEntry>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids_json = serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let entry_rows = sqlx::query(
        "SELECT id, campaign_id, idempotency_key, content_hash, description, effective_at, recorded_at,
                reverses_entry_id, source, event_id, donor_id, contribution_id
         FROM entries WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id",
    )
    .bind(&ids_json)
    .fetch_all(&mut *conn)
    .await?;
    let posting_rows = sqlx::query(
        "SELECT p.entry_id, p.account_id, a.name, p.currency, p.amount
         FROM postings p JOIN accounts a ON a.id = p.account_id
         WHERE p.entry_id IN (SELECT value FROM json_each(?1)) ORDER BY p.entry_id, p.line",
    )
    .bind(&ids_json)
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
                effective_at: time(r.try_get("effective_at")?)?,
                recorded_at: time(r.try_get("recorded_at")?)?,
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

/// Finds or creates the campaign's donor row for `donor`, inside the caller's transaction. A
/// donor keeps the details first seen; later gifts only fill in what was missing, and a row
/// they add nothing to is left as it was (`FILL_IN_DONOR`) and its id read by key.
pub(super) async fn upsert_donor(
    conn: &mut SqliteConnection,
    campaign: CampaignId,
    donor: &NewDonor,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let payer = &donor.payer;
    let a = &payer.address;
    let written: Option<i64> = sqlx::query_scalar(&format!(
        "INSERT INTO donors (campaign_id, identity_key, name, email, line1, line2, city, postal_code, state, country, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (campaign_id, identity_key) DO UPDATE {FILL_IN_DONOR}
         RETURNING id"
    ))
    .bind(campaign.0)
    .bind(&donor.identity_key)
    .bind(&payer.name)
    .bind(&payer.email)
    .bind(&a.line1)
    .bind(&a.line2)
    .bind(&a.city)
    .bind(&a.postal_code)
    .bind(&a.state)
    .bind(&a.country)
    .bind(unix_micros(now))
    .fetch_optional(&mut *conn)
    .await?;
    match written {
        Some(id) => Ok(id),
        None => Ok(sqlx::query_scalar(
            "SELECT id FROM donors WHERE campaign_id = ?1 AND identity_key = ?2",
        )
        .bind(campaign.0)
        .bind(&donor.identity_key)
        .fetch_one(&mut *conn)
        .await?),
    }
}
