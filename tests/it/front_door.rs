//! One district can never hurt another at the SSH/SFTP front door: logins from
//! one address wait their turn instead of being dropped, channels, handles and
//! bytes in flight are bounded per connection and per district, requests
//! rosterd does not support are answered, stuck sessions always end and give
//! their slots back. Real OpenSSH clients and paramiko (tests/front_door.py)
//! against the in-process server; assertions on behaviour and on what the
//! server holds, never on timing.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::server::{TestServer, run_with_stdin, ssh_opts, tenant_with_key};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/front_door.py");

fn script(srv: &TestServer, mode: &str, user: &str, key: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "python3", SCRIPT, mode, &srv.port.to_string(), user])
        .arg(key)
        .args(args);
    cmd
}

/// Run a mode of front_door.py to the end; every check it reports must be ok.
fn client(srv: &TestServer, mode: &str, user: &str, key: &Path, args: &[&str]) {
    let out = script(srv, mode, user, key, args)
        .output()
        .expect("python3 with paramiko must be installed (pip install paramiko)");
    checks_pass(mode, &out.stdout, &out.stderr);
}

fn checks_pass(mode: &str, stdout: &[u8], stderr: &[u8]) {
    let stdout = String::from_utf8_lossy(stdout);
    let results: serde_json::Map<String, serde_json::Value> = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| {
            panic!(
                "{mode}: no result ({e}): {stdout}{}",
                String::from_utf8_lossy(stderr)
            )
        });
    assert!(!results.is_empty(), "{mode}: no checks ran");
    let failures: Vec<_> = results
        .iter()
        .filter(|(_, v)| v.as_str().is_none_or(|s| !s.starts_with("ok")) && !v.is_number())
        .collect();
    assert!(failures.is_empty(), "{mode}: {failures:#?}");
}

/// Wait (bounded) until `done` holds.
fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server holds no connection and no channel any more, and the district
/// (limited to one session) can log in again.
fn all_given_back(srv: &TestServer, user: &str, key: &Path) {
    eventually(
        "connections and channels given back",
        Duration::from_secs(15),
        || {
            let live = srv.shared.live();
            live.connections == 0 && live.channels == 0
        },
    );
    let (code, _, err) = srv.sftp(user, key, "ls\n");
    assert_eq!(code, 0, "the district cannot log in again: {err}");
}

fn sftp_child(srv: &TestServer, user: &str, key: &Path, batch: &str) -> Child {
    let mut child = Command::new("timeout")
        .arg("120")
        .arg("sftp")
        .args(ssh_opts(key))
        .args(["-P", &srv.port.to_string(), "-b", "-"])
        .arg(format!("{user}@127.0.0.1"))
        .current_dir(srv.env.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("OpenSSH sftp must be installed (apt-get install openssh-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    child
}

#[test]
fn sixty_four_districts_uploading_from_one_address_at_once_all_succeed() {
    const N: usize = 64;
    let env = Env::new();
    let keys: Vec<(String, PathBuf)> = (0..N)
        .map(|i| {
            let sub = format!("d{i:02}");
            let (key, _) = tenant_with_key(&env, &sub);
            (sub, key)
        })
        .collect();
    // The default limits: 10 logging in per address, the rest wait their turn.
    let srv = TestServer::start(env, |_| {});
    for (sub, _) in &keys {
        srv.env
            .file(&format!("{sub}.csv"), format!("Username\n{sub}-user\n"));
    }
    let children: Vec<(String, Child)> = keys
        .iter()
        .map(|(sub, key)| {
            let batch = format!("put {sub}.csv users.csv\n");
            (sub.clone(), sftp_child(&srv, sub, key, &batch))
        })
        .collect();
    let mut failed = Vec::new();
    for (sub, child) in children {
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            failed.push((sub, String::from_utf8_lossy(&out.stderr).into_owned()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {N} failed: {failed:?}",
        failed.len()
    );
    for (sub, _) in &keys {
        assert_eq!(
            std::fs::read_to_string(srv.pending(sub)).unwrap(),
            format!("Username\n{sub}-user\n")
        );
    }
    assert_eq!(srv.uploads().len(), N);
    let live = srv.shared.live();
    assert_eq!((live.logging_in, live.waiting), (0, 0), "{live:?}");
}

#[test]
fn requests_rosterd_does_not_support_are_answered_with_a_failure() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |_| {});
    client(&srv, "requests", "lincoln", &key, &[]);
}

#[test]
fn channels_per_connection_are_capped_and_closed_ones_are_freed() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |c| c.server.max_channels_per_connection = 4);
    let out = script(&srv, "channels", "lincoln", &key, &["1000"])
        .output()
        .unwrap();
    checks_pass("channels", &out.stdout, &out.stderr);
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results["granted"], 4, "{results}");
    // 1,000 channels opened and closed leave nothing behind.
    eventually("closed channels freed", Duration::from_secs(10), || {
        srv.shared.live().channels == 0
    });
}

#[test]
fn stray_data_never_blocks_the_connection_and_the_idle_connection_ends() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |c| {
        c.server.idle_timeout_seconds = 3;
        c.server.max_sessions_per_tenant = 1;
    });
    client(&srv, "stray-data", "lincoln", &key, &["30"]);
    all_given_back(&srv, "lincoln", &key);
}

#[test]
fn a_client_gone_after_stray_data_is_let_go_at_once() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    // An idle timeout far beyond the test: only the closed socket can end it.
    let srv = TestServer::start(env, |c| {
        c.server.idle_timeout_seconds = 3600;
        c.server.max_sessions_per_tenant = 1;
    });
    client(&srv, "stray-then-gone", "lincoln", &key, &[]);
    all_given_back(&srv, "lincoln", &key);
}

#[test]
fn replies_wait_for_a_slow_reader_without_blocking_the_connection() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |_| {});
    client(&srv, "pipelined", "lincoln", &key, &[]);
}

#[test]
fn a_client_that_never_reads_its_replies_is_disconnected_and_its_slot_freed() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |c| {
        c.server.write_timeout_seconds = 2;
        c.server.max_sessions_per_tenant = 1;
    });
    client(&srv, "unread", "lincoln", &key, &["30"]);
    all_given_back(&srv, "lincoln", &key);
}

#[test]
fn handles_and_bytes_in_flight_are_bounded_per_district_not_per_subsystem() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let (other_key, _) = tenant_with_key(&env, "other");
    let srv = TestServer::start(env, |c| {
        c.server.max_open_handles_per_tenant = 6;
        c.server.max_upload_bytes = 256 * 1024;
    });
    // Two connections, two subsystems each, hold every handle and byte the
    // district may have...
    let mut hog = script(&srv, "handles", "lincoln", &key, &["6", "524288"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(hog.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("holding") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the client ended before holding its handles"
        );
    }
    let held = srv
        .shared
        .ledger
        .load(srv.env.store().require_tenant("lincoln").unwrap().id);
    assert_eq!((held.handles, held.bytes), (6, 512 * 1024), "{held:?}");
    // ...while another district uploads as usual.
    srv.env.file("users.csv", "Username\nother1\n");
    let (code, _, err) = srv.sftp("other", &other_key, "put users.csv\n");
    assert_eq!(code, 0, "{err}");
    hog.stdin.take().unwrap().write_all(b"done\n").unwrap();
    let out = hog.wait_with_output().unwrap();
    checks_pass("handles", &out.stdout, &out.stderr);
    // Everything the district held comes back, and nothing stays on disk.
    eventually(
        "handles and bytes given back",
        Duration::from_secs(10),
        || srv.shared.live().connections == 0,
    );
    let tenant = srv.env.store().require_tenant("lincoln").unwrap().id;
    assert_eq!(srv.shared.ledger.load(tenant), Default::default());
    assert_eq!(
        files_under(&srv.env.path("data/spool/lincoln/incoming")),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn openssh_sftp_sending_many_environment_variables_uploads() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |_| {});
    srv.env.file("users.csv", "Username\nfirst1\n");
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "sftp"])
        .args(ssh_opts(&key))
        .args(["-o", "SendEnv=LC_* LANG ROSTERD_TEST_*"])
        .args(["-P", &srv.port.to_string(), "-b", "-", "lincoln@127.0.0.1"])
        .current_dir(srv.env.dir.path());
    for i in 0..24 {
        cmd.env(format!("ROSTERD_TEST_{i}"), "x".repeat(100));
    }
    cmd.env("LC_ALL", "C").env("LANG", "C");
    let (code, _, err) = run_with_stdin(cmd, "put users.csv\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(srv.pending("lincoln")).unwrap(),
        "Username\nfirst1\n"
    );
}

/// `sftp` offering `keys` in order (OpenSSH tries each until one works).
fn sftp_with_keys(srv: &TestServer, user: &str, keys: &[&Path]) -> (i32, String, String) {
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "sftp"]);
    let opts = ssh_opts(keys[0]);
    cmd.args(&opts[..opts.len() - 2]);
    for k in keys {
        cmd.arg("-i").arg(k);
    }
    cmd.args(["-P", &srv.port.to_string(), "-b", "-"])
        .arg(format!("{user}@127.0.0.1"));
    run_with_stdin(cmd, "ls\n")
}

fn stray_key(env: &Env, name: &str) -> PathBuf {
    let p = env.path(name);
    ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-f", p.to_str().unwrap()]);
    p
}

#[test]
fn other_keys_offered_first_count_once_per_connection_and_never_when_it_logs_in() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let others: Vec<PathBuf> = (0..3)
        .map(|i| stray_key(&env, &format!("other{i}")))
        .collect();
    let srv = TestServer::start(env, |c| c.server.auth_failures_before_ban = 2);
    // Three other keys first, every night: each connection logs in, no ban.
    let mut offered: Vec<&Path> = others.iter().map(PathBuf::as_path).collect();
    offered.push(&key);
    for night in 0..4 {
        let (code, _, err) = sftp_with_keys(&srv, "lincoln", &offered);
        assert_eq!(code, 0, "night {night}: {err}");
    }
    // A connection offering three wrong keys is one failure, not three: the
    // district still logs in after it...
    let wrong: Vec<&Path> = others.iter().map(PathBuf::as_path).collect();
    assert_ne!(sftp_with_keys(&srv, "lincoln", &wrong).0, 0);
    assert_eq!(sftp_with_keys(&srv, "lincoln", &offered).0, 0);
    // ...and the second such connection reaches the limit of two.
    assert_ne!(sftp_with_keys(&srv, "lincoln", &wrong).0, 0);
    let (code, _, err) = sftp_with_keys(&srv, "lincoln", &offered);
    assert_ne!(code, 0, "not banned after two failed connections");
    assert!(!err.contains("Permission denied"), "{err}");
}

#[test]
fn paramiko_with_a_list_of_keys_logs_in_with_the_registered_one() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let other = stray_key(&env, "other");
    let srv = TestServer::start(env, |_| {});
    client(
        &srv,
        "key-list",
        "lincoln",
        &key,
        &[other.to_str().unwrap()],
    );
}
