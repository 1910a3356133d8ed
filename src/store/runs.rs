//! Import history: the runs of a district, and one run's full report.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store};

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

impl Store {
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
}

/// A held run's preview of its changes (the administrator's `changes.csv`),
/// if it was held.
pub fn held_changes(conn: &Connection, run_id: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT held_changes FROM import_runs WHERE id = ?1",
        [run_id],
        |r| r.get(0),
    )
}
