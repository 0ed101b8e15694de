//! Time: the [`Clock`] seam and the meaning of "as of".
//!
//! Invariants:
//! - Every instant the ledger stores is UTC with microsecond precision (both PostgreSQL and
//!   our SQLite encoding hold exactly microseconds), so a value read back hashes identically.
//! - "As of 31 March" means the end of 31 March in the campaign's time zone: every instant
//!   up to and including 23:59:59.999999 local time on that day.

use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDate, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;

/// A source of the current time, so tests can set it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock, truncated to microseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_micros(Utc::now())
    }
}

/// A clock that stands still until told to move: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(to_micros(start)))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to_micros(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Drops sub-microsecond precision, which neither store keeps.
pub fn to_micros(instant: DateTime<Utc>) -> DateTime<Utc> {
    instant.trunc_subsecs(6)
}

/// Microseconds since the Unix epoch: the integer form of an instant in SQLite and in hashes.
pub fn unix_micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

pub fn from_unix_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsOfError {
    #[error(
        "{0:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant (2027-03-31T18:00:00+02:00)"
    )]
    Unparseable(String),
    #[error("the end of {0} does not exist in time zone {1}")]
    NoSuchLocalTime(NaiveDate, Tz),
}

/// The last instant of `date` in `zone`: a report "as of 31 March" includes everything up to
/// 23:59:59.999999 that day, local time.
pub fn end_of_day(date: NaiveDate, zone: Tz) -> Result<DateTime<Utc>, AsOfError> {
    let next = date
        .succ_opt()
        .ok_or(AsOfError::NoSuchLocalTime(date, zone))?;
    // Midnight can be skipped by a DST change in a few zones; `earliest` takes the first
    // instant of the next local day that exists.
    let next_midnight = zone
        .from_local_datetime(&next.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .ok_or(AsOfError::NoSuchLocalTime(date, zone))?;
    Ok(next_midnight.with_timezone(&Utc) - Duration::microseconds(1))
}

/// Reads an "as of" argument: a date (end of that day in `zone`) or an exact instant.
pub fn parse_as_of(text: &str, zone: Tz) -> Result<DateTime<Utc>, AsOfError> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return end_of_day(date, zone);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|instant| to_micros(instant.with_timezone(&Utc)))
        .map_err(|_| AsOfError::Unparseable(text.to_owned()))
}

/// Reads a "since" argument: a date (the first instant of that day in `zone`) or an exact
/// instant.
pub fn parse_since(text: &str, zone: Tz) -> Result<DateTime<Utc>, AsOfError> {
    let trimmed = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        let before = date
            .pred_opt()
            .ok_or(AsOfError::NoSuchLocalTime(date, zone))?;
        return Ok(end_of_day(before, zone)? + Duration::microseconds(1));
    }
    parse_as_of(trimmed, zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_a_date_is_its_local_midnight() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let start = parse_since("2017-03-31", paris).unwrap();
        assert_eq!(start.to_rfc3339(), "2017-03-30T22:00:00+00:00");
        let instant = parse_since("2017-03-31T12:00:00Z", paris).unwrap();
        assert_eq!(instant.to_rfc3339(), "2017-03-31T12:00:00+00:00");
    }

    #[test]
    fn end_of_day_is_local_midnight_minus_one_microsecond() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let date = NaiveDate::from_ymd_opt(2017, 3, 31).unwrap();
        // Paris is UTC+2 on 31 March 2017 (summer time began on 26 March).
        let end = end_of_day(date, paris).unwrap();
        assert_eq!(end.to_rfc3339(), "2017-03-31T21:59:59.999999+00:00");
    }

    #[test]
    fn as_of_accepts_dates_and_instants_and_refuses_the_rest() {
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            parse_as_of("2026-11-03", ny).unwrap().to_rfc3339(),
            "2026-11-04T04:59:59.999999+00:00"
        );
        assert_eq!(
            parse_as_of("2026-11-03T12:00:00Z", ny)
                .unwrap()
                .to_rfc3339(),
            "2026-11-03T12:00:00+00:00"
        );
        assert!(parse_as_of("31/03/2017", ny).is_err());
        assert!(parse_as_of("2017-02-30", ny).is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(90));
        assert_eq!(clock.now(), start + Duration::seconds(90));
    }
}
