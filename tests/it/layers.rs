//! The house cannot slide back: every module of `src/` may use only the
//! modules on the floors below its own, as `src/lib.rs` draws them, so no
//! circle can form and `domain/` stays the ground floor that imports nothing
//! of the crate. A new module must be given its floor here and in `lib.rs`.
//!
//! Read from the source itself: every `crate::name` path (and `use crate::{a,
//! b}` group) outside comments, per file, attributed to the file's top-level
//! module.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Floors, lowest first. A module may use modules of lower floors only
/// (and, within a floor, none of its neighbours).
const FLOORS: &[&[&str]] = &[
    &["domain"],
    &[
        "clock", "memory", "files", "crash", "systemd", "logging", "metrics",
    ],
    &["password", "keys"],
    &["config"],
    &["store"],
    &["mail"],
    &["import"],
    &["spool"],
    &["scheduler", "server", "district"],
    &["ops"],
    &["daemon"],
    &["cli"],
];

fn floor(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate's top-level modules a file's code names.
fn uses(code: &str) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: after `{` and each comma outside
            // nested braces.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        start = false;
                        found.insert(ident(&group[j..]));
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

#[test]
fn every_module_uses_only_the_floors_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = floor(&top) else {
            wrong.push(format!(
                "{}: module `{top}` has no floor: add it to FLOORS here and to the map in src/lib.rs",
                rel.display()
            ));
            continue;
        };
        let code = std::fs::read_to_string(file).unwrap();
        for used in uses(&code) {
            if used == top {
                continue;
            }
            match floor(&used) {
                Some(f) if f < own => {}
                Some(_) => wrong.push(format!(
                    "{}: `{top}` uses `{used}`, which is not on a floor below it",
                    rel.display()
                )),
                None => wrong.push(format!(
                    "{}: `{top}` uses `{used}`, which has no floor",
                    rel.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_reader_sees_paths_groups_and_not_comments() {
    let code = "use crate::domain::report::Report;\n\
                use crate::{config::Config, store, mail::{compose::{A, B}, Outbox}};\n\
                // crate::cli would be an upward arrow, but this is a comment\n\
                let x = crate::files::open_nofollow(p);\n";
    let got: Vec<String> = uses(code).into_iter().collect();
    assert_eq!(got, ["config", "domain", "files", "mail", "store"]);
}
