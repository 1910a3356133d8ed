//! Import history: the runs of a district, one run's full report, and the
//! figures of its recent nights for the report email's trend picture.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store};
use crate::domain::report::Outcome;
use crate::domain::trend::{Figures, RunFigures};

/// One import as `rosterd runs` lists it.
#[derive(Debug, Clone, serde::Serialize)]
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
    pub deactivated: i64,
    pub reactivated: i64,
    /// Changes not applied during an additions-only pause.
    pub kept_back: i64,
}

/// Rebuild the full report of a stored run, for `rosterd runs SUB --id N`.
pub fn load_report(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
) -> anyhow::Result<crate::domain::report::Report> {
    use crate::domain::report::{Counts, Problem, Report, Severity};
    let mut report = conn
        .query_row(
            "SELECT r.kind, r.file_name, r.size, r.sha256, r.encoding, r.started_at, r.finished_at, r.outcome,
                    r.reason, r.rows, r.created, r.updated, r.unchanged, r.skipped, r.errors, r.warnings,
                    r.problems_truncated, t.subdomain, r.deactivated, r.reactivated, r.kept_back,
                    r.deactivations_kept_back, r.passwords_generated
             FROM import_runs r JOIN tenants t ON t.id = r.tenant_id WHERE r.tenant_id = ?1 AND r.id = ?2",
            params![tenant_id, run_id],
            |r| {
                let outcome = outcome_of(r.get_ref(7)?.as_str()?);
                let kind = match r.get_ref(0)?.as_str()? {
                    "groups" => "groups",
                    "undo" => "undo",
                    "passwords" => "passwords",
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
                        deactivations_kept_back: n(21)?,
                        passwords_generated: n(22)?,
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
        "SELECT line, column, value, severity, message, username, first_name, last_name
         FROM import_problems WHERE run_id = ?1 ORDER BY seq",
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
            who: crate::domain::report::Who::of(
                &r.get::<_, String>(5)?,
                &r.get::<_, String>(6)?,
                &r.get::<_, String>(7)?,
            ),
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
    /// The newest runs of a district, newest first.
    pub fn runs(&self, tenant_id: i64, limit: u32) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, source, file_name, size, finished_at, outcome, reason, rows, created, updated,
                    unchanged, skipped, errors, warnings, resolution, deactivated, reactivated, kept_back
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
                    deactivated: r.get(16)?,
                    reactivated: r.get(17)?,
                    kept_back: r.get(18)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

/// The district's users imports (not groups, not undos) that finished at or
/// after `since`, with the figures the report email's trend draws, and when
/// its first users import ever finished. Read inside the transaction that
/// queues the email, so the picture shows exactly the history it reports on.
pub fn trend_runs(
    conn: &Connection,
    tenant_id: i64,
    since: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<(Vec<RunFigures>, Option<chrono::DateTime<chrono::Utc>>)> {
    let parse = |at: String| -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        Ok(chrono::DateTime::parse_from_rfc3339(&at)
            .map_err(|e| anyhow::anyhow!("a run's finished_at {at:?} is not a time: {e}"))?
            .to_utc())
    };
    // Stored times are RFC 3339 in UTC, so they compare as text.
    let since = super::timestamp(since);
    let mut stmt = conn.prepare_cached(
        "SELECT finished_at, outcome, created, updated, deactivated, errors
         FROM import_runs WHERE tenant_id = ?1 AND kind = 'users' AND finished_at >= ?2
         ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![tenant_id, since], |r| {
            let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                Figures {
                    created: n(2)?,
                    updated: n(3)?,
                    deactivated: n(4)?,
                    errors: n(5)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut runs = Vec::with_capacity(rows.len());
    for (at, outcome, figures) in rows {
        runs.push(RunFigures {
            finished_at: parse(at)?,
            outcome: outcome_of(&outcome),
            figures,
        });
    }
    let first: Option<String> = conn
        .query_row(
            "SELECT finished_at FROM import_runs WHERE tenant_id = ?1 AND kind = 'users'
             ORDER BY id LIMIT 1",
            [tenant_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok((runs, first.map(parse).transpose()?))
}

/// A stored outcome, as written by [`Outcome::as_str`].
fn outcome_of(stored: &str) -> Outcome {
    match stored {
        "applied" => Outcome::Applied,
        "applied_with_errors" => Outcome::AppliedWithErrors,
        "unchanged" => Outcome::Unchanged,
        "held" => Outcome::Held,
        _ => Outcome::Rejected,
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

/// The file the district's accounts last took all of, for `kind`: none when
/// the newest such run was undone, was an undo, or kept changes back (a
/// pause), since the same file then still has something to apply.
pub fn last_imported_sha256(
    conn: &Connection,
    tenant_id: i64,
    kind: &str,
) -> rusqlite::Result<Option<String>> {
    let undo = if kind == "users" { "undo" } else { kind };
    conn.query_row(
        "SELECT sha256, kind = 'undo' OR kept_back > 0 OR coalesce(resolution, '') LIKE 'undone%'
         FROM import_runs WHERE tenant_id = ?1 AND kind IN (?2, ?3)
         AND outcome IN ('applied', 'applied_with_errors', 'unchanged') ORDER BY id DESC LIMIT 1",
        params![tenant_id, kind, undo],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)),
    )
    .optional()
    .map(|last| last.and_then(|(sha, stale)| (!stale).then_some(sha)))
}

/// Store a finished run of `tenant_id` and its kept problems, with the id
/// `report.run_id` names if set (its journal uses it already), else a new
/// one; returns the id. The caller's transaction.
pub fn insert_run(
    conn: &Connection,
    tenant_id: i64,
    report: &crate::domain::report::Report,
    source: &str,
    upload_id: Option<i64>,
) -> rusqlite::Result<i64> {
    let c = &report.counts;
    conn.execute(
        "INSERT INTO import_runs (tenant_id, kind, source, file_name, size, sha256, upload_id, started_at,
            finished_at, outcome, reason, rows, created, updated, unchanged, skipped, errors, warnings, problems_truncated,
            encoding, id, deactivated, reactivated, kept_back, deactivations_kept_back, passwords_generated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
            ?22, ?23, ?24, ?25, ?26)",
        params![
            tenant_id,
            report.kind,
            source,
            report.file_name,
            report.size as i64,
            report.sha256,
            upload_id,
            report.started_at,
            report.finished_at,
            report.outcome.as_str(),
            report.reason,
            c.rows as i64,
            c.created as i64,
            c.updated as i64,
            c.unchanged as i64,
            c.skipped as i64,
            c.errors as i64,
            c.warnings as i64,
            report.problems_truncated as i64,
            report.encoding,
            report.run_id,
            c.deactivated as i64,
            c.reactivated as i64,
            c.kept_back as i64,
            c.deactivations_kept_back as i64,
            c.passwords_generated as i64,
        ],
    )?;
    let run_id = conn.last_insert_rowid();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO import_problems (run_id, seq, line, column, value, severity, message,
            username, first_name, last_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (seq, p) in report.problems.iter().enumerate() {
        let who = p.who.clone().unwrap_or_default();
        stmt.execute(params![
            run_id,
            seq as i64,
            p.line.map(|l| l as i64),
            p.column,
            p.value,
            p.severity.as_str(),
            p.message,
            who.username,
            who.first_name,
            who.last_name,
        ])?;
    }
    Ok(run_id)
}

/// Keep a held run's preview of its changes (`changes.csv`).
pub fn set_held_changes(conn: &Connection, run_id: i64, preview: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE import_runs SET held_changes = ?2 WHERE id = ?1",
        params![run_id, preview],
    )?;
    Ok(())
}

/// The id the run being imported will have: taken while the import holds
/// the write lock, so no other run can take it first.
pub fn next_run_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT coalesce(max(id), 0) + 1 FROM import_runs",
        [],
        |r| r.get(0),
    )
}

/// Imports (runs of any kind, by anyone) that finished at `since` or later:
/// the daemon's status line counts the last day's.
pub fn runs_finished_since(conn: &Connection, since: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM import_runs WHERE finished_at >= ?1",
        [since],
        |r| r.get(0),
    )
}
