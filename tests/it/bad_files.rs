//! A bad file is a report, never an outage: files of hostile shapes through
//! the real daemon and the importer, reports that stay bounded and safe to
//! open, imports that fail end in one email, and the spool and data
//! directory defended on disk.

use std::path::Path;
use std::time::Duration;

use rosterd::import::{Outcome, Severity, Source};
use rosterd::scheduler::{MAX_ATTEMPTS, Next};

use crate::helpers::*;
use crate::pipeline::{
    Daemon, NIGHT, at, daemon_sftp, night_server, pipeline, query_i64, read_eml, upload, wait_for,
};
use crate::server::tenant_with_key;
use crate::smtp::free_port;

/// The daemon's own peak resident memory, from /proc.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024
}

fn daemon_env(env: &Env, port: u16) {
    let config = std::fs::read_to_string(&env.config).unwrap().replace(
        "[server]\n",
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    ) + "settle_seconds = 0\n";
    std::fs::write(&env.config, config).unwrap();
}

fn put(env: &Env, key: &Path, port: u16, local: &str) {
    let (code, err) = sftp_put(env, key, port, local);
    assert_eq!(code, Some(0), "{err}");
}

/// `put local users.csv` that the server refuses: what `sftp` printed.
fn put_refused(env: &Env, key: &Path, port: u16, local: &str) -> String {
    let (code, err) = sftp_put(env, key, port, local);
    assert_eq!(code, Some(1), "{err}");
    err
}

/// `put local users.csv` with `sftp -b` to a daemon child on `port`: its
/// exit status and what it printed on stderr.
pub(crate) fn sftp_put(env: &Env, key: &Path, port: u16, local: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let mut sftp = daemon_sftp(env, key, port, 300)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sftp.stdin
        .take()
        .unwrap()
        .write_all(format!("put {local} users.csv\n").as_bytes())
        .unwrap();
    let out = sftp.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A 128 MiB upload without a single line break (a database dump, a binary
/// export with its NULs stripped): the server refuses it at the write that
/// passes the 1 MiB line limit, naming the line; the same file found in the
/// spool (put there before the upload check existed) is rejected by the
/// import with the same reason. The daemon stays far below 256 MiB, mails
/// notes under 1 MiB, and imports the district's next file as usual.
#[test]
fn a_file_without_line_breaks_is_rejected_in_bounded_memory() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let port = free_port();
    daemon_env(&env, port);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(env.path("one-line.csv")).unwrap();
        f.write_all(b"Username,First Name,").unwrap();
        let chunk = b"abcdefgh ".repeat(1 << 16);
        for _ in 0..(128 << 20) / chunk.len() {
            f.write_all(&chunk).unwrap();
        }
    }
    env.file("good.csv", "Username,First Name\njdoe,Jane\n");
    let daemon = Daemon::start(&env);
    wait_for("the daemon to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let err = put_refused(&env, &key, port, "one-line.csv");
    assert!(
        err.contains("write remote \"/users.csv\": Failure"),
        "{err}"
    );
    wait_for(
        "the refused upload's record",
        Duration::from_secs(60),
        || query_i64(&env, "SELECT count(*) FROM uploads WHERE state = 'refused'") == 1,
    );
    let refused: String = env
        .store()
        .conn
        .query_row(
            "SELECT failure FROM uploads WHERE state = 'refused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        refused.starts_with("line 1 is longer than 1 MiB: is this a CSV export"),
        "{refused}"
    );
    assert!(!env.path("data/spool/lincoln/users.csv").exists());

    std::fs::copy(
        env.path("one-line.csv"),
        env.path("data/spool/lincoln/users.csv"),
    )
    .unwrap();
    wait_for(
        "the import of the one-line file",
        Duration::from_secs(120),
        || query_i64(&env, "SELECT count(*) FROM import_runs") == 1,
    );
    let peak = peak_rss_mib(daemon.0.id());
    assert!(peak < 256, "the daemon peaked at {peak} MiB");
    let reason: String = env
        .store()
        .conn
        .query_row(
            "SELECT outcome || ': ' || reason FROM import_runs",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        reason.starts_with("rejected: line 1 is longer than 1 MiB: is this a CSV export"),
        "{reason}"
    );

    put(&env, &key, port, "good.csv");
    wait_for("the next upload's import", Duration::from_secs(60), || {
        query_i64(
            &env,
            "SELECT count(*) FROM import_runs WHERE outcome = 'applied'",
        ) == 1
    });
    wait_for("the three notes", Duration::from_secs(30), || {
        std::fs::read_dir(env.path("data/outbox")).map_or(0, |d| d.count()) >= 3
    });
    daemon.kill();
    for eml in std::fs::read_dir(env.path("data/outbox")).unwrap() {
        let eml = eml.unwrap().path();
        let size = std::fs::metadata(&eml).unwrap().len();
        assert!(size < 1 << 20, "{} is {size} bytes", eml.display());
    }
}

/// 12,000 rows whose every cell is wrong and 600 characters long, under
/// a header with a 100,000-character column name: every echoed value is cut
/// to 200 characters and says so, the stored problems stay small, and the
/// email (body and errors.csv) stays under 1 MiB, saying the list is cut.
#[test]
fn reports_echo_bounded_values_and_stay_under_a_mebibyte() {
    let env = Env::new();
    env.tenant("lincoln");
    let long = "x".repeat(600);
    let mut body = format!("Username,Email Address,{}\n", "H".repeat(100_000));
    for i in 0..12_000 {
        body.push_str(&format!("{long}{i},{long}@,v\n"));
    }
    let f = env.file("users.csv", &body);
    let mut store = env.store();
    let tenant = store.require_tenant("lincoln").unwrap();
    let ctx = context(&env, at(NIGHT));
    let mut opts = options(&f, false);
    opts.email = true;
    let report = rosterd::import::users::import(&mut store.conn, &ctx, &tenant, &f, &opts).unwrap();
    assert_eq!(report.outcome, Outcome::Rejected);
    assert_eq!(report.counts.skipped, 12_000);
    let unknown = &report.problems[0];
    assert!(
        unknown.column.ends_with("… [cut: 99800 more characters]"),
        "{}",
        &unknown.column[..60]
    );
    for p in &report.problems[1..] {
        assert!(p.value.chars().count() < 250, "{}", p.value.len());
        assert!(p.value.contains("… [cut: "), "{}", &p.value[..40]);
    }
    let stored: i64 = store
        .conn
        .query_row(
            "SELECT sum(length(value) + length(message) + length(column)) FROM import_problems",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored <= 5 << 20, "{stored} bytes of problems stored");
    let (size, message): (i64, Vec<u8>) = store
        .conn
        .query_row("SELECT length(message), message FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(size < 1 << 20, "the report email is {size} bytes");
    let eml = env.file("report.eml", &message);
    let text = read_eml(&eml);
    assert!(
        text.contains("errors.csv lists the first "),
        "{}",
        &text[..2000]
    );
}

/// A header cell holding CR/LF and text made to look like a notice, and an
/// administrator name with a line break given to the CLI: the email shows
/// the first escaped on one line, and the CLI refuses the second.
#[test]
fn input_cannot_forge_lines_in_reports_or_settings() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "users.csv",
        "Username,\"Notes\r\nURGENT: your SFTP key expired, log in at http://evil.example\"\njdoe\n",
    );
    let mut store = env.store();
    let tenant = store.require_tenant("lincoln").unwrap();
    let mut opts = options(&f, false);
    opts.email = true;
    rosterd::import::users::import(
        &mut store.conn,
        &context(&env, at(NIGHT)),
        &tenant,
        &f,
        &opts,
    )
    .unwrap();
    let message: Vec<u8> = store
        .conn
        .query_row("SELECT message FROM outbox", [], |r| r.get(0))
        .unwrap();
    let text = read_eml(&env.file("r.eml", &message));
    assert!(
        text.contains("Notes\\r\\nURGENT: your SFTP key expired"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("URGENT")),
        "{text}"
    );

    for (flag, value) in [
        ("--admin-name", "Ann\r\nBcc: all@example.org"),
        ("--admin-name", "Ann\u{202e}eeL"),
    ] {
        let (code, _, err) = env.run(&["tenant", "set", "lincoln", flag, value]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("invisible or control character U+"), "{err}");
    }
    assert!(env.ok(&["tenant", "show", "lincoln"]).contains("Ann Lee"));
}

/// Cells that a spreadsheet would run as formulas are written with a leading
/// apostrophe in errors.csv, `import --format csv` and `users export`; an
/// export imports back to exactly the same accounts.
#[test]
fn csv_injection_is_neutralised_and_exports_import_back_unchanged() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "users.csv",
        "Username,First Name,Last Name,Email Address,Graduation Year\n\
         jdoe,=HYPERLINK(\"http://evil.example\"),@SUM(A1),,2030\n\
         asmith,+cmd,-2,,\n\
         olee,'=already,'Iolani,,\n\
         bad.one,Bad,One,=1+1@,\n",
    );
    let (code, out, _) = env.run(&[
        "import",
        "users",
        "lincoln",
        f.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("'=1+1@"), "{out}");
    assert!(
        !out.lines()
            .any(|l| l.split(',').any(|c| c.starts_with(['=', '+', '@']))),
        "{out}"
    );
    let export = env.export("lincoln");
    assert!(
        export.contains("jdoe,,\"'=HYPERLINK(\"\"http://evil.example\"\")\",'@SUM(A1)"),
        "{export}"
    );
    assert!(export.contains("asmith,,'+cmd,'-2"), "{export}");
    // A district's own apostrophe before a formula character is read as
    // Excel reads it (text follows); one before anything else is kept.
    assert!(export.contains("olee,,'=already,''Iolani"), "{export}");
    let names: (String, String) = env
        .store()
        .conn
        .query_row(
            "SELECT first_name, last_name FROM users WHERE username = 'olee'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(names, ("=already".to_string(), "'Iolani".to_string()));
    // Re-importing the export changes nothing, and exports the same bytes.
    let again = env.file("export.csv", &export);
    let r = env.import("lincoln", &again);
    assert_eq!((r.counts.updated, r.counts.unchanged), (0, 3), "{r:?}");
    assert_eq!(env.export("lincoln"), export);
}

/// Usernames are ASCII: a Cyrillic or full-width look-alike of a name is a
/// row error, and names with a right-to-left override are refused.
#[test]
fn look_alike_usernames_and_hidden_characters_in_names_are_refused() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "users.csv",
        "Username,First Name\n\
         admin.user,Real\n\
         \u{430}dmin.user,Cyrillic\n\
         \u{ff41}dmin.user2,FullWidth\n\
         kid.one,Ann\u{202e}eeL\n\
         kid.two,Two\n\
         kid.three,Three\n",
    );
    let r = env.import("lincoln", &f);
    let errors: Vec<(u64, String)> = r
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| (p.line.unwrap(), p.message.clone()))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].1.contains("U+0430, not an ASCII letter"),
        "{errors:?}"
    );
    assert!(
        errors[1].1.contains("U+FF41, not an ASCII letter"),
        "{errors:?}"
    );
    assert!(
        errors[2]
            .1
            .contains("invisible formatting character U+202E"),
        "{errors:?}"
    );
    // The value echoed in the report shows the override escaped.
    assert!(
        r.problems.iter().any(|p| p.value == "Ann\\u{202e}eeL"),
        "{:?}",
        r.problems
    );
    assert_eq!(r.counts.created, 3);
}

/// An import that fails with an error (here the database refuses every new
/// user) is tried again, up to three attempts; then the upload is failed,
/// the administrator gets one email, `rosterd status` says why, and the
/// district's next upload is imported as usual.
#[test]
fn an_import_that_keeps_failing_ends_in_one_email_and_the_next_upload_imports() {
    let (srv, _clock, key) = night_server(NIGHT, |_| {});
    let (scheduler, _mailer) = pipeline(&srv);
    upload(&srv, &key, "Username,First Name\njdoe,Jane\n");
    let store = srv.env.store();
    store
        .conn
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON users BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END;",
        )
        .unwrap();
    let tenant = store.require_tenant("lincoln").unwrap();
    let mut conn = srv.env.store().conn;
    for attempt in 1..MAX_ATTEMPTS {
        let e = scheduler.import_next(&mut conn, &tenant).unwrap_err();
        assert!(
            format!("{e:#}").contains("simulated disk failure"),
            "attempt {attempt}: {e:#}"
        );
    }
    match scheduler.import_next(&mut conn, &tenant).unwrap() {
        Next::Failed(why) => assert!(why.contains("simulated disk failure"), "{why}"),
        other => panic!("expected the upload to be given up, got {other:?}"),
    }
    let (state, attempts): (String, i64) = store
        .conn
        .query_row("SELECT state, attempts FROM uploads", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("failed", MAX_ATTEMPTS as i64));
    // Nothing more to try; one email.
    assert!(matches!(
        scheduler.import_next(&mut conn, &tenant).unwrap(),
        Next::Nothing
    ));
    let mails: Vec<(String, String)> = store
        .conn
        .prepare("SELECT kind, subject FROM outbox")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        mails,
        [(
            "failed".to_string(),
            "lincoln: we could not import your users.csv — support has been told".to_string()
        )]
    );
    let status = srv.env.ok(&["status"]);
    assert!(status.contains("FAILED        upload 1"), "{status}");
    assert!(status.contains("simulated disk failure"), "{status}");
    // The plaintext original is gone from the spool.
    assert!(
        !files_under(&srv.env.path("data/spool"))
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".original.csv"))
    );

    store.conn.execute_batch("DROP TRIGGER refuse").unwrap();
    upload(&srv, &key, "Username,First Name\njdoe,Jane\nasmith,Al\n");
    match scheduler.import_next(&mut conn, &tenant).unwrap() {
        Next::Imported(r) => assert_eq!(r.counts.created, 2),
        other => panic!("expected an import, got {other:?}"),
    }
    assert!(!srv.env.ok(&["status"]).contains("FAILED"));
}

/// An import the daemon did not survive is resumed once at the next start;
/// cut short a second time, the upload is set aside at the following start
/// (not resumed into the same crash) and its administrator is emailed.
#[test]
fn an_import_cut_short_twice_is_set_aside_at_start() {
    let (srv, _clock, key) = night_server(NIGHT, |_| {});
    let (scheduler, _mailer) = pipeline(&srv);
    upload(&srv, &key, "Username,First Name\njdoe,Jane\n");
    let store = srv.env.store();
    let tenant = store.require_tenant("lincoln").unwrap();
    // Taken for import, as a run that then died would have left it.
    let spool = scheduler.spool_of(&tenant);
    let claimed = rosterd::spool::claim(&store.conn, &spool, tenant.id)
        .unwrap()
        .unwrap();
    assert_eq!(claimed.attempts, 1);
    assert_eq!(scheduler.settle_interrupted(&store.conn, None).unwrap(), 0);
    let state = || -> String {
        store
            .conn
            .query_row("SELECT state FROM uploads", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(state(), "importing");
    // The resumed attempt dies too.
    let again = rosterd::spool::claim(&store.conn, &spool, tenant.id)
        .unwrap()
        .unwrap();
    assert_eq!((again.upload_id, again.attempts), (claimed.upload_id, 2));
    assert_eq!(scheduler.settle_interrupted(&store.conn, None).unwrap(), 1);
    assert_eq!(state(), "failed");
    let kinds: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM outbox WHERE kind = 'failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kinds, 1);
    assert!(!claimed.path.exists(), "the plaintext original is removed");
    assert!(
        srv.env
            .ok(&["status"])
            .contains("stopped during this upload's import 2 times")
    );
}

/// A spool `users.csv` replaced by a symbolic link (someone on the machine
/// pointing it at a secret) is never read: the import is rejected with a
/// reason that names no path and quotes nothing of the target.
#[test]
fn a_symlinked_spool_file_is_not_followed() {
    let (srv, _clock, key) = night_server(NIGHT, |_| {});
    let (scheduler, _mailer) = pipeline(&srv);
    upload(&srv, &key, "Username,First Name\njdoe,Jane\n");
    let secret = srv
        .env
        .file("secret.txt", "Username\nroot-password-hunter2\n");
    let pending = srv.pending("lincoln");
    std::fs::remove_file(&pending).unwrap();
    std::os::unix::fs::symlink(&secret, &pending).unwrap();
    let store = srv.env.store();
    let tenant = store.require_tenant("lincoln").unwrap();
    let mut conn = srv.env.store().conn;
    let report = match scheduler.import_next(&mut conn, &tenant).unwrap() {
        Next::Imported(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(report.outcome, Outcome::Rejected);
    let reason = report.reason.unwrap();
    assert!(reason.contains("replaced by a symbolic link"), "{reason}");
    let message: Vec<u8> = store
        .conn
        .query_row("SELECT message FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(!String::from_utf8_lossy(&message).contains("hunter2"));
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "Username\nroot-password-hunter2\n"
    );
    assert_eq!(srv.env.user_count(), 0);
    // A support import of a linked file of their own is still fine.
    let link = srv.env.path("mine.csv");
    std::os::unix::fs::symlink(srv.env.file("real.csv", "Username\nkid.one\n"), &link).unwrap();
    let mut opts = options(&link, false);
    opts.source = Source::Cli;
    let r = rosterd::import::users::import(
        &mut conn,
        &context(&srv.env, at(NIGHT)),
        &tenant,
        &link,
        &opts,
    )
    .unwrap();
    assert_eq!(r.counts.created, 1);
}

/// A staged `users.csv.part` never renamed is removed once its session has
/// surely ended (login grace plus idle timeout); a fresh one stays.
#[test]
fn staged_files_never_renamed_are_removed() {
    let (srv, _clock, key) = night_server(NIGHT, |c| {
        c.server.idle_timeout_seconds = 60;
        c.server.login_grace_seconds = 10;
    });
    let (scheduler, _mailer) = pipeline(&srv);
    srv.env
        .file("users.csv.part", "Username,Password\njdoe,Secr3t-Jane!\n");
    let (code, _, err) = srv.sftp("lincoln", &key, "put users.csv.part\n");
    assert_eq!(code, 0, "{err}");
    let staged = srv.env.path("data/spool/lincoln/staging/users.csv.part");
    assert!(staged.exists());
    let store = srv.env.store();
    scheduler.survey(&store.conn).unwrap();
    assert!(staged.exists(), "a fresh staged file is kept");
    let touched = std::process::Command::new("touch")
        .args(["-d", "71 seconds ago"])
        .arg(&staged)
        .status()
        .unwrap();
    assert!(touched.success());
    scheduler.survey(&store.conn).unwrap();
    assert!(
        !staged.exists(),
        "a staged file older than grace + idle is removed"
    );
}

/// `serve` refuses a data directory another user owns or every user may
/// write, and a database it may not write, each with a message naming it.
#[test]
fn serve_refuses_unsafe_data_directories_and_a_read_only_database() {
    // World-writable.
    let env = Env::new();
    std::fs::create_dir_all(env.path("data")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.path("data"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, _, err) = env.run(&["serve"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("data may be written by every user on this machine (mode 777)"),
        "{err}"
    );
    // Every support command refuses it too, and so does a group that may write.
    for mode in [0o777, 0o770] {
        std::fs::set_permissions(env.path("data"), std::fs::Permissions::from_mode(mode)).unwrap();
        for args in [&["status"][..], &["tenant", "list"], &["init"]] {
            let (code, _, err) = env.run(args);
            assert_eq!(code, 1, "rosterd {args:?} with mode {mode:o}: {err}");
            assert!(
                err.contains("data may be written by") && err.contains(&format!("(mode {mode:o}")),
                "{err}"
            );
        }
    }
    std::fs::set_permissions(env.path("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
    env.ok(&["status"]);

    // Owned by someone else: as root, a directory given to nobody; as
    // anyone else, the root directory.
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let env = Env::new();
    let spool = if root {
        let dir = env.path("others");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        dir
    } else {
        "/".into()
    };
    let config = std::fs::read_to_string(&env.config).unwrap().replace(
        "spool = \"data/spool\"",
        &format!("spool = {:?}", spool.to_str().unwrap()),
    );
    std::fs::write(&env.config, config).unwrap();
    let (code, _, err) = env.run(&["serve"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("but rosterd runs as user"), "{err}");
    let (code, _, err) = env.run(&["status"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("but rosterd runs as user"), "{err}");

    // A database the daemon's user may only read: as root, run the daemon
    // as nobody with the data directory given to nobody and the database
    // file left to root.
    let env = Env::new();
    env.tenant("lincoln");
    let db = env.db_path();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mut serve = if root {
        // Root writes any file whatever its mode: run as nobody, who owns
        // everything (so only the mode stands in the way).
        let chown = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(env.dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(["--config", env.config.to_str().unwrap(), "serve"])
            .current_dir(env.dir.path())
            .env("ROSTERD_LOG", "warn");
        cmd
    } else {
        env.command(&["serve"])
    };
    let (code, _, err) = decode(serve.output().expect("run rosterd serve"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("rosterd.db is read-only for this user"),
        "{err}"
    );
}

/// A daemon that crashes (a fatal signal of its own, here SIGABRT as a failed
/// allocation raises) while importing sets that upload aside at its next
/// start instead of resuming into the same crash; a SIGKILL (a kill, a power
/// cut) leaves no mark, so that import is resumed (see pipeline.rs).
#[test]
fn an_import_the_daemon_crashed_in_is_set_aside_at_the_next_start() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let port = free_port();
    daemon_env(&env, port);
    let mut body = String::from("Username,Email Address,First Name,Last Name\n");
    for i in 0..150_000 {
        body.push_str(&format!("user{i},user{i}@example.org,First{i},Last{i}\n"));
    }
    env.file("big.csv", &body);
    let daemon = Daemon::start(&env);
    wait_for("the daemon to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    put(&env, &key, port, "big.csv");
    wait_for("the import to start", Duration::from_secs(60), || {
        query_i64(
            &env,
            "SELECT count(*) FROM uploads WHERE state = 'importing'",
        ) == 1
    });
    let pid = daemon.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-ABRT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut daemon = daemon;
    let status = daemon.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
    assert_eq!(query_i64(&env, "SELECT count(*) FROM import_runs"), 0);

    let daemon = Daemon::start(&env);
    wait_for("the upload set aside", Duration::from_secs(30), || {
        query_i64(&env, "SELECT count(*) FROM uploads WHERE state = 'failed'") == 1
    });
    daemon.kill();
    let why: String = env
        .store()
        .conn
        .query_row("SELECT failure FROM uploads", [], |r| r.get(0))
        .unwrap();
    assert!(
        why.starts_with("the daemon crashed (a fatal signal) while importing"),
        "{why}"
    );
    assert_eq!(query_i64(&env, "SELECT count(*) FROM import_runs"), 0);
    assert_eq!(
        query_i64(&env, "SELECT count(*) FROM outbox WHERE kind = 'failed'"),
        1
    );
}
