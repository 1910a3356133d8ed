//! Uploads: recording one as its district's pending file (or as refused
//! when it arrived), taking it for import, holds and support's decisions on
//! them, failures, archives, their
//! paths when the district's folder moves, and what the scheduler reads (an
//! import to finish or a file pending, a night's delivery history). The
//! spool keeps the files; this, their rows.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

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

/// A `users.csv` to record as its district's pending upload.
#[derive(Debug, Clone, Copy)]
pub struct NewUpload<'a> {
    pub tenant_id: i64,
    pub received_at: DateTime<Utc>,
    pub size: u64,
    pub sha256: &'a str,
    /// Who sent it, if known: the client's address and key fingerprint.
    pub remote_addr: Option<&'a str>,
    pub key_fingerprint: Option<&'a str>,
    pub path: &'a str,
    /// The file's device and inode (`spool::file_id`).
    pub file_id: &'a str,
}

/// Record `u` as its district's pending upload, superseding any earlier
/// pending one, in one transaction; returns its id.
pub fn record_upload(conn: &Connection, u: &NewUpload<'_>) -> rusqlite::Result<i64> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "UPDATE uploads SET state = 'superseded' WHERE tenant_id = ?1 AND state = 'pending'",
        [u.tenant_id],
    )?;
    let id = insert_upload(&tx, u, "pending", Some(u.file_id), None)?;
    tx.commit()?;
    Ok(id)
}

fn insert_upload(
    conn: &Connection,
    u: &NewUpload<'_>,
    state: &str,
    file_id: Option<&str>,
    failure: Option<&str>,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO uploads (tenant_id, received_at, size, sha256, remote_addr, key_fingerprint, path, state, file_id, failure)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            u.tenant_id,
            timestamp(u.received_at),
            u.size as i64,
            u.sha256,
            u.remote_addr,
            u.key_fingerprint,
            u.path,
            state,
            file_id,
            failure
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Record `u` as an upload refused when it arrived, for `reason` (see
/// `crate::import::check`): never pending, never imported; the district's
/// pending upload stays as it is. `u.file_id` is not kept: the file is not.
/// Returns its id.
pub fn record_refused_file(
    conn: &Connection,
    u: &NewUpload<'_>,
    reason: &str,
) -> rusqlite::Result<i64> {
    insert_upload(conn, u, "refused", None, Some(reason))
}

/// The SHA-256 of the district's newest refused upload whose blanked copy
/// is kept, if any.
pub fn last_refused_copy(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT sha256 FROM uploads WHERE tenant_id = ?1 AND state = 'refused' AND archive IS NOT NULL
         ORDER BY id DESC LIMIT 1",
        [tenant_id],
        |r| r.get(0),
    )
    .optional()
}

/// The district's refused uploads with a blanked copy kept, past its newest
/// `kept`: (upload id, the copy's path).
pub fn refused_copies_beyond(
    conn: &Connection,
    tenant_id: i64,
    kept: usize,
) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare(
        "SELECT id, archive FROM uploads WHERE tenant_id = ?1 AND state = 'refused' AND archive IS NOT NULL
         ORDER BY id DESC LIMIT -1 OFFSET ?2",
    )?;
    stmt.query_map(params![tenant_id, kept as i64], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?
    .collect()
}

/// A district's uploads that may have been taken for import before (their
/// original may be in the archive), oldest first.
pub fn claimable_uploads(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare(
        "SELECT id FROM uploads WHERE tenant_id = ?1
         AND state IN ('pending', 'importing', 'superseded', 'approved') ORDER BY id",
    )?;
    stmt.query_map([tenant_id], |r| r.get(0))?.collect()
}

/// Upload `id` is taken for import (again): its attempts so far, this one
/// included, and whether support approved it.
pub fn start_import(conn: &Connection, upload_id: i64) -> rusqlite::Result<(u32, bool)> {
    conn.query_row(
        "UPDATE uploads SET state = 'importing', attempts = attempts + 1 WHERE id = ?1
         RETURNING attempts, approved",
        [upload_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The pending upload `id`, moved to `path`, is taken for import: its
/// attempts so far, this one included.
pub fn start_pending_import(
    conn: &Connection,
    upload_id: i64,
    path: &str,
) -> rusqlite::Result<u32> {
    conn.query_row(
        "UPDATE uploads SET state = 'importing', path = ?2, attempts = attempts + 1 WHERE id = ?1
         RETURNING attempts",
        params![upload_id, path],
        |r| r.get(0),
    )
}

/// Mark a district's approved uploads lost (their file is gone); returns
/// how many.
pub fn lose_approved(conn: &Connection, tenant_id: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE uploads SET state = 'lost' WHERE tenant_id = ?1 AND state = 'approved'",
        [tenant_id],
    )
}

/// Mark upload `id` lost (its file is gone).
pub fn lose_upload(conn: &Connection, upload_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE uploads SET state = 'lost' WHERE id = ?1",
        [upload_id],
    )?;
    Ok(())
}

/// A district's newest pending upload.
pub fn latest_pending(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT id FROM uploads WHERE tenant_id = ?1 AND state = 'pending' ORDER BY id DESC LIMIT 1",
        [tenant_id],
        |r| r.get(0),
    )
    .optional()
}

/// A district's newest pending upload with the file it names (device and
/// inode, if recorded) and its SHA-256.
pub fn latest_pending_file(
    conn: &Connection,
    tenant_id: i64,
) -> rusqlite::Result<Option<(i64, Option<String>, String)>> {
    conn.query_row(
        "SELECT id, file_id, sha256 FROM uploads WHERE tenant_id = ?1 AND state = 'pending'
         ORDER BY id DESC LIMIT 1",
        [tenant_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
}

/// District `tenant_id` was renamed from `old` to `new`, and its spool
/// folder with it: the recorded paths of its uploads' files follow.
pub fn move_upload_files(
    conn: &Connection,
    tenant_id: i64,
    old: &str,
    new: &str,
) -> rusqlite::Result<()> {
    let rows: Vec<(i64, Option<String>, Option<String>)> = conn
        .prepare("SELECT id, path, archive FROM uploads WHERE tenant_id = ?1")?
        .query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let moved = |path: Option<String>| path.map(|p| moved_path(&p, old, new).unwrap_or(p));
    let mut update = conn.prepare("UPDATE uploads SET path = ?2, archive = ?3 WHERE id = ?1")?;
    for (id, path, archive) in rows {
        update.execute(params![id, moved(path), moved(archive)])?;
    }
    Ok(())
}

/// `path` (`SPOOL/OLD/users.csv`, `SPOOL/OLD/archive/upload-N….csv`) in
/// the folder of `new` instead: the district's folder is the file's parent,
/// or its grandparent for a file in `archive/`, whatever the spool's path
/// looked like to the process that wrote it (absolute, or relative to its
/// working directory), and whatever the district is called (even `archive`).
fn moved_path(path: &str, old: &str, new: &str) -> Option<String> {
    let (dir, file) = path.rsplit_once('/')?;
    let (district_dir, inner) = match dir.rsplit_once('/') {
        Some((above, "archive")) if file.starts_with("upload-") => (above, "/archive"),
        _ => (dir, ""),
    };
    let root = match district_dir.rsplit_once('/') {
        Some((root, name)) if name == old => format!("{root}/"),
        None if district_dir == old => String::new(),
        _ => return None,
    };
    Some(format!("{root}{new}{inner}/{file}"))
}

/// Record which file (device and inode) upload `id` is.
pub fn set_file_id(conn: &Connection, upload_id: i64, file_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE uploads SET file_id = ?2 WHERE id = ?1",
        params![upload_id, file_id],
    )?;
    Ok(())
}

/// A held upload and the run that held it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Held {
    pub upload_id: i64,
    pub run_id: i64,
    pub received_at: String,
    /// Why it was held.
    pub reason: String,
}

/// The district's uploads waiting for support's approval, oldest first.
pub fn held(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Vec<Held>> {
    let mut stmt = conn.prepare(
        "SELECT u.id, r.id, u.received_at, coalesce(r.reason, '') FROM uploads u
         JOIN import_runs r ON r.id = u.run_id WHERE u.tenant_id = ?1 AND u.state = 'held' ORDER BY u.id",
    )?;
    stmt.query_map([tenant_id], |r| {
        Ok(Held {
            upload_id: r.get(0)?,
            run_id: r.get(1)?,
            received_at: r.get(2)?,
            reason: r.get(3)?,
        })
    })?
    .collect()
}

/// What became of run `run_id` of `tenant_id` (its resolution, else its
/// outcome); `None` if the district has no such run.
pub fn run_resolution(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
) -> rusqlite::Result<Option<Option<String>>> {
    conn.query_row(
        "SELECT coalesce(resolution, outcome) FROM import_runs WHERE id = ?1 AND tenant_id = ?2",
        params![run_id, tenant_id],
        |r| r.get(0),
    )
    .optional()
}

/// The newest upload of `tenant_id` after `upload_id` that may still be
/// imported.
pub fn newer_upload(
    conn: &Connection,
    tenant_id: i64,
    upload_id: i64,
) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT max(id) FROM uploads WHERE tenant_id = ?1 AND id > ?2
             AND state NOT IN ('lost', 'failed', 'discarded', 'refused')",
        params![tenant_id, upload_id],
        |r| r.get(0),
    )
}

/// Support approved held upload `upload_id`: due at once, imported without
/// holds; its run says so with `resolution`. The caller's transaction.
pub fn approve_upload(
    conn: &Connection,
    upload_id: i64,
    run_id: i64,
    resolution: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE uploads SET state = 'approved', approved = 1, attempts = 0, failure = NULL WHERE id = ?1",
        [upload_id],
    )?;
    set_resolution(conn, run_id, resolution)
}

/// Held upload `upload_id` is set aside as `state` (never imported); its
/// run says why with `resolution`. The caller's transaction.
pub fn set_held_aside(
    conn: &Connection,
    upload_id: i64,
    run_id: i64,
    state: &str,
    resolution: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE uploads SET state = ?2 WHERE id = ?1 AND state = 'held'",
        params![upload_id, state],
    )?;
    set_resolution(conn, run_id, resolution)
}

fn set_resolution(conn: &Connection, run_id: i64, resolution: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE import_runs SET resolution = ?2 WHERE id = ?1",
        params![run_id, resolution],
    )?;
    Ok(())
}

/// Upload `id` is given up on: failed, with why.
pub fn fail_upload(conn: &Connection, upload_id: i64, why: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE uploads SET state = 'failed', failure = ?2 WHERE id = ?1",
        params![upload_id, why],
    )?;
    Ok(())
}

/// Uploads a stopped daemon left in the middle of their import: (upload id,
/// district id, subdomain, attempts so far).
pub fn interrupted(conn: &Connection) -> rusqlite::Result<Vec<(i64, i64, String, u32)>> {
    let mut stmt = conn.prepare(
        "SELECT u.id, u.tenant_id, t.subdomain, u.attempts FROM uploads u JOIN tenants t ON t.id = u.tenant_id
         WHERE u.state = 'importing' ORDER BY u.id",
    )?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect()
}

/// Where upload `id`'s blanked copy is kept (`None`: nothing kept, or no
/// longer).
pub fn set_archive(
    conn: &Connection,
    upload_id: i64,
    archive: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE uploads SET archive = ?2 WHERE id = ?1",
        params![upload_id, archive],
    )?;
    Ok(())
}

/// Imported uploads not archived yet: (upload id, district id, subdomain).
pub fn unarchived_imports(conn: &Connection) -> rusqlite::Result<Vec<(i64, i64, String)>> {
    let mut stmt = conn.prepare(
        "SELECT u.id, u.tenant_id, t.subdomain FROM uploads u JOIN tenants t ON t.id = u.tenant_id
         WHERE u.state = 'imported' AND u.archive IS NULL",
    )?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// Archived copies of uploads received before `cutoff`: (upload id, path).
pub fn archives_before(
    conn: &Connection,
    cutoff: DateTime<Utc>,
) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare(
        "SELECT id, archive FROM uploads WHERE archive IS NOT NULL AND received_at < ?1",
    )?;
    stmt.query_map([timestamp(cutoff)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Upload `id` was imported (or held, `state`) by run `run_id`.
pub fn set_upload_run(
    conn: &Connection,
    upload_id: i64,
    run_id: i64,
    state: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE uploads SET state = ?3, run_id = ?2 WHERE id = ?1",
        params![upload_id, run_id, state],
    )?;
    Ok(())
}

/// When upload `id` was received, and from where.
pub fn upload_received(
    conn: &Connection,
    upload_id: i64,
) -> rusqlite::Result<Option<(String, Option<String>)>> {
    conn.query_row(
        "SELECT received_at, remote_addr FROM uploads WHERE id = ?1",
        [upload_id],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
    )
    .optional()
}

#[cfg(test)]
mod tests {
    #[test]
    fn moved_paths_change_only_the_district_folder() {
        let cases = [
            (
                "/var/spool/lincoln/users.csv",
                Some("/var/spool/ann/users.csv"),
            ),
            (
                "data/spool/lincoln/archive/upload-3.csv",
                Some("data/spool/ann/archive/upload-3.csv"),
            ),
            ("/lincoln/lincoln/users.csv", Some("/lincoln/ann/users.csv")),
            ("lincoln/users.csv", Some("ann/users.csv")),
            (
                "lincoln/archive/upload-1.csv",
                Some("ann/archive/upload-1.csv"),
            ),
            (
                "data/spool/archive/archive/upload-1.original.csv",
                Some("data/spool/ann/archive/upload-1.original.csv"),
            ),
            ("/var/spool/lincoln-usd/users.csv", None),
            ("/var/spool/other/users.csv", None),
        ];
        for (path, want) in cases {
            assert_eq!(
                super::moved_path(
                    path,
                    if path.contains("spool/archive/") {
                        "archive"
                    } else {
                        "lincoln"
                    },
                    "ann"
                )
                .as_deref(),
                want,
                "{path}"
            );
        }
    }
}
