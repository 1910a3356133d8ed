//! The importer: turns an uploaded CSV file into account changes and a
//! [`Report`]. Decoding ([`decode`]), header matching ([`header`]) and field rules
//! ([`fields`]) are pure; [`users`] streams rows through them and applies the
//! result to the store in one transaction.

pub mod archive;
pub mod check;
pub mod decode;
pub mod fields;
pub mod groups;
pub mod header;
pub mod journal;
pub mod passwords;
pub mod progress;
pub mod schools;
pub mod users;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use crate::clock::Clock;
use crate::domain::credentials::{Delivery, Issued};
pub use crate::domain::report::{Counts, Outcome, Problem, Report, Severity};
use crate::mail::Composer;
use crate::mail::compose::Received;
use crate::password::Fingerprinter;
use crate::store::{Tenant, timestamp};

/// Where an import was started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Support ran `rosterd import`.
    Cli,
    /// The scheduler picked up an SFTP upload.
    Sftp,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Sftp => "sftp",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Validate and count everything, then roll back.
    pub dry_run: bool,
    /// Import even if the file is byte-identical to the last imported one.
    pub force: bool,
    pub source: Source,
    /// The upload being imported, when it came over SFTP.
    pub upload_id: Option<i64>,
    /// Name shown in reports (`users.csv`).
    pub file_name: String,
    /// Queue the report email to the district's administrator, in the same
    /// transaction as the result.
    pub email: bool,
    /// Hold the import for approval past these thresholds (nightly uploads
    /// not yet approved); `None` never holds.
    pub holds: Option<crate::domain::safety::HoldLimits>,
    /// The district is paused for additions only: create new users, change
    /// no existing one.
    pub additions_only: bool,
    /// Whole-file notes for the report (a held upload this one replaces).
    pub notes: Vec<String>,
    /// Generate a password for every user created without one, whatever
    /// the district's setting (support's `--generate-passwords`).
    pub generate_passwords: bool,
    /// Write generated passwords to this file (created, mode 0600) instead
    /// of attaching them to the report email.
    pub passwords_out: Option<std::path::PathBuf>,
}

/// What every import needs besides the file: the time, the password secret,
/// the default time zone for districts without one, and the report composer.
#[derive(Clone)]
pub struct ImportContext {
    pub clock: Arc<dyn Clock>,
    pub fingerprinter: Fingerprinter,
    pub default_timezone: chrono_tz::Tz,
    pub composer: Composer,
}

impl ImportContext {
    /// The district's time zone (its own, else the default).
    pub fn timezone_of(&self, tenant: &Tenant) -> chrono_tz::Tz {
        tenant.timezone_or(self.default_timezone)
    }
}

/// Run `f` without foreign-key enforcement, and turn it back on whatever
/// `f` returns. An import's statements need none (each says why) and its
/// journal names its run before the run is stored; the pragma cannot change
/// inside a transaction, hence around it.
pub(crate) fn without_foreign_keys<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = f(conn);
    conn.pragma_update(None, "foreign_keys", true)?;
    result
}

/// A fresh report for `tenant`, before anything is read.
pub(crate) fn new_report(
    ctx: &ImportContext,
    tenant: &Tenant,
    kind: &'static str,
    opts: &ImportOptions,
) -> Report {
    let now = timestamp(ctx.clock.now());
    let mut report = Report {
        tenant: tenant.subdomain.clone(),
        kind,
        file_name: opts.file_name.clone(),
        size: 0,
        sha256: String::new(),
        encoding: None,
        started_at: now.clone(),
        finished_at: now,
        dry_run: opts.dry_run,
        outcome: Outcome::Applied,
        reason: None,
        counts: Counts::default(),
        problems: Vec::new(),
        problems_truncated: 0,
        problem_bytes: 0,
        run_id: None,
    };
    for note in &opts.notes {
        report.add(Problem {
            line: None,
            column: String::new(),
            value: String::new(),
            severity: Severity::Warning,
            message: note.clone(),
            who: None,
        });
    }
    report
}

/// The first, header-level stage shared by every import kind: scan the bytes,
/// notice a byte-identical re-import, open the text and match the header.
/// `Ok(None)` means the report is final already (rejected or unchanged).
pub(crate) fn open_csv<F: header::FieldSet>(
    conn: &Connection,
    tenant: &Tenant,
    path: &Path,
    opts: &ImportOptions,
    report: &mut Report,
    progress: &dyn progress::Progress,
) -> anyhow::Result<Option<(decode::CsvRows, header::Columns<F>)>> {
    // An upload is read without following links; support may point
    // `rosterd import` at any file of theirs.
    let opened = match opts.source {
        Source::Sftp => crate::files::open_nofollow(path),
        Source::Cli => std::fs::File::open(path),
    };
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            reject(report, e.to_string());
            return Ok(None);
        }
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    progress.phase(
        progress::Phase::Reading,
        file.metadata().ok().map(|m| m.len()),
    );
    let scan = match decode::scan_reader(Counted(&file, progress)) {
        Ok(scan) => scan,
        Err(decode::ScanError::Undecodable(why)) => {
            reject(report, why);
            return Ok(None);
        }
        Err(decode::ScanError::Io(e)) => {
            return Err(anyhow::anyhow!("cannot read {}: {e}", path.display()));
        }
    };
    report.size = scan.size;
    report.sha256 = scan.sha256.clone();
    report.encoding = Some(scan.encoding.label().to_owned());
    if !opts.force
        && crate::store::last_imported_sha256(conn, tenant.id, report.kind)?.as_deref()
            == Some(&scan.sha256)
    {
        report.outcome = Outcome::Unchanged;
        return Ok(None);
    }
    let mut rows = decode::CsvRows::from_file(file, scan.encoding)?;
    rows.expect_lines(scan.lines - u64::from(scan.ends_in_line_feed));
    let mut record = csv::StringRecord::new();
    // The header is the first line that is not blank.
    let header = match rows.next(&mut record) {
        Err(decode::ReadError::Unreadable(why)) => {
            reject(report, why.0);
            return Ok(None);
        }
        other => other?,
    };
    let Some(line) = header else {
        reject(
            report,
            "the file has no header line (it holds only blank lines)".into(),
        );
        return Ok(None);
    };
    let mapping = tenant_mapping::<F>(conn, tenant.id)?;
    let columns = match header::match_columns::<F>(&record, &mapping) {
        Ok(c) => c,
        Err(why) => {
            reject(report, why.to_string());
            return Ok(None);
        }
    };
    if !columns.unknown.is_empty() {
        let known: Vec<&str> = F::ALL.iter().map(|f| f.label()).collect();
        report.add(Problem {
            line: Some(line),
            column: columns.unknown.join(", "),
            value: String::new(),
            severity: Severity::Warning,
            message: format!(
                "{} not recognised and ignored; the recognised columns are {}",
                if columns.unknown.len() == 1 {
                    "this column is"
                } else {
                    "these columns are"
                },
                known.join(", ")
            ),
            who: None,
        });
    }
    Ok(Some((rows, columns)))
}

/// A reader that reports the bytes it reads.
struct Counted<'a, R>(R, &'a dyn progress::Progress);

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.advance(n as u64);
        Ok(n)
    }
}

/// The row error for a record with non-empty cells beyond the header's width.
pub(crate) fn extra_fields(record: &csv::StringRecord, width: usize, line: u64) -> Option<Problem> {
    (record.len() > width && record.iter().skip(width).any(|v| !v.trim().is_empty())).then(|| {
        Problem {
            line: Some(line),
            column: "(row)".into(),
            value: String::new(),
            severity: Severity::Error,
            message: format!(
                "the row has {} fields but the header has {width}; a value probably holds a comma without quotes around it",
                record.len()
            ),
            who: None,
        }
    })
}

/// The reason to reject the file, if an import's rows stopped because the
/// file broke a reading limit (see [`decode::CsvRows`]).
pub(crate) fn unreadable(e: &anyhow::Error) -> Option<String> {
    match e.downcast_ref::<decode::ReadError>() {
        Some(decode::ReadError::Unreadable(why)) => Some(why.0.clone()),
        _ => None,
    }
}

/// Reject a file whose rows stopped part-way at a reading limit, after the
/// caller rolled back what the rows before did: the report keeps only the
/// reason, and is stored as for any rejection.
pub(crate) fn reject_unreadable(
    conn: &Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    opts: &ImportOptions,
    mut report: Report,
    why: String,
) -> anyhow::Result<Report> {
    report.counts = Counts::default();
    report.run_id = None; // its journal was rolled back with the rows
    report.problems.clear();
    report.problems_truncated = 0;
    report.problem_bytes = 0;
    reject(&mut report, why);
    finish_early(conn, ctx, tenant, opts, report)
}

/// Mark the report rejected, with the reason the district reads.
pub(crate) fn reject(report: &mut Report, why: String) {
    report.outcome = Outcome::Rejected;
    // A reason may quote the file (a header cell): capped and escaped.
    report.reason =
        Some(crate::domain::text::echo(&why, crate::domain::text::MESSAGE_CHARS).into_owned());
}

/// The district's stored column mapping, for the fields of `F`.
pub(crate) fn tenant_mapping<F: header::FieldSet>(
    conn: &Connection,
    tenant_id: i64,
) -> anyhow::Result<HashMap<String, header::Mapped<F>>> {
    let mut map = HashMap::new();
    for (key, field) in crate::store::column_mapping(conn, tenant_id)? {
        // A mapping may name a field of another import kind; it does not apply here.
        if let Ok(target) = header::parse_target::<F>(&field) {
            map.insert(key, target);
        }
    }
    Ok(map)
}

/// Store the run and its kept problems, mark the upload it came from imported,
/// and queue its report email: all inside the caller's transaction, so the
/// history, the changes it describes and the email commit together or not at all.
///
/// `report.run_id`, when set, is the id the run's journal already uses (see
/// [`journal::next_run_id`]). A held run leaves its upload `held` and
/// queues the "held" email with `changes` (its `changes.csv`) instead.
pub(crate) fn record_run(
    conn: &Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    opts: &ImportOptions,
    report: &mut Report,
    changes: Option<Vec<u8>>,
    passwords: Delivery<'_>,
) -> anyhow::Result<i64> {
    let run_id = crate::store::insert_run(
        conn,
        tenant.id,
        report,
        opts.source.as_str(),
        opts.upload_id,
    )?;
    report.run_id = Some(run_id);
    let mut received = None;
    if let Some(upload_id) = opts.upload_id {
        let state = if report.outcome == Outcome::Held {
            "held"
        } else {
            "imported"
        };
        crate::store::set_upload_run(conn, upload_id, run_id, state)?;
        received = upload_received(conn, upload_id)?;
    }
    if opts.email {
        let now = ctx.clock.now();
        let tz = ctx.timezone_of(tenant);
        // The district's last nights, this run included, as this
        // transaction sees them.
        let trend = match report.kind {
            "users" => Some(crate::mail::compose::trend(conn, tenant.id, tz, now, None)?),
            _ => None,
        };
        let mail = match changes {
            Some(csv) => ctx.composer.held(
                tenant,
                tz,
                report,
                csv,
                received.as_ref(),
                trend.as_ref(),
                now,
            )?,
            None => ctx.composer.report(
                tenant,
                tz,
                report,
                received.as_ref(),
                trend.as_ref(),
                passwords,
                now,
            )?,
        };
        crate::mail::queue(conn, &mail, now)?;
    }
    Ok(run_id)
}

/// When and from where an upload came, for its report.
pub fn upload_received(conn: &Connection, upload_id: i64) -> rusqlite::Result<Option<Received>> {
    crate::store::upload_received(conn, upload_id).map(|row| {
        row.and_then(|(at, remote_addr)| {
            Some(Received {
                at: chrono::DateTime::parse_from_rfc3339(&at).ok()?.to_utc(),
                remote_addr,
            })
        })
    })
}

/// The end every import kind shares once its rows are applied inside `tx`:
/// problems in file order, the "no data rows" warning, the rejection of a
/// file with more than half of its rows in error (undoing them), the outcome,
/// and — unless a dry run — the stored run, all committed together.
/// `issued` holds the passwords the import generated, delivered only if it
/// is applied.
pub(crate) fn conclude(
    tx: rusqlite::Transaction<'_>,
    ctx: &ImportContext,
    tenant: &Tenant,
    opts: &ImportOptions,
    mut report: Report,
    issued: &Issued,
) -> anyhow::Result<Report> {
    report.problems.sort_by_key(|p| p.line);
    let c = report.counts;
    if c.rows == 0 {
        report.add(Problem {
            line: None,
            column: String::new(),
            value: String::new(),
            severity: Severity::Warning,
            message: "the file has a header but no data rows; nothing to import".into(),
            who: None,
        });
    }
    report.finished_at = timestamp(ctx.clock.now());
    if c.skipped * 2 > c.rows {
        // A broken export must not half-apply: undo every row, then record
        // the run in a fresh transaction under the same guard. (A savepoint
        // would do it in one, but makes SQLite copy every page the rows touch
        // to a sub-journal, about 10% of a large import.) A crash in between
        // leaves the upload to be imported, and rejected, again.
        crate::store::restart_transaction(&tx)?;
        report.run_id = None; // its journal went with the rollback
        reject(
            &mut report,
            format!(
                "more than half of the data rows ({} of {}) have errors, so the file was rejected as a whole and nothing was applied. This usually means a broken export; fix the problems listed and upload again",
                c.skipped, c.rows
            ),
        );
        report.counts.created = 0;
        report.counts.updated = 0;
        report.counts.unchanged = 0;
        report.counts.deactivated = 0;
        report.counts.reactivated = 0;
        report.counts.kept_back = 0;
        report.counts.deactivations_kept_back = 0;
        report.counts.passwords_generated = 0;
    } else {
        report.outcome = if c.skipped > 0 {
            Outcome::AppliedWithErrors
        } else {
            Outcome::Applied
        };
    }
    if opts.dry_run {
        drop(tx); // rolls back
        report.run_id = None;
    } else if report.outcome == Outcome::Rejected {
        record_run(&tx, ctx, tenant, opts, &mut report, None, Delivery::None)?;
        tx.commit()?;
    } else {
        let delivery = match &opts.passwords_out {
            _ if issued.is_empty() => Delivery::None,
            Some(path) => {
                write_passwords(path, issued)?;
                Delivery::File
            }
            None => Delivery::Attach(issued),
        };
        let recorded = record_run(&tx, ctx, tenant, opts, &mut report, None, delivery)
            .and_then(|_| Ok(tx.commit()?));
        if let (Err(_), Some(path)) = (&recorded, &opts.passwords_out)
            && !issued.is_empty()
        {
            // Passwords of users that were never created.
            let _ = std::fs::remove_file(path);
        }
        recorded?;
    }
    Ok(report)
}

/// Write `new-passwords.csv` to `path`, which must not exist yet: created
/// with mode 0600 and synced before the import commits, so the passwords of
/// committed users are never lost.
pub fn write_passwords(path: &Path, issued: &Issued) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    let written = f.write_all(&issued.to_csv()).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        anyhow::bail!("cannot write {}: {e}", path.display());
    }
    Ok(())
}

/// Hold an import whose rows are applied inside `tx` but passed a hold
/// threshold (`why`): keep its change list for the email, undo every row,
/// and record the run as held (its upload waits in state `held`), all in one
/// transaction.
pub(crate) fn hold(
    tx: rusqlite::Transaction<'_>,
    ctx: &ImportContext,
    tenant: &Tenant,
    opts: &ImportOptions,
    mut report: Report,
    why: String,
) -> anyhow::Result<Report> {
    // In file order before the email's room is reckoned from them.
    report.problems.sort_by_key(|p| p.line);
    let mut changes = Vec::new();
    if let Some(run_id) = report.run_id {
        journal::write_changes_csv(
            &tx,
            tenant.id,
            run_id,
            &mut changes,
            Composer::held_attachment_room(&report),
        )?;
    }
    crate::store::restart_transaction(&tx)?;
    let run_id = journal::next_run_id(&tx)?;
    report.run_id = Some(run_id);
    report.finished_at = timestamp(ctx.clock.now());
    report.outcome = Outcome::Held;
    // A held import generates nothing until it is approved and imported.
    report.counts.passwords_generated = 0;
    report.reason = Some(format!(
        "this file was held for review and nothing was applied yet: {why}. A broken export can look like this. If the changes are expected, support applies them with `rosterd import approve {sub} {run_id}`; otherwise fix the export and upload again (a newer upload replaces this one), or support discards it with `rosterd import discard {sub} {run_id}`",
        sub = tenant.subdomain
    ));
    // Its journal is gone with the rollback: the preview is what support
    // reviews (`rosterd runs SUB --id RUN --changes`).
    let preview = String::from_utf8_lossy(&changes).into_owned();
    record_run(
        &tx,
        ctx,
        tenant,
        opts,
        &mut report,
        Some(changes),
        Delivery::None,
    )?;
    crate::store::set_held_changes(&tx, run_id, &preview)?;
    tx.commit()?;
    Ok(report)
}

/// Finish a report that ended before any row was applied (rejected or
/// unchanged): stamp it and, unless a dry run, store it.
pub(crate) fn finish_early(
    conn: &Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    opts: &ImportOptions,
    mut report: Report,
) -> anyhow::Result<Report> {
    report.finished_at = timestamp(ctx.clock.now());
    if !opts.dry_run {
        let tx = conn.unchecked_transaction()?;
        record_run(&tx, ctx, tenant, opts, &mut report, None, Delivery::None)?;
        tx.commit()?;
    }
    Ok(report)
}
