//! The README's quickstart, run as it is written: its shell block is taken
//! from README.md and run by bash in an empty directory, with the built
//! `rosterd` first on PATH.

use std::process::Command;

use crate::helpers::BIN;

fn quickstart_block() -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- quickstart:")
        .expect("README has a quickstart block");
    let body = &readme[start..];
    let open = body.find("```sh\n").expect("quickstart code block") + "```sh\n".len();
    let close = body[open..].find("```").expect("end of the code block");
    body[open..open + close].to_owned()
}

#[test]
fn readme_quickstart_runs_as_written() {
    let script = quickstart_block();
    assert!(script.contains("rosterd serve"), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out = Command::new("timeout")
        .args(["120", "bash", "-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("ROSTERD_CONFIG")
        .env_remove("ROSTERD_NOW")
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.path().join("rosterd.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the quickstart failed (is port 2222 free?)\nstdout:\n{stdout}\nstderr:\n{}\ndaemon log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the reader is told they will see.
    assert!(
        log.contains("rosterd is listening on 127.0.0.1:2222"),
        "{log}"
    );
    assert!(
        stdout.contains("demo: users.csv imported — 2 created"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Subject: demo: users.csv imported"),
        "{stdout}"
    );
    assert!(
        stdout.contains("To: \"Dana Admin\" <dana@example.org>"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ada.l,,Ada,Lovelace,,2030,,student"),
        "{stdout}"
    );
    assert!(stdout.contains("grace.h,,Grace,Hopper,,"), "{stdout}");
    assert!(stdout.contains("last import"), "{stdout}");
}
