//! A small reader of the MIME messages rosterd writes, for tests: the tree of
//! parts, their headers, and their bodies decoded (quoted-printable,
//! base64). Enough for what lettre produces; not a general mail parser.

use base64ct::{Base64, Encoding};

#[derive(Debug, Clone)]
pub struct Part {
    /// Headers, unfolded, names as written.
    pub headers: Vec<(String, String)>,
    /// The part as it stands in the message, headers and body, with CRLF
    /// line ends.
    pub raw: String,
    /// The body as it stands in the message (still encoded).
    pub body: String,
    pub children: Vec<Part>,
}

impl Part {
    /// Parse a whole message (or one part of it).
    pub fn parse(raw: &[u8]) -> Part {
        let raw = String::from_utf8(raw.to_vec()).expect("a message is 7-bit or UTF-8 text");
        let raw = raw.replace("\r\n", "\n").replace('\n', "\r\n");
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("a folded line follows a header");
                last.1.push(' ');
                last.1.push_str(line.trim());
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.to_owned(), value.trim().to_owned()));
            }
        }
        let mut part = Part {
            headers,
            raw: raw.clone(),
            body: body.to_owned(),
            children: Vec::new(),
        };
        if part.content_type().starts_with("multipart/") {
            let boundary = part
                .param("Content-Type", "boundary")
                .expect("a multipart has a boundary");
            let delimiter = format!("--{boundary}");
            for piece in part.body.split(&delimiter).skip(1) {
                if piece.starts_with("--") {
                    break;
                }
                let piece = piece.strip_prefix("\r\n").unwrap_or(piece);
                let piece = piece.strip_suffix("\r\n").unwrap_or(piece);
                part.children.push(Part::parse(piece.as_bytes()));
            }
        }
        part
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `text/html`, lower-case, without parameters; `text/plain` if absent.
    pub fn content_type(&self) -> String {
        self.header("Content-Type")
            .map(|v| v.split(';').next().unwrap().trim().to_ascii_lowercase())
            .unwrap_or_else(|| "text/plain".into())
    }

    /// A parameter of a header: `boundary` of `Content-Type`.
    pub fn param(&self, header: &str, name: &str) -> Option<String> {
        self.header(header)?.split(';').skip(1).find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().trim_matches('"').to_owned())
        })
    }

    /// This part and every part inside it, depth first.
    pub fn walk(&self) -> Vec<&Part> {
        let mut out = vec![self];
        for child in &self.children {
            out.extend(child.walk());
        }
        out
    }

    /// The first part of `content_type`, depth first.
    pub fn find(&self, content_type: &str) -> Option<&Part> {
        self.walk()
            .into_iter()
            .find(|p| p.content_type() == content_type)
    }

    /// The body, its transfer encoding undone.
    pub fn decoded(&self) -> Vec<u8> {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        match encoding.as_str() {
            "base64" => {
                let b64: String = self.body.split_whitespace().collect();
                Base64::decode_vec(&b64).expect("valid base64")
            }
            "quoted-printable" => quoted_printable(self.body.as_bytes()),
            _ => self.body.as_bytes().to_vec(),
        }
    }

    /// The decoded body as text, with LF line ends.
    pub fn text(&self) -> String {
        String::from_utf8(self.decoded())
            .expect("UTF-8 text")
            .replace("\r\n", "\n")
    }

    /// The tree of content types, one line: `multipart/mixed [text/plain, text/csv errors.csv]`.
    pub fn outline(&self) -> String {
        let mut s = self.content_type();
        if let Some(name) = self.param("Content-Disposition", "filename") {
            s.push_str(&format!(" {name}"));
        }
        if let Some(id) = self.header("Content-ID") {
            s.push_str(&format!(" {id}"));
        }
        if !self.children.is_empty() {
            let inner: Vec<String> = self.children.iter().map(Part::outline).collect();
            s.push_str(&format!(" [{}]", inner.join(", ")));
        }
        s
    }
}

/// A header with its RFC 2047 encoded words (`=?utf-8?b?…?=`, as lettre
/// writes them) decoded.
pub fn decode_words(header: &str) -> String {
    let mut out = String::new();
    let mut rest = header;
    while let Some(start) = rest.find("=?utf-8?b?") {
        let Some(len) = rest[start + 10..].find("?=") else {
            break;
        };
        out.push_str(&rest[..start]);
        let word = Base64::decode_vec(&rest[start + 10..start + 10 + len]).expect("base64 word");
        out.push_str(&String::from_utf8(word).expect("UTF-8 word"));
        rest = &rest[start + 10 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Undo quoted-printable encoding.
pub fn quoted_printable(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'=' if raw[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if raw[i + 1..].starts_with(b"\n") => i += 2,
            b'=' if i + 2 < raw.len()
                && raw[i + 1].is_ascii_hexdigit()
                && raw[i + 2].is_ascii_hexdigit() =>
            {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}
