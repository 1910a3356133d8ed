//! Fuzz text through every users.csv field rule; the property is [`checks::field_rules`].
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::field_rules(data));
