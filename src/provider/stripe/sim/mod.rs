//! A simulated Stripe account, offline: the part of Stripe's API Obole reads (charges,
//! balance transactions, refunds, disputes, payouts) served over HTTP on localhost, and
//! scenario methods (a donation, a refund, a dispute, a payout) that change the account the way
//! Stripe does and return the webhook events Stripe would send, ready to sign and deliver in
//! any order.
//!
//! The integration tests and the benchmark point the real API client at it
//! (`STRIPE_API_BASE`), so the whole intake path runs as in production.
//!
//! Invariants:
//! - Objects are complete: every field the `async-stripe` types require is present (its
//!   strict parser refuses partial objects), with shapes from Stripe's own payloads.
//! - Money is consistent like Stripe's: every balance transaction has `net = amount − fee`;
//!   the fee is 1.5 % + 0.25 (rounded half up), as for a standard EEA card; a payout pays out
//!   exactly the net of the transactions it includes.
//! - Event snapshots are taken when the event is made; the API always answers current state.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Form, Json, Router};
use serde_json::{json, Value};

use super::objects::OWED_REFUND_KEY;
use super::signature;

mod checkout;

pub use checkout::{card_fingerprint, CardPayment, Decline, OpenSession, FRENCH_CARD_PREFIX};

/// The API version the simulated objects follow (the one `async-stripe` rc.10 is built for).
pub const API_VERSION: &str = "2026-09-30.endive";

/// A webhook event the simulated account sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    pub id: String,
    pub kind: String,
    /// The exact JSON Stripe would POST.
    pub body: String,
}

impl SimEvent {
    /// The `Stripe-Signature` header for this body, signed at `timestamp` with each secret.
    pub fn signature(&self, secrets: &[&str], timestamp: i64) -> String {
        signature::sign(self.body.as_bytes(), secrets, timestamp)
    }
}

/// A donor's gift through Checkout.
#[derive(Debug, Clone)]
pub struct Gift {
    /// Minor units.
    pub amount: i64,
    /// Lower-case ISO code, as Stripe writes it.
    pub currency: String,
    /// The campaign slug Obole puts in the payment's metadata; `None` for a payment made
    /// outside Obole's checkout.
    pub campaign: Option<String>,
    pub name: String,
    pub email: String,
    pub card_country: String,
    /// Stripe's fingerprint of the card: the same card gives the same one.
    pub card_fingerprint: String,
    /// The billing address.
    pub address_line1: String,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// More metadata, as Obole's checkout sets it (`reservation`).
    pub metadata: Vec<(String, String)>,
    /// False for asynchronous capture: the charge has no balance transaction until
    /// [`StripeSim::settle`].
    pub settled: bool,
}

impl Gift {
    pub fn new(amount: i64, campaign: &str, email: &str) -> Gift {
        Gift {
            amount,
            currency: "eur".into(),
            campaign: Some(campaign.into()),
            name: "Marie Dupont".into(),
            email: email.into(),
            card_country: "FR".into(),
            // One card and one home per email unless a test says otherwise, so that donors
            // of different emails are different people.
            card_fingerprint: format!("fp_{}", fold_hex(email)),
            address_line1: format!("{} Rue de la Republique", 1 + fold_hex(email) % 9_999),
            postal_code: "69002".into(),
            city: "Lyon".into(),
            country: "FR".into(),
            metadata: Vec::new(),
            settled: true,
        }
    }
}

/// A small stable number from `text`, for made-up but deterministic details.
fn fold_hex(text: &str) -> u64 {
    text.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    }) % 1_000_000
}

/// What a donation created, and the events Stripe sends for it.
#[derive(Debug, Clone)]
pub struct Donation {
    pub session: String,
    pub payment_intent: String,
    pub charge: String,
    /// `None` until settled.
    pub balance_transaction: Option<String>,
    /// `checkout.session.completed`, `payment_intent.succeeded`, `charge.succeeded` and, when
    /// settled, `charge.updated`.
    pub events: Vec<SimEvent>,
}

/// One line of the account's balance history: Stripe's truth about money, for a test's model
/// of the books to be built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// Stripe's `reporting_category`: `charge`, `refund`, `dispute`, `dispute_reversal`,
    /// `payout` or `payout_reversal`.
    pub category: String,
    /// What caused it: a charge, refund, dispute or payout id.
    pub source: String,
    /// Minor units, signed as the balance moved.
    pub amount: i64,
    pub fee: i64,
    /// For a refund: whether Obole asked for it to return money owed (its metadata names
    /// the gift).
    pub owed_refund: bool,
}

/// A request the simulated API received (for tests to assert on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: &'static str,
    pub path: String,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
struct Account {
    /// Unix seconds; advances one second per action so every object has its own instant.
    now: i64,
    serial: u64,
    charges: BTreeMap<String, Value>,
    /// In creation order (lists answer newest first).
    balance_transactions: Vec<Value>,
    /// Position of each balance transaction in `balance_transactions`, by id.
    balance_transaction_index: HashMap<String, usize>,
    /// The charges of each payment intent, for `GET /v1/charges?payment_intent=`.
    charges_by_payment_intent: HashMap<String, Vec<String>>,
    /// The balance transactions each payout paid out.
    payout_includes: BTreeMap<String, Vec<String>>,
    refunds: Vec<Value>,
    /// Positions in `refunds` of each charge's refunds, for `GET /v1/refunds?charge=`: the
    /// worker asks for one charge's refunds, and a scan of them all under the account's lock
    /// grew with every refund (in the intake bench, a tenth of the process's CPU time).
    refunds_by_charge: HashMap<String, Vec<usize>>,
    disputes: Vec<Value>,
    payouts: BTreeMap<String, Value>,
    /// Refunds created through the API, by idempotency key.
    refunds_by_key: HashMap<String, Value>,
    /// Checkout sessions opened through the API, by id.
    sessions: BTreeMap<String, checkout::SimSession>,
    /// Sessions opened through the API, by idempotency key.
    sessions_by_key: HashMap<String, String>,
    /// Where the hosted payment page is served (`serve` sets it).
    base_url: Option<String>,
    /// Events caused by API calls (a refund Obole asked for), waiting to be delivered.
    outbox: Vec<SimEvent>,
    seen: Vec<SeenRequest>,
    latency: Duration,
    /// Refund requests still to answer with a 500, as during an outage at Stripe.
    failing_refunds: usize,
    /// Faults the next API requests suffer, in order.
    faults: VecDeque<ApiFault>,
    /// Written into every id after its prefix (`ch_Sim…`), so that several simulated
    /// accounts can share one database.
    tag: String,
}

/// Something going wrong with the next API request (see [`StripeSim::inject_faults`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFault {
    /// Stripe answers 500 `api_error` and does nothing.
    Error,
    /// Stripe answers only after this long. Past the client's timeout the call is abandoned
    /// although Stripe then carries it out: a lost response.
    Slow(Duration),
}

/// The simulated account. Cheap to share: `Arc<StripeSim>`.
pub struct StripeSim {
    account: Mutex<Account>,
    /// Connections the API accepted: a client that keeps its connections alive opens few.
    connections: AtomicUsize,
}

impl StripeSim {
    /// An empty account whose clock starts at `now` (Unix seconds).
    pub fn new(now: i64) -> Arc<StripeSim> {
        StripeSim::tagged(now, "Sim")
    }

    /// An empty account whose ids carry `tag` (`ch_{tag}0000…1`): accounts of different tags
    /// never share an id.
    pub fn tagged(now: i64, tag: &str) -> Arc<StripeSim> {
        Arc::new(StripeSim {
            account: Mutex::new(Account {
                now,
                tag: tag.to_owned(),
                ..Account::default()
            }),
            connections: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Account> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.account.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves the API on 127.0.0.1 at a free port; returns its base URL.
    pub async fn serve(self: &Arc<Self>) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let address = listener.local_addr()?;
        let base = format!("http://{address}");
        self.set_base_url(&base);
        let counter = self.clone();
        let listener = listener.tap_io(move |_| {
            counter.connections.fetch_add(1, Ordering::Relaxed);
        });
        let app = self.router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(base)
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/charges", get(list_charges))
            .route("/v1/charges/{id}", get(retrieve_charge))
            .route("/v1/balance_transactions", get(list_balance_transactions))
            .route(
                "/v1/balance_transactions/{id}",
                get(retrieve_balance_transaction),
            )
            .route("/v1/refunds", get(list_refunds).post(create_refund))
            .route("/v1/disputes", get(list_disputes))
            .route("/v1/payouts/{id}", get(retrieve_payout))
            .route("/v1/checkout/sessions", post(checkout::create_session))
            .route(
                "/v1/checkout/sessions/{id}",
                get(checkout::retrieve_session),
            )
            .route(
                "/v1/checkout/sessions/{id}/expire",
                post(checkout::expire_session),
            )
            .with_state(self.clone())
    }

    /// Where the hosted payment pages are served (sessions' `url`).
    pub fn set_base_url(&self, base: &str) {
        self.lock().base_url = Some(base.trim_end_matches('/').to_owned());
    }

    /// Every API call waits this long before answering (to widen race windows in tests).
    /// Moves the account's clock to `now` (Unix seconds): what happens next happens then.
    pub fn set_clock(&self, now: i64) {
        self.lock().now = now;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The next `count` refund requests fail with Stripe's `api_error` (HTTP 500).
    pub fn fail_refunds(&self, count: usize) {
        self.lock().failing_refunds = count;
    }

    /// The next API requests suffer `faults`, one each, in order (after any queued before).
    pub fn inject_faults(&self, faults: impl IntoIterator<Item = ApiFault>) {
        self.lock().faults.extend(faults);
    }

    /// Every balance transaction so far, oldest first.
    pub fn balance_history(&self) -> Vec<Movement> {
        let a = self.lock();
        let owed_refunds: std::collections::HashSet<&str> = a
            .refunds
            .iter()
            .filter(|r| !r["metadata"][OWED_REFUND_KEY].is_null())
            .filter_map(|r| r["id"].as_str())
            .collect();
        a.balance_transactions
            .iter()
            .map(|t| {
                let source = t["source"].as_str().unwrap_or_default().to_owned();
                Movement {
                    category: t["reporting_category"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    owed_refund: owed_refunds.contains(source.as_str()),
                    source,
                    amount: t["amount"].as_i64().unwrap_or(0),
                    fee: t["fee"].as_i64().unwrap_or(0),
                }
            })
            .collect()
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.lock().seen.clone()
    }

    /// How many connections the API has accepted since it was served.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Events caused by API calls since the last call (e.g. a refund Obole created).
    pub fn take_outbox(&self) -> Vec<SimEvent> {
        std::mem::take(&mut self.lock().outbox)
    }

    /// A donor pays through Checkout (a session opened and paid at once).
    pub fn donate(&self, gift: &Gift) -> Donation {
        self.donate_in(gift, None)
    }

    /// A donor pays: through the open session `open` (see `checkout`), or through a new one.
    fn donate_in(&self, gift: &Gift, open: Option<&str>) -> Donation {
        let mut a = self.lock();
        let t = a.tick();
        let session = match open {
            Some(id) => id.to_owned(),
            None => a.id("cs_test"),
        };
        let pi = a.id("pi");
        let charge_id = a.id("ch");
        let mut metadata = serde_json::Map::new();
        metadata.insert("donation_id".into(), json!(format!("don_{}", a.serial)));
        if let Some(campaign) = &gift.campaign {
            metadata.insert("campaign".into(), json!(campaign));
        }
        for (key, value) in &gift.metadata {
            metadata.insert(key.clone(), json!(value));
        }
        let charge = charge_object(&charge_id, &pi, gift, t, &metadata);
        a.charges.insert(charge_id.clone(), charge.clone());
        a.charges_by_payment_intent
            .entry(pi.clone())
            .or_default()
            .push(charge_id.clone());
        let session_object = match a.sessions.get_mut(&session) {
            Some(stored) => checkout::complete(stored, &pi, gift),
            None => session_object(&session, &pi, gift, t, &metadata),
        };
        let intent = payment_intent_object(&pi, &charge_id, gift, t, &metadata);
        let mut events = vec![
            a.event("checkout.session.completed", session_object),
            a.event("payment_intent.succeeded", intent),
            a.event("charge.succeeded", charge),
        ];
        drop(a);
        let mut balance_transaction = None;
        if gift.settled {
            let (txn, updated) = self.settle(&charge_id);
            balance_transaction = Some(txn);
            events.extend(updated);
        }
        Donation {
            session,
            payment_intent: pi,
            charge: charge_id,
            balance_transaction,
            events,
        }
    }

    /// The charge's capture settles: its balance transaction (gross, fee, net) appears.
    /// Returns the transaction id and the `charge.updated` event.
    pub fn settle(&self, charge: &str) -> (String, Vec<SimEvent>) {
        let mut a = self.lock();
        let object = a.charges.get(charge).cloned().unwrap_or(Value::Null);
        if let Some(txn) = object["balance_transaction"].as_str() {
            return (txn.to_owned(), Vec::new());
        }
        let amount = object["amount"].as_i64().unwrap_or(0);
        let currency = object["currency"].as_str().unwrap_or("eur").to_owned();
        let fee = standard_fee(amount);
        let txn = a.balance_transaction(amount, fee, &currency, "charge", "charge", charge);
        let updated = {
            let c = a.charges.entry(charge.to_owned()).or_insert(Value::Null);
            c["balance_transaction"] = json!(txn);
            c.clone()
        };
        let event = a.event("charge.updated", updated);
        (txn, vec![event])
    }

    /// Refunds `amount` of `charge` (Stripe keeps no part of the original fee back).
    /// Returns the refund id and its events: `refund.created`, `charge.refunded`.
    pub fn refund(&self, charge: &str, amount: i64) -> (String, Vec<SimEvent>) {
        let mut a = self.lock();
        let (refund, events) = a.refund(charge, amount, None, json!({}));
        (refund["id"].as_str().unwrap_or_default().to_owned(), events)
    }

    /// The donor's bank disputes `charge`: the amount and a dispute `fee` are withdrawn.
    /// Returns the dispute id and its events: `charge.dispute.created`,
    /// `charge.dispute.funds_withdrawn`.
    pub fn dispute(&self, charge: &str, fee: i64) -> (String, Vec<SimEvent>) {
        let mut a = self.lock();
        a.tick();
        let id = a.id("du");
        let object = a.charges.get(charge).cloned().unwrap_or(Value::Null);
        let amount = object["amount"].as_i64().unwrap_or(0)
            - object["amount_refunded"].as_i64().unwrap_or(0);
        let currency = object["currency"].as_str().unwrap_or("eur").to_owned();
        let pi = object["payment_intent"].clone();
        let t = a.now;
        let created = dispute_object(&id, charge, &pi, amount, &currency, t, Vec::new());
        a.disputes.push(created.clone());
        let opened = a.event("charge.dispute.created", created);
        let txn = a.balance_transaction(-amount, fee, &currency, "adjustment", "dispute", &id);
        let withdrawal = a.balance_transaction_object(&txn);
        let withdrawn = {
            let d = a.dispute_mut(&id);
            d["balance_transactions"] = json!([withdrawal]);
            d.clone()
        };
        if let Some(c) = a.charges.get_mut(charge) {
            c["disputed"] = json!(true);
        }
        let funds = a.event("charge.dispute.funds_withdrawn", withdrawn);
        (id, vec![opened, funds])
    }

    /// The dispute ends. Won: the amount (not the fee) is reinstated. Returns the events:
    /// `charge.dispute.funds_reinstated` (if won) and `charge.dispute.closed`.
    pub fn close_dispute(&self, dispute: &str, won: bool) -> Vec<SimEvent> {
        let mut a = self.lock();
        a.tick();
        let mut events = Vec::new();
        let object = a.dispute_mut(dispute).clone();
        if won {
            let amount = object["amount"].as_i64().unwrap_or(0);
            let currency = object["currency"].as_str().unwrap_or("eur").to_owned();
            let txn = a.balance_transaction(
                amount,
                0,
                &currency,
                "adjustment",
                "dispute_reversal",
                dispute,
            );
            let reinstatement = a.balance_transaction_object(&txn);
            let snapshot = {
                let d = a.dispute_mut(dispute);
                if let Some(list) = d["balance_transactions"].as_array_mut() {
                    list.push(reinstatement);
                }
                d["status"] = json!("won");
                d.clone()
            };
            events.push(a.event("charge.dispute.funds_reinstated", snapshot));
        }
        let closed = {
            let d = a.dispute_mut(dispute);
            d["status"] = json!(if won { "won" } else { "lost" });
            d.clone()
        };
        events.push(a.event("charge.dispute.closed", closed));
        events
    }

    /// Pays the whole balance not yet paid out to the bank. Returns the payout id (`None`
    /// when there is nothing to pay) and its event, `payout.paid`.
    pub fn payout(&self) -> (Option<String>, Vec<SimEvent>) {
        let mut a = self.lock();
        a.tick();
        let included: Vec<Value> = a
            .balance_transactions
            .iter()
            .filter(|t| {
                t["reporting_category"] != "payout" && t["reporting_category"] != "payout_reversal"
            })
            .filter(|t| {
                !a.payout_includes
                    .values()
                    .flatten()
                    .any(|id| t["id"] == id.as_str())
            })
            .cloned()
            .collect();
        let total: i64 = included.iter().filter_map(|t| t["net"].as_i64()).sum();
        if total <= 0 {
            return (None, Vec::new());
        }
        let currency = included[0]["currency"].as_str().unwrap_or("eur").to_owned();
        let id = a.id("po");
        let txn = a.balance_transaction(-total, 0, &currency, "payout", "payout", &id);
        let ids = included
            .iter()
            .filter_map(|t| t["id"].as_str())
            .map(str::to_owned)
            .collect();
        a.payout_includes.insert(id.clone(), ids);
        let t = a.now;
        let payout = payout_object(&id, total, &currency, t, &txn);
        a.payouts.insert(id.clone(), payout.clone());
        let event = a.event("payout.paid", payout);
        (Some(id), vec![event])
    }

    /// The bank returns a payout: the money comes back to the Stripe balance. Returns the
    /// `payout.failed` event.
    pub fn fail_payout(&self, payout: &str) -> Vec<SimEvent> {
        let mut a = self.lock();
        a.tick();
        let Some(object) = a.payouts.get(payout).cloned() else {
            return Vec::new();
        };
        let amount = object["amount"].as_i64().unwrap_or(0);
        let currency = object["currency"].as_str().unwrap_or("eur").to_owned();
        let txn = a.balance_transaction(
            amount,
            0,
            &currency,
            "payout_failure",
            "payout_reversal",
            payout,
        );
        let snapshot = {
            let p = a.payouts.entry(payout.to_owned()).or_insert(Value::Null);
            p["status"] = json!("failed");
            p["failure_balance_transaction"] = json!(txn);
            p["failure_code"] = json!("account_closed");
            p.clone()
        };
        vec![a.event("payout.failed", snapshot)]
    }
}

impl Account {
    fn tick(&mut self) -> i64 {
        self.now += 1;
        self.now
    }

    fn id(&mut self, prefix: &str) -> String {
        self.serial += 1;
        format!("{prefix}_{}{:016}", self.tag, self.serial)
    }

    fn event(&mut self, kind: &str, object: Value) -> SimEvent {
        let id = self.id("evt");
        let body = json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now,
            "data": {"object": object},
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": kind,
        });
        SimEvent {
            id,
            kind: kind.to_owned(),
            body: body.to_string(),
        }
    }

    /// Records a balance transaction; returns its id.
    fn balance_transaction(
        &mut self,
        amount: i64,
        fee: i64,
        currency: &str,
        kind: &str,
        category: &str,
        source: &str,
    ) -> String {
        let id = self.id("txn");
        let fee_details = if fee == 0 {
            json!([])
        } else {
            json!([{"amount": fee, "application": null, "currency": currency,
                    "description": if category == "dispute" { "Dispute fee" } else { "Stripe processing fees" },
                    "type": "stripe_fee"}])
        };
        self.balance_transaction_index
            .insert(id.clone(), self.balance_transactions.len());
        self.balance_transactions.push(json!({
            "id": id,
            "object": "balance_transaction",
            "amount": amount,
            "available_on": self.now + 7 * 86_400,
            "balance_type": "payments",
            "created": self.now,
            "currency": currency,
            "description": null,
            "exchange_rate": null,
            "fee": fee,
            "fee_details": fee_details,
            "net": amount - fee,
            "reporting_category": category,
            "source": source,
            "status": "pending",
            "type": kind,
        }));
        id
    }

    fn balance_transaction_object(&self, id: &str) -> Value {
        self.balance_transaction_index
            .get(id)
            .map_or(Value::Null, |&i| self.balance_transactions[i].clone())
    }

    fn dispute_mut(&mut self, id: &str) -> &mut Value {
        let index = self.disputes.iter().position(|d| d["id"] == id);
        match index {
            Some(i) => &mut self.disputes[i],
            None => {
                self.disputes.push(Value::Null);
                let last = self.disputes.len() - 1;
                &mut self.disputes[last]
            }
        }
    }

    fn refund(
        &mut self,
        charge: &str,
        amount: i64,
        key: Option<&str>,
        metadata: Value,
    ) -> (Value, Vec<SimEvent>) {
        self.tick();
        let id = self.id("re");
        let object = self.charges.get(charge).cloned().unwrap_or(Value::Null);
        let currency = object["currency"].as_str().unwrap_or("eur").to_owned();
        let txn = self.balance_transaction(-amount, 0, &currency, "refund", "refund", &id);
        let refund = json!({
            "id": id, "object": "refund", "amount": amount, "balance_transaction": txn,
            "charge": charge, "created": self.now, "currency": currency, "customer": null,
            "customer_account": null, "description": null, "destination_details": null,
            "failure_balance_transaction": null, "failure_reason": null,
            "instructions_email": null, "metadata": metadata, "next_action": null,
            "payment_intent": object["payment_intent"], "payment_method": null,
            "pending_reason": null, "presentment_details": null, "reason": "requested_by_customer",
            "receipt_number": null, "source_transfer_reversal": null, "status": "succeeded",
            "transfer_reversal": null,
        });
        self.refunds_by_charge
            .entry(charge.to_owned())
            .or_default()
            .push(self.refunds.len());
        self.refunds.push(refund.clone());
        if let Some(key) = key {
            self.refunds_by_key.insert(key.to_owned(), refund.clone());
        }
        let snapshot = match self.charges.get_mut(charge) {
            Some(c) => {
                let refunded = c["amount_refunded"].as_i64().unwrap_or(0) + amount;
                c["amount_refunded"] = json!(refunded);
                c["refunded"] = json!(refunded >= c["amount"].as_i64().unwrap_or(0));
                c.clone()
            }
            None => Value::Null,
        };
        let events = vec![
            self.event("refund.created", refund.clone()),
            self.event("charge.refunded", snapshot),
        ];
        (refund, events)
    }
}

/// 1.5 % + 0.25, rounded half up: Stripe's standard EEA card price (stripe.md §6.3).
fn standard_fee(amount: i64) -> i64 {
    (amount * 15 + 500) / 1000 + 25
}

fn charge_object(
    id: &str,
    pi: &str,
    gift: &Gift,
    t: i64,
    metadata: &serde_json::Map<String, Value>,
) -> Value {
    json!({
        "id": id, "object": "charge", "amount": gift.amount, "amount_captured": gift.amount,
        "amount_refunded": 0, "application": null, "application_fee": null,
        "application_fee_amount": null, "balance_transaction": null,
        "billing_details": {"address": address(gift), "email": gift.email, "name": gift.name, "phone": null, "tax_id": null},
        "calculated_statement_descriptor": "OBOLE* DON", "captured": true, "created": t,
        "currency": gift.currency, "customer": null, "description": "Don", "disputed": false,
        "failure_balance_transaction": null, "failure_code": null, "failure_message": null,
        "fraud_details": {}, "livemode": false, "metadata": metadata,
        "on_behalf_of": null,
        "outcome": approved_outcome(),
        "paid": true, "payment_intent": pi, "payment_method": format!("pm_{id}"),
        "payment_method_details": {"card": card_details(gift), "type": "card"},
        "radar_options": {}, "receipt_email": gift.email, "receipt_number": null,
        "receipt_url": "https://pay.stripe.com/receipts/payment/sim", "refunded": false,
        "review": null, "shipping": null, "source": null, "source_transfer": null,
        "statement_descriptor": null, "statement_descriptor_suffix": "DON", "status": "succeeded",
        "transfer_data": null, "transfer_group": null,
    })
}

/// The donor's postal address.
fn address(gift: &Gift) -> Value {
    json!({"city": gift.city, "country": gift.country, "line1": gift.address_line1, "line2": null, "postal_code": gift.postal_code, "state": null})
}

/// Radar's verdict on an approved payment.
fn approved_outcome() -> Value {
    json!({"advice_code": null, "network_advice_code": null, "network_decline_code": null,
            "network_status": "approved_by_network", "reason": null, "risk_level": "normal",
            "risk_score": 14, "seller_message": "Payment complete.", "type": "authorized"})
}

/// A card's details as a charge shows them (`payment_method_details.card`).
fn card_details(gift: &Gift) -> Value {
    json!({"amount_authorized": gift.amount, "authorization_code": "123456",
            "brand": "visa", "checks": {"address_line1_check": "pass", "address_postal_code_check": "pass", "cvc_check": "pass"},
            "country": gift.card_country, "exp_month": 11, "exp_year": 2029,
            "extended_authorization": {"status": "disabled"},
            "fingerprint": gift.card_fingerprint, "funding": "debit",
            "incremental_authorization": {"status": "unavailable"}, "installments": null, "last4": "0003",
            "mandate": null, "multicapture": {"status": "unavailable"}, "network": "visa",
            "network_token": {"used": false}, "network_transaction_id": "583123456789012",
            "overcapture": {"maximum_amount_capturable": gift.amount, "status": "unavailable"},
            "regulated_status": "unregulated", "three_d_secure": null, "wallet": null})
}

fn session_object(
    id: &str,
    pi: &str,
    gift: &Gift,
    t: i64,
    metadata: &serde_json::Map<String, Value>,
) -> Value {
    json!({
        "id": id, "object": "checkout.session", "amount_subtotal": gift.amount,
        "amount_total": gift.amount, "billing_address_collection": "required",
        "client_reference_id": metadata.get("donation_id"), "created": t, "currency": gift.currency,
        "custom_fields": [
            {"key": "occupation", "label": {"custom": "Profession", "type": "custom"}, "optional": false,
             "text": {"default_value": null, "maximum_length": 100, "minimum_length": null, "value": "Enseignante"}, "type": "text"},
            {"key": "eligibility", "label": {"custom": "Je certifie etre de nationalite francaise ou resident en France", "type": "custom"},
             "optional": false, "dropdown": {"default_value": null, "options": [{"label": "Oui, je le certifie", "value": "yes"}], "value": "yes"},
             "type": "dropdown"}],
        "customer": null,
        "customer_details": {"address": address(gift),
            "email": gift.email, "name": gift.name, "phone": null, "tax_exempt": "none", "tax_ids": []},
        "livemode": false, "locale": "fr", "metadata": metadata, "mode": "payment",
        "payment_intent": pi, "payment_status": "paid", "status": "complete",
        "submit_type": "donate", "ui_mode": "hosted_page", "url": null,
    })
}

fn payment_intent_object(
    id: &str,
    charge: &str,
    gift: &Gift,
    t: i64,
    metadata: &serde_json::Map<String, Value>,
) -> Value {
    json!({
        "id": id, "object": "payment_intent", "amount": gift.amount, "amount_received": gift.amount,
        "capture_method": "automatic_async", "created": t, "currency": gift.currency,
        "latest_charge": charge, "livemode": false, "metadata": metadata,
        "payment_method_types": ["card"], "status": "succeeded",
    })
}

fn dispute_object(
    id: &str,
    charge: &str,
    pi: &Value,
    amount: i64,
    currency: &str,
    t: i64,
    txns: Vec<Value>,
) -> Value {
    json!({
        "id": id, "object": "dispute", "amount": amount, "balance_transactions": txns,
        "charge": charge, "created": t, "currency": currency, "enhanced_eligibility_types": [],
        "evidence": {"access_activity_log": null, "billing_address": null, "cancellation_policy": null,
            "cancellation_policy_disclosure": null, "cancellation_rebuttal": null, "customer_communication": null,
            "customer_email_address": null, "customer_name": null, "customer_purchase_ip": null,
            "customer_signature": null, "duplicate_charge_documentation": null, "duplicate_charge_explanation": null,
            "duplicate_charge_id": null, "enhanced_evidence": {}, "product_description": null, "receipt": null,
            "refund_policy": null, "refund_policy_disclosure": null, "refund_refusal_explanation": null,
            "service_date": null, "service_documentation": null, "shipping_address": null, "shipping_carrier": null,
            "shipping_date": null, "shipping_documentation": null, "shipping_tracking_number": null,
            "uncategorized_file": null, "uncategorized_text": null},
        "evidence_details": {"due_by": t + 14 * 86_400, "enhanced_eligibility": {}, "has_evidence": false,
            "past_due": false, "submission_count": 0},
        "is_charge_refundable": false, "livemode": false, "metadata": {}, "network_reason_code": "10.4",
        "payment_intent": pi,
        "payment_method_details": {"card": {"brand": "visa", "case_type": "chargeback", "network": "visa",
            "network_reason_code": "10.4"}, "type": "card"},
        "reason": "fraudulent", "status": "needs_response",
    })
}

fn payout_object(id: &str, amount: i64, currency: &str, t: i64, txn: &str) -> Value {
    json!({
        "id": id, "object": "payout", "amount": amount, "application_fee": null,
        "application_fee_amount": null, "arrival_date": t + 2 * 86_400, "automatic": true,
        "balance_transaction": txn, "created": t, "currency": currency, "description": "STRIPE PAYOUT",
        "destination": "ba_Sim", "failure_balance_transaction": null, "failure_code": null,
        "failure_message": null, "livemode": false, "metadata": {}, "method": "standard",
        "original_payout": null, "payout_method": null, "reconciliation_status": "completed",
        "reversed_by": null, "source_type": "card", "statement_descriptor": null, "status": "paid",
        "trace_id": {"status": "supported", "value": "SIMTRACE"}, "type": "bank_account",
    })
}

// ---- the HTTP API ----

type Sim = State<Arc<StripeSim>>;

/// Records the request, waits the configured latency, and checks the API key.
async fn admit(
    sim: &StripeSim,
    method: &'static str,
    path: String,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (latency, fault) = {
        let mut a = sim.lock();
        a.seen.push(SeenRequest {
            method,
            path,
            idempotency_key,
        });
        (a.latency, a.faults.pop_front())
    };
    let latency = match fault {
        Some(ApiFault::Error) => {
            return Err(stripe_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "An unknown error occurred on Stripe's end.",
            ))
        }
        Some(ApiFault::Slow(slow)) => latency + slow,
        None => latency,
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer sk_test_") || v.starts_with("Bearer rk_test_"));
    if authorized {
        Ok(())
    } else {
        Err(stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided.",
        ))
    }
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

fn not_found(what: &str, id: &str) -> Response {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        &format!("No such {what}: '{id}'"),
    )
}

/// Stripe's list envelope over `items` in creation order: newest first, paginated.
fn list(url: &str, items: Vec<Value>, query: &HashMap<String, String>) -> Response {
    let mut items: Vec<Value> = items.into_iter().rev().collect();
    if let Some(after) = query.get("starting_after") {
        if let Some(i) = items.iter().position(|v| v["id"] == after.as_str()) {
            items.drain(..=i);
        }
    }
    let limit = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10usize)
        .clamp(1, 100);
    let has_more = items.len() > limit;
    items.truncate(limit);
    Json(json!({"object": "list", "data": items, "has_more": has_more, "url": url})).into_response()
}

async fn retrieve_charge(
    State(sim): Sim,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = admit(&sim, "GET", format!("/v1/charges/{id}"), &headers).await {
        return e;
    }
    let a = sim.lock();
    let Some(mut charge) = a.charges.get(&id).cloned() else {
        return not_found("charge", &id);
    };
    // `expand[0]=balance_transaction` (or `expand[]=…`): the object in place of its id.
    let expand = q
        .iter()
        .any(|(k, v)| k.starts_with("expand") && v == "balance_transaction");
    if let (true, Some(txn)) = (expand, charge["balance_transaction"].as_str()) {
        charge["balance_transaction"] = a.balance_transaction_object(txn);
    }
    Json(charge).into_response()
}

async fn list_charges(
    State(sim): Sim,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = admit(&sim, "GET", "/v1/charges".into(), &headers).await {
        return e;
    }
    let a = sim.lock();
    let items = match q.get("payment_intent") {
        Some(pi) => a
            .charges_by_payment_intent
            .get(pi)
            .into_iter()
            .flatten()
            .filter_map(|id| a.charges.get(id).cloned())
            .collect(),
        None => a.charges.values().cloned().collect(),
    };
    drop(a);
    list("/v1/charges", items, &q)
}

async fn retrieve_balance_transaction(
    State(sim): Sim,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = admit(
        &sim,
        "GET",
        format!("/v1/balance_transactions/{id}"),
        &headers,
    )
    .await
    {
        return e;
    }
    match sim.lock().balance_transaction_object(&id) {
        Value::Null => not_found("balance transaction", &id),
        t => Json(t).into_response(),
    }
}

async fn list_balance_transactions(
    State(sim): Sim,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = admit(&sim, "GET", "/v1/balance_transactions".into(), &headers).await {
        return e;
    }
    let a = sim.lock();
    let since = q.get("created[gte]").and_then(|s| s.parse::<i64>().ok());
    let included: Option<Vec<Value>> = q.get("payout").map(|po| {
        a.payout_includes
            .get(po)
            .into_iter()
            .flatten()
            .map(|id| a.balance_transaction_object(id))
            .collect()
    });
    let items = match included {
        Some(items) => items,
        None => a
            .balance_transactions
            .iter()
            .filter(|t| since.is_none_or(|s| t["created"].as_i64().unwrap_or(0) >= s))
            .cloned()
            .collect(),
    };
    drop(a);
    list("/v1/balance_transactions", items, &q)
}

async fn list_refunds(
    State(sim): Sim,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_of_charge(
        &sim,
        "/v1/refunds",
        |a, charge| match charge {
            Some(charge) => a
                .refunds_by_charge
                .get(charge)
                .into_iter()
                .flatten()
                .map(|&i| a.refunds[i].clone())
                .collect(),
            None => a.refunds.clone(),
        },
        &q,
        &headers,
    )
    .await
}

/// A list of objects that name their charge: `objects` gives those of the `?charge=` asked
/// for, or all of them, in creation order.
async fn list_of_charge(
    sim: &Arc<StripeSim>,
    path: &str,
    objects: impl Fn(&Account, Option<&str>) -> Vec<Value>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    if let Err(e) = admit(sim, "GET", path.into(), headers).await {
        return e;
    }
    let items = objects(&sim.lock(), q.get("charge").map(String::as_str));
    list(path, items, q)
}

async fn create_refund(
    State(sim): Sim,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(e) = admit(&sim, "POST", "/v1/refunds".into(), &headers).await {
        return e;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(charge) = form.get("charge") else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: charge.",
        );
    };
    let mut a = sim.lock();
    if a.failing_refunds > 0 {
        a.failing_refunds -= 1;
        return stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "An unknown error occurred on Stripe's end.",
        );
    }
    if let Some(existing) = key.as_ref().and_then(|k| a.refunds_by_key.get(k)) {
        return Json(existing.clone()).into_response();
    }
    let Some(object) = a.charges.get(charge).cloned() else {
        return not_found("charge", charge);
    };
    let refundable =
        object["amount"].as_i64().unwrap_or(0) - object["amount_refunded"].as_i64().unwrap_or(0);
    let amount = form
        .get("amount")
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(refundable);
    if amount <= 0 || amount > refundable {
        return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error",
            &format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})"));
    }
    // Stripe's form encoding of a map: metadata[key]=value.
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((key.to_owned(), Value::String(v.clone())))
        })
        .collect();
    let (refund, events) = a.refund(charge, amount, key.as_deref(), Value::Object(metadata));
    a.outbox.extend(events);
    Json(refund).into_response()
}

async fn list_disputes(
    State(sim): Sim,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    // Few disputes: a scan does.
    list_of_charge(
        &sim,
        "/v1/disputes",
        |a, charge| {
            a.disputes
                .iter()
                .filter(|d| charge.is_none_or(|c| d["charge"] == c))
                .cloned()
                .collect()
        },
        &q,
        &headers,
    )
    .await
}

async fn retrieve_payout(State(sim): Sim, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(e) = admit(&sim, "GET", format!("/v1/payouts/{id}"), &headers).await {
        return e;
    }
    match sim.lock().payouts.get(&id) {
        Some(p) => Json(p.clone()).into_response(),
        None => not_found("payout", &id),
    }
}
