//! What a metrics scrape and the readiness check read and write: each
//! district's newest upload, newest applied import and held imports, the
//! outbox's backlog, and the one row readiness writes. Each read is a
//! handful of index look-ups per district, on a reader connection (WAL), so a
//! scrape never waits for a running import.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::timestamp;

/// One district's activity, times as the store keeps them (RFC 3339, UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistrictActivity {
    pub tenant_id: i64,
    pub last_upload: Option<String>,
    /// The newest users import that applied its file (with or without row
    /// errors) or found it unchanged.
    pub last_applied: Option<String>,
    pub held: i64,
    /// When the oldest held import finished (was held).
    pub held_since: Option<String>,
}

/// Every district's activity, by id.
pub fn district_activity(conn: &Connection) -> rusqlite::Result<Vec<DistrictActivity>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.id,
                (SELECT max(received_at) FROM uploads WHERE tenant_id = t.id),
                (SELECT finished_at FROM import_runs
                  WHERE tenant_id = t.id AND kind = 'users'
                    AND outcome IN ('applied', 'applied_with_errors', 'unchanged')
                  ORDER BY id DESC LIMIT 1),
                (SELECT count(*) FROM uploads WHERE tenant_id = t.id AND state = 'held'),
                (SELECT min(r.finished_at) FROM uploads u JOIN import_runs r ON r.id = u.run_id
                  WHERE u.tenant_id = t.id AND u.state = 'held')
         FROM tenants t ORDER BY t.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DistrictActivity {
            tenant_id: r.get(0)?,
            last_upload: r.get(1)?,
            last_applied: r.get(2)?,
            held: r.get(3)?,
            held_since: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Outbox copies not yet delivered nor refused for good, and when the
/// oldest of them was queued.
pub fn outbox_backlog(conn: &Connection) -> rusqlite::Result<(i64, Option<String>)> {
    conn.query_row(
        "SELECT count(*), min(created_at) FROM outbox WHERE state = 'queued'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The readiness check's write: one row, replaced each time.
pub fn probe_write(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO readiness_probe (id, checked_at) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        params![timestamp(now)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewTenant, Store};

    #[test]
    fn a_district_without_activity_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db")).unwrap();
        let now = "2026-11-20T04:00:00Z".parse().unwrap();
        let tenant_id = store
            .add_tenant(
                &NewTenant {
                    subdomain: "lincoln",
                    admin_name: "A",
                    admin_email: "a@example.org",
                    timezone: None,
                    sso: false,
                    window: None,
                },
                now,
            )
            .unwrap();
        let got = district_activity(&store.conn).unwrap();
        assert_eq!(
            got,
            [DistrictActivity {
                tenant_id,
                last_upload: None,
                last_applied: None,
                held: 0,
                held_since: None,
            }]
        );
        assert_eq!(outbox_backlog(&store.conn).unwrap(), (0, None));
        probe_write(&store.conn, now).unwrap();
        probe_write(&store.conn, now).unwrap();
        let n: i64 = store
            .conn
            .query_row("SELECT count(*) FROM readiness_probe", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
