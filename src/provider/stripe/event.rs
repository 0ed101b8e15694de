//! The envelope of a Stripe event: what the webhook handler reads before storing the event.
//! The event's object is read later, by the worker, from the stored raw payload.

use serde::Deserialize;

/// Event types the intake worker posts to the ledger (stripe.md §2.1). Other types are
/// acknowledged and kept, marked ignored.
pub const POSTED_TYPES: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.expired",
    "payment_intent.succeeded",
    "charge.succeeded",
    "charge.updated",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "payout.paid",
    "payout.failed",
    "payout.reconciliation_completed",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the body is not UTF-8 JSON")]
    NotUtf8,
    #[error("the body is not a Stripe event: {0}")]
    NotAnEvent(String),
}

/// The fields of an event the inbox keeps beside the raw payload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub livemode: bool,
    #[serde(default)]
    pub api_version: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    id: String,
    object: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    livemode: bool,
    #[serde(default)]
    api_version: Option<String>,
    data: serde_json::Value,
}

impl Envelope {
    /// Reads the envelope of a (verified) body; the body must be a JSON object with
    /// `object: "event"`, an `evt_` id, a type, `created`, `livemode` and a `data.object`.
    pub fn parse(body: &[u8]) -> Result<(Envelope, &str), EnvelopeError> {
        let text = std::str::from_utf8(body).map_err(|_| EnvelopeError::NotUtf8)?;
        // The whole body as a value first, as the worker will read it: a struct skips fields
        // it does not name without checking their strings, so a lone surrogate escape there
        // would be acknowledged here and refused by the worker.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| EnvelopeError::NotAnEvent(e.to_string()))?;
        let raw: Raw =
            serde_json::from_value(value).map_err(|e| EnvelopeError::NotAnEvent(e.to_string()))?;
        let bad = |why: &str| Err(EnvelopeError::NotAnEvent(why.to_owned()));
        if raw.object != "event" {
            return bad("`object` is not \"event\" (thin events are not supported)");
        }
        if !raw.id.starts_with("evt_")
            || raw.id.len() > 255
            || !raw
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return bad("`id` is not an event id (evt_…)");
        }
        if raw.kind.is_empty()
            || raw.kind.len() > 100
            || !raw
                .kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
        {
            return bad("`type` is not an event type");
        }
        if !raw
            .data
            .get("object")
            .is_some_and(serde_json::Value::is_object)
        {
            return bad("`data.object` is missing");
        }
        Ok((
            Envelope {
                id: raw.id,
                kind: raw.kind,
                created: raw.created,
                livemode: raw.livemode,
                api_version: raw.api_version,
            },
            text,
        ))
    }

    /// Whether the worker posts this type to the ledger.
    pub fn is_posted_type(&self) -> bool {
        POSTED_TYPES.contains(&self.kind.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stripe_event_parses() {
        let body = br#"{"id":"evt_1","object":"event","type":"charge.refunded","created":1764012345,"livemode":false,"api_version":"2026-09-30.endive","data":{"object":{"id":"ch_1"}}}"#;
        let (envelope, text) = Envelope::parse(body).unwrap();
        assert_eq!(envelope.kind, "charge.refunded");
        assert!(envelope.is_posted_type());
        assert_eq!(text.as_bytes(), body);
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for body in [
            &b"\xff\xfe"[..],
            b"not json",
            b"[]",
            br#"{"id":"evt_1","object":"charge","type":"x","created":1,"livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"ch_1","object":"event","type":"x","created":1,"livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","object":"event","type":"X Y","created":1,"livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"livemode":false,"data":{}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":"yesterday","livemode":false,"data":{"object":{}}}"#,
            // A lone surrogate in a field the envelope does not read (found by fuzzing).
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"livemode":false,"request":{"id":"\ud800"},"data":{"object":{}}}"#,
        ] {
            assert!(Envelope::parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
