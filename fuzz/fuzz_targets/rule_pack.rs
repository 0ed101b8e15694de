//! Fuzz target: the rule-pack loader. What it feeds and checks is in `fuzz/checks/rule_pack.rs`.

#![no_main]

#[path = "../checks/rule_pack.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
