//! The check of a `users.csv` as an upload brings it, before it may replace
//! the pending file: what the file alone shows, by the importer's own rules
//! (its decoding and record limits in [`super::decode`], header matching in
//! [`super::header`], and the rules of [`super::users`] that need nothing but
//! the row), fed the upload's bytes in order as they arrive and holding one
//! record at a time. It refuses a file only for what makes the nightly import
//! reject it too; whatever needs the store (a username another district
//! holds, schools, a username twice in one file) stays with the import.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use rusqlite::Connection;

use super::decode::{self, FeedError, LineStarts, TextFeed, Unreadable};
use super::header::{self, HeaderError, Mapped};
use super::users::{self, UserField};
use crate::domain::report::{Problem, thousands};

/// What the check needs of a district: its column mapping (as the import
/// matches the header) and the school year its Graduation Years count from.
#[derive(Debug, Clone)]
pub struct Rules {
    mapping: HashMap<String, Mapped<UserField>>,
    year_end: i32,
}

impl Rules {
    /// With the district's stored column `mapping`, on the district's date
    /// `today`.
    pub fn new(mapping: HashMap<String, Mapped<UserField>>, today: NaiveDate) -> Self {
        Self {
            mapping,
            year_end: super::fields::school_year_end(today),
        }
    }

    /// The rules of district `tenant_id` on its date `today`.
    pub fn load(conn: &Connection, tenant_id: i64, today: NaiveDate) -> anyhow::Result<Self> {
        Ok(Self::new(
            super::tenant_mapping::<UserField>(conn, tenant_id)?,
            today,
        ))
    }
}

/// Why an upload is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// In a few words on one line, quoting the file escaped and cut: what
    /// the SFTP status, the log, the upload's record and the email say.
    pub reason: String,
    /// The import's own explanation, with what to fix, for the email (the
    /// same as `reason` when it has nothing to add).
    pub detail: String,
}

impl Refusal {
    fn plain(why: String) -> Self {
        Self {
            reason: why.clone(),
            detail: why,
        }
    }
}

/// What a file that passed showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    /// Data rows (not blank), and those failing a rule of the row alone.
    pub rows: u64,
    pub bad_rows: u64,
}

/// Why parsing stopped.
enum Stop {
    Refused(Refusal),
    /// The file must be read again from its start ([`FeedError::Reread`]).
    Reread,
}

impl From<Unreadable> for Stop {
    fn from(why: Unreadable) -> Self {
        Self::Refused(Refusal::plain(why.0))
    }
}

/// How many characters of a district's header a reason quotes.
const QUOTED_CHARS: usize = 80;
/// The most bytes decoded in one step: what the check holds of a write at
/// once, whatever size the client's writes are.
const PIECE: usize = 64 * 1024;
/// How much of a closed upload is read at once.
const READ: usize = 256 * 1024;

/// The check of one upload, fed its bytes in order ([`Self::feed`]) and
/// finished when the upload is closed ([`Self::finish`]). Its memory is the
/// record being read (the limits stop one at [`decode::MAX_RECORD_BYTES`])
/// and a piece of a write being decoded, whatever the file's size: a few
/// KiB for a real export, about 3 MiB for the worst a client can send.
pub struct UploadCheck {
    rules: Arc<Rules>,
    text: TextFeed,
    records: Records,
    tally: Tally,
    /// Bytes taken in order from the start of the file.
    fed: u64,
    /// The bytes taken so far must be read again from the start (see
    /// [`FeedError::Reread`]); [`Self::finish`] does.
    reread: bool,
    refused: Option<Refusal>,
}

impl UploadCheck {
    pub fn new(rules: Arc<Rules>) -> Self {
        Self::with_text(rules, TextFeed::new())
    }

    fn with_text(rules: Arc<Rules>, text: TextFeed) -> Self {
        Self {
            tally: Tally::new(&rules),
            rules,
            text,
            records: Records::new(),
            fed: 0,
            reread: false,
            refused: None,
        }
    }

    /// The rules it checks by.
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.clone()
    }

    /// How many bytes from the start of the file the check has taken: the
    /// offset the next in-order write starts at.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// Take the next `bytes` of the file (starting at [`Self::fed`]). A
    /// refusal is final: the file shows itself broken whatever follows (not
    /// text, a header without a Username column, a record past the limits).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Refusal> {
        if let Some(refusal) = &self.refused {
            return Err(refusal.clone());
        }
        while !bytes.is_empty() {
            let (piece, rest) = bytes.split_at(bytes.len().min(PIECE));
            bytes = rest;
            self.fed += piece.len() as u64;
            if self.reread {
                continue;
            }
            let stopped = match self.text.feed(piece) {
                Ok((text, settled)) => {
                    let tally = &mut self.tally;
                    self.records.parse(text, false, |record, line| {
                        tally.take(record, line, settled)
                    })
                }
                Err(FeedError::Undecodable(why)) => Err(Stop::Refused(Refusal::plain(why))),
                Err(FeedError::Reread) => Err(Stop::Reread),
            };
            self.stop(stopped)?;
        }
        Ok(())
    }

    fn stop(&mut self, stopped: Result<(), Stop>) -> Result<(), Refusal> {
        match stopped {
            Ok(()) => Ok(()),
            Err(Stop::Reread) => {
                self.reread = true;
                Ok(())
            }
            Err(Stop::Refused(refusal)) => {
                self.refused = Some(refusal.clone());
                Err(refusal)
            }
        }
    }

    /// The file ended at what was fed.
    fn end(&mut self) -> Result<Passed, Stop> {
        if self.reread {
            return Err(Stop::Reread);
        }
        if let Some(refusal) = &self.refused {
            return Err(Stop::Refused(refusal.clone()));
        }
        let (text, _) = self.text.finish().map_err(|e| match e {
            FeedError::Undecodable(why) => Stop::Refused(Refusal::plain(why)),
            FeedError::Reread => Stop::Reread,
        })?;
        let tally = &mut self.tally;
        self.records
            .parse(text, true, |record, line| tally.take(record, line, true))?;
        self.tally.verdict()
    }

    /// The file `bytes`, whole, in memory (for tests and the fuzz targets):
    /// fed in pieces of `step` bytes, as writes of that size would bring it.
    pub fn check_bytes(rules: Arc<Rules>, bytes: &[u8], step: usize) -> Result<Passed, Refusal> {
        Self::new(rules)
            .finish_reading(std::io::Cursor::new(bytes), step)
            .unwrap_or_else(|e| Err(Refusal::plain(e.to_string())))
    }

    /// The upload was closed: check what the in-order writes did not bring,
    /// reading the complete file at `path` from [`Self::fed`] on (all of it
    /// for a client that wrote out of order from the start), and again from
    /// its start in the one case that needs it ([`FeedError::Reread`]).
    /// Each byte is read once, or twice at most, so a client's write order
    /// cannot make this slower than reading the file.
    pub fn finish(self, path: &Path) -> std::io::Result<Result<Passed, Refusal>> {
        self.finish_reading(crate::files::open_nofollow(path)?, READ)
    }

    fn finish_reading(
        mut self,
        mut input: impl Read + Seek,
        step: usize,
    ) -> std::io::Result<Result<Passed, Refusal>> {
        if !self.reread && self.refused.is_none() {
            input.seek(SeekFrom::Start(self.fed))?;
            if let Err(refusal) = self.feed_all(&mut input, step)? {
                return Ok(Err(refusal));
            }
        }
        match self.end() {
            Ok(passed) => return Ok(Ok(passed)),
            Err(Stop::Refused(refusal)) => return Ok(Err(refusal)),
            Err(Stop::Reread) => {}
        }
        input.rewind()?;
        let scan = match decode::scan_reader(&mut input) {
            Ok(scan) => scan,
            Err(decode::ScanError::Undecodable(why)) => return Ok(Err(Refusal::plain(why))),
            Err(decode::ScanError::Io(e)) => return Err(e),
        };
        input.rewind()?;
        let mut again = Self::with_text(self.rules, TextFeed::known(scan.encoding));
        if let Err(refusal) = again.feed_all(&mut input, step)? {
            return Ok(Err(refusal));
        }
        Ok(again.end().map_err(Stop::into_refusal))
    }

    /// Feed what `input` holds from where it stands, `step` bytes at a time.
    fn feed_all(
        &mut self,
        input: &mut impl Read,
        step: usize,
    ) -> std::io::Result<Result<(), Refusal>> {
        let mut buf = vec![0u8; step.clamp(1, READ)];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 || self.reread {
                return Ok(Ok(()));
            }
            if let Err(refusal) = self.feed(&buf[..n]) {
                return Ok(Err(refusal));
            }
        }
    }
}

impl Stop {
    /// For a file read knowing its encoding, which is never read again.
    fn into_refusal(self) -> Refusal {
        match self {
            Self::Refused(refusal) => refusal,
            Self::Reread => Refusal::plain("the file's encoding could not be settled".into()),
        }
    }
}

/// The header and the rows seen so far.
struct Tally {
    rules: Arc<Rules>,
    header: Header,
    rows: u64,
    bad_rows: u64,
    first_bad: Option<(u64, Problem)>,
}

enum Header {
    Waiting,
    Matched(Box<users::Rules>),
    /// Refused, but only once the file's encoding is certain: the header
    /// went beyond ASCII as UTF-8, and may yet read as Windows-1252.
    Unsettled(HeaderError),
}

impl Tally {
    fn new(rules: &Arc<Rules>) -> Self {
        Self {
            rules: rules.clone(),
            header: Header::Waiting,
            rows: 0,
            bad_rows: 0,
            first_bad: None,
        }
    }

    /// One record that is not blank, on `line`. `settled`: its text reads
    /// the same whatever the rest of the file holds.
    fn take(&mut self, record: &csv::StringRecord, line: u64, settled: bool) -> Result<(), Stop> {
        let rules = match &self.header {
            Header::Waiting => {
                self.header = match header::match_columns::<UserField>(record, &self.rules.mapping)
                {
                    Ok(columns) => Header::Matched(Box::new(users::Rules::row_alone(
                        columns,
                        self.rules.year_end,
                    ))),
                    Err(e) if settled => return Err(Stop::Refused(header_refusal(&e))),
                    Err(e) => Header::Unsettled(e),
                };
                return Ok(());
            }
            Header::Matched(rules) => Some(rules),
            Header::Unsettled(_) => None,
        };
        self.rows += 1;
        if self.rows > decode::MAX_ROWS {
            return Err(decode::too_many_rows(line).into());
        }
        if let Some(problem) = rules.and_then(|r| r.first_problem(record, line)) {
            self.bad_rows += 1;
            self.first_bad.get_or_insert((line, problem));
        }
        Ok(())
    }

    fn verdict(&self) -> Result<Passed, Stop> {
        match &self.header {
            Header::Waiting => Err(Stop::Refused(Refusal::plain(
                "the file has no header line (it holds only blank lines)".into(),
            ))),
            Header::Unsettled(e) => Err(Stop::Refused(header_refusal(e))),
            Header::Matched(_) if self.bad_rows * 2 > self.rows => {
                Err(Stop::Refused(self.half_bad()))
            }
            Header::Matched(_) => Ok(Passed {
                rows: self.rows,
                bad_rows: self.bad_rows,
            }),
        }
    }

    /// The import's rule: a file with errors in more than half of its data
    /// rows is rejected as a whole. Here only the errors a row shows alone
    /// count, so a file refused here would be rejected by the import too.
    fn half_bad(&self) -> Refusal {
        use crate::domain::text::echo;
        let counts = format!(
            "more than half of the data rows ({} of {}) have errors",
            thousands(self.bad_rows),
            thousands(self.rows)
        );
        let first = self
            .first_bad
            .as_ref()
            .map(|(line, p)| {
                let value = if p.value.is_empty() {
                    String::new()
                } else {
                    format!(" \"{}\"", echo(&p.value, 40))
                };
                format!(
                    "line {line}, {}{value}: {}",
                    echo(&p.column, 40),
                    echo(&p.message, 160)
                )
            })
            .unwrap_or_default();
        Refusal {
            reason: format!("{counts}; the first: {first}"),
            detail: format!(
                "{counts} (the first: {first}), so the file was refused as a whole and did not replace the pending users.csv. This usually means a broken export; fix those rows and upload again"
            ),
        }
    }
}

fn header_refusal(e: &HeaderError) -> Refusal {
    Refusal {
        reason: e.brief(QUOTED_CHARS),
        detail: e.to_string(),
    }
}

/// A CSV parser that is given text as it comes (the csv crate's own
/// parser, [`csv_core`], with the settings the import's reader uses), with
/// the import's record limits ([`LineStarts`]) applied before it holds any
/// of it.
struct Records {
    lines: LineStarts,
    parser: csv_core::Reader,
    /// The first bytes of text, until there are 3: the parser drops a
    /// byte-order mark only when it sees all of it in its first input.
    lead: Vec<u8>,
    started: bool,
    /// The record being read: its fields' bytes and where each ends.
    out: Vec<u8>,
    ends: Vec<usize>,
    out_len: usize,
    ends_len: usize,
    /// Text bytes parsed, and where the record being read starts.
    pos: u64,
    record_start: u64,
    record: csv::StringRecord,
}

impl Records {
    fn new() -> Self {
        Self {
            lines: LineStarts::default(),
            parser: csv_core::Reader::new(),
            lead: Vec::new(),
            started: false,
            out: vec![0; 1024],
            ends: vec![0; 64],
            out_len: 0,
            ends_len: 0,
            pos: 0,
            record_start: 0,
            record: csv::StringRecord::new(),
        }
    }

    /// Parse `text` (the end of the file with `last`), calling `each` with
    /// every record that is not blank and the line it starts on.
    fn parse(
        &mut self,
        text: &[u8],
        last: bool,
        mut each: impl FnMut(&csv::StringRecord, u64) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        self.lines.see(text)?;
        if !self.started {
            self.lead.extend_from_slice(text);
            if self.lead.len() < 3 && !last {
                return Ok(());
            }
            self.started = true;
            let lead = std::mem::take(&mut self.lead);
            self.run(&lead, false, &mut each)?;
            return if last {
                self.run(&[], true, &mut each)
            } else {
                Ok(())
            };
        }
        self.run(text, last, &mut each)
    }

    fn run(
        &mut self,
        mut input: &[u8],
        last: bool,
        each: &mut impl FnMut(&csv::StringRecord, u64) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        use csv_core::ReadRecordResult::*;
        loop {
            // Empty input tells the parser the file ended.
            if input.is_empty() && !last {
                return Ok(());
            }
            let (result, read, wrote, ended) = self.parser.read_record(
                input,
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            input = &input[read..];
            self.pos += read as u64;
            self.out_len += wrote;
            self.ends_len += ended;
            match result {
                InputEmpty => {
                    if last {
                        continue;
                    }
                    return Ok(());
                }
                // Bounded: the limits stop a record past 1 MiB or 1,000
                // fields before the parser is given it.
                OutputFull => {
                    let len = self.out.len() * 2;
                    self.out.resize(len, 0);
                }
                OutputEndsFull => {
                    let len = self.ends.len() * 2;
                    self.ends.resize(len, 0);
                }
                Record => {
                    self.record.clear();
                    let mut start = 0;
                    for &end in &self.ends[..self.ends_len] {
                        let field =
                            std::str::from_utf8(&self.out[start..end]).map_err(|_| Stop::Reread)?;
                        self.record.push_field(field);
                        start = end;
                    }
                    self.out_len = 0;
                    self.ends_len = 0;
                    let begun = std::mem::replace(&mut self.record_start, self.pos);
                    // Every record, blank or not, lets go of the line starts
                    // before it, so a file of blank records holds none.
                    let line = self.lines.line_at(begun);
                    if !decode::is_blank(&self.record) {
                        each(&self.record, line)?;
                    }
                }
                End => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Arc<Rules> {
        Arc::new(Rules::new(
            HashMap::new(),
            NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
        ))
    }

    /// The verdict on `bytes`, which must be the same however the writes
    /// cut the file.
    fn verdict(bytes: &[u8]) -> Result<Passed, String> {
        let whole = UploadCheck::check_bytes(rules(), bytes, usize::MAX);
        for step in [1, 2, 3, 7, 512, 4096] {
            assert_eq!(
                UploadCheck::check_bytes(rules(), bytes, step),
                whole,
                "fed {step} bytes at a time: {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        whole.map_err(|r| r.reason)
    }

    #[test]
    fn good_files_pass() {
        let ok = |text: &[u8], rows| {
            let passed = verdict(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(passed.rows, rows, "{:?}", String::from_utf8_lossy(text));
        };
        ok(b"Username\nann.lee\n", 1);
        ok(b"Username,First Name\r\nann.lee,Ann\r\n\r\nbob.k,Bob", 2);
        ok(b"\xEF\xBB\xBFUsername,Graduation Year\nann.lee,3rd\n", 1);
        ok(b"Username\n", 0);
        ok(b"\n\n ,\nUsername\nann.lee\n", 1);
        // Windows-1252, with the byte that is not UTF-8 early or late.
        ok(b"Username,First Name\njose.g,Jos\xE9\n", 1);
        ok(b"Username,First Name\nann.lee,Ann\njose.g,Jos\xE9\n", 2);
        // UTF-8 beyond ASCII, then a byte that makes it Windows-1252: read again.
        ok(
            b"Username,First Name\nann.lee,Ren\xC3\xA9e\njose.g,Jos\xE9\n",
            2,
        );
        // UTF-16 with a byte-order mark.
        let utf16: Vec<u8> = "\u{feff}Username\r\nann.lee\r\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        ok(&utf16, 1);
        // Half of the rows bad is not more than half.
        ok(b"Username\nann.lee\nab\n", 2);
        // A year of the next school year passes: the import may run after 1 July.
        ok(b"Username,Graduation Year\nann.lee,2041\nbob.k,2041\n", 2);
    }

    #[test]
    fn broken_files_are_refused_with_the_import_s_reason() {
        let refused = |text: &[u8], starts: &str| {
            let why = verdict(text).expect_err("refused");
            assert!(why.starts_with(starts), "{why}");
        };
        refused(b"", "the file is empty");
        refused(b"\n\n", "the file has no header line");
        refused(b"PK\x03\x04rest of a zip", "this is a ZIP or Excel");
        refused(
            b"Username\nann\x00lee\n",
            "the file holds a NUL byte at byte 12",
        );
        refused(
            b"U\x00s\x00e\x00r\x00n\x00a\x00m\x00e\x00",
            "the file looks like UTF-16",
        );
        refused(
            b"\xEF\xBB\xBFUsername\nJos\xE9\n",
            "the file starts with a UTF-8 byte-order mark",
        );
        refused(
            b"Student ID,First,Last\n1,Ann,Lee\n",
            "no Username column (header: \"Student ID,First,Last\")",
        );
        refused(
            b"Username,Email,E-mail\n",
            "columns 2 (\"Email\") and 3 (\"E-mail\") both hold Email Address",
        );
        let mut long = b"Username\n".to_vec();
        long.extend(vec![b'x'; decode::MAX_RECORD_BYTES as usize + 1]);
        refused(&long, "line 2 is longer than 1 MiB");
        refused(
            b"Username,Graduation Year\nann.lee,2050\nab\nbob.k,2031\n",
            "more than half of the data rows (2 of 3) have errors; the first: line 2, Graduation Year \"2050\": Graduation Year 2050 is outside",
        );
    }

    #[test]
    fn a_header_beyond_ascii_waits_for_the_encoding() {
        // As UTF-8 the header has no Username column; read as the
        // Windows-1252 the rest of the file makes it, neither.
        let text = b"Pr\xC3\xA9nom\nx\n\xE9\n";
        assert!(verdict(text).unwrap_err().starts_with("no Username column"));
        // Refused at the write only when the header is certain.
        let mut check = UploadCheck::new(rules());
        assert!(check.feed(b"Pr\xC3\xA9nom\nx\n").is_ok());
        let mut check = UploadCheck::new(rules());
        assert!(check.feed(b"Prenom\nx\n").is_err());
    }

    #[test]
    fn refusals_come_at_the_write_that_shows_them() {
        let mut check = UploadCheck::new(rules());
        assert!(check.feed(b"Student ID,First").is_ok());
        let refusal = check.feed(b",Last\n1,Ann,Lee\n").unwrap_err();
        assert_eq!(
            refusal.reason,
            "no Username column (header: \"Student ID,First,Last\")"
        );
        assert!(refusal.detail.contains("such as Username,Password"));
        // And every write after it.
        assert_eq!(check.feed(b"more\n").unwrap_err(), refusal);

        let mut check = UploadCheck::new(rules());
        assert!(check.feed(b"PK").is_ok(), "two bytes settle nothing");
        assert!(check.feed(b"\x03\x04").is_err());
    }

    #[test]
    fn a_file_of_blank_records_holds_no_line_starts() {
        let mut check = UploadCheck::new(rules());
        check.feed(b"Username\n").unwrap();
        for _ in 0..1000 {
            check.feed(&b" ,\n".repeat(1000)).unwrap();
        }
        assert!(check.records.lines.held() < 4);
    }
}
