//! What the intake worker should do about one stored event, decided without I/O.
//!
//! An event is only a hint: the worker never posts from its snapshot, it asks Stripe for the
//! current state of the object the event is about (its *subject*) and posts every money
//! movement that state shows. So the events of one donation, in any order and any number of
//! times, converge on the same ledger. From the snapshot the worker takes only what never
//! changes: which object it is about, and what the donor typed into Checkout.
//!
//! Invariants: [`read_event`] is total over well-formed JSON (an unknown type is
//! [`Subject::Nothing`]); [`backoff`] grows exponentially and is capped.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// The object whose current state the worker fetches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Charge(String),
    /// A Checkout session names its payment intent, not the charge: the worker looks the
    /// charge up.
    PaymentIntent(String),
    Payout(String),
    /// A Checkout session that ended unpaid (expired): the room its reservation held goes
    /// back. Nothing is posted.
    EndedCheckout(String),
    /// Nothing to post (an unpaid session, a type Obole does not post).
    Nothing(&'static str),
}

/// What the donor told Checkout: fixed once the session completed, so the snapshot is
/// authoritative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    pub session_id: String,
    /// The custom fields as a JSON object `{key: value}`.
    pub custom_fields: Option<String>,
}

/// An event read for the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPlan {
    pub subject: Subject,
    /// The event is about a refund: list the charge's refunds even if the charge no longer
    /// shows an amount refunded (a refund that failed later).
    pub refunds: bool,
    /// The event is about a dispute.
    pub disputes: bool,
    pub session: Option<SessionFacts>,
    /// `(payment intent, charge)` when the snapshot links the two (a link never changes), so
    /// a session's event can join its charge's events without asking Stripe.
    pub link: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the stored payload is not JSON: {0}")]
    NotJson(String),
    #[error("a {kind} event without {field}")]
    Missing { kind: String, field: &'static str },
}

fn text<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str)
}

/// Reads one stored event (its type and the exact payload Stripe signed).
pub fn read_event(kind: &str, payload: &str) -> Result<EventPlan, PlanError> {
    let event: StoredEvent =
        serde_json::from_str(payload).map_err(|e| PlanError::NotJson(e.to_string()))?;
    let object = &event.data.object.into_value();
    let required = |field: &'static str| {
        text(object, field)
            .map(str::to_owned)
            .ok_or_else(|| PlanError::Missing {
                kind: kind.to_owned(),
                field,
            })
    };
    let mut plan = EventPlan {
        subject: Subject::Nothing("not a type Obole posts"),
        refunds: false,
        disputes: false,
        session: None,
        link: None,
    };
    plan.subject = match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            plan.session = Some(SessionFacts {
                session_id: required("id")?,
                custom_fields: custom_fields(object),
            });
            match (
                text(object, "payment_status"),
                text(object, "payment_intent"),
            ) {
                (Some("paid"), Some(intent)) => Subject::PaymentIntent(intent.to_owned()),
                (Some("paid"), None) => {
                    return Err(PlanError::Missing {
                        kind: kind.to_owned(),
                        field: "payment_intent",
                    })
                }
                _ => Subject::Nothing("the Checkout session is not paid yet"),
            }
        }
        "checkout.session.expired" | "checkout.session.async_payment_failed" => {
            Subject::EndedCheckout(required("id")?)
        }
        "payment_intent.succeeded" => match text(object, "latest_charge") {
            Some(charge) => Subject::Charge(charge.to_owned()),
            None => Subject::PaymentIntent(required("id")?),
        },
        "charge.succeeded" | "charge.updated" | "charge.captured" => {
            Subject::Charge(required("id")?)
        }
        "charge.refunded" => {
            plan.refunds = true;
            Subject::Charge(required("id")?)
        }
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            plan.refunds = true;
            Subject::Charge(required("charge")?)
        }
        k if k.starts_with("charge.dispute.") => {
            plan.disputes = true;
            Subject::Charge(required("charge")?)
        }
        "payout.paid" | "payout.failed" | "payout.canceled" | "payout.reconciliation_completed" => {
            Subject::Payout(required("id")?)
        }
        _ => Subject::Nothing("not a type Obole posts"),
    };
    plan.link = match (&plan.subject, kind) {
        (Subject::Charge(charge), "payment_intent.succeeded") => {
            text(object, "id").map(|pi| (pi.to_owned(), charge.clone()))
        }
        (Subject::Charge(charge), k)
            if k.starts_with("charge.") && !k.starts_with("charge.dispute.") =>
        {
            text(object, "payment_intent").map(|pi| (pi.to_owned(), charge.clone()))
        }
        _ => None,
    };
    Ok(plan)
}

/// The part of a stored event the plan reads: the fields of `data.object` named below, each
/// as it is; the rest of the payload is skipped, not built (it was checked when the event
/// was received).
#[derive(Deserialize)]
struct StoredEvent {
    #[serde(default)]
    data: StoredData,
}

#[derive(Deserialize, Default)]
struct StoredData {
    #[serde(default)]
    object: ReadFields,
}

#[derive(Deserialize, Default)]
struct ReadFields {
    id: Option<Value>,
    charge: Option<Value>,
    payment_intent: Option<Value>,
    payment_status: Option<Value>,
    latest_charge: Option<Value>,
    custom_fields: Option<Value>,
}

impl ReadFields {
    /// The fields present, as a JSON object.
    fn into_value(self) -> Value {
        let fields = [
            ("id", self.id),
            ("charge", self.charge),
            ("payment_intent", self.payment_intent),
            ("payment_status", self.payment_status),
            ("latest_charge", self.latest_charge),
            ("custom_fields", self.custom_fields),
        ];
        Value::Object(
            fields
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), value?)))
                .collect(),
        )
    }
}

/// Checkout's `custom_fields` as `{key: value}` (text, dropdown or numeric), `None` if none.
fn custom_fields(session: &Value) -> Option<String> {
    let fields = session.get("custom_fields")?.as_array()?;
    let map: serde_json::Map<String, Value> = fields
        .iter()
        .filter_map(|field| {
            let key = text(field, "key")?;
            let kind = text(field, "type")?;
            let value = field.get(kind)?.get("value")?;
            (!value.is_null()).then(|| (key.to_owned(), value.clone()))
        })
        .collect();
    (!map.is_empty()).then(|| Value::Object(map).to_string())
}

/// How the worker retries a failing event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; it doubles with each further one.
    pub base: Duration,
    pub cap: Duration,
    /// After this many failed attempts the event is parked.
    pub max_attempts: i32,
}

impl Default for RetryPolicy {
    /// 2 s, 4 s, … capped at 15 min; parked after 12 attempts (≈ 1 h 10 min in all), well
    /// inside the 3 days Stripe keeps retrying, so a parked event can still be fixed and
    /// re-queued (`obole intake retry`).
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(15 * 60),
            max_attempts: 12,
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt, after `failures` failed attempts (≥ 1).
    pub fn backoff(&self, failures: i32) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.cap, |wait| wait.min(self.cap))
    }

    /// Whether an event that has now failed `failures` times is parked rather than retried.
    pub fn gives_up(&self, failures: i32) -> bool {
        failures >= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: &str, object: &str) -> Result<EventPlan, PlanError> {
        read_event(
            kind,
            &format!(r#"{{"id":"evt_1","type":"{kind}","data":{{"object":{object}}}}}"#),
        )
    }

    #[test]
    fn each_event_names_the_object_whose_state_is_fetched() {
        let cases = [
            (
                "charge.succeeded",
                r#"{"id":"ch_1"}"#,
                Subject::Charge("ch_1".into()),
            ),
            (
                "charge.updated",
                r#"{"id":"ch_1"}"#,
                Subject::Charge("ch_1".into()),
            ),
            (
                "charge.refunded",
                r#"{"id":"ch_1"}"#,
                Subject::Charge("ch_1".into()),
            ),
            (
                "refund.created",
                r#"{"id":"re_1","charge":"ch_1"}"#,
                Subject::Charge("ch_1".into()),
            ),
            (
                "charge.dispute.closed",
                r#"{"id":"du_1","charge":"ch_1"}"#,
                Subject::Charge("ch_1".into()),
            ),
            (
                "payment_intent.succeeded",
                r#"{"id":"pi_1","latest_charge":"ch_1"}"#,
                Subject::Charge("ch_1".into()),
            ),
            (
                "payment_intent.succeeded",
                r#"{"id":"pi_1","latest_charge":null}"#,
                Subject::PaymentIntent("pi_1".into()),
            ),
            (
                "checkout.session.completed",
                r#"{"id":"cs_1","payment_status":"paid","payment_intent":"pi_1"}"#,
                Subject::PaymentIntent("pi_1".into()),
            ),
            (
                "payout.paid",
                r#"{"id":"po_1"}"#,
                Subject::Payout("po_1".into()),
            ),
            (
                "payout.failed",
                r#"{"id":"po_1"}"#,
                Subject::Payout("po_1".into()),
            ),
        ];
        for (kind, object, subject) in cases {
            assert_eq!(plan(kind, object).unwrap().subject, subject, "{kind}");
        }
    }

    #[test]
    fn charge_and_payment_intent_snapshots_link_the_two() {
        let link = |kind, object| plan(kind, object).unwrap().link;
        let both = Some(("pi_1".to_owned(), "ch_1".to_owned()));
        assert_eq!(
            link(
                "charge.succeeded",
                r#"{"id":"ch_1","payment_intent":"pi_1"}"#
            ),
            both
        );
        assert_eq!(
            link(
                "payment_intent.succeeded",
                r#"{"id":"pi_1","latest_charge":"ch_1"}"#
            ),
            both
        );
        assert_eq!(
            link("charge.succeeded", r#"{"id":"ch_1","payment_intent":null}"#),
            None
        );
        assert_eq!(
            link(
                "refund.created",
                r#"{"id":"re_1","charge":"ch_1","payment_intent":"pi_1"}"#
            ),
            None
        );
    }

    #[test]
    fn unpaid_sessions_and_other_types_post_nothing() {
        for (kind, object) in [
            (
                "checkout.session.completed",
                r#"{"id":"cs_1","payment_status":"unpaid","payment_intent":"pi_1"}"#,
            ),
            ("customer.created", r#"{"id":"cus_1"}"#),
        ] {
            assert!(
                matches!(plan(kind, object).unwrap().subject, Subject::Nothing(_)),
                "{kind}"
            );
        }
    }

    #[test]
    fn an_expired_session_gives_its_reservation_back() {
        let expired = plan("checkout.session.expired", r#"{"id":"cs_1"}"#).unwrap();
        assert_eq!(expired.subject, Subject::EndedCheckout("cs_1".into()));
        assert!(plan("checkout.session.expired", "{}").is_err());
    }

    #[test]
    fn refund_and_dispute_events_ask_for_their_lists() {
        let refund = plan("refund.updated", r#"{"id":"re_1","charge":"ch_1"}"#).unwrap();
        assert!(refund.refunds && !refund.disputes);
        let dispute = plan("charge.dispute.created", r#"{"id":"du_1","charge":"ch_1"}"#).unwrap();
        assert!(dispute.disputes && !dispute.refunds);
    }

    #[test]
    fn a_session_keeps_what_the_donor_typed() {
        let p = plan(
            "checkout.session.completed",
            r#"{"id":"cs_1","payment_status":"paid","payment_intent":"pi_1","custom_fields":[
                {"key":"occupation","type":"text","text":{"value":"Enseignante"}},
                {"key":"employer","type":"text","text":{"value":null}},
                {"key":"eligibility","type":"dropdown","dropdown":{"value":"yes"}}]}"#,
        )
        .unwrap();
        let session = p.session.unwrap();
        assert_eq!(session.session_id, "cs_1");
        assert_eq!(
            session.custom_fields.as_deref(),
            Some(r#"{"eligibility":"yes","occupation":"Enseignante"}"#)
        );
    }

    #[test]
    fn malformed_events_are_errors_not_guesses() {
        assert!(matches!(
            read_event("charge.updated", "{not json"),
            Err(PlanError::NotJson(_))
        ));
        assert_eq!(
            plan("refund.created", r#"{"id":"re_1"}"#),
            Err(PlanError::Missing {
                kind: "refund.created".into(),
                field: "charge"
            })
        );
        assert!(plan(
            "checkout.session.completed",
            r#"{"id":"cs_1","payment_status":"paid"}"#
        )
        .is_err());
    }

    #[test]
    fn backoff_doubles_then_caps_and_the_worker_gives_up_at_the_bound() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=12).map(|n| policy.backoff(n).as_secs()).collect();
        assert_eq!(
            waits,
            vec![2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
        );
        assert_eq!(policy.backoff(i32::MAX), policy.cap);
        assert!(!policy.gives_up(11));
        assert!(policy.gives_up(12));
    }
}
