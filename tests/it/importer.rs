//! The users.csv importer end to end on fixture files: encodings, header
//! matching, every whole-file rejection, upsert rules, passwords.

use chrono::{DateTime, Utc};
use rosterd::import::{Outcome, Severity};

use crate::helpers::*;

const HEADER: &str =
    "Username,Password,Email Address,First Name,Last Name,School,Graduation Year,Access Type";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn errors_of(report: &rosterd::import::Report) -> Vec<(Option<u64>, String, String)> {
    report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| (p.line, p.column.clone(), p.message.clone()))
        .collect()
}

#[test]
fn utf8_bom_and_crlf() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "users.csv",
        b"\xEF\xBB\xBFUsername,First Name,Last Name\r\njdoe,John,Doe\r\n\r\nasmith,Ann,Smith\r\n",
    );
    let r = env.import("lincoln", &f);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.encoding.as_deref(), Some("UTF-8 with BOM"));
    assert_eq!((r.counts.rows, r.counts.created), (2, 2));
    let export = env.export("lincoln");
    assert!(
        export.contains("\nasmith,,Ann,Smith,,,,staff,active\n"),
        "{export}"
    );
    assert!(
        export.contains("\njdoe,,John,Doe,,,,staff,active\n"),
        "{export}"
    );
}

#[test]
fn windows_1252_fallback() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "users.csv",
        b"Username,First Name,Last Name\njgarcia,Jos\xe9,Garc\xeda\n",
    );
    let r = env.import("lincoln", &f);
    assert_eq!(r.encoding.as_deref(), Some("Windows-1252"));
    assert!(env.export("lincoln").contains("jgarcia,,José,García,"));
}

fn utf16(text: &str, little: bool) -> Vec<u8> {
    let mut out = if little {
        vec![0xFF, 0xFE]
    } else {
        vec![0xFE, 0xFF]
    };
    for unit in text.encode_utf16() {
        out.extend_from_slice(&if little {
            unit.to_le_bytes()
        } else {
            unit.to_be_bytes()
        });
    }
    out
}

#[test]
fn utf16_with_bom_both_byte_orders() {
    let env = Env::new();
    env.tenant("lincoln");
    let le = env.file(
        "le.csv",
        utf16("Username,First Name\r\nzoe.le,Zoë\r\n", true),
    );
    let be = env.file("be.csv", utf16("Username,First Name\nzoe.be,Zoë\n", false));
    let r = env.import("lincoln", &le);
    assert_eq!(
        (r.encoding.as_deref(), r.counts.created),
        (Some("UTF-16LE"), 1),
        "{r:?}"
    );
    let r = env.import("lincoln", &be);
    assert_eq!(
        (r.encoding.as_deref(), r.counts.created),
        (Some("UTF-16BE"), 1),
        "{r:?}"
    );
    let export = env.export("lincoln");
    assert!(
        export.contains("zoe.le,,Zoë,") && export.contains("zoe.be,,Zoë,"),
        "{export}"
    );
}

#[test]
fn quoted_commas_and_newlines_keep_line_numbers() {
    let env = Env::new();
    env.tenant("lincoln");
    let text = "Username,First Name,Last Name,Notes,Graduation Year\n\
                jdoe,\"John, Jr.\",Doe,\"two\nline\nnote\",3\n\
                \n\
                abc,Ann,Smith,,3\n\
                bsmith,Bob,\"Smith, \"\"Bobby\"\"\",,zz\n\
                ccarter,Cy,Carter,,4\n";
    let f = env.file("users.csv", text);
    let r = env.import("lincoln", &f);
    // Records start on lines 2, 6, 7 and 8: the quoted note spans lines 2-4, line 5 is blank.
    assert_eq!(r.counts.rows, 4);
    let errors = errors_of(&r);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].0, Some(6));
    assert_eq!(errors[0].1, "Username");
    assert!(errors[0].2.contains("at least 4"));
    assert_eq!(errors[1].0, Some(7));
    assert_eq!(errors[1].1, "Graduation Year");
    let export = env.export("lincoln");
    assert!(
        export.contains("jdoe,,\"John, Jr.\",Doe,,2036,,student"),
        "{export}"
    );
}

#[test]
fn aliases_unknown_columns_and_oneroster_roles() {
    let env = Env::new();
    env.tenant("lincoln");
    let text = "user_name,E-Mail,given name,SURNAME,school name,grade,role,Homeroom,Locker\n\
                jdoe,jdoe@example.org,John,Doe,lincoln  elementary,5,student,A1,12\n\
                pboss,pboss@example.org,Pat,Boss,Lincoln High,,administrator,,\n";
    let f = env.file("users.csv", text);
    let r = env.import_at("lincoln", &f, at("2026-11-21T12:00:00Z"), false);
    assert_eq!(r.outcome, Outcome::Applied, "{:?}", r.problems);
    let warnings: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .collect();
    // one warning for the unknown columns, naming both; two for missing passwords
    let unknown: Vec<_> = warnings
        .iter()
        .filter(|p| p.message.contains("not recognised"))
        .collect();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].column, "Homeroom, Locker");
    let export = env.export("lincoln");
    assert!(
        export.contains("jdoe,jdoe@example.org,John,Doe,Lincoln Elementary,2034,,student"),
        "{export}"
    );
    assert!(
        export.contains("pboss,pboss@example.org,Pat,Boss,Lincoln High,,Administrator,staff"),
        "{export}"
    );
}

#[test]
fn oneroster_users_header() {
    let env = Env::new();
    env.tenant("lincoln");
    let text = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\n\
                u1,active,2026-09-01,true,org1,student,stu0001,,Sam,Lee,,,sam@example.org,,,,09,Passw0rd\n\
                u2,active,2026-09-01,true,org1,teacher,tch0001,,Tia,Ng,,,tia@example.org,,,,,Passw0rd\n";
    let f = env.file("users.csv", text);
    let r = env.import_at("lincoln", &f, at("2026-11-21T12:00:00Z"), false);
    assert_eq!(r.outcome, Outcome::Applied, "{:?}", r.problems);
    assert_eq!(r.counts.created, 2);
    let export = env.export("lincoln");
    assert!(
        export.contains("stu0001,sam@example.org,Sam,Lee,,2030,,student"),
        "{export}"
    );
    assert!(
        export.contains("tch0001,tia@example.org,Tia,Ng,,,,staff"),
        "{export}"
    );
}

/// Each whole-file rejection: the reason says why, nothing is applied, and the
/// run is recorded.
#[test]
fn whole_file_rejections() {
    let env = Env::new();
    env.tenant("lincoln");
    let seed = env.file("seed.csv", "Username,First Name\nkeeper,Kim\n");
    env.import("lincoln", &seed);
    let before = env.export("lincoln");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "empty"),
        ("blank-only", b"\n\r\n  \n".to_vec(), "no header"),
        (
            "bad-bom-utf8",
            b"\xEF\xBB\xBFUsername\nab\xFFcd\n".to_vec(),
            "not valid UTF-8",
        ),
        (
            "bad-utf16",
            b"\xFF\xFEU\x00\x00\xD8".to_vec(),
            "not valid UTF-16LE",
        ),
        ("binary", b"Username\n\x00\x00\x01".to_vec(), "NUL byte"),
        ("xlsx", b"PK\x03\x04\x14\x00".to_vec(), "Excel"),
        (
            "no-username",
            b"Login Name Here,First Name\njdoe,John\n".to_vec(),
            "no Username column",
        ),
        (
            "data-as-header",
            b"jdoe,secret1,John\n".to_vec(),
            "no Username column",
        ),
        (
            "repeated",
            b"Username,Email,Email Address\njdoe,a@b.co,c@d.co\n".to_vec(),
            "both hold Email Address",
        ),
        (
            "repeated-same",
            b"Username,username\njdoe,jdoe\n".to_vec(),
            "both hold Username",
        ),
        (
            "mostly-bad",
            b"Username,Graduation Year\ngood1,3\nbad1,1850\nbad2,zz\nbad3,99\n".to_vec(),
            "more than half of the data rows (3 of 4)",
        ),
    ];
    for (name, bytes, why) in cases {
        let f = env.file(&format!("{name}.csv"), &bytes);
        let r = env.import("lincoln", &f);
        assert_eq!(r.outcome, Outcome::Rejected, "{name}: {r:?}");
        let reason = r.reason.clone().unwrap_or_default();
        assert!(
            reason.contains(why),
            "{name}: reason {reason:?} lacks {why:?}"
        );
        assert_eq!((r.counts.created, r.counts.updated), (0, 0), "{name}");
        assert!(r.run_id.is_some(), "{name}: rejected run not recorded");
        assert_eq!(env.export("lincoln"), before, "{name} changed the users");
    }
    // Exactly half bad is not "more than half": applied.
    let f = env.file("half.csv", "Username,Graduation Year\ngood1,3\nbad1,1850\n");
    assert_eq!(
        env.import("lincoln", &f).outcome,
        Outcome::AppliedWithErrors
    );
}

#[test]
fn username_of_another_tenant_is_a_row_error_that_names_no_tenant() {
    let env = Env::new();
    env.tenant("alpha-district");
    env.tenant("beta-district");
    let a = env.file("a.csv", "Username,First Name\njdoe@example.org,John\n");
    env.import("alpha-district", &a);
    let b = env.file(
        "b.csv",
        "Username,First Name\nJDOE@example.org,Jane\nother,Olga\n",
    );
    let r = env.import("beta-district", &b);
    assert_eq!(r.outcome, Outcome::AppliedWithErrors);
    assert_eq!((r.counts.created, r.counts.skipped), (1, 1));
    let errors = errors_of(&r);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, Some(2));
    assert!(errors[0].2.contains("already in use"), "{}", errors[0].2);
    let all = format!("{r:?}");
    assert!(
        !all.contains("alpha"),
        "report names the other tenant: {all}"
    );
    // alpha's user is untouched
    assert!(
        env.export("alpha-district")
            .contains("jdoe@example.org,,John,")
    );
    assert!(!env.export("beta-district").contains("jdoe"));
}

#[test]
fn duplicate_username_in_one_file_is_case_insensitive() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "u.csv",
        "Username,First Name\njdoe,John\nother,O\nJDoe,Jane\nab,bad\nabcd,x\nAB,dup-of-bad\n",
    );
    let r = env.import("lincoln", &f);
    let errors = errors_of(&r);
    assert_eq!(errors[0].0, Some(4));
    assert!(
        errors[0].2.contains("already appears on line 2"),
        "{errors:?}"
    );
    assert!(
        env.export("lincoln").contains("jdoe,,John,"),
        "first occurrence applies"
    );
    assert_eq!(r.counts.created, 3);
}

#[test]
fn extra_fields_are_a_row_error_but_trailing_empties_are_not() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "u.csv",
        "Username,First Name,Last Name\njdoe,John,Doe,,\nasmith,Ann,Smith,Jr\nshort1\n",
    );
    let r = env.import("lincoln", &f);
    let errors = errors_of(&r);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, Some(3));
    assert!(errors[0].2.contains("4 fields but the header has 3"));
    assert_eq!(r.counts.created, 2);
}

#[test]
fn dry_run_reports_but_changes_nothing() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "u.csv",
        format!("{HEADER}\njdoe,secret1,,John,Doe,,,\nasmith,,,Ann,,,,\nxy,,,,,,,\n"),
    );
    let r = env.import_at("lincoln", &f, at("2026-11-21T12:00:00Z"), true);
    assert!(r.dry_run);
    assert_eq!(r.outcome, Outcome::AppliedWithErrors);
    assert_eq!((r.counts.created, r.counts.skipped), (2, 1));
    assert_eq!(r.run_id, None);
    assert_eq!(env.user_count(), 0);
    let runs: i64 = env
        .store()
        .conn
        .query_row("SELECT count(*) FROM import_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 0);
    // and the real run afterwards is not "unchanged": the dry run recorded nothing
    assert_eq!(env.import("lincoln", &f).counts.created, 2);
}

#[test]
fn upsert_blank_cells_keep_stored_values() {
    let env = Env::new();
    env.tenant("lincoln");
    let first = env.file(
        "1.csv",
        format!(
            "{HEADER}\njdoe,,jdoe@example.org,John,Doe,Lincoln High,5,Manager\nkeep,,,Kim,Keep,,,\n"
        ),
    );
    env.import("lincoln", &first);
    // Only Username and Last Name: everything else stays; `keep` is absent and untouched.
    let second = env.file("2.csv", "Username,Last Name,Access Type\nJDoe,Doe-Smith,\n");
    let r = env.import("lincoln", &second);
    assert_eq!(
        (r.counts.updated, r.counts.unchanged, r.counts.created),
        (1, 0, 0)
    );
    let export = env.export("lincoln");
    assert!(
        export.contains("JDoe,jdoe@example.org,John,Doe-Smith,Lincoln High,2034,Manager,student"),
        "{export}"
    );
    assert!(export.contains("keep,,Kim,Keep,,,,staff"), "{export}");
    // Access Type None removes privileges; unchanged rows are counted as such.
    let third = env.file("3.csv", "Username,Access Type\njdoe,None\nkeep,\n");
    let r = env.import("lincoln", &third);
    assert_eq!((r.counts.updated, r.counts.unchanged), (1, 1));
    assert!(
        env.export("lincoln")
            .contains("jdoe,jdoe@example.org,John,Doe-Smith,Lincoln High,2034,,student")
    );
}

#[test]
fn school_matches_by_nces_then_state_id_then_name() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "u.csv",
        "Username,School\nuser1,062271003230\nuser2,ca-123\nuser3,  LINCOLN   high \nuser4,Lincon Elementary\n",
    );
    let r = env.import("lincoln", &f);
    assert_eq!(r.counts.created, 3);
    let errors = errors_of(&r);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        r.problems
            .iter()
            .find(|p| p.severity == Severity::Error)
            .unwrap()
            .value,
        "Lincon Elementary"
    );
    let export = env.export("lincoln");
    assert!(export.contains("user1,,,,Lincoln Elementary,"));
    assert!(export.contains("user2,,,,Lincoln Elementary,"));
    assert!(export.contains("user3,,,,Lincoln High,"));
}

fn stored_hash(env: &Env, user: &str) -> Option<String> {
    env.store()
        .conn
        .query_row(
            "SELECT password_hash FROM users WHERE username_key = ?1",
            [user],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn unchanged_password_is_not_rehashed_and_a_changed_one_is() {
    let env = Env::new();
    env.tenant("lincoln");
    let f1 = env.file(
        "1.csv",
        "Username,Password,First Name\njdoe,Secret-1,John\n",
    );
    env.import("lincoln", &f1);
    let h1 = stored_hash(&env, "jdoe").expect("hash stored");
    assert!(h1.starts_with("$argon2id$"));
    assert!(rosterd::password::verify("Secret-1", &h1));
    // Same password, other field changed: updated, but the hash is untouched.
    let f2 = env.file(
        "2.csv",
        "Username,Password,First Name\njdoe,Secret-1,Johnny\n",
    );
    let r = env.import("lincoln", &f2);
    assert_eq!(r.counts.updated, 1);
    assert_eq!(stored_hash(&env, "jdoe").as_deref(), Some(h1.as_str()));
    // Not byte-identical (extra blank line) but every row the same: all unchanged.
    let f3 = env.file(
        "3.csv",
        "Username,Password,First Name\njdoe,Secret-1,Johnny\n\n",
    );
    let r = env.import("lincoln", &f3);
    assert_eq!((r.counts.unchanged, r.counts.updated), (1, 0));
    // Blank password keeps the old one.
    let f4 = env.file("4.csv", "Username,Password,First Name\njdoe,,Johnny\n");
    assert_eq!(env.import("lincoln", &f4).counts.unchanged, 1);
    assert_eq!(stored_hash(&env, "jdoe").as_deref(), Some(h1.as_str()));
    // A new password is hashed anew.
    let f5 = env.file(
        "5.csv",
        "Username,Password,First Name\njdoe,Secret-2,Johnny\n",
    );
    assert_eq!(env.import("lincoln", &f5).counts.updated, 1);
    let h2 = stored_hash(&env, "jdoe").unwrap();
    assert_ne!(h1, h2);
    assert!(rosterd::password::verify("Secret-2", &h2));
}

#[test]
fn passwords_appear_nowhere_but_as_hashes() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "u.csv",
        "Username,Password\njdoe,Plaintext-Pw-1\nasmith,Pw-2\n",
    );
    let r = env.import("lincoln", &f);
    assert_eq!(r.counts.created, 1);
    let report_json = serde_json::to_string(&r).unwrap();
    assert!(
        !report_json.contains("Plaintext-Pw-1") && !report_json.contains("Pw-2"),
        "{report_json}"
    );
    drop(env.store()); // checkpoint nothing pending
    for entry in std::fs::read_dir(env.path("data")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains("Plaintext-Pw-1") && !hay.contains("Pw-2"),
            "plaintext password on disk"
        );
    }
    let (_, out, err) = env.run(&["runs", "lincoln", "--id", "1", "--format", "json"]);
    assert!(!out.contains("Pw-2") && !err.contains("Pw-2"));
}

#[test]
fn new_user_without_password_warns_unless_sso() {
    let env = Env::new();
    env.tenant("lincoln");
    env.ok(&[
        "tenant",
        "add",
        "sso-district",
        "--admin-name",
        "S",
        "--admin-email",
        "s@example.org",
        "--sso",
    ]);
    let f = env.file("u.csv", "Username,Email Address\nnopass1,n1@example.org\n");
    let r = env.import("lincoln", &f);
    assert_eq!(r.counts.warnings, 1);
    assert!(r.problems[0].message.contains("without a password"));
    let f = env.file("v.csv", "Username\nnopass2\n");
    assert_eq!(env.import("sso-district", &f).counts.warnings, 0);
}

#[test]
fn new_users_without_an_email_address_are_counted_in_one_warning_unless_sso() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "u.csv",
        "Username,Password,Email Address\nann.lee,Secr3t-Ann,\nbob.ray,Secr3t-Bob,\ncat.diaz,Secr3t-Cat,cat@example.org\n",
    );
    let r = env.import("lincoln", &f);
    assert_eq!(r.counts.warnings, 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].line, None);
    assert_eq!(r.problems[0].column, "Email Address");
    assert!(
        r.problems[0]
            .message
            .starts_with("2 new users have no Email Address: without SSO, a user without one cannot verify the account or reset a lost password"),
        "{}",
        r.problems[0].message
    );
    // Updates are not new users; an SSO district needs no address for it.
    let f = env.file("v.csv", "Username,First Name\nann.lee,Ann\n");
    assert_eq!(env.import("lincoln", &f).counts.warnings, 0);
    env.ok(&["tenant", "set", "lincoln", "--sso", "true"]);
    let f = env.file("w.csv", "Username\ndan.oak\n");
    assert_eq!(env.import("lincoln", &f).counts.warnings, 0);
}

#[test]
fn byte_identical_reimport_is_unchanged() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file("u.csv", "Username,First Name\njdoe,John\n");
    assert_eq!(env.import("lincoln", &f).outcome, Outcome::Applied);
    let r = env.import("lincoln", &f);
    assert_eq!(r.outcome, Outcome::Unchanged);
    assert!(r.run_id.is_some(), "unchanged runs are recorded");
    assert_eq!(r.counts.rows, 0);
}

/// Grade levels convert with the school year of the tenant's own time zone:
/// at 03:00 UTC on 1 July it is still 30 June in Los Angeles.
#[test]
fn grade_conversion_rolls_over_in_the_tenant_time_zone() {
    let env = Env::new();
    {
        let store = env.store();
        add_tenant(&store, "west", false, Some("America/Los_Angeles"));
        add_tenant(&store, "utc", false, Some("Etc/UTC"));
    }
    let now = at("2026-07-01T03:00:00Z");
    let w = env.file(
        "w.csv",
        "Username,Graduation Year\nsenior-w,12\nkinder-w,K\n",
    );
    let u = env.file(
        "u.csv",
        "Username,Graduation Year\nsenior-u,12\nkinder-u,K\n",
    );
    env.import_at("west", &w, now, false);
    env.import_at("utc", &u, now, false);
    let west = env.export("west");
    let utc = env.export("utc");
    assert!(
        west.contains("senior-w,,,,,2026,") && west.contains("kinder-w,,,,,2038,"),
        "{west}"
    );
    assert!(
        utc.contains("senior-u,,,,,2027,") && utc.contains("kinder-u,,,,,2039,"),
        "{utc}"
    );
}

/// Rows travel from the reader to the writer in batches of 1,024 that keep
/// their text in one buffer each: across many batches, including one made of
/// errors only and duplicates of rows from earlier batches, every stored value
/// must be the one its own row gave.
#[test]
fn every_row_keeps_its_own_values_across_many_batches() {
    let env = Env::new();
    env.tenant("lincoln");
    let bad = 1500..2700; // 1,200 bad rows in a run: a batch of problems alone
    let duplicate = |i: usize| i >= 3000 && i % 10 == 9; // of row i - 3000
    let username = |i: usize| {
        if duplicate(i) {
            format!("USER{}", i - 3000)
        } else if bad.contains(&i) {
            "x".to_owned()
        } else if i.is_multiple_of(2) {
            format!("User{i}@Example.org")
        } else {
            format!("user{i}")
        }
    };
    let file = |last: &str| {
        let mut csv = String::from("Username,Email Address,First Name,Last Name\n");
        for i in 0..4000 {
            let email = if i % 3 == 0 {
                format!("u{i}@example.org")
            } else {
                String::new()
            };
            csv += &format!("{},{email},F{i},{last}{i}\n", username(i));
        }
        csv
    };
    let valid: Vec<usize> = (0..4000)
        .filter(|&i| !bad.contains(&i) && !duplicate(i))
        .collect();
    let stored = |env: &Env| -> Vec<(String, String, Option<String>, String, String)> {
        let store = env.store();
        let mut stmt = store
            .conn
            .prepare("SELECT username, username_key, email, first_name, last_name FROM users ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    for (last, created, updated) in [("L", 2700, 0), ("M", 0, 2700)] {
        let r = env.import("lincoln", &env.file(&format!("{last}.csv"), file(last)));
        assert_eq!(r.counts.rows, 4000);
        assert_eq!((r.counts.created, r.counts.updated), (created, updated));
        assert_eq!(r.counts.skipped, 1300);
        let errors = errors_of(&r);
        let first_duplicate = errors
            .iter()
            .find(|e| e.0 == Some(3011))
            .unwrap_or_else(|| panic!("no error for line 3011 (row 3009): {:?}", errors.last()));
        assert!(
            first_duplicate.2.contains("already appears on line 11"),
            "{first_duplicate:?}"
        );
        let rows = stored(&env);
        assert_eq!(rows.len(), valid.len());
        for (&i, (name, key, email, first, last_name)) in valid.iter().zip(&rows) {
            assert_eq!(name, &username(i));
            assert_eq!(key, &username(i).to_lowercase());
            assert_eq!(
                email.as_deref(),
                (i % 3 == 0).then(|| format!("u{i}@example.org")).as_deref()
            );
            assert_eq!(first, &format!("F{i}"));
            assert_eq!(last_name, &format!("{last}{i}"));
        }
    }
}

#[test]
fn a_school_that_matches_nothing_names_the_closest_registered_ones_and_the_row() {
    let env = Env::new();
    env.tenant("lincoln"); // Lincoln Elementary (NCES 062271003230), Lincoln High
    let file = env.file(
        "users.csv",
        "Username,First Name,Last Name,School\n\
         ada.l,Ada,Lovelace,Lincon Elementary\n\
         bob.t,Bob,Tables,Lincoln\n\
         cy.p,Cy,Press,Washington Middle\n",
    );
    let report = env.import("lincoln", &file);
    let message = |user: &str| {
        let p = report
            .problems
            .iter()
            .find(|p| p.who.as_ref().is_some_and(|w| w.username == user))
            .unwrap_or_else(|| panic!("no problem for {user}: {:?}", report.problems));
        (p.message.clone(), p.describe())
    };
    let (ada, line) = message("ada.l");
    assert!(
        ada.contains("did you mean Lincoln Elementary (NCES 062271003230)?"),
        "{ada}"
    );
    assert!(
        line.starts_with("line 2 (ada.l, Ada Lovelace), School \"Lincon Elementary\""),
        "{line}"
    );
    let (bob, _) = message("bob.t");
    assert!(
        bob.contains("did you mean Lincoln Elementary (NCES 062271003230) or Lincoln High?")
            || bob.contains("did you mean Lincoln High or Lincoln Elementary (NCES 062271003230)?"),
        "{bob}"
    );
    let (cy, _) = message("cy.p");
    assert!(!cy.contains("did you mean"), "nothing near: {cy}");
    assert!(cy.contains("rosterd school list"), "{cy}");
}
