//! Uploads as the scheduler reads them: whether a district has an import to
//! finish or a pending file, its delivery history around a night, one
//! upload's size and hash, and why its import failed.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::timestamp;

/// Whether `tenant_id` has an import cut short (or approved) to finish, and
/// when its newest pending upload was received.
pub fn import_due_state(
    conn: &Connection,
    tenant_id: i64,
) -> rusqlite::Result<(bool, Option<String>)> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM uploads WHERE tenant_id = ?1 AND state IN ('importing', 'approved')),
                (SELECT max(received_at) FROM uploads WHERE tenant_id = ?1 AND state = 'pending')",
        [tenant_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Around one night from `began` to `closed`: whether `tenant_id` had
/// uploaded before it, whether it uploaded during it, and its newest upload.
pub fn delivery_history(
    conn: &Connection,
    tenant_id: i64,
    began: DateTime<Utc>,
    closed: DateTime<Utc>,
) -> rusqlite::Result<(bool, bool, Option<String>)> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM uploads WHERE tenant_id = ?1 AND received_at <= ?2),
                EXISTS (SELECT 1 FROM uploads WHERE tenant_id = ?1 AND received_at > ?2 AND received_at <= ?3),
                (SELECT max(received_at) FROM uploads WHERE tenant_id = ?1)",
        params![tenant_id, timestamp(began), timestamp(closed)],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// One upload's size and SHA-256.
pub fn upload_size_and_hash(conn: &Connection, upload_id: i64) -> rusqlite::Result<(i64, String)> {
    conn.query_row(
        "SELECT size, sha256 FROM uploads WHERE id = ?1",
        [upload_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Why the last attempt at an upload's import failed.
pub fn set_upload_failure(conn: &Connection, upload_id: i64, why: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE uploads SET failure = ?2 WHERE id = ?1",
        params![upload_id, why],
    )?;
    Ok(())
}
