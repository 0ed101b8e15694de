//! `POST /webhooks/stripe`: verify, store, acknowledge. Nothing is posted to the ledger here;
//! the intake worker does that from the inbox, at its own pace.
//!
//! The order matters: the signature is checked over the raw bytes before anything is parsed,
//! and nothing is stored for a request that fails any check.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::intake::{InboxStatus, NewInboxEvent};
use crate::provider::stripe::event::Envelope;
use crate::provider::stripe::signature::{self, SignatureError};

pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let settings = &state.stripe;
    if settings.webhook_secrets().is_empty() {
        return Err(ApiError::WebhooksNotConfigured);
    }
    let now = state.clock.now();
    let header = match headers.get("stripe-signature") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::BadSignature(SignatureError::Malformed("not ASCII")))?,
        ),
    };
    signature::verify(
        &body,
        header,
        settings.webhook_secrets(),
        now.timestamp(),
        settings.tolerance_secs,
    )
    .map_err(ApiError::BadSignature)?;
    let (envelope, payload) = Envelope::parse(&body).map_err(ApiError::BadEvent)?;
    if envelope.livemode != settings.livemode() {
        return Err(ApiError::WrongMode {
            event_livemode: envelope.livemode,
        });
    }
    let status = if envelope.is_posted_type() {
        InboxStatus::Pending
    } else {
        InboxStatus::Ignored
    };
    let recorded = state
        .inbox
        .record(NewInboxEvent {
            envelope: envelope.clone(),
            payload: payload.to_owned(),
            status,
            received_at: now,
        })
        .await
        .map_err(ApiError::Unavailable)?;
    tracing::info!(event = %envelope.id, kind = %envelope.kind, duplicate = !recorded.inserted, "stripe event received");
    if let (true, Some(wake)) = (recorded.inserted, &state.intake_wake) {
        wake.notify_one();
    }
    Ok(Json(json!({
        "received": true,
        "event": envelope.id,
        "duplicate": !recorded.inserted,
        "status": recorded.status,
    })))
}
