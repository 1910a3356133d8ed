//! The `users.csv` import: rows are read as a stream, checked against the field
//! rules, matched to existing accounts, and applied in batches inside one
//! transaction. Argon2 runs only for passwords whose keyed fingerprint differs
//! from the stored one, and in parallel on all cores.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::fields::{self, AccessChange, Username};
use super::header::{Columns, FieldSet};
use super::{ImportContext, ImportOptions, Outcome, Problem, Report, Severity};
use crate::password;
use crate::store::{Tenant, school_name_key, timestamp};

/// Rows validated, looked up and hashed together. Large enough to keep both
/// cores busy hashing, small enough that memory stays flat.
const BATCH: usize = 1024;
/// How often a long import logs its progress.
const PROGRESS_EVERY: u64 = 50_000;

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

/// The header line of the users template.
pub fn template_header() -> String {
    UserField::ALL
        .iter()
        .map(|f| f.label())
        .collect::<Vec<_>>()
        .join(",")
}

/// A row that passed every field rule.
struct Row {
    line: u64,
    username: Username,
    password: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    school_id: Option<i64>,
    graduation_year: Option<i32>,
    access: AccessChange,
}

/// The tenant's schools, indexed the three ways a School cell may name them.
struct Schools {
    nces: HashMap<String, i64>,
    state: HashMap<String, i64>,
    name: HashMap<String, i64>,
}

impl Schools {
    fn load(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Self> {
        let mut s = Self {
            nces: HashMap::new(),
            state: HashMap::new(),
            name: HashMap::new(),
        };
        let mut stmt =
            conn.prepare("SELECT id, name, nces_id, state_id FROM schools WHERE tenant_id = ?1")?;
        let mut rows = stmt.query([tenant_id])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            s.name.insert(school_name_key(&r.get::<_, String>(1)?), id);
            if let Some(n) = r.get::<_, Option<String>>(2)? {
                s.nces.insert(n.trim().to_owned(), id);
            }
            if let Some(n) = r.get::<_, Option<String>>(3)? {
                s.state.insert(n.trim().to_lowercase(), id);
            }
        }
        Ok(s)
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

/// The stored account a row's username already belongs to.
struct Existing {
    id: i64,
    tenant_id: i64,
    username: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    school_id: Option<i64>,
    graduation_year: Option<i32>,
    access_type: Option<String>,
    password_fp: Option<Vec<u8>>,
}

/// What one valid row will do to the store.
enum Plan {
    Create {
        row: Row,
        fp: Option<Vec<u8>>,
    },
    Update {
        id: i64,
        merged: Merged,
        fp: Option<Vec<u8>>,
        password: Option<String>,
    },
    Unchanged,
    /// The username belongs to another tenant: a row error.
    Taken {
        row: Row,
    },
}

struct Merged {
    username: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    school_id: Option<i64>,
    graduation_year: Option<i32>,
    access_type: Option<String>,
}

/// Import `path` as `users.csv` for `tenant`.
pub fn import(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    path: &Path,
    opts: &ImportOptions,
) -> anyhow::Result<Report> {
    let mut report = super::new_report(ctx, tenant, "users", opts);
    let Some((mut rows, columns)) =
        super::open_csv::<UserField>(conn, tenant, path, opts, &mut report)?
    else {
        return super::finish_early(conn, ctx, tenant, opts, report);
    };
    let today = ctx
        .clock
        .now()
        .with_timezone(&ctx.timezone_of(tenant))
        .date_naive();
    let rules = Rules {
        columns: &columns,
        schools: Schools::load(conn, tenant.id)?,
        year_end: fields::school_year_end(today),
        oneroster_role: columns
            .header_of(UserField::AccessType)
            .map(super::header::header_key)
            .as_deref()
            == Some("role"),
    };
    let now = report.started_at.clone();
    let started = std::time::Instant::now();

    let tx = conn.transaction()?;
    // Usernames seen in this file: 128 bits of SHA-256 of the lowercase name
    // (collisions are beyond reach) and the line that first used it, so memory
    // stays small for million-row files.
    let mut seen: HashMap<u128, u64> = HashMap::new();
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
    let mut record = csv::StringRecord::new();
    while let Some(line) = rows.next(&mut record)? {
        report.counts.rows += 1;
        if report.counts.rows.is_multiple_of(PROGRESS_EVERY) {
            tracing::info!(tenant = %tenant.subdomain, rows = report.counts.rows, seconds = started.elapsed().as_secs_f64(), "import in progress");
        }
        match rules.check(&record, line) {
            Ok(row) => {
                let digest = Sha256::digest(row.username.key.as_bytes());
                let id = u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"));
                if let Some(&first) = seen.get(&id) {
                    report.counts.skipped += 1;
                    report.add(Problem {
                        line: Some(line),
                        column: rules.header(UserField::Username),
                        value: row.username.display.clone(),
                        severity: Severity::Error,
                        message: format!(
                            "this username already appears on line {first} of this file; each user may appear only once"
                        ),
                    });
                    continue;
                }
                seen.insert(id, line);
                batch.push(row);
            }
            Err(problems) => {
                report.counts.skipped += 1;
                for p in problems {
                    report.add(p);
                }
                // Remember the name so a later row with it is still a duplicate.
                let cell = columns.get(&record, UserField::Username);
                if let Ok(u) = Username::parse(cell) {
                    let digest = Sha256::digest(u.key.as_bytes());
                    seen.entry(u128::from_le_bytes(
                        digest[..16].try_into().expect("16 bytes"),
                    ))
                    .or_insert(line);
                }
            }
        }
        if batch.len() == BATCH {
            apply_batch(
                &tx,
                ctx,
                tenant,
                &rules,
                &now,
                std::mem::take(&mut batch),
                &mut report,
            )?;
        }
    }
    apply_batch(&tx, ctx, tenant, &rules, &now, batch, &mut report)?;
    drop(seen);

    report.problems.sort_by_key(|p| p.line);
    let c = report.counts;
    if c.rows == 0 {
        report.add(Problem {
            line: None,
            column: String::new(),
            value: String::new(),
            severity: Severity::Warning,
            message: "the file has a header but no data rows; nothing to import".into(),
        });
    }
    report.finished_at = timestamp(ctx.clock.now());
    if c.skipped * 2 > c.rows {
        // A broken export must not half-apply.
        drop(tx);
        super::reject(
            &mut report,
            format!(
                "more than half of the data rows ({} of {}) have errors, so the file was rejected as a whole and nothing was applied. This usually means a broken export; fix the problems listed and upload again",
                c.skipped, c.rows
            ),
        );
        report.counts.created = 0;
        report.counts.updated = 0;
        report.counts.unchanged = 0;
        return super::finish_early(conn, ctx, tenant, opts, report);
    }
    report.outcome = if c.skipped > 0 {
        Outcome::AppliedWithErrors
    } else {
        Outcome::Applied
    };
    if opts.dry_run {
        drop(tx); // rolls back
    } else {
        super::record_run(&tx, tenant.id, opts, &mut report)?;
        tx.commit()?;
    }
    tracing::info!(
        tenant = %tenant.subdomain,
        outcome = report.outcome.as_str(),
        rows = c.rows, created = c.created, updated = c.updated, unchanged = c.unchanged, skipped = c.skipped,
        seconds = started.elapsed().as_secs_f64(),
        dry_run = opts.dry_run,
        "users import finished"
    );
    Ok(report)
}

struct Rules<'a> {
    columns: &'a Columns<UserField>,
    schools: Schools,
    year_end: i32,
    oneroster_role: bool,
}

impl Rules<'_> {
    /// The column name for reports: as the file's header writes it.
    fn header(&self, field: UserField) -> String {
        self.columns
            .header_of(field)
            .unwrap_or(field.label())
            .to_owned()
    }

    /// Apply every field rule to one record; all problems of the row at once, so
    /// the district can fix them in one go.
    fn check(&self, record: &csv::StringRecord, line: u64) -> Result<Row, Vec<Problem>> {
        let mut problems = Vec::new();
        let width = self.columns.by_index.len();
        if record.len() > width && record.iter().skip(width).any(|v| !v.trim().is_empty()) {
            problems.push(Problem {
                line: Some(line),
                column: "(row)".into(),
                value: String::new(),
                severity: Severity::Error,
                message: format!(
                    "the row has {} fields but the header has {width}; a value probably holds a comma without quotes around it",
                    record.len()
                ),
            });
        }
        let mut fail = |field: UserField, value: &str, message: String| {
            problems.push(Problem {
                line: Some(line),
                column: self.header(field),
                value: if field == UserField::Password {
                    String::new()
                } else {
                    value.to_owned()
                },
                severity: Severity::Error,
                message,
            })
        };
        let cell = |f| self.columns.get(record, f);

        let username = Username::parse(cell(UserField::Username))
            .map_err(|m| fail(UserField::Username, cell(UserField::Username), m))
            .ok();
        let password = fields::parse_password(cell(UserField::Password))
            .map_err(|m| fail(UserField::Password, "", m))
            .ok()
            .flatten()
            .map(str::to_owned);
        let email = match cell(UserField::Email).trim() {
            "" => None,
            v => fields::EmailAddress::parse(v)
                .map_err(|m| fail(UserField::Email, v, m))
                .ok()
                .map(|e| e.as_str().to_owned()),
        };
        let first_name = fields::parse_name("First Name", cell(UserField::FirstName))
            .map_err(|m| fail(UserField::FirstName, cell(UserField::FirstName), m))
            .ok()
            .flatten();
        let last_name = fields::parse_name("Last Name", cell(UserField::LastName))
            .map_err(|m| fail(UserField::LastName, cell(UserField::LastName), m))
            .ok()
            .flatten();
        let school_id = match cell(UserField::School).trim() {
            "" => None,
            v => {
                let found = self.schools.find(v);
                if found.is_none() {
                    fail(
                        UserField::School,
                        v,
                        "no school of this district matches by NCES ID, state ID or name; use one of those exactly as registered, or ask support to add the school".into(),
                    );
                }
                found
            }
        };
        let graduation_year =
            fields::parse_graduation_year(cell(UserField::GraduationYear), self.year_end)
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
            Some(username) if problems.is_empty() => Ok(Row {
                line,
                username,
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

fn find_existing(tx: &Connection, key: &str) -> rusqlite::Result<Option<Existing>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, tenant_id, username, email, first_name, last_name, school_id, graduation_year, access_type, password_fp
         FROM users WHERE username_key = ?1",
    )?;
    stmt.query_row([key], |r| {
        Ok(Existing {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            username: r.get(2)?,
            email: r.get(3)?,
            first_name: r.get(4)?,
            last_name: r.get(5)?,
            school_id: r.get(6)?,
            graduation_year: r.get(7)?,
            access_type: r.get(8)?,
            password_fp: r.get(9)?,
        })
    })
    .optional()
}

/// Decide what each row does, hash the passwords that changed (in parallel),
/// then write.
fn apply_batch(
    tx: &Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    rules: &Rules<'_>,
    now: &str,
    batch: Vec<Row>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut plans = Vec::with_capacity(batch.len());
    for row in batch {
        let fp = row
            .password
            .as_deref()
            .map(|p| ctx.fingerprinter.fingerprint(&row.username.key, p));
        let plan = match find_existing(tx, &row.username.key)? {
            None => {
                if row.password.is_none() && !tenant.sso {
                    report.add(Problem {
                        line: Some(row.line),
                        column: rules.header(UserField::Password),
                        value: String::new(),
                        severity: Severity::Warning,
                        message: "new user without a password: the account cannot sign in until a password is set (fine if your district signs in with SSO; ask support to mark it)".into(),
                    });
                }
                Plan::Create { row, fp }
            }
            Some(old) if old.tenant_id != tenant.id => Plan::Taken { row },
            Some(old) => {
                let access_type = match row.access {
                    AccessChange::Keep => old.access_type.clone(),
                    AccessChange::Remove => None,
                    AccessChange::Set(a) => Some(a.as_str().to_owned()),
                };
                let merged = Merged {
                    username: row.username.display.clone(),
                    email: row.email.clone().or(old.email.clone()),
                    first_name: row.first_name.clone().or(old.first_name.clone()),
                    last_name: row.last_name.clone().or(old.last_name.clone()),
                    school_id: row.school_id.or(old.school_id),
                    graduation_year: row.graduation_year.or(old.graduation_year),
                    access_type,
                };
                let password_changed = fp.is_some() && fp != old.password_fp;
                let same = merged.username == old.username
                    && merged.email == old.email
                    && merged.first_name == old.first_name
                    && merged.last_name == old.last_name
                    && merged.school_id == old.school_id
                    && merged.graduation_year == old.graduation_year
                    && merged.access_type == old.access_type;
                if same && !password_changed {
                    Plan::Unchanged
                } else {
                    let (fp, password) = if password_changed {
                        (fp, row.password)
                    } else {
                        (None, None)
                    };
                    Plan::Update {
                        id: old.id,
                        merged,
                        fp,
                        password,
                    }
                }
            }
        };
        plans.push(plan);
    }

    // Argon2 for exactly the passwords that are new or changed, on all cores.
    let hashes: Vec<Option<String>> = plans
        .par_iter()
        .map(|plan| match plan {
            Plan::Create { row, .. } => row.password.as_deref().map(password::hash),
            Plan::Update { password, .. } => password.as_deref().map(password::hash),
            _ => None,
        })
        .collect();

    let mut insert = tx.prepare_cached(
        "INSERT INTO users (tenant_id, username, username_key, email, first_name, last_name, school_id,
            graduation_year, access_type, password_hash, password_fp, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE users SET username = ?2, email = ?3, first_name = ?4, last_name = ?5, school_id = ?6,
            graduation_year = ?7, access_type = ?8, password_hash = COALESCE(?9, password_hash),
            password_fp = COALESCE(?10, password_fp), updated_at = ?11
         WHERE id = ?1",
    )?;
    for (plan, hash) in plans.into_iter().zip(hashes) {
        match plan {
            Plan::Create { row, fp } => {
                let access = match row.access {
                    AccessChange::Set(a) => Some(a.as_str()),
                    _ => None,
                };
                insert.execute(params![
                    tenant.id,
                    row.username.display,
                    row.username.key,
                    row.email,
                    row.first_name,
                    row.last_name,
                    row.school_id,
                    row.graduation_year,
                    access,
                    hash,
                    fp,
                    now
                ])?;
                report.counts.created += 1;
            }
            Plan::Update { id, merged, fp, .. } => {
                update.execute(params![
                    id,
                    merged.username,
                    merged.email,
                    merged.first_name,
                    merged.last_name,
                    merged.school_id,
                    merged.graduation_year,
                    merged.access_type,
                    hash,
                    fp,
                    now
                ])?;
                report.counts.updated += 1;
            }
            Plan::Unchanged => report.counts.unchanged += 1,
            Plan::Taken { row } => {
                report.counts.skipped += 1;
                report.add(Problem {
                    line: Some(row.line),
                    column: rules.header(UserField::Username),
                    value: row.username.display,
                    severity: Severity::Error,
                    message: "this username is already in use by another account in the system; usernames must be unique across all districts, so choose another (for example, add your district's prefix)".into(),
                });
            }
        }
    }
    Ok(())
}
