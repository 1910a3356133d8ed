//! Text that came from a district, made safe to show and to hand back: echoed
//! in a report with its control and invisible characters escaped and its
//! length capped, and written to CSV so that a spreadsheet shows a cell
//! rather than running it as a formula.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

/// The most characters of one value (a cell, a column name) a report echoes.
pub const ECHO_CHARS: usize = 200;
/// The most characters of one message or reason a report holds; messages
/// quote values, which are capped already, so only a long list gets here.
pub const MESSAGE_CHARS: usize = 1000;

/// Is `c` a character that must not reach a report literally: a control
/// character (CR and LF start lines of their own in an email), a line or
/// paragraph separator, or an invisible format character (bidirectional
/// overrides such as U+202E reorder what follows; zero-width characters hide
/// differences)? These are Unicode's Cc, Zl, Zp and Cf categories.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}')
}

/// `value` as a report shows it: hidden characters written as escapes (`\n`,
/// `\t`, `\u{202e}`), and at most `max` characters of it, the rest replaced
/// by a note of how much was cut. Borrowed when nothing changes.
pub fn echo(value: &str, max: usize) -> Cow<'_, str> {
    let long = value.len() > max && value.chars().nth(max).is_some();
    if !long && !value.chars().any(is_hidden) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len().min(max * 2) + 40);
    for c in value.chars().take(max) {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    if long {
        let rest = value.chars().count() - max;
        let _ = write!(out, "… [cut: {rest} more characters]");
    }
    Cow::Owned(out)
}

/// The first characters that make a spreadsheet read a cell as a formula
/// (OWASP's CSV injection list), and the apostrophe that marks a cell
/// [`csv_cell`] neutralised.
fn is_formula_start(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r' | '\'')
}

/// A cell as rosterd writes it to CSV: a value beginning with `=`, `+`, `-`,
/// `@`, tab or CR gets a leading apostrophe, which spreadsheets show as text
/// and do not evaluate. A value already beginning with an apostrophe gets one
/// more, so [`csv_original`] gives back exactly what was written.
pub fn csv_cell(value: &str) -> Cow<'_, str> {
    match value.chars().next() {
        Some(c) if is_formula_start(c) => Cow::Owned(format!("'{value}")),
        _ => Cow::Borrowed(value),
    }
}

/// The value a [`csv_cell`] cell stands for: one leading apostrophe removed
/// when what follows would need it. The importer reads every cell but the
/// password this way, so an export imports back unchanged.
pub fn csv_original(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.chars().next().is_some_and(is_formula_start) => rest,
        _ => cell,
    }
}

/// A CSV writer that passes every cell through [`csv_cell`].
pub struct CsvOut<W: io::Write>(csv::Writer<W>);

impl<W: io::Write> CsvOut<W> {
    /// Records may differ in length (an archived upload keeps its rows as
    /// they were).
    pub fn new(out: W) -> Self {
        Self(csv::WriterBuilder::new().flexible(true).from_writer(out))
    }

    /// Write one record.
    pub fn row<I, T>(&mut self, cells: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        for cell in cells {
            self.0.write_field(csv_cell(cell.as_ref()).as_bytes())?;
        }
        self.0.write_record(std::iter::empty::<&[u8]>())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }

    /// The writer, flushed.
    pub fn into_inner(self) -> anyhow::Result<W> {
        self.0
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write CSV: {}", e.error()))
    }
}

impl CsvOut<&mut Vec<u8>> {
    /// Bytes written so far (after a [`CsvOut::flush`]).
    pub fn written(&self) -> usize {
        self.0.get_ref().len()
    }
}

/// `value` as one line of printable ASCII of at most `max` bytes, for a
/// message a client shows or logs as it is (an SFTP status): typographic
/// dashes, quotes and ellipses as their ASCII forms, any other character
/// beyond ASCII, or hidden, as an escape (`\u{e9}`), and a cut marked `...`.
pub fn ascii_line(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max));
    for c in value.chars() {
        let start = out.len();
        match c {
            ' '..='~' => out.push(c),
            '\u{2010}'..='\u{2015}' | '\u{2212}' => out.push('-'),
            '\u{2018}' | '\u{2019}' => out.push('\''),
            '\u{201c}' | '\u{201d}' => out.push('"'),
            '\u{2026}' => out.push_str("..."),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
        if out.len() > max {
            out.truncate(start.min(max.saturating_sub(3)));
            out.push_str("...");
            return out;
        }
    }
    out
}

/// Refuse `value` (a CLI argument naming `what`) if it holds a control or
/// invisible character: an administrator's name ends up in email headers and
/// bodies, where CR/LF would forge lines.
pub fn plain(what: &str, value: &str) -> Result<(), String> {
    match value.chars().find(|&c| is_hidden(c)) {
        Some(c) => Err(format!(
            "{what} holds the invisible or control character U+{:04X}; type it without line breaks, tabs or formatting characters",
            c as u32
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_escapes_hidden_characters_and_caps_length() {
        assert!(matches!(echo("plain é text", 200), Cow::Borrowed(_)));
        assert_eq!(
            echo("a\r\nURGENT: log in\u{202e}x\u{200b}", 200),
            "a\\r\\nURGENT: log in\\u{202e}x\\u{200b}"
        );
        let long = "é".repeat(250);
        let cut = echo(&long, 200);
        assert_eq!(
            cut,
            format!("{}… [cut: 50 more characters]", "é".repeat(200))
        );
        // Exactly at the cap: nothing cut (bytes exceed it, characters do not).
        assert_eq!(echo(&"é".repeat(200), 200), "é".repeat(200));
        // Whatever the input, the result is bounded and has no hidden character.
        for input in ["\u{1}".repeat(10_000), "x\n".repeat(10_000)] {
            let e = echo(&input, 200);
            assert!(e.chars().count() < 200 * 9 + 40, "{}", e.len());
            assert!(!e.chars().any(is_hidden));
        }
    }

    #[test]
    fn csv_cells_are_neutralised_and_recoverable() {
        for (value, written) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'=x", "''=x"),
            ("'quoted", "''quoted"),
            ("O'Brien", "O'Brien"),
            ("plain", "plain"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(value), written, "{value:?}");
            assert_eq!(csv_original(&csv_cell(value)), value, "{value:?}");
        }
        // A cell the district wrote with an apostrophe of its own, not before
        // a formula character, is its value.
        assert_eq!(csv_original("'Iolani"), "'Iolani");
    }

    #[test]
    fn csv_out_writes_neutralised_records() {
        let mut w = CsvOut::new(Vec::new());
        w.row(["=1+1", "a,b", "ok"]).unwrap();
        w.row(vec![String::from("-x")]).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text, "'=1+1,\"a,b\",ok\n'-x\n");
    }

    #[test]
    fn ascii_lines_are_printable_ascii_on_one_line_and_capped() {
        assert_eq!(ascii_line("plain text", 100), "plain text");
        assert_eq!(
            ascii_line(
                "2025\u{2013}2040 \u{201c}x\u{201d} Jos\u{e9}\n\u{202e}\u{2026}",
                100
            ),
            "2025-2040 \"x\" Jos\\u{e9}\\n\\u{202e}..."
        );
        assert_eq!(ascii_line(&"ab".repeat(100), 20), "ababababababababa...");
        assert_eq!(ascii_line(&"x".repeat(20), 20), "x".repeat(20));
        for input in ["\u{1}".repeat(1000), "é\n".repeat(1000)] {
            let line = ascii_line(&input, 300);
            assert!(line.len() <= 300, "{}", line.len());
            assert!(line.bytes().all(|b| (b' '..=b'~').contains(&b)), "{line}");
        }
    }

    #[test]
    fn plain_refuses_control_and_format_characters() {
        assert!(plain("--admin-name", "Ana María").is_ok());
        let e = plain("--admin-name", "Ana\r\nBcc: x@y").unwrap_err();
        assert!(e.contains("U+000D"), "{e}");
        assert!(plain("--admin-name", "A\u{202e}B").is_err());
    }
}
