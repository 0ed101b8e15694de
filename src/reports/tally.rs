//! Tallies: what keeps the summary's gift figures — contributions, distinct donors, average
//! and median gift — fast at a million gifts. Pure: the stores read and write the rows.
//!
//! A contribution is *counted* when its first ledger entry is sealed: the sealer writes its
//! `counted_gifts` row, once and never again — `counted_at` (when it entered the books: the
//! later of its payment and its earliest entry) and `kept` (its amount less the excess set
//! aside when it posted) — and adds one to the `gifts` tally of that kept amount for its UTC
//! day and its UTC month. A person's first counted gift with something kept is their
//! `donor_firsts` row, and `first_gifts` tallies count persons by the day and month of it;
//! linking, merging and splitting persons move those counts (see [`first_gift_changes`]).
//!
//! The figures as of `t` add the tallies of the whole months before `t`'s month, of the whole
//! days of that month before `t`'s day, the counted gifts (and first gifts) of `t`'s day up to
//! `t`, and the gifts posted but not sealed yet: a few thousand rows whatever the size of the
//! campaign. They equal what `Store::kept_gifts` reads gift by gift, which tests compare.
//!
//! Invariants: a gift is tallied once (its `counted_gifts` row is written at most once); a
//! person is in `donor_firsts` iff they have a counted gift with something kept, and each
//! `first_gifts` count is the number of `donor_firsts` rows in its period; no count is
//! negative (the stores check it too).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};

use crate::ledger::balance::day_bucket;
use crate::ledger::entry::StoredEntry;
use crate::money::{Currency, Money, MoneyError};

/// The accounts whose balance is what the books kept of a gift: its credit to income, less
/// refunds and chargebacks (the contra accounts).
pub const GIFT_ACCOUNTS: [&str; 3] = [
    "income:donations",
    "income:donations:refunds",
    "income:donations:chargebacks",
];

/// What a sealed entry linked to a gift moved on the gift's accounts (credits negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiftMovement {
    pub entry_id: i64,
    pub contribution_id: i64,
    pub effective_at: DateTime<Utc>,
    pub amount: i64,
}

/// The gift movement of `entry`, if it is linked to a gift (zero when it moved none of the
/// gift's accounts: it still shows the gift was posted by then).
pub fn gift_movement(entry: &StoredEntry) -> Option<GiftMovement> {
    let contribution_id = entry.content.links.contribution_id?;
    let amount = entry
        .content
        .postings
        .iter()
        .filter(|p| GIFT_ACCOUNTS.contains(&p.account.as_str()))
        .map(|p| p.amount.minor())
        .fold(0i64, i64::saturating_add);
    Some(GiftMovement {
        entry_id: entry.id.0,
        contribution_id,
        effective_at: entry.content.effective_at,
        amount,
    })
}

/// What a tally counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Figure {
    /// Counted gifts with something kept, by kept amount (minor units).
    Gifts,
    /// Persons, by the time of their first counted gift (kept amount 0).
    FirstGifts,
}

impl Figure {
    pub fn as_str(&self) -> &'static str {
        match self {
            Figure::Gifts => "gifts",
            Figure::FirstGifts => "first_gifts",
        }
    }
}

/// The length of time a tally covers, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub fn as_str(&self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

/// The UTC calendar month an instant falls in, counted from January 1970.
pub fn month_bucket(instant: DateTime<Utc>) -> i64 {
    (i64::from(instant.year()) - 1970) * 12 + i64::from(instant.month0())
}

/// A tally row's key: campaign, figure, period, its day or month number, kept amount.
pub type TallyKey = (i64, Figure, Period, i64, i64);

/// Changes to tally rows, by key; zero changes are dropped when written.
pub type TallyChanges = BTreeMap<TallyKey, i64>;

fn add(
    changes: &mut TallyChanges,
    campaign: i64,
    figure: Figure,
    at: DateTime<Utc>,
    kept: i64,
    by: i64,
) {
    for (period, bucket) in [
        (Period::Day, day_bucket(at)),
        (Period::Month, month_bucket(at)),
    ] {
        *changes
            .entry((campaign, figure, period, bucket, kept))
            .or_default() += by;
    }
}

/// The tallies a newly counted gift adds to (none when nothing of it was kept).
pub fn count_gift(changes: &mut TallyChanges, campaign: i64, counted_at: DateTime<Utc>, kept: i64) {
    if kept > 0 {
        add(changes, campaign, Figure::Gifts, counted_at, kept, 1);
    }
}

/// A person's first counted gift with something kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstGift {
    pub person_id: i64,
    pub campaign_id: i64,
    pub at: DateTime<Utc>,
}

/// What refreshing some persons' first gifts writes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FirstGiftChanges {
    /// Rows to insert or overwrite.
    pub set: Vec<FirstGift>,
    /// Persons to delete (merged into another, or with nothing kept any more).
    pub cleared: Vec<i64>,
    pub tallies: TallyChanges,
}

/// From the stored first gifts of some persons (`before`) and the ones their gifts give now
/// (`now`; a person absent from it has none), what to write. A person listed twice counts
/// once: callers read the persons of a batch of gifts, two of which may be one person's.
pub fn first_gift_changes(before: &[FirstGift], now: &[FirstGift]) -> FirstGiftChanges {
    let stored: BTreeMap<i64, FirstGift> = before.iter().map(|f| (f.person_id, *f)).collect();
    let current: BTreeMap<i64, FirstGift> = now.iter().map(|f| (f.person_id, *f)).collect();
    let mut changes = FirstGiftChanges::default();
    for old in stored.values() {
        if current.get(&old.person_id) != Some(old) {
            add(
                &mut changes.tallies,
                old.campaign_id,
                Figure::FirstGifts,
                old.at,
                0,
                -1,
            );
            if !current.contains_key(&old.person_id) {
                changes.cleared.push(old.person_id);
            }
        }
    }
    for new in current.values() {
        if stored.get(&new.person_id) != Some(new) {
            add(
                &mut changes.tallies,
                new.campaign_id,
                Figure::FirstGifts,
                new.at,
                0,
                1,
            );
            changes.set.push(*new);
        }
    }
    changes.tallies.retain(|_, by| *by != 0);
    changes
}

/// The first gifts of persons who just had gifts counted: each the earlier of the stored one
/// (`before`) and their earliest newly counted gift (`counted`). Counting only adds gifts,
/// so a first gift only ever moves earlier; merges and splits recompute instead.
pub fn with_counted(before: &[FirstGift], counted: &[FirstGift]) -> Vec<FirstGift> {
    let mut firsts: BTreeMap<i64, FirstGift> = before.iter().map(|f| (f.person_id, *f)).collect();
    for gift in counted {
        firsts
            .entry(gift.person_id)
            .and_modify(|first| {
                if gift.at < first.at {
                    first.at = gift.at;
                }
            })
            .or_insert(*gift);
    }
    firsts.into_values().collect()
}

/// The tally rows a report adds up for "as of `t`", as bucket ranges: whole months before
/// `t`'s month, and whole days of that month before `t`'s day. The rest (`t`'s own day up to
/// `t`) is read from the gifts themselves, from `day_start` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOfRanges {
    /// Month buckets `< months_before`.
    pub months_before: i64,
    /// Day buckets in `days_from..days_before`.
    pub days_from: i64,
    pub days_before: i64,
    /// The first instant of `t`'s UTC day.
    pub day_start: DateTime<Utc>,
}

impl AsOfRanges {
    pub fn of(as_of: DateTime<Utc>) -> AsOfRanges {
        let day = as_of.date_naive();
        let month_start = day.with_day(1).unwrap_or(day);
        let day_start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        AsOfRanges {
            months_before: month_bucket(as_of),
            days_from: day_bucket(
                month_start
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc(),
            ),
            days_before: day_bucket(as_of),
            day_start,
        }
    }
}

/// The gift figures as of an instant: how many gifts kept each amount, and distinct donors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GiftCounts {
    /// Kept amount (minor units, > 0) → number of gifts.
    pub by_kept: BTreeMap<i64, u64>,
    pub donors: u64,
}

/// The counts' totals in `currency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiftStatistics {
    pub count: u64,
    pub total: Money,
    /// Rounded half to even; zero when there is no gift.
    pub average: Money,
    /// The middle gift, or the mean of the two middle ones rounded half to even.
    pub median: Money,
}

impl GiftCounts {
    /// Adds `count` gifts that kept `kept` minor units.
    pub fn add(&mut self, kept: i64, count: u64) {
        if count > 0 {
            *self.by_kept.entry(kept).or_default() += count;
        }
    }

    pub fn statistics(&self, currency: Currency) -> Result<GiftStatistics, MoneyError> {
        let zero = Money::zero(currency);
        let mut count: u64 = 0;
        let mut total = zero;
        for (&kept, &n) in &self.by_kept {
            let overflow = || MoneyError::Overflow(format!("{n} gifts of {kept}"));
            count = count.checked_add(n).ok_or_else(overflow)?;
            let amount = i64::try_from(n)
                .ok()
                .and_then(|n| kept.checked_mul(n))
                .ok_or_else(overflow)?;
            total = total.checked_add(Money::from_minor(amount, currency))?;
        }
        let average = if count == 0 {
            zero
        } else {
            total.divided_by(count)?
        };
        let median = match count {
            0 => zero,
            n if n % 2 == 1 => Money::from_minor(self.nth(n / 2), currency),
            n => Money::from_minor(self.nth(n / 2 - 1), currency)
                .checked_add(Money::from_minor(self.nth(n / 2), currency))?
                .divided_by(2)?,
        };
        Ok(GiftStatistics {
            count,
            total,
            average,
            median,
        })
    }

    /// The kept amount of the `index`-th gift (from 0) in increasing order.
    fn nth(&self, index: u64) -> i64 {
        let mut seen = 0u64;
        for (&kept, &n) in &self.by_kept {
            seen += n;
            if index < seen {
                return kept;
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn first(person: i64, when: &str) -> FirstGift {
        FirstGift {
            person_id: person,
            campaign_id: 1,
            at: at(when),
        }
    }

    #[test]
    fn months_count_from_january_1970() {
        assert_eq!(month_bucket(at("1970-01-31T23:59:59Z")), 0);
        assert_eq!(month_bucket(at("2027-03-31T22:30:00Z")), 57 * 12 + 2);
        assert_eq!(month_bucket(at("2027-04-01T00:00:00Z")), 57 * 12 + 3);
    }

    #[test]
    fn as_of_ranges_split_at_the_month_and_the_day() {
        let ranges = AsOfRanges::of(at("2027-03-31T22:00:00Z"));
        assert_eq!(
            ranges.months_before,
            month_bucket(at("2027-03-01T00:00:00Z"))
        );
        assert_eq!(ranges.days_from, day_bucket(at("2027-03-01T00:00:00Z")));
        assert_eq!(ranges.days_before, day_bucket(at("2027-03-31T00:00:00Z")));
        assert_eq!(ranges.day_start, at("2027-03-31T00:00:00Z"));
    }

    #[test]
    fn a_merge_counts_one_person_at_the_earlier_first_gift() {
        // Persons 7 and 9 merge into 7; 9 gave first.
        let before = [
            first(7, "2027-03-10T10:00:00Z"),
            first(9, "2027-02-01T10:00:00Z"),
        ];
        let now = [first(7, "2027-02-01T10:00:00Z")];
        let changes = first_gift_changes(&before, &now);
        assert_eq!(changes.set, vec![now[0]]);
        assert_eq!(changes.cleared, vec![9]);
        let net: i64 = changes
            .tallies
            .iter()
            .filter(|(k, _)| k.2 == Period::Month)
            .map(|(_, by)| by)
            .sum();
        assert_eq!(net, -1, "two persons became one");
        let february = month_bucket(at("2027-02-01T00:00:00Z"));
        // February: −1 (9 leaves) +1 (7 arrives) = no change, so no row is written.
        assert!(!changes
            .tallies
            .keys()
            .any(|k| k.2 == Period::Month && k.3 == february));
        assert_eq!(
            changes.tallies[&(1, Figure::FirstGifts, Period::Month, february + 1, 0)],
            -1
        );
    }

    #[test]
    fn counting_moves_a_first_gift_earlier_only() {
        let before = [first(7, "2027-03-10T10:00:00Z")];
        let counted = [
            first(7, "2027-03-12T10:00:00Z"),
            first(8, "2027-03-11T10:00:00Z"),
            first(8, "2027-03-09T10:00:00Z"),
        ];
        assert_eq!(
            with_counted(&before, &counted),
            vec![
                first(7, "2027-03-10T10:00:00Z"),
                first(8, "2027-03-09T10:00:00Z")
            ]
        );
        let earlier = [first(7, "2027-03-01T10:00:00Z")];
        assert_eq!(with_counted(&before, &earlier), earlier.to_vec());
    }

    #[test]
    fn a_person_read_twice_moves_once() {
        // Two of person 7's gifts, counted in one batch, both earlier than the stored first:
        // the batch reads the person once per gift.
        let stored = first(7, "2027-03-10T10:00:00Z");
        let earlier = first(7, "2027-03-01T10:00:00Z");
        let changes = first_gift_changes(&[stored, stored], &[earlier, earlier]);
        assert_eq!(changes.set, vec![earlier]);
        assert!(changes.cleared.is_empty());
        let march = month_bucket(at("2027-03-01T00:00:00Z"));
        assert!(
            !changes
                .tallies
                .keys()
                .any(|k| k.2 == Period::Month && k.3 == march),
            "one person leaves March and comes back to it: {:?}",
            changes.tallies
        );
        let by_day: Vec<i64> = changes.tallies.values().copied().collect();
        assert_eq!(
            by_day,
            vec![1, -1],
            "one day gains the person, one loses them"
        );
    }

    #[test]
    fn an_unchanged_person_writes_nothing() {
        let both = [first(7, "2027-03-10T10:00:00Z")];
        assert_eq!(
            first_gift_changes(&both, &both),
            FirstGiftChanges::default()
        );
    }

    #[test]
    fn statistics_from_counts() {
        let mut counts = GiftCounts::default();
        counts.add(1_000, 3);
        counts.add(5_000, 1);
        let stats = counts.statistics(Currency::EUR).unwrap();
        assert_eq!(stats.count, 4);
        assert_eq!(stats.total.minor(), 8_000);
        assert_eq!(stats.average.minor(), 2_000);
        // The two middle gifts are 10.00 and 10.00.
        assert_eq!(stats.median.minor(), 1_000);
        counts.add(7_000, 1);
        let stats = counts.statistics(Currency::EUR).unwrap();
        assert_eq!(stats.median.minor(), 1_000);
        counts.add(9_001, 1);
        // 10.00, 10.00, 10.00, 50.00, 70.00, 90.01: the middle two average to 30.00.
        assert_eq!(
            counts.statistics(Currency::EUR).unwrap().median.minor(),
            3_000
        );
        assert_eq!(
            GiftCounts::default()
                .statistics(Currency::EUR)
                .unwrap()
                .median
                .minor(),
            0
        );
    }
}
