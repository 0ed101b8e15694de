//! The dashboard's chart: money raised per day, as SVG drawn by `plotters`.
//!
//! Invariants: a day is the campaign's calendar day; a day's bar is what the books kept of
//! the gifts that day — `income:donations` credited less any excess set aside, the figures
//! the summary's `gross` adds up — in minor units on an integer axis (no floating point touches an amount); every day of the span has a bar, empty
//! days included; the SVG carries no script and no `style` attribute (the pages' CSP allows
//! neither).

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use plotters::prelude::*;

use crate::money::{Currency, Money};

/// Days the chart shows at most (the latest ones).
pub const MAX_DAYS: u64 = 90;

/// Money raised each day from the first (or `MAX_DAYS` before `to`) to `to`, in minor units,
/// from amounts raised at instants (the store gives one per UTC hour, at its start: in a
/// zone whose offset is not whole hours, an hour straddling midnight counts for the day it
/// starts in).
pub fn raised_per_day(
    raised: &[(DateTime<Utc>, i64)],
    zone: Tz,
    to: DateTime<Utc>,
) -> Vec<(NaiveDate, i64)> {
    let last = to.with_timezone(&zone).date_naive();
    let earliest = last
        .checked_sub_days(Days::new(MAX_DAYS - 1))
        .unwrap_or(last);
    let first = raised
        .iter()
        .map(|(at, _)| at.with_timezone(&zone).date_naive())
        .min()
        .unwrap_or(last)
        .clamp(earliest, last);
    let span = usize::try_from((last - first).num_days()).unwrap_or(0) + 1;
    let mut days: Vec<(NaiveDate, i64)> =
        first.iter_days().take(span).map(|day| (day, 0)).collect();
    for (at, amount) in raised {
        let day = at.with_timezone(&zone).date_naive();
        if let Some(index) = usize::try_from((day - first).num_days())
            .ok()
            .filter(|&i| i < days.len())
        {
            days[index].1 = days[index].1.saturating_add(*amount);
        }
    }
    days
}

/// The bar chart, as an SVG document.
pub fn svg(days: &[(NaiveDate, i64)], currency: Currency, caption: &str) -> Result<String, String> {
    let count = i64::try_from(days.len()).map_err(|e| e.to_string())?.max(1);
    let top = days.iter().map(|(_, v)| *v).max().unwrap_or(0).max(100);
    let label = |minor: i64| {
        // Whole units on the axis, rounded by the ledger's rule.
        let amount = Money::from_minor(minor, currency)
            .to_decimal()
            .round_dp_with_strategy(0, crate::money::ROUNDING);
        format!("{amount} {}", currency.code())
    };
    let day_of = |index: i64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| days.get(i))
            .map(|(day, _)| day.format("%d/%m").to_string())
            .unwrap_or_default()
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (720, 280)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(80)
            .build_cartesian_2d((0i64..count).into_segmented(), 0i64..top + top / 10)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(8)
            .y_labels(5)
            .x_label_formatter(&|v: &SegmentValue<i64>| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => day_of(*i),
                SegmentValue::Last => String::new(),
            })
            .y_label_formatter(&|v: &i64| label(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(RGBColor(0x1f, 0x4e, 0x79).filled())
                    .margin(1)
                    .data((0i64..).zip(days.iter().map(|(_, v)| *v))),
            )
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gift(at: &str, minor: i64) -> (DateTime<Utc>, i64) {
        (at.parse().unwrap(), minor)
    }

    #[test]
    fn days_are_paris_days_and_empty_ones_are_drawn() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let gifts = [
            gift("2027-03-29T10:00:00Z", 1_000),
            gift("2027-03-31T21:30:00Z", 2_500),
            gift("2027-03-31T22:10:00Z", 700),
        ];
        let days = raised_per_day(&gifts, paris, "2027-04-01T12:00:00Z".parse().unwrap());
        let day = |d: &str| d.parse::<NaiveDate>().unwrap();
        assert_eq!(
            days,
            vec![
                (day("2027-03-29"), 1_000),
                (day("2027-03-30"), 0),
                (day("2027-03-31"), 2_500),
                (day("2027-04-01"), 700),
            ]
        );
        let svg = svg(&days, Currency::EUR, "Raised per day").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{svg}");
        assert!(svg.contains("31/03") && svg.contains("EUR"));
        assert!(
            !svg.contains("<script") && !svg.contains(" style="),
            "CSP-safe"
        );
    }

    #[test]
    fn a_long_campaign_shows_its_last_ninety_days() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let days = raised_per_day(
            &[gift("2026-01-01T10:00:00Z", 1)],
            paris,
            "2027-04-01T12:00:00Z".parse().unwrap(),
        );
        assert_eq!(days.len(), 90);
    }
}
