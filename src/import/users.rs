//! The `users.csv` import: rows are read as a stream, checked against the field
//! rules, matched to existing accounts, and applied in batches inside one
//! transaction. Argon2 runs only for passwords whose keyed fingerprint differs
//! from the stored one, and in parallel on all cores.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::fields::{self, AccessChange};
use super::header::{Columns, FieldSet};
use super::progress::{Phase, Progress, Silent};
use super::{ImportContext, ImportOptions, Problem, Report, Severity, journal};
use crate::domain::credentials::{Issued, IssuedPassword};
use crate::password;
use crate::store::{Tenant, school_name_key};
use zeroize::Zeroizing;

/// Rows validated, looked up and hashed together. Large enough to keep both
/// cores busy hashing, small enough that memory stays flat.
const BATCH: usize = 1024;

/// The columns of `users.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserField {
    Username,
    Password,
    Email,
    FirstName,
    LastName,
    School,
    GraduationYear,
    AccessType,
}

impl FieldSet for UserField {
    const ALL: &'static [Self] = &[
        Self::Username,
        Self::Password,
        Self::Email,
        Self::FirstName,
        Self::LastName,
        Self::School,
        Self::GraduationYear,
        Self::AccessType,
    ];
    const REQUIRED: Self = Self::Username;

    fn label(self) -> &'static str {
        match self {
            Self::Username => "Username",
            Self::Password => "Password",
            Self::Email => "Email Address",
            Self::FirstName => "First Name",
            Self::LastName => "Last Name",
            Self::School => "School",
            Self::GraduationYear => "Graduation Year",
            Self::AccessType => "Access Type",
        }
    }

    fn verbatim(self) -> bool {
        self == Self::Password
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::Username => &[
                "user",
                "userid",
                "login",
                "loginid",
                "loginname",
                "signinname",
                "accountname",
            ],
            Self::Password => &["pass", "passwd", "pwd", "userpassword"],
            Self::Email => &["email", "mail", "emailaddr", "useremail"],
            Self::FirstName => &["first", "fname", "givenname", "forename"],
            Self::LastName => &["last", "lname", "familyname", "surname"],
            Self::School => &["schoolname", "schoolid", "building", "campus", "ncesid"],
            Self::GraduationYear => &[
                "gradyear",
                "graduation",
                "classof",
                "yearofgraduation",
                "grade",
                "gradelevel",
                "grades",
            ],
            Self::AccessType => &["access", "accesslevel", "role"],
        }
    }
}

/// A row that passed every field rule, its text still in the CSV record.
struct Valid<'r> {
    line: u64,
    username: &'r str,
    /// The lowercase username, which uniqueness uses.
    key: Cow<'r, str>,
    password: Option<&'r str>,
    email: Option<&'r str>,
    first_name: Option<&'r str>,
    last_name: Option<&'r str>,
    school_id: Option<i64>,
    graduation_year: Option<i32>,
    access: AccessChange,
}

impl Valid<'_> {
    /// Copy the row's text into its batch's [`Text`].
    fn store(self, text: &mut Text) -> Row {
        let username = text.push(self.username);
        Row {
            line: self.line,
            username,
            key: match self.key {
                Cow::Borrowed(_) => username,
                Cow::Owned(key) => text.push(&key),
            },
            password: self.password.map(|v| text.push(v)),
            email: self.email.map(|v| text.push(v)),
            first_name: self.first_name.map(|v| text.push(v)),
            last_name: self.last_name.map(|v| text.push(v)),
            school_id: self.school_id,
            graduation_year: self.graduation_year,
            access: self.access,
        }
    }
}

/// A valid row in its batch: its text is spans of the batch's [`Text`].
#[derive(Clone, Copy)]
struct Row {
    line: u64,
    username: Span,
    /// The lowercase username (the same span when it is lowercase already).
    key: Span,
    password: Option<Span>,
    email: Option<Span>,
    first_name: Option<Span>,
    last_name: Option<Span>,
    school_id: Option<i64>,
    graduation_year: Option<i32>,
    access: AccessChange,
}

/// The text of one batch's rows, end to end. A batch costs a few allocations
/// instead of several per row, and the writer thread frees one buffer rather
/// than thousands of small strings the reader thread made, which glibc's
/// allocator handles slowly (it showed as a tenth of the reader's time).
#[derive(Default)]
struct Text(String);

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Text {
    fn push(&mut self, value: &str) -> Span {
        let start = self.0.len();
        self.0.push_str(value);
        Span {
            start,
            end: self.0.len(),
        }
    }

    fn get(&self, span: Span) -> &str {
        &self.0[span.start..span.end]
    }

    fn opt(&self, span: Option<Span>) -> Option<&str> {
        span.map(|s| self.get(s))
    }
}

/// The district's schools, indexed the three ways a School cell may name them.
struct Schools {
    nces: HashMap<String, i64>,
    state: HashMap<String, i64>,
    name: HashMap<String, i64>,
    /// (name key, how a person knows it: `Lincoln Elementary (NCES
    /// 062271003230)`), for suggestions.
    listed: Vec<(String, String)>,
}

/// What the rows' School cells were found to be, remembered per distinct
/// cell: a district's file names its few schools over and over.
#[derive(Default)]
struct SchoolMemo {
    found: HashMap<String, Option<i64>>,
    /// The error for a cell that matches nothing, with its suggestions.
    unknown: HashMap<String, String>,
}

/// Distinct cells remembered; beyond this (only a file of made-up school
/// names gets there) cells are matched one by one. Cells longer than
/// [`MEMO_CELL_MAX`] are never remembered, so the memo stays small whatever
/// the file.
const MEMO_MAX: usize = 4096;
const MEMO_CELL_MAX: usize = 256;
/// Distinct unknown cells that get suggestions (the report shows the first
/// 50 problems): each costs an edit distance against every school.
const SUGGESTED_MAX: usize = 64;

impl Schools {
    fn load(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Self> {
        let mut s = Self {
            nces: HashMap::new(),
            state: HashMap::new(),
            name: HashMap::new(),
            listed: Vec::new(),
        };
        crate::store::for_each_school(conn, tenant_id, |id, name, nces, state| {
            let shown = match &nces {
                Some(n) => format!("{name} (NCES {})", n.trim()),
                None => name.clone(),
            };
            s.listed.push((school_name_key(&name), shown));
            s.name.insert(school_name_key(&name), id);
            if let Some(n) = nces {
                s.nces.insert(n.trim().to_owned(), id);
            }
            if let Some(n) = state {
                s.state.insert(n.trim().to_lowercase(), id);
            }
        })?;
        Ok(s)
    }

    /// [`Self::find`], remembering the answer per distinct cell.
    fn find_memo(&self, cell: &str, memo: &mut SchoolMemo) -> Option<i64> {
        if let Some(&found) = memo.found.get(cell) {
            return found;
        }
        let found = self.find(cell);
        if memo.found.len() < MEMO_MAX && cell.len() <= MEMO_CELL_MAX {
            memo.found.insert(cell.to_owned(), found);
        }
        found
    }

    /// Why `cell` matches no school, naming the closest registered ones.
    fn unknown(&self, cell: &str, memo: &mut SchoolMemo) -> String {
        if let Some(why) = memo.unknown.get(cell) {
            return why.clone();
        }
        let mut why = "no school of this district matches by NCES ID, state ID or name".to_owned();
        let remembered = memo.unknown.len() < SUGGESTED_MAX && cell.len() <= MEMO_CELL_MAX;
        if remembered {
            let closest = self.closest(cell);
            if !closest.is_empty() {
                why.push_str(&format!("; did you mean {}?", closest.join(" or ")));
            }
        }
        why.push_str("; use a school's name, NCES ID or state ID exactly as registered (support lists them with `rosterd school list`), or ask support to add the school");
        if remembered {
            memo.unknown.insert(cell.to_owned(), why.clone());
        }
        why
    }

    /// The (at most two) registered schools whose names are nearest `cell`,
    /// if any is near: a typo, a missing word.
    fn closest(&self, cell: &str) -> Vec<&str> {
        let key = school_name_key(cell);
        let mut near: Vec<(usize, &str)> = self
            .listed
            .iter()
            .filter_map(|(name, shown)| {
                let allowed = 2.max(name.chars().count() / 3);
                let contains = key.len() >= 4 && name.contains(&key);
                // Lengths further apart than the allowed edits: not near,
                // and no distance to compute.
                if !contains && name.len().abs_diff(key.len()) > allowed {
                    return None;
                }
                let distance = edit_distance(&key, name);
                (distance <= allowed || contains).then_some((distance, shown.as_str()))
            })
            .collect();
        near.sort();
        near.into_iter().take(2).map(|(_, shown)| shown).collect()
    }

    /// NCES ID first, then state ID, then name.
    fn find(&self, cell: &str) -> Option<i64> {
        let v = cell.trim();
        self.nces
            .get(v)
            .or_else(|| self.state.get(&v.to_lowercase()))
            .or_else(|| self.name.get(&school_name_key(v)))
            .copied()
    }
}

/// Levenshtein distance in characters, for school suggestions (names are
/// short; capped at 64 characters each, so a hostile cell costs little).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// What the store holds for a row's username, as far as the plan needs it.
struct Existing {
    id: i64,
    tenant_id: i64,
    /// The fields the row would change ([`journal::field`]; blank cells keep
    /// the stored value, so they never differ; a deactivated user is
    /// reactivated): none, and the row changes nothing.
    changed: u16,
    /// The password fingerprint equals the row's (or the row gives none).
    same_password: bool,
    /// Not deactivated (a deactivated user the file lists is reactivated).
    active: bool,
}

/// What one valid row will do to the store.
enum Plan {
    /// Insert the row, with a `generated` password when it gives none and
    /// the district has them generated.
    Create {
        row: Row,
        fp: Option<Vec<u8>>,
        generated: Option<Zeroizing<String>>,
    },
    /// Set the row's non-blank values (and the password, if `fp` is given);
    /// `reactivate` a deactivated user.
    Update {
        id: i64,
        row: Row,
        fp: Option<Vec<u8>>,
        reactivate: bool,
    },
    Unchanged,
    /// A change to an existing user, not applied: the district is paused for
    /// additions only.
    KeptBack,
    /// The username belongs to another district: a row error.
    Taken {
        row: Row,
    },
}

/// Import `path` as `users.csv` for `tenant`.
pub fn import(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    path: &Path,
    opts: &ImportOptions,
) -> anyhow::Result<Report> {
    import_with_progress(conn, ctx, tenant, path, opts, &Silent)
}

/// [`import`], telling `progress` how far it has got ([`super::progress`]).
pub fn import_with_progress(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    path: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> anyhow::Result<Report> {
    // Every school id a row stores comes from this district's schools, and
    // schools, districts and uploads are never deleted, so the checks could
    // never fail, while they cost a lookup per row and make SQLite journal
    // every statement.
    let report = super::without_foreign_keys(conn, |conn| {
        import_fk_off(conn, ctx, tenant, path, opts, progress)
    });
    progress.end();
    report
}

fn import_fk_off(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    path: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> anyhow::Result<Report> {
    let generate_passwords = tenant.generate_passwords || opts.generate_passwords;
    anyhow::ensure!(
        !generate_passwords || opts.dry_run || opts.email || opts.passwords_out.is_some(),
        "{} has passwords generated for new users, so this import must deliver them: email the report, or write them to a file",
        tenant.subdomain
    );
    let mut report = super::new_report(ctx, tenant, "users", opts);
    let Some((rows, columns)) =
        super::open_csv::<UserField>(conn, tenant, path, opts, &mut report, progress)?
    else {
        return super::finish_early(conn, ctx, tenant, opts, report);
    };
    let today = ctx
        .clock
        .now()
        .with_timezone(&ctx.timezone_of(tenant))
        .date_naive();
    let rules = Rules {
        generate_passwords,
        ..Rules::new(
            columns,
            Some(Schools::load(conn, tenant.id)?),
            fields::school_year_end(today),
        )
    };
    let now = ctx.clock.now().timestamp();
    let started = std::time::Instant::now();

    // Take the write lock first, so the reader stage's snapshot below is exactly
    // the state this import writes over.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // A district's first import only creates: every row goes straight to INSERT,
    // and a clash on the username can only be another district's user.
    let first_import = crate::store::has_no_users(&tx, tenant.id)?;
    // The district's active users before this import: what hold
    // thresholds are measured against.
    let active = crate::store::active_users(&tx, tenant.id)?;
    let run_id = journal::next_run_id(&tx)?;
    report.run_id = Some(run_id);
    let lookup = if first_import {
        None
    } else {
        Some(crate::store::read_snapshot(&tx)?)
    };
    // Two stages on two cores: this thread applies batches to the store while a
    // reader thread parses and checks the rows that follow.
    let (to_apply, batches) = std::sync::mpsc::sync_channel::<Checked>(4);
    let mut journal = journal::Journal::new(run_id);
    let mut issuing = Issuing::new(&tx, tenant, generate_passwords)?;
    progress.phase(Phase::Rows, rows.rows_hint().map(|n| n as u64));
    let applied = std::thread::scope(|scope| -> anyhow::Result<Seen> {
        let reader = scope.spawn(|| {
            read_rows(
                rows,
                &rules,
                ctx,
                tenant,
                lookup,
                opts.additions_only,
                to_apply,
                progress,
            )
        });
        for checked in batches {
            report.counts.rows += checked.rows;
            report.counts.skipped += checked.skipped;
            for p in checked.problems {
                report.add(p);
            }
            write_batch(
                &tx,
                tenant,
                &rules,
                now,
                run_id,
                checked.plans,
                &checked.text,
                &mut report,
                &mut issuing,
            )?;
            journal.extend(&checked.journal);
            journal.flush(&tx)?;
        }
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("the CSV reader thread panicked"))?
    });
    if let Err(e) = &applied
        && let Some(why) = super::unreadable(e)
    {
        drop(tx); // rolls back every row applied before the limit
        return super::reject_unreadable(conn, ctx, tenant, opts, report, why);
    }
    let seen = applied?;
    if issuing.created_without_email > 0 && !tenant.sso {
        // The seed: "If you are not using SSO and do not import an email
        // address, the user cannot verify their account ownership and reset
        // a lost password." Once per file, not once per row.
        let n = issuing.created_without_email;
        report.add(Problem {
            line: None,
            column: rules.columns.name_of(UserField::Email),
            value: String::new(),
            severity: Severity::Warning,
            message: format!(
                "{} new {} no Email Address: without SSO, a user without one cannot verify the account or reset a lost password; add the addresses to the file (support can set new passwords meanwhile)",
                crate::domain::report::thousands(n),
                if n == 1 { "user has" } else { "users have" }
            ),
            who: None,
        });
    }
    progress.phase(Phase::Finishing, None);
    // Full sync: a complete file's omissions are deactivated. Never from a
    // file without data rows, nor while paused for additions only.
    if tenant.absent == crate::domain::safety::Absent::Deactivate
        && !first_import
        && report.counts.rows > 0
    {
        if opts.additions_only {
            // Withheld like every other change to an existing user, and said.
            let absent = absent_users(&tx, tenant, &seen)?.len() as u64;
            report.counts.deactivations_kept_back = absent;
            report.counts.kept_back += absent;
        } else {
            report.counts.deactivated = deactivate_absent(&tx, tenant, &mut journal, now, &seen)?;
        }
    }
    drop(seen);
    let hold = opts.holds.and_then(|limits| {
        let c = report.counts;
        limits.hold_reason(active, c.updated + c.reactivated, c.deactivated)
    });
    let report = match hold {
        // A file rejected for its errors is reported as rejected, not held.
        Some(why) if !opts.dry_run && report.counts.skipped * 2 <= report.counts.rows => {
            super::hold(tx, ctx, tenant, opts, report, why)?
        }
        _ => super::conclude(tx, ctx, tenant, opts, report, &issuing.issued)?,
    };
    let c = report.counts;
    tracing::info!(
        district = %tenant.subdomain,
        run = report.run_id,
        outcome = report.outcome.as_str(),
        rows = c.rows, created = c.created, updated = c.updated, unchanged = c.unchanged, skipped = c.skipped,
        seconds = started.elapsed().as_secs_f64(),
        dry_run = opts.dry_run,
        "users import finished"
    );
    Ok(report)
}

/// The district's active users whose username `seen` does not hold.
fn absent_users(tx: &Connection, tenant: &Tenant, seen: &Seen) -> anyhow::Result<Vec<i64>> {
    let mut absent: Vec<i64> = Vec::new();
    crate::store::for_each_active_user(tx, tenant.id, |id, key| {
        if !seen.contains_key(&NameId::of(key)) {
            absent.push(id);
        }
    })?;
    Ok(absent)
}

/// Deactivate the district's active users whose username `seen` does not hold,
/// journaling each; returns how many.
fn deactivate_absent(
    tx: &Connection,
    tenant: &Tenant,
    journal: &mut journal::Journal,
    now: i64,
    seen: &Seen,
) -> anyhow::Result<u64> {
    let absent = absent_users(tx, tenant, seen)?;
    let mut deactivate = crate::store::Deactivator::new(tx)?;
    for &id in &absent {
        // Only active users are deactivated: that is all they had before.
        journal.add(id, "deactivated", br#"{"active":1}"#);
        deactivate.deactivate(id, now)?;
        journal.flush_every(tx, super::journal::BATCH)?;
    }
    journal.flush(tx)?;
    Ok(absent.len() as u64)
}

/// Each valid row's plan, with the hash of the password it sets.
type Planned = Vec<(Plan, Option<String>)>;

/// One batch from the reader stage: the rows that passed every rule, and the
/// problems of those that did not.
struct Checked {
    rows: u64,
    skipped: u64,
    plans: Planned,
    problems: Vec<Problem>,
    /// The text of the rows in `plans`.
    text: Text,
    /// The journal entries of the updates in `plans` ([`journal::push_entry`]).
    journal: Vec<u8>,
}

/// Hashes a key that is already a digest by keeping its first 64 bits: the
/// duplicate check's keys are SHA-256 prefixes, which SipHash would only
/// hash again for every row.
#[derive(Default, Clone, Copy)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl std::hash::BuildHasher for DigestHasher {
    type Hasher = Self;
    fn build_hasher(&self) -> Self {
        Self(0)
    }
}

/// The reader stage: parse, check and de-duplicate rows, handing them on in
/// batches. Returns when the file ends or the applying stage hangs up.
#[allow(clippy::too_many_arguments)]
fn read_rows(
    mut rows: super::decode::CsvRows,
    rules: &Rules,
    ctx: &ImportContext,
    tenant: &Tenant,
    lookup: Option<Connection>,
    additions_only: bool,
    to_apply: std::sync::mpsc::SyncSender<Checked>,
    progress: &dyn Progress,
) -> anyhow::Result<Seen> {
    let mut seen: Seen =
        HashMap::with_capacity_and_hasher(rows.rows_hint().unwrap_or(0), DigestHasher::default());
    let mut valid: Vec<Row> = Vec::with_capacity(BATCH);
    let fresh = || Checked {
        rows: 0,
        skipped: 0,
        plans: Vec::new(),
        problems: Vec::new(),
        text: Text::default(),
        journal: Vec::new(),
    };
    let mut batch = fresh();
    let mut record = csv::StringRecord::new();
    let mut school_memo = SchoolMemo::default();
    while let Some(line) = rows.next(&mut record)? {
        batch.rows += 1;
        match rules.check(&record, line, &mut school_memo) {
            Ok(row) => match seen.entry(NameId::of(&row.key)) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    batch.skipped += 1;
                    batch.problems.push(Problem {
                        line: Some(line),
                        column: rules.columns.name_of(UserField::Username),
                        value: row.username.to_owned(),
                        severity: Severity::Error,
                        message: format!(
                            "this username already appears on line {} of this file; each user may appear only once",
                            first.get()
                        ),
                        who: rules.who(&record),
                    });
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(first_line(line));
                    valid.push(row.store(&mut batch.text));
                }
            },
            Err(problems) => {
                batch.skipped += 1;
                let who = rules.who(&record);
                batch.problems.extend(problems.into_iter().map(|p| Problem {
                    who: who.clone(),
                    ..p
                }));
                // Remember the name so a later row with it is still a duplicate.
                if let Ok(u) =
                    fields::check_username(rules.columns.get(&record, UserField::Username))
                {
                    seen.entry(NameId::of(&fields::username_key(u)))
                        .or_insert(first_line(line));
                }
            }
        }
        // A batch also ends at as many problems, so a file of bad rows cannot
        // gather them all in one.
        if valid.len() == BATCH || batch.problems.len() >= BATCH {
            (batch.plans, batch.journal) = plan_batch(
                lookup.as_ref(),
                ctx,
                tenant,
                (additions_only, rules.generate_passwords),
                std::mem::take(&mut valid),
                &batch.text,
                progress,
            )?;
            progress.advance(unhashed(&batch));
            if to_apply
                .send(std::mem::replace(&mut batch, fresh()))
                .is_err()
            {
                return Ok(seen); // the applying stage stopped; its error is reported there
            }
        }
    }
    (batch.plans, batch.journal) = plan_batch(
        lookup.as_ref(),
        ctx,
        tenant,
        (additions_only, rules.generate_passwords),
        valid,
        &batch.text,
        progress,
    )?;
    progress.advance(unhashed(&batch));
    let _ = to_apply.send(batch);
    Ok(seen)
}

/// The rows of a planned batch that [`plan_batch`] did not count as it hashed
/// their passwords.
fn unhashed(batch: &Checked) -> u64 {
    batch.rows - batch.plans.iter().filter(|(_, h)| h.is_some()).count() as u64
}

/// Usernames a file lists (valid rows and rows with errors alike) and the
/// line that first used each, in 16 bytes a name so memory stays small for
/// million-row files (32 MiB at 1,000,000 rows, sized once from the line
/// count of the first pass).
type Seen = HashMap<NameId, u32, DigestHasher>;

/// 96 bits of SHA-256 of a lowercase username: collisions are beyond reach
/// (about 10^-17 for a million names).
#[derive(Clone, Copy, PartialEq, Eq)]
struct NameId([u32; 3]);

impl NameId {
    fn of(key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let word = |i: usize| u32::from_le_bytes(digest[i..i + 4].try_into().expect("4 bytes"));
        Self([word(0), word(4), word(8)])
    }
}

impl std::hash::Hash for NameId {
    /// The first 64 bits: already a digest.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[0]) | u64::from(self.0[1]) << 32);
    }
}

/// A line number as [`Seen`] keeps it: a file long enough to pass `u32`
/// is far over the upload size limit, and would only be misnumbered.
fn first_line(line: u64) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

/// Every rule a row of `users.csv` must pass before it is matched to the
/// store: the field rules, extra fields, and the School cell against the
/// district's schools.
pub(crate) struct Rules {
    columns: Columns<UserField>,
    /// `None`: School cells are not looked at (the upload check, which has
    /// no store; the import finds what they name).
    schools: Option<Schools>,
    year_end: i32,
    /// A Graduation Year the following school year accepts passes too (the
    /// upload check: the upload may be imported after 1 July).
    next_year_too: bool,
    oneroster_role: bool,
    /// A user created without a password gets a generated one.
    generate_passwords: bool,
}

impl Rules {
    fn new(columns: Columns<UserField>, schools: Option<Schools>, year_end: i32) -> Self {
        let oneroster_role = columns
            .header_of(UserField::AccessType)
            .map(super::header::header_key)
            .as_deref()
            == Some("role");
        Self {
            columns,
            schools,
            year_end,
            next_year_too: false,
            oneroster_role,
            generate_passwords: false,
        }
    }

    /// The rules that need only the row itself, for the file whose header
    /// gave `columns`, as of the school year ending in `year_end`: a row
    /// they fail, the import fails too (whatever it finds in the store, and
    /// even when it runs after the next 1 July).
    pub(crate) fn row_alone(columns: Columns<UserField>, year_end: i32) -> Self {
        Self {
            next_year_too: true,
            ..Self::new(columns, None, year_end)
        }
    }

    /// The first problem of `record` (on `line`), if it has any.
    pub(crate) fn first_problem(&self, record: &csv::StringRecord, line: u64) -> Option<Problem> {
        self.check(record, line, &mut SchoolMemo::default())
            .err()
            .and_then(|problems| problems.into_iter().next())
    }

    fn graduation_year(&self, cell: &str) -> Result<Option<i32>, String> {
        fields::parse_graduation_year(cell, self.year_end).or_else(|why| match self.next_year_too {
            true => fields::parse_graduation_year(cell, self.year_end + 1).map_err(|_| why),
            false => Err(why),
        })
    }

    /// Whose row `record` is, for its problems.
    fn who(&self, record: &csv::StringRecord) -> Option<crate::domain::report::Who> {
        let cell = |f| self.columns.get(record, f);
        crate::domain::report::Who::of(
            cell(UserField::Username),
            cell(UserField::FirstName),
            cell(UserField::LastName),
        )
    }

    /// Apply every field rule to one record; all problems of the row at once, so
    /// the district can fix them in one go.
    fn check<'r>(
        &self,
        record: &'r csv::StringRecord,
        line: u64,
        school_memo: &mut SchoolMemo,
    ) -> Result<Valid<'r>, Vec<Problem>> {
        let mut problems = Vec::new();
        problems.extend(super::extra_fields(
            record,
            self.columns.by_index.len(),
            line,
        ));
        let mut fail = |field: UserField, value: &str, message: String| {
            problems.push(Problem {
                line: Some(line),
                column: self.columns.name_of(field),
                value: if field == UserField::Password {
                    String::new()
                } else {
                    value.to_owned()
                },
                severity: Severity::Error,
                message,
                who: None,
            })
        };
        let cell = |f| self.columns.get(record, f);

        let username = fields::check_username(cell(UserField::Username))
            .map_err(|m| fail(UserField::Username, cell(UserField::Username), m))
            .ok();
        let password = fields::parse_password(cell(UserField::Password))
            .map_err(|m| fail(UserField::Password, "", m))
            .ok()
            .flatten();
        let email = match cell(UserField::Email).trim() {
            "" => None,
            v => crate::domain::email::check_email(v)
                .map_err(|m| fail(UserField::Email, v, m))
                .ok(),
        };
        let first_name = fields::parse_name("First Name", cell(UserField::FirstName))
            .map_err(|m| fail(UserField::FirstName, cell(UserField::FirstName), m))
            .ok()
            .flatten();
        let last_name = fields::parse_name("Last Name", cell(UserField::LastName))
            .map_err(|m| fail(UserField::LastName, cell(UserField::LastName), m))
            .ok()
            .flatten();
        let school_id = match (cell(UserField::School).trim(), &self.schools) {
            ("", _) | (_, None) => None,
            (v, Some(schools)) => {
                let found = schools.find_memo(v, school_memo);
                if found.is_none() {
                    fail(UserField::School, v, schools.unknown(v, school_memo));
                }
                found
            }
        };
        let graduation_year = self
            .graduation_year(cell(UserField::GraduationYear))
            .map_err(|m| {
                fail(
                    UserField::GraduationYear,
                    cell(UserField::GraduationYear),
                    m,
                )
            })
            .ok()
            .flatten();
        let access = fields::parse_access_type(cell(UserField::AccessType), self.oneroster_role)
            .map_err(|m| fail(UserField::AccessType, cell(UserField::AccessType), m))
            .unwrap_or(AccessChange::Keep);
        match username {
            Some(username) if problems.is_empty() => Ok(Valid {
                line,
                username,
                key: fields::username_key(username),
                password,
                email,
                first_name,
                last_name,
                school_id,
                graduation_year,
                access,
            }),
            _ => Err(problems),
        }
    }
}

/// Look up the row's username and compare, in place, what is stored with what
/// the row gives: no stored value is copied out, but those the row would
/// change, written to `before` as the JSON object the journal keeps.
fn find_existing(
    stmt: &mut rusqlite::Statement<'_>,
    row: &Row,
    text: &Text,
    fp: Option<&[u8]>,
    before: &mut Vec<u8>,
) -> rusqlite::Result<Option<Existing>> {
    use crate::store::existing as col;
    use rusqlite::types::ValueRef;
    // A blank cell keeps the stored value, so only given values can differ.
    let keeps = |given: Option<Span>, stored: ValueRef<'_>| match (given, stored) {
        (None, _) => true,
        (Some(g), ValueRef::Text(t)) => text.get(g).as_bytes() == t,
        _ => false,
    };
    stmt.query_row([text.get(row.key)], |r| {
        let access_same = match (row.access, r.get_ref(col::ACCESS_TYPE)?) {
            (AccessChange::Keep, _) => true,
            (AccessChange::Remove, v) => v == ValueRef::Null,
            (AccessChange::Set(a), ValueRef::Text(t)) => t == a.as_str().as_bytes(),
            (AccessChange::Set(_), _) => false,
        };
        use journal::field;
        let differs = [
            (
                field::USERNAME,
                r.get_ref(col::USERNAME)? != ValueRef::Text(text.get(row.username).as_bytes()),
            ),
            (field::EMAIL, !keeps(row.email, r.get_ref(col::EMAIL)?)),
            (
                field::FIRST_NAME,
                !keeps(row.first_name, r.get_ref(col::FIRST_NAME)?),
            ),
            (
                field::LAST_NAME,
                !keeps(row.last_name, r.get_ref(col::LAST_NAME)?),
            ),
            (
                field::SCHOOL,
                !row.school_id
                    .is_none_or(|id| r.get_ref(col::SCHOOL_ID).ok() == Some(ValueRef::Integer(id))),
            ),
            (
                field::GRADUATION_YEAR,
                !row.graduation_year.is_none_or(|y| {
                    r.get_ref(col::GRADUATION_YEAR).ok() == Some(ValueRef::Integer(y.into()))
                }),
            ),
            (field::ACCESS_TYPE, !access_same),
        ];
        let mut changed = differs.iter().filter(|d| d.1).fold(0, |mask, d| mask | d.0);
        let same_password = match (fp, r.get_ref(col::PASSWORD_FP)?) {
            (None, _) => true,
            (Some(fp), ValueRef::Blob(stored)) => fp == stored,
            _ => false,
        };
        let active: bool = r.get(col::ACTIVE)?;
        if !same_password {
            changed |= field::PASSWORD;
        }
        if !active {
            changed |= field::ACTIVE;
        }
        before.clear();
        if changed != 0 {
            // The stored values in the journal's field order.
            let columns = [
                col::USERNAME,
                col::EMAIL,
                col::FIRST_NAME,
                col::LAST_NAME,
                col::SCHOOL_ID,
                col::GRADUATION_YEAR,
                col::ACCESS_TYPE,
                col::PASSWORD_HASH,
                col::PASSWORD_FP,
                col::ACTIVE,
            ];
            journal::write_before(before, changed, |i| r.get_ref(columns[i]))?;
        }
        Ok(Existing {
            id: r.get(col::ID)?,
            tenant_id: r.get(col::TENANT_ID)?,
            changed,
            same_password,
            active,
        })
    })
    .optional()
}

/// Decide what each row does and hash the passwords that are new or changed,
/// on all cores. Runs in the reader stage: `lookup` is a read snapshot taken
/// after the writer locked the database, and rows of one file never share a
/// username, so no lookup depends on a write of this import. `None` on a
/// district's first import, where every row is a creation. With
/// `generate_passwords`, a user created without a password gets a new one.
fn plan_batch(
    lookup: Option<&Connection>,
    ctx: &ImportContext,
    tenant: &Tenant,
    (additions_only, generate_passwords): (bool, bool),
    batch: Vec<Row>,
    text: &Text,
    progress: &dyn Progress,
) -> anyhow::Result<(Planned, Vec<u8>)> {
    let mut plans = Vec::with_capacity(batch.len());
    let (mut entries, mut before) = (Vec::new(), Vec::new());
    let mut lookup = lookup
        .map(crate::store::find_existing_statement)
        .transpose()?;
    for row in batch {
        let fp = text
            .opt(row.password)
            .map(|p| ctx.fingerprinter.fingerprint(text.get(row.key), p));
        let existing = match lookup.as_mut() {
            Some(stmt) => find_existing(stmt, &row, text, fp.as_deref(), &mut before)?,
            None => None,
        };
        let plan = match existing {
            None if generate_passwords && row.password.is_none() => {
                let generated = Zeroizing::new(crate::password::generate());
                Plan::Create {
                    fp: Some(ctx.fingerprinter.fingerprint(text.get(row.key), &generated)),
                    row,
                    generated: Some(generated),
                }
            }
            None => Plan::Create {
                row,
                fp,
                generated: None,
            },
            Some(old) if old.tenant_id != tenant.id => Plan::Taken { row },
            Some(old) if old.changed == 0 => Plan::Unchanged,
            Some(_) if additions_only => Plan::KeptBack,
            Some(old) => {
                let change = if old.active { "updated" } else { "reactivated" };
                journal::push_entry(&mut entries, old.id, change, &before);
                Plan::Update {
                    id: old.id,
                    fp: if old.same_password { None } else { fp },
                    row,
                    reactivate: !old.active,
                }
            }
        };
        plans.push(plan);
    }
    // Argon2 for exactly the passwords that are new or changed, on all cores.
    let password_to_hash = |plan: &Plan| new_password(plan, text).is_some();
    let hash = |plan: Plan| {
        let hash = new_password(&plan, text).map(password::hash);
        if hash.is_some() {
            // A row at a time: hashing is most of a first import's time.
            progress.advance(1);
        }
        (plan, hash)
    };
    if plans.iter().any(password_to_hash) {
        Ok((plans.into_par_iter().map(hash).collect(), entries))
    } else {
        Ok((plans.into_iter().map(hash).collect(), entries))
    }
}

/// The password `plan` sets: the row's, or a generated one for a new user.
fn new_password<'a>(plan: &'a Plan, text: &'a Text) -> Option<&'a str> {
    match plan {
        Plan::Create { row, generated, .. } => text
            .opt(row.password)
            .or(generated.as_ref().map(|g| g.as_str())),
        Plan::Update {
            row, fp: Some(_), ..
        } => text.opt(row.password),
        _ => None,
    }
}

/// The writer stage: apply one batch of plans inside the import's transaction.
///
/// Each change is journaled under `run_id` ([`journal`]): a created user
/// names the run, an update keeps the user's values from before it.
#[allow(clippy::too_many_arguments)]
fn write_batch(
    tx: &Connection,
    tenant: &Tenant,
    rules: &Rules,
    now: i64,
    run_id: i64,
    plans: Vec<(Plan, Option<String>)>,
    text: &Text,
    report: &mut Report,
    issued: &mut Issuing,
) -> anyhow::Result<()> {
    let mut writer = crate::store::UserWriter::new(tx)?;
    for (plan, hash) in plans {
        match plan {
            Plan::Create { row, fp, generated } => {
                let (_, access) = access_params(row.access);
                let inserted = writer.insert(&crate::store::NewUser {
                    tenant_id: tenant.id,
                    username: text.get(row.username),
                    username_key: text.get(row.key),
                    email: text.opt(row.email),
                    first_name: text.opt(row.first_name),
                    last_name: text.opt(row.last_name),
                    school_id: row.school_id,
                    graduation_year: row.graduation_year,
                    access_type: access,
                    password_hash: hash.as_deref(),
                    password_fp: fp.as_deref(),
                    now,
                    run_id,
                })?;
                if !inserted {
                    // Only on a first import do we insert without looking first.
                    taken(report, rules, &row, text);
                    continue;
                }
                report.counts.created += 1;
                if row.email.is_none() {
                    issued.created_without_email += 1;
                }
                if let Some(password) = generated {
                    report.counts.passwords_generated += 1;
                    issued.push(&row, text, password);
                } else if row.password.is_none() && !tenant.sso {
                    report.add_with(Severity::Warning, || Problem {
                        line: Some(row.line),
                        column: rules.columns.name_of(UserField::Password),
                        value: String::new(),
                        severity: Severity::Warning,
                        message: "new user without a password: the account cannot sign in until it has one. If your district does not sign in with SSO, ask support to have passwords generated for new users (they come with this report, to hand out); if it does, ask support to mark it as SSO".into(),
                        who: row_who(&row, text),
                    });
                }
            }
            Plan::Update {
                id,
                row,
                fp,
                reactivate,
            } => {
                let (keep_access, access) = access_params(row.access);
                writer.update(&crate::store::UserUpdate {
                    id,
                    username: text.get(row.username),
                    email: text.opt(row.email),
                    first_name: text.opt(row.first_name),
                    last_name: text.opt(row.last_name),
                    school_id: row.school_id,
                    graduation_year: row.graduation_year,
                    keep_access,
                    access_type: access,
                    password_hash: hash.as_deref(),
                    password_fp: fp.as_deref(),
                    now,
                })?;
                if reactivate {
                    report.counts.reactivated += 1;
                } else {
                    report.counts.updated += 1;
                }
            }
            Plan::Unchanged => report.counts.unchanged += 1,
            Plan::KeptBack => report.counts.kept_back += 1,
            Plan::Taken { row } => taken(report, rules, &row, text),
        }
    }
    Ok(())
}

/// An Access Type cell as statement parameters: whether to keep the stored
/// value, and the value to store otherwise (NULL removes privileges).
fn access_params(change: AccessChange) -> (bool, Option<&'static str>) {
    match change {
        AccessChange::Keep => (true, None),
        AccessChange::Remove => (false, None),
        AccessChange::Set(a) => (false, Some(a.as_str())),
    }
}

/// The passwords an import generates, as its rows are written: the
/// school of each is named from `schools` (loaded only when generating).
struct Issuing {
    issued: Issued,
    /// Users created without an email address.
    created_without_email: u64,
    schools: HashMap<i64, String>,
}

impl Issuing {
    fn new(conn: &Connection, tenant: &Tenant, generate: bool) -> rusqlite::Result<Self> {
        Ok(Self {
            issued: Issued::default(),
            created_without_email: 0,
            schools: if generate {
                crate::store::journal::school_names(conn, tenant.id)?
            } else {
                HashMap::new()
            },
        })
    }

    fn push(&mut self, row: &Row, text: &Text, password: Zeroizing<String>) {
        let school = row
            .school_id
            .and_then(|id| self.schools.get(&id).cloned())
            .unwrap_or_default();
        self.issued.push(IssuedPassword {
            username: text.get(row.username).to_owned(),
            first_name: text.opt(row.first_name).unwrap_or_default().to_owned(),
            last_name: text.opt(row.last_name).unwrap_or_default().to_owned(),
            school,
            password: password.to_string(),
        });
    }
}

/// Whose valid row `row` is, for its problems.
fn row_who(row: &Row, text: &Text) -> Option<crate::domain::report::Who> {
    crate::domain::report::Who::of(
        text.get(row.username),
        text.opt(row.first_name).unwrap_or_default(),
        text.opt(row.last_name).unwrap_or_default(),
    )
}

/// The row's username belongs to another district's user: a row error that does
/// not say which district.
fn taken(report: &mut Report, rules: &Rules, row: &Row, text: &Text) {
    report.counts.skipped += 1;
    report.add(Problem {
        line: Some(row.line),
        column: rules.columns.name_of(UserField::Username),
        value: text.get(row.username).to_owned(),
        severity: Severity::Error,
        message: "this username is already in use by another account in the system; usernames must be unique across all districts, so choose another (for example, add your district's prefix)".into(),
        who: row_who(row, text),
    });
}
