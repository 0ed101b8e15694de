//! PostgreSQL: the summary's tallies (see `reports::tally`) — counting gifts as the sealer
//! seals them, moving persons' first gifts when persons change, and reading the figures.
//!
//! Every refresh of first gifts takes one transaction-scoped advisory lock, so the sealer
//! and a merge never compute a person's first gift from each other's half-written state.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::PgStore;
use crate::ids::CampaignId;
use crate::ledger::balance::hour_start_micros;
use crate::ledger::entry::StoredEntry;
use crate::ledger::hour_bucket;
use crate::reports::tally::{
    count_gift, first_gift_changes, AsOfRanges, FirstGift, GiftCounts, TallyChanges,
};
use crate::store::StoreError;

/// The advisory lock key of first-gift refreshes ("obole first gifts").
const FIRST_GIFTS_LOCK: i64 = 0x6f62_6f6c_6566_6731;

/// The gifts posted but not sealed yet that count by `$2`, with their persons: driven from
/// the sealer's queue through fenced LATERALs, never from the campaign's gifts.
const UNSEALED_GIFTS: &str = "
    SELECT c.kept, d.person_id,
           EXISTS (SELECT 1 FROM donor_firsts f WHERE f.person_id = d.person_id AND f.first_at <= $2) AS counted_donor
    FROM (SELECT DISTINCT e.contribution_id
          FROM pending_seal q
          CROSS JOIN LATERAL (SELECT e.contribution_id FROM entries e
                              WHERE e.id = q.entry_id AND e.campaign_id = $1 AND e.contribution_id IS NOT NULL
                              OFFSET 0) e) p
    CROSS JOIN LATERAL (
        SELECT c.id, c.donor_id,
               c.amount - coalesce((SELECT x.excess FROM compliance_decisions x
                                    WHERE x.contribution_id = c.id AND x.stage = 'posting'), 0) AS kept
        FROM contributions c
        WHERE c.id = p.contribution_id AND c.paid_at <= $2
          AND NOT EXISTS (SELECT 1 FROM counted_gifts g WHERE g.contribution_id = c.id)
          AND EXISTS (SELECT 1 FROM entries e WHERE e.contribution_id = c.id AND e.effective_at <= $2)
        OFFSET 0) c
    JOIN donors d ON d.id = c.donor_id
    WHERE c.kept > 0";

impl PgStore {
    /// Counts the gifts `entries` (just sealed, in the caller's transaction) belong to, if
    /// they were not counted yet, and refreshes their persons' first gifts.
    pub(super) async fn count_sealed_gifts(
        conn: &mut PgConnection,
        entries: &[StoredEntry],
    ) -> Result<(), StoreError> {
        let contributions: BTreeSet<i64> = entries
            .iter()
            .filter_map(|e| e.content.links.contribution_id)
            .collect();
        if contributions.is_empty() {
            return Ok(());
        }
        let contributions: Vec<i64> = contributions.into_iter().collect();
        let counted = sqlx::query(
            "INSERT INTO counted_gifts (contribution_id, campaign_id, counted_at, kept)
             SELECT c.id, c.campaign_id,
                    greatest(c.paid_at, (SELECT min(e.effective_at) FROM entries e WHERE e.contribution_id = c.id)),
                    c.amount - coalesce((SELECT x.excess FROM compliance_decisions x
                                         WHERE x.contribution_id = c.id AND x.stage = 'posting'), 0)
             FROM contributions c WHERE c.id = ANY($1)
             ON CONFLICT (contribution_id) DO NOTHING
             RETURNING campaign_id, counted_at, kept,
                       (SELECT donor_id FROM contributions c WHERE c.id = contribution_id) AS donor_id",
        )
        .bind(&contributions)
        .fetch_all(&mut *conn)
        .await?;
        if counted.is_empty() {
            return Ok(());
        }
        let mut tallies = TallyChanges::new();
        let mut donors = Vec::with_capacity(counted.len());
        for row in &counted {
            count_gift(
                &mut tallies,
                row.try_get("campaign_id")?,
                row.try_get("counted_at")?,
                row.try_get("kept")?,
            );
            donors.push(row.try_get::<i64, _>("donor_id")?);
        }
        Self::write_tallies(conn, &tallies).await?;
        let persons: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT person_id FROM donors WHERE id = ANY($1)")
                .bind(&donors)
                .fetch_all(&mut *conn)
                .await?;
        Self::refresh_first_gifts(conn, &persons).await
    }

    /// Recomputes the first gifts of `persons` (after their gifts were counted, or their
    /// donors moved between persons) and moves the `first_gifts` tallies accordingly.
    pub(super) async fn refresh_first_gifts(
        conn: &mut PgConnection,
        persons: &[i64],
    ) -> Result<(), StoreError> {
        if persons.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FIRST_GIFTS_LOCK)
            .execute(&mut *conn)
            .await?;
        let read = |rows: Vec<(i64, i64, DateTime<Utc>)>| -> Vec<FirstGift> {
            rows.into_iter()
                .map(|(person_id, campaign_id, at)| FirstGift {
                    person_id,
                    campaign_id,
                    at,
                })
                .collect()
        };
        let before = read(
            sqlx::query_as(
                "SELECT person_id, campaign_id, first_at FROM donor_firsts WHERE person_id = ANY($1)",
            )
            .bind(persons)
            .fetch_all(&mut *conn)
            .await?,
        );
        let now = read(
            sqlx::query_as(
                "SELECT d.person_id, d.campaign_id, min(g.counted_at)
                 FROM donors d
                 JOIN contributions c ON c.donor_id = d.id
                 JOIN counted_gifts g ON g.contribution_id = c.id AND g.kept > 0
                 WHERE d.person_id = ANY($1)
                 GROUP BY d.person_id, d.campaign_id",
            )
            .bind(persons)
            .fetch_all(&mut *conn)
            .await?,
        );
        let changes = first_gift_changes(&before, &now);
        sqlx::query("DELETE FROM donor_firsts WHERE person_id = ANY($1)")
            .bind(&changes.cleared)
            .execute(&mut *conn)
            .await?;
        let set_persons: Vec<i64> = changes.set.iter().map(|f| f.person_id).collect();
        let set_campaigns: Vec<i64> = changes.set.iter().map(|f| f.campaign_id).collect();
        let set_at: Vec<DateTime<Utc>> = changes.set.iter().map(|f| f.at).collect();
        sqlx::query(
            "INSERT INTO donor_firsts (person_id, campaign_id, first_at)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::timestamptz[])
             ON CONFLICT (person_id) DO UPDATE SET first_at = EXCLUDED.first_at",
        )
        .bind(&set_persons)
        .bind(&set_campaigns)
        .bind(&set_at)
        .execute(&mut *conn)
        .await?;
        Self::write_tallies(conn, &changes.tallies).await
    }

    /// Adds `changes` to the tallies, in key order (concurrent writers lock rows in the same
    /// order). A count that would go negative is refused by the table's check.
    async fn write_tallies(
        conn: &mut PgConnection,
        changes: &TallyChanges,
    ) -> Result<(), StoreError> {
        let changes: Vec<_> = changes.iter().filter(|(_, by)| **by != 0).collect();
        if changes.is_empty() {
            return Ok(());
        }
        let campaigns: Vec<i64> = changes.iter().map(|(k, _)| k.0).collect();
        let figures: Vec<&str> = changes.iter().map(|(k, _)| k.1.as_str()).collect();
        let spans: Vec<&str> = changes.iter().map(|(k, _)| k.2.as_str()).collect();
        let buckets: Vec<i64> = changes.iter().map(|(k, _)| k.3).collect();
        let kept: Vec<i64> = changes.iter().map(|(k, _)| k.4).collect();
        let by: Vec<i64> = changes.iter().map(|(_, by)| **by).collect();
        sqlx::query(
            "INSERT INTO tallies (campaign_id, figure, span, bucket, kept, count)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[])
             ON CONFLICT (campaign_id, figure, span, bucket, kept)
             DO UPDATE SET count = tallies.count + EXCLUDED.count",
        )
        .bind(&campaigns)
        .bind(&figures)
        .bind(&spans)
        .bind(&buckets)
        .bind(&kept)
        .bind(&by)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn gift_counts(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<GiftCounts, StoreError> {
        let ranges = AsOfRanges::of(as_of);
        // One snapshot for both reads: a gift the sealer counts between them must be read once.
        let mut conn = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *conn)
            .await?;
        // Whole months, whole days of this month, then this day's gifts and first gifts.
        let rows = sqlx::query(
            "SELECT figure, kept, sum(count)::int8 AS count FROM (
                 SELECT figure, kept, count FROM tallies
                 WHERE campaign_id = $1 AND span = 'month' AND bucket < $3
                 UNION ALL
                 SELECT figure, kept, count FROM tallies
                 WHERE campaign_id = $1 AND span = 'day' AND bucket >= $4 AND bucket < $5
                 UNION ALL
                 SELECT 'gifts', kept, 1 FROM counted_gifts
                 WHERE campaign_id = $1 AND counted_at >= $6 AND counted_at <= $2 AND kept > 0
                 UNION ALL
                 SELECT 'first_gifts', 0, 1 FROM donor_firsts
                 WHERE campaign_id = $1 AND first_at >= $6 AND first_at <= $2
             ) AS parts
             GROUP BY figure, kept",
        )
        .bind(campaign.0)
        .bind(as_of)
        .bind(ranges.months_before)
        .bind(ranges.days_from)
        .bind(ranges.days_before)
        .bind(ranges.day_start)
        .fetch_all(&mut *conn)
        .await?;
        let mut counts = GiftCounts::default();
        for row in &rows {
            let figure: String = row.try_get("figure")?;
            let count = u64::try_from(row.try_get::<i64, _>("count")?)
                .map_err(|_| StoreError::Corrupt("a negative tally".into()))?;
            if figure == "gifts" {
                counts.add(row.try_get("kept")?, count);
            } else {
                counts.donors += count;
            }
        }
        let unsealed: Vec<(i64, i64, bool)> = sqlx::query_as(UNSEALED_GIFTS)
            .bind(campaign.0)
            .bind(as_of)
            .fetch_all(&mut *conn)
            .await?;
        let mut new_donors = BTreeSet::new();
        for (kept, person, counted_donor) in unsealed {
            counts.add(kept, 1);
            if !counted_donor {
                new_donors.insert(person);
            }
        }
        conn.commit().await?;
        counts.donors += u64::try_from(new_donors.len()).unwrap_or(u64::MAX);
        Ok(counts)
    }

    /// Money raised (`income:donations`, credits less debits) per UTC hour from `from`'s
    /// hour to `as_of`, as (start of the hour, minor units): the sealer's hourly roll-ups, the
    /// postings of `as_of`'s hour, and unsealed postings before it.
    pub async fn raised_per_hour(
        &self,
        campaign: CampaignId,
        from: DateTime<Utc>,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>, StoreError> {
        let hour = hour_bucket(as_of);
        let hour_start = crate::clock::from_unix_micros(hour_start_micros(hour))
            .ok_or_else(|| StoreError::Corrupt("as-of instant out of range".into()))?;
        let rows: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(
            "SELECT to_timestamp(r.bucket * 3600) AS at, -r.amount
             FROM accounts a JOIN rollups r ON r.account_id = a.id AND r.span = 'hour' AND r.bucket >= $2 AND r.bucket < $3
             WHERE a.campaign_id = $1 AND a.name = 'income:donations'
             UNION ALL
             SELECT p.effective_at, -p.amount
             FROM accounts a JOIN postings p ON p.account_id = a.id
             WHERE a.campaign_id = $1 AND a.name = 'income:donations' AND p.effective_at >= $4 AND p.effective_at <= $5
             UNION ALL
             SELECT p.effective_at, -p.amount
             FROM pending_seal q
             CROSS JOIN LATERAL (SELECT p.effective_at, p.amount FROM postings p JOIN accounts a ON a.id = p.account_id
                                 WHERE p.entry_id = q.entry_id AND p.campaign_id = $1 AND a.name = 'income:donations'
                                   AND p.effective_at >= $6 AND p.effective_at < $4
                                 OFFSET 0) p",
        )
        .bind(campaign.0)
        .bind(hour_bucket(from))
        .bind(hour)
        .bind(hour_start)
        .bind(as_of)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
