//! Reading an uploaded file as text. A first pass checks the bytes (and takes
//! their SHA-256) without holding the file in memory; it settles the encoding:
//! UTF-16 with a byte-order mark, UTF-8 with or without one, otherwise
//! Windows-1252, the usual SIS export. A second pass streams the decoded text.

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
    let mut state: Option<Checker> = None;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        let chunk = &buf[..n];
        hasher.update(chunk);
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
        sha256: hex(&hasher.finalize()),
        encoding,
    })
}

/// Open the second pass: the file's text as UTF-8 bytes, without its BOM.
pub fn open_text(path: &Path, encoding: TextEncoding) -> io::Result<impl Read + use<>> {
    let file = File::open(path)?;
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
    Ok(builder.build(file))
}

/// A CSV file's records with the physical line each starts on. (The csv
/// crate's own line numbers drift after blank lines and CRLF endings, so lines
/// are counted here, in the decoded stream the parser reads.)
pub struct CsvRows {
    reader: csv::Reader<CountLines<Box<dyn Read + Send>>>,
    lines: Arc<Mutex<LineStarts>>,
}

impl CsvRows {
    /// Open the second pass of `path` as CSV.
    pub fn open(path: &Path, encoding: TextEncoding) -> io::Result<Self> {
        Ok(Self::from_text(Box::new(open_text(path, encoding)?)))
    }

    pub fn from_text(text: Box<dyn Read + Send>) -> Self {
        let lines = Arc::new(Mutex::new(LineStarts {
            next_line: 1,
            at_line_start: true,
            pos: 0,
            starts: VecDeque::new(),
        }));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(256 * 1024)
            .from_reader(CountLines {
                inner: text,
                lines: lines.clone(),
            });
        Self { reader, lines }
    }

    /// The next record that is not blank (blank: an empty line, or only
    /// separators and spaces), and the line it starts on; `None` at the end.
    pub fn next(&mut self, record: &mut csv::StringRecord) -> csv::Result<Option<u64>> {
        loop {
            if !self.reader.read_record(record)? {
                return Ok(None);
            }
            if record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            let byte = record.position().map_or(0, |p| p.byte());
            let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(Some(lines.line_at(byte)));
        }
    }
}

/// Where each non-empty line starts, for the stretch the parser has read ahead.
struct LineStarts {
    next_line: u64,
    at_line_start: bool,
    pos: u64,
    /// (byte offset, line number) of lines that begin with content.
    starts: VecDeque<(u64, u64)>,
}

impl LineStarts {
    fn see(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.at_line_start {
                if b != b'\n' && b != b'\r' {
                    self.starts.push_back((self.pos, self.next_line));
                }
                self.at_line_start = false;
            }
            if b == b'\n' {
                self.next_line += 1;
                self.at_line_start = true;
            }
            self.pos += 1;
        }
    }

    /// The line of the first content at or after `byte`. Records arrive in
    /// order, so everything before `byte` is dropped for good.
    fn line_at(&mut self, byte: u64) -> u64 {
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
            .see(&buf[..n]);
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
                out: vec![0; CHUNK * 3 + 16],
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
                        DecoderResult::Malformed(_, _) => {
                            let at = offset + (chunk.len() - src.len()) as u64;
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

    #[test]
    fn sha256_of_whole_file() {
        let s = scan_reader(&b"abc"[..]).unwrap();
        assert_eq!(
            s.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(s.size, 3);
    }
}
