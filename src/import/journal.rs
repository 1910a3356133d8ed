//! The change journal: every applied users import records, per user and in
//! the import's own transaction, what it did and the values it replaced
//! (passwords as their hash only). From it a run's changes are listed
//! (`rosterd runs SUB --id N --changes`, a held import's `changes.csv`) and a
//! run is undone (`rosterd runs undo SUB N`), itself a journaled run.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{ImportContext, ImportOptions, Outcome, Report, Source};
use crate::store::Tenant;

/// A user's stored values as one JSON array, in the order [`FIELDS`] names
/// them; the password fingerprint as hex (JSON holds no blobs).
macro_rules! values_json {
    () => {
        "json_array(username, email, first_name, last_name, school_id, graduation_year, access_type,
            password_hash, CASE WHEN password_fp IS NULL THEN NULL ELSE hex(password_fp) END, active)"
    };
}

/// Journal a creation: (run, user).
pub(crate) const CREATED: &str =
    "INSERT INTO user_changes (run_id, user_id, change) VALUES (?1, ?2, 'created')";

/// Journal a change to an existing user before it is made: (run, user,
/// change), keeping the user's values as they are now.
pub(crate) const BEFORE: &str = concat!(
    "INSERT INTO user_changes (run_id, user_id, change, before) SELECT ?1, id, ?3, ",
    values_json!(),
    " FROM users WHERE id = ?2"
);

/// Put a journaled array of values back: (user, values, now).
const RESTORE: &str = "UPDATE users SET username = json_extract(?2, '$[0]'), email = json_extract(?2, '$[1]'),
    first_name = json_extract(?2, '$[2]'), last_name = json_extract(?2, '$[3]'),
    school_id = json_extract(?2, '$[4]'), graduation_year = json_extract(?2, '$[5]'),
    access_type = json_extract(?2, '$[6]'), password_hash = json_extract(?2, '$[7]'),
    password_fp = unhex(json_extract(?2, '$[8]')), active = json_extract(?2, '$[9]'), updated_at = ?3
    WHERE id = ?1";

/// The fields of the values array as the change list names them; `None`
/// for the fingerprint, which is never shown.
const FIELDS: [Option<&str>; 10] = [
    Some("Username"),
    Some("Email Address"),
    Some("First Name"),
    Some("Last Name"),
    Some("School"),
    Some("Graduation Year"),
    Some("Access Type"),
    Some("Password"),
    None,
    Some("Status"),
];

/// The id the run being imported will have: taken while the import holds
/// the write lock, so no other run can take it first.
pub(crate) fn next_run_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT coalesce(max(id), 0) + 1 FROM import_runs",
        [],
        |r| r.get(0),
    )
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
    let schools: HashMap<i64, String> = conn
        .prepare("SELECT id, name FROM schools WHERE tenant_id = ?1")?
        .query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // What later runs found, for users they changed again (the first of them).
    let mut later: HashMap<i64, Option<String>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT user_id, before FROM user_changes WHERE run_id > ?1
         AND user_id IN (SELECT user_id FROM user_changes WHERE run_id = ?1) ORDER BY id DESC",
    )?;
    for row in stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (user, before): (i64, Option<String>) = row?;
        later.insert(user, before); // the oldest later change wins
    }
    let mut stmt = conn.prepare(concat!(
        "SELECT c.user_id, c.change, c.before, u.username, ",
        values_json!(),
        " FROM user_changes c JOIN users u ON u.id = c.user_id
         WHERE c.run_id = ?1 AND u.tenant_id = ?2 ORDER BY u.username_key, c.id"
    ))?;
    let mut rows = stmt.query(params![run_id, tenant_id])?;
    while let Some(r) = rows.next()? {
        let user: i64 = r.get(0)?;
        let change: String = r.get(1)?;
        let before: Option<String> = r.get(2)?;
        let username: String = r.get(3)?;
        let now: String = r.get(4)?;
        let after = match later.get(&user) {
            Some(Some(found)) => found.clone(),
            _ => now,
        };
        let Some(before) = before else {
            each(Change {
                username,
                change,
                field: "",
                before: String::new(),
                after: String::new(),
            })?;
            continue;
        };
        let (before, after) = (values(&before)?, values(&after)?);
        let mut any = false;
        for (i, field) in FIELDS.iter().enumerate() {
            let Some(field) = field else { continue };
            if before[i] == after[i] {
                continue;
            }
            any = true;
            let show = |v: &serde_json::Value| show_value(i, v, &schools);
            let (b, a) = if *field == "Password" {
                // Never a hash: only that it changed.
                (
                    if before[i].is_null() { "" } else { "(set)" }.to_owned(),
                    "(changed)".to_owned(),
                )
            } else {
                (show(&before[i]), show(&after[i]))
            };
            each(Change {
                username: username.clone(),
                change: change.clone(),
                field,
                before: b,
                after: a,
            })?;
        }
        if !any {
            each(Change {
                username,
                change,
                field: "",
                before: String::new(),
                after: String::new(),
            })?;
        }
    }
    Ok(())
}

fn values(json: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let v: Vec<serde_json::Value> = serde_json::from_str(json)?;
    anyhow::ensure!(
        v.len() == FIELDS.len(),
        "a journal entry has {} values",
        v.len()
    );
    Ok(v)
}

fn show_value(i: usize, v: &serde_json::Value, schools: &HashMap<i64, String>) -> String {
    use serde_json::Value;
    match (FIELDS[i], v) {
        (_, Value::Null) => String::new(),
        (Some("School"), Value::Number(n)) => n
            .as_i64()
            .and_then(|id| schools.get(&id).cloned())
            .unwrap_or_else(|| n.to_string()),
        (Some("Status"), Value::Number(n)) => if n.as_i64() == Some(0) {
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
        use crate::text::{ECHO_CHARS, echo};
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
    let mut w = crate::text::CsvOut::new(out);
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
            super::report::thousands(left_out)
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
    let (kind, outcome, resolution): (String, String, Option<String>) = conn
        .query_row(
            "SELECT kind, outcome, resolution FROM import_runs WHERE id = ?1 AND tenant_id = ?2",
            params![run_id, tenant.id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} has no run {run_id}; `rosterd runs {}` lists them",
                tenant.subdomain,
                tenant.subdomain
            )
        })?;
    anyhow::ensure!(
        kind == "users" || kind == "undo",
        "run {run_id} is a {kind} import; only users imports (and undos) are journaled and can be undone"
    );
    anyhow::ensure!(
        outcome == "applied" || outcome == "applied_with_errors",
        "run {run_id} changed nothing (it was {outcome}), so there is nothing to undo"
    );
    if let Some(r) = resolution.filter(|r| r.starts_with("undone")) {
        anyhow::bail!("run {run_id} is {r} already; undo that run to redo it");
    }
    // Journal rows name the undo's run before it is stored (see users::import).
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = undo_fk_off(conn, ctx, tenant, run_id, apply);
    conn.pragma_update(None, "foreign_keys", true)?;
    result
}

fn undo_fk_off(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    run_id: i64,
    apply: bool,
) -> anyhow::Result<Undo> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let blockers: Vec<i64> = tx
        .prepare(
            "SELECT DISTINCT run_id FROM user_changes WHERE run_id > ?1
             AND user_id IN (SELECT user_id FROM user_changes WHERE run_id = ?1) ORDER BY run_id",
        )?
        .query_map([run_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
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
    };
    let mut report = super::new_report(ctx, tenant, "undo", &opts);
    let now = ctx.clock.now().timestamp();
    let (mut restored, mut deactivated) = (0, 0);
    {
        let entries: Vec<(i64, String, Option<String>, bool)> = tx
            .prepare(
                "SELECT c.user_id, c.change, c.before, u.active FROM user_changes c
                 JOIN users u ON u.id = c.user_id WHERE c.run_id = ?1 ORDER BY c.id DESC",
            )?
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut journal = tx.prepare_cached(BEFORE)?;
        let mut restore = tx.prepare_cached(RESTORE)?;
        let mut deactivate =
            tx.prepare_cached("UPDATE users SET active = 0, updated_at = ?2 WHERE id = ?1")?;
        for (user, _change, before, active) in entries {
            report.counts.rows += 1;
            match before {
                // Created by the run: deactivated (never deleted).
                None => {
                    if active {
                        journal.execute(params![undo_id, user, "deactivated"])?;
                        deactivate.execute(params![user, now])?;
                        deactivated += 1;
                    } else {
                        report.counts.unchanged += 1;
                    }
                }
                Some(values) => {
                    journal.execute(params![undo_id, user, "restored"])?;
                    restore.execute(params![user, values, now])?;
                    restored += 1;
                }
            }
        }
    }
    report.counts.updated = restored;
    report.counts.deactivated = deactivated;
    report.outcome = Outcome::Applied;
    report.finished_at = crate::store::timestamp(ctx.clock.now());
    if apply {
        report.run_id = Some(undo_id);
        super::record_run(&tx, ctx, tenant, &opts, &mut report, None)?;
        tx.execute(
            "UPDATE import_runs SET undoes = ?2 WHERE id = ?1",
            params![undo_id, run_id],
        )?;
        tx.execute(
            "UPDATE import_runs SET resolution = ?2 WHERE id = ?1",
            params![run_id, format!("undone by run {undo_id}")],
        )?;
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
