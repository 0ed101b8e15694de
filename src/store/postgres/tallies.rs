//! PostgreSQL: the summary's tallies (see `reports::tally`) — counting gifts as the sealer
//! seals them, moving persons' first gifts when persons change, and reading the figures.
//!
//! Every refresh of first gifts takes one transaction-scoped advisory lock, so the sealer
//! and a merge never compute a person's first gift from each other's half-written state.
//! Lookups by lists of ids are driven from the list through fenced LATERALs (`OFFSET 0`):
//! autovacuum may be off, and a plan from stale statistics would scan whole tables.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::PgStore;
use crate::ids::CampaignId;
use crate::ledger::balance::hour_start_micros;
use crate::ledger::entry::StoredEntry;
use crate::ledger::hour_bucket;
use crate::reports::tally::{
    count_gift, first_gift_changes, gift_movement, with_counted, AsOfRanges, FirstGift,
    FirstGiftChanges, GiftCounts, GiftMovement, TallyChanges,
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

/// The tallies, persons' first gifts and counted gifts as recounted from what they derive
/// from: each row a difference, described (none when all agree). One statement each, so a
/// sealer writing meanwhile cannot make a difference appear.
const TALLY_CHECKS: [&str; 3] = [
    "WITH expected AS (
         SELECT campaign_id, 'gifts' AS figure, span, bucket, kept, count(*)::int8 AS count FROM (
             SELECT campaign_id, kept, 'day' AS span, floor(extract(epoch FROM counted_at) / 86400)::int8 AS bucket
             FROM counted_gifts WHERE kept > 0
             UNION ALL
             SELECT campaign_id, kept, 'month', ((extract(year FROM counted_at AT TIME ZONE 'UTC') - 1970) * 12
                                                 + extract(month FROM counted_at AT TIME ZONE 'UTC') - 1)::int8
             FROM counted_gifts WHERE kept > 0) g
         GROUP BY 1, 2, 3, 4, 5
         UNION ALL
         SELECT campaign_id, 'first_gifts', span, bucket, 0, count(*)::int8 FROM (
             SELECT campaign_id, 'day' AS span, floor(extract(epoch FROM first_at) / 86400)::int8 AS bucket
             FROM donor_firsts
             UNION ALL
             SELECT campaign_id, 'month', ((extract(year FROM first_at AT TIME ZONE 'UTC') - 1970) * 12
                                           + extract(month FROM first_at AT TIME ZONE 'UTC') - 1)::int8
             FROM donor_firsts) f
         GROUP BY 1, 2, 3, 4, 5)
     SELECT format('campaign %s, %s tally of %s %s, kept %s: stored %s, recounted %s',
                   coalesce(e.campaign_id, t.campaign_id), coalesce(e.figure, t.figure),
                   coalesce(e.span, t.span), coalesce(e.bucket, t.bucket), coalesce(e.kept, t.kept),
                   coalesce(t.count, 0), coalesce(e.count, 0))
     FROM expected e
     FULL JOIN tallies t ON t.campaign_id = e.campaign_id AND t.figure = e.figure AND t.span = e.span
                        AND t.bucket = e.bucket AND t.kept = e.kept
     WHERE coalesce(e.count, 0) <> coalesce(t.count, 0)
     LIMIT 5",
    "SELECT format('person %s: first gift stored %s, recounted %s',
                   coalesce(x.person_id, f.person_id), f.first_at, x.first_at)
     FROM (SELECT d.person_id, min(g.counted_at) AS first_at
           FROM counted_gifts g JOIN contributions c ON c.id = g.contribution_id
           JOIN donors d ON d.id = c.donor_id
           WHERE g.kept > 0 GROUP BY d.person_id) x
     FULL JOIN donor_firsts f ON f.person_id = x.person_id
     WHERE x.first_at IS DISTINCT FROM f.first_at
     LIMIT 5",
    "SELECT format('contribution %s: counted as keeping %s, its amount less its excess is %s',
                   g.contribution_id, g.kept,
                   c.amount - coalesce(x.excess, 0))
     FROM counted_gifts g JOIN contributions c ON c.id = g.contribution_id
     LEFT JOIN compliance_decisions x ON x.contribution_id = c.id AND x.stage = 'posting'
     WHERE g.kept <> c.amount - coalesce(x.excess, 0)
     LIMIT 5",
];

fn first_gift((person_id, campaign_id, at): (i64, i64, DateTime<Utc>)) -> FirstGift {
    FirstGift {
        person_id,
        campaign_id,
        at,
    }
}

impl PgStore {
    /// Records the gift movements of `entries` (just sealed, in the caller's transaction),
    /// counts the gifts they belong to if they were not counted yet, and moves their persons'
    /// first gifts earlier where they are.
    pub(super) async fn count_sealed_gifts(
        conn: &mut PgConnection,
        entries: &[StoredEntry],
    ) -> Result<(), StoreError> {
        let movements: Vec<GiftMovement> = entries.iter().filter_map(gift_movement).collect();
        if movements.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO gift_movements (entry_id, contribution_id, effective_at, amount)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::timestamptz[], $4::int8[])
             ON CONFLICT (entry_id) DO NOTHING",
        )
        .bind(movements.iter().map(|m| m.entry_id).collect::<Vec<_>>())
        .bind(
            movements
                .iter()
                .map(|m| m.contribution_id)
                .collect::<Vec<_>>(),
        )
        .bind(movements.iter().map(|m| m.effective_at).collect::<Vec<_>>())
        .bind(movements.iter().map(|m| m.amount).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        let contributions: Vec<i64> = movements
            .iter()
            .map(|m| m.contribution_id)
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect();
        // Locked before the persons are read: a merge committed meanwhile is seen, and one
        // still open recomputes these persons after us.
        Self::lock_first_gifts(conn).await?;
        let counted = sqlx::query(
            "INSERT INTO counted_gifts (contribution_id, campaign_id, counted_at, kept)
             SELECT c.id, c.campaign_id,
                    greatest(c.paid_at, (SELECT min(e.effective_at) FROM entries e WHERE e.contribution_id = c.id)),
                    c.amount - coalesce((SELECT x.excess FROM compliance_decisions x
                                         WHERE x.contribution_id = c.id AND x.stage = 'posting'), 0)
             FROM UNNEST($1::int8[]) AS t(id)
             CROSS JOIN LATERAL (SELECT * FROM contributions c WHERE c.id = t.id OFFSET 0) c
             ON CONFLICT (contribution_id) DO NOTHING
             RETURNING campaign_id, counted_at, kept,
                       (SELECT d.person_id FROM contributions c JOIN donors d ON d.id = c.donor_id
                        WHERE c.id = contribution_id) AS person_id",
        )
        .bind(&contributions)
        .fetch_all(&mut *conn)
        .await?;
        let mut gifts = TallyChanges::new();
        let mut firsts = Vec::with_capacity(counted.len());
        for row in &counted {
            let (campaign_id, at, kept): (i64, DateTime<Utc>, i64) = (
                row.try_get("campaign_id")?,
                row.try_get("counted_at")?,
                row.try_get("kept")?,
            );
            count_gift(&mut gifts, campaign_id, at, kept);
            if kept > 0 {
                firsts.push(FirstGift {
                    person_id: row.try_get("person_id")?,
                    campaign_id,
                    at,
                });
            }
        }
        let persons: Vec<i64> = firsts.iter().map(|f| f.person_id).collect();
        let before = Self::first_gifts(conn, &persons).await?;
        let mut changes = first_gift_changes(&before, &with_counted(&before, &firsts));
        for (key, by) in gifts {
            *changes.tallies.entry(key).or_default() += by;
        }
        Self::write_first_gifts(conn, &changes).await
    }

    /// Recomputes the first gifts of `persons` from their gifts (after their donors moved
    /// between persons) and moves the `first_gifts` tallies accordingly.
    pub(super) async fn refresh_first_gifts(
        conn: &mut PgConnection,
        persons: &[i64],
    ) -> Result<(), StoreError> {
        if persons.is_empty() {
            return Ok(());
        }
        Self::lock_first_gifts(conn).await?;
        let before = Self::first_gifts(conn, persons).await?;
        let now: Vec<(i64, i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT d.person_id, d.campaign_id, min(g.counted_at)
             FROM UNNEST($1::int8[]) AS t(person)
             CROSS JOIN LATERAL (SELECT d.id, d.person_id, d.campaign_id FROM donors d
                                 WHERE d.person_id = t.person OFFSET 0) d
             CROSS JOIN LATERAL (SELECT c.id FROM contributions c WHERE c.donor_id = d.id OFFSET 0) c
             CROSS JOIN LATERAL (SELECT g.counted_at FROM counted_gifts g
                                 WHERE g.contribution_id = c.id AND g.kept > 0 OFFSET 0) g
             GROUP BY d.person_id, d.campaign_id",
        )
        .bind(persons)
        .fetch_all(&mut *conn)
        .await?;
        let now: Vec<FirstGift> = now.into_iter().map(first_gift).collect();
        Self::write_first_gifts(conn, &first_gift_changes(&before, &now)).await
    }

    async fn lock_first_gifts(conn: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FIRST_GIFTS_LOCK)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The stored first gifts of `persons`.
    async fn first_gifts(
        conn: &mut PgConnection,
        persons: &[i64],
    ) -> Result<Vec<FirstGift>, StoreError> {
        let rows: Vec<(i64, i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT f.person_id, f.campaign_id, f.first_at FROM UNNEST($1::int8[]) AS t(person)
             CROSS JOIN LATERAL (SELECT * FROM donor_firsts f WHERE f.person_id = t.person OFFSET 0) f",
        )
        .bind(persons)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(first_gift).collect())
    }

    async fn write_first_gifts(
        conn: &mut PgConnection,
        changes: &FirstGiftChanges,
    ) -> Result<(), StoreError> {
        if !changes.cleared.is_empty() {
            sqlx::query("DELETE FROM donor_firsts WHERE person_id = ANY($1)")
                .bind(&changes.cleared)
                .execute(&mut *conn)
                .await?;
        }
        if !changes.set.is_empty() {
            let persons: Vec<i64> = changes.set.iter().map(|f| f.person_id).collect();
            let campaigns: Vec<i64> = changes.set.iter().map(|f| f.campaign_id).collect();
            let at: Vec<DateTime<Utc>> = changes.set.iter().map(|f| f.at).collect();
            sqlx::query(
                "INSERT INTO donor_firsts (person_id, campaign_id, first_at)
                 SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::timestamptz[])
                 ON CONFLICT (person_id) DO UPDATE SET first_at = EXCLUDED.first_at",
            )
            .bind(&persons)
            .bind(&campaigns)
            .bind(&at)
            .execute(&mut *conn)
            .await?;
        }
        Self::write_tallies(conn, &changes.tallies).await
    }

    /// Adds `changes` to the tallies. A count that would go negative is refused by the
    /// table's check. A MERGE, not `INSERT … ON CONFLICT DO UPDATE`: PostgreSQL checks the
    /// row proposed for insertion before it looks for a conflict, so a decrement of an
    /// existing row (a proposed count of −1) would be refused. Every writer holds the
    /// first-gifts lock, so no two MERGEs insert the same row at once.
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
            "MERGE INTO tallies t
             USING UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[])
                   AS c(campaign_id, figure, span, bucket, kept, by)
             ON t.campaign_id = c.campaign_id AND t.figure = c.figure AND t.span = c.span
                AND t.bucket = c.bucket AND t.kept = c.kept
             WHEN MATCHED THEN UPDATE SET count = t.count + c.by
             WHEN NOT MATCHED THEN INSERT (campaign_id, figure, span, bucket, kept, count)
                  VALUES (c.campaign_id, c.figure, c.span, c.bucket, c.kept, c.by)",
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

    pub async fn gift_movements(&self, entries: &[i64]) -> Result<Vec<GiftMovement>, StoreError> {
        let rows: Vec<(i64, i64, DateTime<Utc>, i64)> = sqlx::query_as(
            "SELECT m.entry_id, m.contribution_id, m.effective_at, m.amount
             FROM UNNEST($1::int8[]) AS t(id)
             CROSS JOIN LATERAL (SELECT * FROM gift_movements m WHERE m.entry_id = t.id OFFSET 0) m
             ORDER BY m.entry_id",
        )
        .bind(entries)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(entry_id, contribution_id, effective_at, amount)| GiftMovement {
                    entry_id,
                    contribution_id,
                    effective_at,
                    amount,
                },
            )
            .collect())
    }

    /// What the tallies, first gifts and counted gifts disagree with (see `TALLY_CHECKS`).
    pub async fn tally_differences(&self) -> Result<Vec<String>, StoreError> {
        let mut differences = Vec::new();
        for check in TALLY_CHECKS {
            let found: Vec<String> = sqlx::query_scalar(check).fetch_all(&self.pool).await?;
            differences.extend(found);
        }
        Ok(differences)
    }

    pub async fn gift_counts(
        &self,
        campaign: CampaignId,
        as_of: DateTime<Utc>,
    ) -> Result<GiftCounts, StoreError> {
        let ranges = AsOfRanges::of(as_of);
        // One snapshot for both reads: a gift the sealer counts between them must be read once.
        let mut conn = self.begin().await?;
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
