//! The donor's checkout: the form a campaign's rule pack asks for (`form`), its words in
//! French and English (`text`), the guards against forgery and card testing (`guard`), and
//! the flow that turns a valid form into held room and a hosted payment page ([`Checkout`]).
//!
//! Invariants:
//! - Nothing is paid before it is screened: the gift is screened against the person's
//!   ledger history and their other open checkouts, under the person's lock
//!   (`enforcement::checkout::reserve`), and only a reservation opens a provider session.
//! - A reservation has at most one provider session, opened with an idempotency key naming
//!   the reservation, and naming the campaign, the donor and the reservation in the
//!   metadata of the session and of its payment intent; a session that cannot be opened
//!   gives its room back at once.
//! - Cancelling (the donor's "back" link, signed) and expiry (the provider's
//!   `checkout.session.expired`) give the room back; a payment consumes it. The posting of
//!   the payment stays the authoritative check either way.

pub mod form;
pub mod guard;
pub mod text;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::compliance::screen::Method;
use crate::compliance::Packs;
use crate::enforcement::checkout::{reserve, CheckoutVerdict, GiftRequest, DEFAULT_HOLD};
use crate::enforcement::new_donor;
use crate::intake::identity_key;
use crate::money::Money;
use crate::provider::stripe::client::{ApiError, StripeClient};
use crate::provider::stripe::objects::NewCheckoutSession;
use crate::store::{CheckoutKey, Store, StoreError};

use form::{FormSpec, ValidGift};
use guard::{CheckoutLimits, FormKey, RateLimiter};
use text::Lang;

/// The French tax reduction on a gift to a candidate or a party (CGI art. 200): 66 %.
pub const FRENCH_TAX_REDUCTION: Decimal = Decimal::from_parts(66, 0, 0, false, 2);

/// What the donor is told after sending a valid form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Go and pay there (a 303 to the provider's page).
    Pay { url: String },
    /// The gift would break a rule; `room` is what the donor may still give under a cap.
    Refused { reason: String, room: Option<Money> },
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("no payment provider is configured (STRIPE_SECRET_KEY, or `serve --demo`)")]
    NoProvider,
    #[error("the payment provider: {0}")]
    Provider(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A donor's gift as the thanks page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub amount: Money,
    /// When the donor started the checkout (the payment follows within the hold).
    pub at: DateTime<Utc>,
    pub reference: String,
    /// The gift is in the books.
    pub recorded: bool,
    /// France: the number of the fiscal receipt the financial agent will issue.
    pub receipt_number: Option<String>,
    /// France: what the gift costs the donor after the 66 % tax reduction.
    pub cost_after_tax: Option<Money>,
}

/// The number of the French fiscal receipt for a gift: the campaign and the gift's
/// contribution, so a number is issued once per gift and never reused.
pub fn receipt_number(campaign: &Campaign, contribution_id: i64) -> String {
    format!(
        "{}-{contribution_id:07}",
        campaign.slug.as_str().to_uppercase()
    )
}

/// Whether gifts to this campaign earn the French tax reduction (and a numbered receipt).
pub fn french_receipts(spec: &FormSpec) -> bool {
    spec.nationality_or_residence.as_deref() == Some("FR")
}

/// The checkout service the donor pages call.
pub struct Checkout {
    store: Store,
    clock: Arc<dyn Clock>,
    packs: Arc<Packs>,
    provider: Option<StripeClient>,
    /// Where donors reach this server (for the provider's return links).
    public_url: String,
    pub key: FormKey,
    per_client: RateLimiter,
    per_donor: RateLimiter,
    hold: Duration,
}

impl Checkout {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        packs: Arc<Packs>,
        provider: Option<StripeClient>,
        public_url: &str,
        key: FormKey,
        limits: CheckoutLimits,
    ) -> Checkout {
        Checkout {
            store,
            clock,
            packs,
            provider,
            public_url: public_url.trim_end_matches('/').to_owned(),
            key,
            per_client: RateLimiter::new(limits.per_client),
            per_donor: RateLimiter::new(limits.per_donor),
            hold: DEFAULT_HOLD,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The form for `campaign` today.
    pub fn spec(&self, campaign: &Campaign) -> Option<FormSpec> {
        let pack = self.packs.get(&campaign.rule_pack)?;
        let today = self.now().with_timezone(&campaign.timezone).date_naive();
        Some(FormSpec::for_pack(pack, today))
    }

    /// Counts a checkout attempt of `client` (its address) for `donor` (an email); false
    /// when either is over its limit.
    pub fn admit(&self, client: &str, donor: &str) -> bool {
        let now = self.now();
        // Both are counted, so a bot rotating emails is still held by its address.
        let client_ok = self.per_client.allow(client, now);
        let donor_ok = self.per_donor.allow(&donor.to_lowercase(), now);
        client_ok && donor_ok
    }

    /// Screens the gift and, if it may go ahead, holds its room and opens the provider's
    /// payment page.
    pub async fn start(
        &self,
        campaign: &Campaign,
        gift: ValidGift,
        lang: Lang,
    ) -> Result<Started, CheckoutError> {
        let provider = self.provider.as_ref().ok_or(CheckoutError::NoProvider)?;
        let pack = self.packs.get(&campaign.rule_pack).ok_or_else(|| {
            StoreError::Corrupt(format!("rule pack {} is not loaded", campaign.rule_pack))
        })?;
        let now = self.now();
        let donor = new_donor(identity_key(&gift.payer, "checkout"), &gift.payer);
        let request = GiftRequest {
            campaign,
            pack,
            donor,
            amount: gift.amount,
            method: Method::Card,
            declaration: gift.declaration.clone(),
            hold_for: self.hold,
        };
        let (verdict, _) = reserve(&self.store, &request, now).await?;
        let (reservation, expires_at) = match verdict {
            CheckoutVerdict::Refused { reason, rule, room } => {
                let check = rule
                    .and_then(|id| pack.rules.iter().find(|r| r.id == id))
                    .map(|r| &r.check);
                let reason = text::refusal(lang, check).map_or(reason, str::to_owned);
                return Ok(Started::Refused { reason, room });
            }
            CheckoutVerdict::Reserved {
                reservation_id,
                expires_at,
                ..
            } => (reservation_id, expires_at),
        };
        let slug = campaign.slug.as_str();
        let id = reservation.to_string();
        let donor = self
            .store
            .checkout(CheckoutKey::Reservation(reservation))
            .await?
            .map(|c| c.donor_id.to_string())
            .unwrap_or_default();
        let signature = self.key.sign(&["cancel", slug, &id]);
        let session = NewCheckoutSession {
            amount: gift.amount.minor(),
            currency: campaign.currency.to_string().to_lowercase(),
            description: format!("{} {}", lang.words().gift, campaign.name),
            metadata: [
                ("campaign".to_owned(), slug.to_owned()),
                ("donor".to_owned(), donor),
                ("reservation".to_owned(), id.clone()),
            ]
            .into(),
            client_reference: format!("reservation-{id}"),
            customer_email: gift.payer.email.clone(),
            locale: lang.code().to_owned(),
            expires_at: expires_at.timestamp(),
            success_url: format!(
                "{}/donate/{slug}/thanks?session_id={{CHECKOUT_SESSION_ID}}&lang={}",
                self.public_url,
                lang.code()
            ),
            cancel_url: format!(
                "{}/donate/{slug}/cancel?reservation={id}&signature={signature}&lang={}",
                self.public_url,
                lang.code()
            ),
            idempotency_key: format!("obole-checkout-{id}"),
        };
        let opened = match provider.create_checkout_session(&session).await {
            Ok(opened) => opened,
            Err(error) => {
                // Nothing can pay this reservation: its room goes back now, not in an hour.
                self.store.release_reservation(reservation, now).await?;
                return Err(error.into());
            }
        };
        self.store
            .attach_checkout_session(reservation, &opened.id)
            .await?;
        let url = opened.url.ok_or_else(|| {
            ApiError::Stripe(format!("session {} came back without a URL", opened.id))
        })?;
        Ok(Started::Pay { url })
    }

    /// The donor came back without paying: the room goes back and the provider's session
    /// is closed, so it cannot be paid later. `None` if the link is forged or names no
    /// checkout of the campaign; `Some(false)` if the checkout had already ended.
    pub async fn cancel(
        &self,
        campaign: &Campaign,
        reservation: i64,
        signature: &str,
    ) -> Result<Option<bool>, CheckoutError> {
        let id = reservation.to_string();
        if !self
            .key
            .verify(&["cancel", campaign.slug.as_str(), &id], signature)
        {
            return Ok(None);
        }
        let Some(checkout) = self
            .store
            .checkout(CheckoutKey::Reservation(reservation))
            .await?
            .filter(|c| c.campaign_id == campaign.id)
        else {
            return Ok(None);
        };
        if let (Some(session), Some(provider)) = (&checkout.checkout_session_id, &self.provider) {
            if checkout.contribution_id.is_none() {
                // Already paid, expired or closed is fine: the release below is what counts.
                if let Err(error) = provider.expire_checkout_session(session).await {
                    tracing::info!(session, %error, "checkout session not expired on cancel");
                }
            }
        }
        Ok(Some(
            self.store
                .release_reservation(reservation, self.now())
                .await?,
        ))
    }

    /// The thanks page's facts for the provider session `session` of `campaign`.
    pub async fn receipt(
        &self,
        campaign: &Campaign,
        session: &str,
    ) -> Result<Option<Receipt>, StoreError> {
        let Some(checkout) = self
            .store
            .checkout(CheckoutKey::Session(session))
            .await?
            .filter(|c| c.campaign_id == campaign.id)
        else {
            return Ok(None);
        };
        let french = self
            .spec(campaign)
            .is_some_and(|spec| french_receipts(&spec));
        let cost_after_tax = if french {
            let reduction = checkout
                .amount
                .percentage(FRENCH_TAX_REDUCTION)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Some(
                checkout
                    .amount
                    .checked_sub(reduction)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Some(Receipt {
            amount: checkout.amount,
            at: checkout.created_at,
            reference: format!("R{}", checkout.reservation_id),
            recorded: checkout.contribution_id.is_some(),
            receipt_number: checkout
                .contribution_id
                .filter(|_| french)
                .map(|id| receipt_number(campaign, id)),
            cost_after_tax,
        }))
    }
}
