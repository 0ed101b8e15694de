//! The offline demo provider (`obole serve --demo`): a simulated Stripe account on
//! localhost that speaks Stripe's API (the same client code talks to it), serves a hosted
//! payment page imitating Stripe's test mode, and sends the webhook events Stripe would send,
//! signed with the deployment's webhook secret, to Obole's own `POST /webhooks/stripe`.
//!
//! So a demo donation runs the production path end to end: the form, the reservation, the
//! Checkout session, the signed webhook, the inbox, the intake worker's API reads, screening
//! and posting. Nothing leaves the machine.
//!
//! Invariants:
//! - Every event is delivered at least once, in the order the account made it: a delivery
//!   that fails is retried each second, as Stripe retries, until Obole answers 2xx.
//! - Open sessions past their `expires_at` expire (with `checkout.session.expired`) within a
//!   second of it.
//! - The demo's keys are test-mode keys, so a demo deployment never accepts live events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::stripe::sim::{CardPayment, Decline, SimEvent, StripeSim};
use super::stripe::{SettingsError, StripeSettings};
use crate::checkout::text::Lang;
use crate::clock::Clock;
use crate::money::{Currency, Money};

/// The demo account's API key (a test-mode key).
pub const DEMO_SECRET_KEY: &str = "sk_test_obole_demo";

pub struct DemoProvider {
    sim: Arc<StripeSim>,
    api_base: String,
    webhook_url: String,
    webhook_secret: String,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// Events not yet acknowledged by Obole, oldest first.
    undelivered: Mutex<VecDeque<SimEvent>>,
    stop: CancellationToken,
}

impl DemoProvider {
    /// Serves the simulated account and its payment page on 127.0.0.1 at a free port, and
    /// starts delivering its events to `webhook_url`.
    pub async fn start(
        webhook_url: String,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<DemoProvider>> {
        let mut secret = [0u8; 16];
        getrandom::getrandom(&mut secret)
            .map_err(|e| anyhow::anyhow!("the system's random source failed: {e}"))?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let api_base = format!("http://{}", listener.local_addr()?);
        let sim = StripeSim::new(clock.now().timestamp());
        sim.set_base_url(&api_base);
        let demo = Arc::new(DemoProvider {
            sim,
            api_base,
            webhook_url,
            webhook_secret: format!("whsec_demo_{}", hex::encode(secret)),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            clock,
            undelivered: Mutex::new(VecDeque::new()),
            stop: CancellationToken::new(),
        });
        let app = demo.sim.router().merge(
            Router::new()
                .route("/pay/{session}", get(payment_page).post(pay))
                .with_state(demo.clone()),
        );
        let stop = demo.stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "demo provider stopped");
            }
        });
        tokio::spawn(demo.clone().run());
        tracing::info!(api = %demo.api_base, "demo payment provider ready (Stripe test mode, offline)");
        Ok(demo)
    }

    /// The settings that point Obole's Stripe client and webhook check at this account.
    pub fn stripe_settings(&self, tolerance_secs: i64) -> Result<StripeSettings, SettingsError> {
        Ok(StripeSettings::new(
            Some(&self.webhook_secret),
            Some(DEMO_SECRET_KEY),
            tolerance_secs,
            Some(&self.api_base),
        )?
        .with_api_rate(Some(0)))
    }

    /// Where the hosted payment page and the API are served.
    pub fn base_url(&self) -> &str {
        &self.api_base
    }

    pub fn sim(&self) -> &Arc<StripeSim> {
        &self.sim
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Each second: expire what is due, and deliver what the account made (a refund Obole
    /// asked for, an expiry) and what failed to deliver before.
    async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut made = self.sim.expire_due(self.clock.now().timestamp());
            made.extend(self.sim.take_outbox());
            self.deliver(made).await;
        }
    }

    /// Queues `events` and delivers the queue in order, stopping at the first failure (the
    /// rest wait for the next second).
    async fn deliver(&self, events: Vec<SimEvent>) {
        self.lock().extend(events);
        loop {
            let Some(event) = self.lock().front().cloned() else {
                return;
            };
            let signature = event.signature(&[&self.webhook_secret], self.clock.now().timestamp());
            let sent = self
                .http
                .post(&self.webhook_url)
                .header("stripe-signature", signature)
                .header(header::CONTENT_TYPE.as_str(), "application/json")
                .body(event.body.clone())
                .send()
                .await;
            match sent {
                Ok(answer) if answer.status().is_success() => {
                    self.lock().pop_front();
                }
                Ok(answer) => {
                    tracing::warn!(event = %event.id, status = %answer.status(), "demo webhook refused; retrying");
                    return;
                }
                Err(error) => {
                    tracing::warn!(event = %event.id, %error, "demo webhook not delivered; retrying");
                    return;
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<SimEvent>> {
        self.undelivered.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The page's words.
struct PageText {
    title: &'static str,
    test_mode: &'static str,
    back: &'static str,
    email: &'static str,
    number: &'static str,
    expiry: &'static str,
    cvc: &'static str,
    cardholder: &'static str,
    address: &'static str,
    postal: &'static str,
    city: &'static str,
    country: &'static str,
    donate: &'static str,
    cards: &'static str,
}

const FRENCH: PageText = PageText {
    title: "Paiement",
    test_mode: "MODE TEST — démo hors ligne, aucun paiement réel",
    back: "Retour",
    email: "Adresse électronique",
    number: "Numéro de carte",
    expiry: "Expiration (MM / AA)",
    cvc: "Cryptogramme (CVC)",
    cardholder: "Titulaire de la carte",
    address: "Adresse de facturation",
    postal: "Code postal",
    city: "Ville",
    country: "Pays (code à 2 lettres)",
    donate: "Faire un don",
    cards: "Cartes de test : 4242 4242 4242 4242 (acceptée), 4000 0025 0000 0003 (carte française), 4000 0000 0000 0002 (refusée). N'importe quelle date future et n'importe quel CVC.",
};

const ENGLISH: PageText = PageText {
    title: "Payment",
    test_mode: "TEST MODE — offline demo, no real payment",
    back: "Back",
    email: "Email",
    number: "Card number",
    expiry: "Expiry (MM / YY)",
    cvc: "CVC",
    cardholder: "Name on card",
    address: "Billing address",
    postal: "Postal code",
    city: "City",
    country: "Country (2-letter code)",
    donate: "Donate",
    cards: "Test cards: 4242 4242 4242 4242 (succeeds), 4000 0025 0000 0003 (French card), 4000 0000 0000 0002 (declined). Any future date and any CVC.",
};

#[derive(Template)]
#[template(path = "demo_pay.html")]
struct PaymentPage {
    lang: &'static str,
    t: &'static PageText,
    session: String,
    description: String,
    amount: String,
    back: String,
    error: Option<String>,
    email: String,
    name: String,
    line1: String,
    postal_code: String,
    city: String,
    country: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CardForm {
    email: String,
    number: String,
    expiry: String,
    cvc: String,
    name: String,
    line1: String,
    postal_code: String,
    city: String,
    country: String,
}

type Demo = State<Arc<DemoProvider>>;

async fn payment_page(State(demo): Demo, Path(session): Path<String>) -> Response {
    render(&demo, &session, &CardForm::default(), None, StatusCode::OK)
}

async fn pay(
    State(demo): Demo,
    Path(session): Path<String>,
    Form(form): Form<CardForm>,
) -> Response {
    let (exp_month, exp_year) = expiry(&form.expiry).unwrap_or((0, 0));
    let card = CardPayment {
        number: form.number.clone(),
        exp_month,
        exp_year,
        cvc: form.cvc.trim().to_owned(),
        name: form.name.trim().to_owned(),
        email: form.email.trim().to_owned(),
        address_line1: form.line1.trim().to_owned(),
        postal_code: form.postal_code.trim().to_owned(),
        city: form.city.trim().to_owned(),
        country: form.country.trim().to_ascii_uppercase(),
    };
    if [
        &card.name,
        &card.email,
        &card.address_line1,
        &card.postal_code,
        &card.city,
    ]
    .iter()
    .any(|v| v.is_empty())
        || card.country.len() != 2
    {
        let missing = "Please fill in every field. / Veuillez remplir tous les champs.";
        return render(
            &demo,
            &session,
            &form,
            Some(missing.to_owned()),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    match demo.sim.pay(&session, &card) {
        Ok(donation) => {
            // Delivered before the donor is sent back, as Stripe usually manages, so the
            // thanks page can already find the gift in the books.
            demo.deliver(donation.events).await;
            let success = demo
                .sim
                .session(&session)
                .map(|s| s.success_url.replace("{CHECKOUT_SESSION_ID}", &session))
                .unwrap_or_default();
            Redirect::to(&success).into_response()
        }
        Err(decline @ (Decline::NoSuchSession | Decline::NotOpen(_))) => {
            (StatusCode::GONE, decline.to_string()).into_response()
        }
        Err(decline) => render(
            &demo,
            &session,
            &form,
            Some(decline.to_string()),
            StatusCode::PAYMENT_REQUIRED,
        ),
    }
}

/// `MM / YY`, `MM/YY`, `MMYY` or `MM/YYYY`.
fn expiry(text: &str) -> Option<(u32, i32)> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let (month, year) = digits.split_at_checked(2)?;
    let year: i32 = year.parse().ok()?;
    Some((
        month.parse().ok()?,
        if year < 100 { 2000 + year } else { year },
    ))
}

fn render(
    demo: &DemoProvider,
    session: &str,
    form: &CardForm,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let Some(open) = demo.sim.session(session) else {
        return (StatusCode::NOT_FOUND, "No such Checkout Session.").into_response();
    };
    if open.status != "open" {
        return (
            StatusCode::GONE,
            format!(
                "This Checkout Session is no longer available (it is {}).",
                open.status
            ),
        )
            .into_response();
    }
    let lang = Lang::parse(&open.locale).unwrap_or(Lang::En);
    let amount = Currency::parse(&open.currency)
        .map(|c| lang.money(Money::from_minor(open.amount, c)))
        .unwrap_or_else(|_| format!("{} {}", open.amount, open.currency));
    let or = |typed: &str, default: &str| {
        if typed.is_empty() {
            default.to_owned()
        } else {
            typed.to_owned()
        }
    };
    let page = PaymentPage {
        lang: lang.code(),
        t: if lang == Lang::Fr { &FRENCH } else { &ENGLISH },
        session: open.id.clone(),
        description: open.description,
        amount,
        back: open.cancel_url.unwrap_or_default(),
        error,
        email: or(
            &form.email,
            open.customer_email.as_deref().unwrap_or_default(),
        ),
        name: form.name.clone(),
        line1: form.line1.clone(),
        postal_code: form.postal_code.clone(),
        city: form.city.clone(),
        country: form.country.clone(),
    };
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_dates_are_read_as_donors_type_them() {
        assert_eq!(expiry("12 / 30"), Some((12, 2030)));
        assert_eq!(expiry("0931"), Some((9, 2031)));
        assert_eq!(expiry("11/2029"), Some((11, 2029)));
        assert_eq!(expiry("1"), None);
    }
}
