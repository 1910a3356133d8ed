//! Support fixes its mistakes: a school renamed or removed, a district
//! renamed (a new subdomain, so a new SFTP username) or deleted, through the
//! real binary, beside a running daemon where it matters. Each command's
//! refusals leave everything as it was.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::server::{TestServer, tenant_with_key};

/// Users of Lincoln High (by name) and Lincoln Elementary (by NCES ID).
const USERS: &str = "Username,First Name,School,Graduation Year\n\
ann.lee,Ann,Lincoln High,2030\n\
bob.ray,Bob,062271003230,2031\n";

fn import(env: &Env, sub: &str, body: &str) -> String {
    let file = env.file("import.csv", body);
    env.ok(&["import", "users", sub, file.to_str().unwrap()])
}

/// Run `rosterd ARGS` expecting exit 1; its standard error.
fn refused(env: &Env, args: &[&str]) -> String {
    let (code, out, err) = env.run(args);
    assert_eq!(code, 1, "rosterd {args:?} was not refused:\n{out}{err}");
    err
}

/// Rows of every table, for "nothing changed" checks.
fn snapshot(env: &Env) -> Vec<(String, i64)> {
    let store = env.store();
    tables(&store.conn)
        .into_iter()
        .map(|t| {
            let n = store
                .conn
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .unwrap();
            (t, n)
        })
        .collect()
}

fn tables(conn: &rusqlite::Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn tenant_id(env: &Env, sub: &str) -> i64 {
    env.store().require_tenant(sub).unwrap().id
}

#[test]
fn a_renamed_school_keeps_its_users_and_a_taken_name_is_refused() {
    let env = Env::new();
    env.tenant("lincoln");
    import(&env, "lincoln", USERS);

    // By name, in any case and spacing, as a School cell names it.
    let out = env.ok(&[
        "school",
        "rename",
        "lincoln",
        "lincoln  HIGH",
        "Lincoln Senior High",
    ]);
    assert_eq!(
        out,
        "renamed school \"Lincoln High\" of lincoln to \"Lincoln Senior High\"; its 1 user stay in it\n"
    );
    // By NCES ID.
    let out = env.ok(&[
        "school",
        "rename",
        "lincoln",
        "062271003230",
        "Lincoln Elementary School",
    ]);
    assert!(
        out.starts_with("renamed school \"Lincoln Elementary\""),
        "{out}"
    );
    assert_eq!(
        env.ok(&["school", "list", "lincoln"]),
        "Name,NCES ID,State ID\n\
         Lincoln Elementary School,062271003230,CA-123\n\
         Lincoln Senior High,,\n"
    );
    let export = env.export("lincoln");
    assert!(
        export.contains("ann.lee,,Ann,,Lincoln Senior High,2030"),
        "{export}"
    );
    assert!(
        export.contains("bob.ray,,Bob,,Lincoln Elementary School,2031"),
        "{export}"
    );
    // Another case of its own name is a fix, not a clash.
    env.ok(&[
        "school",
        "rename",
        "lincoln",
        "Lincoln Senior High",
        "Lincoln senior high",
    ]);
    env.ok(&[
        "school",
        "rename",
        "lincoln",
        "lincoln senior high",
        "Lincoln Senior High",
    ]);
    // The next users.csv names the school by its new name.
    let report = import(
        &env,
        "lincoln",
        "Username,School\nann.lee,Lincoln Senior High\n",
    );
    assert!(report.contains("errors     0"), "{report}");

    let before = snapshot(&env);
    let err = refused(
        &env,
        &[
            "school",
            "rename",
            "lincoln",
            "Lincoln Senior High",
            "lincoln elementary  school",
        ],
    );
    assert!(
        err.contains("the district already has a school named \"Lincoln Elementary School\""),
        "{err}"
    );
    let err = refused(&env, &["school", "rename", "lincoln", "Lincoln Annex", "X"]);
    assert!(
        err.contains("lincoln has no school named \"Lincoln Annex\" (by name, NCES ID or state ID); `rosterd school list lincoln` shows them"),
        "{err}"
    );
    let err = refused(&env, &["school", "rename", "lincoln", "CA-123", "  "]);
    assert!(err.contains("a school needs a name"), "{err}");
    let err = refused(&env, &["school", "rename", "nobody", "CA-123", "X"]);
    assert!(err.contains("no tenant \"nobody\""), "{err}");
    assert_eq!(snapshot(&env), before);
    assert!(
        env.ok(&["school", "list", "lincoln"])
            .contains("Lincoln Senior High")
    );
}

#[test]
fn a_school_is_removed_only_once_no_user_is_in_it() {
    let env = Env::new();
    env.tenant("lincoln");
    env.ok(&["tenant", "set", "lincoln", "--absent", "deactivate"]);
    import(&env, "lincoln", USERS);
    // ann.lee moves to Lincoln Elementary; with full sync bob.ray, not
    // listed, is deactivated and stays in it too.
    import(
        &env,
        "lincoln",
        "Username,School\nann.lee,Lincoln Elementary\n",
    );

    let before = snapshot(&env);
    let err = refused(&env, &["school", "remove", "lincoln", "CA-123"]);
    assert_eq!(
        err,
        "error: Lincoln Elementary has 2 users (1 of them inactive); give them another school first (a users.csv whose School column names it), then remove it\n"
    );
    assert_eq!(snapshot(&env), before);

    // Lincoln High has nobody left.
    let out = env.ok(&["school", "remove", "lincoln", "lincoln high"]);
    assert_eq!(out, "removed school \"Lincoln High\" from lincoln\n");
    let err = refused(&env, &["school", "remove", "lincoln", "Lincoln High"]);
    assert!(
        err.contains("lincoln has no school named \"Lincoln High\""),
        "{err}"
    );
    assert_eq!(
        env.ok(&["school", "list", "lincoln"]),
        "Name,NCES ID,State ID\nLincoln Elementary,062271003230,CA-123\n"
    );
    let export = env.export("lincoln");
    assert!(
        export.contains("ann.lee,,Ann,,Lincoln Elementary,2030"),
        "{export}"
    );
}

/// Retry `args` until it succeeds (a session's end reaches the server a
/// moment after its client exits); its standard output.
fn ok_soon(env: &Env, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, err) = env.run(args);
        if code == 0 {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "rosterd {args:?} kept failing: {err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Hold one of the spool's lock files of `sub` in this process, as the
/// daemon does: `shared` as a logged-in session, else exclusively.
fn hold_lock(env: &Env, sub: &str, name: &str, shared: bool) -> std::fs::File {
    let dir = env.path(&format!("data/spool/{sub}"));
    std::fs::create_dir_all(&dir).unwrap();
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(name))
        .unwrap();
    if shared {
        f.lock_shared().unwrap();
    } else {
        f.lock().unwrap();
    }
    f
}

#[test]
fn a_renamed_district_keeps_everything_and_logs_in_under_its_new_name() {
    let env = Env::new();
    let (key, fingerprint) = tenant_with_key(&env, "lincoln-usd");
    env.ok(&["school", "add", "lincoln-usd", "--name", "Lincoln High"]);
    env.ok(&[
        "tenant",
        "map",
        "lincoln-usd",
        "Student Email",
        "Email Address",
    ]);
    env.ok(&["tenant", "set", "lincoln-usd", "--hold-updates", "off"]);
    import(
        &env,
        "lincoln-usd",
        "Username,First Name,School\nann.lee,Ann,Lincoln High\n",
    );
    let srv = TestServer::start(env, |_| {});
    // An upload waiting for the window.
    srv.env.file(
        "users.csv",
        "Username,First Name,Student Email\nann.lee,Anne,ann@example.org\ncat.diaz,Cat,\n",
    );
    assert_eq!(srv.sftp("lincoln-usd", &key, "put users.csv\n").0, 0);
    let export = srv.env.export("lincoln-usd");
    let runs = srv.env.ok(&["runs", "lincoln-usd"]);
    let show = srv.env.ok(&["tenant", "show", "lincoln-usd"]);

    let out = srv.env.ok(&["tenant", "rename", "lincoln-usd", "lincoln"]);
    assert_eq!(
        out,
        "renamed district lincoln-usd to lincoln; its SFTP username is now lincoln\n\
         next: tell the district to change the username of its SFTP job to lincoln\n"
    );
    assert!(
        srv.env
            .ok(&["key", "list", "lincoln"])
            .contains(&fingerprint)
    );
    assert_eq!(srv.env.export("lincoln"), export);
    assert_eq!(
        srv.env.ok(&["runs", "lincoln"]),
        runs.replace("lincoln-usd", "lincoln")
    );
    assert_eq!(
        srv.env.ok(&["tenant", "show", "lincoln"]),
        show.replacen("tenant      lincoln-usd", "tenant      lincoln", 1)
    );
    for args in [
        &["users", "export", "lincoln-usd"][..],
        &["key", "list", "lincoln-usd"],
        &["tenant", "show", "lincoln-usd"],
    ] {
        let err = refused(&srv.env, args);
        assert!(err.contains("no tenant \"lincoln-usd\""), "{err}");
    }

    // The spool folder moved, with the waiting upload; its record follows.
    assert!(!srv.env.path("data/spool/lincoln-usd").exists());
    assert!(srv.pending("lincoln").exists());
    let recorded: String = srv
        .env
        .store()
        .conn
        .query_row("SELECT path FROM uploads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(Path::new(&recorded), srv.pending("lincoln"));
    let (code, out, err) = srv.sftp("lincoln", &key, "ls\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("users.csv"), "{out}");
    let (code, _, err) = srv.sftp("lincoln-usd", &key, "ls\n");
    assert_ne!(code, 0, "the old username still logs in");
    assert!(err.contains("Permission denied"), "{err}");

    // And it is imported under the new name, archived in the new folder.
    let (code, out, err) = srv.env.run(&["import", "run", "lincoln"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("lincoln: users.csv imported — 1 created, 1 updated"),
        "{out}"
    );
    let export = srv.env.export("lincoln");
    assert!(
        export.contains("ann.lee,ann@example.org,Anne,,Lincoln High"),
        "{export}"
    );
    assert!(export.contains("cat.diaz,,Cat,"), "{export}");
    let archive: String = srv
        .env
        .store()
        .conn
        .query_row("SELECT archive FROM uploads", [], |r| r.get(0))
        .unwrap();
    assert!(
        archive.ends_with("data/spool/lincoln/archive/upload-1.csv"),
        "{archive}"
    );
    assert!(srv.env.dir.path().join(&archive).exists());
}

#[test]
fn a_district_is_not_renamed_or_deleted_under_a_session_or_an_import() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    env.ok(&[
        "tenant",
        "add",
        "ann",
        "--admin-name",
        "A",
        "--admin-email",
        "a@example.org",
    ]);
    let srv = TestServer::start(env, |_| {});
    let before = snapshot(&srv.env);

    let (mut holder, stdin) = srv.open_session("lincoln", &key);
    let busy = "lincoln has an SFTP session open (an upload may be in progress); try again once it has ended (`rosterd tenant disable lincoln` keeps new ones out meanwhile)";
    let err = refused(&srv.env, &["tenant", "rename", "lincoln", "lincoln-usd"]);
    assert!(err.contains(busy), "{err}");
    let err = refused(&srv.env, &["tenant", "delete", "lincoln", "--yes"]);
    assert!(err.contains(busy), "{err}");
    assert_eq!(snapshot(&srv.env), before);
    assert!(srv.env.path("data/spool/lincoln").exists());
    drop(stdin);
    holder.wait().unwrap();
    ok_soon(&srv.env, &["tenant", "rename", "lincoln", "lincoln-usd"]);
    assert_eq!(srv.sftp("lincoln-usd", &key, "ls\n").0, 0);

    // An import of the district running (the daemon's, or support's `import run`).
    let importing = hold_lock(&srv.env, "ann", ".import.lock", false);
    let err = refused(&srv.env, &["tenant", "rename", "ann", "anne"]);
    assert!(
        err.contains("ann's upload is being imported right now; try again once the import has finished (`rosterd runs ann` shows it)"),
        "{err}"
    );
    let err = refused(&srv.env, &["tenant", "delete", "ann", "--yes"]);
    assert!(
        err.contains("ann's upload is being imported right now"),
        "{err}"
    );
    drop(importing);
    srv.env.ok(&["tenant", "rename", "ann", "anne"]);

    // The other way round: while support holds the district, no login starts.
    let support = hold_lock(&srv.env, "lincoln-usd", ".sessions.lock", false);
    let (code, _, err) = srv.sftp("lincoln-usd", &key, "ls\n");
    assert_ne!(code, 0, "logged in while the district was being changed");
    assert!(err.contains("Permission denied"), "{err}");
    drop(support);
    assert_eq!(srv.sftp("lincoln-usd", &key, "ls\n").0, 0);
}

#[test]
fn a_rename_to_a_bad_or_taken_subdomain_is_refused() {
    let env = Env::new();
    env.tenant("lincoln");
    env.tenant("other");
    import(&env, "lincoln", USERS);
    // Left by a district deleted by hand: files in it.
    let stray = env.path("data/spool/roosevelt/archive");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("upload-9.csv"), "Username\n").unwrap();
    let before = snapshot(&env);
    let export = env.export("lincoln");

    for (new, why) in [
        (
            "Lincoln_USD",
            "\"Lincoln_USD\" is not a valid subdomain: use only lowercase letters a-z, digits and hyphens",
        ),
        ("lincoln-", "it may not start or end with a hyphen"),
        (
            "other",
            "tenant other already exists; choose another subdomain",
        ),
        ("lincoln", "the district is named lincoln already"),
        (
            "roosevelt",
            "the spool already has a folder data/spool/roosevelt with files in it (left by an earlier district named roosevelt?); move it away first",
        ),
    ] {
        let err = refused(&env, &["tenant", "rename", "lincoln", new]);
        assert!(err.contains(why), "{new}: {err}");
    }
    let err = refused(&env, &["tenant", "rename", "nobody", "somebody"]);
    assert!(err.contains("no tenant \"nobody\""), "{err}");
    assert_eq!(snapshot(&env), before);
    assert_eq!(env.export("lincoln"), export);
    assert!(stray.join("upload-9.csv").exists());

    // A folder with nothing of a district's in it (lock files, empty
    // folders) is taken over.
    std::fs::remove_file(stray.join("upload-9.csv")).unwrap();
    std::fs::write(env.path("data/spool/roosevelt/.import.lock"), "").unwrap();
    env.ok(&["tenant", "rename", "lincoln", "roosevelt"]);
    assert_eq!(env.export("roosevelt"), export);
    assert!(!env.path("data/spool/lincoln").exists());
}

/// Rows of district `id` in each table that names districts, and in the
/// tables that hang off runs and groups.
fn rows_of(env: &Env, id: i64) -> Vec<(String, i64)> {
    let store = env.store();
    let conn = &store.conn;
    let mut counts = Vec::new();
    for table in tables(conn) {
        let has_tenant: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = 'tenant_id')",
                [&table],
                |r| r.get(0),
            )
            .unwrap();
        let sql = match table.as_str() {
            "tenants" => "SELECT count(*) FROM tenants WHERE id = ?1".to_owned(),
            "import_problems" | "user_changes" => format!(
                "SELECT count(*) FROM {table} WHERE run_id IN (SELECT id FROM import_runs WHERE tenant_id = ?1)"
            ),
            "group_members" => "SELECT count(*) FROM group_members WHERE group_id IN (SELECT id FROM groups WHERE tenant_id = ?1)".to_owned(),
            _ if has_tenant => format!("SELECT count(*) FROM {table} WHERE tenant_id = ?1"),
            _ => continue,
        };
        counts.push((table, conn.query_row(&sql, [id], |r| r.get(0)).unwrap()));
    }
    counts
}

/// Rows left pointing at a row that is gone (foreign keys, and the
/// references SQLite does not check).
fn dangling(env: &Env) -> i64 {
    let store = env.store();
    let fk: i64 = store
        .conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    let journal: i64 = store
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM users WHERE created_run IS NOT NULL
                     AND created_run NOT IN (SELECT id FROM import_runs))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    fk + journal
}

#[test]
fn a_purged_district_leaves_nothing_and_other_districts_keep_everything() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let (other_key, other_fp) = tenant_with_key(&env, "other");
    for sub in ["lincoln", "other"] {
        env.ok(&["school", "add", sub, "--name", "Lincoln High"]);
        env.ok(&["tenant", "map", sub, "Homeroom", "ignore"]);
        // One row error, so the run has problems.
        let file = env.file(
            "users.csv",
            format!(
                "Username,First Name,School,Access Type,Graduation Year\n\
                 {sub}.ann,Ann,Lincoln High,Administrator,\n\
                 {sub}.bob,Bob,Lincoln High,,2030\n\
                 {sub}.cat,Cat,,,not-a-year\n"
            ),
        );
        assert_eq!(
            env.run(&["import", "users", sub, file.to_str().unwrap()]).0,
            3
        );
        let groups = env.file(
            "groups.csv",
            format!("Username,Owner Name,Group Name\n{sub}.bob,{sub}.ann,\n{sub}.ann,,Staff\n"),
        );
        env.ok(&["import", "groups", sub, groups.to_str().unwrap()]);
    }
    let srv = TestServer::start(env, |_| {});
    // Each imports an upload (archived, emailed) and has another waiting.
    for (sub, key) in [("lincoln", &key), ("other", &other_key)] {
        srv.env.file(
            "users.csv",
            format!("Username,First Name\n{sub}.bob,Robert\n"),
        );
        assert_eq!(srv.sftp(sub, key, "put users.csv\n").0, 0);
        let (code, out, err) = srv.env.run(&["import", "run", sub]);
        assert_eq!(code, 0, "{out}{err}");
        srv.env.file(
            "users.csv",
            format!("Username,First Name\n{sub}.bob,Bobby\n"),
        );
        assert_eq!(srv.sftp(sub, key, "put users.csv\n").0, 0);
    }
    // A refused login (lincoln with other's key), and a throttle of each.
    assert_ne!(srv.sftp("lincoln", &other_key, "ls\n").0, 0);
    let (lincoln, other) = (tenant_id(&srv.env, "lincoln"), tenant_id(&srv.env, "other"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows_of(&srv.env, lincoln)
        .iter()
        .any(|(t, n)| t == "connection_failures" && *n == 0)
    {
        assert!(
            Instant::now() < deadline,
            "the refused login was never recorded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for id in [lincoln, other] {
        srv.env
            .store()
            .conn
            .execute(
                "INSERT INTO login_throttles (tenant_id, address, failures, window_seconds, tried, since, until)
                 VALUES (?1, '192.0.2.1', 10, 300, 'SHA256:x', '2026-11-20T04:00:00Z', '2026-11-20T04:15:00Z')",
                [id],
            )
            .unwrap();
        srv.env
            .store()
            .conn
            .execute(
                "INSERT INTO refused_uploads (tenant_id, at, address, name, action)
                 VALUES (?1, '2026-11-20T04:00:00Z', '192.0.2.1', '/users_20261119.csv', 'upload')",
                [id],
            )
            .unwrap();
    }
    let lincoln_rows = rows_of(&srv.env, lincoln);
    let empty = lincoln_rows
        .iter()
        .filter(|(_, n)| *n == 0)
        .collect::<Vec<_>>();
    assert!(empty.is_empty(), "the test leaves these empty: {empty:?}");
    let other_rows = rows_of(&srv.env, other);
    let other_export = srv.env.export("other");
    let other_groups = srv.env.ok(&["groups", "export", "other"]);
    let other_runs = srv.env.ok(&["runs", "other"]);
    let other_spool = files_under(&srv.env.path("data/spool/other"));

    let out = srv
        .env
        .ok(&["tenant", "delete", "lincoln", "--purge", "--yes"]);
    assert_eq!(
        out,
        "deleted district lincoln: 2 users, 2 groups, 1 school, 1 key, 3 import runs, 2 uploads, 1 email and its spool folder\n"
    );
    assert!(
        rows_of(&srv.env, lincoln).iter().all(|(_, n)| *n == 0),
        "{:?}",
        rows_of(&srv.env, lincoln)
    );
    assert_eq!(dangling(&srv.env), 0);
    srv.env.assert_integrity();
    assert!(!srv.env.path("data/spool/lincoln").exists());
    for args in [
        &["tenant", "show", "lincoln"][..],
        &["users", "export", "lincoln"],
    ] {
        assert!(refused(&srv.env, args).contains("no tenant \"lincoln\""));
    }
    assert_ne!(srv.sftp("lincoln", &key, "ls\n").0, 0);

    // Nothing of the other district went.
    assert_eq!(rows_of(&srv.env, other), other_rows);
    assert_eq!(srv.env.export("other"), other_export);
    assert_eq!(srv.env.ok(&["groups", "export", "other"]), other_groups);
    assert_eq!(srv.env.ok(&["runs", "other"]), other_runs);
    assert!(srv.env.ok(&["key", "list", "other"]).contains(&other_fp));
    assert_eq!(files_under(&srv.env.path("data/spool/other")), other_spool);
    let (code, out, _) = srv.sftp("other", &other_key, "ls\n");
    assert_eq!(code, 0);
    assert!(out.contains("users.csv"), "{out}");

    // The subdomain is free again, for a district that starts afresh.
    srv.env.ok(&[
        "tenant",
        "add",
        "lincoln",
        "--admin-name",
        "A",
        "--admin-email",
        "a@example.org",
    ]);
    assert_eq!(
        srv.env.export("lincoln").lines().count(),
        1,
        "a new district has no users"
    );
}

/// Run `rosterd ARGS` with a terminal as its standard input, `typed` on it;
/// (exit code, everything it wrote).
fn in_terminal(env: &Env, args: &[&str], typed: &str) -> (i32, String) {
    const PTY: &str = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
os.write(fd, os.environ["TYPED"].encode())
out = b""
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = Command::new("timeout")
        .args(["30", "python3", "-c", PTY, BIN, "--config"])
        .arg(&env.config)
        .args(args)
        .current_dir(env.dir.path())
        .env_remove("ROSTERD_CONFIG")
        .env("ROSTERD_LOG", "warn")
        .env("TYPED", typed)
        .output()
        .expect("python3 must be installed");
    let (code, out, err) = decode(out);
    (code, out + &err)
}

#[test]
fn deleting_a_district_is_confirmed_and_users_need_purge() {
    let env = Env::new();
    env.tenant("lincoln");
    env.tenant("empty");
    import(&env, "lincoln", USERS);
    let before = snapshot(&env);

    let has_users = "error: lincoln has 2 users; `rosterd tenant delete lincoln --purge` deletes them with the district\n";
    assert_eq!(refused(&env, &["tenant", "delete", "lincoln"]), has_users);
    assert_eq!(
        refused(&env, &["tenant", "delete", "lincoln", "--yes"]),
        has_users
    );
    let err = refused(&env, &["tenant", "delete", "lincoln", "--purge"]);
    assert_eq!(
        err,
        "error: not deleted: deleting lincoln must be confirmed by typing its subdomain, and standard input is not a terminal; add --yes to delete it without asking\n"
    );
    for (typed, why) in [
        ("lincon\n", "not deleted: \"lincon\" is not lincoln"),
        ("\n", "not deleted: nothing was typed"),
    ] {
        let (code, out) = in_terminal(&env, &["tenant", "delete", "lincoln", "--purge"], typed);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(
                "This deletes district lincoln with its 2 users and everything of it, for good."
            ),
            "{out}"
        );
        assert!(out.contains(why), "{out}");
    }
    let err = refused(&env, &["tenant", "delete", "nobody", "--yes"]);
    assert!(err.contains("no tenant \"nobody\""), "{err}");
    assert_eq!(snapshot(&env), before);

    let (code, out) = in_terminal(
        &env,
        &["tenant", "delete", "lincoln", "--purge"],
        "lincoln\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("deleted district lincoln: 2 users, 0 groups, 2 schools, 0 keys, 1 import run, 0 uploads, 0 emails and its spool folder"),
        "{out}"
    );
    // Without users, no --purge is needed.
    let out = env.ok(&["tenant", "delete", "empty", "--yes"]);
    assert!(out.starts_with("deleted district empty: 0 users,"), "{out}");
    assert_eq!(
        env.ok(&["tenant", "list"]),
        "no tenants yet; add one with `rosterd tenant add`\n"
    );
    assert_eq!(dangling(&env), 0);
}

#[test]
fn a_removed_school_is_never_put_back_by_an_undo_nor_its_id_reused() {
    let env = Env::new();
    env.tenant("lincoln"); // Lincoln Elementary, Lincoln High
    env.ok(&["school", "add", "lincoln", "--name", "Beta Old"]);
    let first = env.file("a.csv", "Username,First Name,School\ntim01,Tim,Beta Old\n");
    env.ok(&["import", "users", "lincoln", first.to_str().unwrap()]);
    let moved = env.file(
        "b.csv",
        "Username,First Name,School\ntim01,Tim,Lincoln High\n",
    );
    env.ok(&["import", "users", "lincoln", moved.to_str().unwrap()]);
    let old_id: i64 = env
        .store()
        .conn
        .query_row("SELECT id FROM schools WHERE name = 'Beta Old'", [], |r| {
            r.get(0)
        })
        .unwrap();
    env.ok(&["school", "remove", "lincoln", "Beta Old"]);

    // The undo of the move would put tim01 back in the removed school.
    let (code, _, err) = env.run(&["runs", "undo", "lincoln", "2", "--apply"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("a school that was removed since; nothing was changed"),
        "{err}"
    );
    assert!(env.export("lincoln").contains("tim01,,Tim,,Lincoln High,"));

    // A school added afterwards gets a new id, never the removed one's.
    env.ok(&["school", "add", "lincoln", "--name", "Brand New Academy"]);
    let new_id: i64 = env
        .store()
        .conn
        .query_row(
            "SELECT id FROM schools WHERE name = 'Brand New Academy'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(new_id > old_id, "{new_id} <= {old_id}");
    env.assert_integrity();
}
