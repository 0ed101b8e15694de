//! The one error type handlers return: a status, a stable machine-readable code, and a
//! message for people. 5xx answers never echo internals; the cause goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::provider::stripe::event::EnvelopeError;
use crate::provider::stripe::signature::SignatureError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such resource")]
    NotFound,
    #[error("Stripe signature check failed: {0}")]
    BadSignature(SignatureError),
    #[error("not a Stripe event: {0}")]
    BadEvent(EnvelopeError),
    #[error("a {} event reached a {} deployment", mode(*event_livemode), mode(!*event_livemode))]
    WrongMode { event_livemode: bool },
    #[error("Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET)")]
    WebhooksNotConfigured,
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("a bearer token is required (Authorization: Bearer TOKEN)")]
    Unauthorized,
    #[error("this token does not allow that on this campaign")]
    Forbidden,
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadSignature(_) => (StatusCode::BAD_REQUEST, "bad_signature"),
            ApiError::BadEvent(_) => (StatusCode::BAD_REQUEST, "bad_event"),
            ApiError::WrongMode { .. } => (StatusCode::BAD_REQUEST, "wrong_mode"),
            ApiError::WebhooksNotConfigured => {
                (StatusCode::SERVICE_UNAVAILABLE, "webhooks_not_configured")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        }
    }
}

fn mode(livemode: bool) -> &'static str {
    if livemode {
        "live-mode"
    } else {
        "test-mode"
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            let cause = std::error::Error::source(&self).map(ToString::to_string);
            tracing::error!(code, cause, "request failed");
        }
        let mut response = (
            status,
            Json(json!({ "code": code, "message": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
