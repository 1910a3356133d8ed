//! The SSH/SFTP server in-process on a loopback port 0, driven by the real
//! OpenSSH `sftp` and `scp` clients.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rosterd::clock::{Clock, SystemClock};
use rosterd::config::Config;
use rosterd::server;
use sha2::Digest;

use crate::helpers::*;

/// A running daemon for one test, built by `Daemon::build` as `serve` builds
/// it, on a loopback port 0; its scheduler and mailer are driven by the test
/// (`pipeline`). Stops (gracefully) when dropped.
pub struct TestServer {
    pub env: Env,
    pub port: u16,
    pub config: Config,
    pub shared: Arc<server::Shared>,
    pub scheduler: Arc<rosterd::scheduler::Scheduler>,
    pub mailer: Arc<rosterd::mail::Mailer>,
    /// The metrics endpoint's address, when the config sets `metrics.listen`.
    pub metrics: Option<std::net::SocketAddr>,
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Host keys made once per test process and copied into each installation:
/// an RSA key takes a while to generate, and `serve` would make all three.
fn host_keys(into: &Path) {
    static MADE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let made = MADE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Config::default().server;
        server.host_key = dir.path().join("host");
        rosterd::server::host_keys::load_or_create_host_keys(&server).unwrap();
        dir
    });
    std::fs::create_dir_all(into).unwrap();
    for entry in std::fs::read_dir(made.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), into.join(entry.file_name())).unwrap();
    }
}

impl TestServer {
    pub fn start(env: Env, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_at(env, Arc::new(SystemClock), tweak)
    }

    /// A server whose "now" comes from `clock`.
    pub fn start_at(env: Env, clock: Arc<dyn Clock>, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.host_key = env.path("keys/host");
        config.storage.database = env.db_path();
        config.storage.spool = env.path("data/spool");
        config.storage.fingerprint_key = env.path("data/fp.key");
        config.mail.outbox_dir = env.path("data/outbox");
        tweak(&mut config);
        host_keys(&env.path("keys"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let daemon = rt
            .block_on(rosterd::daemon::Daemon::build(
                config.clone(),
                clock.clone(),
                rosterd::daemon::Options::default(),
            ))
            .unwrap();
        let port = daemon.local_addr().unwrap().port();
        let metrics = daemon.metrics_addr();
        let (shared, scheduler, mailer) = (
            daemon.shared.clone(),
            daemon.scheduler.clone(),
            daemon.mailer.clone(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(daemon.run_until_stopped(
            async move {
                let _ = stopped.await;
            },
            rosterd::daemon::Background::Manual,
        ));
        Self {
            env,
            port,
            config,
            shared,
            scheduler,
            mailer,
            metrics,
            rt: Some(rt),
            stop: Some(stop),
        }
    }

    /// Run `f` on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("running").block_on(f)
    }

    /// Run `sftp -b -` with `batch` as user@127.0.0.1; returns (code, stdout, stderr).
    /// An `sftp` session of `user` held open (it waits on its standard
    /// input) once it has logged in, that is once its first command has
    /// answered; it ends when its standard input is closed.
    pub fn open_session(
        &self,
        user: &str,
        key: &Path,
    ) -> (std::process::Child, std::process::ChildStdin) {
        let mut holder = Command::new("sftp")
            .args(ssh_opts(key))
            .args(["-P", &self.port.to_string(), "-b", "-"])
            .arg(format!("{user}@127.0.0.1"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = holder.stdin.take().unwrap();
        stdin.write_all(b"pwd\n").unwrap();
        let mut out = holder.stdout.take().unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&seen).contains("Remote working directory") {
            let mut buf = [0u8; 256];
            let n = std::io::Read::read(&mut out, &mut buf).unwrap();
            assert!(
                n > 0 && Instant::now() < deadline,
                "the session never logged in"
            );
            seen.extend_from_slice(&buf[..n]);
        }
        (holder, stdin)
    }

    pub fn sftp(&self, user: &str, key: &Path, batch: &str) -> (i32, String, String) {
        self.sftp_from("127.0.0.1", user, key, batch)
    }

    /// `sftp` connecting from the loopback address `source` (any of 127/8).
    pub fn sftp_from(
        &self,
        source: &str,
        user: &str,
        key: &Path,
        batch: &str,
    ) -> (i32, String, String) {
        let mut cmd = Command::new("timeout");
        cmd.arg("60").arg("sftp").args(ssh_opts(key)).args([
            "-o",
            &format!("BindAddress={source}"),
            "-P",
            &self.port.to_string(),
            "-b",
            "-",
        ]);
        cmd.arg(format!("{user}@127.0.0.1"))
            .current_dir(self.env.dir.path());
        run_with_stdin(cmd, batch)
    }

    pub fn scp(&self, user: &str, key: &Path, local: &Path, remote: &str) -> (i32, String, String) {
        let mut cmd = Command::new("timeout");
        cmd.arg("60")
            .arg("scp")
            .arg("-s")
            .args(ssh_opts(key))
            .args(["-P", &self.port.to_string()]);
        cmd.arg(local).arg(format!("{user}@127.0.0.1:{remote}"));
        run_with_stdin(cmd, "")
    }

    /// Run the paramiko client `tests/SCRIPT` as `SCRIPT ARGS... PORT USER
    /// KEY` under `seconds` of timeout; it must exit 0. Its standard output.
    pub fn paramiko(
        &self,
        script: &str,
        args: &[&str],
        user: &str,
        key: &Path,
        seconds: u32,
    ) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(script);
        let out = Command::new("timeout")
            .arg(seconds.to_string())
            .arg("python3")
            .arg(&path)
            .args(args)
            .args([&self.port.to_string(), user])
            .arg(key)
            .output()
            .expect("python3 with paramiko must be installed");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{script} {args:?} failed: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn pending(&self, sub: &str) -> PathBuf {
        self.env.path(&format!("data/spool/{sub}/users.csv"))
    }

    pub fn uploads(&self) -> Vec<(i64, String, String, String, String)> {
        let store = self.env.store();
        let mut stmt = store
            .conn
            .prepare(
                "SELECT size, sha256, remote_addr, key_fingerprint, state FROM uploads ORDER BY id",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// OpenSSH client options for tests: no user config, no host-key prompts,
/// batch mode, only `key`.
pub fn ssh_opts(key: &Path) -> Vec<String> {
    [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([key.to_string_lossy().into_owned()])
    .collect()
}

pub fn run_with_stdin(mut cmd: Command, input: &str) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("OpenSSH client tools must be installed (apt-get install openssh-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    decode(child.wait_with_output().unwrap())
}

/// A tenant with a registered ed25519 key: the private key's path and the
/// `SHA256:` fingerprint `key add` printed for it.
pub fn tenant_with_key(env: &Env, sub: &str) -> (PathBuf, String) {
    env.ok(&[
        "tenant",
        "add",
        sub,
        "--admin-name",
        "A",
        "--admin-email",
        "a@example.org",
    ]);
    let key = env.path(&format!("{sub}_key"));
    ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]);
    let fingerprint = env.ok(&[
        "key",
        "add",
        sub,
        key.with_extension("pub").to_str().unwrap(),
    ]);
    (key, fingerprint.trim().to_owned())
}

/// A server whose tenant `lincoln` has uploaded one users.csv: the server, the
/// tenant's key, and the published bytes.
fn server_with_one_upload() -> (TestServer, PathBuf, Vec<u8>) {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |_| {});
    srv.env.file("users.csv", "Username\nfirst1\n");
    assert_eq!(srv.sftp("lincoln", &key, "put users.csv\n").0, 0);
    let before = std::fs::read(srv.pending("lincoln")).unwrap();
    (srv, key, before)
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn sftp_batch_and_scp_upload_users_csv() {
    let env = Env::new();
    let (key, fp) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |_| {});
    let body = "Username,First Name\njdoe1,John\n".repeat(3000);
    srv.env.file("local.csv", &body);

    let (code, out, err) = srv.sftp("lincoln", &key, "put local.csv users.csv\nls -l\nbye\n");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("{} ", body.len())),
        "ls -l shows the size: {out}"
    );
    assert_eq!(
        std::fs::read_to_string(srv.pending("lincoln")).unwrap(),
        body
    );
    let uploads = srv.uploads();
    assert_eq!(uploads.len(), 1);
    let (size, sha, remote, key_fp, state) = &uploads[0];
    assert_eq!(*size as usize, body.len());
    assert_eq!(sha, &sha256_hex(body.as_bytes()));
    assert!(remote.starts_with("127.0.0.1:"), "{remote}");
    assert_eq!(key_fp, &fp);
    assert_eq!(state, "pending");

    // scp (SFTP mode) to the same name, with a leading slash and "/./": the same file.
    let other = srv.env.file("second.csv", "Username\nsecond1\n");
    let (code, _, err) = srv.scp("lincoln", &key, &other, "/./users.csv");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(srv.pending("lincoln")).unwrap(),
        "Username\nsecond1\n"
    );
    let states: Vec<String> = srv.uploads().into_iter().map(|u| u.4).collect();
    assert_eq!(states, ["superseded", "pending"]);
    // nothing left behind in the spool but the pending file
    assert_eq!(
        std::fs::read_dir(srv.env.path("data/spool/lincoln/incoming"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn every_other_operation_is_refused() {
    let (srv, key, before) = server_with_one_upload();
    let refused = [
        "put users.csv other.csv",
        "put users.csv ../x/users.csv",
        "put users.csv ../users.csv",
        "put users.csv /tmp/users.csv",
        "put users.csv sub/users.csv",
        "put users.csv users.csv/x",
        "mkdir newdir",
        "rm users.csv",
        "rmdir /",
        "ln -s users.csv link.csv",
        "rename users.csv other.csv",
        "get users.csv copy.csv",
        "cd /tmp",
    ];
    for command in refused {
        let (code, out, err) = srv.sftp("lincoln", &key, &format!("{command}\n"));
        assert_ne!(code, 0, "{command:?} was allowed: {out}");
        assert!(
            err.contains("ermission denied")
                || err.contains("only users.csv")
                || err.contains("not a directory")
                || err.contains("No such file"),
            "{command:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read(srv.pending("lincoln")).unwrap(),
        before,
        "a refused operation changed users.csv"
    );
    assert!(
        !Path::new("/tmp/users.csv").exists() || std::fs::read("/tmp/users.csv").unwrap() != before
    );
    // setstat (put -p) succeeds without effect; the WinSCP pattern publishes
    let (code, _, err) = srv.sftp(
        "lincoln",
        &key,
        "put -p users.csv users.csv.filepart\nrename users.csv.filepart users.csv\nls\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(srv.uploads().len(), 2);
}

#[test]
fn authentication_refusals_look_alike() {
    let env = Env::new();
    let (key, fp) = tenant_with_key(&env, "lincoln");
    let (other_key, _) = tenant_with_key(&env, "other");
    let srv = TestServer::start(env, |c| c.server.auth_failures_before_ban = 1000);
    let unregistered = srv.env.path("stray");
    ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        unregistered.to_str().unwrap(),
    ]);
    let cases: [(&str, &Path); 4] = [
        ("nobody", &key),           // unknown tenant
        ("lincoln", &other_key),    // another tenant's key
        ("lincoln", &unregistered), // unregistered key
        ("Lincoln", &key),          // usernames are exact subdomains
    ];
    for (user, k) in cases {
        let (code, _, err) = srv.sftp(user, k, "ls\n");
        assert_ne!(code, 0, "{user} with {k:?} logged in");
        assert!(
            err.contains("Permission denied (publickey)"),
            "{user}: {err}"
        );
    }
    // password and keyboard-interactive are not even offered
    let mut cmd = Command::new("timeout");
    cmd.args([
        "30",
        "sftp",
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args([
        "-o",
        "BatchMode=yes",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
    ])
    .args(["-P", &srv.port.to_string(), "-b", "-", "lincoln@127.0.0.1"]);
    let (code, _, err) = run_with_stdin(cmd, "ls\n");
    assert_ne!(code, 0);
    assert!(err.contains("Permission denied (publickey)"), "{err}");

    // revoked while the server runs: refused at the next login, no restart
    assert_eq!(srv.sftp("lincoln", &key, "ls\n").0, 0);
    srv.env.ok(&["key", "revoke", "lincoln", &fp]);
    let (code, _, err) = srv.sftp("lincoln", &key, "ls\n");
    assert_ne!(code, 0);
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    // a disabled tenant is refused the same way
    srv.env.ok(&["tenant", "disable", "other"]);
    assert!(
        srv.sftp("other", &other_key, "ls\n")
            .2
            .contains("Permission denied (publickey)")
    );
}

#[test]
fn repeated_unknown_names_throttle_the_address_without_locking_out_a_district() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |c| {
        c.server.auth_failures_before_ban = 3;
        c.server.ban_seconds = 600;
    });
    for _ in 0..3 {
        assert_ne!(srv.sftp("nobody", &key, "ls\n").0, 0);
    }
    let loopback = "127.0.0.1".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv
        .shared
        .door
        .throttle(server::door::Bucket::Unnamed(loopback))
        .is_none()
    {
        assert!(Instant::now() < deadline, "the address was not throttled");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The district's registered key still logs in from the same address...
    let (code, _, err) = srv.sftp("lincoln", &key, "ls\n");
    assert_eq!(code, 0, "{err}");
    // ...and the unknown name is still refused, as every refusal looks.
    let (code, _, err) = srv.sftp("nobody", &key, "ls\n");
    assert_ne!(code, 0);
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    // Another address is not throttled at all.
    let other = "127.0.0.3".parse().unwrap();
    assert_eq!(
        srv.shared
            .door
            .throttle(server::door::Bucket::Unnamed(other)),
        None
    );
    let (code, _, err) = srv.sftp_from("127.0.0.3", "lincoln", &key, "ls\n");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn interrupted_upload_publishes_nothing() {
    let (srv, key, before) = server_with_one_upload();

    // A 16 MiB users.csv (16 s at the client's limit, -l in Kbit/s), so it
    // is surely mid-transfer when killed.
    let rows: String = (0..(16 << 20) / 13)
        .map(|i| format!("user{i:08}\n"))
        .collect();
    srv.env.file("big.csv", format!("Username\n{rows}"));
    let mut cmd = Command::new("sftp");
    cmd.args(ssh_opts(&key))
        .args(["-l", "8000", "-P", &srv.port.to_string(), "-b", "-"])
        .arg("lincoln@127.0.0.1")
        .current_dir(srv.env.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"put big.csv users.csv\n")
        .unwrap();
    let incoming = srv.env.path("data/spool/lincoln/incoming");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let partial: u64 = std::fs::read_dir(&incoming)
            .map(|d| {
                d.flatten()
                    .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        if partial > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server notices the dropped connection and discards the partial file.
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::fs::read_dir(&incoming).unwrap().count() > 0 {
        assert!(
            Instant::now() < deadline,
            "partial upload left in incoming/"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read(srv.pending("lincoln")).unwrap(), before);
    assert_eq!(srv.uploads().len(), 1, "an interrupted upload was recorded");
}

#[test]
fn upload_over_the_size_limit_fails_cleanly() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |c| c.server.max_upload_bytes = 1000);
    srv.env.file("users.csv", "x".repeat(5000));
    let (code, _, err) = srv.sftp("lincoln", &key, "put users.csv\n");
    assert_ne!(code, 0);
    assert!(!err.is_empty());
    assert!(!srv.pending("lincoln").exists());
    assert_eq!(
        std::fs::read_dir(srv.env.path("data/spool/lincoln/incoming"))
            .unwrap()
            .count(),
        0
    );
    assert!(srv.uploads().is_empty());
}

#[test]
fn per_tenant_session_limit() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let (other, _) = tenant_with_key(&env, "other");
    let srv = TestServer::start(env, |c| c.server.max_sessions_per_tenant = 1);
    // One session held open, logged in.
    let (mut holder, stdin) = srv.open_session("lincoln", &key);
    // A second session of the same tenant is refused; another tenant is not affected.
    let (code, _, err) = srv.sftp("lincoln", &key, "ls\n");
    assert_ne!(code, 0, "second session of the tenant was allowed");
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(srv.sftp("other", &other, "ls\n").0, 0);
    // When the first session ends, the slot is free again.
    drop(stdin);
    holder.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.sftp("lincoln", &key, "ls\n").0 != 0 {
        assert!(
            Instant::now() < deadline,
            "the slot was not freed after the session ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn data_directories_are_private_to_the_daemon_user() {
    let (srv, _, _) = server_with_one_upload();
    use std::os::unix::fs::PermissionsExt;
    for dir in ["data", "data/spool", "data/spool/lincoln"] {
        let mode = std::fs::metadata(srv.env.path(dir))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700, "{dir}");
    }
}

/// The SHA-256 an upload is recorded with is of the bytes published, however
/// the client wrote them: out of order, over earlier bytes, or as a staged
/// file another session replaced before the rename (the server hashes while
/// writing and must notice each of these).
#[test]
fn recorded_hash_is_of_the_published_bytes_whatever_the_write_order() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |_| {});
    for mode in ["out-of-order", "overwrite", "staged-swap"] {
        let stdout = srv.paramiko("write_orders.py", &[mode], "lincoln", &key, 120);
        let expected = stdout.trim().lines().last().unwrap().to_owned();
        let published = std::fs::read(srv.pending("lincoln")).unwrap();
        assert_eq!(sha256_hex(&published), expected, "{mode}: published bytes");
        let uploads = srv.uploads();
        let (size, sha, _, _, state) = uploads.last().unwrap();
        assert_eq!(
            (*size as usize, sha, state.as_str()),
            (published.len(), &expected, "pending"),
            "{mode}: recorded upload"
        );
    }
}

/// A large pending file replaced by a new upload is freed after the reply
/// (its blocks take a while to free), and nothing of it stays behind.
#[test]
fn a_large_superseded_upload_leaves_nothing_behind() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |_| {});
    let row = "jdoe1,John,Doe,ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n";
    let big = format!(
        "Username,First Name,Last Name,Note\n{}",
        row.repeat((17 << 20) / row.len())
    );
    srv.env.file("big.csv", &big);
    srv.env.file("small.csv", "Username\nfirst1\n");
    assert_eq!(srv.sftp("lincoln", &key, "put big.csv users.csv\n").0, 0);
    assert_eq!(srv.sftp("lincoln", &key, "put small.csv users.csv\n").0, 0);
    assert_eq!(
        std::fs::read_to_string(srv.pending("lincoln")).unwrap(),
        "Username\nfirst1\n"
    );
    let incoming = srv.env.path("data/spool/lincoln/incoming");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&incoming).unwrap().count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the superseded upload is still in incoming/"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let states: Vec<String> = srv.uploads().into_iter().map(|u| u.4).collect();
    assert_eq!(states, ["superseded", "pending"]);
}

#[test]
fn an_upload_under_another_name_is_refused_logged_and_shown_to_support() {
    let (srv, key, before) = server_with_one_upload();
    let (code, _, err) = srv.sftp("lincoln", &key, "put users.csv users_20261205.csv\n");
    assert_ne!(code, 0);
    assert!(err.contains("Permission denied"), "{err}");
    // The WinSCP pattern to a wrong final name, and a folder.
    let (code, _, _) = srv.sftp(
        "lincoln",
        &key,
        "put users.csv users.csv.filepart\nrename users.csv.filepart Users.CSV\n",
    );
    assert_ne!(code, 0);
    srv.sftp("lincoln", &key, "-put users.csv upload/users.csv\n");
    let shown = |args: &[&str]| srv.env.ok(args);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !shown(&["tenant", "show", "lincoln"]).contains("upload/users.csv") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            shown(&["tenant", "show", "lincoln"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let show = shown(&["tenant", "show", "lincoln"]);
    assert!(
        show.contains(
            "wrong name  the newest 3 uploads refused for their name (only users.csv is imported):"
        ),
        "{show}"
    );
    let order: Vec<_> = [
        "\"/upload/users.csv\"",
        "renamed to \"/Users.CSV\"",
        "uploaded as \"/users_20261205.csv\"",
    ]
    .iter()
    .map(|s| {
        show.find(s)
            .unwrap_or_else(|| panic!("{s} missing: {show}"))
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "newest first: {show}"
    );
    assert!(
        show.contains("from 127.0.0.1: refused, only users.csv in the root folder is imported"),
        "{show}"
    );
    let status = shown(&["status"]);
    assert!(
        status.contains("  wrong name    uploaded as \"/upload/users.csv\""),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&shown(&["status", "--format", "json"])).unwrap();
    let refused = &json["districts"][0]["refused_uploads"];
    assert_eq!(refused[2]["name"], "/users_20261205.csv", "{json}");
    assert_eq!(refused[1]["action"], "rename");
    assert!(refused[0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        std::fs::read(srv.pending("lincoln")).unwrap(),
        before,
        "nothing replaced users.csv"
    );

    // A client repeating itself is not recorded without end: five a session.
    let batch: String = (0..8)
        .map(|i| format!("-put users.csv copy{i}.csv\n"))
        .collect();
    srv.sftp("lincoln", &key, &batch);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !shown(&["tenant", "show", "lincoln"]).contains("copy4.csv") {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let show = shown(&["tenant", "show", "lincoln"]);
    assert!(!show.contains("copy5.csv"), "{show}");
}
