//! The HTTP surface: router, shared state, and the layers every request passes through
//! (request id, tracing, timeout, body-size limit).
//!
//! Handlers only parse, call and map; they hold no business rules and no SQL.

mod auth;
mod contributions;
mod error;
mod health;
mod reports;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::clock::Clock;
use crate::compliance::Packs;
use crate::intake::Inbox;
use crate::provider::stripe::StripeSettings;
use crate::store::Store;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub stripe: Arc<StripeSettings>,
    /// The validated rule packs.
    pub packs: Arc<Packs>,
    /// Where webhook events are stored (a write combiner over `store`).
    pub inbox: Inbox,
    /// Wakes the intake worker when an event is stored.
    pub intake_wake: Option<Arc<tokio::sync::Notify>>,
}

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub request_timeout: Duration,
    pub body_bytes_max: usize,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState, limits: Limits) -> Router {
    Router::new()
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
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
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
