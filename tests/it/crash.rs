//! Crash safety: a `rosterd import` killed with SIGKILL in the middle of a large
//! import leaves the database exactly as it was; the next run imports it all.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::*;

const ROWS: usize = 300_000;

#[test]
fn sigkill_mid_import_applies_nothing_and_a_rerun_applies_everything() {
    let env = Env::new();
    env.tenant("lincoln");
    let seed = env.file(
        "seed.csv",
        "Username,First Name\nkeeper1,Kim\nkeeper2,Lee\n",
    );
    env.import("lincoln", &seed);
    let before = env.export("lincoln");
    let runs_before: i64 = env
        .store()
        .conn
        .query_row("SELECT count(*) FROM import_runs", [], |r| r.get(0))
        .unwrap();

    let big = env.path("big.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        writeln!(
            w,
            "Username,Email Address,First Name,Last Name,Graduation Year"
        )
        .unwrap();
        for i in 0..ROWS {
            writeln!(
                w,
                "student{i:07},student{i:07}@example.org,First{i},Last{i},{}",
                i % 13
            )
            .unwrap();
        }
    }

    let mut child = env
        .command(&["import", "users", "lincoln", big.to_str().unwrap()])
        .env("ROSTERD_LOG", "info")
        // A progress line for every batch of rows, not every 10 s.
        .env("ROSTERD_PROGRESS_SECONDS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the importer to say it has written rows (its rows phase runs
    // inside the transaction), so the kill lands there.
    let stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut saw_progress = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.starts_with("import lincoln: checking rows, hashing passwords, writing: rows 5") {
            saw_progress = true;
            break;
        }
        assert!(
            !line.contains("users import finished"),
            "import finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no progress within 2 minutes");
    }
    assert!(saw_progress, "the importer never reported progress");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());

    env.assert_integrity();
    let store = env.store();
    let runs_after: i64 = store
        .conn
        .query_row("SELECT count(*) FROM import_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        runs_after, runs_before,
        "a killed import must leave no run behind"
    );
    drop(store);
    assert_eq!(
        env.export("lincoln"),
        before,
        "a killed import changed the users"
    );

    let (code, out, err) = env.run(&["import", "users", "lincoln", big.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(env.user_count(), ROWS as i64 + 2);
}
