//! The `Stripe-Signature` check, over the raw request body.
//!
//! Invariants:
//! - Only `v1` signatures count; `v0` (test mode's fake) and unknown schemes are ignored, so a
//!   downgrade is impossible.
//! - Every `v1` signature is tried against every configured secret: while a secret is being
//!   rolled, Stripe signs once per active secret.
//! - Signatures are compared in constant time (`Mac::verify_slice`).
//! - The signed timestamp must be within the tolerance of now, in both directions: a retry
//!   carries a fresh timestamp, so an old one means a captured request replayed.
//! - The secret is used as its UTF-8 bytes, `whsec_` prefix included (Stripe's own libraries).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's libraries' default tolerance.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;
/// A header longer than this is refused before any parsing: real ones hold a timestamp and a
/// few 64-digit signatures.
const HEADER_LEN_MAX: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("no v1 signature matches any configured webhook secret")]
    NoMatch,
    #[error("the signature timestamp is {age_secs} s away from now; at most {tolerance_secs} s is accepted")]
    Stale { age_secs: i64, tolerance_secs: i64 },
}

/// Verifies `header` for `body`; returns the signed timestamp.
pub fn verify(
    body: &[u8],
    header: Option<&str>,
    secrets: &[String],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if header.len() > HEADER_LEN_MAX {
        return Err(SignatureError::Malformed("too long"));
    }
    let mut timestamp = None;
    let mut candidates: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("more than one timestamp"));
                }
                let t: i64 = value
                    .parse()
                    .map_err(|_| SignatureError::Malformed("the timestamp is not a number"))?;
                timestamp = Some(t);
            }
            Some(("v1", value)) => {
                let mut signature = [0_u8; 32];
                // A v1 value that is not 64 hex digits cannot match; skip it rather than
                // fail, as another v1 value may.
                if hex::decode_to_slice(value, &mut signature).is_ok() {
                    candidates.push(signature);
                }
            }
            Some(_) => {} // v0 and future schemes
            None => return Err(SignatureError::Malformed("expected key=value pairs")),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no timestamp (t=)"))?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature"));
    }
    let signed_prefix = format!("{timestamp}.");
    let matches = secrets.iter().any(|secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(signed_prefix.as_bytes());
        mac.update(body);
        candidates
            .iter()
            .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
    });
    if !matches {
        return Err(SignatureError::NoMatch);
    }
    let age_secs = now_unix.saturating_sub(timestamp);
    if age_secs.saturating_abs() > tolerance_secs {
        return Err(SignatureError::Stale {
            age_secs,
            tolerance_secs,
        });
    }
    Ok(timestamp)
}

/// The header Stripe would send for `body` signed with each of `secrets` at `timestamp`: for
/// the demo provider and for tests.
pub fn sign(body: &[u8], secrets: &[&str], timestamp: i64) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            continue;
        };
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_012_345;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn check(header: &str, configured: &[&str], now: i64) -> Result<i64, SignatureError> {
        verify(
            BODY,
            Some(header),
            &secrets(configured),
            now,
            DEFAULT_TOLERANCE_SECS,
        )
    }

    #[test]
    fn a_genuine_signature_verifies() {
        let header = sign(BODY, &["whsec_a"], NOW);
        assert_eq!(check(&header, &["whsec_a"], NOW), Ok(NOW));
    }

    #[test]
    fn the_known_stripe_example_verifies() {
        // Computed independently with Python's hmac module:
        // hmac.new(b"whsec_test", b"1764012345." + BODY, hashlib.sha256).hexdigest()
        let expected =
            "t=1764012345,v1=889418a6394502a8d4ddf71adfc0139749210b4b3bc1aab80b014ca2996bdc2a";
        assert_eq!(sign(BODY, &["whsec_test"], NOW), expected);
        assert_eq!(check(expected, &["whsec_test"], NOW), Ok(NOW));
    }

    #[test]
    fn any_v1_against_any_secret_passes_during_rolling() {
        let both = sign(BODY, &["whsec_old", "whsec_new"], NOW);
        assert!(check(&both, &["whsec_new"], NOW).is_ok());
        assert!(check(&both, &["whsec_old"], NOW).is_ok());
        let only_new = sign(BODY, &["whsec_new"], NOW);
        assert!(check(&only_new, &["whsec_old", "whsec_new"], NOW).is_ok());
    }

    #[test]
    fn forged_tampered_and_downgraded_requests_fail() {
        let header = sign(BODY, &["whsec_a"], NOW);
        assert_eq!(
            check(&header, &["whsec_b"], NOW),
            Err(SignatureError::NoMatch)
        );
        let tampered = verify(
            br#"{"id":"evt_2"}"#,
            Some(&header),
            &secrets(&["whsec_a"]),
            NOW,
            300,
        );
        assert_eq!(tampered, Err(SignatureError::NoMatch));
        let v0_only = header.replace("v1=", "v0=");
        assert_eq!(
            check(&v0_only, &["whsec_a"], NOW),
            Err(SignatureError::Malformed("no v1 signature"))
        );
        assert_eq!(
            verify(BODY, None, &secrets(&["whsec_a"]), NOW, 300),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn stale_and_future_timestamps_fail_after_the_signature() {
        let old = sign(BODY, &["whsec_a"], NOW - 301);
        assert!(matches!(
            check(&old, &["whsec_a"], NOW),
            Err(SignatureError::Stale { age_secs: 301, .. })
        ));
        let future = sign(BODY, &["whsec_a"], NOW + 301);
        assert!(matches!(
            check(&future, &["whsec_a"], NOW),
            Err(SignatureError::Stale { .. })
        ));
        let edge = sign(BODY, &["whsec_a"], NOW - 300);
        assert!(check(&edge, &["whsec_a"], NOW).is_ok());
    }

    #[test]
    fn malformed_headers_are_named() {
        for (header, reason) in [
            ("", "expected key=value pairs"),
            ("t=abc,v1=00", "the timestamp is not a number"),
            ("v1=00", "no timestamp (t=)"),
            ("t=1,t=2,v1=00", "more than one timestamp"),
        ] {
            assert_eq!(
                check(header, &["whsec_a"], NOW),
                Err(SignatureError::Malformed(reason)),
                "{header:?}"
            );
        }
        assert_eq!(
            check(&"x".repeat(5000), &["whsec_a"], NOW),
            Err(SignatureError::Malformed("too long"))
        );
        // A junk v1 beside a good one does not hide the good one.
        let good = sign(BODY, &["whsec_a"], NOW);
        assert!(check(&format!("{good},v1=zz"), &["whsec_a"], NOW).is_ok());
    }
}
