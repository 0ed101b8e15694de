//! SQLite: persons, screening transactions, reservations, owed refunds.
//!
//! SQLite has one writer at a time (the store's single writer connection), so every write
//! transaction already holds the whole database: a person's lock is implied. Lists travel as
//! JSON arrays (`json_each`), since SQLite has no array type.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Row, SqliteConnection};

use super::{insert_entry, time, SqliteStore};
use crate::campaign::Campaign;
use crate::clock::unix_micros;
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

impl SqliteStore {
    /// Links `donor` to every person sharing one of `keys`, inside the caller's transaction.
    pub(super) async fn link_identity(
        conn: &mut SqliteConnection,
        donor: i64,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE donors SET person_id = id WHERE id = ?1 AND person_id IS NULL")
            .bind(donor)
            .execute(&mut *conn)
            .await?;
        if keys.is_empty() {
            return Ok(());
        }
        // Claim the keys first. (`WHERE true` lets SQLite's parser tell the upsert's ON
        // CONFLICT from a join's ON.)
        sqlx::query(
            "INSERT INTO identity_links (key, donor_id) SELECT value, ?2 FROM json_each(?1) WHERE true
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(json_list(keys))
        .bind(donor)
        .execute(&mut *conn)
        .await?;
        let (own, placed): (i64, bool) =
            sqlx::query_as("SELECT person_id, placed_by_treasurer FROM donors WHERE id = ?1")
                .bind(donor)
                .fetch_one(&mut *conn)
                .await?;
        if placed {
            return Ok(());
        }
        let mut persons: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT d.person_id FROM identity_links l JOIN donors d ON d.id = l.donor_id
             WHERE l.key IN (SELECT value FROM json_each(?1)) AND NOT d.placed_by_treasurer",
        )
        .bind(json_list(keys))
        .fetch_all(&mut *conn)
        .await?;
        persons.push(own);
        persons.sort_unstable();
        persons.dedup();
        if persons.len() < 2 {
            return Ok(());
        }
        let winner = persons[0];
        let losers = &persons[1..];
        sqlx::query(
            "INSERT INTO identity_changes (donor_id, from_person, to_person, action, reason, changed_at)
             SELECT id, person_id, ?2, 'link', 'shares an email, a card, or a name and postal address', ?3
             FROM donors WHERE person_id IN (SELECT value FROM json_each(?1)) AND NOT placed_by_treasurer",
        )
        .bind(json_list(losers))
        .bind(winner)
        .bind(unix_micros(now))
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE donors SET person_id = ?2 WHERE person_id IN (SELECT value FROM json_each(?1)) AND NOT placed_by_treasurer",
        )
        .bind(json_list(losers))
        .bind(winner)
        .execute(&mut *conn)
        .await?;
        Self::refresh_first_gifts(conn, &persons).await
    }

    /// The person `donor` belongs to. The writer transaction already excludes every other
    /// write, so reading it is locking it.
    async fn lock_person(conn: &mut SqliteConnection, donor: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT person_id FROM donors WHERE id = ?1")
                .bind(donor)
                .fetch_one(&mut *conn)
                .await?,
        )
    }

    /// The person's gifts to campaigns under `pack`, net as the ledger holds them now, but
    /// `except` (the gift being screened).
    async fn person_gifts(
        conn: &mut SqliteConnection,
        person: i64,
        pack: &str,
        except: Option<i64>,
    ) -> Result<Vec<PersonGift>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT c.id, c.campaign_id, coalesce(c.election, k.election) AS election, c.paid_at,
                    c.method, c.currency,
                    coalesce((SELECT -sum((SELECT sum(CASE WHEN a.name IN {NET_GIFT_ACCOUNTS}
                                                           THEN p.amount ELSE 0 END)
                                           FROM postings p JOIN accounts a ON a.id = p.account_id
                                           WHERE p.entry_id = e.id))
                              FROM entries e WHERE e.contribution_id = c.id), 0) AS net
             FROM donors d
             JOIN contributions c ON c.donor_id = d.id
             JOIN campaigns k ON k.id = c.campaign_id
             WHERE d.person_id = ?1 AND k.rule_pack = ?2 AND c.id IS NOT ?3
             ORDER BY c.paid_at, c.id"
        ))
        .bind(person)
        .bind(pack)
        .bind(except)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let currency = currency_of(r.try_get("currency")?)?;
                Ok(PersonGift {
                    contribution_id: r.try_get("id")?,
                    campaign_id: CampaignId(r.try_get("campaign_id")?),
                    election: r.try_get("election")?,
                    paid_at: time(r.try_get("paid_at")?)?,
                    method: method(r.try_get("method")?)?,
                    net: crate::money::Money::from_minor(r.try_get("net")?, currency),
                })
            })
            .collect()
    }

    /// Room the person's open checkouts hold under `pack` at `now`.
    async fn held_room(
        conn: &mut SqliteConnection,
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
             WHERE d.person_id = ?1 AND k.rule_pack = ?2 AND r.released_at IS NULL AND r.expires_at > ?3
             ORDER BY r.id",
        )
        .bind(person)
        .bind(pack)
        .bind(unix_micros(now))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HeldRoom {
                    reservation_id: r.try_get("id")?,
                    campaign_id: CampaignId(r.try_get("campaign_id")?),
                    election: r.try_get("election")?,
                    created_at: time(r.try_get("created_at")?)?,
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
        conn: &mut SqliteConnection,
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             RETURNING id",
        )
        .bind(campaign.id.0)
        .bind(stage)
        .bind(contribution)
        .bind(reservation)
        .bind(person)
        .bind(&ruling.decision.pack)
        .bind(i64::from(ruling.decision.pack_version))
        .bind(ruling.verdict)
        .bind(&ruling.decision.rule)
        .bind(ruling.owed.minor())
        .bind(ruling.owed.currency().code())
        .bind(ruling.remedy_by().map(|d| d.to_string()))
        .bind(&ruling.inputs)
        .bind(&ruling.decision_json)
        .bind(unix_micros(now))
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
        let mut tx = self.write().await?;
        let ruling =
            Self::screen_in(&mut tx, campaign, gift, reservation, payment, now, decide).await?;
        tx.commit().await?;
        Ok(ruling)
    }

    /// See [`crate::store::Store::post_screened_payments`]. The single writer makes the
    /// batch's payments one after another in one transaction (one commit), each seeing the
    /// ones before it.
    pub async fn post_screened_payments<F>(
        &self,
        payments: &[Payment],
        now: DateTime<Utc>,
        rule: &F,
    ) -> Result<Vec<StoredRuling>, StoreError>
    where
        F: Fn(&Payment, PersonHistory) -> Result<(Ruling, Option<Entry>), StoreError>,
    {
        let mut tx = self.write().await?;
        let mut rulings = Vec::with_capacity(payments.len());
        for p in payments {
            rulings.push(
                Self::screen_in(
                    &mut tx,
                    &p.campaign,
                    p.gift,
                    p.reservation,
                    &p.entry,
                    now,
                    |history| rule(p, history),
                )
                .await?,
            );
        }
        tx.commit().await?;
        Ok(rulings)
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
        let mut tx = self.write().await?;
        let person = Self::lock_person(&mut tx, gift.donor_id).await?;
        let posted: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM entries WHERE campaign_id = ?1 AND idempotency_key = ?2",
        )
        .bind(campaign.id.0)
        .bind(reinstatement.content().idempotency_key.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if posted.is_some() {
            // Posted before, with its ruling: replayed, it must not be screened again
            // against a history that now holds it.
            insert_entry(&mut tx, reinstatement, now).await?;
            tx.commit().await?;
            return Ok(nothing);
        }
        let gifts = Self::person_gifts(&mut tx, person, &campaign.rule_pack, None).await?;
        let owed = decide(PersonHistory {
            person_id: person,
            gifts,
            held: Vec::new(),
        })?;
        insert_entry(&mut tx, reinstatement, now).await?;
        if let Some(owed) = &owed {
            insert_entry(&mut tx, &owed.entry, now).await?;
            sqlx::query(
                "INSERT INTO excess_refunds (contribution_id, round, campaign_id, amount, currency,
                    reason, remedy_by, created_at)
                 SELECT ?1, coalesce(max(round) + 1, 1), ?2, ?3, ?4, ?5, ?6, ?7
                 FROM excess_refunds WHERE contribution_id = ?1",
            )
            .bind(gift.contribution_id)
            .bind(campaign.id.0)
            .bind(owed.amount.minor())
            .bind(owed.amount.currency().code())
            .bind(&owed.reason)
            .bind(owed.remedy_by.map(|d| d.to_string()))
            .bind(unix_micros(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(owed.map_or(nothing, |o| o.amount))
    }

    /// Screens and posts one payment inside the caller's transaction.
    async fn screen_in<F>(
        conn: &mut SqliteConnection,
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
        let person = Self::lock_person(&mut *conn, gift.donor_id).await?;
        let earlier: Option<(i64, String, i64, String, String)> = sqlx::query_as(
            "SELECT id, verdict, excess, currency, decision FROM compliance_decisions
             WHERE contribution_id = ?1 AND stage = 'posting'",
        )
        .bind(gift.contribution_id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((decision_id, verdict, owed, currency, decision)) = earlier {
            // Decided before: the payment entry went in with the decision; replay it.
            insert_entry(&mut *conn, payment, now).await?;
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
            &mut *conn,
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
        insert_entry(&mut *conn, payment, now).await?;
        if let Some(excess) = &excess_entry {
            insert_entry(&mut *conn, excess, now).await?;
        }
        let decision_id = Self::insert_decision(
            &mut *conn,
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
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(gift.contribution_id)
            .bind(campaign.id.0)
            .bind(ruling.owed.minor())
            .bind(ruling.owed.currency().code())
            .bind(ruling.owed_reason())
            .bind(ruling.remedy_by().map(|d| d.to_string()))
            .bind(unix_micros(now))
            .execute(&mut *conn)
            .await?;
        }
        // The checkout's reservation, if any, has done its work: the gift now counts itself.
        if let Some(reservation) = reservation {
            sqlx::query(
                "UPDATE reservations SET released_at = ?3, contribution_id = ?2
                 WHERE id = ?1 AND campaign_id = ?4 AND contribution_id IS NULL",
            )
            .bind(reservation)
            .bind(gift.contribution_id)
            .bind(unix_micros(now))
            .bind(campaign.id.0)
            .execute(&mut *conn)
            .await?;
        }
        Ok(StoredRuling::taken(decision_id, ruling, None))
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
        let mut tx = self.write().await?;
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
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
                )
                .bind(campaign.id.0)
                .bind(donor)
                .bind(request.amount.minor())
                .bind(request.amount.currency().code())
                .bind(&request.declared)
                .bind(&request.election)
                .bind(unix_micros(now))
                .bind(unix_micros(request.expires_at))
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
            "UPDATE reservations SET released_at = ?2 WHERE id = ?1 AND released_at IS NULL",
        )
        .bind(id)
        .bind(unix_micros(now))
        .execute(&mut *self.writer_connection().await?)
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
             WHERE (?1 IS NULL OR x.campaign_id = ?1)
               AND (?2 IS NULL OR (x.refund_id IS NULL AND c.method = 'card'
                    AND x.attempts < {MAX_REFUND_ATTEMPTS}
                    AND (x.next_attempt_at IS NULL OR x.next_attempt_at <= ?2)))
             ORDER BY x.created_at, x.contribution_id, x.round LIMIT ?3"
        ))
        .bind(campaign.map(|c| c.0))
        .bind(due_for_request_at.map(unix_micros))
        .bind(limit)
        .fetch_all(&self.reader)
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
                refund_id = coalesce(refund_id, ?2), last_error = ?3,
                requested_at = CASE WHEN ?2 IS NULL THEN requested_at ELSE ?4 END,
                next_attempt_at = ?5
             WHERE contribution_id = ?1 AND round = ?6",
        )
        .bind(contribution)
        .bind(refund_id)
        .bind(error)
        .bind(unix_micros(now))
        .bind(unix_micros(retry_at))
        .bind(round)
        .execute(&mut *self.writer_connection().await?)
        .await?;
        Ok(())
    }

    pub async fn place_donor(
        &self,
        placement: &DonorPlacement,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let from = Self::lock_person(&mut tx, placement.donor).await?;
        let to = match placement.into {
            Some(other) => Self::lock_person(&mut tx, other).await?,
            None => placement.donor,
        };
        let (action, moved): (&str, Vec<i64>) = match placement.into {
            // A merge moves the donor's whole person.
            Some(_) => (
                "merge",
                sqlx::query_scalar("SELECT id FROM donors WHERE person_id = ?1")
                    .bind(from)
                    .fetch_all(&mut *tx)
                    .await?,
            ),
            None => ("split", vec![placement.donor]),
        };
        // Every donor of either person, to find the persons they form afterwards.
        let involved: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM donors WHERE person_id = ?1 OR person_id = ?2")
                .bind(from)
                .bind(to)
                .fetch_all(&mut *tx)
                .await?;
        if action == "split" && from == placement.donor {
            // The donor was the person's anchor: the others keep together under the next one.
            sqlx::query(
                "UPDATE donors SET person_id = (SELECT min(id) FROM donors WHERE person_id = ?1 AND id <> ?1)
                 WHERE person_id = ?1 AND id <> ?1",
            )
            .bind(from)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO identity_changes (donor_id, from_person, to_person, action, reason, changed_at)
             SELECT id, person_id, ?2, ?3, ?4, ?5 FROM donors WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(&moved))
        .bind(to)
        .bind(action)
        .bind(&placement.reason)
        .bind(unix_micros(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE donors SET person_id = ?2, placed_by_treasurer = 1 WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(&moved))
        .bind(to)
        .execute(&mut *tx)
        .await?;
        let mut persons: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT person_id FROM donors WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(&involved))
        .fetch_all(&mut *tx)
        .await?;
        persons.extend([from, to]);
        Self::refresh_first_gifts(&mut tx, &persons).await?;
        tx.commit().await?;
        Ok(to)
    }

    pub async fn person(&self, donor: i64) -> Result<Option<Person>, StoreError> {
        let person: Option<i64> = sqlx::query_scalar("SELECT person_id FROM donors WHERE id = ?1")
            .bind(donor)
            .fetch_optional(&self.reader)
            .await?;
        let Some(person_id) = person else {
            return Ok(None);
        };
        let donors = sqlx::query(
            "SELECT id, campaign_id, name, email, postal_code, country, placed_by_treasurer
             FROM donors WHERE person_id = ?1 ORDER BY id",
        )
        .bind(person_id)
        .fetch_all(&self.reader)
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
                placed_by_treasurer: r.try_get::<i64, _>("placed_by_treasurer")? != 0,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let changes = sqlx::query(
            "SELECT donor_id, from_person, to_person, action, reason, changed_at
             FROM identity_changes
             WHERE donor_id IN (SELECT id FROM donors WHERE person_id = ?1)
                OR from_person = ?1 OR to_person = ?1
             ORDER BY id",
        )
        .bind(person_id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            Ok(IdentityChange {
                donor_id: r.try_get("donor_id")?,
                from_person: r.try_get("from_person")?,
                to_person: r.try_get("to_person")?,
                action: r.try_get("action")?,
                reason: r.try_get("reason")?,
                changed_at: time(r.try_get("changed_at")?)?,
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
            "UPDATE reservations SET checkout_session_id = ?2
             WHERE id = ?1 AND checkout_session_id IS NULL",
        )
        .bind(reservation)
        .bind(session)
        .execute(&mut *self.writer_connection().await?)
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
        let sql = format!("{CHECKOUT_COLUMNS} WHERE {column} = ?1");
        let query = sqlx::query_as::<
            _,
            (
                i64,
                i64,
                i64,
                i64,
                String,
                i64,
                i64,
                Option<i64>,
                Option<i64>,
                Option<String>,
            ),
        >(&sql);
        let query = match key {
            CheckoutKey::Reservation(id) => query.bind(id),
            CheckoutKey::Session(session) => query.bind(session),
        };
        let row = query.fetch_optional(&self.reader).await?;
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
                    created_at: time(created)?,
                    expires_at: time(expires)?,
                    released_at: released.map(time).transpose()?,
                    contribution_id: contribution,
                    checkout_session_id: session,
                })
            },
        )
        .transpose()
    }

    pub async fn reservation(&self, id: i64) -> Result<Option<ReservationFacts>, StoreError> {
        let row: Option<(i64, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, campaign_id, declared, election FROM reservations WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.reader)
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
             FROM compliance_decisions WHERE campaign_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )
        .bind(campaign.0)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                let version: i64 = r.try_get("pack_version")?;
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

/// A list as the JSON array `json_each` reads.
pub(super) fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn owed_refund(r: &sqlx::sqlite::SqliteRow) -> Result<OwedRefund, StoreError> {
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
        remedy_by: r
            .try_get::<Option<String>, _>("remedy_by")?
            .map(|d| d.parse::<NaiveDate>())
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("remedy_by: {e}")))?,
        refund_id: r.try_get("refund_id")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        outstanding: money(r.try_get("outstanding")?),
    })
}
