//! The treasurer's dashboard, `/treasurer/{slug}`: sign in with an access token, then the
//! summary, money raised per day (SVG), the exceptions to act on, and every report to
//! download as of any day. Server-rendered, no JavaScript.
//!
//! Invariants: the token is exchanged once for a session cookie (HttpOnly, SameSite=Strict,
//! Secure over HTTPS, scoped to the campaign's path, eight hours), signed with the server's
//! key and naming the token, its campaign and its role, so the cookie opens that campaign
//! only and cannot be forged or stretched; a sign-in posted from another site is refused;
//! downloads go through the same report path as the API (logged, masked for an auditor);
//! without a valid session every page but the sign-in answers 401 and shows nothing.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Deserialize;

use super::page::{cookie, html, no_store, set_cookie};
use super::reports::ReportQuery;
use super::{ApiError, AppState};
use crate::access::{token_hash, Grant, ReportAccess, Role};
use crate::campaign::Campaign;
use crate::clock::parse_as_of;
use crate::ids::{CampaignId, Slug};
use crate::reports;

pub const SESSION_COOKIE: &str = "obole_session";
const SESSION_HOURS: i64 = 8;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    lang: &'static str,
    campaign: &'a str,
    slug: &'a str,
    problem: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "treasurer.html")]
struct DashboardPage<'a> {
    lang: &'static str,
    campaign: &'a str,
    slug: &'a str,
    role: &'static str,
    as_of: String,
    as_of_date: String,
    as_of_query: String,
    zone: &'a str,
    figures: Vec<(&'static str, String)>,
    exceptions: usize,
    chart: String,
    days: u64,
    reports: Vec<(&'static str, &'static str)>,
    seal: String,
}

#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    as_of: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
}

/// The dashboard, or the sign-in page when there is no valid session.
pub async fn dashboard(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<DashboardQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let campaign = campaign(&state, &slug).await?;
    let Some(grant) = session(&state, &headers, &campaign) else {
        return Ok(sign_in_page(&campaign, StatusCode::OK, None));
    };
    let as_of = match query.as_of.as_deref().filter(|t| !t.is_empty()) {
        Some(text) => parse_as_of(text, campaign.timezone)
            .map_err(|e| ApiError::BadRequest(format!("as_of: {e}")))?,
        None => state.clock.now(),
    };
    let board = reports::dashboard(&state.store, &campaign, as_of)
        .await
        .map_err(ApiError::Unavailable)?;
    let access = ReportAccess {
        campaign_id: campaign.id,
        token_id: Some(grant.token_id),
        role: grant.role.as_str(),
        kind: "dashboard",
        as_of,
        format: "html",
    };
    state
        .store
        .log_report(&access, state.clock.now())
        .await
        .map_err(ApiError::Unavailable)?;
    let s = &board.summary;
    let money = |amount: &str| format!("{amount} {}", s.currency);
    let local = as_of.with_timezone(&campaign.timezone);
    let page = DashboardPage {
        lang: "en",
        campaign: &campaign.name,
        slug: campaign.slug.as_str(),
        role: grant.role.as_str(),
        as_of: local.format("%Y-%m-%d %H:%M").to_string(),
        as_of_date: local.date_naive().to_string(),
        as_of_query: as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
        zone: campaign.timezone.name(),
        figures: vec![
            ("Raised (gross)", money(&s.gross)),
            ("Refunded", money(&s.refunded)),
            ("Charged back", money(&s.charged_back)),
            ("Net", money(&s.net)),
            ("Fees", money(&s.fees)),
            ("Net of fees", money(&s.net_of_fees)),
            ("Contributions", s.contributions.to_string()),
            ("Donors", s.donors.to_string()),
            ("Average gift", money(&s.average_gift)),
            ("Median gift", money(&s.median_gift)),
            ("At Stripe", money(&s.at_stripe)),
            ("In the bank", money(&s.in_bank)),
            ("Cheques to deposit", money(&s.cheques_to_deposit)),
            ("Owed back to donors", money(&s.owed_to_donors)),
        ],
        exceptions: board.exceptions,
        chart: board.chart,
        days: reports::chart::MAX_DAYS,
        reports: [
            reports::Kind::Summary,
            reports::Kind::Donors,
            reports::Kind::Exceptions,
            reports::Kind::Reconciliation,
            reports::Kind::TrialBalance,
            reports::Kind::Journal,
        ]
        .into_iter()
        .map(|k| (k.as_str(), k.title()))
        .collect(),
        seal: format!("{}:{}", s.seal.sequence, s.seal.hash),
    };
    let mut response = html(StatusCode::OK, page.render());
    no_store(&mut response);
    Ok(response)
}

/// Exchanges an access token for a session: back to the dashboard, or the sign-in page again
/// with what went wrong (401 for a token that is not one, 403 for another campaign's).
pub async fn sign_in(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    form: Result<Form<SignIn>, FormRejection>,
) -> Result<Response, ApiError> {
    let campaign = campaign(&state, &slug).await?;
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden);
    }
    let Ok(Form(form)) = form else {
        return Ok(sign_in_page(
            &campaign,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Enter your access token."),
        ));
    };
    let grant = state
        .store
        .token(&token_hash(form.token.trim()))
        .await
        .map_err(ApiError::Unavailable)?;
    let grant = match grant {
        None => {
            return Ok(sign_in_page(
                &campaign,
                StatusCode::UNAUTHORIZED,
                Some("This token is not valid."),
            ))
        }
        Some(grant) if grant.campaign_id != campaign.id => {
            return Ok(sign_in_page(
                &campaign,
                StatusCode::FORBIDDEN,
                Some("This token does not open this campaign."),
            ))
        }
        Some(grant) => grant,
    };
    let expires = state.clock.now() + Duration::hours(SESSION_HOURS);
    let value = session_value(&state, &grant, expires);
    let mut response = Redirect::to(&format!("/treasurer/{}", campaign.slug)).into_response();
    set_session(
        &state,
        &campaign,
        &mut response,
        &value,
        SESSION_HOURS * 3600,
    );
    Ok(response)
}

pub async fn sign_out(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let campaign = campaign(&state, &slug).await?;
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden);
    }
    let mut response = Redirect::to(&format!("/treasurer/{}", campaign.slug)).into_response();
    set_session(&state, &campaign, &mut response, "", 0);
    Ok(response)
}

/// A report, for the session's holder, as the API serves it.
pub async fn download(
    State(state): State<AppState>,
    Path((slug, kind)): Path<(String, String)>,
    Query(query): Query<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let campaign = campaign(&state, &slug).await?;
    let grant = session(&state, &headers, &campaign).ok_or(ApiError::Unauthorized)?;
    let mut response = super::reports::serve(&state, campaign, &grant, &kind, &query).await?;
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{slug}-{kind}.{}\"",
        query.format_name()
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

async fn campaign(state: &AppState, slug: &str) -> Result<Campaign, ApiError> {
    let slug = Slug::parse(slug).map_err(|_| ApiError::NotFound)?;
    state
        .store
        .campaign(&slug)
        .await
        .map_err(ApiError::Unavailable)?
        .ok_or(ApiError::NotFound)
}

/// `campaign.token.role.expires.signature`.
fn session_value(state: &AppState, grant: &Grant, expires: DateTime<Utc>) -> String {
    let parts = [
        grant.campaign_id.0.to_string(),
        grant.token_id.to_string(),
        grant.role.as_str().to_owned(),
        expires.timestamp().to_string(),
    ];
    let signature = state.checkout.key.sign(&session_parts(&parts));
    format!("{}.{signature}", parts.join("."))
}

fn session_parts(parts: &[String; 4]) -> [&str; 5] {
    [
        "treasurer-session",
        &parts[0],
        &parts[1],
        &parts[2],
        &parts[3],
    ]
}

/// The grant the request's session cookie holds for `campaign`, if it is genuine and fresh.
fn session(state: &AppState, headers: &HeaderMap, campaign: &Campaign) -> Option<Grant> {
    let value = cookie(headers, SESSION_COOKIE)?;
    let mut fields = value.split('.');
    let parts: [String; 4] = [
        fields.next()?.to_owned(),
        fields.next()?.to_owned(),
        fields.next()?.to_owned(),
        fields.next()?.to_owned(),
    ];
    let signature = fields.next()?;
    if fields.next().is_some() || !state.checkout.key.verify(&session_parts(&parts), signature) {
        return None;
    }
    let campaign_id = CampaignId(parts[0].parse().ok()?);
    let expires = DateTime::from_timestamp(parts[3].parse().ok()?, 0)?;
    if campaign_id != campaign.id || expires <= state.clock.now() {
        return None;
    }
    Some(Grant {
        token_id: parts[1].parse().ok()?,
        campaign_id,
        role: Role::parse(&parts[2])?,
    })
}

fn set_session(
    state: &AppState,
    campaign: &Campaign,
    response: &mut Response,
    value: &str,
    max_age: i64,
) {
    let path = format!("/treasurer/{}", campaign.slug);
    set_cookie(
        response,
        &state.pages,
        SESSION_COOKIE,
        value,
        &path,
        max_age,
    );
}

/// A form posted from our own pages: browsers send `Origin` (or `Sec-Fetch-Site`) with a
/// POST; one naming another site is a forged sign-in.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn sign_in_page(
    campaign: &Campaign,
    status: StatusCode,
    problem: Option<&'static str>,
) -> Response {
    let page = LoginPage {
        lang: "en",
        campaign: &campaign.name,
        slug: campaign.slug.as_str(),
        problem,
    };
    let mut response = html(status, page.render());
    no_store(&mut response);
    response
}
