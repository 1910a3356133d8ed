//! The SQLite store: opening (WAL, foreign keys, mode 0600), numbered
//! migrations applied at start-up, and the queries for tenants, keys, schools,
//! column mappings, import history and user export.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

pub use crate::domain::tenant::Tenant;
use crate::keys::AcceptedKey;

/// Schema changes, in order. Entry `i` brings the database from
/// `user_version = i` to `i + 1`; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: tenants, keys, schools, users, import runs and their problems, uploads.
    r#"
    CREATE TABLE tenants (
        id          INTEGER PRIMARY KEY,
        subdomain   TEXT NOT NULL UNIQUE,
        admin_name  TEXT NOT NULL,
        admin_email TEXT NOT NULL,
        timezone    TEXT,
        sso         INTEGER NOT NULL DEFAULT 0,
        window      TEXT,
        disabled    INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE tenant_columns (
        tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
        header_key TEXT NOT NULL,
        header     TEXT NOT NULL,
        field      TEXT NOT NULL,
        PRIMARY KEY (tenant_id, header_key)
    );
    CREATE TABLE ssh_keys (
        id          INTEGER PRIMARY KEY,
        tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
        fingerprint TEXT NOT NULL,
        kind        TEXT NOT NULL,
        bits        INTEGER NOT NULL,
        public_key  TEXT NOT NULL,
        comment     TEXT NOT NULL,
        added_at    TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE UNIQUE INDEX ssh_keys_active ON ssh_keys(fingerprint) WHERE revoked_at IS NULL;
    CREATE INDEX ssh_keys_tenant ON ssh_keys(tenant_id);
    CREATE TABLE schools (
        id        INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name      TEXT NOT NULL,
        name_key  TEXT NOT NULL,
        nces_id   TEXT,
        state_id  TEXT,
        UNIQUE (tenant_id, name_key),
        UNIQUE (tenant_id, nces_id),
        UNIQUE (tenant_id, state_id)
    );
    CREATE TABLE users (
        id              INTEGER PRIMARY KEY,
        tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
        username        TEXT NOT NULL,
        username_key    TEXT NOT NULL UNIQUE,
        email           TEXT,
        first_name      TEXT,
        last_name       TEXT,
        school_id       INTEGER REFERENCES schools(id),
        graduation_year INTEGER,
        access_type     TEXT,
        password_hash   TEXT,
        password_fp     BLOB,
        created_at      INTEGER NOT NULL, -- Unix seconds: users are many, keep rows small
        updated_at      INTEGER NOT NULL
    );
    CREATE INDEX users_tenant ON users(tenant_id);
    CREATE TABLE uploads (
        id              INTEGER PRIMARY KEY,
        tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
        received_at     TEXT NOT NULL,
        size            INTEGER NOT NULL,
        sha256          TEXT NOT NULL,
        remote_addr     TEXT,
        key_fingerprint TEXT,
        path            TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending'
    );
    CREATE INDEX uploads_tenant ON uploads(tenant_id, state);
    CREATE TABLE import_runs (
        id                 INTEGER PRIMARY KEY,
        tenant_id          INTEGER NOT NULL REFERENCES tenants(id),
        kind               TEXT NOT NULL,
        source             TEXT NOT NULL,
        file_name          TEXT NOT NULL,
        size               INTEGER NOT NULL,
        sha256             TEXT NOT NULL,
        upload_id          INTEGER REFERENCES uploads(id),
        started_at         TEXT NOT NULL,
        finished_at        TEXT NOT NULL,
        outcome            TEXT NOT NULL,
        reason             TEXT,
        rows               INTEGER NOT NULL,
        created            INTEGER NOT NULL,
        updated            INTEGER NOT NULL,
        unchanged          INTEGER NOT NULL,
        skipped            INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        warnings           INTEGER NOT NULL,
        problems_truncated INTEGER NOT NULL DEFAULT 0,
        encoding           TEXT
    );
    CREATE INDEX import_runs_tenant ON import_runs(tenant_id, id);
    CREATE TABLE import_problems (
        run_id   INTEGER NOT NULL REFERENCES import_runs(id),
        seq      INTEGER NOT NULL,
        line     INTEGER,
        column   TEXT NOT NULL,
        value    TEXT NOT NULL,
        severity TEXT NOT NULL,
        message  TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    "#,
    // 2: the nightly pipeline. An upload goes pending -> importing -> imported
    // (or superseded by a newer one); its archived copy, passwords blanked, is
    // kept until the retention period ends. The outbox holds every email until
    // it is delivered; `dedupe_key` makes queueing the same email twice a no-op.
    r#"
    ALTER TABLE uploads ADD COLUMN run_id INTEGER REFERENCES import_runs(id);
    ALTER TABLE uploads ADD COLUMN archive TEXT;
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        tenant_id       INTEGER REFERENCES tenants(id),
        dedupe_key      TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        subject         TEXT NOT NULL,
        message         BLOB NOT NULL,
        created_at      TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'queued',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error      TEXT,
        sent_at         TEXT,
        delivered_to    TEXT
    );
    CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
    "#,
    // 3: groups and their members (the manual groups import). A group is
    // named uniquely within its tenant; an owner's default group is marked
    // and keyed by its owner, so its name never clashes with a named group.
    r#"
    CREATE TABLE groups (
        id         INTEGER PRIMARY KEY,
        tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
        name       TEXT NOT NULL,
        name_key   TEXT NOT NULL,
        owner_id   INTEGER REFERENCES users(id),
        is_default INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name_key)
    );
    CREATE UNIQUE INDEX groups_default ON groups(owner_id) WHERE is_default;
    CREATE TABLE group_members (
        group_id INTEGER NOT NULL REFERENCES groups(id),
        user_id  INTEGER NOT NULL REFERENCES users(id),
        PRIMARY KEY (group_id, user_id)
    ) WITHOUT ROWID;
    "#,
    // 4: which file a pending upload is (device and inode of `users.csv`), so
    // a file published just before a crash, over an older pending one, is not
    // mistaken for it.
    r#"
    ALTER TABLE uploads ADD COLUMN file_id TEXT;
    "#,
    // 5: an upload's import attempts (counted when it is taken for import,
    // so an attempt the daemon did not survive counts too), and why it
    // failed when it ends in state `failed` instead of `imported`.
    r#"
    ALTER TABLE uploads ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE uploads ADD COLUMN failure TEXT;
    "#,
    // 6: connections that ended without a login, so support can answer "why
    // did the district's job fail to connect last night?". A district's
    // refused logins, or (tenant_id NULL) failures before any district was
    // named: algorithm negotiation, unknown usernames. The newest few of each
    // are kept (see `record_connection_failure`).
    r#"
    CREATE TABLE connection_failures (
        id        INTEGER PRIMARY KEY,
        tenant_id INTEGER REFERENCES tenants(id),
        at        TEXT NOT NULL,
        address   TEXT NOT NULL,
        username  TEXT,
        reason    TEXT NOT NULL
    );
    CREATE INDEX connection_failures_tenant ON connection_failures(tenant_id, id);
    "#,
    // 7: where a district may connect from: per key (an authorized_keys
    // `from="…"` pattern list, or `key add --from`) and per district
    // (`tenant set --allow-from`), both OpenSSH address pattern lists; NULL
    // is anywhere.
    r#"
    ALTER TABLE ssh_keys ADD COLUMN from_patterns TEXT;
    ALTER TABLE tenants ADD COLUMN allow_from TEXT;
    "#,
    // 8: data safety. Every applied users import journals, per user, what it
    // did: a user it created names it (`users.created_run`); its changes
    // (`updated`, `reactivated`, `deactivated`, an undo's `restored`), each
    // with the previous values of the fields it touched (passwords as their
    // hash only), are stored a batch per `user_changes` row (`entries`, a
    // JSON array, see `import::journal`), so a run can be listed and undone. Users are deactivated, never
    // deleted. A held import's upload waits in state `held` until support
    // approves it (`approved` survives a restart) or discards it; a run's
    // `resolution` says what became of it. Per-district settings: what
    // happens to users a complete file omits (`absent`), hold thresholds
    // (NULL: the config's), and a pause.
    r#"
    ALTER TABLE users ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE users ADD COLUMN created_run INTEGER;
    CREATE TABLE user_changes (
        run_id  INTEGER NOT NULL REFERENCES import_runs(id),
        seq     INTEGER NOT NULL,
        entries TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    ALTER TABLE import_runs ADD COLUMN deactivated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE import_runs ADD COLUMN reactivated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE import_runs ADD COLUMN kept_back INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE import_runs ADD COLUMN resolution TEXT;
    ALTER TABLE import_runs ADD COLUMN undoes INTEGER REFERENCES import_runs(id);
    ALTER TABLE import_runs ADD COLUMN held_changes TEXT;
    ALTER TABLE uploads ADD COLUMN approved INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tenants ADD COLUMN absent TEXT NOT NULL DEFAULT 'keep';
    ALTER TABLE tenants ADD COLUMN hold_update_percent INTEGER;
    ALTER TABLE tenants ADD COLUMN hold_deactivate_percent INTEGER;
    ALTER TABLE tenants ADD COLUMN pause_from TEXT;
    ALTER TABLE tenants ADD COLUMN pause_until TEXT;
    ALTER TABLE tenants ADD COLUMN pause_additions_only INTEGER NOT NULL DEFAULT 0;
    "#,
    // 9: login throttles, so support can tell a district why its job's
    // logins are slow: a district's from one address (tenant_id set), or an
    // address's logins naming no district (tenant_id NULL). One row per
    // district and address, the newest throttle (see `record_login_throttle`).
    r#"
    CREATE TABLE login_throttles (
        id             INTEGER PRIMARY KEY,
        tenant_id      INTEGER REFERENCES tenants(id),
        address        TEXT NOT NULL,
        failures       INTEGER NOT NULL,
        window_seconds INTEGER NOT NULL,
        tried          TEXT NOT NULL,
        since          TEXT NOT NULL,
        until          TEXT NOT NULL
    );
    CREATE INDEX login_throttles_tenant ON login_throttles(tenant_id, until);
    "#,
];

/// What `add_keys` did with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAdded {
    New,
    /// Registered already, with the same address restriction.
    Already,
    /// Registered already; its address restriction is now the one given.
    FromChanged,
}

/// Connection failures kept per district (and of unknown district).
pub const KEPT_CONNECTION_FAILURES: i64 = 20;

/// One connection that ended without a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFailure {
    pub tenant_id: Option<i64>,
    pub at: String,
    pub address: String,
    pub username: Option<String>,
    pub reason: String,
}

/// Store `f`, keeping only the newest [`KEPT_CONNECTION_FAILURES`] of its
/// district (or of the unknown district).
pub fn record_connection_failure(conn: &Connection, f: &ConnectionFailure) -> Result<()> {
    conn.execute(
        "INSERT INTO connection_failures (tenant_id, at, address, username, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![f.tenant_id, f.at, f.address, f.username, f.reason],
    )?;
    conn.execute(
        "DELETE FROM connection_failures WHERE tenant_id IS ?1 AND id <= (
             SELECT id FROM connection_failures WHERE tenant_id IS ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![f.tenant_id, KEPT_CONNECTION_FAILURES],
    )?;
    Ok(())
}

/// The newest `limit` failures of a district (`None`: of no known district),
/// newest first.
pub fn connection_failures(
    conn: &Connection,
    tenant_id: Option<i64>,
    limit: i64,
) -> Result<Vec<ConnectionFailure>> {
    let mut stmt = conn.prepare(
        "SELECT tenant_id, at, address, username, reason FROM connection_failures
         WHERE tenant_id IS ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    stmt.query_map(params![tenant_id, limit], |r| {
        Ok(ConnectionFailure {
            tenant_id: r.get(0)?,
            at: r.get(1)?,
            address: r.get(2)?,
            username: r.get(3)?,
            reason: r.get(4)?,
        })
    })?
    .collect::<rusqlite::Result<_>>()
    .map_err(Into::into)
}

/// A district's logins from one address (or an address's logins naming no
/// district, `tenant_id` `None`) throttled after repeated failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginThrottle {
    pub tenant_id: Option<i64>,
    pub address: String,
    /// Failed connections: those that began the throttle, and any since.
    pub failures: i64,
    pub window_seconds: i64,
    /// Key fingerprints (a district's) or usernames (an address's) tried.
    pub tried: String,
    pub since: String,
    pub until: String,
}

/// Throttles kept per district (and of no district), newest first.
pub const KEPT_LOGIN_THROTTLES: i64 = 20;

/// Store `t` as the throttle of its district and address (replacing an
/// earlier one of the same pair), keeping the newest
/// [`KEPT_LOGIN_THROTTLES`] of its district.
pub fn record_login_throttle(conn: &Connection, t: &LoginThrottle) -> Result<()> {
    conn.execute(
        "DELETE FROM login_throttles WHERE tenant_id IS ?1 AND address = ?2",
        params![t.tenant_id, t.address],
    )?;
    conn.execute(
        "INSERT INTO login_throttles (tenant_id, address, failures, window_seconds, tried, since, until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.tenant_id,
            t.address,
            t.failures,
            t.window_seconds,
            t.tried,
            t.since,
            t.until
        ],
    )?;
    conn.execute(
        "DELETE FROM login_throttles WHERE tenant_id IS ?1 AND id <= (
             SELECT id FROM login_throttles WHERE tenant_id IS ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![t.tenant_id, KEPT_LOGIN_THROTTLES],
    )?;
    Ok(())
}

/// A district's throttles (`None`: addresses' throttles of unnamed logins)
/// still in force at `now`, newest first.
pub fn login_throttles(
    conn: &Connection,
    tenant_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Vec<LoginThrottle>> {
    let mut stmt = conn.prepare(
        "SELECT tenant_id, address, failures, window_seconds, tried, since, until FROM login_throttles
         WHERE tenant_id IS ?1 AND until > ?2 ORDER BY id DESC",
    )?;
    stmt.query_map(params![tenant_id, timestamp(now)], |r| {
        Ok(LoginThrottle {
            tenant_id: r.get(0)?,
            address: r.get(1)?,
            failures: r.get(2)?,
            window_seconds: r.get(3)?,
            tried: r.get(4)?,
            since: r.get(5)?,
            until: r.get(6)?,
        })
    })?
    .collect::<rusqlite::Result<_>>()
    .map_err(Into::into)
}

/// Refuse to serve from a data directory (or database file) that another
/// user owns or that every user may write: whoever can write there can
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

    fn setup(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // 32 MiB: a million-row import stays under 100 MiB in all (64 MiB
        // measured no faster at 200,000 rows, bench/results/import-ab.md).
        conn.pragma_update(None, "cache_size", -32768)?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() {
            return Err(StoreError::Conflict(format!(
                "the database is at schema version {version}, newer than this rosterd knows ({}); run a newer rosterd",
                MIGRATIONS.len()
            )));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index + 1)?;
            tx.commit()?;
        }
        Ok(Self { conn })
    }
}

pub struct NewTenant<'a> {
    pub subdomain: &'a str,
    pub admin_name: &'a str,
    pub admin_email: &'a str,
    pub timezone: Option<&'a str>,
    pub sso: bool,
    pub window: Option<&'a str>,
}

const TENANT_COLUMNS: &str = "id, subdomain, admin_name, admin_email, timezone, sso, window, disabled, created_at,
    absent, hold_update_percent, hold_deactivate_percent, pause_from, pause_until, pause_additions_only";

fn tenant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        subdomain: r.get(1)?,
        admin_name: r.get(2)?,
        admin_email: r.get(3)?,
        timezone: r.get(4)?,
        sso: r.get(5)?,
        window: r.get(6)?,
        disabled: r.get(7)?,
        created_at: r.get(8)?,
        absent: if r.get_ref(9)?.as_str()? == "deactivate" {
            crate::domain::safety::Absent::Deactivate
        } else {
            crate::domain::safety::Absent::Keep
        },
        hold_update_percent: r.get(10)?,
        hold_deactivate_percent: r.get(11)?,
        pause: crate::domain::safety::Pause::from_columns(r.get(12)?, r.get(13)?, r.get(14)?),
    })
}

/// Store the district's full-sync choice.
pub fn set_absent(
    conn: &Connection,
    tenant_id: i64,
    absent: crate::domain::safety::Absent,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE tenants SET absent = ?2 WHERE id = ?1",
        params![tenant_id, absent.as_str()],
    )?;
    Ok(())
}

/// Store the district's hold thresholds; `None` leaves one as it is,
/// `Some(None)` returns it to the config's.
pub fn set_hold_limits(
    conn: &Connection,
    tenant_id: i64,
    update: Option<Option<u8>>,
    deactivate: Option<Option<u8>>,
) -> rusqlite::Result<()> {
    if let Some(v) = update {
        conn.execute(
            "UPDATE tenants SET hold_update_percent = ?2 WHERE id = ?1",
            params![tenant_id, v],
        )?;
    }
    if let Some(v) = deactivate {
        conn.execute(
            "UPDATE tenants SET hold_deactivate_percent = ?2 WHERE id = ?1",
            params![tenant_id, v],
        )?;
    }
    Ok(())
}

/// Store (or with `None`, end) the district's pause.
pub fn set_pause(
    conn: &Connection,
    tenant_id: i64,
    pause: Option<crate::domain::safety::Pause>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE tenants SET pause_from = ?2, pause_until = ?3, pause_additions_only = ?4 WHERE id = ?1",
        params![
            tenant_id,
            pause.map(|p| p.from.to_string()),
            pause.map(|p| p.until.to_string()),
            pause.is_some_and(|p| p.additions_only)
        ],
    )?;
    Ok(())
}

/// A registered SSH key.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub fingerprint: String,
    pub kind: String,
    pub bits: u32,
    pub comment: String,
    pub added_at: String,
    pub revoked_at: Option<String>,
    /// Where it may log in from (OpenSSH pattern list); `None`: anywhere.
    pub from: Option<String>,
}

/// A school of a tenant.
#[derive(Debug, Clone)]
pub struct School {
    pub id: i64,
    pub name: String,
    pub nces_id: Option<String>,
    pub state_id: Option<String>,
}

/// The key schools are matched by name on: case- and space-insensitive.
pub fn school_name_key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// One import as `rosterd runs` lists it.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: i64,
    pub kind: String,
    pub source: String,
    pub file_name: String,
    pub size: i64,
    pub finished_at: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub rows: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub skipped: i64,
    pub errors: i64,
    pub warnings: i64,
    /// What became of it: a held run approved, discarded or superseded, a
    /// run undone (or redone).
    pub resolution: Option<String>,
}

impl Store {
    pub fn add_tenant(&self, t: &NewTenant<'_>, now: DateTime<Utc>) -> Result<i64> {
        if self.tenant(t.subdomain)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "tenant {} already exists",
                t.subdomain
            )));
        }
        self.conn.execute(
            "INSERT INTO tenants (subdomain, admin_name, admin_email, timezone, sso, window, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![t.subdomain, t.admin_name, t.admin_email, t.timezone, t.sso, t.window, timestamp(now)],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn tenant(&self, subdomain: &str) -> Result<Option<Tenant>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE subdomain = ?1"),
                [subdomain],
                tenant_row,
            )
            .optional()?)
    }

    /// The tenant, or a NotFound error that tells support how to list them.
    pub fn require_tenant(&self, subdomain: &str) -> Result<Tenant> {
        self.tenant(subdomain)?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no tenant {subdomain:?}; `rosterd tenant list` shows them"
            ))
        })
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>> {
        Self::tenants_of(&self.conn)
    }

    /// Every tenant, on any connection.
    pub fn tenants_of(conn: &Connection) -> Result<Vec<Tenant>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY subdomain"
        ))?;
        let rows = stmt
            .query_map([], tenant_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub fn set_disabled(&self, tenant_id: i64, disabled: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE tenants SET disabled = ?2 WHERE id = ?1",
            params![tenant_id, disabled],
        )?;
        Ok(())
    }

    /// Change the settings `tenant set` may change; `None` leaves one as it is.
    /// Where the district's keys may log in from (an OpenSSH address
    /// pattern list), on top of each key's own `from`; `None`: anywhere.
    pub fn set_allow_from(&self, tenant_id: i64, list: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE tenants SET allow_from = ?2 WHERE id = ?1",
            params![tenant_id, list],
        )?;
        Ok(())
    }

    pub fn allow_from(&self, tenant_id: i64) -> Result<Option<String>> {
        Ok(self.conn.query_row(
            "SELECT allow_from FROM tenants WHERE id = ?1",
            [tenant_id],
            |r| r.get(0),
        )?)
    }

    pub fn update_tenant(
        &self,
        tenant_id: i64,
        admin_name: Option<&str>,
        admin_email: Option<&str>,
        timezone: Option<Option<&str>>,
        sso: Option<bool>,
        window: Option<Option<&str>>,
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        if let Some(v) = admin_name {
            tx.execute(
                "UPDATE tenants SET admin_name = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        if let Some(v) = admin_email {
            tx.execute(
                "UPDATE tenants SET admin_email = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        if let Some(v) = timezone {
            tx.execute(
                "UPDATE tenants SET timezone = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        if let Some(v) = sso {
            tx.execute(
                "UPDATE tenants SET sso = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        if let Some(v) = window {
            tx.execute(
                "UPDATE tenants SET window = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The tenant's stored column mapping: (header as written, field name).
    pub fn column_map(&self, tenant_id: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT header, field FROM tenant_columns WHERE tenant_id = ?1 ORDER BY header_key",
        )?;
        let rows = stmt
            .query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub fn set_column(
        &self,
        tenant_id: i64,
        header_key: &str,
        header: &str,
        field: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO tenant_columns (tenant_id, header_key, header, field) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id, header_key) DO UPDATE SET header = excluded.header, field = excluded.field",
            params![tenant_id, header_key, header, field],
        )?;
        Ok(())
    }

    /// Remove one mapping; false if there was none.
    pub fn remove_column(&self, tenant_id: i64, header_key: &str) -> Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM tenant_columns WHERE tenant_id = ?1 AND header_key = ?2",
            params![tenant_id, header_key],
        )?;
        Ok(n > 0)
    }

    /// Register keys for a tenant, all or none. A key active for another tenant is
    /// a conflict; one already active for this tenant is reported, not duplicated.
    /// Returns, per key, whether it was newly added.
    pub fn add_keys(
        &self,
        tenant: &Tenant,
        keys: &[AcceptedKey],
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyAdded>> {
        let tx = self.conn.unchecked_transaction()?;
        let mut added = Vec::new();
        for key in keys {
            let owner: Option<(String, i64, Option<String>)> = tx
                .query_row(
                    "SELECT t.subdomain, k.id, k.from_patterns FROM ssh_keys k JOIN tenants t ON t.id = k.tenant_id
                     WHERE k.fingerprint = ?1 AND k.revoked_at IS NULL",
                    [&key.fingerprint],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            match owner {
                Some((owner, _, from)) if owner == tenant.subdomain && from == key.from => {
                    added.push(KeyAdded::Already)
                }
                Some((owner, id, _)) if owner == tenant.subdomain => {
                    tx.execute(
                        "UPDATE ssh_keys SET from_patterns = ?2 WHERE id = ?1",
                        params![id, key.from],
                    )?;
                    added.push(KeyAdded::FromChanged);
                }
                Some((owner, _, _)) => {
                    return Err(StoreError::Conflict(format!(
                        "key {} is already registered to tenant {owner}; a key may belong to one tenant only. Ask the district for a key of its own",
                        key.fingerprint
                    )));
                }
                None => {
                    tx.execute(
                        "INSERT INTO ssh_keys (tenant_id, fingerprint, kind, bits, public_key, comment, added_at, from_patterns)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            tenant.id,
                            key.fingerprint,
                            key.kind,
                            key.bits,
                            key.openssh_line(),
                            key.comment,
                            timestamp(now),
                            key.from
                        ],
                    )?;
                    added.push(KeyAdded::New);
                }
            }
        }
        tx.commit()?;
        Ok(added)
    }

    pub fn keys(&self, tenant_id: i64) -> Result<Vec<KeyRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT fingerprint, kind, bits, comment, added_at, revoked_at, from_patterns FROM ssh_keys
             WHERE tenant_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([tenant_id], |r| {
                Ok(KeyRow {
                    fingerprint: r.get(0)?,
                    kind: r.get(1)?,
                    bits: r.get(2)?,
                    comment: r.get(3)?,
                    added_at: r.get(4)?,
                    revoked_at: r.get(5)?,
                    from: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Revoke an active key of the tenant; false if it has no such key.
    pub fn revoke_key(
        &self,
        tenant_id: i64,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE ssh_keys SET revoked_at = ?3 WHERE tenant_id = ?1 AND fingerprint = ?2 AND revoked_at IS NULL",
            params![tenant_id, fingerprint, timestamp(now)],
        )?;
        Ok(n > 0)
    }

    /// Add a school; a name, NCES ID or state ID the tenant already uses is a conflict.
    pub fn add_school(
        &self,
        tenant_id: i64,
        name: &str,
        nces: Option<&str>,
        state: Option<&str>,
    ) -> Result<i64> {
        add_school_in(&self.conn, tenant_id, name, nces, state)
    }

    pub fn schools(&self, tenant_id: i64) -> Result<Vec<School>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, nces_id, state_id FROM schools WHERE tenant_id = ?1 ORDER BY name_key")?;
        let rows = stmt
            .query_map([tenant_id], |r| {
                Ok(School {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    nces_id: r.get(2)?,
                    state_id: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The newest runs of a tenant, newest first.
    pub fn runs(&self, tenant_id: i64, limit: u32) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, source, file_name, size, finished_at, outcome, reason, rows, created, updated,
                    unchanged, skipped, errors, warnings, resolution
             FROM import_runs WHERE tenant_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![tenant_id, limit], |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    source: r.get(2)?,
                    file_name: r.get(3)?,
                    size: r.get(4)?,
                    finished_at: r.get(5)?,
                    outcome: r.get(6)?,
                    reason: r.get(7)?,
                    rows: r.get(8)?,
                    created: r.get(9)?,
                    updated: r.get(10)?,
                    unchanged: r.get(11)?,
                    skipped: r.get(12)?,
                    errors: r.get(13)?,
                    warnings: r.get(14)?,
                    resolution: r.get(15)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Stream the tenant's users, sorted by username, to `each`.
    pub fn for_each_user(
        &self,
        tenant_id: i64,
        mut each: impl FnMut(ExportedUser) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT u.username, u.email, u.first_name, u.last_name, s.name, u.graduation_year, u.access_type,
                    u.active
             FROM users u LEFT JOIN schools s ON s.id = u.school_id
             WHERE u.tenant_id = ?1 ORDER BY u.username_key",
        )?;
        let mut rows = stmt.query([tenant_id])?;
        while let Some(r) = rows.next()? {
            each(ExportedUser {
                username: r.get(0)?,
                email: r.get(1)?,
                first_name: r.get(2)?,
                last_name: r.get(3)?,
                school: r.get(4)?,
                graduation_year: r.get(5)?,
                access_type: r.get(6)?,
                active: r.get(7)?,
            })?;
        }
        Ok(())
    }
}

/// One row of `groups export`.
pub struct Membership {
    pub group: String,
    pub owner: Option<String>,
    /// `None` for a group without members.
    pub member: Option<String>,
}

/// Every group of a tenant with its members, by group and member; a group
/// without members once, with no member.
pub fn group_memberships(conn: &Connection, tenant_id: i64) -> Result<Vec<Membership>> {
    let mut stmt = conn.prepare(
        "SELECT g.name, o.username, u.username FROM groups g
         LEFT JOIN users o ON o.id = g.owner_id
         LEFT JOIN group_members m ON m.group_id = g.id
         LEFT JOIN users u ON u.id = m.user_id
         WHERE g.tenant_id = ?1 ORDER BY lower(g.name), g.id, u.username_key",
    )?;
    let rows = stmt
        .query_map([tenant_id], |r| {
            Ok(Membership {
                group: r.get(0)?,
                owner: r.get(1)?,
                member: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// What `rosterd status` shows of one tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantStatus {
    /// (received at, size, state) of the newest upload.
    pub last_upload: Option<(String, i64, String)>,
    /// (finished at, outcome, created, updated, errors) of the newest run.
    pub last_run: Option<(String, String, i64, i64, i64)>,
    /// Received time of the upload waiting for (or in) import.
    pub pending_since: Option<String>,
    pub mail_queued: i64,
    /// (upload id, received at, attempts, why) of the newest upload rosterd
    /// gave up importing, if no upload imported since.
    pub failed: Option<(i64, String, i64, String)>,
}

pub fn tenant_status(conn: &Connection, tenant_id: i64) -> Result<TenantStatus> {
    Ok(TenantStatus {
        last_upload: conn
            .query_row(
                "SELECT received_at, size, state FROM uploads WHERE tenant_id = ?1 ORDER BY id DESC LIMIT 1",
                [tenant_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?,
        last_run: conn
            .query_row(
                "SELECT finished_at, outcome, created, updated, errors FROM import_runs
                 WHERE tenant_id = ?1 ORDER BY id DESC LIMIT 1",
                [tenant_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?,
        pending_since: conn.query_row(
            "SELECT min(received_at) FROM uploads WHERE tenant_id = ?1 AND state IN ('pending', 'importing')",
            [tenant_id],
            |r| r.get(0),
        )?,
        mail_queued: conn.query_row(
            "SELECT count(*) FROM outbox WHERE tenant_id = ?1 AND state = 'queued'",
            [tenant_id],
            |r| r.get(0),
        )?,
        failed: conn
            .query_row(
                "SELECT id, received_at, attempts, coalesce(failure, '') FROM uploads
                 WHERE tenant_id = ?1 AND state = 'failed'
                   AND id > coalesce((SELECT max(id) FROM uploads WHERE tenant_id = ?1 AND state = 'imported'), 0)
                 ORDER BY id DESC LIMIT 1",
                [tenant_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?,
    })
}

/// Rebuild the full report of a stored run, for `rosterd runs SUB --id N`.
pub fn load_report(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
) -> anyhow::Result<crate::domain::report::Report> {
    use crate::domain::report::{Counts, Outcome, Problem, Report, Severity};
    let mut report = conn
        .query_row(
            "SELECT r.kind, r.file_name, r.size, r.sha256, r.encoding, r.started_at, r.finished_at, r.outcome,
                    r.reason, r.rows, r.created, r.updated, r.unchanged, r.skipped, r.errors, r.warnings,
                    r.problems_truncated, t.subdomain, r.deactivated, r.reactivated, r.kept_back
             FROM import_runs r JOIN tenants t ON t.id = r.tenant_id WHERE r.tenant_id = ?1 AND r.id = ?2",
            params![tenant_id, run_id],
            |r| {
                let outcome = match r.get::<_, String>(7)?.as_str() {
                    "applied" => Outcome::Applied,
                    "applied_with_errors" => Outcome::AppliedWithErrors,
                    "unchanged" => Outcome::Unchanged,
                    "held" => Outcome::Held,
                    _ => Outcome::Rejected,
                };
                let kind = match r.get_ref(0)?.as_str()? {
                    "groups" => "groups",
                    "undo" => "undo",
                    _ => "users",
                };
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                Ok(Report {
                    tenant: r.get(17)?,
                    kind,
                    file_name: r.get(1)?,
                    size: n(2)?,
                    sha256: r.get(3)?,
                    encoding: r.get(4)?,
                    started_at: r.get(5)?,
                    finished_at: r.get(6)?,
                    dry_run: false,
                    outcome,
                    reason: r.get(8)?,
                    counts: Counts {
                        rows: n(9)?,
                        created: n(10)?,
                        updated: n(11)?,
                        unchanged: n(12)?,
                        skipped: n(13)?,
                        errors: n(14)?,
                        warnings: n(15)?,
                        deactivated: n(18)?,
                        reactivated: n(19)?,
                        kept_back: n(20)?,
                    },
                    problems: Vec::new(),
                    problems_truncated: n(16)?,
                    problem_bytes: 0,
                    run_id: Some(run_id),
                })
            },
        )
        .optional()?
        .ok_or_else(|| anyhow::anyhow!("no run {run_id} for this tenant; `rosterd runs SUB` lists them"))?;
    let mut stmt = conn.prepare(
        "SELECT line, column, value, severity, message FROM import_problems WHERE run_id = ?1 ORDER BY seq",
    )?;
    let problems = stmt.query_map([run_id], |r| {
        Ok(Problem {
            line: r.get::<_, Option<i64>>(0)?.map(|l| l as u64),
            column: r.get(1)?,
            value: r.get(2)?,
            severity: if r.get::<_, String>(3)? == "warning" {
                Severity::Warning
            } else {
                Severity::Error
            },
            message: r.get(4)?,
        }
        // Runs stored by versions that kept values whole are shown safely too.
        .made_safe())
    })?;
    report.problems = problems.collect::<rusqlite::Result<_>>()?;
    report.reason = report
        .reason
        .map(|r| crate::domain::text::echo(&r, crate::domain::text::MESSAGE_CHARS).into_owned());
    Ok(report)
}

/// A user as `users export` shows it; never a password.
pub struct ExportedUser {
    pub username: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub school: Option<String>,
    pub graduation_year: Option<i32>,
    pub access_type: Option<String>,
    /// Not deactivated (full sync, or an undone creation).
    pub active: bool,
}

/// `add_school` on any connection or transaction, so `school import` can add a
/// whole file in one transaction.
pub fn add_school_in(
    conn: &Connection,
    tenant_id: i64,
    name: &str,
    nces: Option<&str>,
    state: Option<&str>,
) -> Result<i64> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err(StoreError::Conflict("a school needs a name".into()));
    }
    let clash: Option<String> = conn
        .query_row(
            "SELECT name FROM schools WHERE tenant_id = ?1
             AND (name_key = ?2 OR (?3 IS NOT NULL AND nces_id = ?3) OR (?4 IS NOT NULL AND state_id = ?4))",
            params![tenant_id, school_name_key(&name), nces, state],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(existing) = clash {
        return Err(StoreError::Conflict(format!(
            "school {name:?} clashes with existing school {existing:?}: names, NCES IDs and state IDs must be unique within a tenant"
        )));
    }
    conn.execute(
        "INSERT INTO schools (tenant_id, name, name_key, nces_id, state_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![tenant_id, name, school_name_key(&name), nces, state],
    )?;
    Ok(conn.last_insert_rowid())
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
            .add_school(id, "Lincoln  Elementary", Some("123"), None)
            .unwrap();
        assert!(
            store
                .add_school(id, "lincoln elementary", None, None)
                .is_err()
        );
        assert!(store.add_school(id, "Other", Some("123"), None).is_err());
        store
            .add_school(id, "Other", Some("456"), Some("S-1"))
            .unwrap();
        assert_eq!(store.schools(id).unwrap()[0].name, "Lincoln Elementary");
    }
}
