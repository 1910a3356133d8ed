//! Which configuration and database a command uses: found as operators
//! expect, named in `status` and `--help`, and never a new database created
//! by a support command run in the wrong place.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::helpers::{BIN, Env, decode};

/// The binary in `dir` with no `--config` and the given environment value.
fn bare(dir: &Path, env_config: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_remove("ROSTERD_CONFIG")
        .env_remove("ROSTERD_NOW")
        .env("ROSTERD_LOG", "warn")
        .stdin(Stdio::null());
    if let Some(path) = env_config {
        c.env("ROSTERD_CONFIG", path);
    }
    decode(c.output().expect("run rosterd"))
}

fn config_with_database(path: &Path, database: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("[storage]\ndatabase = \"{database}\"\n")).unwrap();
}

#[test]
fn support_commands_refuse_a_missing_database_naming_its_absolute_path() {
    let env = Env::bare();
    let db = env.db_path();
    let key = env.path("k");
    crate::helpers::ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]);
    let pubkey = format!("{}.pub", key.display());
    let attempts: [&[&str]; 5] = [
        &["status"],
        &[
            "tenant",
            "add",
            "lincoln",
            "--admin-name",
            "Ann",
            "--admin-email",
            "a@example.org",
        ],
        &["key", "add", "lincoln", &pubkey],
        &["school", "list", "lincoln"],
        &["runs", "lincoln"],
    ];
    for args in attempts {
        let (code, out, err) = env.run(args);
        assert_eq!(code, 1, "rosterd {args:?}: {out}{err}");
        assert!(
            err.contains(&format!("no database at {}", db.display())),
            "rosterd {args:?} names the absolute path it looked for: {err}"
        );
        assert!(err.contains("rosterd init"), "and how to create one: {err}");
        assert!(
            err.contains("--config PATH"),
            "and how to point elsewhere: {err}"
        );
        assert!(!db.exists(), "rosterd {args:?} created {}", db.display());
        assert!(!db.parent().unwrap().exists(), "nor its directory");
    }

    let out = env.ok(&["init"]);
    assert!(
        out.contains(&format!("database       {} (created", db.display())),
        "{out}"
    );
    assert!(db.exists());
    env.tenant("lincoln");
    let out = env.ok(&["init"]);
    assert!(out.contains("exists already; nothing changed"), "{out}");
    assert!(
        env.ok(&["tenant", "list"]).contains("lincoln"),
        "init kept the district"
    );
}

#[test]
fn the_configuration_is_found_in_the_documented_order_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let system = Path::new(rosterd::config::SYSTEM_PATH);

    // Nothing here: the embedded defaults (or the system file, if this
    // machine has one), and the default database path under the working directory.
    let (code, out, err) = bare(&root, None, &["init"]);
    assert_eq!(code, 0, "{err}");
    if system.exists() {
        assert!(
            out.contains(&format!("{} (found)", system.display())),
            "{out}"
        );
    } else {
        assert!(out.contains("configuration  embedded defaults"), "{out}");
        assert!(
            out.contains(&format!(
                "database       {}/data/rosterd.db",
                root.display()
            )),
            "{out}"
        );
    }

    // config/rosterd.toml in the working directory comes before the system file.
    config_with_database(&root.join("config/rosterd.toml"), "found.db");
    let (code, out, err) = bare(&root, None, &["status"]);
    assert_eq!(code, 1, "found.db does not exist yet: {out}{err}");
    assert!(
        err.contains(&format!("no database at {}/found.db", root.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}/config/rosterd.toml (found)", root.display())),
        "the message names the configuration it read: {err}"
    );
    let (code, out, _) = bare(&root, None, &["init"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("{}/found.db (created", root.display())),
        "{out}"
    );
    let (_, out, _) = bare(&root, None, &["status"]);
    assert!(
        out.starts_with(&format!(
            "configuration  {root}/config/rosterd.toml (found)\ndatabase       {root}/found.db\n",
            root = root.display()
        )),
        "{out}"
    );

    // ROSTERD_CONFIG comes before the file found here.
    let env_file = root.join("env.toml");
    config_with_database(&env_file, "env.db");
    let (_, out, _) = bare(&root, Some(&env_file), &["init"]);
    assert!(
        out.contains(&format!(
            "{}/env.toml (from ROSTERD_CONFIG)",
            root.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}/env.db (created", root.display())),
        "{out}"
    );

    // --config comes before ROSTERD_CONFIG, and --help says what is in use.
    let flag_file = root.join("flag.toml");
    config_with_database(&flag_file, "flag.db");
    let (code, out, _) = bare(&root, Some(&env_file), &["--config", "flag.toml", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "In use here:\n  configuration  {root}/flag.toml (from --config)\n  database       {root}/flag.db",
            root = root.display()
        )),
        "{out}"
    );
    let (_, out, _) = bare(&root, Some(&env_file), &["--help"]);
    assert!(
        out.contains(&format!("database       {}/env.db", root.display())),
        "{out}"
    );

    // A named file that does not exist is an error, never the defaults.
    let (code, _, err) = bare(&root, Some(&root.join("missing.toml")), &["status"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "cannot read config file {}/missing.toml",
            root.display()
        )),
        "{err}"
    );
}

#[test]
fn host_key_outside_an_installation_makes_no_keys() {
    let env = Env::bare();
    let (code, out, err) = env.run(&["host-key"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("no database at") && err.contains("rosterd init"),
        "{err}"
    );
    assert!(
        !env.path("keys").exists(),
        "no keys made where no installation is"
    );
}

#[test]
fn a_configuration_read_from_a_pipe_is_read_once_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!("{BIN} --config <(printf '[storage]\\ndatabase = \"piped.db\"\\n') init");
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env_remove("ROSTERD_CONFIG")
        .output()
        .unwrap();
    let (code, stdout, stderr) = decode(out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("piped.db (created"), "{stdout}");
    assert!(dir.path().join("piped.db").exists());
    assert!(
        !dir.path().join("data").exists(),
        "not the defaults' database"
    );
}
