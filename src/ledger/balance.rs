//! Balances and the roll-ups that keep "balance as of t" fast.
//!
//! A balance as of `t` is the sum of the account's postings with `effective_at <= t`. The
//! stores keep, per account, the sum of the *sealed* postings of each UTC day and of each
//! UTC hour (maintained by the sealer in the transaction that seals them). A query adds up
//! the whole days before `t`'s day, the whole hours of that day before `t`'s hour, the
//! postings of `t`'s own hour up to `t`, and the few postings not sealed yet: a few hundred
//! rows per account whatever the size of the journal. Roll-ups are derived data:
//! `obole verify` recomputes them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::account::AccountKind;
use crate::ids::AccountId;
use crate::money::Money;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// The UTC hour an instant falls in, counted from the Unix epoch.
pub fn hour_bucket(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros().div_euclid(MICROS_PER_HOUR)
}

/// The UTC day an instant falls in, counted from the Unix epoch.
pub fn day_bucket(instant: DateTime<Utc>) -> i64 {
    hour_bucket(instant).div_euclid(HOURS_PER_DAY)
}

pub const HOURS_PER_DAY: i64 = 24;

/// The length of time a roll-up row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    Hour,
    Day,
}

impl Span {
    pub fn as_str(&self) -> &'static str {
        match self {
            Span::Hour => "hour",
            Span::Day => "day",
        }
    }

    pub fn parse(text: &str) -> Option<Span> {
        [Span::Hour, Span::Day]
            .into_iter()
            .find(|span| span.as_str() == text)
    }
}

/// A roll-up row's key: the account, the span, and the hour or day number.
pub type RollupKey = (AccountId, Span, i64);

/// The roll-up rows a posting effective at `instant` adds to: its hour and its day.
pub fn rollup_keys(account: AccountId, instant: DateTime<Utc>) -> [RollupKey; 2] {
    [
        (account, Span::Hour, hour_bucket(instant)),
        (account, Span::Day, day_bucket(instant)),
    ]
}

/// The first instant (in microseconds since the epoch) of an hour bucket.
pub fn hour_start_micros(bucket: i64) -> i64 {
    bucket.saturating_mul(MICROS_PER_HOUR)
}

/// An account's balance at some instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountBalance {
    pub account: String,
    pub kind: AccountKind,
    /// Debits minus credits: positive for assets that hold money, negative for income.
    pub signed: Money,
}

impl AccountBalance {
    /// The balance on the account's normal side, as a treasurer reads it: donations
    /// received show as a positive income, money at the bank as a positive asset.
    pub fn natural(&self) -> Money {
        Money::from_minor(
            self.signed.minor().saturating_mul(self.kind.normal_sign()),
            self.signed.currency(),
        )
    }
}
