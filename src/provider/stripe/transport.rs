//! How Obole's Stripe API calls travel: one pooled HTTPS client whose connections stay open
//! between calls. async-stripe's own client keeps no idle connection
//! (`pool_max_idle_per_host(0)`), so each call paid a new TCP and TLS handshake: against
//! api.stripe.com a round trip or two and the TLS work on every fetch of a charge; against the
//! local simulator, thousands of sockets left in TIME_WAIT by one benchmark.
//!
//! Invariants:
//! - A request goes out as async-stripe sends it: the same path and query, form body,
//!   secret, API version, user agent and idempotency key; an error status comes back as the
//!   same `StripeError`.
//! - A request whose connection failed (Stripe may close an idle connection just as it is
//!   reused: async-stripe's reason for keeping none) is sent once more, at once, on another.
//!   That is safe: GETs only read, and every POST Obole makes carries its own idempotency key
//!   or (expiring a session) changes nothing the second time. Error statuses are not retried
//!   here; the intake's backoff does that.
//! - Every attempt is bounded by the timeout.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use stripe::{CustomizedStripeRequest, RequestStrategy, StripeError};
use stripe_client_core::StripeMethod;

/// How long an idle connection is kept: under the minute after which servers commonly
/// close one, so that the pool rarely offers a connection the other side is closing.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What async-stripe's user agent says, with Obole's name after it.
const USER_AGENT_VALUE: &str = concat!(
    "Stripe/v1 RustBindings/1.0.0-rc.10 obole/",
    env!("CARGO_PKG_VERSION")
);

/// A Stripe API client: what `request.send(&transport)` runs on.
#[derive(Clone)]
pub struct Transport {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The API's base URL, ending in `/`.
    base: String,
    /// `Bearer <secret key>`, marked sensitive (never logged).
    secret: HeaderValue,
    timeout: Duration,
}

impl Transport {
    pub fn new(secret_key: &str, api_base: &str, timeout: Duration) -> Result<Self, StripeError> {
        let mut secret = HeaderValue::try_from(format!("Bearer {secret_key}"))
            .map_err(|_| StripeError::ConfigError("the secret key is not a header value".into()))?;
        secret.set_sensitive(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            // Without a timer the idle timeout is never enforced.
            .pool_timer(TokioTimer::new())
            .build(connector);
        let base = match api_base.ends_with('/') {
            true => api_base.to_owned(),
            false => format!("{api_base}/"),
        };
        Ok(Transport {
            http,
            base,
            secret,
            timeout,
        })
    }

    /// One attempt: the response's status and body, or why there was none.
    async fn attempt(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), StripeError> {
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| StripeError::ClientError(e.to_string()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| StripeError::ClientError(e.to_string()))?;
            Ok((status, body.to_bytes()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(StripeError::Timeout))
    }
}

impl stripe_client_core::StripeClient for Transport {
    type Err = StripeError;

    async fn execute(&self, request: CustomizedStripeRequest) -> Result<Bytes, StripeError> {
        let (request, config) = request.into_pieces();
        let timeout = config.timeout.unwrap_or(self.timeout);
        let strategy = config.request_strategy.unwrap_or(RequestStrategy::Once);
        let mut uri = format!("{}v1{}", self.base, request.path);
        if let Some(query) = &request.query {
            uri.push('?');
            uri.push_str(query);
        }
        let method = match request.method {
            StripeMethod::Get => Method::GET,
            StripeMethod::Post => Method::POST,
            StripeMethod::Delete => Method::DELETE,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.secret.clone())
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(
                HeaderName::from_static("stripe-version"),
                stripe_client_core::VERSION.as_str(),
            );
        if let Some(key) = strategy.get_key() {
            builder = builder.header(HeaderName::from_static("idempotency-key"), key.as_str());
        }
        let body = match request.body {
            Some(form) => {
                builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                Bytes::from(form)
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(body))
            .map_err(|e| StripeError::ClientError(e.to_string()))?;
        let (status, body) = match self.attempt(request.clone(), timeout).await {
            Err(StripeError::ClientError(_)) => self.attempt(request, timeout).await?,
            answered => answered?,
        };
        if status.is_success() {
            return Ok(body);
        }
        let text = std::str::from_utf8(&body)
            .map_err(|_| StripeError::JSONDeserialize("Response was not valid UTF-8".into()))?;
        Err(miniserde::json::from_str::<stripe_shared::Error>(text)
            .map(|e| StripeError::Stripe(e.error, status.as_u16()))
            .unwrap_or_else(|_| {
                StripeError::JSONDeserialize(format!(
                    "an error status {status} without Stripe's error"
                ))
            }))
    }
}
