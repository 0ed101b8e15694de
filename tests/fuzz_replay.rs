//! CI's short fuzzing run: each cargo-fuzz target's checks (`fuzz/checks/`) on its seeds and
//! on seeded mutations of them, in the ordinary test build.
//!
//! cargo-fuzz needs its own instrumented build of every dependency (11 to 16 minutes on two
//! cores), so CI does not run it; the long, coverage-guided run is `scripts/fuzz`. What runs
//! here is the same `check` functions, fed the committed seeds (plus the shipped rule packs
//! and, when `../shared` is beside the repository, Stripe's own events) and then mutations of
//! them: bytes flipped, replaced by a character that matters to the format, inserted,
//! deleted, repeated, cut, or spliced with another seed.
//!
//! A failing input is printed with the run's seed; `OBOLE_FUZZ_SEED=<n>` replays that run and
//! `OBOLE_FUZZ_RUNS=<n>` sets the mutations per target (default 10,000).
#![allow(clippy::unwrap_used)]

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use rng::Rng;

#[path = "common/rng.rs"]
mod rng;

#[path = "../fuzz/checks/checkout_form.rs"]
mod checkout_form;
#[path = "../fuzz/checks/rule_pack.rs"]
mod rule_pack;
#[path = "../fuzz/checks/signature_header.rs"]
mod signature_header;
#[path = "../fuzz/checks/webhook_event.rs"]
mod webhook_event;

/// Bytes that mean something to the formats under test (JSON, TOML, form bodies, headers).
const MEANINGFUL: &[u8] = b"\0\x7f\xff\"\\{}[],:=&%+#\n\r\t 0-.evt_";

/// One mutation of `input`, sometimes with a piece of `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    let at = rng.index(out.len() + 1);
    // The byte at (or, past the end, before) `at`.
    let byte = at.min(out.len().saturating_sub(1));
    match rng.index(8) {
        0 if !out.is_empty() => out[byte] ^= 1 << rng.index(8),
        1 if !out.is_empty() => out[byte] = MEANINGFUL[rng.index(MEANINGFUL.len())],
        2 => out.insert(at, MEANINGFUL[rng.index(MEANINGFUL.len())]),
        3 => {
            let end = (at + 1 + rng.index(16)).min(out.len());
            out.drain(at.min(end)..end);
        }
        4 => {
            let end = (at + 1 + rng.index(64)).min(out.len());
            let piece = out[at.min(end)..end].to_vec();
            for _ in 0..1 + rng.index(4) {
                out.splice(at..at, piece.iter().copied());
            }
        }
        5 => out.truncate(at),
        6 => {
            let from = rng.index(other.len() + 1);
            let end = (from + rng.index(256)).min(other.len());
            out.splice(at..at, other[from..end].iter().copied());
        }
        _ => out.insert(at, u8::try_from(rng.below(256)).unwrap()),
    }
    out
}

/// The files of `dir` whose name ends with `suffix` (none if `dir` does not exist).
fn files(dir: impl AsRef<Path>, suffix: &str) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
        })
        .unwrap_or(default)
}

/// Runs `check` on every seed, then on mutations chained from them; panics naming the input
/// that broke a check.
fn replay(target: &str, seeds: Vec<Vec<u8>>, check: fn(&[u8])) {
    assert!(!seeds.is_empty(), "{target}: no seeds");
    let runs = env_number("OBOLE_FUZZ_RUNS", 10_000);
    let seed = env_number("OBOLE_FUZZ_SEED", 0x0B01E);
    let mut rng = Rng(seed | 1);
    let run = |input: &[u8]| {
        if panic::catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            panic!(
                "{target}: a check failed (OBOLE_FUZZ_SEED={seed}) on the input b\"{}\"",
                input.escape_ascii()
            );
        }
    };
    for input in &seeds {
        run(input);
    }
    // Mutations stack a few deep before starting again from a seed.
    let mut current = seeds[0].clone();
    for n in 0..runs {
        if n % 4 == 0 {
            current = seeds[rng.index(seeds.len())].clone();
        }
        let other = &seeds[rng.index(seeds.len())];
        current = mutate(&mut rng, &current, other);
        // Kept under 64 KB, so that repeated pieces cannot grow an input without end.
        current.truncate(64 * 1024);
        run(&current);
    }
    println!(
        "{target}: {} seeds and {runs} mutations, OBOLE_FUZZ_SEED={seed}",
        seeds.len()
    );
}

#[test]
fn signature_header_checks_hold_on_seeds_and_mutations() {
    replay(
        "signature_header",
        files("fuzz/seeds/signature_header", ""),
        signature_header::check,
    );
}

#[test]
fn webhook_event_checks_hold_on_seeds_and_mutations() {
    let mut seeds = files("fuzz/seeds/webhook_event", "");
    seeds.extend(files("../shared/reference/stripe-fixtures", ".json"));
    replay("webhook_event", seeds, webhook_event::check);
}

#[test]
fn checkout_form_checks_hold_on_seeds_and_mutations() {
    replay(
        "checkout_form",
        files("fuzz/seeds/checkout_form", ""),
        checkout_form::check,
    );
}

#[test]
fn rule_pack_checks_hold_on_seeds_and_mutations() {
    let mut seeds = files("fuzz/seeds/rule_pack", "");
    seeds.extend(files("compliance", ".toml"));
    replay("rule_pack", seeds, rule_pack::check);
}

/// The replay can fail: a check that breaks on some mutation is reported with its input.
#[test]
#[should_panic(expected = "a check failed")]
fn a_check_that_breaks_is_reported_with_its_input() {
    replay("self-test", vec![b"{}".to_vec()], |data| {
        assert!(data.len() <= 2, "grown")
    });
}
