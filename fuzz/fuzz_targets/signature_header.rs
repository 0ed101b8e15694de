//! Fuzz target: the `Stripe-Signature` check. What it feeds and checks is in `fuzz/checks/signature_header.rs`.

#![no_main]

#[path = "../checks/signature_header.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
