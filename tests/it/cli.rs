//! The `rosterd` binary as support uses it: exit codes, help, templates,
//! export, tenants, column mapping, schools, host key, config errors.

use std::os::unix::fs::PermissionsExt;

use crate::helpers::*;

#[test]
fn exit_codes_0_1_2_3() {
    let env = Env::new();
    env.tenant("lincoln");
    let clean = env.file("clean.csv", "Username,Password\njdoe,secret1\n");
    let some_bad = env.file(
        "some.csv",
        "Username,Password\nasmith,secret1\nbsmith,secret2\nxy,secret3\n",
    );
    let rejected = env.file("rej.csv", "First Name\nJohn\n");
    let (code, out, _) = env.run(&["import", "users", "lincoln", clean.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 created"), "{out}");
    // dry run answers as the real run would, and changes nothing
    let (code, out, _) = env.run(&[
        "import",
        "users",
        "lincoln",
        some_bad.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("DRY RUN"));
    assert!(!env.export("lincoln").contains("asmith"));
    let (code, out, _) = env.run(&["import", "users", "lincoln", some_bad.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(
            "line 4 (xy), Username \"xy\": error Username must be at least 4 characters long"
        ),
        "{out}"
    );
    let (code, out, err) = env.run(&["import", "users", "lincoln", rejected.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("rejected, nothing applied"), "{out}");
    assert!(err.contains("no Username column"), "{err}");
    // usage errors
    assert_eq!(env.run(&["import", "users", "lincoln"]).0, 2);
    assert_eq!(env.run(&["frobnicate"]).0, 2);
    assert_eq!(env.run(&["template", "pets"]).0, 2);
    // a missing tenant or file is a failure, not a usage error
    assert_eq!(
        env.run(&["import", "users", "nobody", clean.to_str().unwrap()])
            .0,
        1
    );
    assert_eq!(
        env.run(&["import", "users", "lincoln", "/nonexistent.csv"])
            .0,
        1
    );
}

#[test]
fn problems_as_csv_and_run_history() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "u.csv",
        "Username,Graduation Year\ngood1,3\nbad1,1850\ngood2,K\n",
    );
    let (code, out, _) = env.run(&[
        "import",
        "users",
        "lincoln",
        f.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert_eq!(code, 3);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("line,username,first_name,last_name,column,value,severity,message")
    );
    assert!(
        out.contains(
            "3,bad1,,,Graduation Year,1850,error,Graduation Year 1850 is outside the accepted range"
        ),
        "{out}"
    );
    let runs = env.ok(&["runs", "lincoln"]);
    assert!(runs.contains("applied_with_errors"), "{runs}");
    let one = env.ok(&["runs", "lincoln", "--id", "1"]);
    assert!(
        one.contains("line 3 (bad1), Graduation Year \"1850\""),
        "{one}"
    );
    assert_eq!(env.run(&["runs", "lincoln", "--id", "99"]).0, 1);
}

#[test]
fn help_teaches_with_examples() {
    let env = Env::new();
    let top = env.ok(&["--help"]);
    assert!(
        top.contains("Exit codes: 0 success, 1 failure, 2 usage error, 3"),
        "{top}"
    );
    for cmd in [
        vec!["tenant", "add"],
        vec!["tenant", "map"],
        vec!["key", "add"],
        vec!["key", "revoke"],
        vec!["school", "add"],
        vec!["school", "import"],
        vec!["import", "users"],
        vec!["users", "export"],
        vec!["runs"],
        vec!["template"],
        vec!["host-key"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = env.ok(&args);
        assert!(
            out.contains("rosterd "),
            "{cmd:?} help shows no example:\n{out}"
        );
    }
}

#[test]
fn templates() {
    let env = Env::new();
    assert_eq!(
        env.ok(&["template", "users"]),
        "Username,Password,Email Address,First Name,Last Name,School,Graduation Year,Access Type\n"
    );
    assert_eq!(
        env.ok(&["template", "groups"]),
        "Username,Owner Name,Group Name\n"
    );
    // The users template imports as a valid (empty) file.
    env.tenant("lincoln");
    let t = env.file("t.csv", env.ok(&["template", "users"]));
    let (code, out, _) = env.run(&["import", "users", "lincoln", t.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn users_export_is_sorted_and_has_no_passwords() {
    let env = Env::new();
    env.tenant("lincoln");
    let f = env.file(
        "u.csv",
        "Username,Password,Email Address,School,Graduation Year,Access Type\n\
         zed.last,Pw-zzzzzz,z@example.org,Lincoln High,12,\n\
         Amy.First,Pw-aaaaaa,,062271003230,,School Administrator\n\
         middle,,,,K,\n",
    );
    env.import("lincoln", &f);
    let out = env.export("lincoln");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Username,Email Address,First Name,Last Name,School,Graduation Year,Access Type,User Type,Status"
    );
    assert_eq!(
        lines[1],
        "Amy.First,,,,Lincoln Elementary,,School Administrator,staff,active"
    );
    assert_eq!(lines[2], "middle,,,,,2039,,student,active");
    assert_eq!(
        lines[3],
        "zed.last,z@example.org,,,Lincoln High,2027,,student,active"
    );
    assert!(!out.contains("Pw-"));
}

#[test]
fn tenants_add_show_disable_enable() {
    let env = Env::new();
    // Each bad value is refused with a message that names what to fix.
    let refused: [(&[&str], &str); 4] = [
        (
            &["Lincoln_USD", "--admin-email", "a@example.org"],
            "lowercase letters",
        ),
        (
            &["lincoln", "--admin-email", "not-an-address"],
            "--admin-email",
        ),
        (
            &[
                "lincoln",
                "--admin-email",
                "a@example.org",
                "--timezone",
                "Mars/Base",
            ],
            "IANA",
        ),
        (
            &[
                "lincoln",
                "--admin-email",
                "a@example.org",
                "--window",
                "6pm-6am",
            ],
            "18:00-06:00",
        ),
    ];
    for (args, why) in refused {
        let mut full = vec!["tenant", "add", "--admin-name", "A"];
        full.extend_from_slice(args);
        let (code, _, err) = env.run(&full);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    env.ok(&[
        "tenant",
        "add",
        "lincoln",
        "--admin-name",
        "Ann Lee",
        "--admin-email",
        "ann@example.org",
        "--timezone",
        "America/Chicago",
        "--window",
        "20:00-04:30",
        "--sso",
    ]);
    assert_eq!(
        env.run(&[
            "tenant",
            "add",
            "lincoln",
            "--admin-name",
            "A",
            "--admin-email",
            "a@example.org"
        ])
        .0,
        1
    );
    let show = env.ok(&["tenant", "show", "lincoln"]);
    for want in [
        "Ann Lee <ann@example.org>",
        "America/Chicago",
        "20:00-04:30",
        "sso         yes",
        "enabled",
    ] {
        assert!(show.contains(want), "{show}");
    }
    env.ok(&[
        "tenant",
        "set",
        "lincoln",
        "--timezone",
        "default",
        "--sso",
        "false",
    ]);
    let show = env.ok(&["tenant", "show", "lincoln"]);
    assert!(
        show.contains("America/New_York (default)") && show.contains("sso         no"),
        "{show}"
    );

    env.ok(&["tenant", "disable", "lincoln"]);
    assert!(env.ok(&["tenant", "list"]).contains("disabled"));
    let f = env.file("u.csv", "Username\njdoe1\n");
    let (code, _, err) = env.run(&["import", "users", "lincoln", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("disabled"), "{err}");
    env.ok(&["tenant", "enable", "lincoln"]);
    assert_eq!(
        env.run(&["import", "users", "lincoln", f.to_str().unwrap()])
            .0,
        0
    );
}

#[test]
fn stored_column_mapping_applies_to_every_import() {
    let env = Env::new();
    env.tenant("lincoln");
    assert_eq!(
        env.run(&["tenant", "map", "lincoln", "Student Email", "Shoe Size"])
            .0,
        1
    );
    env.ok(&["tenant", "map", "lincoln", "Student Email", "email address"]);
    env.ok(&["tenant", "map", "lincoln", "Student ID", "Username"]);
    env.ok(&["tenant", "map", "lincoln", "Username", "ignore"]);
    assert!(
        env.ok(&["tenant", "show", "lincoln"])
            .contains("\"Student Email\" -> Email Address")
    );
    // the export has a Username column too (a login alias), which the mapping ignores
    let f = env.file(
        "u.csv",
        "Student ID,student_email,Username\ns1001,kid@example.org,ignored\n",
    );
    let r = env.import("lincoln", &f);
    assert_eq!(r.counts.created, 1, "{:?}", r);
    assert!(env.export("lincoln").contains("s1001,kid@example.org,"));
    env.ok(&["tenant", "map", "lincoln", "--remove", "Student Email"]);
    assert_eq!(
        env.run(&["tenant", "map", "lincoln", "--remove", "Student Email"])
            .0,
        1
    );
}

#[test]
fn school_import_is_all_or_nothing() {
    let env = Env::new();
    env.ok(&[
        "tenant",
        "add",
        "lincoln",
        "--admin-name",
        "A",
        "--admin-email",
        "a@example.org",
    ]);
    let bad = env.file(
        "bad.csv",
        "School Name,NCES ID,State ID\nAlpha,062271003231,\nBeta,062271003231,\n",
    );
    let (code, _, err) = env.run(&["school", "import", "lincoln", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("line 3"), "{err}");
    assert_eq!(
        env.ok(&["school", "list", "lincoln"]),
        "Name,NCES ID,State ID\n"
    );
    let good = env.file(
        "good.csv",
        "Name,NCES,State School ID\nAlpha,062271003231,A-1\n\nBeta Elementary,062271003232,\n",
    );
    assert!(
        env.ok(&["school", "import", "lincoln", good.to_str().unwrap()])
            .contains("added 2 schools")
    );
    assert_eq!(
        env.ok(&["school", "list", "lincoln"]),
        "Name,NCES ID,State ID\nAlpha,062271003231,A-1\nBeta Elementary,062271003232,\n"
    );
}

#[test]
fn host_key_is_created_private_once_and_matches_ssh_keygen() {
    let env = Env::new();
    let (code, first, err) = env.run(&["host-key"]);
    assert_eq!(code, 0, "{err}");
    // ed25519 at host_key, ECDSA P-256 and RSA 3072 beside it.
    for (kind, file, bits) in [
        ("ED25519", "keys/host", "256"),
        ("ECDSA", "keys/ssh_host_ecdsa_key", "256"),
        ("RSA", "keys/ssh_host_rsa_key", "3072"),
    ] {
        assert!(
            err.contains(&format!("created a new {kind} host key")),
            "{err}"
        );
        let key = env.path(file);
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let lf = ssh_keygen(&["-lf", key.to_str().unwrap()]);
        let lf = String::from_utf8(lf.stdout).unwrap();
        let words: Vec<&str> = lf.split_whitespace().collect();
        assert_eq!(words[0], bits, "{lf}");
        assert!(
            first.contains(&format!("{} ({kind})", words[1])),
            "{first} lacks {lf}"
        );
    }
    let (_, second, err) = env.run(&["host-key"]);
    assert_eq!(first, second, "host keys must be reused");
    assert!(!err.contains("created"));
    // a world-readable key is refused, with the fix in the message
    let key = env.path("keys/host");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = env.run(&["host-key"]);
    assert_eq!(code, 1);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn database_file_is_private() {
    let env = Env::new();
    env.ok(&["tenant", "list"]);
    let mode = std::fs::metadata(env.db_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn config_errors_name_the_key_and_defaults_need_no_file() {
    let env = Env::new();
    std::fs::write(&env.config, "[storage]\ndatabse = \"x.db\"\n").unwrap();
    let (code, _, err) = env.run(&["tenant", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("databse"), "{err}");
    std::fs::write(&env.config, "[schedule]\nwindow = \"25:00-06:00\"\n").unwrap();
    let (code, _, err) = env.run(&["tenant", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("window"), "{err}");
    // ROSTERD_CONFIG names a missing file: an error, not silent defaults
    let out = std::process::Command::new(BIN)
        .args(["tenant", "list"])
        .current_dir(env.dir.path())
        .env("ROSTERD_CONFIG", env.path("missing.toml"))
        .output()
        .unwrap();
    let (code, _, err) = decode(out);
    assert_eq!(code, 1);
    assert!(err.contains("missing.toml"), "{err}");
    // no config at the default path: embedded defaults, database under data/
    let out = std::process::Command::new(BIN)
        .args(["tenant", "list"])
        .current_dir(env.dir.path())
        .env_remove("ROSTERD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(decode(out).0, 0);
    assert!(env.path("data/rosterd.db").exists());
}

#[test]
fn serve_prints_where_it_listens_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    std::fs::write(&env.config, "[server]\nlisten = \"127.0.0.1:0\"\nhost_key = \"keys/host\"\n[storage]\ndatabase = \"data/rosterd.db\"\n").unwrap();
    let mut child = env
        .command(&["serve"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let banner = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if line.contains("listening on") {
            break line;
        }
    };
    let fingerprints = env.ok(&["host-key"]);
    assert_eq!(fingerprints.lines().count(), 3, "{fingerprints}");
    assert!(banner.contains("127.0.0.1:"), "{banner}");
    for line in fingerprints.lines() {
        assert!(banner.contains(line), "{banner} lacks {line}");
    }
    // the host key was created private on first start
    let mode = std::fs::metadata(env.path("keys/host"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(0), "serve must exit 0 after SIGTERM");
}

/// A fresh install's first commands can run at the same moment (`serve`
/// starting while support registers a district): each opens and migrates
/// the new database, and every one must succeed.
#[test]
fn concurrent_first_opens_of_a_new_database_all_succeed() {
    for round in 0..6 {
        let env = Env::new();
        let children: Vec<_> = (0..4)
            .map(|_| {
                env.command(&["tenant", "list"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("run rosterd")
            })
            .collect();
        for child in children {
            let (code, _, err) = decode(child.wait_with_output().unwrap());
            assert_eq!(code, 0, "round {round}: {err}");
        }
        env.assert_integrity();
    }
}

#[test]
fn a_fixed_offset_or_alias_time_zone_is_accepted_with_a_warning_naming_the_region() {
    let env = Env::new();
    env.tenant("lincoln");
    let (code, _, err) = env.run(&["tenant", "set", "lincoln", "--timezone", "EST"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: --timezone EST is a fixed offset from UTC with no daylight saving")
            && err.contains("use America/New_York"),
        "{err}"
    );
    let (code, _, err) = env.run(&[
        "tenant",
        "add",
        "roosevelt",
        "--admin-name",
        "Ann",
        "--admin-email",
        "a@example.org",
        "--timezone",
        "US/Pacific",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("US/Pacific is an old alias") && err.contains("use America/Los_Angeles"),
        "{err}"
    );
    let (code, _, err) = env.run(&["tenant", "set", "lincoln", "--timezone", "America/Chicago"]);
    assert_eq!(
        (code, err.as_str()),
        (0, ""),
        "a region name warns of nothing"
    );
    assert!(
        env.ok(&["tenant", "show", "lincoln"])
            .contains("America/Chicago")
    );
}

#[test]
fn an_nces_id_must_be_twelve_digits() {
    let env = Env::new();
    env.tenant("lincoln");
    let (code, _, err) = env.run(&[
        "school",
        "add",
        "lincoln",
        "--name",
        "Short",
        "--nces",
        "62271003231",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is not 12 digits") && err.contains("try 062271003231"),
        "{err}"
    );
    let file = env.file(
        "schools.csv",
        "Name,NCES ID,State ID\nA School,062271003231,\nB School,1234,\n",
    );
    let (code, _, err) = env.run(&["school", "import", "lincoln", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("line 3: NCES school ID \"1234\" is not 12 digits"),
        "{err}"
    );
    assert!(
        !env.ok(&["school", "list", "lincoln"]).contains("A School"),
        "nothing of the file was added"
    );
}

#[test]
fn a_date_in_another_form_is_refused_with_the_form_to_use() {
    let env = Env::new();
    env.tenant("lincoln");
    let (code, _, err) = env.run(&[
        "tenant",
        "pause",
        "lincoln",
        "--from",
        "12/20/2026",
        "--until",
        "2027-01-05",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("\"12/20/2026\" is not a date in the form YYYY-MM-DD")
            && err.contains("for 12/20/2026 write 2026-12-20"),
        "{err}"
    );
}

#[test]
fn listings_for_scripts_as_json_with_utc_times_and_for_people_in_district_time() {
    let env = Env::new();
    let (_, fp) = crate::server::tenant_with_key(&env, "lincoln");
    let fp = fp.as_str();
    env.ok(&["school", "add", "lincoln", "--name", "Lincoln High"]);
    let users = env.file(
        "users.csv",
        "Username,First Name,Last Name\nada.l,Ada,Lovelace\n",
    );
    env.import("lincoln", &users); // at 2026-11-21T12:00:00Z, 07:00 in New York
    let json = |args: &[&str]| -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        serde_json::from_str(&env.ok(&args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };

    let status = json(&["status"]);
    assert_eq!(status["configuration"]["source"], "flag");
    assert_eq!(
        status["configuration"]["path"],
        env.config.display().to_string()
    );
    assert_eq!(status["database"], env.db_path().display().to_string());
    let d = &status["districts"][0];
    assert_eq!(d["subdomain"], "lincoln");
    assert_eq!(d["timezone"], "America/New_York");
    assert_eq!(d["last_import"]["outcome"], "applied");
    assert_eq!(d["last_import"]["created"], 1);
    assert_eq!(d["last_import"]["finished_at"], "2026-11-21T12:00:00Z");
    assert_eq!(d["held"], serde_json::json!([]));
    assert_eq!(status["mail"]["queued"], 0);

    let show = json(&["tenant", "show", "lincoln"]);
    assert_eq!(show["admin_emails"], serde_json::json!(["a@example.org"]));
    assert_eq!(show["timezone_is_default"], true);
    assert_eq!(show["keys"][0]["fingerprint"], fp);
    assert_eq!(show["schools"], 1);
    assert_eq!(show["last_import"]["finished_at"], "2026-11-21T12:00:00Z");

    let runs = json(&["runs", "lincoln"]);
    assert_eq!(runs["district"], "lincoln");
    assert_eq!(runs["runs"][0]["outcome"], "applied");
    assert_eq!(runs["runs"][0]["created"], 1);

    let keys = json(&["key", "list", "lincoln"]);
    assert_eq!(keys["keys"][0]["fingerprint"], fp);
    assert_eq!(keys["keys"][0]["revoked_at"], serde_json::Value::Null);

    // The text shows the same moment in the district's time zone, everywhere.
    let text_runs = env.ok(&["runs", "lincoln"]);
    assert!(text_runs.contains("2026-11-21 07:00:00 EST"), "{text_runs}");
    let text_show = env.ok(&["tenant", "show", "lincoln"]);
    assert!(
        text_show.contains("last import 2026-11-21 07:00:00 EST applied"),
        "{text_show}"
    );
    assert!(
        env.ok(&["status"])
            .contains("last import   2026-11-21 07:00:00 EST: applied")
    );
    let (code, _, err) = env.run(&["runs", "lincoln", "--format", "csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("add --id RUN"), "{err}");
}

#[test]
fn output_to_a_reader_that_went_away_ends_quietly() {
    let env = Env::new();
    env.tenant("lincoln");
    let rows: String = (0..3000)
        .map(|i| format!("user{i},First{i},Last{i}\n"))
        .collect();
    let users = env.file(
        "users.csv",
        format!("Username,First Name,Last Name\n{rows}"),
    );
    env.import("lincoln", &users);
    let rejected = env.file("rejected.csv", "Username\nx\ny\n");
    let rejected = rejected.to_str().unwrap();
    // `rosterd … | head -1`, with the reader gone before anything is written:
    // a listing ends with 0; an import keeps its own exit status (1 here,
    // rejected), so `set -o pipefail` scripts still see it.
    for (args, code) in [
        (&["users", "export", "lincoln"][..], 0),
        (&["status"], 0),
        (&["status", "--format", "json"], 0),
        (&["completions", "bash"], 0),
        (&["import", "users", "lincoln", rejected, "--dry-run"], 1),
    ] {
        let mut child = env
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "rosterd {args:?}: {err}");
        assert!(
            !err.contains("Broken pipe") && !err.contains("panicked"),
            "rosterd {args:?}: {err}"
        );
    }
}

#[test]
fn shell_completions_and_manual_pages_describe_every_command() {
    let env = Env::bare();
    // bash: the script loads, and completes a command and its subcommands.
    let script = env.ok(&["completions", "bash"]);
    let file = env.file("rosterd.bash", &script);
    let complete = |words: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; _rosterd rosterd; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                file.display()
            ))
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = complete("rosterd te");
    assert!(
        first.lines().any(|l| l == "tenant") && first.lines().any(|l| l == "template"),
        "{first}"
    );
    let tenant = complete("rosterd tenant ''");
    for sub in ["add", "show", "set", "pause"] {
        assert!(tenant.lines().any(|l| l == sub), "{sub} missing: {tenant}");
    }
    for shell in ["zsh", "fish"] {
        assert!(env.ok(&["completions", shell]).contains("tenant"));
    }

    // man: a page per command, with the command's own help in it.
    let dir = env.path("man1");
    let (code, _, err) = env.run(&["man", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(dir.join("rosterd.1")).unwrap();
    assert!(page.contains(".TH rosterd 1"), "{page}");
    let add = std::fs::read_to_string(dir.join("rosterd-tenant-add.1")).unwrap();
    assert!(add.contains("admin\\-email"), "{add}");
    assert!(dir.join("rosterd-import-approve.1").exists());
    assert!(!env.db_path().exists(), "neither needs a database");
}

#[test]
fn serve_stopped_the_moment_it_says_it_listens_stops_cleanly() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    std::fs::write(&env.config, "[server]\nlisten = \"127.0.0.1:0\"\nhost_key = \"keys/host\"\n[storage]\ndatabase = \"data/rosterd.db\"\n").unwrap();
    // The quickstart's `kill %1` right after readiness: the signal must
    // already be caught when the banner is printed.
    for round in 0..5 {
        let mut child = env
            .command(&["serve"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        while !lines
            .next()
            .expect("serve exited before listening")
            .unwrap()
            .contains("listening on")
        {}
        let pid = child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: {status:?}; {rest:?}"
        );
    }
}

/// `--log-format json` (over the configuration's text): every line of
/// standard error is one JSON event, a fatal error included.
#[test]
fn log_format_json_flag_makes_every_line_of_standard_error_an_event() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::fs::write(
        &env.config,
        format!(
            "[server]\nlisten = \"{}\"\nhost_key = \"keys/host\"\n[storage]\ndatabase = \"data/rosterd.db\"\n[log]\nformat = \"text\"\n",
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let out = env
        .command(&["--log-format", "json", "serve"])
        .env("ROSTERD_LOG", "info")
        .output()
        .unwrap();
    let (code, _, err) = crate::helpers::decode(out);
    assert_eq!(code, 1, "{err}");
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "created a new host key"),
        "{err}"
    );
    let last = events.last().expect("events");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot listen on 127.0.0.1:"),
        "{last}"
    );
}
