//! The check at checkout, before the donor pays: screens the gift against the person's
//! ledger history *and* the room their other open checkouts hold, and holds room for this one
//! until it is paid, abandoned, or expires. Concurrent checkouts of one person are screened
//! one after another under the person's lock, so together they never reserve past a cap.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{screening, StoredRuling};
use crate::campaign::Campaign;
use crate::compliance::screen::Method;
use crate::compliance::{Decision, Declaration, RulePack, Ruling};
use crate::money::Money;
use crate::store::{NewDonor, NewReservation, Store, StoreError};

/// How long a reservation holds room by default: Stripe Checkout sessions live 24 hours at
/// most, and a donor who has not paid within an hour has almost always left.
pub const DEFAULT_HOLD: Duration = Duration::hours(1);

/// A donor's request to give, as the checkout form states it.
#[derive(Debug, Clone)]
pub struct GiftRequest<'a> {
    pub campaign: &'a Campaign,
    pub pack: &'a RulePack,
    pub donor: NewDonor,
    pub amount: Money,
    /// Card at the checkout; the treasurer's method for a gift recorded by hand.
    pub method: Method,
    pub declaration: Declaration,
    /// How long the room is held.
    pub hold_for: Duration,
}

/// What the donor is told before paying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckoutVerdict {
    /// Room is held until `expires_at`; `review` says why a person will look at the gift.
    Reserved {
        reservation_id: i64,
        expires_at: DateTime<Utc>,
        review: Option<String>,
    },
    /// The gift would break a rule. `room` is what the donor may still give under the
    /// tightest cap (for "you may still give €100").
    Refused {
        reason: String,
        rule: Option<String>,
        room: Option<Money>,
    },
}

/// Screens the request and, when it may go ahead, reserves its room. The decision is stored
/// either way.
pub async fn reserve(
    store: &Store,
    request: &GiftRequest<'_>,
    now: DateTime<Utc>,
) -> Result<(CheckoutVerdict, StoredRuling), StoreError> {
    let expires_at = now + request.hold_for;
    let reservation = NewReservation {
        donor: request.donor.clone(),
        amount: request.amount,
        declared: request.declaration.to_json(),
        election: request.declaration.election.clone(),
        expires_at,
    };
    let mut decided: Option<Decision> = None;
    let stored = store
        .reserve(request.campaign, &reservation, now, |history| {
            let screening = screening(
                request.campaign,
                &request.declaration,
                request.donor.payer.name.as_deref(),
                super::has_address(&request.donor.payer),
                &history,
                request.amount,
                now,
                request.method,
            );
            let ruling = Ruling::decide(request.pack, screening)
                .map_err(|e| StoreError::Refused(format!("screening: {e}")))?;
            decided = Some(ruling.decision.clone());
            Ok(ruling)
        })
        .await?;
    let decision =
        decided.ok_or_else(|| StoreError::Corrupt("a reservation without a decision".into()))?;
    let verdict = match stored.reservation_id {
        Some(reservation_id) => CheckoutVerdict::Reserved {
            reservation_id,
            expires_at,
            review: match &decision.verdict {
                crate::compliance::Verdict::Hold { reason } => Some(reason.clone()),
                _ => None,
            },
        },
        None => CheckoutVerdict::Refused {
            reason: refusal_reason(&decision),
            rule: decision.rule.clone(),
            room: decision.room,
        },
    };
    Ok((verdict, stored))
}

fn refusal_reason(decision: &Decision) -> String {
    use crate::compliance::Verdict;
    match &decision.verdict {
        Verdict::Refuse { reason } | Verdict::Hold { reason } => reason.clone(),
        Verdict::AcceptPart { accepted, .. } => {
            format!("the gift passes a limit: at most {accepted} may be given now")
        }
        Verdict::Accept => "accepted".to_owned(),
    }
}
