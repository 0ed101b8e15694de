//! `POST /api/v1/campaigns/{slug}/contributions`: a treasurer records a gift that did not
//! come through Stripe (cheque, transfer, direct debit, cash), screened like a card.
//!
//! Answers 201 with the decision when recorded (an excess is owed back), 422 with the reason
//! and the room left when the rules refuse it (nothing is recorded), 400 for bad input.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;

use super::auth::authorize;
use super::{ApiError, AppState};
use crate::access::Role;
use crate::compliance::screen::Method;
use crate::compliance::Declaration;
use crate::enforcement::offline::{record_offline_gift, OfflineError, OfflineGift, OfflineOutcome};
use crate::money::Money;
use crate::provider::stripe::objects::{Address, Payer};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGift {
    method: Method,
    /// A decimal string in the campaign's currency ("150.00").
    amount: String,
    received: NaiveDate,
    reference: String,
    donor: DonorFields,
    #[serde(default)]
    declaration: Declaration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DonorFields {
    name: String,
    email: Option<String>,
    #[serde(default)]
    address: Address,
}

pub async fn add(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (campaign, _) = authorize(&state, &headers, &slug, &[Role::Treasurer]).await?;
    // Parsed here rather than by the extractor, so that a bad body gets our error shape.
    let gift: NewGift =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if gift.donor.name.trim().is_empty() {
        return Err(ApiError::BadRequest("donor.name is required".into()));
    }
    let amount = Money::parse(&gift.amount, campaign.currency)
        .map_err(|e| ApiError::BadRequest(format!("amount: {e}")))?;
    let pack = state.packs.get(&campaign.rule_pack).ok_or_else(|| {
        ApiError::BadRequest(format!("rule pack {} is not loaded", campaign.rule_pack))
    })?;
    let offline = OfflineGift {
        method: gift.method,
        amount,
        received: gift.received,
        reference: gift.reference,
        payer: Payer {
            name: Some(gift.donor.name),
            email: gift.donor.email,
            address: gift.donor.address,
            ..Payer::default()
        },
        declaration: gift.declaration,
    };
    let outcome = record_offline_gift(&state.store, &campaign, pack, &offline, state.clock.now())
        .await
        .map_err(|e| match e {
            OfflineError::Store(store) => match store {
                crate::store::StoreError::Unreachable { .. }
                | crate::store::StoreError::Database(_) => ApiError::Unavailable(store),
                other => ApiError::BadRequest(other.to_string()),
            },
            other => ApiError::BadRequest(other.to_string()),
        })?;
    let status = match outcome {
        OfflineOutcome::Recorded { .. } => StatusCode::CREATED,
        OfflineOutcome::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Json(outcome)).into_response())
}
