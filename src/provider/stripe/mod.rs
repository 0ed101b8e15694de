//! Stripe: webhook signatures, event envelopes, the API client, and the objects Obole reads.

pub mod client;
pub mod event;
pub mod objects;
pub mod signature;
pub mod sim;
pub mod transport;

use std::fmt;
use std::time::Duration;

/// Stripe's API, used when `STRIPE_API_BASE` is not set.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("STRIPE_WEBHOOK_SECRET has an empty secret in its comma-separated list")]
    EmptyWebhookSecret,
    #[error("STRIPE_SECRET_KEY must be a secret or restricted key (sk_live_…, sk_test_…, rk_live_…, rk_test_…)")]
    BadSecretKey,
    #[error("the webhook timestamp tolerance must be between 1 and 3600 seconds")]
    BadTolerance,
}

/// Default API calls per second with a live key, and with a test key (see `with_api_rate`).
pub const LIVE_API_RATE: u32 = 40;
pub const TEST_API_RATE: u32 = 20;

/// How this deployment talks to Stripe. Secrets never appear in `Debug` output or logs.
#[derive(Clone)]
pub struct StripeSettings {
    webhook_secrets: Vec<String>,
    secret_key: Option<String>,
    /// Seconds a webhook's signed timestamp may be away from now.
    pub tolerance_secs: i64,
    pub api_base: String,
    /// Most API calls per second this deployment makes (0: no limit, for a simulator).
    pub api_rate: u32,
    /// How long one API call may take before it is abandoned (and retried later).
    pub request_timeout: Duration,
}

impl fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeSettings")
            .field(
                "webhook_secrets",
                &format_args!("[{} redacted]", self.webhook_secrets.len()),
            )
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "[redacted]"),
            )
            .field("livemode", &self.livemode())
            .field("tolerance_secs", &self.tolerance_secs)
            .field("api_base", &self.api_base)
            .finish()
    }
}

impl StripeSettings {
    /// `webhook_secrets`: one or several (while rolling) comma-separated `whsec_…` secrets;
    /// empty means webhooks are not configured and will be refused.
    pub fn new(
        webhook_secrets: Option<&str>,
        secret_key: Option<&str>,
        tolerance_secs: i64,
        api_base: Option<&str>,
    ) -> Result<StripeSettings, SettingsError> {
        let webhook_secrets = match webhook_secrets.map(str::trim).filter(|s| !s.is_empty()) {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|s| {
                    let s = s.trim();
                    if s.is_empty() {
                        Err(SettingsError::EmptyWebhookSecret)
                    } else {
                        Ok(s.to_owned())
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        let secret_key = secret_key
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if secret_key.as_deref().is_some_and(|k| {
            !["sk_live_", "sk_test_", "rk_live_", "rk_test_"]
                .iter()
                .any(|p| k.starts_with(p))
        }) {
            return Err(SettingsError::BadSecretKey);
        }
        if !(1..=3600).contains(&tolerance_secs) {
            return Err(SettingsError::BadTolerance);
        }
        Ok(StripeSettings {
            webhook_secrets,
            secret_key,
            tolerance_secs,
            api_base: api_base
                .unwrap_or(DEFAULT_API_BASE)
                .trim_end_matches('/')
                .to_owned(),
            api_rate: 0,
            request_timeout: client::REQUEST_TIMEOUT,
        }
        .with_api_rate(None))
    }

    /// Paces API calls at `rate` per second; `None`: the default for the key's mode, well
    /// under Stripe's limits (100 requests a second in live mode, 25 in test mode, and 25 a
    /// second on any one endpoint), leaving room for checkout and the dashboard.
    pub fn with_api_rate(mut self, rate: Option<u32>) -> StripeSettings {
        self.api_rate = rate.unwrap_or(if self.livemode() {
            LIVE_API_RATE
        } else {
            TEST_API_RATE
        });
        self
    }

    /// Abandons an API call after `timeout` (default [`client::REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, timeout: Duration) -> StripeSettings {
        self.request_timeout = timeout;
        self
    }

    /// The API key; never logged.
    pub fn secret_key(&self) -> Option<&str> {
        self.secret_key.as_deref()
    }

    pub fn webhook_secrets(&self) -> &[String] {
        &self.webhook_secrets
    }

    /// Whether this deployment handles live money: true only with a live key. Without a key
    /// (the demo, tests) only test-mode events are accepted.
    pub fn livemode(&self) -> bool {
        self.secret_key
            .as_deref()
            .is_some_and(|k| k.starts_with("sk_live_") || k.starts_with("rk_live_"))
    }
}
