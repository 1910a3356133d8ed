//! Fuzz text as `rosterd key add` input; the property is [`checks::public_keys`].
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::public_keys(data));
