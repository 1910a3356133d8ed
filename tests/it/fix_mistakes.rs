//! Support fixes its mistakes: a school renamed or removed, through the
//! real binary. Each command's refusals leave everything as it was.

use crate::helpers::*;

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
