//! The HTTP surface: router, shared state, and the layers every request passes through
//! (request id, tracing, timeout, body-size limit).
//!
//! Handlers only parse, call and map; they hold no business rules and no SQL.

mod auth;
mod contributions;
mod donate;
mod error;
mod health;
mod page;
mod reports;
mod treasurer;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::checkout::Checkout;
use crate::clock::Clock;
use crate::compliance::Packs;
use crate::intake::Inbox;
use crate::provider::stripe::StripeSettings;
use crate::store::Store;

/// What handlers share, behind one `Arc`: axum clones the state for every request, and
/// cloning the parts themselves took eight reference counts and a string each time (the
/// intake bench's profile: 1.6 % of its process in those clones and their drops).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Services {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub stripe: Arc<StripeSettings>,
    /// The validated rule packs.
    pub packs: Arc<Packs>,
    /// Where webhook events are stored (a write combiner over `store`).
    pub inbox: Inbox,
    /// Wakes the intake worker when an event is stored.
    pub intake_wake: Option<Arc<tokio::sync::Notify>>,
    /// The donor checkout.
    pub checkout: Arc<Checkout>,
    pub pages: PageSettings,
}

/// What the security headers of every answer depend on.
#[derive(Debug, Clone)]
pub struct PageSettings {
    /// Served over HTTPS (`OBOLE_PUBLIC_URL` is `https://…`): HSTS and `Secure` cookies.
    pub secure: bool,
    /// The origin of the provider's payment page, the one place a form may lead to
    /// (`https://checkout.stripe.com`, or the demo provider's).
    pub checkout_origin: String,
}

impl PageSettings {
    /// Strict headers: nothing but our own stylesheet loads, no page may frame ours, forms
    /// post only to us (and redirect only to the payment page).
    fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let csp = format!(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {}; \
             frame-ancestors 'none'; base-uri 'none'",
            self.checkout_origin
        );
        let mut headers = vec![
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                HeaderName::from_static("permissions-policy"),
                HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
            ),
        ];
        if let Ok(csp) = HeaderValue::from_str(&csp) {
            headers.push((header::CONTENT_SECURITY_POLICY, csp));
        }
        if self.secure {
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=63072000; includeSubDomains"),
            ));
        }
        headers
    }
}

/// Adds the security headers an answer does not already set.
async fn security_headers(
    State(headers): State<Arc<Vec<(HeaderName, HeaderValue)>>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    for (name, value) in headers.iter() {
        response
            .headers_mut()
            .entry(name)
            .or_insert_with(|| value.clone());
    }
    response
}

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub request_timeout: Duration,
    pub body_bytes_max: usize,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState, limits: Limits) -> Router {
    let headers = Arc::new(state.pages.headers());
    Router::new()
        .route("/donate/{slug}", get(donate::form).post(donate::submit))
        .route("/donate/{slug}/thanks", get(donate::thanks))
        .route("/donate/{slug}/cancel", get(donate::cancel))
        .route("/assets/obole.css", get(donate::stylesheet))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/webhooks/stripe", post(webhooks::stripe))
        .route(
            "/api/v1/campaigns/{slug}/contributions",
            post(contributions::add),
        )
        .route(
            "/api/v1/campaigns/{slug}/reports/{kind}",
            get(reports::report),
        )
        .route("/treasurer/{slug}", get(treasurer::dashboard))
        .route("/treasurer/{slug}/login", post(treasurer::sign_in))
        .route("/treasurer/{slug}/logout", post(treasurer::sign_out))
        .route("/treasurer/{slug}/reports/{kind}", get(treasurer::download))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
        .layer(middleware::from_fn_with_state(headers, security_headers))
        .layer(RequestBodyLimitLayer::new(limits.body_bytes_max))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
