//! The intake worker: takes due events from the inbox, asks Stripe for the current state of
//! what each is about, records the contribution and posts every money movement, then settles
//! the events (posted, retry later, or parked).
//!
//! Invariants:
//! - Exactly once: each money movement is posted under the key `stripe:<txn id>`; a movement
//!   already in the journal is not fetched again, and a race between two routes to it ends in
//!   a replay, never a second entry.
//! - Nothing is lost: an event is settled only after everything it led to is durable. A worker
//!   killed in between leaves the event pending; the next run redoes it and replays.
//! - Event order is never trusted: the events of one object are handled together from its
//!   state at Stripe, so any order of arrival ends in the same ledger.
//! - A failure is retried with exponential backoff and parked after a bound, with its error,
//!   for `obole intake failures`.
//! - A gift's payment is posted only through the authoritative compliance check
//!   (`enforcement::posting`): screened under its person's lock, with its decision and any
//!   part owed back in the same transaction. What is owed is then refunded through Stripe,
//!   once, by the end of the round (`request_owed_refunds`).
//! - A round reads at once what its subjects need from the database (the gifts recorded for
//!   them; each campaign once), so a donation costs a few statements, not one per question.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::plan::{read_event, EventPlan, RetryPolicy, SessionFacts, Subject};
use super::registrar::Registrar;
use super::rules::{entry_for, RuleError};
use super::{
    identity_key, ContributionRef, GiftKey, InboxEvent, NewContribution, RecordedGift, Settlement,
};
use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::combiner::CombinerOptions;
use crate::compliance::screen::Method;
use crate::compliance::{Declaration, Packs};
use crate::enforcement::posting::{Payment, Screener};
use crate::enforcement::reinstatement::{post_reinstatement, Reinstatement};
use crate::enforcement::{has_address, new_donor};
use crate::ids::{IdempotencyKey, Slug};
use crate::journal::{Journal, JournalError};
use crate::ledger::{Entry, EntryDraft, Links};
use crate::money::{Currency, Money};
use crate::provider::stripe::client::{ApiError, StripeClient};
use crate::provider::stripe::objects::{
    BalanceTransaction, Charge, ChargeStatus, Payout, OWED_REFUND_KEY,
};
use crate::store::{CheckoutKey, ReservationFacts, Store, StoreError};

/// How the worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// Events taken from the inbox per round.
    pub batch: i64,
    /// Subjects (charges, payouts) synchronised at once: Stripe calls overlap.
    pub concurrency: usize,
    /// Batches of gifts being recorded, and of payments being screened, written at once;
    /// `None`: the store's default (`CombinerOptions::for_store`).
    pub flushers: Option<usize>,
    /// How long to sleep when the inbox is empty, unless woken by a new event.
    pub idle_poll: Duration,
    pub retry: RetryPolicy,
}

impl Default for WorkerOptions {
    /// Large rounds, many subjects at once: a round's gifts and payments are recorded and
    /// posted in batches as large as what is in flight, so a donation costs fewer statements
    /// (intake bench: 1,024 and 256 sustain a third more than 512 and 64; BENCHMARKS.md).
    /// Against Stripe the pacer, not this, bounds the calls.
    fn default() -> WorkerOptions {
        WorkerOptions {
            batch: 1024,
            concurrency: 256,
            flushers: None,
            idle_poll: Duration::from_millis(500),
            retry: RetryPolicy::default(),
        }
    }
}

/// Why synchronising a subject failed.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    /// Worth retrying: Stripe or the database did not answer, or Stripe's state is not final
    /// yet (a capture not settled).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help until someone changes something: park at once.
    #[error("{0}")]
    Permanent(String),
}

impl From<ApiError> for SyncError {
    fn from(error: ApiError) -> SyncError {
        SyncError::Transient(error.to_string())
    }
}

impl From<StoreError> for SyncError {
    fn from(error: StoreError) -> SyncError {
        match error {
            StoreError::Unreachable { .. } | StoreError::Database(_) => {
                SyncError::Transient(error.to_string())
            }
            other => SyncError::Permanent(other.to_string()),
        }
    }
}

impl From<JournalError> for SyncError {
    fn from(error: JournalError) -> SyncError {
        match error {
            JournalError::Store(e) => e.into(),
            other => SyncError::Permanent(other.to_string()),
        }
    }
}

impl From<RuleError> for SyncError {
    fn from(error: RuleError) -> SyncError {
        SyncError::Permanent(error.to_string())
    }
}

/// The events of one round that concern one subject.
#[derive(Default)]
struct Group {
    events: Vec<InboxEvent>,
    refunds: bool,
    disputes: bool,
    session: Option<SessionFacts>,
}

pub struct IntakeWorker {
    store: Store,
    journal: Journal,
    api: StripeClient,
    /// The rule packs gifts are screened under when they post.
    packs: Arc<Packs>,
    /// Records gifts and their donors, in batches.
    registrar: Registrar,
    /// Screens and posts gifts' payments, in batches.
    screener: Screener,
    clock: Arc<dyn Clock>,
    /// The campaign of the Stripe account behind the webhook endpoint: payouts go to it, and
    /// payments without campaign metadata (flagged for review).
    endpoint_campaign: Option<Slug>,
    options: WorkerOptions,
    wake: Arc<Notify>,
    /// The campaigns read this round, by slug: read once a round, not once a payment.
    campaigns: Mutex<HashMap<Slug, Campaign>>,
}

impl IntakeWorker {
    pub fn new(
        journal: Journal,
        api: StripeClient,
        packs: Arc<Packs>,
        clock: Arc<dyn Clock>,
        endpoint_campaign: Option<Slug>,
        options: WorkerOptions,
    ) -> Arc<IntakeWorker> {
        let store = journal.store().clone();
        let mut combining = CombinerOptions::for_store(&store);
        combining.flushers = options.flushers.unwrap_or(combining.flushers);
        Arc::new(IntakeWorker {
            registrar: Registrar::start(store.clone(), clock.clone(), combining),
            screener: Screener::start(store.clone(), clock.clone(), combining),
            store,
            journal,
            api,
            packs,
            clock,
            endpoint_campaign,
            options,
            wake: Arc::new(Notify::new()),
            campaigns: Mutex::new(HashMap::new()),
        })
    }

    /// Notified when an event arrives, so the worker does not wait for its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs rounds until `stop`; sleeps between empty rounds.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let handled = match self.clone().round().await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(%error, "intake round failed; will retry");
                    0
                }
            };
            if handled == 0 {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.options.idle_poll) => {}
                }
            } else if stop.is_cancelled() {
                return;
            }
        }
    }

    /// Takes due events until none is left; returns how many were settled. For tests and
    /// one-shot commands.
    pub async fn drain(self: Arc<Self>) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self.clone().round().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// One round: due events, grouped by subject, synchronised concurrently, then settled in
    /// one write. Returns how many events it settled.
    pub async fn round(self: Arc<Self>) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let events = self
            .store
            .due_stripe_events(now, self.options.batch)
            .await?;
        if events.is_empty() {
            // A quiet moment is when refunds that failed earlier fall due again.
            self.request_owed_refunds().await;
            return Ok(0);
        }
        let mut settlements = Vec::with_capacity(events.len());
        let mut plans = Vec::with_capacity(events.len());
        for event in events {
            let plan = read_event(&event.kind, &event.payload);
            plans.push((event, plan));
        }
        // A Checkout session names only its payment intent; when another event of the round
        // links that intent to its charge, the session joins the charge's group.
        let charge_of: BTreeMap<String, String> = plans
            .iter()
            .filter_map(|(_, plan)| plan.as_ref().ok()?.link.clone())
            .collect();
        let mut groups: BTreeMap<Subject, Group> = BTreeMap::new();
        for (event, plan) in plans {
            let plan = plan.map(|mut plan| {
                if let Subject::PaymentIntent(pi) = &plan.subject {
                    if let Some(charge) = charge_of.get(pi) {
                        plan.subject = Subject::Charge(charge.clone());
                    }
                }
                plan
            });
            match plan {
                Err(error) => settlements.push((
                    event.event_id,
                    Settlement::Parked {
                        error: error.to_string(),
                    },
                )),
                Ok(EventPlan {
                    subject: Subject::Nothing(_),
                    ..
                }) => settlements.push((event.event_id, Settlement::Posted)),
                Ok(plan) => {
                    let group = groups.entry(plan.subject).or_default();
                    group.refunds |= plan.refunds;
                    group.disputes |= plan.disputes;
                    if group.session.is_none() {
                        group.session = plan.session;
                    }
                    group.events.push(event);
                }
            }
        }
        // What the round reads once for all its subjects: the gifts already recorded for
        // them, and (as they are needed) the campaigns.
        let groups: Vec<(Subject, Group)> = groups.into_iter().collect();
        let keys: Vec<GiftKey<'_>> = groups.iter().filter_map(|(s, _)| gift_key(s)).collect();
        let mut recorded = self.store.recorded_gifts(&keys).await?.into_iter();
        self.lock_campaigns().clear();
        let mut subjects = groups.into_iter().map(|(subject, group)| {
            let known = gift_key(&subject).and_then(|_| recorded.next().flatten());
            (subject, group, known)
        });
        let mut tasks = JoinSet::new();
        let mut late_sessions = Vec::new();
        loop {
            while tasks.len() < self.options.concurrency.max(1) {
                let Some((subject, group, known)) = subjects.next() else {
                    break;
                };
                let worker = self.clone();
                tasks.spawn(async move {
                    let outcome = worker.sync(&subject, &group, known).await;
                    if let Err(error) = &outcome {
                        tracing::warn!(?subject, %error, "intake: could not post");
                    }
                    (group.events, outcome)
                });
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            let (events, outcome) = done.map_err(|e| StoreError::Refused(e.to_string()))?;
            let outcome = match outcome {
                Ok(late) => {
                    late_sessions.extend(late);
                    Ok(())
                }
                Err(error) => Err(error),
            };
            for event in events {
                settlements.push((
                    event.event_id.clone(),
                    self.settlement(&event, &outcome, now),
                ));
            }
        }
        // Durable before the events that brought them are settled.
        self.store.attach_session_facts(&late_sessions).await?;
        let settled = settlements.len();
        self.store
            .settle_stripe_events(&settlements, self.clock.now())
            .await?;
        self.request_owed_refunds().await;
        Ok(settled)
    }

    /// Asks Stripe to refund what decisions made owed and no refund covers yet. The
    /// idempotency key names the gift and the round, so a retry (after a timeout, a crash,
    /// another worker) returns the first refund instead of refunding twice; the refund's
    /// webhook then posts it and settles the liability.
    pub async fn request_owed_refunds(&self) {
        let owed = match self
            .store
            .owed_refunds(None, Some(self.clock.now()), OWED_REFUNDS_PER_ROUND)
            .await
        {
            Ok(owed) => owed,
            Err(error) => {
                tracing::warn!(%error, "could not list the refunds owed");
                return;
            }
        };
        for refund in owed {
            let contribution = refund.contribution_id.to_string();
            let key = match refund.round {
                0 => format!("obole-owed-{contribution}"),
                round => format!("obole-owed-{contribution}-{round}"),
            };
            let reason: String = refund.reason.chars().take(450).collect();
            let outcome = self
                .api
                .create_refund(
                    &refund.charge_id,
                    refund.amount.minor(),
                    &key,
                    &[
                        (OWED_REFUND_KEY, contribution.as_str()),
                        ("obole_reason", reason.as_str()),
                    ],
                )
                .await;
            let now = self.clock.now();
            let retry_at = now
                + chrono::Duration::from_std(
                    self.options
                        .retry
                        .backoff(refund.attempts.saturating_add(1)),
                )
                .unwrap_or(chrono::Duration::hours(1));
            let recorded = match &outcome {
                Ok(made) => {
                    tracing::info!(contribution = %contribution, refund = %made.id, amount = %refund.amount, "owed refund requested");
                    self.store
                        .refund_requested(
                            refund.contribution_id,
                            refund.round,
                            Ok(&made.id),
                            now,
                            retry_at,
                        )
                        .await
                }
                Err(error) => {
                    tracing::warn!(contribution = %contribution, %error, %retry_at, "owed refund not obtained; will retry");
                    self.store
                        .refund_requested(
                            refund.contribution_id,
                            refund.round,
                            Err(&error.to_string()),
                            now,
                            retry_at,
                        )
                        .await
                }
            };
            if let Err(error) = recorded {
                tracing::warn!(%error, "could not record a refund request");
            }
        }
    }

    fn settlement(
        &self,
        event: &InboxEvent,
        outcome: &Result<(), SyncError>,
        now: DateTime<Utc>,
    ) -> Settlement {
        let failures = event.attempts.saturating_add(1);
        let retry = self.options.retry;
        match outcome {
            Ok(()) => Settlement::Posted,
            Err(SyncError::Permanent(error)) => Settlement::Parked {
                error: error.clone(),
            },
            Err(SyncError::Transient(error)) if retry.gives_up(failures) => Settlement::Parked {
                error: format!("gave up after {failures} attempts: {error}"),
            },
            Err(SyncError::Transient(error)) => Settlement::Retry {
                error: error.clone(),
                next_attempt_at: now
                    + chrono::Duration::from_std(retry.backoff(failures))
                        .unwrap_or(chrono::Duration::MAX),
            },
        }
    }

    /// Synchronises one subject from its state at Stripe. `recorded` is its gift as recorded
    /// when the round began, if any. Returns the facts of a Checkout session to attach to a
    /// gift recorded without them: the round writes them all before settling.
    async fn sync(
        &self,
        subject: &Subject,
        group: &Group,
        recorded: Option<RecordedGift>,
    ) -> Result<Option<LateSession>, SyncError> {
        if let Some(finished) = finish_without_stripe(recorded.as_ref(), group) {
            return Ok(finished);
        }
        match subject {
            Subject::Charge(id) => {
                self.sync_charge(self.api.charge(id).await?, group, recorded)
                    .await?;
            }
            Subject::PaymentIntent(id) => {
                let charges = self.api.charges_of_payment_intent(id).await?;
                let paid = charges
                    .into_iter()
                    .find(|c| c.status == ChargeStatus::Succeeded)
                    .ok_or_else(|| {
                        SyncError::Transient(format!(
                            "payment intent {id} has no successful charge yet"
                        ))
                    })?;
                let recorded = match recorded {
                    Some(r) if r.charge_id != paid.id => {
                        self.store.recorded_gift(GiftKey::Charge(&paid.id)).await?
                    }
                    recorded => recorded,
                };
                self.sync_charge(paid, group, recorded).await?;
            }
            Subject::Payout(id) => self.sync_payout(self.api.payout(id).await?).await?,
            Subject::EndedCheckout(session) => self.release_checkout(session).await?,
            Subject::Nothing(_) => {}
        }
        Ok(None)
    }

    /// Records the charge's contribution, then posts each of its money movements: the
    /// payment, every refund (and refund failure), every dispute withdrawal and reinstatement.
    /// `recorded` is the charge's gift as recorded, if any (recording it again would only
    /// return it).
    async fn sync_charge(
        &self,
        charge: Charge,
        group: &Group,
        recorded: Option<RecordedGift>,
    ) -> Result<(), SyncError> {
        match charge.status {
            ChargeStatus::Failed => return Ok(()),
            ChargeStatus::Pending => {
                return Err(SyncError::Transient(format!(
                    "charge {} is still pending",
                    charge.id
                )))
            }
            ChargeStatus::Succeeded => {}
        }
        let Some(payment) = charge.balance_transaction.clone() else {
            return Err(SyncError::Transient(format!(
                "charge {} has no balance transaction yet (capture not settled)",
                charge.id
            )));
        };
        let (campaign, review_reason) = self.campaign_of(&charge).await?;
        let pack = self.packs.get(&campaign.rule_pack).ok_or_else(|| {
            SyncError::Permanent(format!(
                "campaign {} follows rule pack {}, which is not loaded",
                campaign.slug, campaign.rule_pack
            ))
        })?;
        let currency = Currency::parse(&charge.currency)
            .map_err(|e| SyncError::Permanent(format!("charge {}: {e}", charge.id)))?;
        let paid_at = DateTime::from_timestamp(charge.created, 0)
            .ok_or_else(|| SyncError::Permanent(format!("charge {}: bad time", charge.id)))?;
        let reservation = self.reservation_of(&charge, &campaign).await?;
        let declaration = Declaration::from_json(reservation.as_ref().map(|r| r.declared.as_str()));
        // The payment's movement is posted in the transaction that decides the gift, so a
        // decided gift's payment is known posted without asking the journal.
        let payment_posted = recorded.as_ref().is_some_and(|r| r.decided);
        // Most events find the contribution already recorded: the read spares a write.
        let gift = match recorded {
            Some(known) if group.session.is_none() || known.has_session => known.gift,
            _ => {
                let gift = NewContribution {
                    campaign_id: campaign.id,
                    donor: new_donor(identity_key(&charge.payer, &charge.id), &charge.payer),
                    charge_id: charge.id.clone(),
                    method: Method::Card,
                    payment_intent_id: charge.payment_intent.clone(),
                    checkout_session_id: group.session.as_ref().map(|s| s.session_id.clone()),
                    amount: Money::from_minor(charge.amount, currency),
                    paid_at,
                    custom_fields: group.session.as_ref().and_then(|s| s.custom_fields.clone()),
                    declared: reservation.as_ref().map(|r| r.declared.clone()),
                    election: declaration.election.clone(),
                    review_reason,
                };
                self.registrar.record(gift).await?
            }
        };

        let mut by_id = vec![payment.clone()];
        // Refunds of money owed back to the donor: their movements settle the liability.
        let mut owed_refunds = Vec::new();
        if charge.amount_refunded > 0 || group.refunds {
            for refund in self.api.refunds_of_charge(&charge.id).await? {
                if refund.metadata.contains_key(OWED_REFUND_KEY) {
                    owed_refunds.extend(refund.balance_transaction.clone());
                }
                by_id.extend(refund.balance_transaction);
                by_id.extend(refund.failure_balance_transaction);
            }
        }
        let mut fetched = Vec::new();
        if charge.disputed || group.disputes {
            for dispute in self.api.disputes_of_charge(&charge.id).await? {
                fetched.extend(dispute.balance_transactions);
            }
        }
        let others = by_id.iter().filter(|id| **id != payment);
        let mut posted = self
            .posted(&campaign, others.chain(fetched.iter().map(|t| &t.id)))
            .await?;
        if payment_posted {
            posted.push(payment.clone());
        }
        let unsettled = self.unsettled(&campaign, &owed_refunds).await?;
        // Money of this gift the screener rules on: the payment, or a dispute's reinstatement.
        let screened = |entry, amount, paid_at, reservation| Payment {
            campaign: campaign.clone(),
            pack: pack.clone(),
            gift,
            reservation,
            entry,
            amount,
            paid_at,
            method: Method::Card,
            declaration: declaration.clone(),
            donor_name: charge.payer.name.clone(),
            has_address: has_address(&charge.payer),
        };
        for id in by_id.iter().filter(|id| !posted.contains(id)) {
            let txn = match &charge.payment_transaction {
                Some(txn) if &txn.id == id => txn.clone(),
                _ => self.api.balance_transaction(id).await?,
            };
            if *id == payment {
                let entry = Entry::new(&campaign, entry_for(&campaign, &txn, Some(gift), None)?)
                    .map_err(|e| SyncError::Permanent(e.to_string()))?;
                let screened = screened(
                    entry,
                    Money::from_minor(charge.amount, currency),
                    paid_at,
                    reservation.as_ref().map(|r| r.id),
                );
                let ruling = self.screener.post(screened).await?;
                tracing::debug!(charge = %charge.id, verdict = %ruling.verdict, "screened and posted");
            } else {
                self.post(&campaign, &txn, Some(gift), None).await?;
            }
            if unsettled.contains(id) {
                self.post_owed_settlement(&campaign, &txn, gift).await?;
            }
        }
        // A refund posted before its settlement could be (a crash in between) is settled now.
        for id in unsettled.iter().filter(|id| posted.contains(id)) {
            let txn = self.api.balance_transaction(id).await?;
            self.post_owed_settlement(&campaign, &txn, gift).await?;
        }
        for txn in fetched.iter().filter(|t| !posted.contains(&t.id)) {
            if !is_reinstatement(txn) {
                self.post(&campaign, txn, Some(gift), None).await?;
                continue;
            }
            // Money a won dispute brings back is screened: the donor may have given again
            // into the room its withdrawal freed.
            let entry = Entry::new(&campaign, entry_for(&campaign, txn, Some(gift), None)?)
                .map_err(|e| SyncError::Permanent(e.to_string()))?;
            let at = DateTime::from_timestamp(txn.created, 0)
                .ok_or_else(|| SyncError::Permanent(format!("{}: bad time", txn.id)))?;
            let reinstatement = Reinstatement {
                payment: screened(entry, Money::from_minor(txn.amount, currency), at, None),
                movement: txn.id.clone(),
            };
            let owed = post_reinstatement(&self.store, &reinstatement, self.clock.now()).await?;
            if owed.is_positive() {
                tracing::info!(charge = %charge.id, %owed, "a won dispute reinstated money over the cap: owed back");
            }
        }
        Ok(())
    }

    /// Posts a payout that reached the bank (effective the day it arrived) and, if it failed
    /// or was canceled, the movement that returned the money.
    async fn sync_payout(&self, payout: Payout) -> Result<(), SyncError> {
        let final_state = matches!(payout.status.as_str(), "paid" | "failed" | "canceled");
        if !final_state {
            return Err(SyncError::Transient(format!(
                "payout {} is still {} at Stripe",
                payout.id, payout.status
            )));
        }
        let campaign = self.endpoint_campaign().await?.ok_or_else(|| {
            SyncError::Permanent(format!(
                "payout {}: no campaign is configured for this Stripe account (STRIPE_CAMPAIGN)",
                payout.id
            ))
        })?;
        let arrival = DateTime::from_timestamp(payout.arrival_date, 0);
        let ids: Vec<String> = payout
            .balance_transaction
            .iter()
            .chain(payout.failure_balance_transaction.iter())
            .cloned()
            .collect();
        let posted = self.posted(&campaign, ids.iter()).await?;
        for id in ids.iter().filter(|id| !posted.contains(id)) {
            let txn = self.api.balance_transaction(id).await?;
            // The bank holds the money from the day it arrived; a failure returns it no
            // earlier than that.
            let moved = DateTime::from_timestamp(txn.created, 0);
            let effective = arrival.max(moved);
            self.post(&campaign, &txn, None, effective).await?;
        }
        Ok(())
    }

    /// The movement ids among `ids` already in the campaign's journal.
    async fn posted<'a>(
        &self,
        campaign: &Campaign,
        ids: impl Iterator<Item = &'a String>,
    ) -> Result<Vec<String>, SyncError> {
        let keys: Vec<String> = ids.map(|id| format!("stripe:{id}")).collect();
        let found = self.store.existing_keys(campaign.id, &keys).await?;
        Ok(found
            .into_iter()
            .filter_map(|k| k.strip_prefix("stripe:").map(str::to_owned))
            .collect())
    }

    /// Which of the owed refunds' movements `ids` have not settled their liability yet.
    async fn unsettled(
        &self,
        campaign: &Campaign,
        ids: &[String],
    ) -> Result<Vec<String>, SyncError> {
        let keys: Vec<String> = ids.iter().map(|id| owed_settlement_key(id)).collect();
        let found = self.store.existing_keys(campaign.id, &keys).await?;
        Ok(ids
            .iter()
            .filter(|id| !found.contains(&owed_settlement_key(id)))
            .cloned()
            .collect())
    }

    /// Posts the entry by which a refund of money owed back settles the liability: the
    /// refund's movement was posted like any refund (to the refunds contra account, which
    /// keeps reconciliation with Stripe one rule per category); this moves it onto
    /// `liabilities:refunds_due`, so the gift's net and the "refunded" total are unchanged by
    /// returning what was never the campaign's to keep.
    async fn post_owed_settlement(
        &self,
        campaign: &Campaign,
        refund: &BalanceTransaction,
        gift: ContributionRef,
    ) -> Result<(), SyncError> {
        let key = owed_settlement_key(&refund.id);
        let refunded = Money::from_minor(-refund.amount, campaign.currency);
        let back = Money::from_minor(refund.amount, campaign.currency);
        let effective_at = DateTime::from_timestamp(refund.created, 0)
            .ok_or_else(|| SyncError::Permanent(format!("refund {}: bad time", refund.id)))?;
        let draft = EntryDraft::new(
            IdempotencyKey::parse(key.clone()).map_err(|e| SyncError::Permanent(e.to_string()))?,
            "Refund of money owed back settles the liability",
            effective_at,
        )
        .links(Links {
            source: Some(key),
            event_id: None,
            donor_id: Some(gift.donor_id),
            contribution_id: Some(gift.contribution_id),
        })
        .post("liabilities:refunds_due", refunded)
        .post("income:donations:refunds", back);
        self.journal.record(campaign, draft).await?;
        Ok(())
    }

    async fn post(
        &self,
        campaign: &Campaign,
        txn: &BalanceTransaction,
        gift: Option<ContributionRef>,
        effective_at: Option<DateTime<Utc>>,
    ) -> Result<(), SyncError> {
        let draft = entry_for(campaign, txn, gift, effective_at)?;
        let posted = self.journal.record(campaign, draft).await?;
        tracing::debug!(txn = %txn.id, entry = %posted.entry_id, replayed = posted.replayed, "posted");
        Ok(())
    }

    /// Gives back the room of the reservation an unpaid Checkout session held (found by the
    /// session Obole opened for it, never by the event's metadata). Releasing twice, or a
    /// session Obole did not open, changes nothing.
    async fn release_checkout(&self, session: &str) -> Result<(), SyncError> {
        if let Some(checkout) = self.store.checkout(CheckoutKey::Session(session)).await? {
            let released = self
                .store
                .release_reservation(checkout.reservation_id, self.clock.now())
                .await?;
            tracing::debug!(session, released, "checkout session ended unpaid");
        }
        Ok(())
    }

    /// The checkout reservation the charge fulfils, as Obole's checkout named it in the
    /// metadata; one of another campaign is ignored (metadata is not trusted across campaigns).
    async fn reservation_of(
        &self,
        charge: &Charge,
        campaign: &Campaign,
    ) -> Result<Option<ReservationFacts>, SyncError> {
        let Some(id) = charge
            .metadata
            .get("reservation")
            .and_then(|r| r.parse::<i64>().ok())
        else {
            return Ok(None);
        };
        let found = self.store.reservation(id).await?;
        Ok(found.filter(|r| r.campaign_id == campaign.id))
    }

    /// The campaign a payment belongs to: the one Obole's checkout named in its metadata, or
    /// else the endpoint's, with the reason it needs a treasurer's review.
    async fn campaign_of(&self, charge: &Charge) -> Result<(Campaign, Option<String>), SyncError> {
        let named = charge.metadata.get("campaign");
        if let Some(slug) = named {
            if let Some(campaign) = self.campaign(slug).await? {
                return Ok((campaign, None));
            }
        }
        let reason = match named {
            Some(slug) => format!("its metadata names campaign {slug:?}, which does not exist"),
            None => {
                "it carries no campaign metadata (not made through Obole's checkout)".to_owned()
            }
        };
        match self.endpoint_campaign().await? {
            Some(campaign) => Ok((campaign, Some(reason))),
            None => Err(SyncError::Permanent(format!(
                "charge {}: {reason}, and no campaign is configured for this Stripe account (STRIPE_CAMPAIGN)",
                charge.id
            ))),
        }
    }

    async fn endpoint_campaign(&self) -> Result<Option<Campaign>, SyncError> {
        match &self.endpoint_campaign {
            Some(slug) => {
                let campaign = self.campaign_by_slug(slug).await?;
                campaign.map(Some).ok_or_else(|| {
                    SyncError::Permanent(format!(
                        "STRIPE_CAMPAIGN names {slug}, which does not exist"
                    ))
                })
            }
            None => Ok(None),
        }
    }

    async fn campaign(&self, slug: &str) -> Result<Option<Campaign>, SyncError> {
        match Slug::parse(slug) {
            Ok(slug) => self.campaign_by_slug(&slug).await,
            Err(_) => Ok(None),
        }
    }

    /// A campaign as this round read it (a campaign's id, currency and rule pack never
    /// change; its other settings are at most a round old).
    async fn campaign_by_slug(&self, slug: &Slug) -> Result<Option<Campaign>, SyncError> {
        if let Some(campaign) = self.lock_campaigns().get(slug) {
            return Ok(Some(campaign.clone()));
        }
        let campaign = self.store.campaign(slug).await?;
        if let Some(campaign) = &campaign {
            self.lock_campaigns().insert(slug.clone(), campaign.clone());
        }
        Ok(campaign)
    }

    fn lock_campaigns(&self) -> std::sync::MutexGuard<'_, HashMap<Slug, Campaign>> {
        // The map is only a cache: one a panicking holder left is still usable.
        self.campaigns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A Checkout session's facts for a gift recorded without them.
type LateSession = (i64, SessionFacts);

/// Whether `group` is finished by what is recorded, its events bringing nothing new from
/// Stripe: the gift's payment is posted (decided), and the events are about the payment, not
/// about a refund or a dispute, each of which has events of its own. Then the answer holds
/// what a Checkout session's late event adds (its id, what the donor typed into it), from its
/// verified snapshot, which is authoritative for those facts. Spares a Stripe call for every
/// event of a donation that arrives after its payment posted.
fn finish_without_stripe(
    recorded: Option<&RecordedGift>,
    group: &Group,
) -> Option<Option<LateSession>> {
    let recorded = recorded?;
    if !recorded.decided || group.refunds || group.disputes {
        return None;
    }
    Some(match (&group.session, recorded.has_session) {
        (Some(session), false) => Some((recorded.gift.contribution_id, session.clone())),
        _ => None,
    })
}

/// The key of the gift a subject is about, if it is a payment.
fn gift_key(subject: &Subject) -> Option<GiftKey<'_>> {
    match subject {
        Subject::Charge(id) => Some(GiftKey::Charge(id)),
        Subject::PaymentIntent(id) => Some(GiftKey::PaymentIntent(id)),
        Subject::Payout(_) | Subject::EndedCheckout(_) | Subject::Nothing(_) => None,
    }
}

/// Owed refunds requested per round, at most.
const OWED_REFUNDS_PER_ROUND: i64 = 100;

/// A won dispute's movement returning money to the campaign.
fn is_reinstatement(txn: &BalanceTransaction) -> bool {
    txn.reporting_category == "dispute_reversal" && txn.amount > 0
}

/// The key of the entry that settles an owed refund's liability.
fn owed_settlement_key(refund_txn: &str) -> String {
    format!("owed-refunded:{refund_txn}")
}

/// A worker running in the background.
pub struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Starts `worker` on its own task.
pub fn spawn(worker: Arc<IntakeWorker>) -> Running {
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    Running { stop, task }
}

impl Running {
    /// Finishes the round in progress (its results are settled) and stops.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the intake worker ended abnormally");
        }
    }
}
