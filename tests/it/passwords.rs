//! Generated passwords (the seed: "If you do not include a password for users
//! not logging in with single-sign-on (SSO), you must choose the option to
//! generate a password after uploading your file and then distribute it to
//! your users"): a district opted in gets one for every user an import
//! creates without one, delivered once as `new-passwords.csv` with the report
//! and then gone from every file rosterd keeps; support resets and undoes.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::helpers::*;
use crate::pipeline::{NIGHT, night_server, pipeline, upload};
use crate::smtp::SmtpServer;

/// Ann gives a password; Bob and Cat do not; Dan's row has an error.
const USERS: &str = "Username,Password,First Name,Last Name,Graduation Year,School\n\
ann.lee,Secr3t-Ann!,Ann,Lee,2030,Lincoln Elementary\n\
bob.ray,,Bob,Ray,2031,Lincoln Elementary\n\
cat.diaz,,Cat,Diaz,2032,\n\
dan.oak,,Dan,Oak,not-a-year,\n";

/// `new-passwords.csv` as (username → the row's cells).
fn parse_passwords(csv: &str) -> HashMap<String, Vec<String>> {
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("Username,First Name,Last Name,School,Password")
    );
    lines
        .map(|l| {
            let cells: Vec<String> = l.split(',').map(str::to_owned).collect();
            assert_eq!(cells.len(), 5, "{l}");
            (cells[0].clone(), cells)
        })
        .collect()
}

fn assert_generated(password: &str) {
    assert_eq!(
        password.len(),
        rosterd::password::GENERATED_LENGTH,
        "{password}"
    );
    assert!(
        password
            .bytes()
            .all(|b| rosterd::password::GENERATED_ALPHABET.contains(&b)),
        "{password}"
    );
}

fn stored_hash(env: &Env, username: &str) -> Option<String> {
    use rusqlite::OptionalExtension;
    env.store()
        .conn
        .query_row(
            "SELECT password_hash FROM users WHERE username = ?1",
            [username],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
        .flatten()
}

fn signs_in(env: &Env, username: &str, password: &str) -> bool {
    stored_hash(env, username).is_some_and(|h| rosterd::password::verify(password, &h))
}

/// No file under `dir` holds any of `secrets`.
fn assert_nowhere(dir: &Path, secrets: &[&str]) {
    let files = files_under(dir);
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} holds the generated password {s}",
                file.display()
            );
        }
    }
}

#[test]
fn generated_passwords_are_emailed_once_then_gone_from_every_file() {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(smtp_dir.path().to_path_buf(), &[]);
    let (srv, _clock, key) = night_server(NIGHT, |c| c.mail.smtp_url = Some(smtp.url()));
    let env = &srv.env;
    env.ok(&["school", "add", "lincoln", "--name", "Lincoln Elementary"]);
    env.ok(&["tenant", "set", "lincoln", "--generate-passwords", "on"]);
    assert!(
        env.ok(&["tenant", "show", "lincoln"])
            .contains("passwords   generated for new users without one")
    );
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    let reports = srv.block_on(scheduler.run_once()).unwrap();
    let c = reports[0].counts;
    assert_eq!((c.created, c.passwords_generated, c.errors), (3, 2, 1));
    // No "cannot sign in" warning for users that got a password.
    assert!(
        !reports[0]
            .problems
            .iter()
            .any(|p| p.message.contains("without a password")),
        "{:?}",
        reports[0].problems
    );

    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    let text = m["text"].as_str().unwrap();
    assert!(
        text.contains("2 new users had no password in the file, so rosterd generated one for each. The attached new-passwords.csv lists them"),
        "{text}"
    );
    assert!(
        text.contains("then delete the file and this email"),
        "{text}"
    );
    assert!(text.contains("passwords  2 generated"), "{text}");
    let rows = parse_passwords(m["attachments"]["new-passwords.csv"].as_str().unwrap());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows["bob.ray"][..4],
        ["bob.ray", "Bob", "Ray", "Lincoln Elementary"]
    );
    assert_eq!(rows["cat.diaz"][..4], ["cat.diaz", "Cat", "Diaz", ""]);
    let generated: Vec<&str> = rows.values().map(|r| r[4].as_str()).collect();
    for (user, row) in &rows {
        assert_generated(&row[4]);
        assert!(signs_in(env, user, &row[4]), "{user} cannot sign in");
    }
    assert_ne!(generated[0], generated[1]);
    // Ann's own password is hers, never replaced or mailed.
    assert!(signs_in(env, "ann.lee", "Secr3t-Ann!"));
    assert!(!rows.contains_key("ann.lee"));
    // errors.csv still comes, naming the row.
    assert!(
        m["attachments"]["errors.csv"]
            .as_str()
            .unwrap()
            .contains("dan.oak")
    );

    // Delivered once: nothing more to send.
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 0);
    assert_eq!(smtp.messages().len(), 1);
    // The outbox keeps the report without the attachment, and no file
    // under the data directory (database, its log, archive, spool) holds a
    // generated password any more: not even in SQLite's free pages.
    let kept: Vec<u8> = env
        .store()
        .conn
        .query_row("SELECT message FROM outbox", [], |r| r.get(0))
        .unwrap();
    let kept = String::from_utf8_lossy(&kept);
    assert!(!kept.contains("new-passwords.csv\""), "{kept}");
    assert!(kept.contains("errors.csv"), "{kept}");
    assert_nowhere(&env.path("data"), &generated);
    // Nor do the runs, their changes or status show them.
    let changes = env.ok(&["runs", "lincoln", "--id", "1", "--changes"]);
    let runs = env.ok(&["runs", "lincoln"]);
    let status = env.ok(&["status"]);
    for p in &generated {
        for shown in [&changes, &runs, &status] {
            assert!(!shown.contains(p), "{shown}");
        }
    }
}

#[test]
fn in_eml_mode_the_written_file_is_the_delivery_and_the_outbox_row_keeps_no_passwords() {
    let (srv, _clock, key) = night_server(NIGHT, |_| {});
    let env = &srv.env;
    env.ok(&["school", "add", "lincoln", "--name", "Lincoln Elementary"]);
    env.ok(&["tenant", "set", "lincoln", "--generate-passwords", "on"]);
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(srv.block_on(mailer.run_once()).unwrap().sent, 1);
    let eml: Vec<_> = files_under(&env.path("data/outbox"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-report.eml"))
        .collect();
    assert_eq!(eml.len(), 1);
    let written = crate::pipeline::read_eml(&eml[0]);
    assert!(written.contains("new-passwords.csv"), "{written}");
    let mode = std::fs::metadata(&eml[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the .eml is readable by others: {mode:o}");
    let kept: Vec<u8> = env
        .store()
        .conn
        .query_row("SELECT message FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(!String::from_utf8_lossy(&kept).contains("new-passwords.csv\""));
}

/// Ten users who exist, with the given last names, and `extra` new ones
/// without passwords.
fn roster(last: impl Fn(usize) -> String, extra: usize) -> String {
    let mut s = String::from("Username,First Name,Last Name,Graduation Year\n");
    for i in 0..10 {
        s.push_str(&format!("user{i},First{i},{},2030\n", last(i)));
    }
    for i in 0..extra {
        s.push_str(&format!("new{i},New{i},Student{i},2031\n"));
    }
    s
}

#[test]
fn a_held_import_generates_nothing_until_it_is_approved() {
    let (srv, _clock, key) = night_server(NIGHT, |_| {});
    let env = &srv.env;
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, &roster(|i| format!("Last{i}"), 0));
    srv.block_on(scheduler.run_once()).unwrap();
    srv.block_on(mailer.run_once()).unwrap();
    env.ok(&["tenant", "set", "lincoln", "--generate-passwords", "on"]);

    // Every name changed, and one new user: held.
    upload(&srv, &key, &roster(|i| format!("New{i}"), 1));
    let r = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(r[0].outcome.as_str(), "held");
    assert_eq!(r[0].counts.passwords_generated, 0);
    let held = r[0].run_id.unwrap();
    assert_eq!(stored_hash(env, "new0"), None);
    srv.block_on(mailer.run_once()).unwrap();
    let held_mail = files_under(&env.path("data/outbox"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("-held.eml"))
        .unwrap();
    assert!(!crate::pipeline::read_eml(&held_mail).contains("new-passwords.csv"));

    env.ok(&["import", "approve", "lincoln", &held.to_string()]);
    srv.block_on(mailer.run_once()).unwrap();
    let mut reports: Vec<_> = files_under(&env.path("data/outbox"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-report.eml"))
        .collect();
    reports.sort();
    let mail = crate::pipeline::read_eml(reports.last().unwrap());
    assert!(mail.contains("1 new users had no password"), "{mail}");
    let csv_at = mail
        .find("filename=\"new-passwords.csv\"")
        .expect("attached");
    assert!(csv_at > 0);
    assert!(stored_hash(env, "new0").is_some());
    // Existing users are never given one.
    assert_eq!(stored_hash(env, "user0"), None);
}

#[test]
fn support_imports_by_hand_with_generated_passwords_written_to_a_private_file() {
    let env = Env::new();
    env.tenant("lincoln");
    let users = env.file("users.csv", USERS);
    let out = env.path("new-passwords.csv");
    let out_arg = out.to_str().unwrap();

    // A district with generation on must say where the passwords go.
    env.ok(&["tenant", "set", "lincoln", "--generate-passwords", "on"]);
    let (code, _, err) = env.run(&["import", "users", "lincoln", users.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("add --passwords-out FILE"), "{err}");
    assert_eq!(env.user_count(), 0);
    env.ok(&["tenant", "set", "lincoln", "--generate-passwords", "off"]);
    // The flag needs the file.
    let (code, _, err) = env.run(&[
        "import",
        "users",
        "lincoln",
        users.to_str().unwrap(),
        "--generate-passwords",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--passwords-out"), "{err}");

    // A dry run generates nothing it keeps.
    let (code, stdout, err) = env.run(&[
        "import",
        "users",
        "lincoln",
        users.to_str().unwrap(),
        "--generate-passwords",
        "--passwords-out",
        out_arg,
        "--dry-run",
    ]);
    assert_eq!(code, 3, "{stdout}{err}");
    assert!(!out.exists());

    let (code, stdout, err) = env.run(&[
        "import",
        "users",
        "lincoln",
        users.to_str().unwrap(),
        "--generate-passwords",
        "--passwords-out",
        out_arg,
    ]);
    assert_eq!(code, 3, "{stdout}{err}");
    assert!(stdout.contains("passwords  2 generated"), "{stdout}");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let rows = parse_passwords(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(rows.len(), 2);
    let generated: Vec<&str> = rows.values().map(|r| r[4].as_str()).collect();
    for (user, row) in &rows {
        assert!(signs_in(&env, user, &row[4]));
        assert!(!stdout.contains(&row[4]) && !err.contains(&row[4]));
    }
    assert_nowhere(&env.path("data"), &generated);

    // The file is never overwritten.
    let again = env.file("more.csv", "Username,First Name\nzed,Zed\n");
    let (code, _, err) = env.run(&[
        "import",
        "users",
        "lincoln",
        again.to_str().unwrap(),
        "--generate-passwords",
        "--passwords-out",
        out_arg,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("exists"), "{err}");
    assert_eq!(stored_hash(&env, "zed"), None);
    assert_eq!(env.user_count(), 3);
}

#[test]
fn support_resets_passwords_by_run_name_or_missing_and_undo_puts_the_old_ones_back() {
    let env = Env::new();
    env.tenant("lincoln");
    let users = env.file("users.csv", USERS);
    env.run(&["import", "users", "lincoln", users.to_str().unwrap()]);
    assert!(signs_in(&env, "ann.lee", "Secr3t-Ann!"));
    assert_eq!(stored_hash(&env, "bob.ray"), None);

    // Names that match nothing change nothing.
    let (code, _, err) = env.run(&["users", "reset-passwords", "lincoln", "ann.lee", "nobody"]);
    assert_eq!(code, 1);
    assert!(err.contains("has no user \"nobody\""), "{err}");
    assert!(signs_in(&env, "ann.lee", "Secr3t-Ann!"));
    // One way of choosing at a time, and at least one.
    let (code, _, _) = env.run(&["users", "reset-passwords", "lincoln"]);
    assert_eq!(code, 2);

    // Users without a password, to a private file.
    let out = env.path("reset.csv");
    let said = env.ok(&[
        "users",
        "reset-passwords",
        "lincoln",
        "--without-password",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        said.contains("set new passwords for 2 users of lincoln"),
        "{said}"
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let rows = parse_passwords(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(
        rows.keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        ["bob.ray", "cat.diaz"].into()
    );
    for (user, row) in &rows {
        assert_generated(&row[4]);
        assert!(signs_in(&env, user, &row[4]));
    }
    let (code, _, err) = env.run(&[
        "users",
        "reset-passwords",
        "lincoln",
        "--without-password",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("exists"), "{err}");

    // By name, to standard output: Ann's old password stops working.
    let (code, csv, err) = env.run(&["users", "reset-passwords", "lincoln", "ANN.LEE"]);
    assert_eq!(code, 0, "{err}");
    let ann = parse_passwords(&csv);
    let new = &ann["ann.lee"][4];
    assert!(signs_in(&env, "ann.lee", new));
    assert!(!signs_in(&env, "ann.lee", "Secr3t-Ann!"));
    let run: i64 = err
        .split("rosterd runs undo lincoln ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    // The reset is a run, its change a password change shown without values.
    let changes = env.ok(&["runs", "lincoln", "--id", &run.to_string(), "--changes"]);
    assert!(
        changes.contains("password reset  Password: (set) -> (changed)"),
        "{changes}"
    );
    assert!(!changes.contains(new.as_str()));
    // Undo restores the old password.
    env.ok(&["runs", "undo", "lincoln", &run.to_string(), "--apply"]);
    assert!(signs_in(&env, "ann.lee", "Secr3t-Ann!"));
    assert!(!signs_in(&env, "ann.lee", new));

    // By run: the users the first import created (still active).
    let (code, csv, err) = env.run(&["users", "reset-passwords", "lincoln", "--run", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(parse_passwords(&csv).len(), 3);
    env.assert_integrity();
}

#[test]
fn a_report_refused_for_good_keeps_no_passwords_either() {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(smtp_dir.path().to_path_buf(), &["--reject"]);
    let (srv, _clock, key) = night_server(NIGHT, |c| c.mail.smtp_url = Some(smtp.url()));
    let env = &srv.env;
    env.ok(&["school", "add", "lincoln", "--name", "Lincoln Elementary"]);
    env.ok(&["tenant", "set", "lincoln", "--generate-passwords", "on"]);
    let (scheduler, mailer) = pipeline(&srv);
    upload(&srv, &key, USERS);
    srv.block_on(scheduler.run_once()).unwrap();
    // What the message carried, read before it is tried.
    let queued: Vec<u8> = env
        .store()
        .conn
        .query_row(
            "SELECT after_delivery IS NOT NULL, message FROM outbox",
            [],
            |r| {
                assert!(r.get::<_, bool>(0)?);
                r.get(1)
            },
        )
        .unwrap();
    let queued = String::from_utf8_lossy(&queued).into_owned();
    assert!(queued.contains("new-passwords.csv"));
    let pass = srv.block_on(mailer.run_once()).unwrap();
    assert_eq!(pass.failed, 1);
    // The passwords it carried: the attachment, base64-decoded.
    let at = queued
        .find("filename=\"new-passwords.csv\"")
        .expect("attached");
    let part = &queued[at..];
    let start = part.find("\r\n\r\n").unwrap() + 4;
    let end = start + part[start..].find("\r\n--").unwrap();
    let b64: String = part[start..end].split_whitespace().collect();
    use base64ct::Encoding;
    let csv = String::from_utf8(base64ct::Base64::decode_vec(&b64).unwrap()).unwrap();
    let rows = parse_passwords(&csv);
    let generated: Vec<&str> = rows.values().map(|r| r[4].as_str()).collect();
    assert_eq!(generated.len(), 2);
    for p in &generated {
        assert_generated(p);
    }
    assert_nowhere(&env.path("data"), &generated);
    let kept: Vec<u8> = env
        .store()
        .conn
        .query_row("SELECT message FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(!String::from_utf8_lossy(&kept).contains("new-passwords.csv\""));
}
