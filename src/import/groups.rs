//! The group assignments import (`rosterd import groups`): puts existing users
//! into groups. Each row names a user, and an owner, a group, or both:
//!
//! - owner and group: the user joins the named group, which is created with
//!   that owner if it does not exist;
//! - owner only: the user joins the owner's default group, created once;
//! - group only: the user joins the group, created without an owner;
//! - neither: a warning, nothing to do.
//!
//! An owner is an existing user of the district with Administrator, School
//! Administrator or Manager access, named by username or else by a "First
//! Last" name that only one such user has. Decoding, header matching, the
//! report, the single transaction and the rejection rules are those of
//! `users.csv`.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;

use super::fields::{AccessType, Username};
use super::header::{Columns, FieldSet};
use super::{ImportContext, ImportOptions, Problem, Report, Severity};
use crate::store::{Tenant, school_name_key as name_key};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupField {
    Username,
    OwnerName,
    GroupName,
}

impl FieldSet for GroupField {
    const ALL: &'static [Self] = &[Self::Username, Self::OwnerName, Self::GroupName];
    const REQUIRED: Self = Self::Username;

    fn label(self) -> &'static str {
        match self {
            Self::Username => "Username",
            Self::OwnerName => "Owner Name",
            Self::GroupName => "Group Name",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::Username => &["user", "userid", "login", "member", "membername"],
            Self::OwnerName => &["owner", "ownerusername", "groupowner", "teacher"],
            Self::GroupName => &["group", "class", "classname", "section"],
        }
    }
}

/// The longest group name accepted.
const MAX_GROUP_NAME: usize = 200;

/// Import `path` as group assignments for `tenant`.
pub fn import(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    path: &Path,
    opts: &ImportOptions,
) -> anyhow::Result<Report> {
    let mut report = super::new_report(ctx, tenant, "groups", opts);
    let Some((mut rows, columns)) = super::open_csv::<GroupField>(
        conn,
        tenant,
        path,
        opts,
        &mut report,
        &super::progress::Silent,
    )?
    else {
        return super::finish_early(conn, ctx, tenant, opts, report);
    };
    let now = ctx.clock.now().timestamp();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut rules = Rules {
        tx: &tx,
        tenant,
        columns: &columns,
        owners: Owners::load(&tx, tenant.id)?,
        now,
    };
    let mut record = csv::StringRecord::new();
    loop {
        let line = match rows.next(&mut record) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(super::decode::ReadError::Unreadable(why)) => {
                drop(rules);
                drop(tx); // rolls back every row applied before the limit
                return super::reject_unreadable(conn, ctx, tenant, opts, report, why.0);
            }
            Err(e) => return Err(e.into()),
        };
        report.counts.rows += 1;
        match rules.apply(&record, line)? {
            Ok(Joined::New) => report.counts.created += 1,
            Ok(Joined::Already) => report.counts.unchanged += 1,
            Ok(Joined::Nothing(warning)) => {
                report.counts.unchanged += 1;
                report.add(warning);
            }
            Err(problems) => {
                report.counts.skipped += 1;
                for p in problems {
                    report.add(p);
                }
            }
        }
    }
    let report = super::conclude(tx, ctx, tenant, opts, report, &Default::default())?;
    tracing::info!(
        district = %tenant.subdomain,
        run = report.run_id,
        outcome = report.outcome.as_str(),
        rows = report.counts.rows,
        joined = report.counts.created,
        skipped = report.counts.skipped,
        dry_run = opts.dry_run,
        "groups import finished"
    );
    Ok(report)
}

enum Joined {
    New,
    Already,
    /// A row that asks for nothing, with its warning.
    Nothing(Problem),
}

/// The district's users who may own groups, by username and by full name.
struct Owners {
    by_username: HashMap<String, Owner>,
    by_name: HashMap<String, Vec<Owner>>,
}

#[derive(Debug, Clone)]
struct Owner {
    id: i64,
    username: String,
    full_name: String,
}

impl Owners {
    fn load(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Self> {
        let mut owners = Self {
            by_username: HashMap::new(),
            by_name: HashMap::new(),
        };
        for crate::store::OwnerCandidate {
            id,
            username,
            first_name: first,
            last_name: last,
            access_type: access,
        } in crate::store::owner_candidates(conn, tenant_id)?
        {
            if AccessType::from_stored(&access).is_none() {
                continue;
            }
            let full_name = format!("{first} {last}").trim().to_owned();
            let owner = Owner {
                id,
                username: username.clone(),
                full_name: full_name.clone(),
            };
            owners
                .by_username
                .insert(username.to_lowercase(), owner.clone());
            if !full_name.is_empty() {
                owners
                    .by_name
                    .entry(name_key(&full_name))
                    .or_default()
                    .push(owner);
            }
        }
        Ok(owners)
    }
}

struct Rules<'a> {
    tx: &'a Connection,
    tenant: &'a Tenant,
    columns: &'a Columns<GroupField>,
    owners: Owners,
    now: i64,
}

impl Rules<'_> {
    /// Check one row and, if it passes, apply it. The outer error is the
    /// store's; the inner one the row's problems.
    fn apply(
        &mut self,
        record: &csv::StringRecord,
        line: u64,
    ) -> anyhow::Result<Result<Joined, Vec<Problem>>> {
        let mut problems: Vec<Problem> =
            super::extra_fields(record, self.columns.by_index.len(), line)
                .into_iter()
                .collect();
        let problem = |field: GroupField, value: &str, message: String| Problem {
            line: Some(line),
            column: self.columns.name_of(field),
            value: value.to_owned(),
            severity: Severity::Error,
            message,
            who: None,
        };
        let cell = |f| self.columns.get(record, f).trim();

        let user_cell = cell(GroupField::Username);
        let user = match Username::parse(user_cell) {
            Err(m) => {
                problems.push(problem(GroupField::Username, user_cell, m));
                None
            }
            Ok(u) => match self.user_id(&u.key)? {
                Some(id) => Some(id),
                None => {
                    problems.push(problem(
                        GroupField::Username,
                        user_cell,
                        format!(
                            "no user {:?} in this district; create it with users.csv first, or check the spelling",
                            u.display
                        ),
                    ));
                    None
                }
            },
        };

        let owner_cell = cell(GroupField::OwnerName);
        let owner = if owner_cell.is_empty() {
            None
        } else {
            match self.find_owner(owner_cell)? {
                Ok(owner) => Some(owner),
                Err(m) => {
                    problems.push(problem(GroupField::OwnerName, owner_cell, m));
                    None
                }
            }
        };

        let group_cell = cell(GroupField::GroupName);
        let group_name = group_cell.split_whitespace().collect::<Vec<_>>().join(" ");
        if group_name.chars().count() > MAX_GROUP_NAME {
            problems.push(problem(
                GroupField::GroupName,
                group_cell,
                format!("Group Name must be at most {MAX_GROUP_NAME} characters long"),
            ));
        } else if group_name.chars().any(char::is_control) {
            problems.push(problem(
                GroupField::GroupName,
                group_cell,
                "Group Name contains a line break or control character".into(),
            ));
        }
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        let Some(user) = user else {
            return Ok(Err(problems));
        };

        let group = match (owner, group_name.is_empty()) {
            (None, true) => {
                return Ok(Ok(Joined::Nothing(Problem {
                    line: Some(line),
                    column: format!(
                        "{}, {}",
                        self.columns.name_of(GroupField::OwnerName),
                        self.columns.name_of(GroupField::GroupName)
                    ),
                    value: String::new(),
                    severity: Severity::Warning,
                    message: "neither an owner nor a group is given, so the user joins no group; add an Owner Name, a Group Name or both".into(),
                    who: None,
                })));
            }
            (Some(owner), true) => self.default_group(&owner)?,
            (owner, false) => match self.named_group(&group_name, owner.as_ref())? {
                Ok(id) => id,
                Err(m) => {
                    return Ok(Err(vec![problem(GroupField::GroupName, group_cell, m)]));
                }
            },
        };
        let added = crate::store::add_member(self.tx, group, user)?;
        Ok(Ok(if added { Joined::New } else { Joined::Already }))
    }

    fn user_id(&self, key: &str) -> rusqlite::Result<Option<i64>> {
        crate::store::user_id_by_key(self.tx, self.tenant.id, key)
    }

    /// The owner a cell names: by username, else by a full name only one
    /// owner has. The error says what to change.
    fn find_owner(&self, text: &str) -> rusqlite::Result<Result<Owner, String>> {
        if let Some(o) = self.owners.by_username.get(&text.to_lowercase()) {
            return Ok(Ok(o.clone()));
        }
        match self.owners.by_name.get(&name_key(text)).map(Vec::as_slice) {
            Some([one]) => return Ok(Ok(one.clone())),
            Some(many @ [_, _, ..]) => {
                let names: Vec<&str> = many.iter().map(|o| o.username.as_str()).collect();
                return Ok(Err(format!(
                    "{} users with Administrator, School Administrator or Manager access are named {text:?} ({}); give the owner's username instead",
                    many.len(),
                    names.join(", ")
                )));
            }
            _ => {}
        }
        // Not an owner: say whether the user exists without the access.
        let found = crate::store::user_named(self.tx, self.tenant.id, text)?;
        Ok(Err(if found == Some(false) {
            format!(
                "{text:?} is deactivated (absent from a complete users.csv, or its creation undone), and only an active user can own groups"
            )
        } else if found.is_some() {
            format!(
                "{text:?} cannot own groups: an owner needs Administrator, School Administrator or Manager access (set it in users.csv)"
            )
        } else {
            format!(
                "no user {text:?} in this district; Owner Name takes the owner's username or first and last name"
            )
        }))
    }

    /// The owner's default group, created on first use.
    fn default_group(&self, owner: &Owner) -> rusqlite::Result<i64> {
        if let Some(id) = crate::store::default_group(self.tx, owner.id)? {
            return Ok(id);
        }
        let who = if owner.full_name.is_empty() {
            &owner.username
        } else {
            &owner.full_name
        };
        // Keyed by owner, with a character no group name may hold, so it
        // never clashes with a named group.
        crate::store::add_group(
            self.tx,
            self.tenant.id,
            &format!("{who}'s group"),
            &format!("\u{1}default:{}", owner.id),
            Some(owner.id),
            true,
            self.now,
        )
    }

    /// The group named `name`, created (with `owner`, if any) when missing. A
    /// group that already has another owner is an error.
    fn named_group(
        &self,
        name: &str,
        owner: Option<&Owner>,
    ) -> rusqlite::Result<Result<i64, String>> {
        let key = name_key(name);
        let found = crate::store::group_by_key(self.tx, self.tenant.id, &key)?
            .map(|g| (g.id, g.owner_id, g.owner_username));
        match (found, owner) {
            (Some((_, Some(current), current_name)), Some(o)) if current != o.id => {
                Ok(Err(format!(
                    "group {name:?} belongs to {}, not {}; leave Owner Name blank to join it, or use another group name",
                    current_name.unwrap_or_default(),
                    o.username
                )))
            }
            (Some((id, None, _)), Some(o)) => {
                crate::store::set_group_owner(self.tx, id, o.id)?;
                Ok(Ok(id))
            }
            (Some((id, _, _)), _) => Ok(Ok(id)),
            (None, owner) => {
                let id = crate::store::add_group(
                    self.tx,
                    self.tenant.id,
                    name,
                    &key,
                    owner.map(|o| o.id),
                    false,
                    self.now,
                )?;
                Ok(Ok(id))
            }
        }
    }
}
