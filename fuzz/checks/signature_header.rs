//! The `Stripe-Signature` check (`provider::stripe::signature`), the first thing
//! `POST /webhooks/stripe` does with a request from anyone.
//!
//! Input: the header's text up to the first newline, the raw body after it (the seeds are
//! headers signed with `whsec_fuzz` at `NOW`, so the fuzzer starts from ones that verify).
//! Checks: no panic; a header only verifies if it carries the MAC of a configured secret for
//! this body at a timestamp within the tolerance; what `sign` makes for any body, secret and
//! timestamp verifies, and does not verify another body.
//!
//! `check` is the whole target: cargo-fuzz runs it under coverage guidance
//! (`fuzz/fuzz_targets/`, `scripts/fuzz`), CI on the seeds and their mutations
//! (`tests/fuzz_replay.rs`).

use obole::provider::stripe::signature::{sign, verify, SignatureError, DEFAULT_TOLERANCE_SECS};

const NOW: i64 = 1_764_012_345;
const SECRET: &str = "whsec_fuzz";
const OTHER: &str = "whsec_other";

pub fn check(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    // A header value reaches `verify` as text (`HeaderValue::to_str`).
    let header = String::from_utf8_lossy(header);
    let secrets = [SECRET.to_owned(), OTHER.to_owned()];

    for (now, tolerance) in [
        (NOW, DEFAULT_TOLERANCE_SECS),
        (i64::MIN, 0),
        (i64::MAX, i64::MAX),
    ] {
        if let Ok(t) = verify(body, Some(&header), &secrets, now, tolerance) {
            assert!(now.saturating_sub(t).saturating_abs() <= tolerance);
            // It verified: the header carries one secret's v1 for this body at `t`.
            let lower = header.to_ascii_lowercase();
            assert!(
                secrets.iter().any(|s| {
                    let genuine = sign(body, &[s], t);
                    let (_, v1) = genuine.split_once(",v1=").expect("sign writes a v1");
                    lower.contains(v1)
                }),
                "verified without a genuine signature: {header:?}"
            );
        }
    }
    assert_eq!(
        verify(body, None, &secrets, NOW, DEFAULT_TOLERANCE_SECS),
        Err(SignatureError::Missing)
    );

    // Round trip, with any text as a secret (HMAC takes keys of any length) and a timestamp
    // from the body's first bytes.
    let t = body
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(NOW, i64::from_le_bytes);
    let own = header.to_string();
    let signed = sign(body, &[&own, SECRET], t);
    assert_eq!(verify(body, Some(&signed), &[own], t, 0), Ok(t));
    assert_eq!(
        verify(
            body,
            Some(&signed),
            &[SECRET.to_owned()],
            t,
            DEFAULT_TOLERANCE_SECS
        ),
        Ok(t)
    );
    let mut other = body.to_vec();
    other.push(b'x');
    assert_eq!(
        verify(&other, Some(&signed), &[SECRET.to_owned()], t, 0),
        Err(SignatureError::NoMatch)
    );
}
