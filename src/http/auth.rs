//! Bearer tokens on `/api/v1/campaigns/{slug}/…`: which campaign, which role.
//!
//! Invariants: no token or an unknown one is 401, a token of another campaign or a role that
//! may not do this is 403, and neither answer says whether the campaign exists.

use axum::http::HeaderMap;

use super::{ApiError, AppState};
use crate::access::{token_hash, Grant, Role};
use crate::campaign::Campaign;
use crate::ids::Slug;

/// The campaign named by `slug`, if the request's token opens it with one of `roles`.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    slug: &str,
    roles: &[Role],
) -> Result<(Campaign, Grant), ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let grant = state
        .store
        .token(&token_hash(token))
        .await
        .map_err(ApiError::Unavailable)?
        .ok_or(ApiError::Unauthorized)?;
    let campaign = match Slug::parse(slug) {
        Ok(slug) => state
            .store
            .campaign(&slug)
            .await
            .map_err(ApiError::Unavailable)?,
        Err(_) => None,
    };
    match campaign {
        Some(campaign) if campaign.id == grant.campaign_id && roles.contains(&grant.role) => {
            Ok((campaign, grant))
        }
        _ => Err(ApiError::Forbidden),
    }
}
