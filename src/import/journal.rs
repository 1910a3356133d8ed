//! The change journal: every applied users import records, per user and in
//! the import's own transaction, what it did and the values it replaced
//! (passwords as their hash only). From it a run's changes are listed
//! (`rosterd runs SUB --id N --changes`, a held import's `changes.csv`) and a
//! run is undone (`rosterd runs undo SUB N`), itself a journaled run.

use std::collections::HashMap;

use rusqlite::Connection;

use super::{ImportContext, ImportOptions, Outcome, Report, Source};
use crate::store::Tenant;

pub(crate) use crate::store::journal::field;
use crate::store::journal::{self as stored, COLUMNS};

/// One run's journal as it is written: its changes to existing users, each
/// with the previous values of the fields it touches (an update of one name
/// keeps one name), gathered and stored a batch at a time as one row of
/// `user_changes` (a JSON array of `[user, change, before]`), so journaling
/// costs an import one insert per batch, not one per user.
#[derive(Default)]
pub(crate) struct Journal {
    run_id: i64,
    seq: i64,
    /// Entries not stored yet, comma-separated, and how many.
    pending: Vec<u8>,
    entries: usize,
}

/// Entries per stored row, where the journal gathers them itself (the
/// importer stores one row per batch of its reader stage).
pub(crate) const BATCH: usize = 1024;

impl Journal {
    pub(crate) fn new(run_id: i64) -> Self {
        Self {
            run_id,
            ..Self::default()
        }
    }

    /// Entries made by [`push_entry`] (the importer's reader stage makes them).
    pub(crate) fn extend(&mut self, entries: &[u8]) {
        if entries.is_empty() {
            return;
        }
        if !self.pending.is_empty() {
            self.pending.push(b',');
        }
        self.pending.extend_from_slice(entries);
    }

    /// Record that `change` is about to modify user `user`, whose fields
    /// it touches are now `before` (a JSON object).
    pub(crate) fn add(&mut self, user: i64, change: &str, before: &[u8]) {
        push_entry(&mut self.pending, user, change, before);
        self.entries += 1;
    }

    /// [`Journal::flush`] once `n` entries are gathered.
    pub(crate) fn flush_every(&mut self, tx: &Connection, n: usize) -> rusqlite::Result<()> {
        if self.entries >= n {
            self.flush(tx)?;
        }
        Ok(())
    }

    /// Record that `change` (`deactivated`, `restored`) is about to modify
    /// the fields `mask` of user `user`, reading their values now.
    pub(crate) fn record(
        &mut self,
        tx: &Connection,
        user: i64,
        change: &str,
        mask: u16,
    ) -> rusqlite::Result<()> {
        let before = stored::user_values(tx, user, mask)?;
        self.add(user, change, before.as_bytes());
        Ok(())
    }

    /// Store the entries gathered so far as one row.
    pub(crate) fn flush(&mut self, tx: &Connection) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.seq += 1;
        let mut text = Vec::with_capacity(self.pending.len() + 2);
        text.push(b'[');
        text.extend_from_slice(&self.pending);
        text.push(b']');
        self.pending.clear();
        self.entries = 0;
        let text = String::from_utf8(text)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        stored::insert_batch(tx, self.run_id, self.seq, &text)?;
        Ok(())
    }
}

/// Write the JSON object of the fields `mask` (see [`COLUMNS`]) to `out`,
/// `value(i)` giving the stored value of `COLUMNS[i]`.
pub(crate) fn write_before<'a>(
    out: &mut Vec<u8>,
    mask: u16,
    value: impl Fn(usize) -> rusqlite::Result<rusqlite::types::ValueRef<'a>>,
) -> rusqlite::Result<()> {
    use rusqlite::types::ValueRef;
    use std::io::Write as _;
    out.push(b'{');
    let mut first = true;
    for (i, &(bit, key, _, _)) in COLUMNS.iter().enumerate() {
        if bit & mask == 0 {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        let _ = write!(out, "\"{key}\":");
        match value(i)? {
            ValueRef::Null => out.extend_from_slice(b"null"),
            ValueRef::Integer(n) => {
                let _ = write!(out, "{n}");
            }
            ValueRef::Real(f) => {
                let _ = write!(out, "{f}");
            }
            ValueRef::Text(t) => {
                let t = std::str::from_utf8(t)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                serde_json::to_writer(&mut *out, t)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            }
            // The password fingerprint, as hex (JSON holds no blobs).
            ValueRef::Blob(b) => {
                out.push(b'"');
                for byte in b {
                    let _ = write!(out, "{byte:02X}");
                }
                out.push(b'"');
            }
        }
    }
    out.push(b'}');
    Ok(())
}

/// Append the entry `[user,"change",before]` to `out` (comma-separated);
/// `before` is a JSON object.
pub(crate) fn push_entry(out: &mut Vec<u8>, user: i64, change: &str, before: &[u8]) {
    use std::io::Write as _;
    if !out.is_empty() {
        out.push(b',');
    }
    let _ = write!(out, "[{user},\"{change}\",");
    out.extend_from_slice(before);
    out.push(b']');
}

/// One journaled thing a run did to a user; `before` is `None` for a user
/// the run created.
struct Entry {
    user: i64,
    change: String,
    before: Option<Values>,
}

/// Everything run `run_id` of `tenant_id` did, in the order done (the
/// users it created first, then its changes), a stored batch at a time, so
/// memory stays bounded however large the run.
fn for_each_entry(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
    mut each: impl FnMut(Entry) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for user in stored::created_by(conn, tenant_id, run_id)? {
        each(Entry {
            user,
            change: "created".into(),
            before: None,
        })?;
    }
    stored::for_each_batch(conn, run_id, |entries| {
        for e in decode(entries)? {
            each(e)?;
        }
        Ok(())
    })
}

/// The users run `run_id` created or changed.
fn users_of(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
) -> anyhow::Result<std::collections::HashSet<i64>> {
    let mut users = std::collections::HashSet::new();
    for_each_entry(conn, tenant_id, run_id, |e| {
        users.insert(e.user);
        Ok(())
    })?;
    Ok(users)
}

/// Each change of the runs after `run_id`, oldest first, with its run.
fn for_each_later(
    conn: &Connection,
    run_id: i64,
    mut each: impl FnMut(i64, Entry),
) -> anyhow::Result<()> {
    stored::for_each_later_batch(conn, run_id, |run, entries| {
        for e in decode(entries)? {
            each(run, e);
        }
        Ok(())
    })
}

fn decode(entries: &str) -> anyhow::Result<Vec<Entry>> {
    let raw: Vec<(i64, String, Values)> = serde_json::from_str(entries)?;
    Ok(raw
        .into_iter()
        .map(|(user, change, before)| Entry {
            user,
            change,
            before: Some(before),
        })
        .collect())
}

type Values = serde_json::Map<String, serde_json::Value>;

/// The field mask of a journaled `before` object.
fn mask_of(before: &Values) -> u16 {
    COLUMNS
        .iter()
        .filter(|c| before.contains_key(c.1))
        .fold(0, |m, c| m | c.0)
}

fn object(json: &str) -> anyhow::Result<Values> {
    Ok(serde_json::from_str(json)?)
}

/// The id the run being imported will have: taken while the import holds
/// the write lock, so no other run can take it first.
pub(crate) fn next_run_id(conn: &Connection) -> rusqlite::Result<i64> {
    crate::store::next_run_id(conn)
}

/// One line of a run's change list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub username: String,
    /// `created`, `updated`, `reactivated`, `deactivated`, `restored`.
    pub change: String,
    /// The field that changed; empty for a creation.
    pub field: &'static str,
    pub before: String,
    pub after: String,
}

/// Every change run `run_id` of `tenant_id` made, by username, one line per
/// field that changed. "After" is the value the run left: the user's value
/// now, or, where a later run changed the user again, what that run found.
pub fn for_each_change(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
    mut each: impl FnMut(Change) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let schools = stored::school_names(conn, tenant_id)?;
    // What later runs found, for the users they changed again, oldest first
    // (none for the newest run, or a held import's preview).
    let mut later: HashMap<i64, Values> = HashMap::new();
    let any_later = stored::any_changes_after(conn, run_id)?;
    if any_later {
        let users = users_of(conn, tenant_id, run_id)?;
        for_each_later(conn, run_id, |_, e| {
            if users.contains(&e.user)
                && let Some(before) = e.before
            {
                // Only the first later value of each field is ever shown.
                let first = later.entry(e.user).or_default();
                for (key, value) in before {
                    first.entry(key).or_insert(value);
                }
            }
        })?;
    }
    let mut users_now = stored::UsersNow::new(conn, tenant_id)?;
    let blank = |username: String, change: String| Change {
        username,
        change,
        field: "",
        before: String::new(),
        after: String::new(),
    };
    for_each_entry(conn, tenant_id, run_id, |e| {
        let Entry {
            user,
            change,
            before,
        } = e;
        let (username, now) = users_now.get(user)?;
        let Some(before) = before else {
            return each(blank(username, change));
        };
        let now = object(&now)?;
        let later = later.get(&user);
        let null = serde_json::Value::Null;
        let mut any = false;
        for &(_, key, _, label) in &COLUMNS {
            let (Some(label), Some(was)) = (label, before.get(key)) else {
                continue;
            };
            // The value this run left: what the next run to change it found.
            let after = later
                .and_then(|l| l.get(key))
                .or_else(|| now.get(key))
                .unwrap_or(&null);
            if was == after {
                continue;
            }
            any = true;
            let (b, a) = if key == "password_hash" {
                // Never a hash: only that it changed.
                let b = if was.is_null() { "" } else { "(set)" };
                (b.to_owned(), "(changed)".to_owned())
            } else {
                (
                    show_value(key, was, &schools),
                    show_value(key, after, &schools),
                )
            };
            each(Change {
                username: username.clone(),
                change: change.clone(),
                field: label,
                before: b,
                after: a,
            })?;
        }
        if !any {
            each(blank(username, change))?;
        }
        Ok(())
    })
}

fn show_value(key: &str, v: &serde_json::Value, schools: &HashMap<i64, String>) -> String {
    use serde_json::Value;
    match (key, v) {
        (_, Value::Null) => String::new(),
        ("school_id", Value::Number(n)) => n
            .as_i64()
            .and_then(|id| schools.get(&id).cloned())
            .unwrap_or_else(|| n.to_string()),
        ("active", Value::Number(n)) => if n.as_i64() == Some(0) {
            "inactive"
        } else {
            "active"
        }
        .to_owned(),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// The header of a change list as CSV.
pub const CHANGES_HEADER: [&str; 5] = ["Username", "Change", "Field", "Before", "After"];

impl Change {
    /// The change as a CSV record under [`CHANGES_HEADER`], values as
    /// reports echo them (capped, hidden characters escaped).
    pub fn cells(&self) -> [std::borrow::Cow<'_, str>; 5] {
        use crate::domain::text::{ECHO_CHARS, echo};
        [
            echo(&self.username, ECHO_CHARS),
            self.change.as_str().into(),
            self.field.into(),
            echo(&self.before, ECHO_CHARS),
            echo(&self.after, ECHO_CHARS),
        ]
    }
}

/// A run's changes as CSV (cells neutralised for spreadsheets), stopping
/// before `max_bytes` with a note row saying how many lines were left out:
/// the `changes.csv` of a held import's email.
pub fn write_changes_csv(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
    out: &mut Vec<u8>,
    max_bytes: usize,
) -> anyhow::Result<()> {
    let mut w = crate::domain::text::CsvOut::new(out);
    w.row(CHANGES_HEADER)?;
    let mut left_out: u64 = 0;
    for_each_change(conn, tenant_id, run_id, |c| {
        w.flush()?;
        if w.written() + 4 * 1024 > max_bytes {
            left_out += 1;
            return Ok(());
        }
        w.row(c.cells())?;
        Ok(())
    })?;
    if left_out > 0 {
        let note = format!(
            "{} more changes are not listed here (the list is cut to fit an email); support can list all of them with `rosterd runs SUB --id {run_id} --changes`",
            crate::domain::report::thousands(left_out)
        );
        w.row(["", "note", "", "", note.as_str()])?;
    }
    w.flush()?;
    Ok(())
}

/// What an undo did or, as a dry run, would do.
#[derive(Debug)]
pub struct Undo {
    pub report: Report,
    pub restored: u64,
    pub deactivated: u64,
}

/// Undo run `run_id` of `tenant`: put back every value it changed and
/// deactivate the users it created, provided no later run changed the same
/// users (the error names the runs in the way). With `apply` the undo is
/// committed as a run of its own (journaled, so it can be undone in turn)
/// and its report emailed; without, nothing changes.
pub fn undo(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    run_id: i64,
    apply: bool,
) -> anyhow::Result<Undo> {
    let stored::RunForUndo {
        kind,
        outcome,
        resolution,
        changed,
    } = stored::run_for_undo(conn, tenant.id, run_id)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no run {run_id}; `rosterd runs {}` lists them",
            tenant.subdomain,
            tenant.subdomain
        )
    })?;
    anyhow::ensure!(
        matches!(kind.as_str(), "users" | "undo" | "passwords"),
        "run {run_id} is a {kind} import; only users imports, password resets (and undos) are journaled and can be undone"
    );
    anyhow::ensure!(
        outcome == "applied" || outcome == "applied_with_errors",
        "run {run_id} changed nothing (it was {outcome}), so there is nothing to undo"
    );
    if let Some(r) = resolution.filter(|r| r.starts_with("undone")) {
        anyhow::bail!("run {run_id} is {r} already; undo that run to redo it");
    }
    anyhow::ensure!(
        changed > 0,
        "run {run_id} changed no user, so there is nothing to undo"
    );
    let journaled = stored::is_journaled(conn, tenant.id, run_id)?;
    anyhow::ensure!(
        journaled,
        "run {run_id} has no change journal (it was imported by a version of rosterd before the journal), so it cannot be undone"
    );
    // Journal rows name the undo's run before it is stored.
    super::without_foreign_keys(conn, |conn| undo_fk_off(conn, ctx, tenant, run_id, apply))
}

fn undo_fk_off(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    run_id: i64,
    apply: bool,
) -> anyhow::Result<Undo> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let users = users_of(&tx, tenant.id, run_id)?;
    // A later run and the undo that took it back (itself not undone) cancel
    // out: neither is in the way.
    let mut cancelled = std::collections::HashSet::new();
    for (undo, undone) in stored::undos_after(&tx, tenant.id, run_id)? {
        cancelled.insert(undo);
        cancelled.insert(undone);
    }
    let mut blockers = std::collections::BTreeSet::new();
    for_each_later(&tx, run_id, |later, e| {
        if users.contains(&e.user) && !cancelled.contains(&later) {
            blockers.insert(later);
        }
    })?;
    if !blockers.is_empty() {
        let list: Vec<String> = blockers.iter().map(|b| b.to_string()).collect();
        anyhow::bail!(
            "run {run_id} cannot be undone: later runs changed some of the same users ({}). Undo those first, newest first (`rosterd runs undo {} RUN`), or leave run {run_id} as it is",
            list.join(", "),
            tenant.subdomain
        );
    }
    let undo_id = next_run_id(&tx)?;
    let opts = ImportOptions {
        dry_run: !apply,
        force: true,
        source: Source::Cli,
        upload_id: None,
        file_name: format!("undo of run {run_id}"),
        email: true,
        holds: None,
        additions_only: false,
        notes: Vec::new(),
        generate_passwords: false,
        passwords_out: None,
    };
    let mut report = super::new_report(ctx, tenant, "undo", &opts);
    let now = ctx.clock.now().timestamp();
    let (mut restored, mut deactivated) = (0, 0);
    {
        let mut journal = Journal::new(undo_id);
        let mut restorer = stored::Restorer::new(&tx)?;
        // One entry per user: a run changes each user once.
        for_each_entry(&tx, tenant.id, run_id, |e| {
            report.counts.rows += 1;
            match e.before {
                // Created by the run: deactivated (never deleted).
                None => {
                    if restorer.is_active(e.user)? {
                        journal.record(&tx, e.user, "deactivated", field::ACTIVE)?;
                        restorer.deactivate(e.user, now)?;
                        deactivated += 1;
                    } else {
                        report.counts.unchanged += 1;
                    }
                }
                Some(values) => {
                    // A school removed since cannot be put back.
                    if let Some(school) = values.get("school_id").and_then(|v| v.as_i64())
                        && !stored::school_exists(&tx, tenant.id, school)?
                    {
                        anyhow::bail!(
                            "run {run_id} cannot be undone: it would put users back in a school that was removed since; nothing was changed"
                        );
                    }
                    journal.record(&tx, e.user, "restored", mask_of(&values))?;
                    restorer.restore(
                        e.user,
                        &serde_json::Value::Object(values).to_string(),
                        now,
                    )?;
                    restored += 1;
                }
            }
            Ok(journal.flush_every(&tx, BATCH)?)
        })?;
        journal.flush(&tx)?;
    }
    report.counts.updated = restored;
    report.counts.deactivated = deactivated;
    report.outcome = Outcome::Applied;
    report.finished_at = crate::store::timestamp(ctx.clock.now());
    if apply {
        report.run_id = Some(undo_id);
        super::record_run(
            &tx,
            ctx,
            tenant,
            &opts,
            &mut report,
            None,
            super::Delivery::None,
        )?;
        stored::record_undo(&tx, undo_id, run_id)?;
        tx.commit()?;
    } else {
        drop(tx); // a dry run changes nothing
    }
    Ok(Undo {
        report,
        restored,
        deactivated,
    })
}
