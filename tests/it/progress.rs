//! A long import shows how far it has got: `rosterd import users` prints
//! plain lines on a standard error that is not a terminal, and `rosterd
//! status` (another process) shows the import running, never one a killed
//! process left behind.

use std::time::{Duration, Instant};

use crate::helpers::Env;

/// `rows` users, each with a password: a first import is mostly Argon2.
fn users_with_passwords(rows: usize) -> String {
    let mut csv = String::from("Username,Password,First Name,Last Name\n");
    for i in 0..rows {
        csv.push_str(&format!("user{i:05},Pw-{i:05}-secret,First{i},Last{i}\n"));
    }
    csv
}

#[test]
fn import_users_prints_progress_lines_when_standard_error_is_not_a_terminal() {
    let env = Env::new();
    env.tenant("lincoln");
    let file = env.file("users.csv", users_with_passwords(60));
    // Every step said at once, rather than every 10 s: what is said then
    // depends on the work, not on the time it takes.
    let out = env
        .command(&["import", "users", "lincoln", "users.csv"])
        .env("ROSTERD_PROGRESS_SECONDS", "0")
        .output()
        .unwrap();
    let (code, stdout, stderr) = crate::helpers::decode(out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("60 created"), "{stdout}");
    let size = rosterd::domain::report::thousands(std::fs::metadata(&file).unwrap().len());
    let lines: Vec<&str> = stderr.lines().collect();
    let starting = |text: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(text))
            .unwrap_or_else(|| panic!("no line {text:?}… in:\n{stderr}"))
    };
    let at = |text: &str| {
        let i = starting(text);
        assert_eq!(lines[i], text, "{stderr}");
        i
    };
    let read = at(&format!(
        "import lincoln: reading the file: bytes {size} of {size} (100%)"
    ));
    let rows = at("import lincoln: checking rows, hashing passwords, writing (60 rows)");
    let all =
        starting("import lincoln: checking rows, hashing passwords, writing: rows 60 of 60 (100%)");
    let done =
        starting("import lincoln: checking rows, hashing passwords, writing: done, 60 rows in ");
    let finishing = at("import lincoln: finishing and committing");
    assert!(
        read < rows && rows < all && all < done && done < finishing,
        "{stderr}"
    );
    // A password at a time: rows advance by one while Argon2 works.
    let counts: Vec<u64> = lines[rows..all]
        .iter()
        .filter_map(|l| l.split(": rows ").nth(1))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(counts.len() >= 59, "{stderr}");
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
    assert!(!stderr.contains("Pw-"), "a password was printed");
}

#[test]
fn a_quick_import_prints_no_progress() {
    let env = Env::new();
    env.tenant("lincoln");
    env.file("users.csv", users_with_passwords(3));
    let (code, _, stderr) = env.run(&["import", "users", "lincoln", "users.csv"]);
    assert_eq!(code, 0);
    assert_eq!(stderr, "");
}

/// `rosterd status --format json`'s `importing` of the district.
fn importing(env: &Env) -> serde_json::Value {
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--format", "json"])).unwrap();
    status["districts"][0]["importing"].clone()
}

#[test]
fn status_shows_an_import_in_progress_and_not_one_a_killed_process_left() {
    let env = Env::new();
    env.tenant("lincoln");
    env.file("users.csv", users_with_passwords(3000));
    assert!(importing(&env).is_null());
    let mut import = env
        .command(&["import", "users", "lincoln", "users.csv"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The board is posted at each phase's start and every 2 s: wait for the
    // rows phase with some rows done.
    let deadline = Instant::now() + Duration::from_secs(120);
    let posted = loop {
        let now = importing(&env);
        if now["phase"] == "rows" && now["done"].as_u64().unwrap_or(0) > 0 {
            break now;
        }
        assert!(Instant::now() < deadline, "no progress posted: {now}");
        assert!(
            import.try_wait().unwrap().is_none(),
            "the import ended first"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(posted["source"], "cli", "{posted}");
    assert_eq!(posted["file"], "users.csv", "{posted}");
    assert_eq!(posted["total"], 3000, "{posted}");
    assert_eq!(posted["pid"], import.id(), "{posted}");
    let text = env.ok(&["status"]);
    assert!(
        text.contains("  IMPORTING     users.csv by `rosterd import` since ")
            && text.contains(": checking rows, hashing passwords, writing: rows "),
        "{text}"
    );

    // Killed mid-import: its board stays behind, but nobody holds its lock.
    import.kill().unwrap();
    import.wait().unwrap();
    assert!(env.path("data/spool/lincoln/.progress.json").exists());
    assert!(importing(&env).is_null());
    assert!(!env.ok(&["status"]).contains("IMPORTING"));
}
