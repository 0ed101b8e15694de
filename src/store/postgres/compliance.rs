//! PostgreSQL: persons, their lock, screening transactions, reservations, owed refunds.
//!
//! A person's lock is a row lock (`FOR NO KEY UPDATE`) on the donor row whose id is the
//! person's: it serialises the screenings of one person and nothing else, so gifts of
//! different people never wait for each other. Not `FOR UPDATE`: that also blocks the key
//! share lock every foreign key check to `donors` takes, so the sealer writing a person's first
//! gift (under the first-gifts lock) would wait for a screening that waits for the first-gifts
//! lock: a deadlock.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};

use super::{insert_batch, PgStore};
use crate::campaign::Campaign;
use crate::compliance::Ruling;
use crate::enforcement::posting::Payment;
use crate::enforcement::reinstatement::OwedBack;
use crate::enforcement::{
    HeldRoom, IdentityChange, OwedRefund, Person, PersonDonor, PersonGift, PersonHistory,
    StoredRuling,
};
use crate::ids::CampaignId;
use crate::intake::ContributionRef;
use crate::ledger::Entry;
use crate::money::Money;
use crate::store::{currency_of, StoreError, NET_GIFT_ACCOUNTS};

use crate::store::people::{
    stored_method as method, CheckoutFacts, CheckoutKey, DonorPlacement, NewReservation,
    ReservationFacts, StoredDecision, CHECKOUT_COLUMNS, MAX_REFUND_ATTEMPTS, OWED_REFUND_COLUMNS,
};

/// Each donor's person, one primary-key probe a donor (`LATERAL … LIMIT 1`): `id = ANY($1)`
/// was planned, on connections that prepared it while `donors` was nearly empty, as a scan of
/// the whole table, kept for every later batch (the intake bench: 0.28 ms a call, growing).
const PERSONS_OF_DONORS: &str = "SELECT k.id, d.person_id FROM UNNEST($1::int8[]) AS k(id)
     CROSS JOIN LATERAL (SELECT person_id FROM donors d WHERE d.id = k.id LIMIT 1) d";

impl PgStore {
    /// Links `donor` to every person sharing one of `keys`, inside the caller's transaction.
    /// (A donor is its own person from its creation: see `contributions::upsert_donors`.)
    pub(super) async fn link_identity(
        conn: &mut PgConnection,
        donor: i64,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let keys = BTreeMap::from([(donor, keys.iter().collect())]);
        Self::link_donors(conn, &keys, now).await
    }

    /// Locks the person `donor` belongs to until the transaction ends; returns the person.
    async fn lock_person(conn: &mut PgConnection, donor: i64) -> Result<i64, StoreError> {
        Self::lock_persons(conn, &[donor])
            .await?
            .remove(&donor)
            .ok_or_else(|| StoreError::Refused(format!("no donor {donor}")))
    }

    /// The person's gifts to campaigns under `pack`, net as the ledger holds them now, but
    /// `except` (the gift being screened).
    async fn person_gifts(
        conn: &mut PgConnection,
        person: i64,
        pack: &str,
        except: Option<i64>,
    ) -> Result<Vec<PersonGift>, StoreError> {
        let mut gifts = Self::persons_gifts(conn, &[person])
            .await?
            .remove(&(person, pack.to_owned()))
            .unwrap_or_default();
        gifts.retain(|g| Some(g.contribution_id) != except);
        Ok(gifts)
    }

    /// Room the person's open checkouts hold under `pack` at `now`.
    async fn held_room(
        conn: &mut PgConnection,
        person: i64,
        pack: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<HeldRoom>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.campaign_id, coalesce(r.election, k.election) AS election, r.created_at,
                    r.amount, r.currency
             FROM donors d
             JOIN reservations r ON r.donor_id = d.id
             JOIN campaigns k ON k.id = r.campaign_id
             WHERE d.person_id = $1 AND k.rule_pack = $2 AND r.released_at IS NULL AND r.expires_at > $3
             ORDER BY r.id",
        )
        .bind(person)
        .bind(pack)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HeldRoom {
                    reservation_id: r.try_get("id")?,
                    campaign_id: CampaignId(r.try_get("campaign_id")?),
                    election: r.try_get("election")?,
                    created_at: r.try_get("created_at")?,
                    amount: crate::money::Money::from_minor(
                        r.try_get("amount")?,
                        currency_of(r.try_get("currency")?)?,
                    ),
                })
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_decision(
        conn: &mut PgConnection,
        campaign: &Campaign,
        stage: &str,
        contribution: Option<i64>,
        reservation: Option<i64>,
        person: i64,
        ruling: &Ruling,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO compliance_decisions (campaign_id, stage, contribution_id, reservation_id,
                person_id, pack, pack_version, verdict, rule, excess, currency, remedy_by, inputs,
                decision, decided_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             RETURNING id",
        )
        .bind(campaign.id.0)
        .bind(stage)
        .bind(contribution)
        .bind(reservation)
        .bind(person)
        .bind(&ruling.decision.pack)
        .bind(i32::try_from(ruling.decision.pack_version).unwrap_or(i32::MAX))
        .bind(ruling.verdict)
        .bind(&ruling.decision.rule)
        .bind(ruling.owed.minor())
        .bind(ruling.owed.currency().code())
        .bind(ruling.remedy_by())
        .bind(&ruling.inputs)
        .bind(&ruling.decision_json)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?)
    }

    /// See [`crate::store::Store::post_screened_payment`].
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
        let mut tx = self.begin().await?;
        let person = Self::lock_person(&mut tx, gift.donor_id).await?;
        let earlier: Option<(i64, String, i64, String, String)> = sqlx::query_as(
            "SELECT id, verdict, excess, currency, decision FROM compliance_decisions
             WHERE contribution_id = $1 AND stage = 'posting'",
        )
        .bind(gift.contribution_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((decision_id, verdict, owed, currency, decision)) = earlier {
            // Decided before: the payment entry went in with the decision; replay it.
            first_result(insert_batch(&mut tx, &[payment], now).await?)?;
            tx.commit().await?;
            return Ok(StoredRuling {
                decision_id,
                verdict,
                owed: crate::money::Money::from_minor(owed, currency_of(&currency)?),
                decision,
                reservation_id: None,
                fresh: false,
            });
        }
        let gifts = Self::person_gifts(
            &mut tx,
            person,
            &campaign.rule_pack,
            Some(gift.contribution_id),
        )
        .await?;
        let history = PersonHistory {
            person_id: person,
            gifts,
            held: Vec::new(),
        };
        let (ruling, excess_entry) = decide(history)?;
        let mut entries = vec![payment];
        entries.extend(excess_entry.as_ref());
        for result in insert_batch(&mut tx, &entries, now).await? {
            result?;
        }
        let decision_id = Self::insert_decision(
            &mut tx,
            campaign,
            "posting",
            Some(gift.contribution_id),
            None,
            person,
            &ruling,
            now,
        )
        .await?;
        if ruling.owed.is_positive() {
            sqlx::query(
                "INSERT INTO excess_refunds (contribution_id, campaign_id, amount, currency, reason,
                    remedy_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(gift.contribution_id)
            .bind(campaign.id.0)
            .bind(ruling.owed.minor())
            .bind(ruling.owed.currency().code())
            .bind(ruling.owed_reason())
            .bind(ruling.remedy_by())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The checkout's reservation, if any, has done its work: the gift now counts itself.
        if let Some(reservation) = reservation {
            sqlx::query(
                "UPDATE reservations SET released_at = $3, contribution_id = $2
                 WHERE id = $1 AND campaign_id = $4 AND contribution_id IS NULL",
            )
            .bind(reservation)
            .bind(gift.contribution_id)
            .bind(now)
            .bind(campaign.id.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(StoredRuling::taken(decision_id, ruling, None))
    }

    /// See [`crate::store::Store::post_screened_reinstatement`].
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
        let nothing = Money::zero(campaign.currency);
        let mut tx = self.begin().await?;
        let person = Self::lock_person(&mut tx, gift.donor_id).await?;
        let posted: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM entries WHERE campaign_id = $1 AND idempotency_key = $2",
        )
        .bind(campaign.id.0)
        .bind(reinstatement.content().idempotency_key.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if posted.is_some() {
            // Posted before, with its ruling: replayed, it must not be screened again
            // against a history that now holds it.
            first_result(insert_batch(&mut tx, &[reinstatement], now).await?)?;
            tx.commit().await?;
            return Ok(nothing);
        }
        let gifts = Self::person_gifts(&mut tx, person, &campaign.rule_pack, None).await?;
        let owed = decide(PersonHistory {
            person_id: person,
            gifts,
            held: Vec::new(),
        })?;
        let mut entries = vec![reinstatement];
        entries.extend(owed.as_ref().map(|o| &o.entry));
        for result in insert_batch(&mut tx, &entries, now).await? {
            result?;
        }
        if let Some(owed) = &owed {
            sqlx::query(
                "INSERT INTO excess_refunds (contribution_id, round, campaign_id, amount, currency,
                    reason, remedy_by, created_at)
                 SELECT $1, coalesce(max(round) + 1, 1), $2, $3, $4, $5, $6, $7
                 FROM excess_refunds WHERE contribution_id = $1",
            )
            .bind(gift.contribution_id)
            .bind(campaign.id.0)
            .bind(owed.amount.minor())
            .bind(owed.amount.currency().code())
            .bind(&owed.reason)
            .bind(owed.remedy_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(owed.map_or(nothing, |o| o.amount))
    }

    /// Locks the persons of `donors` together, in id order; returns each donor's person.
    async fn lock_persons(
        conn: &mut PgConnection,
        donors: &[i64],
    ) -> Result<HashMap<i64, i64>, StoreError> {
        let persons_of = |rows: Vec<(i64, i64)>| rows.into_iter().collect::<HashMap<i64, i64>>();
        let mut persons = persons_of(
            sqlx::query_as(PERSONS_OF_DONORS)
                .bind(donors)
                .fetch_all(&mut *conn)
                .await?,
        );
        loop {
            let mut ids: Vec<i64> = persons.values().copied().collect();
            ids.sort_unstable();
            ids.dedup();
            sqlx::query("SELECT id FROM donors WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
                .bind(&ids)
                .execute(&mut *conn)
                .await?;
            // A merge may have moved a donor while we waited: then lock its new person too.
            let now = persons_of(
                sqlx::query_as(PERSONS_OF_DONORS)
                    .bind(donors)
                    .fetch_all(&mut *conn)
                    .await?,
            );
            if now == persons {
                return Ok(persons);
            }
            persons = now;
        }
    }

    /// The gifts of `persons` to campaigns of any pack, by (person, pack), net as the ledger
    /// holds them now, each list in the order they were paid.
    async fn persons_gifts(
        conn: &mut PgConnection,
        persons: &[i64],
    ) -> Result<HashMap<(i64, String), Vec<PersonGift>>, StoreError> {
        let rows = sqlx::query(&format!(
            // Shaped so that every step is an index probe whatever the statistics say
            // (stale ones once chose to scan the whole campaign per gift, and the whole of
            // `donors` per batch): each person's donors, each donor's contributions
            // (`OFFSET 0` keeps a lateral subquery a probe per outer row), each
            // contribution's entries, each entry's postings (by entry alone: filtering them
            // by account would invite the account's index).
            "SELECT d.person_id, k.rule_pack, c.id, c.campaign_id,
                    coalesce(c.election, k.election) AS election, c.paid_at, c.method, c.currency,
                    coalesce((SELECT -sum((SELECT sum(CASE WHEN a.name IN {NET_GIFT_ACCOUNTS}
                                                           THEN p.amount ELSE 0 END)
                                           FROM postings p JOIN accounts a ON a.id = p.account_id
                                           WHERE p.entry_id = e.id))::int8
                              FROM entries e WHERE e.contribution_id = c.id), 0) AS net
             FROM UNNEST($1::int8[]) AS q(person)
             CROSS JOIN LATERAL (SELECT * FROM donors d WHERE d.person_id = q.person OFFSET 0) d
             CROSS JOIN LATERAL (SELECT * FROM contributions c WHERE c.donor_id = d.id OFFSET 0) c
             JOIN campaigns k ON k.id = c.campaign_id
             ORDER BY c.paid_at, c.id"
        ))
        .bind(persons)
        .fetch_all(&mut *conn)
        .await?;
        let mut gifts: HashMap<(i64, String), Vec<PersonGift>> = HashMap::new();
        for r in &rows {
            let currency = currency_of(r.try_get("currency")?)?;
            gifts
                .entry((r.try_get("person_id")?, r.try_get("rule_pack")?))
                .or_default()
                .push(PersonGift {
                    contribution_id: r.try_get("id")?,
                    campaign_id: CampaignId(r.try_get("campaign_id")?),
                    election: r.try_get("election")?,
                    paid_at: r.try_get("paid_at")?,
                    method: method(r.try_get("method")?)?,
                    net: crate::money::Money::from_minor(r.try_get("net")?, currency),
                });
        }
        Ok(gifts)
    }

    /// See [`crate::store::Store::post_screened_payments`]: all of the batch, or an error.
    pub async fn post_screened_payments<F>(
        &self,
        payments: &[Payment],
        now: DateTime<Utc>,
        rule: &F,
    ) -> Result<Vec<StoredRuling>, StoreError>
    where
        F: Fn(&Payment, PersonHistory) -> Result<(Ruling, Option<Entry>), StoreError>,
    {
        let contributions: Vec<i64> = payments.iter().map(|p| p.gift.contribution_id).collect();
        let distinct: HashSet<i64> = contributions.iter().copied().collect();
        if distinct.len() != contributions.len() {
            return Err(StoreError::Refused(
                "a gift twice in one screening batch".into(),
            ));
        }
        let donors: Vec<i64> = payments.iter().map(|p| p.gift.donor_id).collect();
        let mut tx = self.begin().await?;
        let person_of = Self::lock_persons(&mut tx, &donors).await?;
        let earlier: HashMap<i64, (i64, String, i64, String, String)> =
            sqlx::query_as::<_, (i64, i64, String, i64, String, String)>(
                "SELECT contribution_id, id, verdict, excess, currency, decision
             FROM compliance_decisions WHERE stage = 'posting' AND contribution_id = ANY($1)",
            )
            .bind(&contributions)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(c, id, verdict, excess, currency, decision)| {
                (c, (id, verdict, excess, currency, decision))
            })
            .collect();
        let mut persons: Vec<i64> = person_of.values().copied().collect();
        persons.sort_unstable();
        persons.dedup();
        let mut gifts = Self::persons_gifts(&mut tx, &persons).await?;
        // A gift of the batch not yet decided has no entries: it is not history yet.
        for list in gifts.values_mut() {
            list.retain(|g| {
                !distinct.contains(&g.contribution_id) || earlier.contains_key(&g.contribution_id)
            });
        }

        let mut rulings: Vec<Option<Ruling>> = Vec::with_capacity(payments.len());
        let mut owed_entries: Vec<Entry> = Vec::new();
        for payment in payments {
            if earlier.contains_key(&payment.gift.contribution_id) {
                rulings.push(None);
                continue;
            }
            let person = *person_of
                .get(&payment.gift.donor_id)
                .ok_or_else(|| StoreError::Corrupt("a donor without a person".into()))?;
            let key = (person, payment.campaign.rule_pack.clone());
            let history = PersonHistory {
                person_id: person,
                gifts: gifts.get(&key).cloned().unwrap_or_default(),
                held: Vec::new(),
            };
            let (ruling, owed_entry) = rule(payment, history)?;
            // Later payments of the batch see this one as the ledger will hold it.
            gifts.entry(key).or_default().push(PersonGift {
                contribution_id: payment.gift.contribution_id,
                campaign_id: payment.campaign.id,
                election: payment.election(),
                paid_at: payment.paid_at,
                method: payment.method,
                net: payment
                    .amount
                    .checked_sub(ruling.owed)
                    .map_err(|e| StoreError::Refused(e.to_string()))?,
            });
            owed_entries.extend(owed_entry);
            rulings.push(Some(ruling));
        }

        let mut entries: Vec<&Entry> = payments
            .iter()
            .map(|p| &p.entry)
            .chain(owed_entries.iter())
            .collect();
        entries.sort_by_key(|e| crate::store::batch_key(e));
        for result in insert_batch(&mut tx, &entries, now).await? {
            result?;
        }

        let fresh: Vec<(&Payment, &Ruling)> = payments
            .iter()
            .zip(&rulings)
            .filter_map(|(p, r)| r.as_ref().map(|r| (p, r)))
            .collect();
        let column = |f: &dyn Fn(&Payment, &Ruling) -> Option<String>| -> Vec<Option<String>> {
            fresh.iter().map(|(p, r)| f(p, r)).collect()
        };
        let ids: Vec<(i64, i64)> = sqlx::query_as(
            "INSERT INTO compliance_decisions (campaign_id, stage, contribution_id, person_id, pack,
                pack_version, verdict, rule, excess, currency, remedy_by, inputs, decision, decided_at)
             SELECT campaign_id, 'posting', contribution_id, person_id, pack, pack_version, verdict,
                    rule, excess, currency, remedy_by, inputs, decision, $13
             FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::int4[], $6::text[],
                         $7::text[], $8::int8[], $9::text[], $10::date[], $11::text[], $12::text[])
                  AS d(campaign_id, contribution_id, person_id, pack, pack_version, verdict, rule,
                       excess, currency, remedy_by, inputs, decision)
             RETURNING contribution_id, id",
        )
        .bind(fresh.iter().map(|(p, _)| p.campaign.id.0).collect::<Vec<_>>())
        .bind(fresh.iter().map(|(p, _)| p.gift.contribution_id).collect::<Vec<_>>())
        .bind(
            fresh
                .iter()
                .map(|(p, _)| person_of.get(&p.gift.donor_id).copied().unwrap_or_default())
                .collect::<Vec<_>>(),
        )
        .bind(fresh.iter().map(|(_, r)| r.decision.pack.clone()).collect::<Vec<_>>())
        .bind(
            fresh
                .iter()
                .map(|(_, r)| i32::try_from(r.decision.pack_version).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(fresh.iter().map(|(_, r)| r.verdict).collect::<Vec<_>>())
        .bind(column(&|_, r| r.decision.rule.clone()))
        .bind(fresh.iter().map(|(_, r)| r.owed.minor()).collect::<Vec<_>>())
        .bind(column(&|_, r| Some(r.owed.currency().code().to_owned())))
        .bind(fresh.iter().map(|(_, r)| r.remedy_by()).collect::<Vec<_>>())
        .bind(column(&|_, r| Some(r.inputs.clone())))
        .bind(column(&|_, r| Some(r.decision_json.clone())))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let decision_ids: HashMap<i64, i64> = ids.into_iter().collect();

        let owed: Vec<&(&Payment, &Ruling)> =
            fresh.iter().filter(|(_, r)| r.owed.is_positive()).collect();
        if !owed.is_empty() {
            sqlx::query(
                "INSERT INTO excess_refunds (contribution_id, campaign_id, amount, currency, reason,
                    remedy_by, created_at)
                 SELECT contribution_id, campaign_id, amount, currency, reason, remedy_by, $7
                 FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::date[])
                      AS o(contribution_id, campaign_id, amount, currency, reason, remedy_by)",
            )
            .bind(owed.iter().map(|(p, _)| p.gift.contribution_id).collect::<Vec<_>>())
            .bind(owed.iter().map(|(p, _)| p.campaign.id.0).collect::<Vec<_>>())
            .bind(owed.iter().map(|(_, r)| r.owed.minor()).collect::<Vec<_>>())
            .bind(owed.iter().map(|(_, r)| r.owed.currency().code().to_owned()).collect::<Vec<_>>())
            .bind(owed.iter().map(|(_, r)| r.owed_reason()).collect::<Vec<_>>())
            .bind(owed.iter().map(|(_, r)| r.remedy_by()).collect::<Vec<_>>())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The checkouts' reservations have done their work: the gifts now count themselves.
        let reserved: Vec<(i64, i64, i64)> = payments
            .iter()
            .filter_map(|p| {
                p.reservation
                    .map(|r| (r, p.gift.contribution_id, p.campaign.id.0))
            })
            .collect();
        if !reserved.is_empty() {
            sqlx::query(
                "UPDATE reservations r SET released_at = $4, contribution_id = u.contribution_id
                 FROM UNNEST($1::int8[], $2::int8[], $3::int8[]) AS u(id, contribution_id, campaign_id)
                 WHERE r.id = u.id AND r.campaign_id = u.campaign_id AND r.contribution_id IS NULL",
            )
            .bind(reserved.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(reserved.iter().map(|r| r.1).collect::<Vec<_>>())
            .bind(reserved.iter().map(|r| r.2).collect::<Vec<_>>())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;

        payments
            .iter()
            .zip(rulings)
            .map(|(payment, ruling)| {
                let contribution = payment.gift.contribution_id;
                match ruling {
                    Some(ruling) => {
                        let id = decision_ids.get(&contribution).copied().ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "no decision stored for gift {contribution}"
                            ))
                        })?;
                        Ok(StoredRuling::taken(id, ruling, None))
                    }
                    None => {
                        let (id, verdict, owed, currency, decision) = earlier
                            .get(&contribution)
                            .cloned()
                            .ok_or_else(|| StoreError::Corrupt("a lost decision".into()))?;
                        Ok(StoredRuling {
                            decision_id: id,
                            verdict,
                            owed: crate::money::Money::from_minor(owed, currency_of(&currency)?),
                            decision,
                            reservation_id: None,
                            fresh: false,
                        })
                    }
                }
            })
            .collect()
    }

    /// See [`crate::store::Store::reserve`].
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
        let mut tx = self.begin().await?;
        let donor = super::upsert_donor(&mut tx, campaign.id, &request.donor, now).await?;
        Self::link_identity(&mut tx, donor, &request.donor.links, now).await?;
        let person = Self::lock_person(&mut tx, donor).await?;
        let gifts = Self::person_gifts(&mut tx, person, &campaign.rule_pack, None).await?;
        let held = Self::held_room(&mut tx, person, &campaign.rule_pack, now).await?;
        let ruling = decide(PersonHistory {
            person_id: person,
            gifts,
            held,
        })?;
        // A hold goes ahead (a person reviews it once paid; the caps were applied); a gift
        // cut or refused does not: the donor is told before paying.
        let reservation_id: Option<i64> = if matches!(ruling.verdict, "accept" | "hold") {
            Some(
                sqlx::query_scalar(
                    "INSERT INTO reservations (campaign_id, donor_id, amount, currency, declared,
                        election, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(campaign.id.0)
                .bind(donor)
                .bind(request.amount.minor())
                .bind(request.amount.currency().code())
                .bind(&request.declared)
                .bind(&request.election)
                .bind(now)
                .bind(request.expires_at)
                .fetch_one(&mut *tx)
                .await?,
            )
        } else {
            None
        };
        let decision_id = Self::insert_decision(
            &mut tx,
            campaign,
            "checkout",
            None,
            reservation_id,
            person,
            &ruling,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(StoredRuling::taken(decision_id, ruling, reservation_id))
    }

    pub async fn release_reservation(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE reservations SET released_at = $2 WHERE id = $1 AND released_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn owed_refunds(
        &self,
        campaign: Option<CampaignId>,
        due_for_request_at: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<OwedRefund>, StoreError> {
        let rows = sqlx::query(&format!(
            "{OWED_REFUND_COLUMNS}
             WHERE ($1::int8 IS NULL OR x.campaign_id = $1)
               AND ($2::timestamptz IS NULL OR (x.refund_id IS NULL AND c.method = 'card'
                    AND x.attempts < {MAX_REFUND_ATTEMPTS}
                    AND (x.next_attempt_at IS NULL OR x.next_attempt_at <= $2)))
             ORDER BY x.created_at, x.contribution_id, x.round LIMIT $3"
        ))
        .bind(campaign.map(|c| c.0))
        .bind(due_for_request_at)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(owed_refund).collect()
    }

    pub async fn refund_requested(
        &self,
        contribution: i64,
        round: i32,
        outcome: Result<&str, &str>,
        now: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (refund_id, error) = match outcome {
            Ok(id) => (Some(id), None),
            Err(e) => (None, Some(e)),
        };
        sqlx::query(
            "UPDATE excess_refunds SET attempts = attempts + 1,
                refund_id = coalesce(refund_id, $2), last_error = $3,
                requested_at = CASE WHEN $2::text IS NULL THEN requested_at ELSE $4 END,
                next_attempt_at = $5
             WHERE contribution_id = $1 AND round = $6",
        )
        .bind(contribution)
        .bind(refund_id)
        .bind(error)
        .bind(now)
        .bind(retry_at)
        .bind(round)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn place_donor(
        &self,
        placement: &DonorPlacement,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let from = Self::lock_person(&mut tx, placement.donor).await?;
        let to = match placement.into {
            Some(other) => Self::lock_person(&mut tx, other).await?,
            None => placement.donor,
        };
        let (action, moved): (&str, Vec<i64>) = match placement.into {
            // A merge moves the donor's whole person.
            Some(_) => (
                "merge",
                sqlx::query_scalar("SELECT id FROM donors WHERE person_id = $1")
                    .bind(from)
                    .fetch_all(&mut *tx)
                    .await?,
            ),
            None => ("split", vec![placement.donor]),
        };
        // Every donor of either person, to find the persons they form afterwards.
        let involved: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM donors WHERE person_id = $1 OR person_id = $2")
                .bind(from)
                .bind(to)
                .fetch_all(&mut *tx)
                .await?;
        if action == "split" && from == placement.donor {
            // The donor was the person's anchor: the others keep together under the next one.
            sqlx::query(
                "UPDATE donors SET person_id = (SELECT min(id) FROM donors WHERE person_id = $1 AND id <> $1)
                 WHERE person_id = $1 AND id <> $1",
            )
            .bind(from)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO identity_changes (donor_id, from_person, to_person, action, reason, changed_at)
             SELECT id, person_id, $2, $3, $4, $5 FROM donors WHERE id = ANY($1)",
        )
        .bind(&moved)
        .bind(to)
        .bind(action)
        .bind(&placement.reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE donors SET person_id = $2, placed_by_treasurer = true WHERE id = ANY($1)",
        )
        .bind(&moved)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        let mut persons: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT person_id FROM donors WHERE id = ANY($1)")
                .bind(&involved)
                .fetch_all(&mut *tx)
                .await?;
        persons.extend([from, to]);
        Self::refresh_first_gifts(&mut tx, &persons).await?;
        tx.commit().await?;
        Ok(to)
    }

    pub async fn person(&self, donor: i64) -> Result<Option<Person>, StoreError> {
        let person: Option<i64> = sqlx::query_scalar("SELECT person_id FROM donors WHERE id = $1")
            .bind(donor)
            .fetch_optional(&self.pool)
            .await?;
        let Some(person_id) = person else {
            return Ok(None);
        };
        let donors = sqlx::query(
            "SELECT id, campaign_id, name, email, postal_code, country, placed_by_treasurer
             FROM donors WHERE person_id = $1 ORDER BY id",
        )
        .bind(person_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(PersonDonor {
                donor_id: r.try_get("id")?,
                campaign_id: CampaignId(r.try_get("campaign_id")?),
                name: r.try_get("name")?,
                email: r.try_get("email")?,
                postal_code: r.try_get("postal_code")?,
                country: r.try_get("country")?,
                placed_by_treasurer: r.try_get("placed_by_treasurer")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let changes = sqlx::query(
            "SELECT donor_id, from_person, to_person, action, reason, changed_at
             FROM identity_changes
             WHERE donor_id IN (SELECT id FROM donors WHERE person_id = $1)
                OR from_person = $1 OR to_person = $1
             ORDER BY id",
        )
        .bind(person_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(IdentityChange {
                donor_id: r.try_get("donor_id")?,
                from_person: r.try_get("from_person")?,
                to_person: r.try_get("to_person")?,
                action: r.try_get("action")?,
                reason: r.try_get("reason")?,
                changed_at: r.try_get("changed_at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(Person {
            person_id,
            donors,
            changes,
        }))
    }

    /// Names the provider's Checkout session of a reservation; false if it already has one.
    pub async fn attach_checkout_session(
        &self,
        reservation: i64,
        session: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE reservations SET checkout_session_id = $2
             WHERE id = $1 AND checkout_session_id IS NULL",
        )
        .bind(reservation)
        .bind(session)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A checkout, found by its reservation or by its provider session.
    pub async fn checkout(
        &self,
        key: CheckoutKey<'_>,
    ) -> Result<Option<CheckoutFacts>, StoreError> {
        let column = match key {
            CheckoutKey::Reservation(_) => "id",
            CheckoutKey::Session(_) => "checkout_session_id",
        };
        let sql = format!("{CHECKOUT_COLUMNS} WHERE {column} = $1");
        let query = sqlx::query_as::<
            _,
            (
                i64,
                i64,
                i64,
                i64,
                String,
                DateTime<Utc>,
                DateTime<Utc>,
                Option<DateTime<Utc>>,
                Option<i64>,
                Option<String>,
            ),
        >(&sql);
        let query = match key {
            CheckoutKey::Reservation(id) => query.bind(id),
            CheckoutKey::Session(session) => query.bind(session),
        };
        let row = query.fetch_optional(&self.pool).await?;
        row.map(
            |(
                id,
                campaign,
                donor,
                amount,
                currency,
                created,
                expires,
                released,
                contribution,
                session,
            )| {
                Ok(CheckoutFacts {
                    reservation_id: id,
                    campaign_id: CampaignId(campaign),
                    donor_id: donor,
                    amount: Money::from_minor(amount, currency_of(&currency)?),
                    created_at: created,
                    expires_at: expires,
                    released_at: released,
                    contribution_id: contribution,
                    checkout_session_id: session,
                })
            },
        )
        .transpose()
    }

    pub async fn reservation(&self, id: i64) -> Result<Option<ReservationFacts>, StoreError> {
        let row: Option<(i64, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, campaign_id, declared, election FROM reservations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(id, campaign, declared, election)| ReservationFacts {
                id,
                campaign_id: CampaignId(campaign),
                declared,
                election,
            }),
        )
    }

    pub async fn decisions(
        &self,
        campaign: CampaignId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, stage, contribution_id, pack, pack_version, verdict, inputs, decision
             FROM compliance_decisions WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(campaign.0)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                let version: i32 = r.try_get("pack_version")?;
                Ok(StoredDecision {
                    id,
                    stage: r.try_get("stage")?,
                    contribution_id: r.try_get("contribution_id")?,
                    pack: r.try_get("pack")?,
                    pack_version: u32::try_from(version).map_err(|_| {
                        StoreError::Corrupt(format!("decision {id}: pack version {version}"))
                    })?,
                    verdict: r.try_get("verdict")?,
                    inputs: r.try_get("inputs")?,
                    decision: r.try_get("decision")?,
                })
            })
            .collect()
    }
}

/// The first result of a batch of one.
pub(super) fn first_result(
    mut results: Vec<Result<crate::store::Posted, StoreError>>,
) -> Result<crate::store::Posted, StoreError> {
    results.pop().unwrap_or_else(|| {
        Err(StoreError::Corrupt(
            "a batch of one returned nothing".into(),
        ))
    })
}

fn owed_refund(r: &sqlx::postgres::PgRow) -> Result<OwedRefund, StoreError> {
    let currency = currency_of(r.try_get("currency")?)?;
    let money = |minor: i64| crate::money::Money::from_minor(minor, currency);
    Ok(OwedRefund {
        contribution_id: r.try_get("contribution_id")?,
        round: r.try_get("round")?,
        campaign_id: CampaignId(r.try_get("campaign_id")?),
        charge_id: r.try_get("charge_id")?,
        method: method(r.try_get("method")?)?,
        amount: money(r.try_get("amount")?),
        reason: r.try_get("reason")?,
        remedy_by: r.try_get::<Option<NaiveDate>, _>("remedy_by")?,
        refund_id: r.try_get("refund_id")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        outstanding: money(r.try_get("outstanding")?),
    })
}
