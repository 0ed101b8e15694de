//! Fuzz target: a Stripe event's envelope and the worker's reading of it. What it feeds and checks is in `fuzz/checks/webhook_event.rs`.

#![no_main]

#[path = "../checks/webhook_event.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
