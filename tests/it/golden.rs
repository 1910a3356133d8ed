//! Exact CLI output, compared byte for byte with transcripts in
//! `tests/golden/`: every command support runs in a day, its standard output,
//! standard error and exit code, and every command's `--help`. A refactor
//! proves with these that it changed nothing a person sees.
//!
//! A transcript is a real run of the built binary against a fresh
//! installation with a fixed clock (`ROSTERD_NOW`) and fixed public keys
//! (`tests/golden/keys/`). Only what differs between machines is written as
//! a placeholder: the temporary directory, and the SSH host key's
//! fingerprint. After an intended change of output, regenerate with
//! `ROSTERD_BLESS=1 cargo test --test it golden` and review the diff.

use std::path::Path;

use crate::helpers::*;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

/// Commands and what they printed, in the order they ran.
struct Transcript<'a> {
    env: &'a Env,
    now: &'static str,
    text: String,
}

impl<'a> Transcript<'a> {
    fn new(env: &'a Env) -> Self {
        Self {
            env,
            now: "2026-11-20T04:00:00Z",
            text: String::new(),
        }
    }

    /// Run `rosterd ARGS` (the `--config` is implied), optionally with
    /// `stdin`, and write down the command and everything it printed.
    fn run_with(&mut self, args: &[&str], stdin: Option<&str>) {
        use std::io::Write;
        let mut cmd = self.env.command(args);
        cmd.env("ROSTERD_NOW", self.now)
            .env("COLUMNS", "100")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(std::process::Stdio::piped());
        }
        let mut child = cmd.spawn().expect("run rosterd");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let (code, mut stdout, stderr) = decode(out);
        if args == ["host-key"] {
            // Generated afresh in each installation.
            stdout = stdout
                .lines()
                .map(|l| match l.split_once(' ') {
                    Some((fp, kind)) if fp.starts_with("SHA256:") => {
                        format!("SHA256:$HOST_KEY {kind}\n")
                    }
                    _ => format!("{l}\n"),
                })
                .collect();
        }
        self.text
            .push_str(&format!("$ rosterd {}\n", args.join(" ")));
        self.text.push_str(&stdout);
        if !stderr.is_empty() {
            self.text.push_str("[stderr]\n");
            self.text.push_str(&stderr);
        }
        self.text.push_str(&format!("[exit {code}]\n\n"));
    }

    fn run(&mut self, args: &[&str]) {
        self.run_with(args, None);
    }

    /// Compare with `tests/golden/NAME` (or write it, blessing).
    fn check(self, name: &str) {
        let dir = self.env.dir.path().to_str().unwrap().to_owned();
        let text = self.text.replace(&dir, "$DIR");
        let path = Path::new(GOLDEN).join(name);
        if std::env::var_os("ROSTERD_BLESS").is_some() {
            std::fs::write(&path, &text).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (ROSTERD_BLESS=1 writes it)", path.display()));
        if want != text {
            let got = path.with_extension("got");
            std::fs::write(&got, &text).unwrap();
            let first = want
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(want.lines().count().min(text.lines().count()));
            panic!(
                "{name} differs from its golden transcript at line {}:\n  want: {:?}\n  got:  {:?}\n(whole output in {}; `diff {} {}`)",
                first + 1,
                want.lines().nth(first),
                text.lines().nth(first),
                got.display(),
                path.display(),
                got.display()
            );
        }
    }
}

/// A fixed public key, copied into the installation as `NAME.pub`.
fn key(env: &Env, name: &str) -> String {
    let file = format!("{name}.pub");
    std::fs::copy(Path::new(GOLDEN).join("keys").join(&file), env.path(&file)).unwrap();
    file
}

#[test]
fn a_support_day_prints_exactly_what_it_printed() {
    let env = Env::new();
    let (alpha, beta, gamma) = (key(&env, "alpha"), key(&env, "beta"), key(&env, "gamma"));
    let (alpha, beta, gamma) = (alpha.as_str(), beta.as_str(), gamma.as_str());
    env.file(
        "schools.csv",
        "Name,NCES ID,State ID\nLincoln Elementary,062271003230,CA-123\nLincoln High,062271003231,CA-124\n",
    );
    env.file(
        "users.csv",
        "Username,Password,First Name,Last Name,School,Graduation Year,Access Type,Email Address\n\
         jdoe,secret1,Jane,Doe,Lincoln Elementary,2031,,jdoe@example.org\n\
         asmith,,Al,Smith,Lincoln High,2027,,\n\
         mteach,hunter22,Mary,Teach,Lincoln High,,Manager,mary@example.org\n\
         bad user,x,Bad,Row,Nowhere School,1999,Alien,not-an-email\n",
    );
    env.file(
        "users2.csv",
        "Username,First Name,Last Name,School,Graduation Year,Access Type\n\
         jdoe,Janet,Doe,Lincoln Elementary,2031,\n\
         asmith,Al,Smith,Lincoln High,2028,\n\
         mteach,Mary,Teach,Lincoln High,,Manager\n\
         newkid,New,Kid,Lincoln Elementary,2032,\n",
    );
    env.file(
        "groups.csv",
        "Group Name,Owner Name,Username\nRoom 1,mteach,jdoe\nRoom 1,mteach,asmith\nChess,mteach,\n",
    );
    let mut t = Transcript::new(&env);
    t.run(&["status"]);
    t.run(&[
        "tenant",
        "add",
        "lincoln",
        "--admin-name",
        "Ann Lee",
        "--admin-email",
        "ann@lincoln.example.org",
    ]);
    t.run(&[
        "tenant",
        "add",
        "lincoln",
        "--admin-name",
        "Ann Lee",
        "--admin-email",
        "ann@lincoln.example.org",
    ]);
    t.run(&[
        "tenant",
        "add",
        "Bad_Name",
        "--admin-name",
        "X",
        "--admin-email",
        "x@example.org",
    ]);
    t.run(&[
        "tenant",
        "add",
        "roosevelt",
        "--admin-name",
        "Rob Roe",
        "--admin-email",
        "rob@roosevelt.example.org",
        "--timezone",
        "America/Chicago",
        "--sso",
    ]);
    t.run(&[
        "tenant",
        "add",
        "nomail",
        "--admin-name",
        "No Mail",
        "--admin-email",
        "a,b",
    ]);
    t.run(&["tenant", "list"]);
    t.run(&["key", "add", "lincoln", alpha]);
    t.run(&["key", "add", "lincoln", alpha]);
    t.run(&["key", "add", "lincoln", gamma, "--from", "127.0.0.0/8"]);
    t.run_with(
        &["key", "add", "roosevelt", "-"],
        Some(&std::fs::read_to_string(env.path(beta)).unwrap()),
    );
    t.run(&["key", "add", "lincoln", "schools.csv"]);
    t.run(&["key", "list", "lincoln"]);
    t.run(&["school", "import", "lincoln", "schools.csv"]);
    t.run(&["school", "add", "lincoln", "--name", "Lincoln Middle"]);
    t.run(&[
        "school", "add", "lincoln", "--name", "Bad NCES", "--nces", "12ab",
    ]);
    t.run(&["school", "list", "lincoln"]);
    t.run(&["tenant", "map", "lincoln", "Homeroom", "ignore"]);
    t.run(&["tenant", "map", "lincoln", "Student Email", "Email Address"]);
    t.run(&["tenant", "map", "lincoln", "--remove", "Student Email"]);
    t.run(&["template"]);
    t.run(&["template", "users"]);
    t.run(&["template", "groups"]);
    t.run(&["import", "users", "lincoln", "users.csv", "--dry-run"]);
    t.run(&["import", "users", "lincoln", "users.csv"]);
    t.run(&["import", "users", "lincoln", "users.csv"]);
    t.run(&[
        "import",
        "users",
        "lincoln",
        "users.csv",
        "--format",
        "csv",
        "--force",
    ]);
    t.run(&[
        "import",
        "users",
        "lincoln",
        "users2.csv",
        "--format",
        "json",
    ]);
    t.run(&["import", "groups", "lincoln", "groups.csv"]);
    t.run(&["users", "export", "lincoln"]);
    t.run(&["groups", "export", "lincoln"]);
    t.run(&["runs", "lincoln"]);
    t.run(&["runs", "lincoln", "--format", "csv"]);
    t.run(&["runs", "lincoln", "--id", "2"]);
    t.run(&["runs", "lincoln", "--id", "4", "--changes"]);
    t.run(&[
        "runs",
        "lincoln",
        "--id",
        "4",
        "--changes",
        "--format",
        "csv",
    ]);
    t.run(&["runs", "undo", "lincoln", "4"]);
    t.run(&["runs", "undo", "lincoln", "2"]);
    t.run(&["runs", "undo", "lincoln", "4", "--apply"]);
    t.run(&[
        "tenant",
        "set",
        "lincoln",
        "--absent",
        "deactivate",
        "--hold-updates",
        "30",
    ]);
    t.run(&[
        "tenant",
        "set",
        "lincoln",
        "--hold-deactivations",
        "nonsense",
    ]);
    t.run(&[
        "tenant",
        "set",
        "lincoln",
        "--window",
        "19:00-05:00",
        "--timezone",
        "America/Denver",
    ]);
    t.run(&[
        "tenant",
        "pause",
        "lincoln",
        "--from",
        "2026-12-20",
        "--until",
        "2027-01-05",
    ]);
    t.run(&["tenant", "pause", "lincoln", "--until", "2025-01-05"]);
    t.run(&["tenant", "show", "lincoln"]);
    t.run(&["tenant", "resume", "lincoln"]);
    t.run(&["tenant", "disable", "roosevelt"]);
    t.run(&["import", "run", "roosevelt"]);
    t.run(&["tenant", "enable", "roosevelt"]);
    t.run(&["import", "run", "roosevelt"]);
    t.run(&["import", "approve", "lincoln", "99"]);
    t.run(&["import", "discard", "lincoln", "99"]);
    t.run(&["key", "revoke", "lincoln", "SHA256:nope"]);
    t.run(&["tenant", "show", "nobody"]);
    t.run(&["host-key"]);
    t.run(&["status"]);
    t.check("support_day.txt");
}

/// Every command's `--help`, as clap and rosterd's texts render it at 100
/// columns.
#[test]
fn every_help_text_is_exactly_as_it_was() {
    let env = Env::new();
    let mut t = Transcript::new(&env);
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["init"],
        &["host-key"],
        &["tenant"],
        &["tenant", "add"],
        &["tenant", "list"],
        &["tenant", "show"],
        &["tenant", "set"],
        &["tenant", "pause"],
        &["tenant", "resume"],
        &["tenant", "disable"],
        &["tenant", "enable"],
        &["tenant", "map"],
        &["tenant", "rename"],
        &["tenant", "delete"],
        &["key"],
        &["key", "add"],
        &["key", "list"],
        &["key", "revoke"],
        &["school"],
        &["school", "add"],
        &["school", "import"],
        &["school", "list"],
        &["school", "rename"],
        &["school", "remove"],
        &["import"],
        &["import", "users"],
        &["import", "groups"],
        &["import", "run"],
        &["import", "approve"],
        &["import", "discard"],
        &["users"],
        &["users", "export"],
        &["users", "reset-passwords"],
        &["groups"],
        &["groups", "export"],
        &["runs"],
        &["runs", "undo"],
        &["mail"],
        &["mail", "test"],
        &["template"],
        &["status"],
        &["completions"],
        &["man"],
    ];
    for args in commands {
        let mut with_help = args.to_vec();
        with_help.push("--help");
        t.run(&with_help);
    }
    t.run(&["--version"]);
    t.run(&["no-such-command"]);
    t.check("help.txt");
}
