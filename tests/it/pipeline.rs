//! The nightly pipeline end to end: a real OpenSSH `sftp` upload to the
//! in-process server, the scheduler driven step by step with a fixed clock,
//! the report delivered to a real SMTP server on loopback (or as `.eml`), and
//! a real `rosterd serve` killed and restarted mid-way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rosterd::clock::FixedClock;
use rosterd::import::Report;
use rosterd::mail::Mailer;
use rosterd::scheduler::Scheduler;

use crate::helpers::*;
use crate::server::{TestServer, ssh_opts, tenant_with_key};
use crate::smtp::{SmtpServer, free_port};

pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// 23:00 on Thursday 19 November in New York, the default zone.
pub(crate) const NIGHT: &str = "2026-11-20T04:00:00Z";

/// Three users; Bob's graduation year is wrong.
const USERS: &str = "Username,Password,Email Address,First Name,Last Name,Graduation Year\r\n\
ann.lee,Secr3t-Ann!,ann.lee@example.org,Ann,Lee,2030\r\n\
bob.ray,Secr3t-Bob!,bob.ray@example.org,Bob,Ray,not-a-year\r\n\
cat.diaz,Secr3t-Cat!,cat.diaz@example.org,Cat,Diaz,2031\r\n";
const PASSWORDS: [&str; 3] = ["Secr3t-Ann!", "Secr3t-Bob!", "Secr3t-Cat!"];

/// The scheduler and mailer of `srv`'s daemon, for the test to drive.
pub(crate) fn pipeline(srv: &TestServer) -> (Arc<Scheduler>, Arc<Mailer>) {
    (srv.scheduler.clone(), srv.mailer.clone())
}

/// A server at `now` whose tenant `lincoln` has a key; `tweak` edits the config.
pub(crate) fn night_server(
    now: &str,
    tweak: impl FnOnce(&mut rosterd::config::Config),
) -> (TestServer, FixedClock, PathBuf) {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let clock = FixedClock::new(at(now));
    let srv = TestServer::start_at(env, Arc::new(clock.clone()), |c| {
        c.schedule.settle_seconds = 0;
        tweak(c);
    });
    (srv, clock, key)
}

pub(crate) fn upload(srv: &TestServer, key: &Path, body: &str) {
    srv.env.file("users.csv", body);
    let (code, _, err) = srv.sftp("lincoln", key, "put users.csv\n");
    assert_eq!(code, 0, "sftp failed: {err}");
}

fn outbox_states(srv: &TestServer) -> Vec<(String, String, i64)> {
    let store = srv.env.store();
    rosterd::mail::outbox(&store.conn)
        .unwrap()
        .into_iter()
        .map(|m| (m.kind, m.state, m.attempts))
        .collect()
}

fn assert_no_plaintext_passwords(data: &Path) {
    for file in files_under(data) {
        let bytes = std::fs::read(&file).unwrap();
        for pw in PASSWORDS {
            assert!(
                !bytes.windows(pw.len()).any(|w| w == pw.as_bytes()),
                "{} holds the plaintext password {pw}",
                file.display()
            );
        }
    }
}

/// An `.eml` file with quoted-printable text decoded, as a mail reader shows it.
pub(crate) fn read_eml(path: &Path) -> String {
    let raw = std::fs::read(path).unwrap();
    let out = crate::mime::quoted_printable(&raw);
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn problems_csv(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_problems_csv(&mut out, usize::MAX).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn upload_in_the_window_is_imported_archived_and_reported_once_by_smtp() {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(smtp_dir.path().to_path_buf(), &[]);
    let (srv, clock, key) = night_server(NIGHT, |c| {
        c.schedule.settle_seconds = 60;
        c.mail.smtp_url = Some(smtp.url());
    });
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);

    // Complete but not yet settled: nothing happens.
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());
    clock.advance(chrono::Duration::seconds(60));
    let reports = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(
        (
            report.counts.rows,
            report.counts.created,
            report.counts.errors
        ),
        (3, 2, 1)
    );

    let pass = srv.block_on(mailer.run_once()).unwrap();
    assert_eq!(pass.sent, 1);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(
        m["subject"],
        "lincoln: users.csv imported — 2 created, 0 updated, 1 error"
    );
    assert_eq!(m["rcpt_tos"], serde_json::json!(["a@example.org"]));
    assert_eq!(m["mail_from"], "rostering@localhost");
    let text = m["text"].as_str().unwrap();
    for expected in [
        "rows       3",
        "created    2",
        "errors     1",
        "received   2026-11-19 23:00:00 EST (from 127.0.0.1:",
        "imported   2026-11-19 23:01:00 EST",
        &report.sha256,
        &report.problems[0].describe(),
    ] {
        assert!(text.contains(expected), "body lacks {expected:?}:\n{text}");
    }
    assert_eq!(
        m["attachments"]["errors.csv"].as_str().unwrap(),
        problems_csv(report)
    );

    // The file left the SFTP root; the archive holds it with passwords blanked.
    let spool = srv.env.path("data/spool/lincoln");
    assert!(!spool.join("users.csv").exists());
    let archived = std::fs::read_to_string(spool.join("archive/upload-1.csv")).unwrap();
    assert!(archived.starts_with("Username,Password,"), "{archived}");
    assert!(
        archived.contains("ann.lee,,ann.lee@example.org"),
        "{archived}"
    );
    assert!(!spool.join("archive/upload-1.original.csv").exists());
    assert_no_plaintext_passwords(&srv.env.path("data"));

    // Nothing more to import or send, however much later.
    clock.advance(chrono::Duration::hours(3));
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 0);
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(outbox_states(&srv), [("report".into(), "sent".into(), 1)]);
}

#[test]
fn upload_outside_the_window_waits_for_it_then_reports_as_eml() {
    // 14:00 in New York.
    let (srv, clock, key) = night_server("2026-11-20T19:00:00Z", |_| {});
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());
    assert!(srv.pending("lincoln").exists());

    let mut status = srv.env.command(&["status"]);
    status.env("ROSTERD_NOW", "2026-11-20T19:05:00Z");
    let out = String::from_utf8(status.output().unwrap().stdout).unwrap();
    assert!(
        out.contains("pending       users.csv received 2026-11-20 14:00:00 EST"),
        "{out}"
    );
    assert!(
        out.contains("window        opens 2026-11-20 18:00:00 EST"),
        "{out}"
    );

    clock.set(at("2026-11-20T22:59:59Z")); // 17:59:59
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());
    clock.set(at("2026-11-20T23:00:00Z")); // 18:00
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);

    // No SMTP URL: the report is an .eml file in the outbox directory.
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    let emls = files_under(&srv.env.path("data/outbox"));
    assert_eq!(emls.len(), 1, "{emls:?}");
    assert!(emls[0].ends_with("000001-lincoln-report.eml"), "{emls:?}");
    let eml = std::fs::read_to_string(&emls[0]).unwrap();
    assert!(
        eml.contains("To: \"A\" <a@example.org>") || eml.contains("To: A <a@example.org>"),
        "{eml}"
    );
    assert!(eml.contains("errors.csv"), "{eml}");
    assert_no_plaintext_passwords(&srv.env.path("data"));
}

#[test]
fn smtp_down_during_the_import_then_up_delivers_once() {
    let port = free_port();
    let (srv, clock, key) = night_server(NIGHT, |c| {
        c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    });
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);

    let pass = srv.block_on(mailer.run_once()).unwrap();
    assert_eq!((pass.sent, pass.retrying), (0, 1));
    let store = srv.env.store();
    let row = &rosterd::mail::outbox(&store.conn).unwrap()[0];
    assert_eq!((row.state.as_str(), row.attempts), ("queued", 1));
    assert!(row.last_error.is_some());

    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start_on(smtp_dir.path().to_path_buf(), port, &[]);
    // The retry waits 30 s: not before.
    assert_eq!(srv.block_on(mailer.run_once()).unwrap(), Default::default());
    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 0);
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(outbox_states(&srv), [("report".into(), "sent".into(), 2)]);
}

#[test]
fn smtp_login_is_used_and_a_refused_login_is_retried_not_given_up() {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(
        smtp_dir.path().to_path_buf(),
        &["--auth", "rosterd:p@ss:w0rd"],
    );
    let url = |password: &str| format!("smtp://rosterd:{password}@127.0.0.1:{}", smtp.port);

    // A wrong password is a problem with the configuration, not with the
    // report: it is kept and retried, and the error names the setting.
    let (srv, clock, key) = night_server(NIGHT, |c| c.mail.smtp_url = Some(url("wrong")));
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().retrying, 1);
    let store = srv.env.store();
    let row = &rosterd::mail::outbox(&store.conn).unwrap()[0];
    assert_eq!(row.state, "queued");
    let error = row.last_error.as_deref().unwrap();
    assert!(
        error.contains("mail.smtp_url") && error.contains("535"),
        "{error}"
    );
    assert!(
        !error.contains("wrong"),
        "the password is not recorded: {error}"
    );
    assert!(smtp.messages().is_empty());

    // With the password fixed (percent-encoded in the URL), the retry delivers.
    let mut fixed = srv.config.mail.clone();
    fixed.smtp_url = Some(url("p%40ss%3Aw0rd"));
    mailer.reload(&fixed).unwrap();
    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["login"], "rosterd");
}

#[test]
fn smtp_4xx_is_retried_and_5xx_is_recorded_not_retried() {
    let busy_dir = tempfile::tempdir().unwrap();
    let busy = SmtpServer::start(busy_dir.path().to_path_buf(), &["--fail-first", "2"]);
    let (srv, clock, key) = night_server(NIGHT, |c| c.mail.smtp_url = Some(busy.url()));
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().retrying, 1);
    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().retrying, 1);
    clock.advance(chrono::Duration::seconds(59));
    assert_eq!(srv.block_on(mailer.run_once()).unwrap(), Default::default());
    clock.advance(chrono::Duration::seconds(1));
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    assert_eq!(busy.messages().len(), 1);

    let refusing_dir = tempfile::tempdir().unwrap();
    let refusing = SmtpServer::start(refusing_dir.path().to_path_buf(), &["--reject"]);
    let (srv, clock, key) = night_server(NIGHT, |c| c.mail.smtp_url = Some(refusing.url()));
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().failed, 1);
    clock.advance(chrono::Duration::days(1));
    assert_eq!(srv.block_on(mailer.run_once()).unwrap(), Default::default());
    let store = srv.env.store();
    let row = &rosterd::mail::outbox(&store.conn).unwrap()[0];
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 1));
    assert!(
        row.last_error.as_deref().unwrap().contains("550"),
        "{row:?}"
    );
    let mut status = srv.env.command(&["status"]);
    let out = String::from_utf8(status.output().unwrap().stdout).unwrap();
    assert!(
        out.contains("report to a@example.org (failed, 1 attempts): SMTP server refused"),
        "{out}"
    );
}

#[test]
fn a_night_without_upload_gets_one_note() {
    let (srv, clock, key) = night_server(NIGHT, |_| {});
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS); // Thursday night
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    clock.set(at("2026-11-20T12:00:00Z")); // Friday 07:00: Thursday night had its file
    srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(outbox_states(&srv).len(), 1);
    clock.set(at("2026-11-21T05:00:00Z")); // Saturday 00:00: Friday night still open
    srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(outbox_states(&srv).len(), 1);
    clock.set(at("2026-11-21T11:00:00Z")); // Saturday 06:00: Friday night closed, empty
    for _ in 0..3 {
        srv.block_on(scheduler.run_once()).unwrap();
        clock.advance(chrono::Duration::hours(2));
    }
    let states = outbox_states(&srv);
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(states[1].0, "missing");
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 2);
    let note =
        std::fs::read_to_string(srv.env.path("data/outbox/000002-lincoln-missing.eml")).unwrap();
    assert!(
        note.contains("Subject: lincoln: no users.csv received last night"),
        "{note}"
    );
    // The next empty night gets its own note.
    clock.set(at("2026-11-22T11:30:00Z"));
    srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(outbox_states(&srv).len(), 3);
}

#[test]
fn archives_expire_after_the_retention_period() {
    let (srv, clock, key) = night_server(NIGHT, |c| c.storage.archive_days = 2);
    let (scheduler, _) = pipeline(&srv);
    upload(&srv, &key, USERS);
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    let archived = srv.env.path("data/spool/lincoln/archive/upload-1.csv");
    assert!(archived.exists());
    clock.advance(chrono::Duration::days(2) - chrono::Duration::seconds(1));
    srv.block_on(scheduler.run_once()).unwrap();
    assert!(archived.exists());
    clock.advance(chrono::Duration::seconds(2));
    srv.block_on(scheduler.run_once()).unwrap();
    assert!(!archived.exists());
}

/// `rosterd serve` as a child process, at night, mailing to `smtp`.
pub(crate) struct Daemon(pub(crate) std::process::Child);

impl Daemon {
    pub(crate) fn start(env: &Env) -> Self {
        let mut cmd = env.command(&["serve"]);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(env.path("daemon.log"))
            .unwrap();
        cmd.env("ROSTERD_NOW", NIGHT)
            .env("ROSTERD_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        Self(cmd.spawn().expect("start rosterd serve"))
    }

    pub(crate) fn kill(mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sftp -b -` as lincoln to a daemon child on `port`, stdin and stdout piped.
pub(crate) fn daemon_sftp(env: &Env, key: &Path, port: u16, seconds: u32) -> std::process::Command {
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg(seconds.to_string())
        .arg("sftp")
        .args(ssh_opts(key))
        .args(["-P", &port.to_string(), "-b", "-", "lincoln@127.0.0.1"])
        .current_dir(env.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    cmd
}

pub(crate) fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(crate) fn query_i64(env: &Env, sql: &str) -> i64 {
    let store = env.store();
    store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub(crate) fn upload_state(env: &Env) -> Option<String> {
    let store = env.store();
    store
        .conn
        .query_row(
            "SELECT state FROM uploads ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok()
}

#[test]
fn daemon_killed_after_the_upload_and_during_the_import_imports_and_mails_once() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(smtp_dir.path().to_path_buf(), &[]);
    let port = free_port();
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config = config.replace(
        "[server]\n",
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    config.push_str("settle_seconds = 2\n"); // the [schedule] table is last
    config.push_str(&format!("[mail]\nsmtp_url = \"{}\"\n", smtp.url()));
    std::fs::write(&env.config, config).unwrap();

    // 150,000 rows: long enough an import to be killed in the middle of.
    let mut body = String::from("Username,Email Address,First Name,Last Name,Graduation Year\n");
    for i in 0..150_000 {
        body.push_str(&format!(
            "user{i},user{i}@example.org,First{i},Last{i},2030\n"
        ));
    }
    env.file("users.csv", &body);

    let sftp = |env: &Env| {
        let out = daemon_sftp(env, &key, port, 60)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sftp");
        use std::io::Write;
        let mut out = out;
        out.stdin
            .take()
            .unwrap()
            .write_all(b"put users.csv\n")
            .unwrap();
        let res = out.wait_with_output().unwrap();
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
    };
    let listening = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();

    // 1: killed right after the upload is recorded, before it settles.
    let daemon = Daemon::start(&env);
    wait_for("the daemon to listen", Duration::from_secs(30), listening);
    sftp(&env);
    assert_eq!(upload_state(&env).as_deref(), Some("pending"));
    daemon.kill();

    // 2: killed as soon as the import has started.
    let daemon = Daemon::start(&env);
    wait_for("the import to start", Duration::from_secs(60), || {
        upload_state(&env).as_deref() == Some("importing")
    });
    daemon.kill();
    assert_eq!(
        query_i64(&env, "SELECT count(*) FROM import_runs"),
        0,
        "killed too late"
    );
    assert_eq!(query_i64(&env, "SELECT count(*) FROM users"), 0);
    assert_eq!(query_i64(&env, "SELECT count(*) FROM outbox"), 0);

    // 3: left to finish.
    let daemon = Daemon::start(&env);
    wait_for("the report to be sent", Duration::from_secs(120), || {
        query_i64(&env, "SELECT count(*) FROM outbox WHERE state = 'sent'") == 1
    });
    assert_eq!(query_i64(&env, "SELECT count(*) FROM import_runs"), 1);
    assert_eq!(query_i64(&env, "SELECT count(*) FROM users"), 150_000);
    assert_eq!(upload_state(&env).as_deref(), Some("imported"));
    env.assert_integrity();
    // A while longer: still exactly one import and one email.
    std::thread::sleep(Duration::from_secs(6));
    daemon.kill();
    assert_eq!(query_i64(&env, "SELECT count(*) FROM import_runs"), 1);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        messages[0]["subject"],
        "lincoln: users.csv imported — 150,000 created, 0 updated"
    );
    assert!(
        !env.path("data/spool/lincoln/archive/upload-1.original.csv")
            .exists()
    );
    assert!(env.path("data/spool/lincoln/archive/upload-1.csv").exists());
}

#[test]
fn import_run_imports_the_pending_upload_now_and_mails_the_report() {
    // 14:00: outside the window, so only support's override imports it.
    let (srv, _clock, key) = night_server("2026-11-20T19:00:00Z", |_| {});
    upload(&srv, &key, USERS);
    let run = |args: &[&str]| {
        let mut cmd = srv.env.command(args);
        cmd.env("ROSTERD_NOW", "2026-11-20T19:30:00Z");
        decode(cmd.output().unwrap())
    };
    let (code, out, err) = run(&["import", "run", "lincoln"]);
    assert_eq!(code, 3, "{out}{err}"); // applied, one row skipped
    assert!(
        out.contains("lincoln: users.csv imported — 2 created"),
        "{out}"
    );
    assert!(err.contains("emailed 1 message(s) via"), "{err}");
    let eml =
        std::fs::read_to_string(srv.env.path("data/outbox/000001-lincoln-report.eml")).unwrap();
    assert!(
        eml.contains("Subject: lincoln: users.csv imported"),
        "{eml}"
    );
    assert!(!srv.pending("lincoln").exists());

    // Nothing left: a clear error, exit 1.
    let (code, _, err) = run(&["import", "run", "lincoln"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("lincoln has no pending upload to import"),
        "{err}"
    );

    let (code, out, _) = run(&["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("last import   2026-11-20 14:30:00 EST: applied_with_errors, 2 created, 0 updated, 1 errors"), "{out}");
    assert!(out.contains("pending       none"), "{out}");
    assert!(out.contains("mail: 0 queued, 0 failed, 1 sent"), "{out}");

    // A manual import with --email is mailed too; a dry run says so in its subject.
    srv.env
        .file("more.csv", "Username,Password\ndan.fox,Secr3t-Dan!\n");
    let (code, _, err) = run(&[
        "import",
        "users",
        "lincoln",
        "more.csv",
        "--dry-run",
        "--email",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["import", "users", "lincoln", "more.csv", "--email"]);
    assert_eq!(code, 0, "{err}");
    let dry =
        std::fs::read_to_string(srv.env.path("data/outbox/000002-lincoln-report.eml")).unwrap();
    assert!(
        dry.contains("Subject: [dry run] lincoln: more.csv imported"),
        "{dry}"
    );
    let real =
        std::fs::read_to_string(srv.env.path("data/outbox/000003-lincoln-report.eml")).unwrap();
    assert!(
        real.contains("Subject: lincoln: more.csv imported"),
        "{real}"
    );
    assert!(real.contains("created    1"), "{real}");
    assert_no_plaintext_passwords(&srv.env.path("data"));
}

#[test]
fn rejected_and_unchanged_files_are_reported_as_such() {
    let (srv, clock, key) = night_server(NIGHT, |_| {});
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    clock.advance(chrono::Duration::minutes(10));
    upload(&srv, &key, USERS); // the same bytes again
    let unchanged = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(unchanged[0].outcome, rosterd::import::Outcome::Unchanged);
    clock.advance(chrono::Duration::minutes(10));
    // Rejected for what only the store shows (no such school): a file the
    // upload check passes, whose import rejects it.
    upload(
        &srv,
        &key,
        "Username,School\nann.lee,Nowhere High\nbob.ray,Nowhere High\n",
    );
    let rejected = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(rejected[0].outcome, rosterd::import::Outcome::Rejected);
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 3);

    let eml = |n: u32| {
        read_eml(
            &srv.env
                .path(&format!("data/outbox/{n:06}-lincoln-report.eml")),
        )
    };
    let same = eml(2);
    assert!(
        same.contains("Subject: lincoln: users.csv unchanged since the last import"),
        "{same}"
    );
    assert!(
        same.contains("byte-for-byte the same as the last one imported"),
        "{same}"
    );
    let bad = eml(3);
    assert!(
        bad.contains("Subject: lincoln: users.csv rejected"),
        "{bad}"
    );
    assert!(
        bad.contains("nothing in your accounts was changed"),
        "{bad}"
    );
    assert!(
        bad.contains("Why: more than half of the data rows (2 of 2) have errors"),
        "{bad}"
    );
    assert!(bad.contains("What to do: fix the file"), "{bad}");
}

#[test]
fn sighup_reloads_the_schedule_without_dropping_sessions() {
    use std::io::{BufRead, BufReader, Write};
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let port = free_port();
    let base = std::fs::read_to_string(&env.config).unwrap().replace(
        "[server]\n",
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    ) + "settle_seconds = 0\n";
    // 23:00 in New York: closed for 01:00-02:00.
    let json_logs = "[log]\nformat = \"json\"\n";
    std::fs::write(
        &env.config,
        format!("{base}window = \"01:00-02:00\"\n{json_logs}"),
    )
    .unwrap();
    env.file("users.csv", USERS);
    let daemon = Daemon::start(&env);
    wait_for("the daemon to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let mut sftp = daemon_sftp(&env, &key, port, 120)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut to_sftp = sftp.stdin.take().unwrap();
    let mut from_sftp = BufReader::new(sftp.stdout.take().unwrap());
    // Send commands, then wait until sftp has echoed the marker `ls` (so every
    // command before it has completed).
    let mut converse = |commands: &str| {
        to_sftp
            .write_all(format!("{commands}ls\n").as_bytes())
            .unwrap();
        to_sftp.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                from_sftp.read_line(&mut line).unwrap() > 0,
                "sftp session ended"
            );
            if line.trim() == "sftp> ls" {
                return;
            }
        }
    };
    converse("put users.csv\n");
    assert_eq!(upload_state(&env).as_deref(), Some("pending"));

    std::fs::write(
        &env.config,
        format!("{base}window = \"22:00-23:30\"\n{json_logs}"),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for(
        "the import under the reloaded window",
        Duration::from_secs(30),
        || query_i64(&env, "SELECT count(*) FROM import_runs") == 1,
    );
    // The session opened before the reload still works.
    converse("");
    drop(to_sftp);
    assert!(sftp.wait().unwrap().success());
    daemon.kill();

    // JSON logs: every line of standard error one object, the banner
    // included, with stable top-level names; the session's and the
    // import's events carry their span's fields.
    let log = std::fs::read_to_string(env.path("daemon.log")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for e in &events {
        for name in ["time", "level", "target", "message"] {
            assert!(e[name].is_string(), "{name} in {e}");
        }
        assert!(e.get("fields").is_none() && e.get("span").is_none(), "{e}");
        assert!(
            e.get("tenant").is_none() && e.get("timestamp").is_none(),
            "{e}"
        );
    }
    let message = |e: &serde_json::Value| e["message"].as_str().unwrap_or("").to_owned();
    assert!(
        events
            .iter()
            .any(|e| message(e).starts_with("rosterd is listening on 127.0.0.1:")),
        "the banner is an event: {log}"
    );
    let login = events
        .iter()
        .find(|e| message(e) == "login")
        .expect("login logged");
    assert_eq!(login["district"], "lincoln", "{login}");
    assert!(
        login["address"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{login}"
    );
    assert!(
        login["key"].as_str().unwrap().starts_with("SHA256:"),
        "{login}"
    );
    let received = events
        .iter()
        .find(|e| message(e) == "users.csv received")
        .expect("upload logged");
    let upload = received["upload"].as_i64().expect("the upload's id");
    let finished = events
        .iter()
        .find(|e| message(e) == "users import finished")
        .expect("import logged");
    assert_eq!(finished["district"], "lincoln", "{finished}");
    assert_eq!(finished["upload"], upload, "{finished}");
    assert!(finished["run"].as_i64().is_some(), "{finished}");
    assert_eq!(finished["rows"], 3, "{finished}");
    // Each phase of the import logged with its total.
    let rows_phase = events
        .iter()
        .find(|e| message(e) == "import: checking rows, hashing passwords, writing, 3 rows")
        .unwrap_or_else(|| panic!("the rows phase logged: {log}"));
    assert_eq!(rows_phase["district"], "lincoln", "{rows_phase}");
    assert_eq!(rows_phase["upload"], upload, "{rows_phase}");
    assert_eq!(rows_phase["total"], 3, "{rows_phase}");
    assert!(
        events
            .iter()
            .any(|e| message(e).starts_with("import: reading the file done, ")),
        "{log}"
    );
    assert!(
        events
            .iter()
            .any(|e| message(e) == "configuration reloaded (SIGHUP)"),
        "{log}"
    );
    assert!(!log.contains("Secr3t"), "a password was logged");
}

#[test]
fn smtp_connection_dropped_mid_data_is_retried_and_delivered_once() {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(smtp_dir.path().to_path_buf(), &["--drop-mid-data", "1"]);
    let (srv, clock, key) = night_server(NIGHT, |c| c.mail.smtp_url = Some(smtp.url()));
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    let pass = srv.block_on(mailer.run_once()).unwrap();
    assert_eq!((pass.sent, pass.retrying), (0, 1));
    assert!(smtp.messages().is_empty());
    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    clock.advance(chrono::Duration::hours(1));
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 0);
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn a_delivery_receipt_left_by_a_killed_sender_is_recorded_without_sending_again() {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(smtp_dir.path().to_path_buf(), &[]);
    let (srv, _clock, key) = night_server(NIGHT, |c| c.mail.smtp_url = Some(smtp.url()));
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    assert_eq!(outbox_states(&srv), [("report".into(), "queued".into(), 0)]);

    // The server accepted message 1 and the sender wrote its receipt, then the
    // daemon was killed before the outbox row said so.
    let receipts = PathBuf::from(format!("{}-sent", srv.env.db_path().display()));
    std::fs::create_dir_all(&receipts).unwrap();
    std::fs::write(receipts.join("1"), "2026-11-20T04:01:00Z\tsmtp\n").unwrap();

    let pass = srv.block_on(mailer.run_once()).unwrap();
    assert_eq!(pass.sent, 0, "nothing is sent a second time");
    assert!(smtp.messages().is_empty());
    assert_eq!(outbox_states(&srv), [("report".into(), "sent".into(), 0)]);
    assert!(
        !receipts.join("1").exists(),
        "the receipt is cleared once recorded"
    );

    // A receipt cut short (killed between creating the file and writing its
    // line) still means the server took the message.
    upload(&srv, &key, &USERS.replace("Cat", "Kit"));
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    std::fs::write(receipts.join("2"), "").unwrap();
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 0);
    assert!(smtp.messages().is_empty());
    assert_eq!(outbox_states(&srv)[1], ("report".into(), "sent".into(), 0));

    // An ordinary delivery leaves no receipt behind.
    upload(&srv, &key, &USERS.replace("Cat", "Kat"));
    assert_eq!(srv.block_on(scheduler.run_once()).unwrap().len(), 1);
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(std::fs::read_dir(&receipts).unwrap().count(), 0);
}
