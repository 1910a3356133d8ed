//! Readiness (`/readyz`, and `rosterd_ready` in each scrape): the store
//! opens and takes a write, the spool takes a new file, the SSH listener is
//! bound, and no outbox message has waited past `metrics.outbox_stuck_seconds`.
//! Each check says what failed in a few words; the details go to the log,
//! once when readiness is lost and once when it is back.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::atomic::Ordering;

use super::Ops;
use crate::metrics::Check;

/// Each check's result: `Ok`, or why it failed.
pub struct Readiness {
    pub checks: Vec<(Check, Result<(), String>)>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.is_ok())
    }

    /// `{"status":"ready","checks":{"store":"ok",…}}`, or `"not ready"`
    /// with `"failed":["spool"]` and the failed checks' reasons.
    pub fn to_json(&self) -> Vec<u8> {
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks
            .iter()
            .map(|(check, r)| {
                let said = match r {
                    Ok(()) => "ok".to_owned(),
                    Err(why) => why.clone(),
                };
                (check.as_str().to_owned(), said.into())
            })
            .collect();
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(c, _)| c.as_str())
            .collect();
        let body = if failed.is_empty() {
            serde_json::json!({ "status": "ready", "checks": checks })
        } else {
            serde_json::json!({ "status": "not ready", "failed": failed, "checks": checks })
        };
        let mut out = body.to_string().into_bytes();
        out.push(b'\n');
        out
    }
}

/// The readiness probe's file in the spool's root (a name no district's
/// folder can have: subdomains have no dot).
const SPOOL_PROBE: &str = ".readyz";

impl Ops {
    /// Run every check now (blocking: it writes to the store and the spool).
    pub fn readiness(&self) -> Readiness {
        let config = self.shared.config();
        let mut checks = vec![
            (Check::Store, self.check_store()),
            (Check::Spool, check_spool(&config.storage.spool)),
            (
                Check::Listener,
                if self.shared.is_listening() {
                    Ok(())
                } else {
                    Err("the SFTP listener is not accepting connections".into())
                },
            ),
        ];
        checks.push((
            Check::Outbox,
            self.check_outbox(config.metrics.outbox_stuck_seconds),
        ));
        let ready = Readiness { checks };
        let now_ready = ready.is_ready();
        if self.was_ready.swap(now_ready, Ordering::AcqRel) != now_ready {
            if now_ready {
                tracing::info!("ready again: every readiness check passes");
            } else {
                let failed: Vec<String> = ready
                    .checks
                    .iter()
                    .filter_map(|(c, r)| {
                        r.as_ref().err().map(|why| format!("{}: {why}", c.as_str()))
                    })
                    .collect();
                tracing::warn!(failed = %failed.join("; "), "not ready (/readyz answers 503)");
            }
        }
        ready
    }

    /// The store opens (a connection of its own, as a restart would) and
    /// takes a write. A write lock held by another writer (an import, an
    /// upload being recorded) counts as writable: that writer is writing.
    fn check_store(&self) -> Result<(), String> {
        use rusqlite::{ErrorCode, OpenFlags};
        let path = self.shared.config().storage.database.clone();
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("the database does not open: {e}"))?;
        // A lock held elsewhere answers at once, never holding up a scrape.
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(|e| e.to_string())?;
        match crate::store::probe_write(&conn, self.shared.clock.now()) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(format!("the database does not take a write: {e}")),
        }
    }

    /// No undelivered outbox copy older than `stuck_after` seconds.
    fn check_outbox(&self, stuck_after: u64) -> Result<(), String> {
        let age = self
            .outbox_backlog()
            .map_err(|e| format!("the outbox cannot be read: {e}"))?
            .1;
        if age > stuck_after as f64 {
            return Err(format!(
                "an email has waited {} s undelivered (metrics.outbox_stuck_seconds = {stuck_after})",
                age.round()
            ));
        }
        Ok(())
    }
}

/// The spool's root takes a new file: created, written and removed.
fn check_spool(spool: &std::path::Path) -> Result<(), String> {
    let probe = spool.join(SPOOL_PROBE);
    let written = (|| -> std::io::Result<()> {
        crate::files::private_dir(spool)?;
        let mut f = std::fs::OpenOptions::new()
            .mode(0o600)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)?;
        f.write_all(b"ready\n")?;
        std::fs::remove_file(&probe)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&probe);
        format!("the spool does not take a new file: {e}")
    })
}
