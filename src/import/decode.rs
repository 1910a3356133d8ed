//! Reading an uploaded file as text. A first pass checks the bytes (and takes
//! their SHA-256) without holding the file in memory; it settles the encoding:
//! UTF-16 with a byte-order mark, UTF-8 with or without one, otherwise
//! Windows-1252, the usual SIS export. A second pass streams the decoded text.
//! [`TextFeed`] does both at once for bytes that arrive in order (an upload's
//! writes), with the same checks and the same decoding, for the check that
//! refuses a broken upload before it replaces the pending file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use encoding_rs::{DecoderResult, UTF_16BE, UTF_16LE, WINDOWS_1252};
use encoding_rs_io::DecodeReaderBytesBuilder;
use sha2::{Digest, Sha256};

/// The encoding a file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
    Windows1252,
}

impl TextEncoding {
    pub fn label(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Utf8Bom => "UTF-8 with BOM",
            Self::Utf16Le => "UTF-16LE",
            Self::Utf16Be => "UTF-16BE",
            Self::Windows1252 => "Windows-1252",
        }
    }
}

/// What the first pass learned about a file.
#[derive(Debug, Clone)]
pub struct Scan {
    pub size: u64,
    /// Line feeds in the file: how many rows it may hold, at most (a hint
    /// for sizing what an import keeps per row; a UTF-16 file may count a
    /// few more).
    pub lines: u64,
    /// The last byte is a line feed: the last line feed ends the last line
    /// rather than beginning an empty one.
    pub ends_in_line_feed: bool,
    /// Lowercase hex.
    pub sha256: String,
    pub encoding: TextEncoding,
}

/// Why a file could not be read as text.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Undecodable(String),
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
}

const CHUNK: usize = 256 * 1024;

/// First pass over `path`.
pub fn scan(path: &Path) -> Result<Scan, ScanError> {
    scan_reader(File::open(path)?)
}

pub fn scan_reader(mut input: impl Read) -> Result<Scan, ScanError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size: u64 = 0;
    let mut lines: u64 = 0;
    let mut state: Option<Checker> = None;
    let mut ends_in_line_feed = false;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        let chunk = &buf[..n];
        if let Some(&last) = chunk.last() {
            ends_in_line_feed = last == b'\n';
        }
        hasher.update(chunk);
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let checker = state.get_or_insert_with(|| Checker::start(chunk));
        checker.feed(chunk, size, n == 0)?;
        size += n as u64;
        if n == 0 {
            break;
        }
    }
    if size == 0 {
        return Err(ScanError::Undecodable("the file is empty".into()));
    }
    let encoding = state.map(|c| c.encoding()).unwrap_or(TextEncoding::Utf8);
    Ok(Scan {
        size,
        lines,
        ends_in_line_feed,
        sha256: hex(&hasher.finalize()),
        encoding,
    })
}

/// Open the second pass: the file's text as UTF-8 bytes, without its BOM.
pub fn open_text(path: &Path, encoding: TextEncoding) -> io::Result<impl Read + use<>> {
    Ok(text_of(File::open(path)?, encoding))
}

/// The text of `file`, read from where it stands, as UTF-8 bytes without
/// its BOM.
pub fn text_of(file: File, encoding: TextEncoding) -> impl Read + use<> {
    let builder = match encoding {
        TextEncoding::Windows1252 => {
            let mut b = DecodeReaderBytesBuilder::new();
            b.encoding(Some(WINDOWS_1252)).bom_sniffing(false);
            b
        }
        _ => {
            let mut b = DecodeReaderBytesBuilder::new();
            b.bom_sniffing(true).strip_bom(true);
            b
        }
    };
    builder.build(file)
}

/// The longest record (one user's line, quoted line breaks included) a file
/// may hold, in decoded UTF-8 bytes. A real row is well under 1 KiB; a file
/// without line breaks, or with a quote that never closes, is one huge
/// record, which the parser would otherwise hold in memory whole.
pub const MAX_RECORD_BYTES: u64 = 1024 * 1024;
/// The most fields one record may have.
pub const MAX_FIELDS: u64 = 1_000;
/// The most data rows a file may have. The largest US districts have about a
/// million students and staff; the duplicate check keeps 24 bytes per row.
pub const MAX_ROWS: u64 = 1_000_000;

/// Why a file cannot be read as CSV at all: the whole file is rejected with
/// this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// What reading the next record may fail with.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file breaks a limit: reject it, with this reason.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    /// Reading failed (a disk error): the import is tried again later.
    #[error("cannot read the file: {0}")]
    Io(io::Error),
}

impl From<csv::Error> for ReadError {
    fn from(e: csv::Error) -> Self {
        match e.into_kind() {
            csv::ErrorKind::Io(e) => {
                match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<Unreadable>())
                {
                    Some(why) => Self::Unreadable(why.clone()),
                    None => Self::Io(e),
                }
            }
            // The text is UTF-8 already and the reader is flexible, so the
            // parser has nothing else to refuse; say what it said if it does.
            other => Self::Unreadable(Unreadable(format!(
                "the file cannot be read as CSV: {other:?}"
            ))),
        }
    }
}

/// A CSV file's records with the physical line each starts on. (The csv
/// crate's own line numbers drift after blank lines and CRLF endings, so lines
/// are counted here, in the decoded stream the parser reads.) Records over
/// [`MAX_RECORD_BYTES`] or [`MAX_FIELDS`], and files over [`MAX_ROWS`], stop
/// the reading with [`ReadError::Unreadable`] before they take memory.
pub struct CsvRows {
    reader: csv::Reader<CountLines<Box<dyn Read + Send>>>,
    lines: Arc<Mutex<LineStarts>>,
    rows: u64,
    /// How many records the file may hold, when its first pass counted.
    expected: Option<u64>,
}

impl CsvRows {
    /// Open the second pass of `path` as CSV.
    pub fn open(path: &Path, encoding: TextEncoding) -> io::Result<Self> {
        Ok(Self::from_text(Box::new(open_text(path, encoding)?)))
    }

    /// The second pass over `file`, from its start, as CSV.
    pub fn from_file(mut file: File, encoding: TextEncoding) -> io::Result<Self> {
        use std::io::Seek;
        file.rewind()?;
        Ok(Self::from_text(Box::new(text_of(file, encoding))))
    }

    pub fn from_text(text: Box<dyn Read + Send>) -> Self {
        let lines = Arc::new(Mutex::new(LineStarts::default()));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(256 * 1024)
            .from_reader(CountLines {
                inner: text,
                lines: lines.clone(),
            });
        Self {
            reader,
            lines,
            rows: 0,
            expected: None,
        }
    }

    /// Say how many lines the first pass counted.
    pub fn expect_lines(&mut self, lines: u64) {
        self.expected = Some(lines);
    }

    /// At most how many data rows are left to read, when known: a size for
    /// what an import keeps per row, so it is allocated once.
    pub fn rows_hint(&self) -> Option<usize> {
        // Every line but the last ends in a line feed.
        let lines = self.expected?.saturating_add(1);
        let left = lines.min(MAX_ROWS + 1).saturating_sub(self.rows);
        usize::try_from(left).ok()
    }

    /// The next record that is not blank (blank: an empty line, or only
    /// separators and spaces), and the line it starts on; `None` at the end.
    /// The first record counts as the header, the rest towards [`MAX_ROWS`].
    pub fn next(&mut self, record: &mut csv::StringRecord) -> Result<Option<u64>, ReadError> {
        loop {
            if !self.reader.read_record(record)? {
                return Ok(None);
            }
            let byte = record.position().map_or(0, |p| p.byte());
            let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            // Asked for every record, blank or not, so the line starts
            // before it are let go of: a file of blank records (`,` lines)
            // would otherwise keep one for each of its lines.
            let line = lines.line_at(byte);
            if is_blank(record) {
                continue;
            }
            self.rows += 1;
            if self.rows > MAX_ROWS + 1 {
                return Err(too_many_rows(line).into());
            }
            return Ok(Some(line));
        }
    }
}

/// Is `record` blank (an empty line, or only separators and spaces)? Blank
/// records are skipped: neither the header nor a data row.
pub fn is_blank(record: &csv::StringRecord) -> bool {
    record.iter().all(|f| f.trim().is_empty())
}

/// Why a file with more than [`MAX_ROWS`] data rows is refused; `line` is
/// where the first row past the limit starts.
pub fn too_many_rows(line: u64) -> Unreadable {
    Unreadable(format!(
        "the file has more than {} data rows (the one after that is on line {line}); rosterd imports at most that many users from one file, so contact support",
        crate::domain::report::thousands(MAX_ROWS),
    ))
}

/// Where each non-empty line starts, for the stretch the parser has read
/// ahead, and the shape of the record being read: the parser's own quoting
/// rules (a quote opens a field only at its start, `""` inside quotes is a
/// quote) followed byte by byte, to stop a record that grows past the limits.
/// Fed the decoded text before the parser sees it ([`CsvRows`], and the
/// upload check's push parser), so both stop a file at the same place.
#[derive(Debug)]
pub struct LineStarts {
    next_line: u64,
    at_line_start: bool,
    pos: u64,
    /// (byte offset, line number) of lines that begin with content.
    starts: VecDeque<(u64, u64)>,
    field: FieldState,
    /// Line the current record started on, its bytes and fields so far.
    record_line: u64,
    record_bytes: u64,
    record_fields: u64,
}

/// The bytes that can change a record's shape: separator, quote, line breaks.
const SHAPES_RECORD: [bool; 256] = {
    let mut t = [false; 256];
    t[b',' as usize] = true;
    t[b'"' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldState {
    /// At the start of a field (and of a record).
    Start,
    /// In an unquoted field.
    Plain,
    /// In a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: its end, or half of `""`.
    QuoteInQuoted,
}

impl Default for LineStarts {
    fn default() -> Self {
        Self {
            next_line: 1,
            at_line_start: true,
            pos: 0,
            starts: VecDeque::new(),
            field: FieldState::Start,
            record_line: 1,
            record_bytes: 0,
            record_fields: 1,
        }
    }
}

impl LineStarts {
    /// Follow `bytes`: runs of ordinary bytes at once, then each byte that
    /// can change the shape (separator, quote, line break) on its own. (A
    /// byte-at-a-time loop cost the reader stage, which limits a large
    /// import, about a tenth of its time.)
    pub fn see(&mut self, bytes: &[u8]) -> Result<(), Unreadable> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let run = rest
                .iter()
                .position(|&b| SHAPES_RECORD[usize::from(b)])
                .unwrap_or(rest.len());
            if run > 0 {
                self.ordinary(run as u64);
                if self.record_bytes > MAX_RECORD_BYTES {
                    return Err(self.too_long());
                }
            }
            let Some((&b, after)) = rest[run..].split_first() else {
                break;
            };
            self.special(b)?;
            rest = after;
        }
        Ok(())
    }

    /// `n` bytes that are none of `,` `"` CR LF.
    fn ordinary(&mut self, n: u64) {
        if self.at_line_start {
            self.starts.push_back((self.pos, self.next_line));
            self.at_line_start = false;
        }
        if self.record_bytes == 0 {
            self.record_line = self.next_line;
        }
        self.record_bytes += n;
        self.pos += n;
        self.field = match self.field {
            FieldState::Quoted => FieldState::Quoted,
            _ => FieldState::Plain,
        };
    }

    /// One of `,` `"` CR LF.
    fn special(&mut self, b: u8) -> Result<(), Unreadable> {
        let end_of_record = b == b'\n' || b == b'\r';
        if self.at_line_start {
            if !end_of_record {
                self.starts.push_back((self.pos, self.next_line));
            }
            self.at_line_start = false;
        }
        if self.record_bytes == 0 {
            self.record_line = self.next_line;
        }
        self.record_bytes += 1;
        self.field = match (self.field, b) {
            (FieldState::Quoted, b'"') => FieldState::QuoteInQuoted,
            (FieldState::Quoted, _) => FieldState::Quoted,
            (FieldState::QuoteInQuoted, b'"') => FieldState::Quoted,
            (FieldState::Start, b'"') => FieldState::Quoted,
            (_, b',') => {
                self.record_fields += 1;
                FieldState::Start
            }
            (_, b'\n' | b'\r') => FieldState::Start,
            _ => FieldState::Plain,
        };
        if self.record_bytes > MAX_RECORD_BYTES {
            return Err(self.too_long());
        }
        if end_of_record && self.field == FieldState::Start {
            self.record_bytes = 0;
            self.record_fields = 1;
        }
        if b == b'\n' {
            self.next_line += 1;
            self.at_line_start = true;
        }
        self.pos += 1;
        if self.record_fields > MAX_FIELDS {
            return Err(Unreadable(format!(
                "line {} has more than {} fields (separated by commas): is this a CSV export of the roster? Each line of users.csv is one user",
                self.record_line,
                crate::domain::report::thousands(MAX_FIELDS)
            )));
        }
        Ok(())
    }

    fn too_long(&self) -> Unreadable {
        let limit = format!("{} MiB", MAX_RECORD_BYTES >> 20);
        Unreadable(
            if self.field == FieldState::Quoted && self.next_line > self.record_line {
                format!(
                    "the record starting on line {} runs on for more than {limit}: a double quote (\") opened on that line is probably never closed. Each line of users.csv is one user; quote a value only to hold a comma, and write a quote inside it as \"\"",
                    self.record_line
                )
            } else {
                format!(
                    "line {} is longer than {limit}: is this a CSV export of the roster? Each line of users.csv is one user, a few hundred bytes at most",
                    self.record_line
                )
            },
        )
    }

    /// Line starts kept, waiting for their records.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.starts.len()
    }

    /// The line of the first content at or after `byte`. Records arrive in
    /// order, so everything before `byte` is dropped for good.
    pub fn line_at(&mut self, byte: u64) -> u64 {
        while self.starts.front().is_some_and(|&(at, _)| at < byte) {
            self.starts.pop_front();
        }
        self.starts
            .front()
            .map_or(self.next_line, |&(_, line)| line)
    }
}

struct CountLines<R> {
    inner: R,
    lines: Arc<Mutex<LineStarts>>,
}

impl<R: Read> Read for CountLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .see(&buf[..n])
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why))?;
        Ok(n)
    }
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The first bytes that settle how a file is read (a byte-order mark; UTF-16
/// without one shows as NULs in every other byte of them): the first pass
/// decides on at most these.
const SNIFF: usize = 512;

/// A file's bytes arriving in order, as an upload's writes bring them:
/// checked as the first pass ([`scan_reader`]) checks them and decoded as the
/// second pass ([`text_of`]) decodes them, a piece at a time, so the text can
/// be parsed before the file is complete. Holds no more than the piece being
/// decoded.
///
/// Until the file ends, text without a byte-order mark is read as UTF-8; a
/// later byte that is not UTF-8 makes the whole file Windows-1252. When that
/// happens after text beyond ASCII was handed out (which reads differently in
/// the two), [`FeedError::Reread`] says to read the file again from its
/// start with [`TextFeed::known`]; up to then ASCII reads the same in both.
pub struct TextFeed {
    /// The first bytes, until they settle the encoding.
    head: Vec<u8>,
    checker: Option<Checker>,
    /// Bytes checked so far.
    offset: u64,
    decoding: Decoding,
    /// The encoding, when a first pass gave it.
    known: Option<TextEncoding>,
    /// Text beyond ASCII was handed out as UTF-8.
    read_beyond_ascii: bool,
    text: Vec<u8>,
}

enum Decoding {
    /// Not settled yet (the first bytes are still coming).
    Undecided,
    /// UTF-8 handed out as it is, after `bom` bytes of byte-order mark.
    Utf8 { bom: usize },
    /// UTF-16 or Windows-1252 decoded to UTF-8.
    Decoder(Box<encoding_rs::Decoder>),
}

/// Why a [`TextFeed`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// Not text rosterd reads: the first pass's reason, word for word.
    Undecodable(String),
    /// Text beyond ASCII was handed out as UTF-8, and the file turned out to
    /// be Windows-1252: read it again from the start, knowing its encoding.
    Reread,
}

impl Default for TextFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl TextFeed {
    /// Nothing read yet: the bytes settle the encoding, as in the first pass.
    pub fn new() -> Self {
        Self {
            head: Vec::new(),
            checker: None,
            offset: 0,
            decoding: Decoding::Undecided,
            known: None,
            read_beyond_ascii: false,
            text: Vec::new(),
        }
    }

    /// A file whose first pass found it readable in `encoding`: only decoded.
    pub fn known(encoding: TextEncoding) -> Self {
        let decoding = match encoding {
            TextEncoding::Utf8 => Decoding::Utf8 { bom: 0 },
            TextEncoding::Utf8Bom => Decoding::Utf8 { bom: 3 },
            TextEncoding::Utf16Le => {
                Decoding::Decoder(Box::new(UTF_16LE.new_decoder_with_bom_removal()))
            }
            TextEncoding::Utf16Be => {
                Decoding::Decoder(Box::new(UTF_16BE.new_decoder_with_bom_removal()))
            }
            TextEncoding::Windows1252 => {
                Decoding::Decoder(Box::new(WINDOWS_1252.new_decoder_without_bom_handling()))
            }
        };
        Self {
            decoding,
            known: Some(encoding),
            ..Self::new()
        }
    }

    /// Take the next `bytes` of the file; returns the text they complete
    /// (UTF-8, without a byte-order mark), which may be empty, and whether
    /// the text so far is [settled](Self::settled).
    pub fn feed<'a>(&'a mut self, bytes: &'a [u8]) -> Result<(&'a [u8], bool), FeedError> {
        if self.checker.is_none() && self.known.is_none() {
            self.head.extend_from_slice(bytes);
            if !settles(&self.head) {
                return Ok((&[], true));
            }
            let first = std::mem::take(&mut self.head);
            self.start(&first);
            self.check(&first, false)?;
            self.text.clear();
            self.decode(&first, false);
            return Ok((&self.text, self.settled()));
        }
        self.check(bytes, false)?;
        if let Decoding::Utf8 { bom } = &mut self.decoding {
            let skip = (*bom).min(bytes.len());
            *bom -= skip;
            let text = &bytes[skip..];
            if self.known.is_none() && !text.is_ascii() {
                self.read_beyond_ascii = true;
            }
            return Ok((text, self.settled()));
        }
        self.text.clear();
        self.decode(bytes, false);
        Ok((&self.text, self.settled()))
    }

    /// The file ended: the text left, and the encoding the file is read in.
    pub fn finish(&mut self) -> Result<(&[u8], TextEncoding), FeedError> {
        self.text.clear();
        if self.checker.is_none() && self.known.is_none() {
            let first = std::mem::take(&mut self.head);
            if first.is_empty() {
                return Err(FeedError::Undecodable("the file is empty".into()));
            }
            self.start(&first);
            self.check(&first, false)?;
            self.decode(&first, false);
        }
        self.check(&[], true)?;
        self.decode(&[], true);
        let encoding = match (self.known, &self.checker) {
            (Some(known), _) => known,
            (None, Some(checker)) => checker.encoding(),
            (None, None) => TextEncoding::Utf8,
        };
        Ok((&self.text, encoding))
    }

    /// Can the text handed out so far still read differently once the rest
    /// of the file arrives? Not when the encoding is certain (given, a
    /// byte-order mark, or bytes that are not UTF-8 seen already), nor when
    /// all of it was ASCII.
    pub fn settled(&self) -> bool {
        self.known.is_some()
            || !self.read_beyond_ascii
            || !matches!(self.decoding, Decoding::Utf8 { .. })
            || matches!(self.checker, Some(Checker::Utf8 { bom: true, .. }))
    }

    fn start(&mut self, first: &[u8]) {
        let checker = Checker::start(first);
        self.decoding = match &checker {
            Checker::Utf16 { le: true, .. } => {
                Decoding::Decoder(Box::new(UTF_16LE.new_decoder_with_bom_removal()))
            }
            Checker::Utf16 { le: false, .. } => {
                Decoding::Decoder(Box::new(UTF_16BE.new_decoder_with_bom_removal()))
            }
            Checker::Utf8 { bom, .. } => Decoding::Utf8 {
                bom: if *bom { 3 } else { 0 },
            },
        };
        self.checker = Some(checker);
    }

    /// The first pass's checks over `bytes` (none for a known encoding); a
    /// file found not to be UTF-8 is decoded as Windows-1252 from here on.
    fn check(&mut self, bytes: &[u8], last: bool) -> Result<(), FeedError> {
        let Some(checker) = &mut self.checker else {
            return Ok(());
        };
        checker
            .feed(bytes, self.offset, last)
            .map_err(|e| FeedError::Undecodable(e.to_string()))?;
        self.offset += bytes.len() as u64;
        if matches!(checker, Checker::Utf8 { valid: false, .. })
            && matches!(self.decoding, Decoding::Utf8 { .. })
        {
            if self.read_beyond_ascii {
                return Err(FeedError::Reread);
            }
            self.decoding =
                Decoding::Decoder(Box::new(WINDOWS_1252.new_decoder_without_bom_handling()));
        }
        Ok(())
    }

    /// Decode `bytes` onto the text handed out next.
    fn decode(&mut self, bytes: &[u8], last: bool) {
        match &mut self.decoding {
            Decoding::Undecided => {}
            Decoding::Utf8 { bom } => {
                let skip = (*bom).min(bytes.len());
                *bom -= skip;
                let text = &bytes[skip..];
                if self.known.is_none() && !text.is_ascii() {
                    self.read_beyond_ascii = true;
                }
                self.text.extend_from_slice(text);
            }
            Decoding::Decoder(decoder) => {
                let start = self.text.len();
                let room = decoder
                    .max_utf8_buffer_length(bytes.len())
                    .unwrap_or(bytes.len() * 3 + 16);
                self.text.resize(start + room, 0);
                // Room for the worst case: every byte is read in one call.
                // (The first pass refused what is malformed.)
                let (_, _, written, _) =
                    decoder.decode_to_utf8(bytes, &mut self.text[start..], last);
                self.text.truncate(start + written);
            }
        }
    }
}

/// Do the first bytes `head` settle the encoding as the first 512 bytes
/// would? They do once they are 512, and once they are 4 whose first two are
/// not NUL: the byte-order marks and the ZIP signature are within 4 bytes,
/// and UTF-16 without a byte-order mark needs a NUL in one of the first two.
fn settles(head: &[u8]) -> bool {
    head.len() >= SNIFF || (head.len() >= 4 && head[0] != 0 && head[1] != 0)
}

/// Incremental validation, decided by the first chunk.
enum Checker {
    /// UTF-8 so far; `carry` holds an incomplete sequence cut by the chunk end.
    Utf8 {
        bom: bool,
        valid: bool,
        carry: Vec<u8>,
        nul_at: Option<u64>,
        alternating_nuls: bool,
    },
    Utf16 {
        le: bool,
        decoder: Box<encoding_rs::Decoder>,
        out: Vec<u8>,
    },
}

impl Checker {
    fn start(first: &[u8]) -> Self {
        if first.starts_with(&[0xFF, 0xFE]) || first.starts_with(&[0xFE, 0xFF]) {
            let le = first[0] == 0xFF;
            let enc = if le { UTF_16LE } else { UTF_16BE };
            return Self::Utf16 {
                le,
                decoder: Box::new(enc.new_decoder_with_bom_removal()),
                // Decoded in rounds: a check fed an upload keeps this per upload.
                out: vec![0; 64 * 1024],
            };
        }
        // Text in UTF-16 without a BOM shows as a NUL in every other byte.
        let sample = &first[..first.len().min(512)];
        let alternating_nuls = sample.len() >= 8
            && (sample.iter().step_by(2).all(|&b| b == 0)
                || sample.iter().skip(1).step_by(2).all(|&b| b == 0));
        Self::Utf8 {
            bom: first.starts_with(&[0xEF, 0xBB, 0xBF]),
            valid: true,
            carry: Vec::new(),
            nul_at: None,
            alternating_nuls,
        }
    }

    fn feed(&mut self, chunk: &[u8], offset: u64, last: bool) -> Result<(), ScanError> {
        match self {
            Self::Utf8 {
                bom,
                valid,
                carry,
                nul_at,
                alternating_nuls,
            } => {
                if chunk.starts_with(b"PK\x03\x04") && offset == 0 {
                    return Err(ScanError::Undecodable(
                        "this is a ZIP or Excel (.xlsx) file, not CSV text; in Excel use Save As > 'CSV UTF-8 (Comma delimited)'".into(),
                    ));
                }
                if nul_at.is_none()
                    && let Some(i) = chunk.iter().position(|&b| b == 0)
                {
                    *nul_at = Some(offset + i as u64);
                    let why = if *alternating_nuls {
                        "the file looks like UTF-16 text without a byte-order mark; save it as UTF-8 (or as UTF-16 with a BOM)".to_string()
                    } else {
                        format!(
                            "the file holds a NUL byte at byte {}, so it is not CSV text; export the roster as CSV",
                            offset + i as u64
                        )
                    };
                    return Err(ScanError::Undecodable(why));
                }
                if *valid {
                    let mut data = std::mem::take(carry);
                    data.extend_from_slice(chunk);
                    match std::str::from_utf8(&data) {
                        Ok(_) => {}
                        Err(e) if e.error_len().is_none() && !last => {
                            *carry = data[e.valid_up_to()..].to_vec();
                        }
                        Err(e) => {
                            if *bom {
                                let at = offset + e.valid_up_to() as u64
                                    - (data.len() - chunk.len()) as u64;
                                return Err(ScanError::Undecodable(format!(
                                    "the file starts with a UTF-8 byte-order mark but byte {at} is not valid UTF-8; save it again as 'CSV UTF-8'"
                                )));
                            }
                            *valid = false;
                        }
                    }
                }
                Ok(())
            }
            Self::Utf16 { le, decoder, out } => {
                let mut src = chunk;
                loop {
                    let (result, read, _) =
                        decoder.decode_to_utf8_without_replacement(src, out, last);
                    src = &src[read..];
                    match result {
                        DecoderResult::InputEmpty => return Ok(()),
                        DecoderResult::OutputFull => continue,
                        DecoderResult::Malformed(bad, after) => {
                            // Where the malformed sequence starts, wherever
                            // the chunks of the file were cut.
                            let at = (offset + (chunk.len() - src.len()) as u64)
                                .saturating_sub(u64::from(bad) + u64::from(after));
                            return Err(ScanError::Undecodable(format!(
                                "the file is marked as {} (byte-order mark) but is not valid {} near byte {at}; save it again as 'CSV UTF-8'",
                                if *le { "UTF-16LE" } else { "UTF-16BE" },
                                if *le { "UTF-16LE" } else { "UTF-16BE" },
                            )));
                        }
                    }
                }
            }
        }
    }

    fn encoding(&self) -> TextEncoding {
        match self {
            Self::Utf16 { le: true, .. } => TextEncoding::Utf16Le,
            Self::Utf16 { le: false, .. } => TextEncoding::Utf16Be,
            Self::Utf8 { valid: false, .. } => TextEncoding::Windows1252,
            Self::Utf8 { bom: true, .. } => TextEncoding::Utf8Bom,
            Self::Utf8 { .. } => TextEncoding::Utf8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(bytes: &[u8]) -> Result<TextEncoding, String> {
        scan_reader(bytes)
            .map(|s| s.encoding)
            .map_err(|e| e.to_string())
    }

    fn text(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, bytes).unwrap();
        let e = scan(&p).unwrap().encoding;
        let mut s = String::new();
        open_text(&p, e).unwrap().read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn detects_each_encoding() {
        assert_eq!(enc(b"a,b\n"), Ok(TextEncoding::Utf8));
        assert_eq!(enc(b"\xEF\xBB\xBFa,b\n"), Ok(TextEncoding::Utf8Bom));
        assert_eq!(enc(b"\xFF\xFEa\x00"), Ok(TextEncoding::Utf16Le));
        assert_eq!(enc(b"\xFE\xFF\x00a"), Ok(TextEncoding::Utf16Be));
        assert_eq!(enc(b"Jos\xE9,b\n"), Ok(TextEncoding::Windows1252));
    }

    #[test]
    fn decodes_to_utf8_without_bom() {
        assert_eq!(text(b"\xEF\xBB\xBFJos\xC3\xA9"), "José");
        assert_eq!(text(b"Jos\xE9 \x93q\x94"), "José \u{201c}q\u{201d}");
        assert_eq!(text(b"\xFF\xFEJ\x00\xE9\x00"), "Jé");
        assert_eq!(text(b"\xFE\xFF\x00J\x00\xE9"), "Jé");
    }

    #[test]
    fn utf8_split_across_chunks_stays_utf8() {
        let mut data = vec![b'a'; CHUNK - 1];
        data.extend_from_slice("é".as_bytes()); // 2 bytes straddling the chunk edge
        assert_eq!(enc(&data), Ok(TextEncoding::Utf8));
    }

    #[test]
    fn refusals() {
        assert!(enc(b"").unwrap_err().contains("empty"));
        assert!(enc(b"PK\x03\x04rest").unwrap_err().contains("Excel"));
        assert!(
            enc(b"U\x00s\x00e\x00r\x00n\x00a\x00m\x00e\x00")
                .unwrap_err()
                .contains("without a byte-order mark")
        );
        assert!(
            enc(b"abc,def\n\x00\x01\x02")
                .unwrap_err()
                .contains("NUL byte at byte 8")
        );
        assert!(enc(b"\xEF\xBB\xBFabc\xFF").unwrap_err().contains("byte 6"));
        // unpaired surrogate
        assert!(
            enc(b"\xFF\xFEa\x00\x00\xD8b\x00")
                .unwrap_err()
                .contains("not valid UTF-16LE")
        );
        // odd length
        assert!(
            enc(b"\xFF\xFEa\x00b")
                .unwrap_err()
                .contains("not valid UTF-16LE")
        );
    }

    #[test]
    fn line_numbers_survive_blank_lines_crlf_and_quoted_newlines() {
        let text = "h\r\na\r\n\r\n \r\nb\r\n\"x\ny\nz\",1\n\n,,\nc\n";
        let mut rows = CsvRows::from_text(Box::new(text.as_bytes()));
        let mut rec = csv::StringRecord::new();
        let mut got = Vec::new();
        while let Some(line) = rows.next(&mut rec).unwrap() {
            got.push((rec.get(0).unwrap().to_owned(), line));
        }
        let want = [("h", 1), ("a", 2), ("b", 5), ("x\ny\nz", 6), ("c", 11)];
        let want: Vec<(String, u64)> = want.iter().map(|(s, l)| (s.to_string(), *l)).collect();
        assert_eq!(got, want);
    }

    fn read_all(text: Vec<u8>) -> Result<u64, ReadError> {
        let mut rows = CsvRows::from_text(Box::new(std::io::Cursor::new(text)));
        let mut rec = csv::StringRecord::new();
        let mut n = 0;
        while rows.next(&mut rec)?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    fn refusal(text: Vec<u8>) -> String {
        match read_all(text) {
            Err(ReadError::Unreadable(why)) => why.0,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_record_over_the_length_limit_stops_the_reading() {
        let limit = MAX_RECORD_BYTES as usize;
        // Exactly at the limit (line break included) is fine, one byte more is not.
        let mut at = b"h\n".to_vec();
        at.extend(vec![b'x'; limit - 1]);
        at.push(b'\n');
        assert_eq!(read_all(at.clone()).unwrap(), 2);
        let mut over = b"h\n".to_vec();
        over.extend(vec![b'x'; limit]);
        over.push(b'\n');
        let why = refusal(over);
        assert!(why.starts_with("line 2 is longer than 1 MiB"), "{why}");
        // No line break at all: line 1.
        assert!(refusal(vec![b'a'; limit + 10]).starts_with("line 1 is longer"));
        // A quote that never closes, over many short lines.
        let mut open = b"h\nok\n\"never closed\n".to_vec();
        for _ in 0..limit / 6 {
            open.extend_from_slice(b"abc,de\n");
        }
        let why = refusal(open);
        assert!(
            why.starts_with(
                "the record starting on line 3 runs on for more than 1 MiB: a double quote"
            ),
            "{why}"
        );
        // Quoted line breaks and "" inside quotes are the parser's, and count
        // towards one record only while the quote is open.
        let mut fine = b"h\n".to_vec();
        for _ in 0..limit / 16 {
            fine.extend_from_slice(b"\"a\"\"\nb\",c\"d\n");
        }
        assert_eq!(read_all(fine).unwrap(), 1 + (limit / 16) as u64);
    }

    #[test]
    fn a_record_over_the_field_limit_stops_the_reading() {
        let fields = |n: usize| {
            let mut t = b"h\n".to_vec();
            t.extend(vec![b','; n - 1]);
            t.extend_from_slice(b"x\n");
            t
        };
        assert_eq!(read_all(fields(MAX_FIELDS as usize)).unwrap(), 2);
        let why = refusal(fields(MAX_FIELDS as usize + 1));
        assert!(
            why.starts_with("line 2 has more than 1,000 fields"),
            "{why}"
        );
        // Commas inside quotes are not separators.
        let mut quoted = b"h\n\"".to_vec();
        quoted.extend(vec![b','; 5000]);
        quoted.extend_from_slice(b"\"\n");
        assert_eq!(read_all(quoted).unwrap(), 2);
    }

    #[test]
    fn a_file_over_the_row_limit_stops_the_reading() {
        let mut t = b"h\n".to_vec();
        for _ in 0..MAX_ROWS {
            t.extend_from_slice(b"x\n");
        }
        assert_eq!(read_all(t.clone()).unwrap(), MAX_ROWS + 1);
        t.extend_from_slice(b"\n\ny\n");
        let why = refusal(t);
        assert!(
            why.starts_with("the file has more than 1,000,000 data rows"),
            "{why}"
        );
    }

    #[test]
    fn blank_records_keep_no_line_starts() {
        let mut text = b"h\n".to_vec();
        text.extend(b" ,\n".repeat(100_000));
        let mut rows = CsvRows::from_text(Box::new(std::io::Cursor::new(text)));
        let mut rec = csv::StringRecord::new();
        assert_eq!(rows.next(&mut rec).unwrap(), Some(1));
        assert_eq!(rows.next(&mut rec).unwrap(), None);
        let held = rows.lines.lock().unwrap().held();
        assert!(held < 256 * 1024 / 3, "{held} line starts kept");
    }

    #[test]
    fn sha256_of_whole_file() {
        let s = scan_reader(&b"abc"[..]).unwrap();
        assert_eq!(
            s.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(s.size, 3);
    }

    #[test]
    fn the_first_pass_counts_lines_and_the_second_says_how_many_rows_are_left() {
        let body = "Username\na1\n\"b\nc\",x\nd1";
        let s = scan_reader(body.as_bytes()).unwrap();
        assert_eq!(s.lines, 4);
        let mut rows = CsvRows::from_text(Box::new(body.as_bytes()));
        assert_eq!(rows.rows_hint(), None, "unknown until told");
        rows.expect_lines(s.lines);
        let mut record = csv::StringRecord::new();
        rows.next(&mut record).unwrap();
        // After the header: 3 data rows, and one more for the quoted line
        // break (an overcount, never an undercount).
        assert_eq!(rows.rows_hint(), Some(4));
        rows.expect_lines(u64::MAX);
        assert_eq!(rows.rows_hint(), Some(MAX_ROWS as usize));
    }
}
