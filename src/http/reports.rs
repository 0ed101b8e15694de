//! `GET /api/v1/campaigns/{slug}/reports/{kind}?as_of=YYYY-MM-DD&format=json|csv`, for a
//! treasurer's or an auditor's token.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::authorize;
use super::{ApiError, AppState};
use crate::access::Role;
use crate::clock::parse_as_of;

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
    let (campaign, _) =
        authorize(&state, &headers, &slug, &[Role::Treasurer, Role::Auditor]).await?;
    if kind != "summary" {
        return Err(ApiError::NotFound);
    }
    let as_of = match &query.as_of {
        Some(text) => parse_as_of(text, campaign.timezone)
            .map_err(|e| ApiError::BadRequest(format!("as_of: {e}")))?,
        None => state.clock.now(),
    };
    let summary = crate::reports::summary(&state.store, &campaign, as_of)
        .await
        .map_err(ApiError::Unavailable)?;
    let (body, content_type) = match query.format.as_deref().unwrap_or("json") {
        "json" => (
            serde_json::to_string(&summary).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            "application/json",
        ),
        "csv" => (summary.to_csv(), "text/csv; charset=utf-8"),
        other => {
            return Err(ApiError::BadRequest(format!(
                "format {other:?}: use json or csv"
            )))
        }
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}
