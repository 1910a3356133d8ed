//! The SQLite store: opening (WAL, foreign keys, mode 0600), the numbered
//! migrations applied at start-up ([`migrations`]), and the queries, one file
//! per subject: districts and their settings ([`tenants`]), keys ([`keys`]),
//! schools ([`schools`]), import history ([`runs`]), users and groups for
//! export and the users import's statements ([`users`]), the change journal's
//! rows ([`journal`]), groups as their import writes them ([`groups`]), the mail outbox ([`outbox`]), status ([`status`]), refused connections and login
//! throttles ([`failures`]), uploads as the scheduler reads them ([`uploads`]).

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;
use thiserror::Error;

mod failures;
mod gauges;
mod groups;
pub mod journal;
mod keys;
mod migrations;
mod outbox;
mod runs;
mod schools;
mod status;
mod tenants;
mod uploads;
mod users;

pub use crate::domain::tenant::Tenant;
pub use failures::*;
pub use gauges::*;
pub use groups::*;
pub use keys::*;
use migrations::MIGRATIONS;
pub use outbox::*;
pub use runs::*;
pub use schools::*;
pub use status::*;
pub use tenants::*;
pub use uploads::*;
pub use users::*;

/// The data directory (the database's folder), the database and the spool
/// of a configuration, as [`check_private`] checks them: `serve` and every
/// support command refuse the same places.
pub fn data_paths(storage: &crate::config::StorageConfig) -> [&Path; 3] {
    let dir = storage
        .database
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    [dir, &storage.database, &storage.spool]
}

/// Refuse a data directory (or database file) that another user owns or
/// that its group or every user may write: whoever can write there can
/// replace uploads, reports and accounts. Paths that do not exist yet are
/// created private later.
pub fn check_private(paths: &[&Path]) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for path in paths {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if let Some(why) = unsafe_ownership(meta.uid(), meta.mode(), me) {
            anyhow::bail!("{} {why}", path.display());
        }
    }
    Ok(())
}

/// What is wrong with a file owned by `uid` with `mode`, for a daemon
/// running as `me`.
fn unsafe_ownership(uid: u32, mode: u32, me: u32) -> Option<String> {
    if uid != me {
        return Some(format!(
            "belongs to user {uid}, but rosterd runs as user {me}; run rosterd as its owner, or `chown -R` the data directory to the user rosterd runs as"
        ));
    }
    if mode & 0o002 != 0 {
        return Some(format!(
            "may be written by every user on this machine (mode {:o}); `chmod o-w` it (rosterd keeps its data at 0700)",
            mode & 0o7777
        ));
    }
    // As OpenSSH's StrictModes: a group that may write there may replace
    // uploads, reports and accounts too.
    if mode & 0o020 != 0 {
        return Some(format!(
            "may be written by its group (mode {:o}, owner user {uid}); `chmod g-w` it (rosterd keeps its data at 0700)",
            mode & 0o7777
        ));
    }
    None
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A time as the store keeps it: RFC 3339, UTC, whole seconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An open database with the schema up to date.
pub struct Store {
    pub conn: Connection,
}

impl Store {
    /// Open (creating with mode 0600 if missing) and migrate the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::private_dir(dir)
                .map_err(|e| anyhow::anyhow!("cannot create directory {}: {e}", dir.display()))?;
        }
        // Create the file ourselves so it is never, even briefly, world-readable;
        // SQLite gives its -wal and -shm files the same mode. Only when it is
        // missing: closing a descriptor of an open database drops every POSIX
        // lock this process holds on it, which would let another process
        // checkpoint under the feet of this one's other connections.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot create database {}: {e}",
                    path.display()
                ));
            }
        }
        let conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
        // SQLite falls back to reading a file it may not write; rosterd would
        // then take uploads it cannot record.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            anyhow::bail!(
                "database {} is read-only for this user; give the user rosterd runs as write access to it and its directory (chown/chmod), or set storage.database",
                path.display()
            );
        }
        let store =
            Self::setup(conn).map_err(|e| anyhow::anyhow!("database {}: {e}", path.display()))?;
        Ok(store)
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<usize> {
        schema_version(&self.conn)
    }

    fn setup(mut conn: Connection) -> Result<Self> {
        const BUSY: std::time::Duration = std::time::Duration::from_secs(10);
        conn.busy_timeout(BUSY)?;
        // SQLite answers some lock upgrades (switching a new database to WAL,
        // one process migrating while another reads) with "database is
        // locked" at once, without waiting: every step below is safe to
        // repeat, so a busy first open tries again until the same timeout.
        let started = std::time::Instant::now();
        loop {
            match Self::prepare(&mut conn) {
                Err(StoreError::Sqlite(e))
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && started.elapsed() < BUSY =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(Self { conn }),
            }
        }
    }

    /// Pragmas and migrations of a newly opened connection.
    fn prepare(conn: &mut Connection) -> Result<()> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // 32 MiB: a million-row import stays under 100 MiB in all (64 MiB
        // measured no faster at 200,000 rows, bench/results/import-ab.md).
        conn.pragma_update(None, "cache_size", -32768)?;
        let version = schema_version(conn)?;
        if version < MIGRATIONS.len() {
            // Under the write lock, reading the version again inside it: two
            // processes opening a new database at once (`serve` starting as
            // support registers a district) migrate it once, one after the
            // other, instead of both applying the same migration.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let version = schema_version(&tx)?;
            for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", index + 1)?;
            }
            tx.commit()?;
        }
        Ok(())
    }
}

/// The database's schema version; an error if it is newer than this
/// rosterd knows.
fn schema_version(conn: &Connection) -> Result<usize> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Conflict(format!(
            "the database is at schema version {version}, newer than this rosterd knows ({}); run a newer rosterd",
            MIGRATIONS.len()
        )));
    }
    Ok(version)
}

/// Undo everything the open transaction did and start afresh, still holding
/// the write lock: a rejected or held import keeps nothing of its rows but
/// records its run under the same guard.
pub fn restart_transaction(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("ROLLBACK; BEGIN IMMEDIATE")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn data_owned_by_others_or_writable_by_all_is_refused() {
        assert_eq!(unsafe_ownership(1000, 0o40700, 1000), None);
        assert_eq!(unsafe_ownership(1000, 0o40750, 1000), None);
        let other = unsafe_ownership(0, 0o40700, 1000).unwrap();
        assert!(
            other.starts_with("belongs to user 0, but rosterd runs as user 1000"),
            "{other}"
        );
        let open = unsafe_ownership(1000, 0o40777, 1000).unwrap();
        assert!(open.contains("(mode 777)"), "{open}");
        let group = unsafe_ownership(1000, 0o40770, 1000).unwrap();
        assert!(
            group.starts_with("may be written by its group (mode 770"),
            "{group}"
        );
    }

    #[test]
    fn creates_private_file_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/rosterd.db");
        let store = Store::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: usize = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len());
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: bool = store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert!(fk);
        drop(store);
        Store::open(&path).unwrap(); // re-open: migrations already applied, no error
    }

    #[test]
    fn sqlite_is_built_without_one_page_cache_mutex_for_all_connections() {
        // .cargo/config.toml undefines this rusqlite default: with it, an
        // import's reading and writing connections queue on one mutex.
        let conn = Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            options.iter().any(|o| o.starts_with("THREADSAFE=")),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }

    #[test]
    fn school_names_clash_case_and_space_insensitively() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let t = NewTenant {
            subdomain: "d1",
            admin_name: "A",
            admin_email: "a@example.org",
            timezone: None,
            sso: false,
            window: None,
        };
        let id = store.add_tenant(&t, Utc::now()).unwrap();
        store
            .add_school(id, "Lincoln  Elementary", Some("062271003230"), None)
            .unwrap();
        assert!(
            store
                .add_school(id, "lincoln elementary", None, None)
                .is_err()
        );
        let clash = store.add_school(id, "Other", Some("062271003230"), None);
        assert!(clash.unwrap_err().to_string().contains("clashes"));
        store
            .add_school(id, "Other", Some("062271003231"), Some("S-1"))
            .unwrap();
        assert_eq!(store.schools(id).unwrap()[0].name, "Lincoln Elementary");
    }
}
