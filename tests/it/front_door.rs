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

use rosterd::server::door::Bucket;

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

/// Start a mode of front_door.py that holds what it took until a line on its
/// standard input; returns once it says "holding".
fn holding(srv: &TestServer, mode: &str, user: &str, key: &Path, args: &[&str]) -> Child {
    let mut child = script(srv, mode, user, key, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("holding") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "{mode}: the client ended before holding what it took"
        );
    }
    child
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
    let mut hog = holding(&srv, "handles", "lincoln", &key, &["6", "524288"]);
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
    // Handles are given back as each channel's task ends, which may be just
    // after its connection is counted closed: waited for, not sampled.
    eventually(
        "handles and bytes given back",
        Duration::from_secs(10),
        || srv.shared.live().connections == 0,
    );
    let tenant = srv.env.store().require_tenant("lincoln").unwrap().id;
    eventually(
        "the district's handles and bytes in flight back to none",
        Duration::from_secs(10),
        || srv.shared.ledger.load(tenant) == Default::default(),
    );
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
    let lincoln = Bucket::District(LOOPBACK, tenant_id(&srv, "lincoln"));
    // Three other keys first, every night: each connection logs in, no
    // failure is counted.
    let mut offered: Vec<&Path> = others.iter().map(PathBuf::as_path).collect();
    offered.push(&key);
    for night in 0..4 {
        let (code, _, err) = sftp_with_keys(&srv, "lincoln", &offered);
        assert_eq!(code, 0, "night {night}: {err}");
    }
    // A connection offering three wrong keys is one failure, not three: the
    // district is not throttled after it...
    let wrong: Vec<&Path> = others.iter().map(PathBuf::as_path).collect();
    assert_ne!(sftp_with_keys(&srv, "lincoln", &wrong).0, 0);
    eventually("the failure counted", Duration::from_secs(10), || {
        srv.shared.live().connections == 0
    });
    assert_eq!(srv.shared.door.throttle(lincoln), None);
    assert_eq!(sftp_with_keys(&srv, "lincoln", &offered).0, 0);
    // ...and the second such connection reaches the limit of two.
    assert_ne!(sftp_with_keys(&srv, "lincoln", &wrong).0, 0);
    eventually("lincoln throttled", Duration::from_secs(10), || {
        srv.shared.door.throttle(lincoln).is_some()
    });
    let throttle = srv.shared.door.throttle(lincoln).unwrap();
    assert_eq!(throttle.failures, 2, "{throttle:?}");
    assert_eq!(
        throttle.tried.len(),
        3,
        "every key tried is named: {throttle:?}"
    );
    // Throttled, the district's registered key still logs in: what slows is
    // each refusal, here of the three other keys offered first.
    let (code, _, err) = sftp_with_keys(&srv, "lincoln", &offered);
    assert_eq!(code, 0, "the registered key was locked out: {err}");
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

// A shared egress address: a hosted SIS exports every district it hosts from
// a few addresses at the same minute. Whatever one district's clients do
// there, another district's upload from the same address gets in within 5 s.

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn tenant_id(srv: &TestServer, sub: &str) -> i64 {
    srv.env.store().require_tenant(sub).unwrap().id
}

/// `sub` uploads a users.csv of its own from 127.0.0.1, within 5 s.
fn uploads_within_five_seconds(srv: &TestServer, sub: &str, key: &Path, when: &str) {
    let body = format!("Username\n{sub}-{}\n", when.len());
    let name = format!("{sub}-{}.csv", when.len());
    srv.env.file(&name, &body);
    let start = Instant::now();
    let (code, _, err) = srv.sftp(sub, key, &format!("put {name} users.csv\n"));
    let took = start.elapsed();
    assert_eq!(code, 0, "{when}: {sub}'s upload failed: {err}");
    assert!(
        took < Duration::from_secs(5),
        "{when}: {sub}'s upload took {took:?}"
    );
    assert_eq!(std::fs::read_to_string(srv.pending(sub)).unwrap(), body);
}

/// Every child must end, unsuccessfully.
fn all_refused(children: Vec<Child>, what: &str) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{what}: one logged in");
    }
}

#[test]
fn a_district_retrying_a_wrong_key_never_locks_out_another_on_the_same_address() {
    let env = Env::new();
    let (alpha_key, _) = tenant_with_key(&env, "alpha");
    let (beta_key, _) = tenant_with_key(&env, "beta");
    let revoked = stray_key(&env, "revoked");
    let srv = TestServer::start(env, |_| {});
    let alpha = Bucket::District(LOOPBACK, tenant_id(&srv, "alpha"));
    // Alpha's job retries a key alpha no longer has, 12 times at once...
    let retries: Vec<Child> = (0..12)
        .map(|_| sftp_child(&srv, "alpha", &revoked, "ls\n"))
        .collect();
    // ...while beta uploads from the same address.
    uploads_within_five_seconds(&srv, "beta", &beta_key, "while alpha's job fails");
    all_refused(retries, "alpha's revoked key");
    eventually("alpha throttled", Duration::from_secs(20), || {
        srv.shared.door.throttle(alpha).is_some()
    });
    let throttle = srv.shared.door.throttle(alpha).unwrap();
    assert!(throttle.failures >= 10, "{throttle:?}");
    let revoked_fp = String::from_utf8(ssh_keygen(&["-lf", revoked.to_str().unwrap()]).stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(throttle.tried, [revoked_fp], "{throttle:?}");
    // Only alpha, only from this address.
    let beta = Bucket::District(LOOPBACK, tenant_id(&srv, "beta"));
    assert_eq!(srv.shared.door.throttle(beta), None);
    assert_eq!(srv.shared.door.throttle(Bucket::Unnamed(LOOPBACK)), None);
    uploads_within_five_seconds(&srv, "beta", &beta_key, "right after alpha's failures");
    // Alpha's own registered key is not locked out either.
    uploads_within_five_seconds(&srv, "alpha", &alpha_key, "alpha throttled");
}

#[test]
fn failed_logins_left_open_give_their_turn_back_at_once() {
    let env = Env::new();
    let (_, _) = tenant_with_key(&env, "alpha");
    let (beta_key, _) = tenant_with_key(&env, "beta");
    let revoked = stray_key(&env, "revoked");
    let srv = TestServer::start(env, |_| {});
    // 12 refused logins for alpha, each left open after failing.
    let mut hog = holding(&srv, "fail-and-stay", "alpha", &revoked, &["12"]);
    // They hold no turn of the address: beta logs in at once.
    uploads_within_five_seconds(
        &srv,
        "beta",
        &beta_key,
        "while alpha's failed logins stay open",
    );
    // Beta's client has gone; its session ends on the server a moment later.
    eventually("beta's session to end", Duration::from_secs(20), || {
        srv.shared.live().sessions == 0
    });
    let live = srv.shared.live();
    assert_eq!(live.waiting, 0, "{live:?}");
    // Alpha's own places are bounded: past 10 not logged in, the server
    // closes the connection.
    assert_eq!(live.connections, 10, "{live:?}");
    hog.stdin.take().unwrap().write_all(b"done\n").unwrap();
    let out = hog.wait_with_output().unwrap();
    checks_pass("fail-and-stay", &out.stdout, &out.stderr);
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&results["held"], &results["closed_by_server"]),
        (&serde_json::json!(10), &serde_json::json!(2)),
        "{results}"
    );
    uploads_within_five_seconds(&srv, "beta", &beta_key, "right after they close");
}

#[test]
fn logins_past_a_districts_session_limit_are_refused_at_once_and_hold_up_no_one() {
    let env = Env::new();
    let (alpha_key, _) = tenant_with_key(&env, "alpha");
    let (beta_key, _) = tenant_with_key(&env, "beta");
    let srv = TestServer::start(env, |c| c.server.max_sessions_per_tenant = 1);
    // Alpha's one session, held open (sftp waits on its standard input).
    let mut holder = Command::new("timeout")
        .arg("120")
        .arg("sftp")
        .args(ssh_opts(&alpha_key))
        .args(["-P", &srv.port.to_string(), "-b", "-", "alpha@127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("alpha's session", Duration::from_secs(20), || {
        srv.shared.ledger.load(tenant_id(&srv, "alpha")).sessions == 1
    });
    // 20 more of alpha's logins, with its valid key, at once.
    let start = Instant::now();
    let extra: Vec<Child> = (0..20)
        .map(|_| sftp_child(&srv, "alpha", &alpha_key, "ls\n"))
        .collect();
    uploads_within_five_seconds(&srv, "beta", &beta_key, "while alpha is over its limit");
    all_refused(extra, "alpha past its session limit");
    let took = start.elapsed();
    // Answered at once (russh's constant second per refusal), not after the
    // login grace of 30 s.
    assert!(
        took < Duration::from_secs(15),
        "refused only after {took:?}"
    );
    // A busy district is not a failing one: nothing is throttled.
    let alpha = Bucket::District(LOOPBACK, tenant_id(&srv, "alpha"));
    assert_eq!(srv.shared.door.throttle(alpha), None);
    uploads_within_five_seconds(&srv, "beta", &beta_key, "right after");
    drop(holder.stdin.take());
    assert!(
        holder.wait().unwrap().success(),
        "alpha's own session failed"
    );
}

#[test]
fn unknown_usernames_sprayed_slow_their_address_but_not_a_districts_login() {
    let env = Env::new();
    let (beta_key, _) = tenant_with_key(&env, "beta");
    let stray = stray_key(&env, "stray");
    let srv = TestServer::start(env, |_| {});
    let spray: Vec<Child> = (0..60)
        .map(|i| sftp_child(&srv, &format!("nobody{i}"), &stray, "ls\n"))
        .collect();
    uploads_within_five_seconds(&srv, "beta", &beta_key, "during the spray");
    all_refused(spray, "unknown usernames");
    eventually("the address throttled", Duration::from_secs(20), || {
        srv.shared
            .door
            .throttle(Bucket::Unnamed(LOOPBACK))
            .is_some()
    });
    uploads_within_five_seconds(&srv, "beta", &beta_key, "right after the spray");
    // The address is still slowed: its refusals come one a second.
    let start = Instant::now();
    let more: Vec<Child> = (0..3)
        .map(|i| sftp_child(&srv, &format!("again{i}"), &stray, "ls\n"))
        .collect();
    all_refused(more, "unknown usernames after the spray");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "three refusals from a throttled address took only {took:?}"
    );
    // Another address is not.
    let other = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(srv.shared.door.throttle(Bucket::Unnamed(other)), None);
}
