//! Connections that ended without a login, login throttles, and uploads
//! refused for their name, kept for `rosterd status` and `tenant show`.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{Result, timestamp};

/// Connection failures kept per district (and of unknown district).
pub const KEPT_CONNECTION_FAILURES: i64 = 20;

/// One connection that ended without a login.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    keep_newest(
        conn,
        "connection_failures",
        f.tenant_id,
        KEPT_CONNECTION_FAILURES,
    )
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    keep_newest(conn, "login_throttles", t.tenant_id, KEPT_LOGIN_THROTTLES)
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

/// Refused uploads kept per district.
pub const KEPT_REFUSED_UPLOADS: i64 = 10;

/// An upload refused for its name: a district's job writing
/// `users_20261205.csv`, or into a folder, instead of `users.csv`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusedUpload {
    pub tenant_id: i64,
    pub at: String,
    pub address: String,
    /// The path the client gave, made safe to show.
    pub name: String,
    /// `upload` (an open for writing) or `rename`.
    pub action: String,
}

/// Store `r`, keeping only its district's newest [`KEPT_REFUSED_UPLOADS`].
pub fn record_refused_upload(conn: &Connection, r: &RefusedUpload) -> Result<()> {
    conn.execute(
        "INSERT INTO refused_uploads (tenant_id, at, address, name, action) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![r.tenant_id, r.at, r.address, r.name, r.action],
    )?;
    keep_newest(
        conn,
        "refused_uploads",
        Some(r.tenant_id),
        KEPT_REFUSED_UPLOADS,
    )
}

/// A district's newest `limit` refused uploads, newest first.
pub fn refused_uploads(
    conn: &Connection,
    tenant_id: i64,
    limit: i64,
) -> Result<Vec<RefusedUpload>> {
    let mut stmt = conn.prepare(
        "SELECT tenant_id, at, address, name, action FROM refused_uploads
         WHERE tenant_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    stmt.query_map(params![tenant_id, limit], |r| {
        Ok(RefusedUpload {
            tenant_id: r.get(0)?,
            at: r.get(1)?,
            address: r.get(2)?,
            name: r.get(3)?,
            action: r.get(4)?,
        })
    })?
    .collect::<rusqlite::Result<_>>()
    .map_err(Into::into)
}

/// Keep only the newest `kept` rows of `table` (one of this file's tables) for
/// `tenant_id` (`None`: of no district).
fn keep_newest(
    conn: &Connection,
    table: &'static str,
    tenant_id: Option<i64>,
    kept: i64,
) -> Result<()> {
    conn.execute(
        &format!(
            "DELETE FROM {table} WHERE tenant_id IS ?1 AND id <= (
             SELECT id FROM {table} WHERE tenant_id IS ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)"
        ),
        params![tenant_id, kept],
    )?;
    Ok(())
}
