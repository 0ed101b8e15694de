//! Stripe's API, through `async-stripe`'s requests and types (pinned exactly; see stripe.md
//! §3) sent on Obole's pooled [`super::transport`], reduced to the calls Obole makes and
//! mapped into [`super::objects`].
//!
//! Invariants:
//! - Every call has a timeout; the base URL comes from the settings (`STRIPE_API_BASE`), so
//!   tests and the offline simulator serve the same API on localhost.
//! - Every POST carries its own idempotency key, derived by the caller from what it is about
//!   (never a client-wide key: async-stripe would reuse it for unrelated requests).
//! - Calls are paced at `StripeSettings::api_rate` per second across every clone of a
//!   client, so a burst of webhooks becomes a queue here rather than 429s from Stripe.
//! - Nothing here decides what to post: it reads Stripe's state, refunds what the caller
//!   names, and opens or closes the Checkout sessions the checkout asks for.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ExpireCheckoutSession, ProductData,
};
use stripe_core::balance_transaction::{ListBalanceTransaction, RetrieveBalanceTransaction};
use stripe_core::charge::{ListCharge, RetrieveCharge};
use stripe_core::dispute::ListDispute;
use stripe_core::payout::RetrievePayout;
use stripe_core::refund::{CreateRefund, ListRefund};
use stripe_shared::{
    CheckoutSessionBillingAddressCollection, CheckoutSessionLocale, CheckoutSessionMode,
    CheckoutSessionSubmitType,
};
use stripe_types::{RangeBoundsTs, RangeQueryTs};

use super::objects::{
    Address, BalanceTransaction, Charge, ChargeStatus, CheckoutSession, Dispute,
    NewCheckoutSession, Payer, Payout, Refund,
};
use super::transport::Transport;
use super::StripeSettings;

/// How long one API call may take before it counts as failed (and is retried later).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Stripe's largest page.
const PAGE: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no Stripe secret key is configured (STRIPE_SECRET_KEY)")]
    NoSecretKey,
    #[error("Stripe API: {0}")]
    Stripe(String),
    #[error("Stripe API: {0}")]
    Client(#[from] stripe::StripeError),
    #[error("idempotency key {0:?} is not 1–255 characters")]
    BadIdempotencyKey(String),
}

/// A Stripe API client for one account.
#[derive(Clone)]
pub struct StripeClient {
    client: Transport,
    /// `None`: calls are not paced.
    pacer: Option<Arc<Pacer>>,
}

/// Hands out call slots `interval` apart, in the order callers ask.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let slot = {
            // Only plain data behind the lock: a panic elsewhere cannot leave it inconsistent.
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

impl StripeClient {
    pub fn new(settings: &StripeSettings) -> Result<StripeClient, ApiError> {
        let key = settings.secret_key().ok_or(ApiError::NoSecretKey)?;
        let client = Transport::new(key, &settings.api_base, settings.request_timeout)?;
        let pacer = (settings.api_rate > 0).then(|| {
            Arc::new(Pacer {
                interval: Duration::from_secs(1) / settings.api_rate,
                next: Mutex::new(Instant::now()),
            })
        });
        Ok(StripeClient { client, pacer })
    }

    /// Waits for this call's slot under the rate limit.
    async fn pace(&self) {
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
    }

    pub async fn charge(&self, id: &str) -> Result<Charge, ApiError> {
        self.pace().await;
        // The payment's balance transaction comes expanded: its fee without a second call,
        // which matters under Stripe's rate limits.
        let charge = RetrieveCharge::new(id)
            .expand(vec!["balance_transaction".to_owned()])
            .send(&self.client)
            .await?;
        Ok(charge_from(charge))
    }

    /// The charges of a payment intent, newest first.
    pub async fn charges_of_payment_intent(&self, id: &str) -> Result<Vec<Charge>, ApiError> {
        self.pace().await;
        let list = ListCharge::new()
            .payment_intent(id)
            .limit(PAGE)
            .send(&self.client)
            .await?;
        Ok(list.data.into_iter().map(charge_from).collect())
    }

    pub async fn balance_transaction(&self, id: &str) -> Result<BalanceTransaction, ApiError> {
        self.pace().await;
        let txn = RetrieveBalanceTransaction::new(id)
            .send(&self.client)
            .await?;
        Ok(balance_transaction_from(txn))
    }

    pub async fn refunds_of_charge(&self, charge: &str) -> Result<Vec<Refund>, ApiError> {
        let mut refunds = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = ListRefund::new().charge(charge).limit(PAGE);
            if let Some(after) = &after {
                request = request.starting_after(after.clone());
            }
            self.pace().await;
            let page = request.send(&self.client).await?;
            after = page.data.last().map(|r| r.id.to_string());
            refunds.extend(page.data.into_iter().map(|r| {
                Refund {
                    id: r.id.to_string(),
                    charge: r.charge.map(|c| c.id().to_string()),
                    status: r.status.unwrap_or_default(),
                    balance_transaction: r.balance_transaction.map(|t| t.id().to_string()),
                    failure_balance_transaction: r
                        .failure_balance_transaction
                        .map(|t| t.id().to_string()),
                    metadata: r
                        .metadata
                        .map(|m| m.into_iter().collect())
                        .unwrap_or_default(),
                }
            }));
            if !page.has_more || after.is_none() {
                return Ok(refunds);
            }
        }
    }

    pub async fn disputes_of_charge(&self, charge: &str) -> Result<Vec<Dispute>, ApiError> {
        self.pace().await;
        let list = ListDispute::new()
            .charge(charge)
            .limit(PAGE)
            .send(&self.client)
            .await?;
        Ok(list
            .data
            .into_iter()
            .map(|d| Dispute {
                id: d.id.to_string(),
                charge: d.charge.id().to_string(),
                status: d.status.as_str().to_owned(),
                balance_transactions: d
                    .balance_transactions
                    .into_iter()
                    .map(balance_transaction_from)
                    .collect(),
            })
            .collect())
    }

    pub async fn payout(&self, id: &str) -> Result<Payout, ApiError> {
        self.pace().await;
        let p = RetrievePayout::new(id).send(&self.client).await?;
        Ok(Payout {
            id: p.id.to_string(),
            amount: p.amount,
            currency: p.currency.to_string(),
            status: p.status,
            arrival_date: p.arrival_date,
            balance_transaction: p.balance_transaction.map(|t| t.id().to_string()),
            failure_balance_transaction: p.failure_balance_transaction.map(|t| t.id().to_string()),
        })
    }

    /// Every balance transaction created at or after `since` (Unix seconds), or, with
    /// `payout`, every one that payout paid out; in Stripe's order (newest first).
    pub async fn balance_transactions(
        &self,
        since: Option<i64>,
        payout: Option<&str>,
    ) -> Result<Vec<BalanceTransaction>, ApiError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = ListBalanceTransaction::new().limit(PAGE);
            if let Some(since) = since {
                request = request.created(RangeQueryTs::Bounds(RangeBoundsTs {
                    gte: Some(since),
                    ..RangeBoundsTs::default()
                }));
            }
            if let Some(payout) = payout {
                request = request.payout(payout);
            }
            if let Some(after) = &after {
                request = request.starting_after(after.clone());
            }
            self.pace().await;
            let page = request.send(&self.client).await?;
            after = page.data.last().map(|t| t.id.to_string());
            all.extend(page.data.into_iter().map(balance_transaction_from));
            if !page.has_more || after.is_none() {
                return Ok(all);
            }
        }
    }

    /// Refunds `amount` of `charge`, with `metadata` on the refund. `idempotency_key` names
    /// this refund for good: the same key sent again returns the first refund instead of
    /// refunding twice.
    pub async fn create_refund(
        &self,
        charge: &str,
        amount: i64,
        idempotency_key: &str,
        metadata: &[(&str, &str)],
    ) -> Result<Refund, ApiError> {
        let key = IdempotencyKey::new(idempotency_key)
            .map_err(|_| ApiError::BadIdempotencyKey(idempotency_key.to_owned()))?;
        self.pace().await;
        let r = CreateRefund::new()
            .charge(charge)
            .amount(amount)
            .metadata(
                metadata
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<std::collections::HashMap<String, String>>(),
            )
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await?;
        Ok(Refund {
            id: r.id.to_string(),
            charge: r.charge.map(|c| c.id().to_string()),
            status: r.status.unwrap_or_default(),
            balance_transaction: r.balance_transaction.map(|t| t.id().to_string()),
            failure_balance_transaction: r.failure_balance_transaction.map(|t| t.id().to_string()),
            metadata: r
                .metadata
                .map(|m| m.into_iter().collect())
                .unwrap_or_default(),
        })
    }
}

impl StripeClient {
    /// Opens a hosted Checkout session for one donation: `mode=payment`, `submit_type=donate`,
    /// the billing address required, and the metadata on the session *and* on its payment
    /// intent (Stripe copies neither to the other, nor to the charge).
    pub async fn create_checkout_session(
        &self,
        session: &NewCheckoutSession,
    ) -> Result<CheckoutSession, ApiError> {
        let key = IdempotencyKey::new(session.idempotency_key.as_str())
            .map_err(|_| ApiError::BadIdempotencyKey(session.idempotency_key.clone()))?;
        let currency = stripe_types::Currency::from_str(&session.currency)
            .map_err(|_| ApiError::Stripe(format!("currency {:?}", session.currency)))?;
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
        price.unit_amount = Some(session.amount);
        price.product_data = Some(ProductData::new(session.description.as_str()));
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price_data = Some(price);
        item.quantity = Some(1);
        let metadata: HashMap<String, String> = session.metadata.clone().into_iter().collect();
        let mut intent = CreateCheckoutSessionPaymentIntentData::new();
        intent.metadata = Some(metadata.clone());
        intent.description = Some(session.description.clone());
        let locale = match session.locale.as_str() {
            "fr" => CheckoutSessionLocale::Fr,
            _ => CheckoutSessionLocale::En,
        };
        let mut request = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .submit_type(CheckoutSessionSubmitType::Donate)
            .billing_address_collection(CheckoutSessionBillingAddressCollection::Required)
            .line_items(vec![item])
            .metadata(metadata)
            .payment_intent_data(intent)
            .client_reference_id(session.client_reference.as_str())
            .locale(locale)
            .expires_at(session.expires_at)
            .success_url(session.success_url.as_str())
            .cancel_url(session.cancel_url.as_str());
        if let Some(email) = &session.customer_email {
            request = request.customer_email(email.as_str());
        }
        self.pace().await;
        let created = request
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await?;
        Ok(CheckoutSession {
            id: created.id.to_string(),
            url: created.url,
        })
    }

    /// Expires an open Checkout session, so it can no longer be paid. One already complete
    /// or expired is Stripe's error, which the caller may ignore.
    pub async fn expire_checkout_session(&self, id: &str) -> Result<(), ApiError> {
        self.pace().await;
        ExpireCheckoutSession::new(id).send(&self.client).await?;
        Ok(())
    }
}

fn balance_transaction_from(t: stripe_shared::BalanceTransaction) -> BalanceTransaction {
    BalanceTransaction {
        id: t.id.to_string(),
        amount: t.amount,
        fee: t.fee,
        net: t.net,
        currency: t.currency.to_string(),
        created: t.created,
        reporting_category: t.reporting_category,
        kind: t.type_.as_str().to_owned(),
        source: t.source.map(|s| s.id().to_string()),
    }
}

fn charge_from(c: stripe_shared::Charge) -> Charge {
    let card = c
        .payment_method_details
        .and_then(|details| details.card)
        .map(|card| (card.country, card.fingerprint, card.brand, card.funding));
    let (card_country, card_fingerprint, card_brand, card_funding) =
        card.unwrap_or((None, None, None, None));
    let address = c.billing_details.address.map(|a| Address {
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        postal_code: a.postal_code,
        state: a.state,
        country: a.country,
    });
    Charge {
        id: c.id.to_string(),
        status: match c.status {
            stripe_shared::ChargeStatus::Succeeded => ChargeStatus::Succeeded,
            stripe_shared::ChargeStatus::Pending => ChargeStatus::Pending,
            _ => ChargeStatus::Failed,
        },
        amount: c.amount,
        currency: c.currency.to_string(),
        created: c.created,
        payment_intent: c.payment_intent.map(|p| p.id().to_string()),
        balance_transaction: c.balance_transaction.as_ref().map(|t| t.id().to_string()),
        payment_transaction: c
            .balance_transaction
            .and_then(|t| t.into_object())
            .map(balance_transaction_from),
        amount_refunded: c.amount_refunded,
        disputed: c.disputed,
        metadata: c.metadata.into_iter().collect(),
        payer: Payer {
            name: c.billing_details.name,
            email: c.billing_details.email,
            address: address.unwrap_or_default(),
            card_country,
            card_fingerprint,
            card_brand,
            card_funding,
        },
    }
}
