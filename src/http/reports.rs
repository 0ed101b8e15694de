//! `GET /api/v1/campaigns/{slug}/reports/{kind}?as_of=YYYY-MM-DD&format=json|csv|pdf`, for a
//! treasurer's or an auditor's token; `kind` is `summary`, `donors`, `trial-balance`, `journal`,
//! `reconciliation` or `exceptions`. Every report served is written to the access log before it is sent. An
//! auditor's donor register is masked. Reports stream: a failure before the first byte is a
//! 503; a failure after it aborts the body, so a truncated export is never taken for a whole
//! one (and a whole one ends with its seal).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;

use super::auth::authorize;
use super::{ApiError, AppState};
use crate::access::{Grant, ReportAccess, Role};
use crate::campaign::Campaign;
use crate::clock::parse_as_of;
use crate::reports::{self, Request, View};
use crate::store::StoreError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// A date (end of that day in the campaign's time zone) or an RFC 3339 instant.
    as_of: Option<String>,
    format: Option<String>,
}

impl ReportQuery {
    /// The format asked for, as written (default `json`).
    pub fn format_name(&self) -> &str {
        self.format.as_deref().unwrap_or("json")
    }
}

pub async fn report(
    State(state): State<AppState>,
    Path((slug, kind)): Path<(String, String)>,
    Query(query): Query<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (campaign, grant) =
        authorize(&state, &headers, &slug, &[Role::Treasurer, Role::Auditor]).await?;
    serve(&state, campaign, &grant, &kind, &query).await
}

/// The report `kind` of `campaign` for `grant`'s holder (from the API or the dashboard):
/// logged, then streamed.
pub async fn serve(
    state: &AppState,
    campaign: Campaign,
    grant: &Grant,
    kind: &str,
    query: &ReportQuery,
) -> Result<Response, ApiError> {
    let kind = reports::Kind::parse(kind).ok_or(ApiError::NotFound)?;
    let format = reports::Format::parse(query.format.as_deref().unwrap_or("json"))
        .ok_or_else(|| ApiError::BadRequest("format: use json, csv or pdf".into()))?;
    let as_of = match &query.as_of {
        Some(text) => parse_as_of(text, campaign.timezone)
            .map_err(|e| ApiError::BadRequest(format!("as_of: {e}")))?,
        None => state.clock.now(),
    };
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
    let request = Request {
        kind,
        as_of,
        format,
        view: match grant.role {
            Role::Treasurer => View::Full,
            Role::Auditor => View::Masked,
        },
    };
    let (out, mut chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let (store, packs) = (state.store.clone(), state.packs.clone());
    let mut writer = Some(tokio::spawn(async move {
        reports::write(&store, &packs, &campaign, request, out).await
    }));
    let first = match chunks.recv().await {
        Some(chunk) => chunk,
        None => {
            finished(writer.take())
                .await
                .map_err(ApiError::Unavailable)?;
            Vec::new()
        }
    };
    let rest = futures_util::stream::unfold((chunks, writer), |(mut chunks, writer)| async move {
        match chunks.recv().await {
            Some(chunk) => Some((Ok(chunk), (chunks, writer))),
            None => match finished(writer).await {
                Ok(()) => None,
                Err(error) => {
                    tracing::error!(%error, "report failed while streaming");
                    Some((Err(std::io::Error::other(error)), (chunks, None)))
                }
            },
        }
    });
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(first)]).chain(rest);
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

/// How the report's writer ended (`Ok` if it had already been waited for).
async fn finished(
    writer: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
) -> Result<(), StoreError> {
    match writer {
        Some(handle) => handle
            .await
            .map_err(|e| StoreError::Corrupt(format!("the report's writer stopped: {e}")))?,
        None => Ok(()),
    }
}
