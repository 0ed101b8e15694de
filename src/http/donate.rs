//! The donor's pages: `GET|POST /donate/{slug}`, the thanks page the provider returns to
//! (`/donate/{slug}/thanks?session_id=`), the signed cancel link (`/donate/{slug}/cancel`),
//! and the stylesheet. Server-rendered HTML (askama), no JavaScript, no third-party resource.
//!
//! Handlers parse, call `checkout`, and render; the rules live in `checkout` and
//! `enforcement`. A form that cannot go ahead is shown again with what the donor typed and
//! one message per field (422), a forged or stale form is shown again with a fresh token
//! (403), a flood is refused (429), and a provider outage says so (503) without keeping
//! anything.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::page::{cookie, html, no_store, set_cookie};
use super::AppState;
use crate::campaign::Campaign;
use crate::checkout::form::{self, Field, FormSpec, Problem, Submitted, COUNTRIES};
use crate::checkout::guard::FORM_COOKIE;
use crate::checkout::text::{self, Lang, Words};
use crate::checkout::{CheckoutError, Started};
use crate::ids::Slug;

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ThanksQuery {
    session_id: Option<String>,
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CancelQuery {
    reservation: Option<i64>,
    signature: Option<String>,
    lang: Option<String>,
}

struct AmountButton {
    value: String,
    label: String,
    checked: bool,
}

struct Input {
    id: String,
    label: &'static str,
    value: String,
    kind: &'static str,
    autocomplete: &'static str,
    required: bool,
    maxlength: usize,
    error: Option<String>,
}

struct Select {
    id: String,
    label: &'static str,
    options: Vec<(&'static str, &'static str, bool)>,
    error: Option<String>,
}

struct Checkbox {
    id: String,
    value: &'static str,
    text: &'static str,
    checked: bool,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "donate.html")]
struct DonatePage {
    lang: &'static str,
    other_lang: &'static str,
    w: &'static Words,
    campaign: String,
    slug: String,
    currency: String,
    form_token: String,
    refusal: Option<String>,
    room: Option<String>,
    notice: Option<&'static str>,
    summary: Vec<(String, &'static str, String)>,
    amounts: Vec<AmountButton>,
    other_checked: bool,
    other_value: String,
    amount_error: Option<String>,
    limits: String,
    inputs: Vec<Input>,
    selects: Vec<Select>,
    attestations: Vec<Checkbox>,
    notices: Vec<String>,
}

#[derive(Template)]
#[template(path = "thanks.html")]
struct ThanksPage {
    lang: &'static str,
    w: &'static Words,
    campaign: String,
    slug: String,
    recorded: bool,
    amount: String,
    date: String,
    reference: String,
    receipt_number: Option<String>,
    notices: Vec<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    lang: &'static str,
    title: &'static str,
    body: &'static str,
    slug: Option<String>,
    back: &'static str,
}

/// What the form page shows besides the donor's own values.
#[derive(Default)]
struct Outcome {
    problems: BTreeMap<Field, Problem>,
    refusal: Option<(String, Option<crate::money::Money>)>,
    notice: Option<&'static str>,
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../assets/obole.css"),
    )
        .into_response()
}

pub async fn form(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let Some((campaign, spec)) = campaign_and_spec(&state, &slug).await else {
        return not_found(query.lang.as_deref());
    };
    let lang = choose_lang(query.lang.as_deref(), &spec);
    render_form(
        &state,
        &campaign,
        &spec,
        lang,
        &Submitted::default(),
        Outcome::default(),
        cookie(&headers, FORM_COOKIE),
        StatusCode::OK,
    )
}

pub async fn submit(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some((campaign, spec)) = campaign_and_spec(&state, &slug).await else {
        return not_found(None);
    };
    let Ok(Form(pairs)) = body else {
        let lang = choose_lang(None, &spec);
        return message(
            lang,
            StatusCode::BAD_REQUEST,
            lang.words().expired_form,
            "",
            Some(&slug),
        );
    };
    let submitted = Submitted::from_pairs(&pairs);
    let lang = choose_lang(Some(&submitted.lang), &spec);
    let checkout = &state.checkout;
    let nonce = cookie(&headers, FORM_COOKIE);
    let show = |outcome: Outcome, status: StatusCode| {
        render_form(
            &state,
            &campaign,
            &spec,
            lang,
            &submitted,
            outcome,
            nonce.clone(),
            status,
        )
    };
    let genuine = nonce.as_deref().is_some_and(|nonce| {
        checkout.key.check(
            campaign.slug.as_str(),
            nonce,
            &submitted.form_token,
            checkout.now(),
        )
    });
    if !genuine {
        let outcome = Outcome {
            notice: Some(lang.words().expired_form),
            ..Outcome::default()
        };
        return show(outcome, StatusCode::FORBIDDEN);
    }
    if !checkout.admit(&client.ip().to_string(), submitted.email.trim()) {
        let outcome = Outcome {
            notice: Some(lang.words().too_many_attempts),
            ..Outcome::default()
        };
        let mut response = show(outcome, StatusCode::TOO_MANY_REQUESTS);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("600"));
        return response;
    }
    let gift = match form::validate(&spec, &submitted) {
        Ok(gift) => gift,
        Err(problems) => {
            let outcome = Outcome {
                problems,
                ..Outcome::default()
            };
            return show(outcome, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    match checkout.start(&campaign, gift, lang).await {
        Ok(Started::Pay { url }) => Redirect::to(&url).into_response(),
        Ok(Started::Refused { reason, room }) => {
            let outcome = Outcome {
                refusal: Some((reason, room)),
                ..Outcome::default()
            };
            show(outcome, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(error) => {
            tracing::error!(%error, campaign = %campaign.slug, "checkout could not start");
            let outcome = Outcome {
                notice: Some(lang.words().unavailable),
                ..Outcome::default()
            };
            let status = match error {
                CheckoutError::Store(_)
                | CheckoutError::Provider(_)
                | CheckoutError::NoProvider => StatusCode::SERVICE_UNAVAILABLE,
            };
            show(outcome, status)
        }
    }
}

pub async fn thanks(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<ThanksQuery>,
) -> Response {
    let Some((campaign, spec)) = campaign_and_spec(&state, &slug).await else {
        return not_found(query.lang.as_deref());
    };
    let lang = choose_lang(query.lang.as_deref(), &spec);
    let session = query.session_id.unwrap_or_default();
    let receipt = match state.checkout.receipt(&campaign, &session).await {
        Ok(Some(receipt)) => receipt,
        Ok(None) => return not_found(Some(lang.code())),
        Err(error) => {
            tracing::error!(%error, "thanks page");
            return message(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                lang.words().unavailable,
                "",
                Some(&slug),
            );
        }
    };
    let w = lang.words();
    let mut notices = Vec::new();
    if let Some(cost) = receipt.cost_after_tax {
        notices.push(match lang {
            Lang::Fr => format!(
                "Après la réduction d'impôt de 66 %, ce don vous revient à {}.",
                lang.money(cost)
            ),
            Lang::En => format!(
                "After the 66 % French tax reduction, this gift costs you {}.",
                lang.money(cost)
            ),
        });
    }
    let page = ThanksPage {
        lang: lang.code(),
        w,
        campaign: campaign.name.clone(),
        slug: slug.clone(),
        recorded: receipt.recorded,
        amount: lang.money(receipt.amount),
        date: receipt
            .at
            .with_timezone(&campaign.timezone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string(),
        reference: receipt.reference,
        receipt_number: receipt.receipt_number,
        notices,
    };
    html(StatusCode::OK, page.render())
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<CancelQuery>,
) -> Response {
    let Some((campaign, spec)) = campaign_and_spec(&state, &slug).await else {
        return not_found(query.lang.as_deref());
    };
    let lang = choose_lang(query.lang.as_deref(), &spec);
    let (Some(reservation), Some(signature)) = (query.reservation, query.signature) else {
        return not_found(Some(lang.code()));
    };
    let w = lang.words();
    match state
        .checkout
        .cancel(&campaign, reservation, &signature)
        .await
    {
        // Released now, or already ended (paid, expired, cancelled before): the same page.
        Ok(Some(_)) => message(
            lang,
            StatusCode::OK,
            w.cancelled_title,
            w.cancelled_body,
            Some(&slug),
        ),
        Ok(None) => not_found(Some(lang.code())),
        Err(error) => {
            tracing::error!(%error, "cancel");
            message(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                w.unavailable,
                "",
                Some(&slug),
            )
        }
    }
}

async fn campaign_and_spec(state: &AppState, slug: &str) -> Option<(Campaign, FormSpec)> {
    let slug = Slug::parse(slug).ok()?;
    let campaign = match state.store.campaign(&slug).await {
        Ok(found) => found?,
        Err(error) => {
            tracing::error!(%error, "donation page: campaign lookup");
            return None;
        }
    };
    let spec = state.checkout.spec(&campaign)?;
    Some((campaign, spec))
}

/// The language asked for, else the campaign's: French for a French campaign.
fn choose_lang(asked: Option<&str>, spec: &FormSpec) -> Lang {
    asked.and_then(Lang::parse).unwrap_or(
        if spec.nationality_or_residence.as_deref() == Some("FR") {
            Lang::Fr
        } else {
            Lang::En
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn render_form(
    state: &AppState,
    campaign: &Campaign,
    spec: &FormSpec,
    lang: Lang,
    submitted: &Submitted,
    outcome: Outcome,
    nonce: Option<String>,
    status: StatusCode,
) -> Response {
    let w = lang.words();
    let token = match state.checkout.key.issue(
        campaign.slug.as_str(),
        nonce.as_deref(),
        state.checkout.now(),
    ) {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "form token");
            return message(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                w.unavailable,
                "",
                None,
            );
        }
    };
    let problem = |field: Field| outcome.problems.get(&field).map(|p| describe(lang, p));
    let input = |field: Field, label, value: &str, kind, autocomplete, required| Input {
        id: field.id(),
        label,
        value: value.to_owned(),
        kind,
        autocomplete,
        required,
        maxlength: if kind == "email" {
            form::EMAIL_MAX
        } else {
            form::TEXT_MAX
        },
        error: problem(field),
    };
    let mut inputs = vec![
        input(Field::Name, w.name, &submitted.name, "text", "name", true),
        input(
            Field::Email,
            w.email,
            &submitted.email,
            "email",
            "email",
            true,
        ),
        input(
            Field::AddressLine1,
            w.address_line1,
            &submitted.address_line1,
            "text",
            "address-line1",
            true,
        ),
        input(
            Field::PostalCode,
            w.postal_code,
            &submitted.postal_code,
            "text",
            "postal-code",
            true,
        ),
        input(
            Field::City,
            w.city,
            &submitted.city,
            "text",
            "address-level2",
            true,
        ),
    ];
    if spec.employer_and_occupation {
        inputs.push(input(
            Field::Employer,
            w.employer,
            &submitted.employer,
            "text",
            "organization",
            true,
        ));
        inputs.push(input(
            Field::Occupation,
            w.occupation,
            &submitted.occupation,
            "text",
            "organization-title",
            true,
        ));
    }
    let select = |field: Field, label, chosen: &str| Select {
        id: field.id(),
        label,
        options: COUNTRIES
            .iter()
            .map(|(code, fr, en)| {
                let name = if lang == Lang::Fr { *fr } else { *en };
                (*code, name, chosen.eq_ignore_ascii_case(code))
            })
            .collect(),
        error: problem(field),
    };
    let mut selects = vec![select(Field::Country, w.country, &submitted.country)];
    if spec.nationality_or_residence.is_some() {
        selects.push(select(
            Field::Nationality,
            w.nationality,
            &submitted.nationality,
        ));
    }
    let attestations = spec
        .attestations
        .iter()
        .map(|&a| Checkbox {
            id: Field::Attestation(a).id(),
            value: form::attestation_key(a),
            text: lang.attestation(a),
            checked: submitted.attested.contains(form::attestation_key(a)),
            error: problem(Field::Attestation(a)),
        })
        .collect();
    let chosen = submitted.amount_choice.trim();
    let amounts: Vec<AmountButton> = spec
        .suggested
        .iter()
        .map(|m| AmountButton {
            value: m.minor().to_string(),
            label: lang.money(*m),
            checked: chosen == m.minor().to_string(),
        })
        .collect();
    let other_checked = !amounts.iter().any(|b| b.checked);
    let labels: BTreeMap<String, &'static str> = inputs
        .iter()
        .map(|i| (i.id.clone(), i.label))
        .chain(selects.iter().map(|s| (s.id.clone(), s.label)))
        .collect();
    let summary = outcome
        .problems
        .iter()
        .map(|(field, p)| {
            let id = field.id();
            let label = match field {
                Field::Amount => w.amount,
                Field::Attestation(_) => w.attestations,
                _ => labels.get(&id).copied().unwrap_or(""),
            };
            (id, label, describe(lang, p))
        })
        .collect();
    let page = DonatePage {
        lang: lang.code(),
        other_lang: match lang {
            Lang::Fr => "en",
            Lang::En => "fr",
        },
        w,
        campaign: campaign.name.clone(),
        slug: campaign.slug.as_str().to_owned(),
        currency: campaign.currency.to_string(),
        form_token: token.token,
        refusal: outcome.refusal.as_ref().map(|(reason, _)| reason.clone()),
        room: outcome
            .refusal
            .as_ref()
            .and_then(|(_, room)| room.map(|r| lang.money(r))),
        notice: outcome.notice,
        summary,
        amounts,
        other_checked,
        other_value: submitted.amount_other.clone(),
        amount_error: problem(Field::Amount),
        limits: match lang {
            Lang::Fr => format!(
                "De {} à {}.",
                lang.money(spec.minimum),
                lang.money(spec.maximum)
            ),
            Lang::En => format!(
                "From {} to {}.",
                lang.money(spec.minimum),
                lang.money(spec.maximum)
            ),
        },
        inputs,
        selects,
        attestations,
        notices: text::notices(lang, spec, &campaign.name),
    };
    let mut response = html(status, page.render());
    set_cookie(
        &mut response,
        &state.pages,
        FORM_COOKIE,
        &token.nonce,
        "/donate/",
        7200,
    );
    no_store(&mut response);
    response
}

fn describe(lang: Lang, problem: &Problem) -> String {
    let w = lang.words();
    match problem {
        Problem::Missing => w.missing.to_owned(),
        Problem::BadAmount => w.bad_amount.to_owned(),
        Problem::BelowMinimum(min) => format!("{} {}.", w.below_minimum, lang.money(*min)),
        Problem::AboveMaximum(max) => format!("{} {}.", w.above_maximum, lang.money(*max)),
        Problem::BadEmail => w.bad_email.to_owned(),
        Problem::BadCountry => w.bad_country.to_owned(),
        Problem::TooLong => w.too_long.to_owned(),
        Problem::Unticked => w.unticked.to_owned(),
    }
}

fn message(
    lang: Lang,
    status: StatusCode,
    title: &'static str,
    body: &'static str,
    slug: Option<&str>,
) -> Response {
    let page = MessagePage {
        lang: lang.code(),
        title,
        body,
        slug: slug.map(str::to_owned),
        back: lang.words().give_again,
    };
    html(status, page.render())
}

fn not_found(lang: Option<&str>) -> Response {
    let lang = lang.and_then(Lang::parse).unwrap_or(Lang::En);
    message(
        lang,
        StatusCode::NOT_FOUND,
        lang.words().not_found,
        "",
        None,
    )
}
