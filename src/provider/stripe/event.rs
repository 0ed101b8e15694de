//! The envelope of a Stripe event: what the webhook handler reads before storing the event.
//! The event's object is read later, by the worker, from the stored raw payload.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};
use serde::{Deserialize, Deserializer};

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
struct Raw<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    created: i64,
    livemode: bool,
    #[serde(default)]
    api_version: Option<String>,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: AnObject,
}

impl Envelope {
    /// Reads the envelope of a (verified) body; the body must be a JSON object with
    /// `object: "event"`, an `evt_` id, a type, `created`, `livemode` and a `data.object`.
    pub fn parse(body: &[u8]) -> Result<(Envelope, &str), EnvelopeError> {
        let text = std::str::from_utf8(body).map_err(|_| EnvelopeError::NotUtf8)?;
        let refused = |e: serde_json::Error| EnvelopeError::NotAnEvent(e.to_string());
        // Every string of the body is read as the worker will read it: a struct skips the
        // fields it does not name without decoding their strings, so a lone surrogate escape
        // there would be acknowledged here and refused by the worker. Read without building
        // the body as a value, which cost the webhook handler a tenth of its time.
        serde_json::from_str::<Wellformed>(text).map_err(refused)?;
        let raw: Raw<'_> = serde_json::from_str(text).map_err(refused)?;
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
        // `data.object` was read as `AnObject`, which refuses anything but a JSON object.
        let AnObject = raw.data.object;
        Ok((
            Envelope {
                id: raw.id.into_owned(),
                kind: raw.kind.into_owned(),
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

/// A JSON object, whatever it holds (`data.object`); anything else is refused.
struct AnObject;

impl<'de> Deserialize<'de> for AnObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AnObject, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = AnObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`data.object` as a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnObject)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Any JSON value, read through to the end of every string (which decodes and so checks its
/// escapes) without keeping any of it.
struct Wellformed;

impl<'de> Deserialize<'de> for Wellformed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Wellformed, D::Error> {
        deserializer.deserialize_any(Wellformed)
    }
}

impl<'de> de::Visitor<'de> for Wellformed {
    type Value = Wellformed;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Wellformed, E> {
        Ok(Wellformed)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Wellformed, E> {
        Ok(Wellformed)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Wellformed, E> {
        Ok(Wellformed)
    }
    // Stripe's JSON holds fractions (an exchange rate): accepted and dropped, never an amount.
    #[allow(clippy::disallowed_types)]
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Wellformed, E> {
        Ok(Wellformed)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Wellformed, E> {
        Ok(Wellformed)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Wellformed, E> {
        Ok(Wellformed)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Wellformed, A::Error> {
        while seq.next_element::<Wellformed>()?.is_some() {}
        Ok(Wellformed)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wellformed, A::Error> {
        while map.next_entry::<Wellformed, Wellformed>()?.is_some() {}
        Ok(Wellformed)
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
        // What real events hold beyond the envelope: fractions, escapes (a surrogate pair),
        // nulls, lists, nesting.
        let body = br#"{"id":"evt_2","object":"event","type":"charge.updated","created":1,"livemode":true,"api_version":null,"request":{"id":null},"data":{"object":{"exchange_rate":1.0825,"name":"Ren\u00e9 \ud83d\ude00 \"R\"","tags":[1,-2,[true,false]],"x":{}},"previous_attributes":{}}}"#;
        let (envelope, _) = Envelope::parse(body).unwrap();
        assert_eq!(envelope.id, "evt_2");
        assert_eq!(envelope.api_version, None);
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
