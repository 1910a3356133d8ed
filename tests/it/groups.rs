//! The group assignments import, through the real binary: every rule of SPEC
//! section 4, the shared rejection rules, and `groups export`.

use crate::helpers::*;

/// A district with owners (by access type), a plain staff member and students.
fn district() -> Env {
    let env = Env::new();
    env.tenant("lincoln");
    let users = env.file(
        "users.csv",
        "Username,First Name,Last Name,Access Type,Graduation Year\n\
         t.smith,Tom,Smith,Manager,\n\
         j.doe,Jane,Doe,School Administrator,\n\
         j.doe2,Jane,Doe,Administrator,\n\
         plain.staff,Pat,Plain,,\n\
         s.one,Sam,One,,2030\n\
         s.two,Sue,Two,,2031\n\
         s.three,Sid,Three,,2032\n",
    );
    env.ok(&["import", "users", "lincoln", users.to_str().unwrap()]);
    env
}

fn import(env: &Env, body: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let f = env.file("groups.csv", body);
    let mut args = vec![
        "import",
        "groups",
        "lincoln",
        f.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = env.run(&args);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, report, err)
}

fn problems(report: &serde_json::Value) -> Vec<(u64, String, String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap_or(0),
                p["column"].as_str().unwrap().to_owned(),
                p["severity"].as_str().unwrap().to_owned(),
                p["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_assignment_rule() {
    let env = district();
    let body = "Username,Owner Name,Group Name\n\
        s.one,t.smith,Algebra\n\
        s.one,Tom Smith,\n\
        s.two,T.SMITH,\n\
        s.two,,Chess  Club\n\
        s.three,,\n\
        nobody,,Chess Club\n\
        s.three,Pat Plain,Drama\n\
        s.three,Jane Doe,Drama\n\
        s.two,j.doe,algebra\n\
        s.three,,algebra\n\
        s.three,Nobody Atall,Drama\n";
    let (code, report, _) = import(&env, body, &[]);
    assert_eq!(code, 3, "{report:#}");
    let c = &report["counts"];
    assert_eq!(c["rows"], 11);
    assert_eq!(c["created"], 5); // s.one x2, s.two x2, s.three into algebra
    assert_eq!(c["unchanged"], 1); // the row with neither owner nor group
    assert_eq!(c["skipped"], 5);
    let p = problems(&report);
    let find = |line: u64| {
        p.iter()
            .find(|(l, ..)| *l == line)
            .unwrap_or_else(|| panic!("no problem on line {line}: {p:?}"))
    };
    assert_eq!(find(6).2, "warning");
    assert!(find(6).3.contains("neither an owner nor a group"), "{p:?}");
    assert_eq!(find(7).1, "Username");
    assert!(
        find(7).3.contains("no user \"nobody\" in this district"),
        "{p:?}"
    );
    assert!(
        find(8).3.contains("\"Pat Plain\" cannot own groups"),
        "{p:?}"
    );
    assert!(find(9).3.contains("2 users with Administrator, School Administrator or Manager access are named \"Jane Doe\" (j.doe, j.doe2)"), "{p:?}");
    assert!(
        find(10)
            .3
            .contains("group \"algebra\" belongs to t.smith, not j.doe"),
        "{p:?}"
    );
    assert!(
        find(12)
            .3
            .contains("no user \"Nobody Atall\" in this district"),
        "{p:?}"
    );

    let export = env.ok(&["groups", "export", "lincoln"]);
    assert_eq!(
        export,
        "Group Name,Owner,Username\n\
         Algebra,t.smith,s.one\n\
         Algebra,t.smith,s.three\n\
         Chess Club,,s.two\n\
         Tom Smith's group,t.smith,s.one\n\
         Tom Smith's group,t.smith,s.two\n"
    );

    // The same file again: byte-identical, nothing to do.
    let (code, report, _) = import(&env, body, &[]);
    assert_eq!((code, report["outcome"].as_str()), (0, Some("unchanged")));
    // Forced: every membership already exists.
    let (_, report, _) = import(&env, body, &["--force"]);
    assert_eq!(report["counts"]["created"], 0);
    assert_eq!(report["counts"]["unchanged"], 6);
    assert_eq!(env.ok(&["groups", "export", "lincoln"]), export);
}

#[test]
fn dry_run_and_rejections_apply_nothing() {
    let env = district();
    let (code, report, _) = import(
        &env,
        "User,Owner,Group\ns.one,t.smith,Algebra\n",
        &["--dry-run"],
    );
    assert_eq!(code, 0);
    assert_eq!(report["counts"]["created"], 1);
    assert_eq!(
        env.ok(&["groups", "export", "lincoln"]),
        "Group Name,Owner,Username\n"
    );

    // More than half of the rows in error.
    let (code, report, err) = import(
        &env,
        "Username,Group Name\ns.one,Algebra\nnobody1,Algebra\nnobody2,Algebra\n",
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(report["outcome"], "rejected");
    assert!(
        err.contains("more than half of the data rows (2 of 3)"),
        "{err}"
    );
    assert_eq!(
        env.ok(&["groups", "export", "lincoln"]),
        "Group Name,Owner,Username\n"
    );

    // No Username column; a repeated column.
    let (code, report, _) = import(&env, "Owner Name,Group Name\nt.smith,Algebra\n", &[]);
    assert_eq!((code, report["outcome"].as_str()), (1, Some("rejected")));
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("no Username column")
    );
    let (code, report, _) = import(&env, "Username,Group,Group Name\ns.one,A,B\n", &[]);
    assert_eq!(code, 1);
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("both hold Group Name"),
        "{report:#}"
    );

    // UTF-8 BOM, CRLF, a quoted name with a comma: decoded like users.csv.
    let (code, report, _) = import(
        &env,
        "\u{feff}Username,Group Name\r\ns.one,\"Smith, period 1\"\r\n",
        &[],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        env.ok(&["groups", "export", "lincoln"]),
        "Group Name,Owner,Username\n\"Smith, period 1\",,s.one\n"
    );
    let runs = env.ok(&["runs", "lincoln"]);
    assert!(runs.contains("groups"), "{runs}");
}
