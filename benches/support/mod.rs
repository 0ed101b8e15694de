//! What the benchmarks share: a deterministic generator and latency arithmetic.
#![allow(dead_code)]

use std::time::Duration;

pub mod raw_http;

/// The allocator the `obole` binary runs with (src/main.rs), so a bench measures what is
/// deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A small deterministic generator (xorshift64*), the tests' own: the same run plays the
/// same load.
#[path = "../../tests/common/rng.rs"]
mod rng;
#[allow(unused_imports)] // not every bench draws random numbers
pub use rng::Rng;

/// `d` in thousandths, printed with two decimals (seconds as "s.ss"; pass `d * 1000` for ms).
pub fn millis(d: Duration) -> String {
    let m = d.as_millis();
    format!("{}.{:02}", m / 1000, m % 1000 / 10)
}

pub fn per_second(count: usize, over: Duration) -> u128 {
    count as u128 * 1_000_000 / over.as_micros().max(1)
}

pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// A latency in milliseconds with two decimals ("3.07").
pub fn ms(d: Duration) -> String {
    let us = d.as_micros();
    format!("{}.{:02}", us / 1000, us % 1000 / 10)
}

/// p50, p99 and the worst of `latencies` (sorted here), in milliseconds.
pub fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort();
    format!(
        "p50 {} ms  p99 {} ms  max {} ms",
        ms(percentile(latencies, 50)),
        ms(percentile(latencies, 99)),
        ms(latencies.last().copied().unwrap_or_default()),
    )
}
