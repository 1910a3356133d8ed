//! What `rosterd status` shows of one district: last upload and import,
//! what is pending or failed, mail queued.

use rusqlite::{Connection, OptionalExtension};

use super::Result;

/// What `rosterd status` shows of one district.
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
