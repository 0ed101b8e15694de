//! The envelope of a Stripe event: what the webhook handler reads before storing the event.
//! The event's object is read later, by the worker, from the stored raw payload.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess};
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

/// The envelope's fields, read in the one pass over the body that also reads every other
/// value through (`Wellformed`).
struct Raw<'a> {
    id: Text<'a>,
    object: Text<'a>,
    kind: Text<'a>,
    created: i64,
    livemode: bool,
    api_version: Option<String>,
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Raw<'de>, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Stripe event as a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
                let mut id = None;
                let mut object = None;
                let mut kind = None;
                let mut created = None;
                let mut livemode = None;
                let mut api_version = None;
                let mut data = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match &*key.0 {
                        "id" => once(&mut id, "id", map.next_value()?)?,
                        "object" => once(&mut object, "object", map.next_value()?)?,
                        "type" => once(&mut kind, "type", map.next_value()?)?,
                        "created" => once(&mut created, "created", map.next_value()?)?,
                        "livemode" => once(&mut livemode, "livemode", map.next_value()?)?,
                        "api_version" => once(&mut api_version, "api_version", map.next_value()?)?,
                        "data" => once(&mut data, "data", map.next_value::<Data>()?)?,
                        _ => {
                            map.next_value::<Wellformed>()?;
                        }
                    }
                }
                let Data = data.ok_or_else(|| de::Error::missing_field("data"))?;
                Ok(Raw {
                    id: id.ok_or_else(|| de::Error::missing_field("id"))?,
                    object: object.ok_or_else(|| de::Error::missing_field("object"))?,
                    kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
                    created: created.ok_or_else(|| de::Error::missing_field("created"))?,
                    livemode: livemode.ok_or_else(|| de::Error::missing_field("livemode"))?,
                    api_version: api_version.flatten(),
                })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// `data`: an object holding `object` (a JSON object, `AnObject`) and whatever else.
struct Data;

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Data, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Data;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`data` as a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
                let mut object = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if key.0 == "object" {
                        once(&mut object, "object", map.next_value::<AnObject>()?)?;
                    } else {
                        map.next_value::<Wellformed>()?;
                    }
                }
                let AnObject = object.ok_or_else(|| de::Error::missing_field("object"))?;
                Ok(Data)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Keeps a field's value, refusing a second one as serde's derived readers do.
fn once<T, E: de::Error>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(value);
    Ok(())
}

/// A string, borrowed from the body when it holds no escape.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'de>, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl Envelope {
    /// Reads the envelope of a (verified) body; the body must be a JSON object with
    /// `object: "event"`, an `evt_` id, a type, `created`, `livemode` and a `data.object`.
    pub fn parse(body: &[u8]) -> Result<(Envelope, &str), EnvelopeError> {
        let text = std::str::from_utf8(body).map_err(|_| EnvelopeError::NotUtf8)?;
        let refused = |e: serde_json::Error| EnvelopeError::NotAnEvent(e.to_string());
        // Every string of the body is read as the worker will read it, escapes decoded: a
        // reader that skipped the fields it does not name would acknowledge a lone surrogate
        // escape there that the worker then refuses. One pass, without building the body as
        // a value (which cost the webhook handler a tenth of its time).
        let raw: Raw<'_> = serde_json::from_str(text).map_err(refused)?;
        let bad = |why: &str| Err(EnvelopeError::NotAnEvent(why.to_owned()));
        let (id, kind) = (raw.id.0, raw.kind.0);
        if raw.object.0 != "event" {
            return bad("`object` is not \"event\" (thin events are not supported)");
        }
        if !id.starts_with("evt_")
            || id.len() > 255
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return bad("`id` is not an event id (evt_…)");
        }
        if kind.is_empty()
            || kind.len() > 100
            || !kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
        {
            return bad("`type` is not an event type");
        }
        // `data.object` was read as `AnObject`, which refuses anything but a JSON object.
        Ok((
            Envelope {
                id: id.into_owned(),
                kind: kind.into_owned(),
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
                while map.next_entry::<Wellformed, Wellformed>()?.is_some() {}
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
            // The same in `data` beside the object, in the object, and in a key.
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"livemode":false,"data":{"object":{},"previous_attributes":{"a":"\udc00"}}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"livemode":false,"data":{"object":{"n":["\ud800"]}}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"livemode":false,"\ud800":1,"data":{"object":{}}}"#,
            // A field given twice, or missing.
            br#"{"id":"evt_1","id":"evt_2","object":"event","type":"x","created":1,"livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"livemode":false,"data":{"object":{},"object":{}}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"livemode":false}"#,
        ] {
            assert!(Envelope::parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
