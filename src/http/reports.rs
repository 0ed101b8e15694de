//! `GET /api/v1/campaigns/{slug}/reports/{kind}?as_of=YYYY-MM-DD&format=json|csv`, for a
//! treasurer's or an auditor's token; `kind` is `summary`, `trial-balance` or `exceptions`.
//! Every report served is written to the access log before it is sent.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::authorize;
use super::{ApiError, AppState};
use crate::access::{ReportAccess, Role};
use crate::clock::parse_as_of;
use crate::reports;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// A date (end of that day in the campaign's time zone) or an RFC 3339 instant.
    as_of: Option<String>,
    format: Option<String>,
}

pub async fn report(
    State(state): State<AppState>,
    Path((slug, kind)): Path<(String, String)>,
    Query(query): Query<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (campaign, grant) =
        authorize(&state, &headers, &slug, &[Role::Treasurer, Role::Auditor]).await?;
    let kind = reports::Kind::parse(&kind).ok_or(ApiError::NotFound)?;
    let format = reports::Format::parse(query.format.as_deref().unwrap_or("json"))
        .ok_or_else(|| ApiError::BadRequest("format: use json or csv".into()))?;
    let as_of = match &query.as_of {
        Some(text) => parse_as_of(text, campaign.timezone)
            .map_err(|e| ApiError::BadRequest(format!("as_of: {e}")))?,
        None => state.clock.now(),
    };
    let body = reports::render(&state.store, &campaign, kind, as_of, format)
        .await
        .map_err(ApiError::Unavailable)?;
    let access = ReportAccess {
        campaign_id: campaign.id,
        token_id: Some(grant.token_id),
        role: grant.role.as_str(),
        kind: kind.as_str(),
        as_of,
        format: format.as_str(),
    };
    state
        .store
        .log_report(&access, state.clock.now())
        .await
        .map_err(ApiError::Unavailable)?;
    let content_type = format.content_type();
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}
