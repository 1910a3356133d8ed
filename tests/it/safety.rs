//! Data safety end to end: the change journal and `runs --changes`, undo,
//! full-sync deactivation, holds (emailed, approved once, discarded,
//! superseded, surviving a SIGKILL between approve and commit) and pauses,
//! through the real CLI, the in-process SFTP server with a real `sftp`
//! client, and the scheduler on a fixed clock.

use std::path::PathBuf;
use std::time::Duration;

use crate::helpers::*;
use crate::pipeline::{at, night_server, pipeline, query_i64, read_eml, upload, wait_for};

/// A users.csv of `users` (`user0`…), each with `last` as last name, or
/// the last name `changed(i)` gives.
fn roster(users: std::ops::Range<usize>, last: impl Fn(usize) -> String) -> String {
    let mut s = String::from("Username,Email Address,First Name,Last Name,Graduation Year\n");
    for i in users {
        s.push_str(&format!(
            "user{i},user{i}@example.org,First{i},{},2030\n",
            last(i)
        ));
    }
    s
}

fn same(i: usize) -> String {
    format!("Last{i}")
}

/// The newest `.eml` of `kind` in the outbox directory of `env`.
fn newest_eml(env: &Env, kind: &str) -> String {
    read_eml(&newest_eml_path(env, kind))
}

fn newest_eml_path(env: &Env, kind: &str) -> PathBuf {
    let mut emls: Vec<_> = files_under(&env.path("data/outbox"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(&format!("-{kind}.eml")))
        .collect();
    emls.sort();
    emls.pop().unwrap_or_else(|| panic!("no {kind} email"))
}

/// The attachment `name` of the newest `kind` email, decoded.
fn newest_attachment(env: &Env, kind: &str, name: &str) -> String {
    let message = crate::mime::Part::parse(&std::fs::read(newest_eml_path(env, kind)).unwrap());
    let part = message
        .walk()
        .into_iter()
        .find(|p| p.param("Content-Disposition", "filename").as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in the {kind} email"));
    String::from_utf8(part.decoded()).unwrap()
}

fn run_outcomes(env: &Env) -> Vec<(i64, String, Option<String>)> {
    let store = env.store();
    let mut stmt = store
        .conn
        .prepare("SELECT id, outcome, resolution FROM import_runs ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn changes_are_journaled_listed_and_undone_to_byte_identical_exports() {
    let env = Env::new();
    env.tenant("lincoln");
    let first = env.file(
        "a.csv",
        "Username,Password,First Name,Last Name,Access Type,School\n\
         ann.lee,Secr3t-Ann!,Ann,Lee,,Lincoln High\n\
         bob.ray,Secr3t-Bob!,Bob,Ray,Manager,\n\
         cat.diaz,,Cat,Diaz,,\n",
    );
    env.ok(&["import", "users", "lincoln", first.to_str().unwrap()]);
    let before = env.export("lincoln");
    let hash_of = |name: &str| -> String {
        env.store()
            .conn
            .query_row(
                "SELECT password_hash FROM users WHERE username_key = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    };
    let ann_hash = hash_of("ann.lee");

    // Run 2 renames Ann, changes her password and school, and removes Bob's access.
    let second = env.file(
        "b.csv",
        "Username,Password,First Name,Last Name,Access Type,School\n\
         ann.lee,N3w-Secret-Ann,Anne,Lee,,Lincoln Elementary\n\
         bob.ray,,Bob,Ray,None,\n\
         cat.diaz,,Cat,Diaz,,\n\
         dan.wu,,Dan,Wu,,\n",
    );
    env.ok(&["import", "users", "lincoln", second.to_str().unwrap()]);
    let after = env.export("lincoln");
    assert_ne!(before, after);
    assert_ne!(hash_of("ann.lee"), ann_hash);

    let changes = env.ok(&["runs", "lincoln", "--id", "2", "--changes"]);
    for line in [
        "First Name: Ann -> Anne",
        "School: Lincoln High -> Lincoln Elementary",
        "Password: (set) -> (changed)",
        "Access Type: Manager -> (blank)",
    ] {
        assert!(changes.contains(line), "no {line:?} in:\n{changes}");
    }
    assert!(
        changes
            .lines()
            .any(|l| l.starts_with("dan.wu") && l.contains("created")),
        "{changes}"
    );
    assert!(
        !changes.contains("cat.diaz"),
        "an unchanged user is listed:\n{changes}"
    );
    assert!(!changes.contains("argon2"), "a hash is shown:\n{changes}");
    let csv = env.ok(&[
        "runs",
        "lincoln",
        "--id",
        "2",
        "--changes",
        "--format",
        "csv",
    ]);
    assert!(
        csv.starts_with("Username,Change,Field,Before,After\n"),
        "{csv}"
    );
    assert!(
        csv.contains("ann.lee,updated,First Name,Ann,Anne\n"),
        "{csv}"
    );
    assert!(csv.contains("dan.wu,created,,,\n"), "{csv}");
    let json: serde_json::Value = serde_json::from_str(&env.ok(&[
        "runs",
        "lincoln",
        "--id",
        "2",
        "--changes",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        (&json["district"], &json["run"]),
        (&"lincoln".into(), &2.into())
    );
    let changes = json["changes"].as_array().unwrap();
    assert_eq!(
        changes.len(),
        csv.lines().count() - 1,
        "one entry per CSV line: {json}"
    );
    assert!(changes.contains(&serde_json::json!({
        "username": "dan.wu", "change": "created", "field": "", "before": "", "after": ""
    })));

    // A dry run by default: nothing changes.
    let dry = env.ok(&["runs", "undo", "lincoln", "2"]);
    assert!(
        dry.contains("would restore 2 users and deactivate 1"),
        "{dry}"
    );
    assert_eq!(env.export("lincoln"), after);

    let done = env.ok(&["runs", "undo", "lincoln", "2", "--apply"]);
    assert!(
        done.contains("as run 3: 2 users restored, 1 deactivated"),
        "{done}"
    );
    // Every value back, byte for byte; the created user deactivated, not deleted.
    let undone = env.export("lincoln");
    let dan = "dan.wu,,Dan,Wu,,,,staff,inactive\n";
    assert!(undone.contains(dan), "{undone}");
    assert_eq!(undone.replace(dan, ""), before);
    assert_eq!(hash_of("ann.lee"), ann_hash);
    let mail = newest_eml(&env, "report");
    assert!(mail.contains("Support undid an import for lincoln (undo of run 2)"));
    assert!(
        mail.contains("deactivated 1 (created by the undone run)"),
        "{mail}"
    );
    assert!(
        !mail.contains("not decoded") && !mail.contains("full sync"),
        "{mail}"
    );
    // Its HTML says so; an undo has no nights to draw.
    let message =
        crate::mime::Part::parse(&std::fs::read(newest_eml_path(&env, "report")).unwrap());
    assert_eq!(
        message.outline(),
        "multipart/alternative [text/plain, text/html]"
    );
    let html = message.find("text/html").unwrap().text();
    assert!(html.contains(">Undone</div>"), "{html}");
    let runs: serde_json::Value =
        serde_json::from_str(&env.ok(&["runs", "lincoln", "--format", "json"])).unwrap();
    assert_eq!(runs["runs"][0]["deactivated"], 1, "{runs}");
    assert!(
        env.ok(&["runs", "lincoln"])
            .contains("DEACT   REACT    KEPT")
    );

    // Undone once; a run and the undo that took it back are in nobody's way.
    let (code, _, err) = env.run(&["runs", "undo", "lincoln", "2", "--apply"]);
    assert_eq!(code, 1);
    assert!(err.contains("run 2 is undone by run 3 already"), "{err}");
    let dry = env.ok(&["runs", "undo", "lincoln", "1"]);
    assert!(
        dry.contains("would restore 0 users and deactivate 3"),
        "{dry}"
    );
    // The undo is a run like any other: undoing it redoes run 2, which is
    // then in run 1's way again (and can be undone again).
    env.ok(&["runs", "undo", "lincoln", "3", "--apply"]);
    assert_eq!(env.export("lincoln"), after);
    let (code, _, err) = env.run(&["runs", "undo", "lincoln", "1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("later runs changed some of the same users (2)"),
        "{err}"
    );
    let runs = env.ok(&["runs", "lincoln"]);
    assert!(runs.contains("then: redone by run 4"), "{runs}");
    assert!(runs.contains("then: undone by run 4"), "{runs}");
    env.ok(&["runs", "undo", "lincoln", "2"]);
    env.assert_integrity();
}

#[test]
fn the_same_file_after_an_undo_is_applied_again_and_settings_change_all_or_nothing() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file("f.csv", roster(0..3, same));
    env.ok(&["import", "users", "lincoln", f.to_str().unwrap()]);
    env.ok(&["runs", "undo", "lincoln", "1", "--apply"]);
    assert_eq!(env.export("lincoln").matches(",inactive\n").count(), 3);
    // Byte-identical to the last applied file, but that run was undone.
    let out = env.ok(&["import", "users", "lincoln", f.to_str().unwrap()]);
    assert!(out.contains("3 reactivated"), "{out}");
    assert!(!env.export("lincoln").contains("inactive"));
    // Now it is the accounts' file again: unchanged.
    let out = env.ok(&["import", "users", "lincoln", f.to_str().unwrap()]);
    assert!(out.contains("unchanged since the last import"), "{out}");
    // A bad value anywhere changes none of the settings given with it.
    let (code, _, err) = env.run(&[
        "tenant",
        "set",
        "lincoln",
        "--absent",
        "deactivate",
        "--hold-updates",
        "off",
        "--admin-email",
        "not-an-address",
    ]);
    assert_eq!(code, 1, "{err}");
    let show = env.ok(&["tenant", "show", "lincoln"]);
    assert!(show.contains("absent      keep"), "{show}");
    assert!(show.contains("more than 50% updated (default)"), "{show}");
    env.ok(&["tenant", "set", "lincoln", "--hold-updates", "off"]);
    assert!(
        env.ok(&["tenant", "show", "lincoln"])
            .contains("never for updated")
    );
    // A run without changes (run 4 found the file unchanged) has nothing to undo.
    let (code, _, err) = env.run(&["runs", "undo", "lincoln", "4"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("changed nothing") || err.contains("changed no user"),
        "{err}"
    );
}

#[test]
fn full_sync_deactivates_absent_users_and_reactivates_them_when_they_return() {
    let env = Env::new();
    env.tenant("lincoln");
    let all = env.file("all.csv", roster(0..10, same));
    env.ok(&["import", "users", "lincoln", all.to_str().unwrap()]);
    let fewer = env.file("fewer.csv", roster(0..8, same));
    // Left alone by default (SPEC 3).
    env.ok(&["import", "users", "lincoln", fewer.to_str().unwrap()]);
    assert!(!env.export("lincoln").contains("inactive"));

    env.ok(&["tenant", "set", "lincoln", "--absent", "deactivate"]);
    assert!(
        env.ok(&["tenant", "show", "lincoln"])
            .contains("absent      deactivate")
    );
    let out = env.ok(&[
        "import",
        "users",
        "lincoln",
        fewer.to_str().unwrap(),
        "--force",
        "--email",
    ]);
    assert!(
        out.contains("deactivated 2 (not in the file; full sync)"),
        "{out}"
    );
    // The subject says so: such a night must not read like a quiet one.
    let subjects: Vec<String> = env
        .store()
        .conn
        .prepare("SELECT subject FROM outbox WHERE kind = 'report'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        subjects.contains(
            &"lincoln: fewer.csv imported — 0 created, 0 updated, 2 deactivated".to_owned()
        ),
        "{subjects:?}"
    );
    let export = env.export("lincoln");
    assert!(
        export.contains("user8,user8@example.org,First8,Last8,,2030,,student,inactive\n"),
        "{export}"
    );
    assert!(
        export.contains("user9,"),
        "deactivated users are kept: {export}"
    );
    assert_eq!(export.matches(",inactive\n").count(), 2, "{export}");

    // A file without data rows deactivates nobody.
    let empty = env.file("empty.csv", "Username,First Name\n");
    env.ok(&["import", "users", "lincoln", empty.to_str().unwrap()]);
    assert_eq!(env.export("lincoln").matches(",inactive\n").count(), 2);

    // A deactivated user cannot own groups (SPEC 4: an active user).
    let groups = env.file(
        "groups.csv",
        "Username,Owner Name,Group Name\nuser1,user9,Homeroom\n",
    );
    let (_, out, _) = env.run(&["import", "groups", "lincoln", groups.to_str().unwrap()]);
    assert!(
        out.contains("\"user9\" is deactivated")
            && out.contains("only an active user can own groups"),
        "{out}"
    );

    let out = env.ok(&[
        "import",
        "users",
        "lincoln",
        all.to_str().unwrap(),
        "--force",
    ]);
    assert!(out.contains("reactivated 2"), "{out}");
    assert!(!env.export("lincoln").contains("inactive"));
    let last = query_i64(&env, "SELECT max(id) FROM import_runs").to_string();
    let csv = env.ok(&[
        "runs",
        "lincoln",
        "--id",
        &last,
        "--changes",
        "--format",
        "csv",
    ]);
    assert!(
        csv.contains("user8,reactivated,Status,inactive,active\n"),
        "{csv}"
    );
}

/// A district with ten users imported on its first night (never held).
fn ten_users() -> (
    crate::server::TestServer,
    rosterd::clock::FixedClock,
    std::path::PathBuf,
    std::sync::Arc<rosterd::scheduler::Scheduler>,
) {
    let (srv, clock, key) = night_server(crate::pipeline::NIGHT, |_| {});
    let (scheduler, _mailer) = pipeline(&srv);
    upload(&srv, &key, &roster(0..10, same));
    let reports = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(reports[0].counts.created, 10);
    (srv, clock, key, scheduler)
}

#[test]
fn an_import_past_a_threshold_is_held_emailed_and_applied_once_on_approval() {
    let (srv, _clock, key, scheduler) = ten_users();
    let env = &srv.env;
    let (_, mailer) = pipeline(&srv);
    srv.block_on(mailer.run_once()).unwrap();

    // Exactly half updated: at the threshold, not over it.
    upload(
        &srv,
        &key,
        &roster(0..10, |i| if i < 5 { format!("Half{i}") } else { same(i) }),
    );
    let r = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!((r[0].outcome.as_str(), r[0].counts.updated), ("applied", 5));

    // Six of ten: held, nothing applied.
    let six = |i: usize| if i < 6 { format!("New{i}") } else { same(i) };
    let before = env.export("lincoln");
    upload(&srv, &key, &roster(0..10, six));
    let r = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(r[0].outcome.as_str(), "held");
    let held_run = r[0].run_id.unwrap();
    assert_eq!(env.export("lincoln"), before);
    assert!(
        env.path("data/spool/lincoln/archive/upload-3.original.csv")
            .exists(),
        "the held file is kept for approval"
    );
    // Nothing more happens by itself.
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());

    srv.block_on(mailer.run_once()).unwrap();
    let mail = newest_eml(env, "held");
    assert!(
        mail.contains("Subject: lincoln: users.csv held for review"),
        "{mail}"
    );
    assert!(mail.contains("it would update or reactivate 6 users, against the district's 10 active users (60.0%), more than its limit of 50%"), "{mail}");
    assert!(mail.contains("changes.csv"), "{mail}");
    let changes = newest_attachment(env, "held", "changes.csv");
    assert!(
        changes.contains("user0,updated,Last Name,Half0,New0"),
        "{changes}"
    );
    let status = env.ok(&["status"]);
    assert!(
        status.contains(&format!("HELD          run {held_run} (upload 3")),
        "{status}"
    );
    // Support reviews the same list the administrator got.
    let preview = env.ok(&[
        "runs",
        "lincoln",
        "--id",
        &held_run.to_string(),
        "--changes",
    ]);
    let json: serde_json::Value = serde_json::from_str(&env.ok(&[
        "runs",
        "lincoln",
        "--id",
        &held_run.to_string(),
        "--changes",
        "--format",
        "json",
    ]))
    .unwrap();
    assert!(
        json["changes"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({
                "username": "user0", "change": "updated", "field": "Last Name",
                "before": "Half0", "after": "New0"
            })),
        "{json}"
    );
    assert!(
        preview.contains("user0,updated,Last Name,Half0,New0"),
        "{preview}"
    );
    let listed = env.ok(&["runs", "lincoln", "--id", &held_run.to_string()]);
    assert!(listed.contains("held for review"), "{listed}");

    let out = env.ok(&["import", "approve", "lincoln", &held_run.to_string()]);
    assert!(out.contains("6 updated"), "{out}");
    assert!(
        env.export("lincoln")
            .contains("user5,user5@example.org,First5,New5,")
    );
    assert!(!env.ok(&["status"]).contains("HELD"));
    // Applied exactly once: no import left, a second approval refused.
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());
    let (code, _, err) = env.run(&["import", "approve", "lincoln", &held_run.to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("is not waiting for approval"), "{err}");
    let runs = run_outcomes(env);
    let applied_after: Vec<_> = runs.iter().filter(|r| r.0 > held_run).collect();
    assert_eq!(applied_after.len(), 1, "{runs:?}");
    assert_eq!(applied_after[0].1, "applied");
    assert!(
        runs.iter().any(|r| r.0 == held_run
            && r.2
                .as_deref()
                .is_some_and(|s| s.starts_with("approved by support"))),
        "{runs:?}"
    );
    assert!(
        !env.path("data/spool/lincoln/archive/upload-3.original.csv")
            .exists()
    );
    env.assert_integrity();
}

#[test]
fn a_held_import_is_discarded_or_superseded_by_a_newer_upload() {
    let (srv, _clock, key, scheduler) = ten_users();
    let env = &srv.env;
    // Full sync: two of ten missing is 20% deactivated, over the 10% default.
    env.ok(&["tenant", "set", "lincoln", "--absent", "deactivate"]);
    upload(&srv, &key, &roster(0..8, same));
    let r = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(r[0].outcome.as_str(), "held");
    assert_eq!(r[0].counts.deactivated, 2);
    let first_held = r[0].run_id.unwrap();
    assert!(!env.export("lincoln").contains("inactive"));

    env.ok(&["import", "discard", "lincoln", &first_held.to_string()]);
    let status = env.ok(&["status"]);
    assert!(
        status.contains(": held, 0 created, 0 updated, 0 errors; then discarded by support at"),
        "status says what became of the held import: {status}"
    );
    assert!(!status.contains("HELD "), "{status}");
    assert!(
        !env.path("data/spool/lincoln/archive/upload-2.original.csv")
            .exists()
    );
    assert!(env.path("data/spool/lincoln/archive/upload-2.csv").exists());
    let (code, _, err) = env.run(&["import", "approve", "lincoln", &first_held.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());

    // Held again, then replaced by a newer upload before support looks.
    upload(&srv, &key, &roster(0..8, same));
    let held = srv.block_on(scheduler.run_once()).unwrap()[0]
        .run_id
        .unwrap();
    upload(
        &srv,
        &key,
        &roster(0..10, |i| if i == 0 { "Newer".into() } else { same(i) }),
    );
    let r = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!((r[0].outcome.as_str(), r[0].counts.updated), ("applied", 1));
    let note = r[0]
        .problems
        .iter()
        .find(|p| p.message.contains("replaces the users.csv received"))
        .unwrap_or_else(|| panic!("{:?}", r[0].problems));
    assert!(
        note.message
            .contains(&format!("held for review (run {held})")),
        "{}",
        note.message
    );
    assert!(
        !env.path("data/spool/lincoln/archive/upload-3.original.csv")
            .exists()
    );
    let runs = run_outcomes(env);
    assert!(
        runs.iter()
            .any(|r| r.0 == held && r.2.as_deref() == Some("superseded by upload 4")),
        "{runs:?}"
    );
    let (code, _, err) = env.run(&["import", "approve", "lincoln", &held.to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("not waiting for approval"), "{err}");
    assert!(!env.ok(&["status"]).contains("HELD"));
}

#[test]
fn an_approval_killed_before_its_commit_is_applied_once_afterwards() {
    const N: usize = 60_000;
    let (srv, _clock, key) = night_server(crate::pipeline::NIGHT, |_| {});
    let (scheduler, _mailer) = pipeline(&srv);
    let env = &srv.env;
    upload(&srv, &key, &roster(0..N, same));
    srv.block_on(scheduler.run_once()).unwrap();
    upload(&srv, &key, &roster(0..N, |i| format!("Moved{i}")));
    let r = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(r[0].outcome.as_str(), "held");
    let held = r[0].run_id.unwrap().to_string();
    let runs_before = query_i64(env, "SELECT count(*) FROM import_runs");

    let mut approve = env.command(&["import", "approve", "lincoln", &held]);
    let mut child = approve
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the approved import to start",
        Duration::from_secs(60),
        || {
            query_i64(
                env,
                "SELECT count(*) FROM uploads WHERE id = 2 AND state = 'importing'",
            ) == 1
        },
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        query_i64(env, "SELECT count(*) FROM import_runs"),
        runs_before,
        "killed too late"
    );
    assert_eq!(
        query_i64(
            env,
            "SELECT count(*) FROM users WHERE last_name LIKE 'Moved%'"
        ),
        0
    );

    // The daemon (here its scheduler) finishes it: approved, so not held again.
    let r = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!(
        (r[0].outcome.as_str(), r[0].counts.updated),
        ("applied", N as u64)
    );
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());
    assert_eq!(
        query_i64(env, "SELECT count(*) FROM import_runs"),
        runs_before + 1
    );
    assert_eq!(
        query_i64(
            env,
            "SELECT count(*) FROM users WHERE last_name LIKE 'Moved%'"
        ),
        N as i64
    );
    env.assert_integrity();
}

#[test]
fn a_paused_district_keeps_its_uploads_and_gets_no_missing_file_note() {
    let (srv, clock, key, scheduler) = ten_users();
    let env = &srv.env;
    let on_the_20th = |args: &[&str]| {
        let mut cmd = env.command(args);
        cmd.env("ROSTERD_NOW", "2026-11-20T15:00:00Z");
        decode(cmd.output().unwrap())
    };
    let (code, out, err) = on_the_20th(&[
        "tenant",
        "pause",
        "lincoln",
        "--from",
        "2026-11-19",
        "--until",
        "2026-11-21",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("lincoln is paused from 2026-11-19 until 2026-11-21"),
        "{out}"
    );
    // A pause wholly in the past is refused and leaves the running one.
    let (code, _, err) = on_the_20th(&[
        "tenant",
        "pause",
        "lincoln",
        "--from",
        "2025-06-15",
        "--until",
        "2025-08-20",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the pause would end (2025-08-20) before today (2026-11-20"),
        "{err}"
    );
    assert!(
        env.ok(&["tenant", "show", "lincoln"])
            .contains("pause       from 2026-11-19 until 2026-11-21")
    );
    let notes = || query_i64(env, "SELECT count(*) FROM outbox WHERE kind = 'missing'");

    upload(&srv, &key, &roster(0..10, |i| format!("Paused{i}")));
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());
    assert_eq!(
        query_i64(env, "SELECT count(*) FROM uploads WHERE state = 'pending'"),
        1
    );
    let mut status = env.command(&["status"]);
    status.env("ROSTERD_NOW", "2026-11-20T15:00:00Z");
    let status = String::from_utf8(status.output().unwrap().stdout).unwrap();
    assert!(
        status.contains("PAUSED        from 2026-11-19 until 2026-11-21"),
        "{status}"
    );

    // The night of the 20th brings nothing: no note while paused.
    clock.set(at("2026-11-21T12:00:00Z"));
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());
    assert_eq!(notes(), 0);

    // The pause over, the kept upload is imported in the next window.
    clock.set(at("2026-11-23T00:00:00Z")); // 19:00 on the 22nd
    let r = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!((r.len(), r[0].counts.updated), (1, 10));

    // Additions only: new users are created, existing ones kept back.
    let mut pause = env.command(&[
        "tenant",
        "pause",
        "lincoln",
        "--from",
        "2026-11-22",
        "--until",
        "2026-11-30",
        "--additions-only",
    ]);
    pause.env("ROSTERD_NOW", "2026-11-23T00:00:00Z");
    let (code, _, err) = decode(pause.output().unwrap());
    assert_eq!(code, 0, "{err}");
    upload(&srv, &key, &roster(0..12, |i| format!("Summer{i}")));
    let r = srv.block_on(scheduler.run_once()).unwrap();
    let c = r[0].counts;
    assert_eq!((c.created, c.updated, c.kept_back), (2, 0, 10));
    let text = r[0].render_text(50, "");
    assert!(text.contains("kept back  10"), "{text}");
    assert!(
        text.contains("paused from 2026-11-22 until 2026-11-30 (additions only"),
        "{text}"
    );
    assert!(!env.export("lincoln").contains("Summer0"));
    assert!(env.export("lincoln").contains("user11,"));

    // Full sync during the pause: a user the file omits is kept, and counted
    // and said as a deactivation kept back.
    env.ok(&["tenant", "set", "lincoln", "--absent", "deactivate"]);
    upload(&srv, &key, &roster(1..12, |i| format!("Summer{i}")));
    let r = srv.block_on(scheduler.run_once()).unwrap();
    let c = r[0].counts;
    assert_eq!(
        (c.deactivated, c.kept_back, c.deactivations_kept_back),
        (0, 10, 1)
    );
    let text = r[0].render_text(50, "");
    assert!(
        text.contains("kept back  10 (changes to existing users, not applied during the pause; 1 of them a deactivation of a user the file omits)"),
        "{text}"
    );
    let run = r[0].run_id.unwrap().to_string();
    assert!(
        env.ok(&["runs", "lincoln", "--id", &run])
            .contains("1 of them a deactivation")
    );
    assert!(
        !env.export("lincoln").contains("inactive"),
        "nobody deactivated"
    );
    env.ok(&["tenant", "set", "lincoln", "--absent", "keep"]);

    env.ok(&["tenant", "resume", "lincoln"]);
    assert!(
        env.ok(&["tenant", "show", "lincoln"])
            .contains("pause       none")
    );
    // The same file after the pause is not "unchanged": what was kept back
    // is applied now (here 10 of 12 users: held for approval, as any such
    // night would be).
    upload(&srv, &key, &roster(0..12, |i| format!("Summer{i}")));
    let r = srv.block_on(scheduler.run_once()).unwrap();
    assert_eq!((r[0].outcome.as_str(), r[0].counts.updated), ("held", 10));
}

#[test]
fn a_held_import_run_by_support_exits_4() {
    let (srv, _clock, key, _scheduler) = ten_users();
    upload(&srv, &key, &roster(0..10, |i| format!("New{i}")));
    let mut cmd = srv.env.command(&["import", "run", "lincoln"]);
    cmd.env("ROSTERD_NOW", crate::pipeline::NIGHT);
    let (code, out, err) = decode(cmd.output().unwrap());
    assert_eq!(
        code, 4,
        "held for approval has its own exit code: {out}{err}"
    );
    assert!(out.contains("held"), "{out}");
    assert!(srv.env.ok(&["status"]).contains("HELD          run"));
}

#[test]
fn an_approval_refused_for_a_disabled_district_changes_nothing() {
    let (srv, _clock, key, scheduler) = ten_users();
    let env = &srv.env;
    upload(&srv, &key, &roster(0..10, |i| format!("New{i}")));
    let held = srv.block_on(scheduler.run_once()).unwrap()[0]
        .run_id
        .unwrap()
        .to_string();
    env.ok(&["tenant", "disable", "lincoln"]);
    let (code, _, err) = env.run(&["import", "approve", "lincoln", &held]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is disabled") && err.contains("nothing changed"),
        "{err}"
    );
    // Still held: listed, and neither applied on enabling nor undiscardable.
    assert!(
        env.ok(&["status"])
            .contains(&format!("HELD          run {held}"))
    );
    let before = env.export("lincoln");
    env.ok(&["tenant", "enable", "lincoln"]);
    assert!(srv.block_on(scheduler.run_once()).unwrap().is_empty());
    assert_eq!(env.export("lincoln"), before, "enabling applied nothing");
    env.ok(&["import", "discard", "lincoln", &held]);
}
