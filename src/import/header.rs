//! Header matching: which column of a CSV file holds which field. Headers are
//! compared case-insensitively, ignoring spaces, `_` and `-`, against each
//! field's aliases (OneRoster's among them), after the district's own stored
//! mapping. Shared by every import kind through the [`FieldSet`] trait.

use std::collections::HashMap;

/// The fields one kind of import understands.
pub trait FieldSet: Copy + Eq + std::hash::Hash + std::fmt::Debug + 'static {
    /// Every field, in template order.
    const ALL: &'static [Self];
    /// The required field (Username for every import kind).
    const REQUIRED: Self;
    /// The field's name as the template and reports write it.
    fn label(self) -> &'static str;
    /// Header spellings (already in [`header_key`] form) that mean this field.
    fn aliases(self) -> &'static [&'static str];
    /// Is the field read exactly as written (a password), never unescaped?
    fn verbatim(self) -> bool {
        false
    }

    /// The template's header line: every field's label, in order.
    fn template_header() -> String {
        Self::ALL
            .iter()
            .map(|f| f.label())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The field a header key names, by label or alias.
    fn from_key(key: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|f| header_key(f.label()) == key || f.aliases().contains(&key))
    }
}

/// The form headers are compared in: lowercase, without spaces, `_`, `-` or a
/// stray byte-order mark.
pub fn header_key(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '\u{feff}' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// What a district's stored mapping says of one header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped<F> {
    Field(F),
    Ignore,
}

/// The special word a mapping uses to drop a column.
pub const IGNORE: &str = "ignore";

/// Parse a mapping's target: a field's label or alias, or `ignore`.
pub fn parse_target<F: FieldSet>(text: &str) -> Result<Mapped<F>, String> {
    let key = header_key(text);
    if key == IGNORE {
        return Ok(Mapped::Ignore);
    }
    F::from_key(&key).map(Mapped::Field).ok_or_else(|| {
        let names: Vec<&str> = F::ALL.iter().map(|f| f.label()).collect();
        format!(
            "{text:?} is not a field; use one of: {}, or {IGNORE}",
            names.join(", ")
        )
    })
}

/// The columns of one file.
#[derive(Debug)]
pub struct Columns<F> {
    /// Field of each column, by position.
    pub by_index: Vec<Option<F>>,
    /// Column position of each field present.
    pub position: HashMap<F, usize>,
    /// The header as written, by position (for reports).
    pub names: Vec<String>,
    /// Headers matched to no field, reported once as a warning.
    pub unknown: Vec<String>,
}

impl<F: FieldSet> Columns<F> {
    /// The field's cell in `record` ("" if the file has no such column). A
    /// cell that rosterd's own CSV neutralised for spreadsheets (`'=…`) is
    /// read as the value it stands for, except for verbatim fields.
    pub fn get<'r>(&self, record: &'r csv::StringRecord, field: F) -> &'r str {
        let cell = self
            .position
            .get(&field)
            .and_then(|&i| record.get(i))
            .unwrap_or("");
        if field.verbatim() {
            cell
        } else {
            crate::domain::text::csv_original(cell)
        }
    }

    pub fn has(&self, field: F) -> bool {
        self.position.contains_key(&field)
    }

    /// The header of the column holding `field`, as the file writes it.
    /// The column name for reports: as the file's header writes it, else the
    /// field's own name.
    pub fn name_of(&self, field: F) -> String {
        self.header_of(field).unwrap_or(field.label()).to_owned()
    }

    pub fn header_of(&self, field: F) -> Option<&str> {
        self.position.get(&field).map(|&i| self.names[i].as_str())
    }
}

/// Why a header row cannot be used: the whole file is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Two columns hold one field: their positions (from 1) and names as
    /// written, and the field's label.
    Repeated {
        first: (usize, String),
        second: (usize, String),
        field: &'static str,
    },
    /// No column holds the required field: its label, every field's label
    /// in template order, and the header's cells as written.
    Missing {
        required: &'static str,
        labels: Vec<&'static str>,
        found: Vec<String>,
    },
}

impl std::fmt::Display for HeaderError {
    /// The reason a report and its email give, with what to do.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Repeated {
                first,
                second,
                field,
            } => write!(
                f,
                "columns {} ({:?}) and {} ({:?}) both hold {field}; remove one of them (or ask support to map one to another field or to ignore it)",
                first.0, first.1, second.0, second.1
            ),
            Self::Missing {
                required,
                labels,
                found,
            } => {
                let found: Vec<String> = found.iter().take(8).map(|n| format!("{n:?}")).collect();
                write!(
                    f,
                    "no {required} column: the first line must be a header naming the columns, such as {}. The first line holds {}",
                    labels.join(","),
                    found.join(", ")
                )
            }
        }
    }
}

impl HeaderError {
    /// The reason in a few words, quoting at most `max` characters of the
    /// district's header (escaped), for a one-line SFTP status: `no Username
    /// column (header: "Student ID,First,Last")`.
    pub fn brief(&self, max: usize) -> String {
        use crate::domain::text::echo;
        match self {
            Self::Repeated {
                first,
                second,
                field,
            } => format!(
                "columns {} (\"{}\") and {} (\"{}\") both hold {field}",
                first.0,
                echo(&first.1, max / 2),
                second.0,
                echo(&second.1, max / 2)
            ),
            Self::Missing {
                required, found, ..
            } => format!(
                "no {required} column (header: \"{}\")",
                echo(&found.join(","), max)
            ),
        }
    }
}

/// Match a header row. `mapping` is the district's (header key → target).
/// Errors are whole-file rejections, worded for the district.
pub fn match_columns<F: FieldSet>(
    header: &csv::StringRecord,
    mapping: &HashMap<String, Mapped<F>>,
) -> Result<Columns<F>, HeaderError> {
    let mut by_index = Vec::with_capacity(header.len());
    let mut position: HashMap<F, usize> = HashMap::new();
    let mut unknown = Vec::new();
    let names: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    for (i, name) in names.iter().enumerate() {
        let key = header_key(name);
        let field = match mapping.get(&key) {
            Some(Mapped::Field(f)) => Some(*f),
            Some(Mapped::Ignore) => None,
            None if key.is_empty() => None,
            None => {
                let f = F::from_key(&key);
                if f.is_none() {
                    unknown.push(name.clone());
                }
                f
            }
        };
        if let Some(f) = field {
            if let Some(&first) = position.get(&f) {
                return Err(HeaderError::Repeated {
                    first: (first + 1, names[first].clone()),
                    second: (i + 1, name.clone()),
                    field: f.label(),
                });
            }
            position.insert(f, i);
        }
        by_index.push(field);
    }
    if !position.contains_key(&F::REQUIRED) {
        return Err(HeaderError::Missing {
            required: F::REQUIRED.label(),
            labels: F::ALL.iter().map(|f| f.label()).collect(),
            found: names,
        });
    }
    Ok(Columns {
        by_index,
        position,
        names,
        unknown,
    })
}
