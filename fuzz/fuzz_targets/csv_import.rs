//! Fuzz bytes as users.csv and as a groups file; the property is [`checks::csv_import`].
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::csv_import(data));
