//! A Stripe event's envelope (`provider::stripe::event::Envelope::parse`), read by
//! `POST /webhooks/stripe` after the signature, and what the intake worker reads from the
//! stored payload (`intake::plan::read_event`).
//!
//! Input: the raw body (the seeds are Stripe's own events, `../shared/reference/stripe-fixtures`).
//! Checks: no panic; an envelope that parses keeps the exact body and an `evt_` id;
//! `read_event` on its payload, and on any text under every type the worker knows.
//!
//! `check` is the whole target: cargo-fuzz runs it under coverage guidance
//! (`fuzz/fuzz_targets/`, `scripts/fuzz`), CI on the seeds and their mutations
//! (`tests/fuzz_replay.rs`).

use obole::intake::plan::read_event;
use obole::provider::stripe::event::{Envelope, POSTED_TYPES};

/// Types `read_event` has an arm for beyond the ones the webhook posts, and one it ignores.
const MORE_TYPES: &[&str] = &[
    "checkout.session.async_payment_failed",
    "charge.captured",
    "refund.failed",
    "payout.canceled",
    "customer.created",
];

pub fn check(data: &[u8]) {
    if let Ok((envelope, text)) = Envelope::parse(data) {
        assert_eq!(text.as_bytes(), data);
        assert!(envelope.id.starts_with("evt_"));
        let _ = envelope.is_posted_type();
        // The worker may still find the payload "not JSON": serde_json skips a field the
        // envelope does not name without checking its escapes, and refuses a lone surrogate
        // (`"x":"\ud800."`) when it reads the whole payload. The event is then kept and parked
        // by the worker, not posted: no panic, so not asserted here.
        let _ = read_event(&envelope.kind, text);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let kinds = POSTED_TYPES.len() + MORE_TYPES.len();
        let pick = data.len() % kinds;
        let kind = POSTED_TYPES
            .get(pick)
            .or_else(|| MORE_TYPES.get(pick - POSTED_TYPES.len()))
            .expect("an index below the two lists' length");
        let _ = read_event(kind, text);
    }
}
