//! What the benchmarks share: a deterministic generator, latency arithmetic and the
//! machine's CPU time.
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

/// The machine's CPU time so far as Linux counts it in `/proc/stat` (all processes: the bench,
/// the database, anything else), in ticks of 1/100 s (`USER_HZ`, 100 on Linux's stable ABI).
#[derive(Debug, Clone, Copy)]
pub struct CpuTicks {
    /// User, nice, system, interrupts.
    busy: u64,
    /// Time the hypervisor gave other guests of the host.
    steal: u64,
    /// Busy, idle, waiting for I/O and stolen.
    total: u64,
}

impl CpuTicks {
    /// `None` where there is no `/proc/stat` (not Linux).
    pub fn now() -> Option<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = fields[..] else {
            return None;
        };
        let busy = user + nice + system + irq + softirq;
        Some(CpuTicks {
            busy,
            steal,
            total: busy + idle + iowait + steal,
        })
    }

    /// What the machine did from `self` to `later`, and its CPU time per unit of work
    /// (`units` of `unit`): "CPU 87 % busy, 0 % stolen: 1.16 ms a donation".
    pub fn until(self, later: CpuTicks, units: usize, unit: &str) -> String {
        let total = later.total.saturating_sub(self.total).max(1);
        let busy = later.busy.saturating_sub(self.busy);
        let steal = later.steal.saturating_sub(self.steal);
        // A tick is 10 ms: busy ticks × 10,000 µs ÷ units.
        let micros = busy * 10_000 / units.max(1) as u64;
        format!(
            "CPU {} % busy, {} % stolen: {}.{:02} ms a {unit}",
            busy * 100 / total,
            steal * 100 / total,
            micros / 1000,
            micros % 1000 / 10,
        )
    }
}
