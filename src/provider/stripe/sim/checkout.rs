//! Hosted Checkout in the simulated account: sessions opened through the API (`POST
//! /v1/checkout/sessions`, as Obole's checkout opens them), paid with a test card
//! ([`StripeSim::pay`]), or expired (the API's `expire`, or [`StripeSim::expire_due`]), each
//! with the events Stripe sends.
//!
//! Invariants:
//! - A session is paid at most once, and only while open; an expired session cannot be paid.
//! - Test cards behave as in Stripe's test mode: `4242 4242 4242 4242` (US) and
//!   `4000 0025 0000 0003` (FR) succeed; `4000 0000 0000 0002` is declined, `…9995` lacks
//!   funds, `…0069` is expired, `…0127` fails the CVC check; a number failing the Luhn check
//!   is invalid. A declined card leaves the session open, as on Stripe.
//! - A retried create with the same idempotency key returns the same session.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::{DateTime, Datelike};
use serde_json::{json, Value};

use super::{address, admit, not_found, stripe_error, Account, Donation, Gift, Sim};
use super::{SimEvent, StripeSim};

/// A session as the simulated account keeps it.
pub(super) struct SimSession {
    /// The object the API answers, kept current.
    pub object: Value,
    /// `payment_intent_data[metadata]`, set on the payment intent and its charge.
    pub intent_metadata: Vec<(String, String)>,
}

/// What the hosted payment page shows of an open session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// Lower-case ISO code.
    pub currency: String,
    pub description: String,
    pub customer_email: Option<String>,
    pub locale: String,
    /// `open`, `complete` or `expired`.
    pub status: String,
    pub success_url: String,
    pub cancel_url: Option<String>,
}

/// A card and its billing details, as the donor types them on the hosted page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardPayment {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub cvc: String,
    pub name: String,
    pub email: String,
    pub address_line1: String,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// Why a payment did not go through; the messages are Stripe's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Decline {
    #[error("Your card number is invalid.")]
    InvalidNumber,
    #[error("Your card was declined.")]
    Declined,
    #[error("Your card has insufficient funds.")]
    InsufficientFunds,
    #[error("Your card has expired.")]
    ExpiredCard,
    #[error("Your card's security code is incorrect.")]
    IncorrectCvc,
    #[error("This Checkout Session is no longer available (it is {0}).")]
    NotOpen(String),
    #[error("No such Checkout Session.")]
    NoSuchSession,
}

/// Cards whose number starts so are French (Stripe's test card 4000 0025 0000 0003 and, in
/// the simulator, any other valid number under the same prefix).
pub const FRENCH_CARD_PREFIX: &str = "4000002500";

/// Stripe's fingerprint of a card number: the same number always gives the same one, and
/// different numbers different ones.
pub fn card_fingerprint(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let hash = digits.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    });
    format!("fp_{hash:016x}")
}

/// A test card's issuing country, or why it does not pay.
fn card_outcome(card: &CardPayment, now: i64) -> Result<&'static str, Decline> {
    let digits: String = card.number.chars().filter(|c| !c.is_whitespace()).collect();
    if !(12..=19).contains(&digits.len()) || !luhn(&digits) {
        return Err(Decline::InvalidNumber);
    }
    let today = DateTime::from_timestamp(now, 0).unwrap_or_default();
    let expiry = i64::from(card.exp_year) * 12 + i64::from(card.exp_month);
    let this_month = i64::from(today.year()) * 12 + i64::from(today.month());
    if !(1..=12).contains(&card.exp_month) || expiry < this_month {
        return Err(Decline::ExpiredCard);
    }
    if !(3..=4).contains(&card.cvc.len()) || !card.cvc.chars().all(|c| c.is_ascii_digit()) {
        return Err(Decline::IncorrectCvc);
    }
    match digits.as_str() {
        "4000000000000002" => Err(Decline::Declined),
        "4000000000009995" => Err(Decline::InsufficientFunds),
        "4000000000000069" => Err(Decline::ExpiredCard),
        "4000000000000127" => Err(Decline::IncorrectCvc),
        // Stripe's French test card; the simulator also takes its prefix for more French
        // cards, each with its own fingerprint.
        d if d.starts_with(FRENCH_CARD_PREFIX) => Ok("FR"),
        _ => Ok("US"),
    }
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

impl StripeSim {
    /// A session opened through the API.
    pub fn session(&self, id: &str) -> Option<OpenSession> {
        let a = self.lock();
        let o = &a.sessions.get(id)?.object;
        let text = |key: &str| o[key].as_str().map(str::to_owned);
        Some(OpenSession {
            id: id.to_owned(),
            amount: o["amount_total"].as_i64().unwrap_or(0),
            currency: text("currency").unwrap_or_default(),
            description: o["_description"].as_str().unwrap_or("Donation").to_owned(),
            customer_email: text("customer_email"),
            locale: text("locale").unwrap_or_else(|| "auto".into()),
            status: text("status").unwrap_or_default(),
            success_url: text("success_url").unwrap_or_default(),
            cancel_url: text("cancel_url"),
        })
    }

    /// The donor pays session `id` with `card`: the charge, its balance transaction and the
    /// events, as [`StripeSim::donate`] makes them, under the session's metadata.
    pub fn pay(&self, id: &str, card: &CardPayment) -> Result<Donation, Decline> {
        let gift = {
            let a = self.lock();
            let stored = a.sessions.get(id).ok_or(Decline::NoSuchSession)?;
            let status = stored.object["status"].as_str().unwrap_or_default();
            if status != "open" {
                return Err(Decline::NotOpen(status.to_owned()));
            }
            let card_country = card_outcome(card, a.now)?;
            let digits: String = card.number.chars().filter(char::is_ascii_digit).collect();
            let o = &stored.object;
            Gift {
                amount: o["amount_total"].as_i64().unwrap_or(0),
                currency: o["currency"].as_str().unwrap_or("eur").to_owned(),
                campaign: o["metadata"]["campaign"].as_str().map(str::to_owned),
                name: card.name.clone(),
                email: card.email.clone(),
                card_country: card_country.to_owned(),
                card_fingerprint: card_fingerprint(&digits),
                address_line1: card.address_line1.clone(),
                postal_code: card.postal_code.clone(),
                city: card.city.clone(),
                country: card.country.clone(),
                metadata: stored
                    .intent_metadata
                    .iter()
                    .filter(|(k, _)| k != "campaign")
                    .cloned()
                    .collect(),
                settled: true,
            }
        };
        Ok(self.donate_in(&gift, Some(id)))
    }

    /// Expires every open session whose `expires_at` is at or before `now` (Unix seconds);
    /// returns their `checkout.session.expired` events.
    pub fn expire_due(&self, now: i64) -> Vec<SimEvent> {
        let mut a = self.lock();
        let due: Vec<String> = a
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.object["status"] == "open" && s.object["expires_at"].as_i64() <= Some(now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        due.iter().filter_map(|id| a.expire(id).ok()).collect()
    }
}

impl Account {
    /// Expires an open session; its `checkout.session.expired` event.
    fn expire(&mut self, id: &str) -> Result<SimEvent, Decline> {
        let stored = self.sessions.get_mut(id).ok_or(Decline::NoSuchSession)?;
        let status = stored.object["status"].as_str().unwrap_or_default();
        if status != "open" {
            return Err(Decline::NotOpen(status.to_owned()));
        }
        stored.object["status"] = json!("expired");
        stored.object["url"] = Value::Null;
        let object = public(&stored.object);
        self.tick();
        Ok(self.event("checkout.session.expired", object))
    }
}

/// Marks a stored session paid by `gift` through payment intent `pi`; returns it as sent.
pub(super) fn complete(stored: &mut SimSession, pi: &str, gift: &Gift) -> Value {
    let o = &mut stored.object;
    o["status"] = json!("complete");
    o["payment_status"] = json!("paid");
    o["payment_intent"] = json!(pi);
    o["url"] = Value::Null;
    o["customer_details"] = json!({"address": address(gift), "email": gift.email,
        "name": gift.name, "phone": null, "tax_exempt": "none", "tax_ids": []});
    public(o)
}

/// The object without the simulator's own bookkeeping fields (`_…`).
fn public(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.retain(|k, _| !k.starts_with('_'));
    }
    object
}

/// Stripe's bracket notation, `metadata[key]=value`, under `prefix`.
fn map_under(form: &[(String, String)], prefix: &str) -> serde_json::Map<String, Value> {
    form.iter()
        .filter_map(|(k, v)| {
            let key = k
                .strip_prefix(prefix)?
                .strip_prefix('[')?
                .strip_suffix(']')?;
            Some((key.to_owned(), Value::String(v.clone())))
        })
        .collect()
}

pub(super) async fn create_session(
    State(sim): Sim,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = admit(&sim, "POST", "/v1/checkout/sessions".into(), &headers).await {
        return e;
    }
    let field: HashMap<&str, &str> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let invalid =
        |message: &str| stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", message);
    if field.get("mode") != Some(&"payment") {
        return invalid("Missing required param: mode (the simulator supports `payment`).");
    }
    let Some(success_url) = field.get("success_url") else {
        return invalid("Missing required param: success_url.");
    };
    let Some(currency) = field.get("line_items[0][price_data][currency]") else {
        return invalid("Missing required param: line_items[0][price_data][currency].");
    };
    let amount = field
        .get("line_items[0][price_data][unit_amount]")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(0);
    if amount < 50 {
        return invalid("The Checkout Session's total amount due must add up to at least 0.50.");
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut a = sim.lock();
    if let Some(existing) = key.as_ref().and_then(|k| a.sessions_by_key.get(k)) {
        if let Some(stored) = a.sessions.get(existing) {
            return Json(public(&stored.object)).into_response();
        }
    }
    let t = a.tick();
    let id = a.id("cs_test");
    let url = a.base_url.as_ref().map(|base| format!("{base}/pay/{id}"));
    let expires_at = field
        .get("expires_at")
        .and_then(|e| e.parse::<i64>().ok())
        .unwrap_or(t + 86_400);
    let metadata = map_under(&form, "metadata");
    let intent_metadata = map_under(&form, "payment_intent_data[metadata]")
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let object = json!({
        "id": id, "object": "checkout.session", "amount_subtotal": amount, "amount_total": amount,
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "billing_address_collection": field.get("billing_address_collection"),
        "cancel_url": field.get("cancel_url"), "client_reference_id": field.get("client_reference_id"),
        "created": t, "currency": currency, "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "customer": null, "customer_creation": "if_required", "customer_details": null,
        "customer_email": field.get("customer_email"), "expires_at": expires_at, "invoice": null,
        "livemode": false, "locale": field.get("locale"), "metadata": metadata, "mode": "payment",
        "payment_intent": null, "payment_link": null, "payment_method_collection": "if_required",
        "payment_method_configuration_details": null,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "payment_status": "unpaid",
        "phone_number_collection": {"enabled": false}, "recovered_from": null,
        "saved_payment_method_options": null, "setup_intent": null,
        "shipping_address_collection": null, "shipping_cost": null, "shipping_options": [],
        "status": "open", "submit_type": field.get("submit_type"), "subscription": null,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page", "url": url,
        "_description": field.get("line_items[0][price_data][product_data][name]"),
    });
    let answer = public(&object);
    a.sessions.insert(
        id.clone(),
        SimSession {
            object,
            intent_metadata,
        },
    );
    if let Some(key) = key {
        a.sessions_by_key.insert(key, id);
    }
    Json(answer).into_response()
}

pub(super) async fn retrieve_session(
    State(sim): Sim,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = admit(&sim, "GET", format!("/v1/checkout/sessions/{id}"), &headers).await {
        return e;
    }
    match sim.lock().sessions.get(&id) {
        Some(stored) => Json(public(&stored.object)).into_response(),
        None => not_found("checkout session", &id),
    }
}

pub(super) async fn expire_session(
    State(sim): Sim,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/checkout/sessions/{id}/expire");
    if let Err(e) = admit(&sim, "POST", path, &headers).await {
        return e;
    }
    let mut a = sim.lock();
    match a.expire(&id) {
        Ok(event) => {
            a.outbox.push(event);
            let object = a.sessions.get(&id).map(|s| public(&s.object));
            Json(object).into_response()
        }
        Err(Decline::NoSuchSession) => not_found("checkout session", &id),
        Err(_) => stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Only Checkout Sessions with a status of `open` can be expired.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_behave_as_in_stripe_test_mode() {
        let now = 1_790_000_000; // September 2026
        let card = |number: &str| CardPayment {
            number: number.into(),
            exp_month: 12,
            exp_year: 2030,
            cvc: "123".into(),
            ..CardPayment::default()
        };
        assert_eq!(card_outcome(&card("4242 4242 4242 4242"), now), Ok("US"));
        assert_eq!(card_outcome(&card("4000002500000003"), now), Ok("FR"));
        assert_eq!(
            card_outcome(&card("4000000000000002"), now),
            Err(Decline::Declined)
        );
        assert_eq!(
            card_outcome(&card("4242424242424241"), now),
            Err(Decline::InvalidNumber)
        );
        let expired = CardPayment {
            exp_year: 2025,
            ..card("4242424242424242")
        };
        assert_eq!(card_outcome(&expired, now), Err(Decline::ExpiredCard));
    }
}
