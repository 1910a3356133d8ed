//! Shared set-up: a fresh temp directory with its own config, database and key
//! paths; running the real binary in it; in-process imports with a fixed clock.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rosterd::clock::FixedClock;
use rosterd::import::{ImportContext, ImportOptions, Report, Source};
use rosterd::password::Fingerprinter;
use rosterd::store::{NewTenant, Store, Tenant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rosterd");

/// One isolated rosterd installation in a temp directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    /// A new installation: its configuration, and the database `rosterd
    /// init` creates.
    pub fn new() -> Self {
        let env = Self::bare();
        env.ok(&["init"]);
        env
    }

    /// Only the configuration file: no database yet.
    pub fn bare() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("rosterd.toml");
        std::fs::write(
            &config,
            "[storage]\ndatabase = \"data/rosterd.db\"\nspool = \"data/spool\"\nfingerprint_key = \"data/fp.key\"\n\
             [server]\nhost_key = \"keys/host\"\n[schedule]\ntimezone = \"America/New_York\"\n",
        )
        .expect("write config");
        Self { dir, config }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db_path(&self) -> PathBuf {
        self.path("data/rosterd.db")
    }

    /// Write a file into the temp dir and return its path.
    pub fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write fixture");
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(["--config", self.config.to_str().expect("utf-8 path")])
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("ROSTERD_CONFIG")
            .env_remove("ROSTERD_NOW")
            .env("ROSTERD_LOG", "warn")
            .stdin(Stdio::null());
        c
    }

    /// Run the binary; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().expect("run rosterd");
        decode(out)
    }

    /// Run the binary, expecting exit 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code, 0,
            "rosterd {args:?} failed:\nstdout: {out}\nstderr: {err}"
        );
        out
    }

    /// A tenant registered through the CLI, with two schools.
    pub fn tenant(&self, sub: &str) {
        self.ok(&[
            "tenant",
            "add",
            sub,
            "--admin-name",
            "Ann Lee",
            "--admin-email",
            "ann@example.org",
        ]);
        self.ok(&[
            "school",
            "add",
            sub,
            "--name",
            "Lincoln Elementary",
            "--nces",
            "062271003230",
            "--state-id",
            "CA-123",
        ]);
        self.ok(&["school", "add", sub, "--name", "Lincoln High"]);
    }

    pub fn store(&self) -> Store {
        Store::open(&self.db_path()).expect("open store")
    }

    /// SQLite's own check of the whole database file.
    pub fn assert_integrity(&self) {
        let integrity: String = self
            .store()
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(integrity, "ok");
    }

    /// Import in-process at `now`, as the CLI would.
    pub fn import_at(&self, sub: &str, file: &Path, now: DateTime<Utc>, dry_run: bool) -> Report {
        let mut store = self.store();
        let tenant = store.require_tenant(sub).expect("tenant");
        let ctx = context(self, now);
        let opts = options(file, dry_run);
        let report = rosterd::import::users::import(&mut store.conn, &ctx, &tenant, file, &opts)
            .expect("import ran");
        let fk: bool = store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .expect("foreign_keys");
        assert!(fk, "the import turns foreign-key enforcement back on");
        report
    }

    pub fn import(&self, sub: &str, file: &Path) -> Report {
        self.import_at(sub, file, "2026-11-21T12:00:00Z".parse().unwrap(), false)
    }

    /// Stored users of a tenant via the CLI's export.
    pub fn export(&self, sub: &str) -> String {
        self.ok(&["users", "export", sub])
    }

    pub fn user_count(&self) -> i64 {
        self.store()
            .conn
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap()
    }
}

pub fn context(env: &Env, now: DateTime<Utc>) -> ImportContext {
    ImportContext {
        clock: Arc::new(FixedClock::new(now)),
        fingerprinter: Fingerprinter::load_or_create(&env.path("data/fp.key"))
            .expect("fingerprint key"),
        default_timezone: chrono_tz::America::New_York,
        composer: rosterd::mail::Composer::new("Rostering <rostering@localhost>")
            .expect("from address"),
    }
}

pub fn options(file: &Path, dry_run: bool) -> ImportOptions {
    ImportOptions {
        dry_run,
        force: false,
        source: Source::Cli,
        upload_id: None,
        file_name: file.file_name().unwrap().to_string_lossy().into_owned(),
        email: false,
        holds: None,
        additions_only: false,
        notes: Vec::new(),
        generate_passwords: false,
        passwords_out: None,
    }
}

pub fn decode(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Add a tenant directly through the store (for in-process tests).
pub fn add_tenant(store: &Store, sub: &str, sso: bool, tz: Option<&str>) -> Tenant {
    store
        .add_tenant(
            &NewTenant {
                subdomain: sub,
                admin_name: "A",
                admin_email: "a@example.org",
                timezone: tz,
                sso,
                window: None,
            },
            Utc::now(),
        )
        .expect("add tenant");
    store.require_tenant(sub).expect("tenant")
}

/// `ssh-keygen`, which every test machine must have (`.ci/run` installs
/// openssh-client); a missing tool fails the test loudly.
pub fn ssh_keygen(args: &[&str]) -> Output {
    let out = Command::new("ssh-keygen")
        .args(args)
        .output()
        .expect("ssh-keygen must be installed (apt-get install openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under `dir`, recursively, in no particular order.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
