//! What the server-rendered pages (the donor's and the treasurer's) share: rendering, their
//! cookies, and no caching of what is personal.
//!
//! Invariants: a page that fails to render is a 500 with a plain message and a log line,
//! never a half page; every cookie Obole sets is HttpOnly and SameSite=Strict, and Secure
//! when served over HTTPS.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::PageSettings;

pub fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// The value of the request's cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Sets cookie `name` for `path` for `max_age` seconds (0 removes it).
pub fn set_cookie(
    response: &mut Response,
    pages: &PageSettings,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) {
    let secure = if pages.secure { "; Secure" } else { "" };
    let cookie = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}

/// Keeps browsers and proxies from storing the page.
pub fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
