//! The operator's HTTP endpoint against the real daemon: `/metrics` scraped
//! over HTTP around a real `sftp` upload, the scheduler's import and a real
//! SMTP delivery, its numbers read back and its text checked by Debian's
//! `promtool`; `/readyz` failing on a read-only data directory and a stuck
//! outbox and recovering; the endpoint's bounds; `rosterd serve` naming the
//! endpoint in its ready file and keeping its counters over a SIGHUP; and
//! the alert rules checked and unit-tested by `promtool`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::*;
use crate::pipeline::{NIGHT, at, night_server, pipeline, upload, wait_for};
use crate::server::{TestServer, ssh_opts, tenant_with_key};
use crate::smtp::{SmtpServer, free_port};

/// Two users and a row with a bad graduation year.
const USERS: &str = "Username,First Name,Last Name,Graduation Year\r\n\
ann.lee,Ann,Lee,2030\r\n\
bob.ray,Bob,Ray,not-a-year\r\n\
cat.diaz,Cat,Diaz,2031\r\n";

/// `GET path` over a fresh connection: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path).unwrap_or_else(|| panic!("no HTTP answer to GET {path} from {addr}"))
}

/// `GET path`, or `None` if the connection ends without a whole answer.
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: rosterd\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of the series `series` (name and labels, as written) in a scrape.
pub fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        Some(rest.trim().parse().expect("a number"))
    })
}

fn scrape(srv: &TestServer) -> String {
    let (status, body) = http_get(srv.metrics.expect("metrics.listen set"), "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn series(scrape: &str, series: &str) -> f64 {
    value(scrape, series).unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
}

/// Each series of `expected` has its value in `scrape`.
fn expect(scrape: &str, expected: &[(&str, f64)]) {
    for (name, want) in expected {
        assert_eq!(series(scrape, name), *want, "{name}");
    }
}

/// `promtool` from Debian's `prometheus` package (tests/setup installs it).
fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed: bash tests/setup (apt-get install prometheus)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn with_metrics(c: &mut rosterd::config::Config) {
    c.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
}

#[test]
fn a_scrape_follows_a_real_upload_import_and_delivery_and_promtool_accepts_it() {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(smtp_dir.path().to_path_buf(), &[]);
    let url = smtp.url();
    let (srv, _clock, key) = night_server(NIGHT, |c| {
        with_metrics(c);
        c.mail.smtp_url = Some(url);
    });
    let (scheduler, mailer) = pipeline(&srv);
    let before = scrape(&srv);
    for s in [
        "rosterd_uploads_total",
        "rosterd_logins_total{outcome=\"accepted\"}",
        "rosterd_imports_total{outcome=\"applied_with_errors\"}",
        "rosterd_sessions_open",
    ] {
        assert_eq!(series(&before, s), 0.0, "{s}");
    }
    assert_eq!(
        series(
            &before,
            "rosterd_district_held_imports{district=\"lincoln\"}"
        ),
        0.0
    );
    // Never uploaded: no timestamp series (rather than 1970).
    assert_eq!(
        value(
            &before,
            "rosterd_district_last_upload_timestamp_seconds{district=\"lincoln\"}"
        ),
        None
    );

    // During a session: it is open, and counted as a login.
    let (holder, stdin) = srv.open_session("lincoln", &key);
    let during = scrape(&srv);
    expect(
        &during,
        &[
            ("rosterd_sessions_open", 1.0),
            ("rosterd_connections_open", 1.0),
            ("rosterd_logins_total{outcome=\"accepted\"}", 1.0),
        ],
    );
    drop(stdin);
    let _ = holder.wait_with_output();
    wait_for("the session to close", Duration::from_secs(20), || {
        value(&scrape(&srv), "rosterd_sessions_open") == Some(0.0)
    });

    // An upload, a refused name and a refused key.
    upload(&srv, &key, USERS);
    srv.env.file("users_20261120.csv", USERS);
    let (code, _, _) = srv.sftp("lincoln", &key, "-put users_20261120.csv\n");
    assert_eq!(code, 0);
    let stranger = srv.env.path("stranger_key");
    ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        stranger.to_str().unwrap(),
    ]);
    let (code, _, _) = srv.sftp("lincoln", &stranger, "pwd\n");
    assert_ne!(code, 0, "an unregistered key logged in");
    // The refusal is counted when its connection has ended.
    wait_for(
        "the refused connection to end",
        Duration::from_secs(20),
        || value(&scrape(&srv), "rosterd_logins_total{outcome=\"refused\"}") == Some(1.0),
    );
    let uploaded = scrape(&srv);
    expect(
        &uploaded,
        &[
            ("rosterd_uploads_total", 1.0),
            ("rosterd_upload_received_bytes_total", USERS.len() as f64),
            ("rosterd_upload_duration_seconds_count", 1.0),
            ("rosterd_upload_refusals_total{reason=\"name\"}", 1.0),
            (
                "rosterd_login_refusals_total{reason=\"key_not_registered\"}",
                1.0,
            ),
            ("rosterd_logins_total{outcome=\"accepted\"}", 3.0),
        ],
    );
    let night = at(NIGHT).timestamp() as f64;
    expect(
        &uploaded,
        &[
            (
                "rosterd_district_last_upload_timestamp_seconds{district=\"lincoln\"}",
                night,
            ),
            (
                "rosterd_imports_total{outcome=\"applied_with_errors\"}",
                0.0,
            ),
        ],
    );

    // The scheduler imports it: one applied with errors, two created, one
    // row errored, and its report waits in the outbox.
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    let imported = scrape(&srv);
    expect(
        &imported,
        &[
            (
                "rosterd_imports_total{outcome=\"applied_with_errors\"}",
                1.0,
            ),
            ("rosterd_import_rows_total{change=\"created\"}", 2.0),
            ("rosterd_import_rows_total{change=\"errored\"}", 1.0),
            ("rosterd_import_duration_seconds_count", 1.0),
            ("rosterd_import_rows_per_second_count", 1.0),
            (
                "rosterd_district_last_applied_import_timestamp_seconds{district=\"lincoln\"}",
                night,
            ),
            ("rosterd_district_windows_missed{district=\"lincoln\"}", 0.0),
            ("rosterd_outbox_messages", 1.0),
        ],
    );

    // Delivered to the real SMTP server.
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    assert_eq!(smtp.messages().len(), 1);
    let delivered = scrape(&srv);
    expect(
        &delivered,
        &[
            ("rosterd_mail_sends_total{outcome=\"delivered\"}", 1.0),
            ("rosterd_outbox_messages", 0.0),
            ("rosterd_ready", 1.0),
        ],
    );

    // Nothing a district supplied beyond its subdomain is in a label.
    assert!(!delivered.contains("users_20261120"), "{delivered}");
    assert!(!delivered.contains("SHA256:"), "{delivered}");
    let (ok, said) = promtool(&["check", "metrics"], Some(&delivered));
    assert!(ok, "promtool check metrics refused the scrape:\n{said}");
}

/// Make `dir` and everything in it unwritable, in a way that holds for root
/// (whom permissions do not stop): `chattr +i` (immutable) as root, else
/// `chmod a-w`. Undone when dropped.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> Self {
        let ro = Self(dir.to_owned());
        ro.set(true);
        ro
    }

    fn set(&self, read_only: bool) {
        // SAFETY: geteuid only reads the process's credentials.
        let root = unsafe { libc::geteuid() } == 0;
        let mut cmd = if root {
            let mut c = Command::new("chattr");
            c.args(["-R", if read_only { "+i" } else { "-i" }]);
            c
        } else {
            let mut c = Command::new("chmod");
            c.args(["-R", if read_only { "a-w" } else { "u+w" }]);
            c
        };
        let out = cmd
            .arg(&self.0)
            .output()
            .expect("chattr (e2fsprogs) or chmod must be installed");
        assert!(
            out.status.success(),
            "cannot make {} read-only ({}): {}",
            self.0.display(),
            if root { "chattr" } else { "chmod" },
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        self.set(false);
    }
}

#[test]
fn readiness_fails_while_the_data_directory_is_read_only_and_recovers() {
    let env = Env::new();
    tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, with_metrics);
    let addr = srv.metrics.unwrap();
    let (status, body) = http_get(addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready");
    for check in ["store", "spool", "listener", "outbox"] {
        assert_eq!(ready["checks"][check], "ok", "{body}");
    }
    let (status, body) = http_get(addr, "/healthz");
    assert_eq!((status, body.trim()), (200, "{\"status\":\"ok\"}"));

    let read_only = ReadOnly::new(&srv.env.path("data"));
    let (status, body) = http_get(addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "not ready");
    assert_eq!(
        answer["failed"],
        serde_json::json!(["store", "spool"]),
        "{body}"
    );
    assert!(
        answer["checks"]["spool"]
            .as_str()
            .unwrap()
            .starts_with("the spool does not take a new file"),
        "{body}"
    );
    assert_eq!(answer["checks"]["listener"], "ok");
    // The process still answers, and the scrape says the same.
    assert_eq!(http_get(addr, "/healthz").0, 200);
    let during = scrape(&srv);
    expect(
        &during,
        &[
            ("rosterd_ready", 0.0),
            ("rosterd_readiness_check{check=\"store\"}", 0.0),
            ("rosterd_readiness_check{check=\"listener\"}", 1.0),
        ],
    );

    drop(read_only);
    let (status, body) = http_get(addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert_eq!(series(&scrape(&srv), "rosterd_ready"), 1.0);
    srv.env.assert_integrity();
}

#[test]
fn readiness_fails_while_an_email_waits_past_the_outbox_limit() {
    // The SMTP server is down at first: the report is deferred.
    let port = free_port();
    let (srv, clock, key) = night_server(NIGHT, |c| {
        with_metrics(c);
        c.metrics.outbox_stuck_seconds = 600;
        c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    });
    let (scheduler, mailer) = pipeline(&srv);
    let addr = srv.metrics.unwrap();
    upload(&srv, &key, USERS);
    srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().retrying, 1);
    let deferred = scrape(&srv);
    expect(
        &deferred,
        &[
            ("rosterd_mail_sends_total{outcome=\"deferred\"}", 1.0),
            ("rosterd_outbox_messages", 1.0),
        ],
    );
    assert_eq!(http_get(addr, "/readyz").0, 200);

    clock.advance(chrono::Duration::seconds(601));
    let stuck = scrape(&srv);
    assert_eq!(
        series(&stuck, "rosterd_outbox_oldest_unsent_age_seconds"),
        601.0
    );
    let (status, body) = http_get(addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["failed"], serde_json::json!(["outbox"]), "{body}");

    let smtp_dir = tempfile::tempdir().unwrap();
    let _smtp = SmtpServer::start_on(smtp_dir.path().to_path_buf(), port, &[]);
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    assert_eq!(http_get(addr, "/readyz").0, 200);
    let sent = scrape(&srv);
    expect(
        &sent,
        &[
            ("rosterd_outbox_oldest_unsent_age_seconds", 0.0),
            ("rosterd_mail_sends_total{outcome=\"delivered\"}", 1.0),
        ],
    );
}

#[test]
fn the_endpoint_serves_get_only_within_its_bounds() {
    let srv = TestServer::start(Env::new(), with_metrics);
    let addr = srv.metrics.unwrap();
    let ask = |request: &str| -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // The server may close before reading all of an oversized request.
        let _ = s.write_all(request.as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let post =
        ask("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(
        post.to_ascii_lowercase().contains("allow: get, head"),
        "{post}"
    );
    assert_eq!(http_get(addr, "/").0, 404);
    assert_eq!(http_get(addr, "/metrics/../etc/passwd").0, 404);
    // Headers past 16 KiB are refused, not buffered.
    let huge = ask(&format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    ));
    assert!(
        huge.is_empty() || huge.starts_with("HTTP/1.1 431"),
        "{huge}"
    );

    // As many idle connections as allowed hold every slot: one more is
    // closed at once, unanswered.
    let idle: Vec<TcpStream> = (0..rosterd::ops::MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Each is accepted in turn; the one after them finds no slot.
    let mut extra = TcpStream::connect(addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    let n = extra.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "answered past the connection limit");
    drop(idle);
    wait_for(
        "the slots to be given back",
        Duration::from_secs(20),
        || try_get(addr, "/healthz").is_some_and(|(status, _)| status == 200),
    );
}

#[test]
fn serve_names_the_endpoint_in_its_ready_file_and_keeps_counting_over_a_reload() {
    let env = Env::new();
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config = config.replace("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n");
    config.push_str("[metrics]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&env.config, &config).unwrap();
    let ready = env.path("rosterd.ready");
    let mut serve = env
        .command(&["serve", "--ready-file", ready.to_str().unwrap()])
        .env("ROSTERD_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its log, read as it comes so the daemon never blocks on a full pipe.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let (log, mut stderr) = (log.clone(), serve.stderr.take().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let logged = |what: &str| log.lock().unwrap().contains(what);
    wait_for("the ready file", Duration::from_secs(60), || {
        std::fs::read_to_string(&ready).is_ok_and(|t| t.contains("metrics "))
    });
    let text = std::fs::read_to_string(&ready).unwrap();
    let mut lines = text.lines();
    let ssh: SocketAddr = lines.next().unwrap().parse().unwrap();
    let metrics: SocketAddr = lines
        .next()
        .and_then(|l| l.strip_prefix("metrics "))
        .unwrap_or_else(|| panic!("no metrics line in {text:?}"))
        .parse()
        .unwrap();
    assert!(metrics.ip().is_loopback() && metrics.port() != 0);
    assert_eq!(http_get(metrics, "/healthz").0, 200);

    // A login naming no district: one refusal counted.
    let key = env.path("k");
    ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]);
    let out = Command::new("timeout")
        .arg("60")
        .arg("sftp")
        .args(ssh_opts(&key))
        .args(["-P", &ssh.port().to_string(), "-b", "-", "nobody@127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let refused = "rosterd_login_refusals_total{reason=\"unknown_district\"}";
    wait_for("the refusal to be counted", Duration::from_secs(20), || {
        value(&http_get(metrics, "/metrics").1, refused) == Some(1.0)
    });

    // SIGHUP reloads the configuration; the counters stay.
    // SAFETY: kill only sends a signal to the child started above.
    assert_eq!(unsafe { libc::kill(serve.id() as i32, libc::SIGHUP) }, 0);
    wait_for("the reload", Duration::from_secs(20), || {
        logged("configuration reloaded")
    });
    assert_eq!(value(&http_get(metrics, "/metrics").1, refused), Some(1.0));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) }, 0);
    assert!(serve.wait().unwrap().success());
    reader.join().unwrap();
    assert!(logged("serving /metrics, /healthz and /readyz"));
    assert!(!ready.exists());
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let (ok, said) = promtool(
        &["check", "rules", "deploy/prometheus/rosterd.rules.yml"],
        None,
    );
    assert!(ok, "promtool check rules:\n{said}");
    let (ok, said) = promtool(
        &["test", "rules", "deploy/prometheus/rosterd.rules.test.yml"],
        None,
    );
    assert!(ok, "promtool test rules:\n{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

#[test]
fn every_dashboard_query_is_promql_that_promtool_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/rosterd.json");
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() > 20, "{exprs:?}");
    // Each query as a recording rule (Grafana's $instance as "any"), so
    // promtool's rule check parses it.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let expr = expr.replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).unwrap();
    let (ok, said) = promtool(&["check", "rules", file.to_str().unwrap()], None);
    assert!(ok, "promtool refused a dashboard query:\n{said}");
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{said}"
    );
}
