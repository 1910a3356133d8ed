//! The README's quickstart, run as it is written: its shell block is taken
//! from README.md and run by bash in an empty directory, with the built
//! `rosterd` first on PATH, behind a wrapper that makes `serve` slow to start.

use std::os::unix::process::CommandExt;
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
    // A daemon slow to start, as on a slow machine generating its RSA host
    // key: `rosterd` on PATH waits 3 s before `serve` starts. The block must
    // wait for the daemon to take connections, not guess with a sleep.
    let bin_dir = tempfile::tempdir().unwrap();
    let wrapper = bin_dir.path().join("rosterd");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nif [ \"$1\" = serve ]; then sleep 3; fi\nexec {BIN} \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    // Outputs go to files and the block runs in a process group of its own,
    // so a failing block cannot leave the daemon it started holding the
    // test's pipes: whatever is left of the group is killed afterwards.
    let (out_file, err_file) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("ROSTERD_CONFIG")
        .env_remove("ROSTERD_NOW")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .process_group(0)
        .spawn()
        .expect("bash");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // The block ends with `kill %1`: the daemon stops and removes its ready
    // file (looked at below) before anything left is killed.
    let ready = dir.path().join("rosterd.ready");
    let stopping = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ready.exists() && std::time::Instant::now() < stopping {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ready_left = ready.exists();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(std::process::Stdio::null())
        .status();
    let _ = child.wait();
    let stdout = std::fs::read_to_string(&out_file).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    let log = std::fs::read_to_string(dir.path().join("rosterd.log")).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "the quickstart failed ({status:?}; is port 2222 free?)\nstdout:\n{stdout}\nstderr:\n{stderr}\ndaemon log:\n{log}"
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
    // The daemon was stopped at the end: its ready file is gone.
    assert!(!ready_left, "the stopped daemon left rosterd.ready behind");
}
