//! PostgreSQL: paid gifts and their donors recorded in batches, each donor linked to the
//! persons its identity keys name. A batch is a handful of statements, whatever its size.
//!
//! Invariants:
//! - Idempotent on the charge: a gift recorded again returns the same ids and only fills in
//!   what was missing (the Checkout session's custom fields arrive with their own event).
//! - A donor is its own person from the statement that creates it (`person_id = id`).
//! - A donor's keys are claimed before anyone holding them is read: of two transactions
//!   claiming one key, the later waits for the earlier to commit, and its read (a later
//!   statement) then sees the earlier's donor. So persons sharing a key always end as one.
//! - Rows are written in key order within each statement (donors by identity key, gifts by
//!   charge, links by key), so that two batches lock what they share in the same order.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::PgStore;
use crate::ids::CampaignId;
use crate::intake::{ContributionRef, NewContribution};
use crate::store::people::{distinct_donors, person_merges};
use crate::store::{check_contribution_campaign, NewDonor, StoreError, FILL_IN_DONOR};

impl PgStore {
    /// Records each gift and its donor, and links the donors to persons, in one transaction.
    /// Refuses a batch naming one charge twice (the caller records those one by one).
    pub async fn record_contributions(
        &self,
        gifts: &[NewContribution],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<ContributionRef, StoreError>>, StoreError> {
        let charges: HashSet<&str> = gifts.iter().map(|g| g.charge_id.as_str()).collect();
        if charges.len() != gifts.len() {
            return Err(StoreError::Refused(
                "a charge twice in one batch of contributions".into(),
            ));
        }
        let mut tx = self.begin().await?;
        let donors = distinct_donors(gifts.iter().map(|g| (g.campaign_id, &g.donor)));
        let donors = upsert_donors(&mut tx, &donors, now).await?;
        let stored = insert_contributions(&mut tx, gifts, &donors, now).await?;
        // Each stored donor's keys: the gift's donor is the one the charge was first
        // recorded with.
        let mut keys: BTreeMap<i64, Vec<&String>> = BTreeMap::new();
        for gift in gifts {
            let (_, _, donor) = stored_gift(&stored, gift)?;
            keys.entry(donor).or_default().extend(&gift.donor.links);
        }
        Self::link_donors(&mut tx, &keys, now).await?;
        tx.commit().await?;
        Ok(gifts
            .iter()
            .map(|gift| {
                let (contribution_id, campaign, donor_id) = stored_gift(&stored, gift)?;
                check_contribution_campaign(gift, campaign)?;
                Ok(ContributionRef {
                    donor_id,
                    contribution_id,
                })
            })
            .collect())
    }

    /// Claims each donor's keys (claims come first: see the module's invariants), then merges every person sharing one of them into one.
    pub(super) async fn link_donors(
        conn: &mut PgConnection,
        keys: &BTreeMap<i64, Vec<&String>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut claims: Vec<(&String, i64)> = keys
            .iter()
            .flat_map(|(donor, keys)| keys.iter().map(|key| (*key, *donor)))
            .collect();
        claims.sort();
        claims.dedup();
        if claims.is_empty() {
            return Ok(());
        }
        let (claimed, claimants): (Vec<&String>, Vec<i64>) = claims.into_iter().unzip();
        sqlx::query(
            "INSERT INTO identity_links (key, donor_id)
             SELECT * FROM UNNEST($1::text[], $2::int8[]) ORDER BY 1
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&claimed)
        .bind(&claimants)
        .execute(&mut *conn)
        .await?;
        // Each donor's own person (`shares` false), and the person of every donor holding one
        // of its keys (a donor a treasurer placed by hand stays where they put it). Shaped as
        // index probes per key (`OFFSET 0` keeps each lateral subquery a probe), whatever
        // stale statistics would make of a join.
        let donors: Vec<i64> = keys.keys().copied().collect();
        let rows: Vec<(i64, i64, bool, bool)> = sqlx::query_as(
            "SELECT d.id, d.person_id, d.placed_by_treasurer, false FROM donors d WHERE d.id = ANY($1)
             UNION ALL
             SELECT u.donor, h.person_id, false, true
             FROM UNNEST($2::int8[], $3::text[]) AS u(donor, key)
             CROSS JOIN LATERAL (SELECT l.donor_id FROM identity_links l
                                 WHERE l.key = u.key OFFSET 0) l
             CROSS JOIN LATERAL (SELECT h.person_id FROM donors h
                                 WHERE h.id = l.donor_id AND NOT h.placed_by_treasurer OFFSET 0) h",
        )
        .bind(&donors)
        .bind(&claimants)
        .bind(&claimed)
        .fetch_all(&mut *conn)
        .await?;
        let mut own: HashMap<i64, (i64, bool)> = HashMap::new();
        let mut shared: HashMap<i64, Vec<i64>> = HashMap::new();
        for (donor, person, placed, shares) in rows {
            if shares {
                shared.entry(donor).or_default().push(person);
            } else {
                own.insert(donor, (person, placed));
            }
        }
        let claims: Vec<(i64, Vec<i64>)> = own
            .into_iter()
            .filter(|(_, (_, placed))| !placed)
            .map(|(donor, (person, _))| (person, shared.remove(&donor).unwrap_or_default()))
            .collect();
        Self::merge_persons(conn, &person_merges(&claims), now).await
    }
}

/// (contribution id, campaign id, donor id) of `gift` as stored.
fn stored_gift(
    stored: &HashMap<String, (i64, i64, i64)>,
    gift: &NewContribution,
) -> Result<(i64, i64, i64), StoreError> {
    stored.get(&gift.charge_id).copied().ok_or_else(|| {
        StoreError::Corrupt(format!("charge {} neither stored nor new", gift.charge_id))
    })
}

/// Inserts `donors` (one per campaign and identity key), or fills in what the stored ones
/// lack: a donor keeps the details first seen. Returns each donor's id by (campaign, identity
/// key). A new donor is its own person.
///
/// A stored donor is rewritten only when a detail it lacks arrives (`FILL_IN_DONOR`);
/// `ON CONFLICT` still locks every conflicting row, so the batch holds the same locks. The
/// ids of the rows left as they were, which `RETURNING` omits, are then read by key.
pub(super) async fn upsert_donors(
    conn: &mut PgConnection,
    donors: &[(CampaignId, NewDonor)],
    now: DateTime<Utc>,
) -> Result<HashMap<(i64, String), i64>, StoreError> {
    let column = |f: &dyn Fn(&crate::provider::stripe::objects::Payer) -> Option<String>| {
        donors.iter().map(|(_, d)| f(&d.payer)).collect::<Vec<_>>()
    };
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(&format!(
        // The id is drawn first so that person_id can be set to it in the same row.
        "INSERT INTO donors (id, person_id, campaign_id, identity_key, name, email, line1, line2,
                             city, postal_code, state, country, created_at)
         OVERRIDING SYSTEM VALUE
         SELECT n, n, campaign_id, identity_key, name, email, line1, line2, city, postal_code,
                state, country, $11
         FROM (SELECT nextval(pg_get_serial_sequence('donors', 'id')) AS n, d.*
               FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                           $7::text[], $8::text[], $9::text[], $10::text[])
                    AS d(campaign_id, identity_key, name, email, line1, line2, city, postal_code,
                         state, country)
               ORDER BY d.campaign_id, d.identity_key) AS d
         ON CONFLICT (campaign_id, identity_key) DO UPDATE {FILL_IN_DONOR}
         RETURNING id, campaign_id, identity_key"
    ))
    .bind(donors.iter().map(|(c, _)| c.0).collect::<Vec<_>>())
    .bind(
        donors
            .iter()
            .map(|(_, d)| d.identity_key.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(column(&|p| p.name.clone()))
    .bind(column(&|p| p.email.clone()))
    .bind(column(&|p| p.address.line1.clone()))
    .bind(column(&|p| p.address.line2.clone()))
    .bind(column(&|p| p.address.city.clone()))
    .bind(column(&|p| p.address.postal_code.clone()))
    .bind(column(&|p| p.address.state.clone()))
    .bind(column(&|p| p.address.country.clone()))
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut ids: HashMap<(i64, String), i64> = rows
        .into_iter()
        .map(|(id, campaign, key)| ((campaign, key), id))
        .collect();
    let (campaigns, keys): (Vec<i64>, Vec<&str>) = donors
        .iter()
        .filter(|(campaign, d)| !ids.contains_key(&(campaign.0, d.identity_key.clone())))
        .map(|(campaign, d)| (campaign.0, d.identity_key.as_str()))
        .unzip();
    if !campaigns.is_empty() {
        // A unique-index probe per key (see `PgStore::existing_keys` for why not a join).
        let unchanged: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT d.id, d.campaign_id, d.identity_key
             FROM UNNEST($1::int8[], $2::text[]) AS k(campaign_id, identity_key)
             CROSS JOIN LATERAL (SELECT id, campaign_id, identity_key FROM donors d
                                 WHERE d.campaign_id = k.campaign_id
                                   AND d.identity_key = k.identity_key LIMIT 1) AS d",
        )
        .bind(&campaigns)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?;
        ids.extend(
            unchanged
                .into_iter()
                .map(|(id, campaign, key)| ((campaign, key), id)),
        );
    }
    Ok(ids)
}

/// Inserts the gifts, or fills in what the stored ones lack; returns (id, campaign id, donor
/// id) by charge.
async fn insert_contributions(
    conn: &mut PgConnection,
    gifts: &[NewContribution],
    donors: &HashMap<(i64, String), i64>,
    now: DateTime<Utc>,
) -> Result<HashMap<String, (i64, i64, i64)>, StoreError> {
    let donor_ids = gifts
        .iter()
        .map(|g| {
            donors
                .get(&(g.campaign_id.0, g.donor.identity_key.clone()))
                .copied()
                .ok_or_else(|| StoreError::Corrupt("a donor neither stored nor new".into()))
        })
        .collect::<Result<Vec<i64>, StoreError>>()?;
    let text =
        |f: &dyn Fn(&NewContribution) -> Option<String>| gifts.iter().map(f).collect::<Vec<_>>();
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "INSERT INTO contributions (campaign_id, donor_id, charge_id, payment_intent_id,
            checkout_session_id, amount, currency, paid_at, card_country, card_fingerprint,
            card_brand, card_funding, custom_fields, review_reason, method, declared, election,
            created_at)
         SELECT *, $18::timestamptz FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[],
                $5::text[], $6::int8[], $7::text[], $8::timestamptz[], $9::text[], $10::text[],
                $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                $17::text[])
         ORDER BY 3
         ON CONFLICT (charge_id) DO UPDATE SET
            checkout_session_id = coalesce(contributions.checkout_session_id, excluded.checkout_session_id),
            custom_fields = coalesce(contributions.custom_fields, excluded.custom_fields),
            declared = coalesce(contributions.declared, excluded.declared),
            election = coalesce(contributions.election, excluded.election)
         RETURNING id, campaign_id, donor_id, charge_id",
    )
    .bind(gifts.iter().map(|g| g.campaign_id.0).collect::<Vec<_>>())
    .bind(&donor_ids)
    .bind(text(&|g| Some(g.charge_id.clone())))
    .bind(text(&|g| g.payment_intent_id.clone()))
    .bind(text(&|g| g.checkout_session_id.clone()))
    .bind(gifts.iter().map(|g| g.amount.minor()).collect::<Vec<_>>())
    .bind(text(&|g| Some(g.amount.currency().code().to_owned())))
    .bind(gifts.iter().map(|g| g.paid_at).collect::<Vec<_>>())
    .bind(text(&|g| g.donor.payer.card_country.clone()))
    .bind(text(&|g| g.donor.payer.card_fingerprint.clone()))
    .bind(text(&|g| g.donor.payer.card_brand.clone()))
    .bind(text(&|g| g.donor.payer.card_funding.clone()))
    .bind(text(&|g| g.custom_fields.clone()))
    .bind(text(&|g| g.review_reason.clone()))
    .bind(text(&|g| {
        Some(crate::enforcement::method_str(g.method).to_owned())
    }))
    .bind(text(&|g| g.declared.clone()))
    .bind(text(&|g| g.election.clone()))
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, campaign, donor, charge)| (charge, (id, campaign, donor)))
        .collect())
}

impl PgStore {
    /// Merges each group of persons into its first (smallest) id, under the persons' locks
    /// taken in id order, logging every donor moved.
    pub(super) async fn merge_persons(
        conn: &mut PgConnection,
        groups: &[Vec<i64>],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut persons: Vec<i64> = groups.concat();
        if persons.is_empty() {
            return Ok(());
        }
        persons.sort_unstable();
        persons.dedup();
        // No screening of these persons runs while their donors move.
        sqlx::query("SELECT id FROM donors WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(&persons)
            .execute(&mut *conn)
            .await?;
        let (losers, winners): (Vec<i64>, Vec<i64>) = groups
            .iter()
            .flat_map(|group| group[1..].iter().map(|&loser| (loser, group[0])))
            .unzip();
        // `person_id = ANY($1)` besides the join lets the planner reach the losers' donors
        // through the person index, whatever its statistics say of the join.
        sqlx::query(
            "INSERT INTO identity_changes (donor_id, from_person, to_person, action, reason, changed_at)
             SELECT d.id, d.person_id, m.winner, 'link',
                    'shares an email, a card, or a name and postal address', $3
             FROM donors d JOIN UNNEST($1::int8[], $2::int8[]) AS m(loser, winner)
                  ON d.person_id = m.loser
             WHERE d.person_id = ANY($1) AND NOT d.placed_by_treasurer",
        )
        .bind(&losers)
        .bind(&winners)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE donors d SET person_id = m.winner
             FROM UNNEST($1::int8[], $2::int8[]) AS m(loser, winner)
             WHERE d.person_id = m.loser AND d.person_id = ANY($1) AND NOT d.placed_by_treasurer",
        )
        .bind(&losers)
        .bind(&winners)
        .execute(&mut *conn)
        .await?;
        Self::refresh_first_gifts(conn, &persons).await
    }
}
