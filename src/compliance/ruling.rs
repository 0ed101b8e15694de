//! A decision as the books keep it: what `screen` was given, what it said, and what the
//! campaign therefore owes back.
//!
//! Invariants: a [`Ruling`] is a pure function of its [`Screening`] and the pack; the stored
//! inputs replay to the stored decision, byte for byte, as long as the pack id and version
//! are the same ([`replay`]). What is owed back is never negative and never more than the
//! gift: an excess for a part accepted, the whole gift for a refusal, nothing otherwise.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::pack::Packs;
use super::screen::{screen, Decision, Donor, Gift, PastGift, ScreenError, Verdict};
use crate::money::Money;

/// Everything `screen` reads: stored with each decision so that it can be replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screening {
    pub donor: Donor,
    pub history: Vec<PastGift>,
    pub gift: Gift,
}

/// A decision ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruling {
    pub decision: Decision,
    /// `accept`, `accept_part`, `refuse` or `hold`.
    pub verdict: &'static str,
    /// What the campaign must give back: the excess, or the whole gift when refused; zero
    /// when the gift is kept (accepted, or held for review).
    pub owed: Money,
    /// The screening as JSON (the replayable inputs).
    pub inputs: String,
    /// The decision as JSON.
    pub decision_json: String,
}

impl Ruling {
    /// Screens under `pack` (chosen by the caller from the campaign) and prepares the record.
    pub fn decide(pack: &super::RulePack, screening: Screening) -> Result<Ruling, ScreenError> {
        let decision = screen(pack, &screening.donor, &screening.history, &screening.gift)?;
        let zero = Money::zero(screening.gift.amount.currency());
        let (verdict, owed) = match &decision.verdict {
            Verdict::Accept => ("accept", zero),
            Verdict::AcceptPart { excess, .. } => ("accept_part", *excess),
            Verdict::Refuse { .. } => ("refuse", screening.gift.amount),
            Verdict::Hold { .. } => ("hold", zero),
        };
        Ok(Ruling {
            verdict,
            owed,
            inputs: json(&screening),
            decision_json: json(&decision),
            decision,
        })
    }

    /// Why the money is owed back, for the treasurer and the refund request.
    pub fn owed_reason(&self) -> String {
        let rule = self.decision.rule.as_deref().unwrap_or("a rule");
        match &self.decision.verdict {
            Verdict::Refuse { reason } => format!("refused by {rule}: {reason}"),
            _ => format!("excess over {rule}"),
        }
    }

    pub fn remedy_by(&self) -> Option<NaiveDate> {
        self.decision.remedy_by
    }
}

fn json<T: Serialize>(value: &T) -> String {
    // Serialising plain data (strings, integers, dates, maps with string keys) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"unserialisable\":\"{e}\"}}"))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("pack {0} is not known to this deployment")]
    UnknownPack(String),
    #[error("the decision was taken under {pack} version {stored}, this deployment has version {current}")]
    OtherVersion {
        pack: String,
        stored: u32,
        current: u32,
    },
    #[error("the stored inputs do not read back: {0}")]
    BadInputs(String),
    #[error(transparent)]
    Screen(#[from] ScreenError),
    #[error("replayed, the decision differs: stored {stored}, now {now}")]
    Differs { stored: String, now: String },
}

/// Re-runs a stored decision from its stored inputs and checks that it comes out the same.
pub fn replay(
    packs: &Packs,
    pack: &str,
    version: u32,
    inputs: &str,
    stored: &str,
) -> Result<(), ReplayError> {
    let current = packs
        .get(pack)
        .ok_or_else(|| ReplayError::UnknownPack(pack.to_owned()))?;
    if current.version != version {
        return Err(ReplayError::OtherVersion {
            pack: pack.to_owned(),
            stored: version,
            current: current.version,
        });
    }
    let screening: Screening =
        serde_json::from_str(inputs).map_err(|e| ReplayError::BadInputs(e.to_string()))?;
    let now = Ruling::decide(current, screening)?.decision_json;
    if now == stored {
        Ok(())
    } else {
        Err(ReplayError::Differs {
            stored: stored.to_owned(),
            now,
        })
    }
}
