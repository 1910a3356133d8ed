//! What `rosterd status` shows of one district: last upload and import,
//! what is pending or failed, mail queued.

use rusqlite::{Connection, OptionalExtension};

use super::Result;

/// What `rosterd status` shows of one district. Times as the store keeps
/// them (RFC 3339, UTC).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TenantStatus {
    /// The newest upload.
    pub last_upload: Option<LastUpload>,
    /// The newest run.
    pub last_import: Option<LastRun>,
    /// Received time of the upload waiting for (or in) import.
    pub pending_since: Option<String>,
    pub mail_queued: i64,
    /// The newest upload rosterd gave up importing, if no upload imported since.
    pub failed: Option<FailedUpload>,
    /// The newest upload refused when it arrived, if no upload was accepted
    /// since.
    pub refused: Option<RefusedFile>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LastUpload {
    pub id: i64,
    pub received_at: String,
    pub size: i64,
    pub state: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LastRun {
    pub run: i64,
    pub finished_at: String,
    pub outcome: String,
    /// What became of it later (a held run approved or discarded, a run undone).
    pub resolution: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub errors: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedUpload {
    pub upload: i64,
    pub received_at: String,
    pub attempts: i64,
    pub reason: String,
}

/// An upload refused when it arrived (`crate::import::check`): nothing of
/// it replaced the pending file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefusedFile {
    pub upload: i64,
    pub received_at: String,
    pub size: i64,
    pub reason: String,
    /// Its passwords-blanked copy, if one is kept.
    pub copy: Option<String>,
}

pub fn tenant_status(conn: &Connection, tenant_id: i64) -> Result<TenantStatus> {
    Ok(TenantStatus {
        last_upload: conn
            .query_row(
                "SELECT id, received_at, size, state FROM uploads WHERE tenant_id = ?1 ORDER BY id DESC LIMIT 1",
                [tenant_id],
                |r| {
                    Ok(LastUpload {
                        id: r.get(0)?,
                        received_at: r.get(1)?,
                        size: r.get(2)?,
                        state: r.get(3)?,
                    })
                },
            )
            .optional()?,
        last_import: conn
            .query_row(
                "SELECT id, finished_at, outcome, resolution, created, updated, errors FROM import_runs
                 WHERE tenant_id = ?1 ORDER BY id DESC LIMIT 1",
                [tenant_id],
                |r| {
                    Ok(LastRun {
                        run: r.get(0)?,
                        finished_at: r.get(1)?,
                        outcome: r.get(2)?,
                        resolution: r.get(3)?,
                        created: r.get(4)?,
                        updated: r.get(5)?,
                        errors: r.get(6)?,
                    })
                },
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
                |r| {
                    Ok(FailedUpload {
                        upload: r.get(0)?,
                        received_at: r.get(1)?,
                        attempts: r.get(2)?,
                        reason: r.get(3)?,
                    })
                },
            )
            .optional()?,
        refused: conn
            .query_row(
                "SELECT id, received_at, size, coalesce(failure, ''), archive FROM uploads
                 WHERE tenant_id = ?1 AND state = 'refused'
                   AND id > coalesce((SELECT max(id) FROM uploads WHERE tenant_id = ?1 AND state <> 'refused'), 0)
                 ORDER BY id DESC LIMIT 1",
                [tenant_id],
                |r| {
                    Ok(RefusedFile {
                        upload: r.get(0)?,
                        received_at: r.get(1)?,
                        size: r.get(2)?,
                        reason: r.get(3)?,
                        copy: r.get(4)?,
                    })
                },
            )
            .optional()?,
    })
}
