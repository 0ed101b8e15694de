//! Fuzz target: the donation form. What it feeds and checks is in `fuzz/checks/checkout_form.rs`.

#![no_main]

#[path = "../checks/checkout_form.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
