//! Guards on the public donation form: anti-forgery tokens, signed links, and rate limits
//! against card testing (bots trying stolen cards through small gifts).
//!
//! Invariants:
//! - A form token is bound to the campaign, to a nonce the browser holds in an `HttpOnly`,
//!   `SameSite=Strict` cookie (so another site cannot post the form for the donor), and to
//!   the time it was issued; it is valid for [`FORM_TOKEN_LIFETIME`]. Comparison is constant
//!   time (the HMAC crate's `verify_slice`).
//! - A signed link (the cancel link given to the provider) names one reservation of one
//!   campaign and cannot be forged for another.
//! - A rate limiter counts attempts per key in a fixed window and forgets keys whose window
//!   has passed, so its memory is bounded by the keys active in one window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How long a donor may take to fill the form.
pub const FORM_TOKEN_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);

/// The cookie holding the form's nonce.
pub const FORM_COOKIE: &str = "obole_form";

/// The server's key for form tokens and signed links. Random per process unless configured
/// (`OBOLE_FORM_SECRET`), so that several servers behind one address agree.
#[derive(Clone)]
pub struct FormKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for FormKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormKey([redacted])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("OBOLE_FORM_SECRET must be at least 32 characters")]
    ShortSecret,
    #[error("the system's random source failed: {0}")]
    Random(String),
}

/// An issued token: the nonce goes in the cookie, the token in the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormToken {
    pub nonce: String,
    pub token: String,
}

impl FormKey {
    pub fn new(secret: Option<&str>) -> Result<FormKey, GuardError> {
        match secret {
            Some(secret) if secret.len() < 32 => Err(GuardError::ShortSecret),
            Some(secret) => Ok(FormKey {
                key: secret.as_bytes().to_vec(),
            }),
            None => Ok(FormKey {
                key: random_bytes::<32>()?.to_vec(),
            }),
        }
    }

    fn mac(&self, parts: &[&str]) -> HmacSha256 {
        // HMAC takes keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\x1f");
        }
        mac
    }

    /// A token for the form of `campaign`, issued at `now`, bound to the browser's nonce
    /// (`cookie`) when it already has a well-formed one, so two open tabs both stay valid.
    pub fn issue(
        &self,
        campaign: &str,
        cookie: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<FormToken, GuardError> {
        let nonce = match cookie {
            Some(n) if n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()) => n.to_owned(),
            _ => hex::encode(random_bytes::<16>()?),
        };
        let issued = now.timestamp().to_string();
        let tag = self.mac(&["form", campaign, &nonce, &issued]).finalize();
        Ok(FormToken {
            token: format!("{issued}.{}", hex::encode(tag.into_bytes())),
            nonce,
        })
    }

    /// Whether `token` was issued for `campaign` with the cookie's `nonce`, and is still
    /// fresh at `now`.
    pub fn check(&self, campaign: &str, nonce: &str, token: &str, now: DateTime<Utc>) -> bool {
        let Some((issued, tag)) = token.split_once('.') else {
            return false;
        };
        let (Ok(at), Ok(tag)) = (issued.parse::<i64>(), hex::decode(tag)) else {
            return false;
        };
        // A forged time far from now is refused, not an overflow.
        let Some(age) = now.timestamp().checked_sub(at) else {
            return false;
        };
        let lifetime = i64::try_from(FORM_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        (0..=lifetime).contains(&age)
            && !nonce.is_empty()
            && self
                .mac(&["form", campaign, nonce, issued])
                .verify_slice(&tag)
                .is_ok()
    }

    /// A signature over a link's subject (`cancel`, campaign, reservation).
    pub fn sign(&self, parts: &[&str]) -> String {
        hex::encode(self.mac(parts).finalize().into_bytes())
    }

    pub fn verify(&self, parts: &[&str], signature: &str) -> bool {
        hex::decode(signature).is_ok_and(|tag| self.mac(parts).verify_slice(&tag).is_ok())
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], GuardError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| GuardError::Random(e.to_string()))?;
    Ok(bytes)
}

/// At most `max` attempts per key in each `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub max: u32,
    pub window: Duration,
}

/// How many checkouts may start, per client address and per donor (email).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutLimits {
    pub per_client: Rate,
    pub per_donor: Rate,
}

impl Default for CheckoutLimits {
    /// A donor rarely needs more than a few tries; a card-testing bot needs hundreds.
    fn default() -> CheckoutLimits {
        CheckoutLimits {
            per_client: Rate {
                max: 20,
                window: Duration::from_secs(10 * 60),
            },
            per_donor: Rate {
                max: 5,
                window: Duration::from_secs(10 * 60),
            },
        }
    }
}

impl CheckoutLimits {
    /// No limit (benchmarks, tests that are about something else).
    pub fn unlimited() -> CheckoutLimits {
        let none = Rate {
            max: u32::MAX,
            window: Duration::from_secs(1),
        };
        CheckoutLimits {
            per_client: none,
            per_donor: none,
        }
    }
}

/// Fixed-window counters per key.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    windows: Mutex<HashMap<String, (DateTime<Utc>, u32)>>,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> RateLimiter {
        RateLimiter {
            rate,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for `key` at `now`; false when it is over the limit.
    pub fn allow(&self, key: &str, now: DateTime<Utc>) -> bool {
        if self.rate.max == u32::MAX {
            return true;
        }
        let window = chrono::Duration::from_std(self.rate.window).unwrap_or(chrono::Duration::MAX);
        // Only plain counters behind the lock: a panic elsewhere cannot corrupt them.
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now - *start < window);
        }
        let (start, count) = windows.entry(key.to_owned()).or_insert((now, 0));
        if now - *start >= window {
            *start = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        *count <= self.rate.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_form_token_holds_only_for_its_campaign_nonce_and_lifetime() {
        let key = FormKey::new(None).unwrap();
        let issued = key.issue("dupont-2027", None, at(0)).unwrap();
        let again = key
            .issue("dupont-2027", Some(&issued.nonce), at(5))
            .unwrap();
        assert_eq!(again.nonce, issued.nonce);
        assert!(key.check("dupont-2027", &issued.nonce, &again.token, at(60)));
        assert!(key.check("dupont-2027", &issued.nonce, &issued.token, at(60)));
        assert!(!key.check("other", &issued.nonce, &issued.token, at(60)));
        assert!(!key.check("dupont-2027", "00", &issued.token, at(60)));
        assert!(!key.check("dupont-2027", &issued.nonce, &issued.token, at(3 * 3600)));
        assert!(!key.check("dupont-2027", &issued.nonce, "garbage", at(60)));
        let other_server = FormKey::new(None).unwrap();
        assert!(!other_server.check("dupont-2027", &issued.nonce, &issued.token, at(60)));
    }

    #[test]
    fn a_token_issued_at_any_time_is_checked_without_overflow() {
        let key = FormKey::new(None).unwrap();
        let nonce = "0123456789abcdef0123456789abcdef";
        for issued in [i64::MIN, i64::MIN + 1, -1, i64::MAX] {
            let token = format!("{issued}.00");
            assert!(!key.check("dupont-2027", nonce, &token, at(0)));
        }
    }

    #[test]
    fn signed_links_name_their_subject() {
        let key = FormKey::new(Some(&"s".repeat(32))).unwrap();
        let signature = key.sign(&["cancel", "demo", "42"]);
        assert!(key.verify(&["cancel", "demo", "42"], &signature));
        assert!(!key.verify(&["cancel", "demo", "43"], &signature));
        assert!(FormKey::new(Some("short")).is_err());
    }

    #[test]
    fn the_limiter_counts_per_key_and_window() {
        let limiter = RateLimiter::new(Rate {
            max: 2,
            window: Duration::from_secs(60),
        });
        assert!(limiter.allow("a", at(0)));
        assert!(limiter.allow("a", at(1)));
        assert!(!limiter.allow("a", at(2)));
        assert!(limiter.allow("b", at(2)));
        assert!(limiter.allow("a", at(61)));
    }
}
