//! Balances and the hourly roll-ups that keep "balance as of t" fast.
//!
//! A balance as of `t` is the sum of the account's postings with `effective_at <= t`. The
//! stores keep, per account and per UTC hour, the sum of the *sealed* postings of that hour
//! (maintained by the sealer in the same transaction that seals them), so a query adds up
//! whole hours before `t`'s hour from the roll-up, the postings of `t`'s own hour, and the
//! few postings not sealed yet. Roll-ups are derived data: `obole verify` recomputes them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::account::AccountKind;
use crate::money::Money;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// The UTC hour an instant falls in, counted from the Unix epoch.
pub fn hour_bucket(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros().div_euclid(MICROS_PER_HOUR)
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
