//! The fuzz corpus as a regression suite: every input in `fuzz/corpus/` and
//! every crash ever found (`fuzz/regressions/`) goes through the same property
//! the fuzz target checks (`fuzz/checks.rs`), on stable, in every test run.

use std::path::PathBuf;

#[path = "../../fuzz/checks.rs"]
mod checks;

fn replay(target: &str, check: fn(&[u8])) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) {
            inputs.extend(entries.map(|e| e.expect("corpus entry").path()));
        }
    }
    inputs.sort();
    assert!(
        inputs.len() >= 5,
        "the {target} corpus is missing: run fuzz/seed.sh"
    );
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("read corpus input");
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} fails on: {failed:#?}");
}

#[test]
fn csv_import_corpus_gives_reports_or_clean_rejections() {
    replay("csv_import", checks::csv_import);
}

#[test]
fn field_rules_corpus_gives_values_or_messages() {
    replay("field_rules", checks::field_rules);
}

#[test]
fn public_keys_corpus_gives_keys_or_clean_refusals() {
    replay("public_keys", checks::public_keys);
}
