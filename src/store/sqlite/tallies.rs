//! SQLite: the summary's tallies (see `reports::tally`) — counting gifts as the sealer seals
//! them, moving persons' first gifts when persons change, and reading the figures. SQLite
//! has one writer, so a refresh never races another.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

use super::compliance::json_list;
use super::{time, SqliteStore};
use crate::clock::unix_micros;
use crate::ids::CampaignId;
use crate::ledger::balance::hour_start_micros;
use crate::ledger::entry::StoredEntry;
use crate::ledger::hour_bucket;
use crate::reports::tally::{
    count_gift, first_gift_changes, gift_movement, with_counted, AsOfRanges, FirstGift,
    FirstGiftChanges, GiftCounts, GiftMovement, TallyChanges,
};
use crate::store::StoreError;

/// The gifts posted but not sealed yet that count by `?2`, with their persons, driven from
/// the sealer's queue (SQLite keeps the left table of a CROSS JOIN as the outer loop).
const UNSEALED_GIFTS: &str = "
    SELECT c.kept, d.person_id,
           EXISTS (SELECT 1 FROM donor_firsts f WHERE f.person_id = d.person_id AND f.first_at <= ?2) AS counted_donor
    FROM (SELECT DISTINCT e.contribution_id
          FROM pending_seal q CROSS JOIN entries e ON e.id = q.entry_id
          WHERE e.campaign_id = ?1 AND e.contribution_id IS NOT NULL) p
    CROSS JOIN (
        SELECT c.id, c.donor_id, c.paid_at,
               c.amount - coalesce((SELECT x.excess FROM compliance_decisions x
                                    WHERE x.contribution_id = c.id AND x.stage = 'posting'), 0) AS kept
        FROM contributions c) c ON c.id = p.contribution_id
    JOIN donors d ON d.id = c.donor_id
    WHERE c.paid_at <= ?2 AND c.kept > 0
      AND NOT EXISTS (SELECT 1 FROM counted_gifts g WHERE g.contribution_id = c.id)
      AND EXISTS (SELECT 1 FROM entries e WHERE e.contribution_id = c.id AND e.effective_at <= ?2)";

/// The tallies, persons' first gifts and counted gifts as recounted from what they derive
/// from: each row a difference, described (none when all agree).
const TALLY_CHECKS: [&str; 3] = [
    "WITH expected AS (
         SELECT campaign_id, 'gifts' AS figure, span, bucket, kept, count(*) AS count FROM (
             SELECT campaign_id, kept, 'day' AS span, counted_at / 86400000000 AS bucket
             FROM counted_gifts WHERE kept > 0
             UNION ALL
             SELECT campaign_id, kept, 'month',
                    (CAST(strftime('%Y', counted_at / 1000000, 'unixepoch') AS INTEGER) - 1970) * 12
                    + CAST(strftime('%m', counted_at / 1000000, 'unixepoch') AS INTEGER) - 1
             FROM counted_gifts WHERE kept > 0)
         GROUP BY 1, 2, 3, 4, 5
         UNION ALL
         SELECT campaign_id, 'first_gifts', span, bucket, 0, count(*) FROM (
             SELECT campaign_id, 'day' AS span, first_at / 86400000000 AS bucket FROM donor_firsts
             UNION ALL
             SELECT campaign_id, 'month',
                    (CAST(strftime('%Y', first_at / 1000000, 'unixepoch') AS INTEGER) - 1970) * 12
                    + CAST(strftime('%m', first_at / 1000000, 'unixepoch') AS INTEGER) - 1
             FROM donor_firsts)
         GROUP BY 1, 2, 3, 4, 5)
     SELECT printf('campaign %d, %s tally of %s %d, kept %d: stored %d, recounted %d',
                   coalesce(e.campaign_id, t.campaign_id), coalesce(e.figure, t.figure),
                   coalesce(e.span, t.span), coalesce(e.bucket, t.bucket), coalesce(e.kept, t.kept),
                   coalesce(t.count, 0), coalesce(e.count, 0))
     FROM expected e
     FULL JOIN tallies t ON t.campaign_id = e.campaign_id AND t.figure = e.figure AND t.span = e.span
                        AND t.bucket = e.bucket AND t.kept = e.kept
     WHERE coalesce(e.count, 0) <> coalesce(t.count, 0)
     LIMIT 5",
    "SELECT printf('person %d: first gift stored %s, recounted %s',
                   coalesce(x.person_id, f.person_id), f.first_at, x.first_at)
     FROM (SELECT d.person_id, min(g.counted_at) AS first_at
           FROM counted_gifts g JOIN contributions c ON c.id = g.contribution_id
           JOIN donors d ON d.id = c.donor_id
           WHERE g.kept > 0 GROUP BY d.person_id) x
     FULL JOIN donor_firsts f ON f.person_id = x.person_id
     WHERE x.first_at IS NOT f.first_at
     LIMIT 5",
    "SELECT printf('contribution %d: counted as keeping %d, its amount less its excess is %d',
                   g.contribution_id, g.kept, c.amount - coalesce(x.excess, 0))
     FROM counted_gifts g JOIN contributions c ON c.id = g.contribution_id
     LEFT JOIN compliance_decisions x ON x.contribution_id = c.id AND x.stage = 'posting'
     WHERE g.kept <> c.amount - coalesce(x.excess, 0)
     LIMIT 5",
];

fn first_gift((person_id, campaign_id, at): (i64, i64, i64)) -> Result<FirstGift, StoreError> {
    Ok(FirstGift {
        person_id,
        campaign_id,
        at: time(at)?,
    })
}

impl SqliteStore {
    /// Records the gift movements of `entries` (just sealed, in the caller's transaction),
    /// counts the gifts they belong to if they were not counted yet, and moves their persons'
    /// first gifts earlier where they are.
    pub(super) async fn count_sealed_gifts(
        conn: &mut SqliteConnection,
        entries: &[StoredEntry],
    ) -> Result<(), StoreError> {
        let movements: Vec<GiftMovement> = entries.iter().filter_map(gift_movement).collect();
        for m in &movements {
            sqlx::query(
                "INSERT INTO gift_movements (entry_id, contribution_id, effective_at, amount) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (entry_id) DO NOTHING",
            )
            .bind(m.entry_id)
            .bind(m.contribution_id)
            .bind(unix_micros(m.effective_at))
            .bind(m.amount)
            .execute(&mut *conn)
            .await?;
        }
        let contributions: Vec<i64> = movements
            .iter()
            .map(|m| m.contribution_id)
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect();
        if contributions.is_empty() {
            return Ok(());
        }
        let fresh = sqlx::query(
            "SELECT c.id, c.campaign_id, d.person_id,
                    max(c.paid_at, (SELECT min(e.effective_at) FROM entries e WHERE e.contribution_id = c.id)) AS counted_at,
                    c.amount - coalesce((SELECT x.excess FROM compliance_decisions x
                                         WHERE x.contribution_id = c.id AND x.stage = 'posting'), 0) AS kept
             FROM contributions c JOIN donors d ON d.id = c.donor_id
             WHERE c.id IN (SELECT value FROM json_each(?1))
               AND NOT EXISTS (SELECT 1 FROM counted_gifts g WHERE g.contribution_id = c.id)",
        )
        .bind(json_list(&contributions))
        .fetch_all(&mut *conn)
        .await?;
        let mut gifts = TallyChanges::new();
        let mut firsts = Vec::with_capacity(fresh.len());
        for row in &fresh {
            let (id, campaign_id, counted_at, kept): (i64, i64, i64, i64) = (
                row.try_get("id")?,
                row.try_get("campaign_id")?,
                row.try_get("counted_at")?,
                row.try_get("kept")?,
            );
            sqlx::query(
                "INSERT INTO counted_gifts (contribution_id, campaign_id, counted_at, kept) VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(id)
            .bind(campaign_id)
            .bind(counted_at)
            .bind(kept)
            .execute(&mut *conn)
            .await?;
            let at = time(counted_at)?;
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
        conn: &mut SqliteConnection,
        persons: &[i64],
    ) -> Result<(), StoreError> {
        if persons.is_empty() {
            return Ok(());
        }
        let before = Self::first_gifts(conn, persons).await?;
        let now: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT d.person_id, d.campaign_id, min(g.counted_at)
             FROM donors d
             JOIN contributions c ON c.donor_id = d.id
             JOIN counted_gifts g ON g.contribution_id = c.id AND g.kept > 0
             WHERE d.person_id IN (SELECT value FROM json_each(?1))
             GROUP BY d.person_id, d.campaign_id",
        )
        .bind(json_list(persons))
        .fetch_all(&mut *conn)
        .await?;
        let now = now
            .into_iter()
            .map(first_gift)
            .collect::<Result<Vec<_>, _>>()?;
        Self::write_first_gifts(conn, &first_gift_changes(&before, &now)).await
    }

    /// The stored first gifts of `persons`.
    async fn first_gifts(
        conn: &mut SqliteConnection,
        persons: &[i64],
    ) -> Result<Vec<FirstGift>, StoreError> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT person_id, campaign_id, first_at FROM donor_firsts
             WHERE person_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(persons))
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter().map(first_gift).collect()
    }

    async fn write_first_gifts(
        conn: &mut SqliteConnection,
        changes: &FirstGiftChanges,
    ) -> Result<(), StoreError> {
        if !changes.cleared.is_empty() {
            sqlx::query(
                "DELETE FROM donor_firsts WHERE person_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(json_list(&changes.cleared))
            .execute(&mut *conn)
            .await?;
        }
        for first in &changes.set {
            sqlx::query(
                "INSERT INTO donor_firsts (person_id, campaign_id, first_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (person_id) DO UPDATE SET first_at = excluded.first_at",
            )
            .bind(first.person_id)
            .bind(first.campaign_id)
            .bind(unix_micros(first.at))
            .execute(&mut *conn)
            .await?;
        }
        Self::write_tallies(conn, &changes.tallies).await
    }

    /// Adds `changes` to the tallies. A count that would go negative is refused by the
    /// table's check. An UPDATE, then an INSERT where no row was there: an upsert would check
    /// the row proposed for insertion (a count of −1 for a decrement) and refuse it.
    async fn write_tallies(
        conn: &mut SqliteConnection,
        changes: &TallyChanges,
    ) -> Result<(), StoreError> {
        for ((campaign, figure, span, bucket, kept), by) in changes {
            if *by == 0 {
                continue;
            }
            let updated = sqlx::query(
                "UPDATE tallies SET count = count + ?6
                 WHERE campaign_id = ?1 AND figure = ?2 AND span = ?3 AND bucket = ?4 AND kept = ?5",
            )
            .bind(campaign)
            .bind(figure.as_str())
            .bind(span.as_str())
            .bind(bucket)
            .bind(kept)
            .bind(by)
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() == 0 {
                sqlx::query(
                    "INSERT INTO tallies (campaign_id, figure, span, bucket, kept, count)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .bind(campaign)
                .bind(figure.as_str())
                .bind(span.as_str())
                .bind(bucket)
                .bind(kept)
                .bind(by)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }

    pub async fn gift_movements(&self, entries: &[i64]) -> Result<Vec<GiftMovement>, StoreError> {
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT entry_id, contribution_id, effective_at, amount FROM gift_movements
             WHERE entry_id IN (SELECT value FROM json_each(?1)) ORDER BY entry_id",
        )
        .bind(json_list(entries))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(entry_id, contribution_id, effective_at, amount)| {
                Ok(GiftMovement {
                    entry_id,
                    contribution_id,
                    effective_at: time(effective_at)?,
                    amount,
                })
            })
            .collect()
    }

    /// What the tallies, first gifts and counted gifts disagree with (see `TALLY_CHECKS`).
    pub async fn tally_differences(&self) -> Result<Vec<String>, StoreError> {
        let mut differences = Vec::new();
        for check in TALLY_CHECKS {
            let found: Vec<String> = sqlx::query_scalar(check).fetch_all(&self.reader).await?;
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
        let mut conn = self.reader.begin().await?;
        // Whole months, whole days of this month, then this day's gifts and first gifts.
        let rows = sqlx::query(
            "SELECT figure, kept, sum(count) AS count FROM (
                 SELECT figure, kept, count FROM tallies
                 WHERE campaign_id = ?1 AND span = 'month' AND bucket < ?3
                 UNION ALL
                 SELECT figure, kept, count FROM tallies
                 WHERE campaign_id = ?1 AND span = 'day' AND bucket >= ?4 AND bucket < ?5
                 UNION ALL
                 SELECT 'gifts', kept, 1 FROM counted_gifts
                 WHERE campaign_id = ?1 AND counted_at >= ?6 AND counted_at <= ?2 AND kept > 0
                 UNION ALL
                 SELECT 'first_gifts', 0, 1 FROM donor_firsts
                 WHERE campaign_id = ?1 AND first_at >= ?6 AND first_at <= ?2
             )
             GROUP BY figure, kept",
        )
        .bind(campaign.0)
        .bind(unix_micros(as_of))
        .bind(ranges.months_before)
        .bind(ranges.days_from)
        .bind(ranges.days_before)
        .bind(unix_micros(ranges.day_start))
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
            .bind(unix_micros(as_of))
            .fetch_all(&mut *conn)
            .await?;
        conn.commit().await?;
        let mut new_donors = BTreeSet::new();
        for (kept, person, counted_donor) in unsealed {
            counts.add(kept, 1);
            if !counted_donor {
                new_donors.insert(person);
            }
        }
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
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT r.bucket * 3600000000, -r.amount
             FROM accounts a JOIN rollups r ON r.account_id = a.id AND r.span = 'hour' AND r.bucket >= ?2 AND r.bucket < ?3
             WHERE a.campaign_id = ?1 AND a.name = 'income:donations'
             UNION ALL
             SELECT p.effective_at, -p.amount
             FROM accounts a JOIN postings p ON p.account_id = a.id
             WHERE a.campaign_id = ?1 AND a.name = 'income:donations' AND p.effective_at >= ?4 AND p.effective_at <= ?5
             UNION ALL
             SELECT p.effective_at, -p.amount
             FROM pending_seal q CROSS JOIN postings p ON p.entry_id = q.entry_id
             JOIN accounts a ON a.id = p.account_id
             WHERE p.campaign_id = ?1 AND a.name = 'income:donations' AND p.effective_at >= ?6 AND p.effective_at < ?4",
        )
        .bind(campaign.0)
        .bind(hour_bucket(from))
        .bind(hour)
        .bind(hour_start_micros(hour))
        .bind(unix_micros(as_of))
        .bind(unix_micros(from))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(at, raised)| Ok((time(at)?, raised)))
            .collect()
    }
}
