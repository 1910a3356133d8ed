//! The result of one import, as one value that every consumer renders: the CLI
//! summary, the problems CSV, the stored run history and the email.
//! Passwords never enter it: a password problem carries no value.

use std::fmt::Write as _;

use serde::Serialize;

use super::text;

/// Exit status of an import that was applied with some rows skipped.
pub const EXIT_ROW_ERRORS: i32 = 3;
/// The CLI's exit status for an import held for approval: nothing applied,
/// waiting for `rosterd import approve` (or discard).
pub const EXIT_HELD: i32 = 4;

/// How many problems a report keeps in full; counts stay exact beyond it.
pub const MAX_KEPT_PROBLEMS: usize = 10_000;
/// How many bytes of text the kept problems may hold in all (each value is
/// capped at [`text::ECHO_CHARS`] characters already).
pub const MAX_KEPT_PROBLEM_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }
}

/// One thing the district should fix (error: the row was skipped) or know
/// (warning: the row was applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Physical line where the record starts; `None` for whole-file problems.
    pub line: Option<u64>,
    /// The column as the file's header names it, or the field's name.
    pub column: String,
    /// The offending cell as written (empty for passwords).
    pub value: String,
    pub severity: Severity,
    pub message: String,
    /// Whose row it is, as the file names them: the administrator reading
    /// the report never sees the file, and a line number alone does not say
    /// which student to fix. `None` for whole-file problems.
    pub who: Option<Who>,
}

/// A row's person: its Username and First and Last Name cells as written
/// (never its password).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Who {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
}

impl Who {
    /// `None` when the row names nobody.
    pub fn of(username: &str, first_name: &str, last_name: &str) -> Option<Self> {
        let cell = |v: &str| text::echo(v.trim(), text::ECHO_CHARS).into_owned();
        let who = Self {
            username: cell(username),
            first_name: cell(first_name),
            last_name: cell(last_name),
        };
        (who != Self::default()).then_some(who)
    }

    /// `ada.l, Ada Lovelace`, `ada.l`, `Ada Lovelace`.
    pub fn describe(&self) -> String {
        let name = [self.first_name.as_str(), self.last_name.as_str()]
            .iter()
            .filter(|n| !n.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        [self.username.as_str(), name.as_str()]
            .iter()
            .filter(|n| !n.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Problem {
    /// The problem as reports may show it: the column and value it echoes
    /// from the file capped at [`text::ECHO_CHARS`] characters, the message
    /// at [`text::MESSAGE_CHARS`], hidden characters escaped in all three.
    pub fn made_safe(self) -> Self {
        fn safe(s: String, max: usize) -> String {
            match text::echo(&s, max) {
                std::borrow::Cow::Borrowed(_) => s,
                std::borrow::Cow::Owned(o) => o,
            }
        }
        Self {
            column: safe(self.column, text::ECHO_CHARS),
            value: safe(self.value, text::ECHO_CHARS),
            message: safe(self.message, text::MESSAGE_CHARS),
            ..self
        }
    }

    /// One line for people: `line 14 (ada.l, Ada Lovelace), School "Lincon":
    /// error no school matches …`.
    pub fn describe(&self) -> String {
        let line = match (self.line, &self.who) {
            (Some(l), Some(who)) => format!("line {l} ({})", who.describe()),
            (Some(l), None) => format!("line {l}"),
            (None, _) => "file".into(),
        };
        // The value is escaped already (see `Report::add`).
        let value = if self.value.is_empty() {
            String::new()
        } else {
            format!(" \"{}\"", self.value)
        };
        format!(
            "{line}, {}{value}: {} {}",
            self.column,
            self.severity.as_str(),
            self.message
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Data rows read (blank lines not counted).
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows skipped because they had at least one error.
    pub skipped: u64,
    pub errors: u64,
    pub warnings: u64,
    /// Users the file omits, deactivated (full sync), and inactive users it
    /// lists again, reactivated.
    pub deactivated: u64,
    pub reactivated: u64,
    /// Changes to existing users not applied because the district is paused
    /// for additions only, the deactivations below included.
    pub kept_back: u64,
    /// Of those, users the file omits that full sync would have deactivated.
    pub deactivations_kept_back: u64,
    /// Passwords generated for users created without one (the district's
    /// `--generate-passwords on`), or by a password reset.
    pub passwords_generated: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every row applied.
    Applied,
    /// Applied, but some rows were skipped for errors.
    AppliedWithErrors,
    /// Byte-identical to the last imported file: nothing to do.
    Unchanged,
    /// Nothing applied; `reason` says why.
    Rejected,
    /// Nothing applied yet: the changes passed a hold threshold and wait for
    /// support's approval (`reason` says which).
    Held,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::AppliedWithErrors => "applied_with_errors",
            Self::Unchanged => "unchanged",
            Self::Rejected => "rejected",
            Self::Held => "held",
        }
    }
}

/// Everything one import did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tenant: String,
    /// `users` or `groups`.
    pub kind: &'static str,
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
    pub encoding: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub dry_run: bool,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub counts: Counts,
    /// The first [`MAX_KEPT_PROBLEMS`] problems, in file order.
    pub problems: Vec<Problem>,
    /// Problems counted but not kept.
    pub problems_truncated: u64,
    /// Bytes of text the kept problems hold.
    #[serde(skip)]
    pub problem_bytes: usize,
    /// Stored run id (absent for dry runs).
    pub run_id: Option<i64>,
}

impl Report {
    /// Record a problem: counted always, kept while under the cap.
    pub fn add(&mut self, problem: Problem) {
        self.add_with(problem.severity, || problem);
    }

    /// [`Report::add`], building the problem only if it is kept: a file of
    /// 200,000 new users without passwords warns on every row.
    pub fn add_with(&mut self, severity: Severity, problem: impl FnOnce() -> Problem) {
        match severity {
            Severity::Error => self.counts.errors += 1,
            Severity::Warning => self.counts.warnings += 1,
        }
        if self.problems.len() < MAX_KEPT_PROBLEMS && self.problem_bytes < MAX_KEPT_PROBLEM_BYTES {
            let p = problem().made_safe();
            let who = p.who.as_ref().map_or(0, |w| {
                w.username.len() + w.first_name.len() + w.last_name.len()
            });
            self.problem_bytes += p.column.len() + p.value.len() + p.message.len() + who;
            self.problems.push(p);
        } else {
            self.problems_truncated += 1;
        }
    }

    /// Exit status for the CLI: 0 applied (or unchanged), 1 rejected,
    /// [`EXIT_ROW_ERRORS`] applied with some rows skipped, [`EXIT_HELD`]
    /// held for approval. A dry run answers as the real run would.
    pub fn exit_code(&self) -> i32 {
        match self.outcome {
            Outcome::Applied | Outcome::Unchanged => 0,
            Outcome::Rejected => 1,
            Outcome::Held => EXIT_HELD,
            Outcome::AppliedWithErrors => EXIT_ROW_ERRORS,
        }
    }

    /// One line for subjects and logs: "imported — 12 created, 3 updated, 1 error".
    pub fn headline(&self) -> String {
        let c = &self.counts;
        let verb = if self.dry_run { "dry run" } else { "imported" };
        match self.outcome {
            Outcome::Rejected => format!(
                "{} {} rejected, nothing applied",
                self.file_name,
                self.kind_noun()
            ),
            Outcome::Unchanged => format!(
                "{} unchanged since the last import, nothing to do",
                self.file_name
            ),
            Outcome::Held => format!(
                "{} held for review, nothing applied yet — it would create {}, update {}, reactivate {}, deactivate {}",
                self.file_name,
                thousands(c.created),
                thousands(c.updated),
                thousands(c.reactivated),
                thousands(c.deactivated)
            ),
            _ if self.kind == "passwords" => format!(
                "{} — new passwords for {} {}",
                self.file_name,
                thousands(c.passwords_generated),
                plural(c.passwords_generated, "user")
            ),
            _ => {
                let mut s = format!(
                    "{} {verb} — {} created, {} updated, {} unchanged",
                    self.file_name,
                    thousands(c.created),
                    thousands(c.updated),
                    thousands(c.unchanged)
                );
                if c.reactivated > 0 {
                    let _ = write!(s, ", {} reactivated", thousands(c.reactivated));
                }
                if c.deactivated > 0 {
                    let _ = write!(s, ", {} deactivated", thousands(c.deactivated));
                }
                if c.skipped > 0 {
                    let _ = write!(
                        s,
                        ", {} {} skipped",
                        thousands(c.skipped),
                        plural(c.skipped, "row")
                    );
                }
                s
            }
        }
    }

    fn kind_noun(&self) -> &'static str {
        if self.dry_run {
            "(dry run) would be"
        } else {
            "was"
        }
    }

    /// The human summary the CLI prints and the email body holds, listing the
    /// first `max_problems` problems; `rest_hint` says where the others are.
    pub fn render_text(&self, max_problems: usize, rest_hint: &str) -> String {
        let c = &self.counts;
        let mut s = String::new();
        let _ = writeln!(s, "{}: {}", self.tenant, self.headline());
        if self.dry_run {
            let _ = writeln!(s, "DRY RUN: nothing was changed.");
        }
        if let Some(reason) = &self.reason {
            let _ = writeln!(s, "\nWhy: {reason}");
        }
        let _ = writeln!(s);
        // An undo or a password reset reads no file: nothing to say of one.
        let undo = self.kind == "undo";
        if !undo && self.kind != "passwords" {
            let _ = writeln!(
                s,
                "  file       {} ({}, {})",
                self.file_name,
                human_size(self.size),
                self.encoding.as_deref().unwrap_or("not decoded")
            );
            let _ = writeln!(s, "  sha256     {}", self.sha256);
        }
        if self.outcome == Outcome::Unchanged {
            return s;
        }
        let _ = writeln!(s, "  rows       {}", thousands(c.rows));
        let _ = writeln!(s, "  created    {}", thousands(c.created));
        let _ = writeln!(s, "  updated    {}", thousands(c.updated));
        let _ = writeln!(s, "  unchanged  {}", thousands(c.unchanged));
        if c.reactivated > 0 {
            let _ = writeln!(s, "  reactivated {}", thousands(c.reactivated));
        }
        if c.deactivated > 0 {
            let _ = writeln!(
                s,
                "  deactivated {} ({})",
                thousands(c.deactivated),
                if undo {
                    "created by the undone run"
                } else {
                    "not in the file; full sync"
                }
            );
        }
        if c.kept_back > 0 {
            let _ = writeln!(
                s,
                "  kept back  {} (changes to existing users, not applied during the pause{})",
                thousands(c.kept_back),
                match c.deactivations_kept_back {
                    0 => String::new(),
                    1 => "; 1 of them a deactivation of a user the file omits".to_owned(),
                    n => format!(
                        "; {} of them deactivations of users the file omits",
                        thousands(n)
                    ),
                }
            );
        }
        if c.passwords_generated > 0 {
            let _ = writeln!(
                s,
                "  passwords  {} generated for new users without one",
                thousands(c.passwords_generated)
            );
        }
        let _ = writeln!(
            s,
            "  skipped    {} (rows with errors)",
            thousands(c.skipped)
        );
        let _ = writeln!(s, "  errors     {}", thousands(c.errors));
        let _ = writeln!(s, "  warnings   {}", thousands(c.warnings));
        if !self.problems.is_empty() {
            let shown = self.problems.len().min(max_problems);
            let total = c.errors + c.warnings;
            let _ = writeln!(s, "\nProblems (first {shown} of {}):", thousands(total));
            for p in &self.problems[..shown] {
                let _ = writeln!(s, "  {}", p.describe());
            }
            if total > shown as u64 {
                let _ = writeln!(
                    s,
                    "  … and {} more ({rest_hint})",
                    thousands(total - shown as u64)
                );
            }
        }
        s
    }

    /// The kept problems as CSV (line, the row's username and names, column,
    /// value, severity, message), each
    /// cell neutralised for spreadsheets ([`text::csv_cell`]), stopping
    /// before `max_bytes` with a note row saying how many are left out.
    /// Returns how many kept problems were left out.
    pub fn write_problems_csv(&self, out: &mut Vec<u8>, max_bytes: usize) -> csv::Result<usize> {
        let mut w = text::CsvOut::new(out);
        w.row([
            "line",
            "username",
            "first_name",
            "last_name",
            "column",
            "value",
            "severity",
            "message",
        ])?;
        let mut left_out = 0;
        for (i, p) in self.problems.iter().enumerate() {
            let line = p.line.map(|l| l.to_string()).unwrap_or_default();
            w.flush()?;
            // A row is at most a few KiB (the values are capped); keep room
            // for the note.
            if w.written() + 8 * 1024 > max_bytes {
                left_out = self.problems.len() - i;
                break;
            }
            let who = p.who.clone().unwrap_or_default();
            w.row([
                line.as_str(),
                &who.username,
                &who.first_name,
                &who.last_name,
                &p.column,
                &p.value,
                p.severity.as_str(),
                &p.message,
            ])?;
        }
        let unlisted = left_out as u64 + self.problems_truncated;
        if unlisted > 0 {
            let note = format!(
                "{} more problems were counted but not listed here; fix those above and upload again to see the rest",
                thousands(unlisted)
            );
            w.row(["", "", "", "", "", "", "note", note.as_str()])?;
        }
        w.flush()?;
        Ok(left_out)
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.into()
    } else {
        format!("{word}s")
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "";
    for u in UNITS {
        value /= 1024.0;
        unit = u;
        if value < 1024.0 {
            break;
        }
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(human_size(10), "10 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
