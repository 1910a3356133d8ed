//! SSH keys: the districts' public keys that support registers (OpenSSH lines,
//! `authorized_keys` lines, RFC 4716 blocks from PuTTYgen/WinSCP), the type and
//! size rules they must pass, and the server's own ed25519 host key.

use base64ct::{Base64, Encoding};
use russh::keys::EcdsaCurve;
use russh::keys::ssh_key::{HashAlg, PublicKey, public::KeyData};

use thiserror::Error;

/// RSA keys shorter than this are refused.
pub const MIN_RSA_BITS: u32 = 2048;
/// OpenSSH's own upper bound: larger keys only cost every login more.
pub const MAX_RSA_BITS: u32 = 16384;

/// A public key that passed every rule and may be registered.
#[derive(Debug, Clone)]
pub struct AcceptedKey {
    pub key: PublicKey,
    /// `SHA256:…`, exactly as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// `ED25519`, `ECDSA`, `RSA`, as `ssh-keygen -l` names them.
    pub kind: &'static str,
    pub bits: u32,
    pub comment: String,
    /// The addresses it may log in from: an OpenSSH `from="…"` pattern list
    /// (see [`address_allowed`]); `None`: anywhere.
    pub from: Option<String>,
    /// `authorized_keys` options given with it that mean nothing to an
    /// upload-only server (`command=`, `no-pty`, …), for support to be told.
    pub ignored_options: Vec<String>,
}

impl AcceptedKey {
    /// The key as one OpenSSH line, which is how the store keeps it.
    pub fn openssh_line(&self) -> String {
        self.key.to_openssh().unwrap_or_default()
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "no public key found: expected a line like 'ssh-ed25519 AAAA… comment' or a '---- BEGIN SSH2 PUBLIC KEY ----' block"
    )]
    Empty,
    #[error(
        "this is a PRIVATE key: never send it to anyone. Register the matching public key (the .pub file) instead, and treat this private key as exposed"
    )]
    PrivateKey,
    #[error(
        "this is a PuTTY private key file (.ppk): in PuTTYgen, load it and copy the text under 'Public key for pasting into OpenSSH authorized_keys file'"
    )]
    PuttyPrivateKey,
    #[error(
        "{0}: DSA (ssh-dss) keys are not accepted because they are obsolete and weak; generate a new key with `ssh-keygen -t ed25519`"
    )]
    Dsa(String),
    #[error(
        "{where_}: this RSA key has only {bits} bits; at least {MIN_RSA_BITS} are required. Generate a new key with `ssh-keygen -t ed25519` (or `-t rsa -b 4096`)"
    )]
    ShortRsa { where_: String, bits: u32 },
    #[error(
        "{where_}: this RSA key has {bits} bits; OpenSSH accepts at most {MAX_RSA_BITS}, and so does rosterd. Generate a new key with `ssh-keygen -t ed25519` (or `-t rsa -b 4096`)"
    )]
    LongRsa { where_: String, bits: u32 },
    #[error("{0}: certificates are not accepted; register the plain public key")]
    Certificate(String),
    #[error(
        "{0}: security-key (FIDO, sk-…) keys are not accepted: an unattended upload job cannot touch a hardware key"
    )]
    SecurityKey(String),
    #[error(
        "{where_}: key type {kind:?} is not accepted; use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa of at least {MIN_RSA_BITS} bits"
    )]
    UnsupportedType { where_: String, kind: String },
    #[error("{where_}: the key data is damaged ({detail}); copy the whole key again, on one line")]
    Malformed { where_: String, detail: String },
    #[error(
        "{where_}: the option {option} is not supported: rosterd does not accept SSH certificates; register the district's plain public key"
    )]
    CertificateOption { where_: String, option: String },
    #[error("{where_}: {detail}")]
    BadFrom { where_: String, detail: String },
}

/// Parse every key in `text`: OpenSSH or `authorized_keys` lines (blank lines and
/// `#` comments skipped) and RFC 4716 blocks. All must be acceptable, or none is
/// returned, so a support command never registers half a file.
pub fn parse_public_keys(text: &str) -> Result<Vec<AcceptedKey>, KeyError> {
    if text.contains("PRIVATE KEY-----") {
        return Err(KeyError::PrivateKey);
    }
    if text.trim_start().starts_with("PuTTY-User-Key-File") {
        return Err(KeyError::PuttyPrivateKey);
    }
    let mut keys = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let line = raw.trim();
        let where_ = format!("line {}", index + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("---- BEGIN SSH2 PUBLIC KEY") {
            let mut body = Vec::new();
            let mut ended = false;
            for (_, raw) in lines.by_ref() {
                let l = raw.trim();
                if l.starts_with("---- END SSH2 PUBLIC KEY") {
                    ended = true;
                    break;
                }
                body.push(l);
            }
            if !ended {
                return Err(KeyError::Malformed {
                    where_,
                    detail: "the block has no '---- END SSH2 PUBLIC KEY ----' line".into(),
                });
            }
            keys.push(parse_rfc4716(&body, &where_)?);
        } else if let Some(pem) = ["PUBLIC KEY", "RSA PUBLIC KEY"]
            .into_iter()
            .find(|label| line == format!("-----BEGIN {label}-----"))
        {
            let end = format!("-----END {pem}-----");
            let body: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l.trim())
                .take_while(|l| *l != end)
                .collect();
            keys.push(parse_pem(pem, &body.concat(), &where_)?);
        } else {
            keys.push(parse_openssh_line(line, &where_)?);
        }
    }
    if keys.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(keys)
}

/// One OpenSSH public-key line, optionally with `authorized_keys` options in
/// front (`from="10.0.0.1",no-pty ssh-ed25519 AAAA… comment`).
fn parse_openssh_line(line: &str, where_: &str) -> Result<AcceptedKey, KeyError> {
    let tokens = split_outside_quotes(line);
    let start = tokens
        .iter()
        .position(|t| looks_like_key_type(t))
        .ok_or_else(|| KeyError::Malformed {
            where_: where_.into(),
            detail: "no key type such as ssh-ed25519 found".into(),
        })?;
    let kind = tokens[start];
    let data = tokens.get(start + 1).ok_or_else(|| KeyError::Malformed {
        where_: where_.into(),
        detail: format!("{kind} is not followed by the key's base64 data"),
    })?;
    let comment = tokens[start + 2..].join(" ");
    let (from, ignored_options) = parse_options(&tokens[..start].join(" "), where_)?;
    check_type_name(kind, where_)?;
    let blob = Base64::decode_vec(data).map_err(|_| KeyError::Malformed {
        where_: where_.into(),
        detail: "the base64 data is not valid".into(),
    })?;
    let key = decode_blob(&blob, where_)?;
    if key.algorithm().as_str() != kind {
        return Err(KeyError::Malformed {
            where_: where_.into(),
            detail: format!(
                "the line says {kind} but the data holds a {} key",
                key.algorithm()
            ),
        });
    }
    let mut accepted = accept(key, comment, where_)?;
    accepted.from = from;
    accepted.ignored_options = ignored_options;
    Ok(accepted)
}

/// The `authorized_keys` options in front of a key (`from="10.0.0.0/8",no-pty`):
/// its `from=` pattern list, checked, and the names of the options that have
/// no meaning here. Certificate options are refused.
fn parse_options(text: &str, where_: &str) -> Result<(Option<String>, Vec<String>), KeyError> {
    let mut from = None;
    let mut ignored = Vec::new();
    for option in split_options(text) {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(unquote(value))),
            None => (option, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("from", Some(list)) => {
                check_address_patterns(&list).map_err(|detail| KeyError::BadFrom {
                    where_: where_.into(),
                    detail,
                })?;
                from = Some(list);
            }
            ("cert-authority" | "principals", _) => {
                return Err(KeyError::CertificateOption {
                    where_: where_.into(),
                    option: name.to_owned(),
                });
            }
            _ => ignored.push(name.to_owned()),
        }
    }
    Ok((from, ignored))
}

/// Split options on the commas outside double quotes.
fn split_options(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

fn unquote(value: &str) -> String {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    inner.replace("\\\"", "\"")
}

/// Check an OpenSSH address pattern list (`10.0.0.0/8,!10.1.2.3,192.168.*`):
/// each entry an address, a CIDR block or a wildcard pattern over an
/// address's characters, optionally negated with `!`. Host names are refused:
/// rosterd matches the client's address only, never its DNS name.
pub fn check_address_patterns(list: &str) -> Result<(), String> {
    let patterns: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if patterns.is_empty() {
        return Err(
            "the from= address list is empty; give addresses or CIDR blocks such as 203.0.113.0/24"
                .into(),
        );
    }
    for raw in &patterns {
        let pattern = raw.strip_prefix('!').unwrap_or(raw);
        let pattern = unbracket(pattern);
        let ok = if let Some((addr, len)) = pattern.split_once('/') {
            match (addr.parse::<std::net::IpAddr>(), len.parse::<u8>()) {
                (Ok(std::net::IpAddr::V4(_)), Ok(n)) => n <= 32,
                (Ok(std::net::IpAddr::V6(_)), Ok(n)) => n <= 128,
                _ => false,
            }
        } else {
            !pattern.is_empty()
                && pattern
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '*' | '?'))
        };
        if !ok {
            return Err(format!(
                "{raw:?} in the from= list is not an address, CIDR block (203.0.113.0/24) or address pattern (203.0.113.*); host names are not matched"
            ));
        }
    }
    Ok(())
}

fn unbracket(pattern: &str) -> &str {
    pattern
        .strip_prefix('[')
        .and_then(|p| p.strip_suffix(']'))
        .unwrap_or(pattern)
}

/// Does `ip` pass the pattern list, with OpenSSH's semantics: a negated
/// entry that matches refuses whatever else matches; otherwise any matching
/// entry allows; nothing matching refuses. An IPv4 address seen as IPv6
/// (`::ffff:192.0.2.1`) is matched as IPv4.
pub fn address_allowed(list: &str, ip: std::net::IpAddr) -> bool {
    let ip = ip.to_canonical();
    let text = ip.to_string();
    let mut allowed = false;
    for raw in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (negated, pattern) = match raw.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, raw),
        };
        let pattern = unbracket(pattern);
        let hit = match pattern.split_once('/') {
            Some((addr, len)) => in_block(ip, addr, len),
            None => wildcard(pattern.as_bytes(), text.as_bytes()),
        };
        if hit {
            if negated {
                return false;
            }
            allowed = true;
        }
    }
    allowed
}

fn in_block(ip: std::net::IpAddr, addr: &str, len: &str) -> bool {
    use std::net::IpAddr;
    let (Ok(net), Ok(len)) = (addr.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (ip, net.to_canonical()) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `*` and `?` wildcards, case-insensitive, as OpenSSH's match_pattern.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pattern[1..], text) || (!text.is_empty() && wildcard(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p.eq_ignore_ascii_case(t) => wildcard(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// The lines between RFC 4716's BEGIN and END markers: headers (`Comment: "…"`,
/// continued with a trailing backslash), then base64.
fn parse_rfc4716(body: &[&str], where_: &str) -> Result<AcceptedKey, KeyError> {
    let mut comment = String::new();
    let mut data = String::new();
    let mut continuing = false;
    for line in body {
        if continuing || line.contains(':') {
            let (name, value) = line.split_once(':').unwrap_or(("", line));
            continuing = value.ends_with('\\');
            if name.trim().eq_ignore_ascii_case("comment") {
                comment = value
                    .trim()
                    .trim_end_matches('\\')
                    .trim_matches('"')
                    .to_owned();
            }
        } else {
            data.push_str(line);
        }
    }
    let blob = Base64::decode_vec(&data).map_err(|_| KeyError::Malformed {
        where_: where_.into(),
        detail: "the base64 data of the SSH2 block is not valid".into(),
    })?;
    let key = decode_blob(&blob, where_)?;
    check_type_name(key.algorithm().as_str(), where_)?;
    accept(key, comment, where_)
}

/// A PEM public key, as `ssh-keygen -e -m PKCS8` (`PUBLIC KEY`, an X.509
/// SubjectPublicKeyInfo) or `-m PEM` (`RSA PUBLIC KEY`, PKCS #1) writes it,
/// and as OpenSSL and Java key tools export: rewritten in SSH's own wire
/// form, then decoded as any other key.
fn parse_pem(label: &str, base64: &str, where_: &str) -> Result<AcceptedKey, KeyError> {
    let damaged = |detail: &str| KeyError::Malformed {
        where_: where_.into(),
        detail: format!(
            "{detail} in the -----BEGIN {label}----- block; convert it with `ssh-keygen -i -m PKCS8 -f key.pem > key.pub` and register key.pub"
        ),
    };
    let der = Base64::decode_vec(base64).map_err(|_| damaged("the base64 data is not valid"))?;
    let blob = if label == "RSA PUBLIC KEY" {
        pkcs1_rsa_to_ssh(&der)
    } else {
        spki_to_ssh(&der)
    }
    .ok_or_else(|| damaged("not an RSA, ECDSA (P-256, P-384, P-521) or Ed25519 public key"))?;
    let key = decode_blob(&blob, where_)?;
    accept(key, String::new(), where_)
}

/// The DER tags of the public-key structures read here.
const DER_SEQUENCE: u8 = 0x30;
const DER_INTEGER: u8 = 0x02;
const DER_BIT_STRING: u8 = 0x03;
const DER_OID: u8 = 0x06;

/// One DER element of `input`: its tag, its contents, and what follows.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| a << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// SSH's wire form of a key: each part as a length-prefixed string.
fn ssh_wire(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// PKCS #1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent
/// INTEGER }`. DER integers are already SSH's mpints.
fn pkcs1_rsa_to_ssh(der: &[u8]) -> Option<Vec<u8>> {
    let (DER_SEQUENCE, body, _) = der_element(der)? else {
        return None;
    };
    let (DER_INTEGER, n, rest) = der_element(body)? else {
        return None;
    };
    let (DER_INTEGER, e, _) = der_element(rest)? else {
        return None;
    };
    Some(ssh_wire(&[b"ssh-rsa", e, n]))
}

/// X.509 `SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE { OID,
/// parameters }, subjectPublicKey BIT STRING }`.
fn spki_to_ssh(der: &[u8]) -> Option<Vec<u8>> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    const CURVES: [(&[u8], &str); 3] = [
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            "nistp256",
        ),
        (&[0x2b, 0x81, 0x04, 0x00, 0x22], "nistp384"),
        (&[0x2b, 0x81, 0x04, 0x00, 0x23], "nistp521"),
    ];
    let (DER_SEQUENCE, body, _) = der_element(der)? else {
        return None;
    };
    let (DER_SEQUENCE, algorithm, rest) = der_element(body)? else {
        return None;
    };
    let (DER_BIT_STRING, bits, _) = der_element(rest)? else {
        return None;
    };
    let (0, key) = bits.split_first()? else {
        return None;
    };
    let (DER_OID, oid, params) = der_element(algorithm)? else {
        return None;
    };
    match oid {
        RSA => pkcs1_rsa_to_ssh(key),
        ED25519 => Some(ssh_wire(&[b"ssh-ed25519", key])),
        EC => {
            let (DER_OID, curve, _) = der_element(params)? else {
                return None;
            };
            let (_, name) = CURVES.iter().find(|(c, _)| *c == curve)?;
            let kind = format!("ecdsa-sha2-{name}");
            Some(ssh_wire(&[kind.as_bytes(), name.as_bytes(), key]))
        }
        _ => None,
    }
}

fn decode_blob(blob: &[u8], where_: &str) -> Result<PublicKey, KeyError> {
    PublicKey::from_bytes(blob).map_err(|e| KeyError::Malformed {
        where_: where_.into(),
        detail: e.to_string(),
    })
}

fn looks_like_key_type(token: &str) -> bool {
    token.starts_with("ssh-") || token.starts_with("ecdsa-") || token.starts_with("sk-")
}

/// Refuse by type name before decoding, so the message says why.
fn check_type_name(kind: &str, where_: &str) -> Result<(), KeyError> {
    if kind.contains("-cert-") {
        return Err(KeyError::Certificate(where_.into()));
    }
    if kind.starts_with("sk-") {
        return Err(KeyError::SecurityKey(where_.into()));
    }
    if kind == "ssh-dss" {
        return Err(KeyError::Dsa(where_.into()));
    }
    Ok(())
}

/// A key's type as `ssh-keygen -l` names it and its size in bits, for the
/// types rosterd knows (ed25519, ECDSA, RSA).
pub fn kind_and_bits(key: &PublicKey) -> Option<(&'static str, u32)> {
    match key.key_data() {
        KeyData::Ed25519(_) => Some(("ED25519", 256)),
        KeyData::Ecdsa(ec) => Some((
            "ECDSA",
            match ec.curve() {
                EcdsaCurve::NistP256 => 256,
                EcdsaCurve::NistP384 => 384,
                EcdsaCurve::NistP521 => 521,
            },
        )),
        KeyData::Rsa(rsa) => Some(("RSA", rsa.key_size())),
        _ => None,
    }
}

fn accept(key: PublicKey, comment: String, where_: &str) -> Result<AcceptedKey, KeyError> {
    let (kind, bits) = match (kind_and_bits(&key), key.key_data()) {
        (Some(("RSA", bits)), _) if bits < MIN_RSA_BITS => {
            return Err(KeyError::ShortRsa {
                where_: where_.into(),
                bits,
            });
        }
        (Some(("RSA", bits)), _) if bits > MAX_RSA_BITS => {
            return Err(KeyError::LongRsa {
                where_: where_.into(),
                bits,
            });
        }
        (Some(known), _) => known,
        (None, KeyData::Dsa(_)) => return Err(KeyError::Dsa(where_.into())),
        (None, other) => {
            return Err(KeyError::UnsupportedType {
                where_: where_.into(),
                kind: other.algorithm().to_string(),
            });
        }
    };
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let mut key = key;
    key.set_comment(comment.as_str());
    Ok(AcceptedKey {
        key,
        fingerprint,
        kind,
        bits,
        comment,
        from: None,
        ignored_options: Vec::new(),
    })
}

/// Split on whitespace, keeping `"…"` (which may hold spaces) inside one token,
/// as sshd does for `authorized_keys` options.
fn split_outside_quotes(line: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = None;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    tokens.push(&line[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        tokens.push(&line[s..]);
    }
    tokens
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_rsa_key_over_openssh_s_limit_is_refused() {
        // n of 20,000 bits (an mpint: a leading zero byte before the high bit).
        let mut n = vec![0u8, 0xc5];
        n.extend(std::iter::repeat_n(0x5a, 2499));
        n.push(0x01);
        let blob = ssh_wire(&[b"ssh-rsa", &[0x01, 0x00, 0x01], &n]);
        let line = format!("ssh-rsa {} big@example", Base64::encode_string(&blob));
        let err = parse_public_keys(&line).unwrap_err();
        assert!(
            matches!(err, KeyError::LongRsa { bits, .. } if bits > MAX_RSA_BITS),
            "{err}"
        );
        assert!(err.to_string().contains("at most 16384"), "{err}");
    }

    #[test]
    fn a_pem_ed25519_key_is_read_as_its_ssh_form() {
        // RFC 8410, section 10.1.
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let keys = parse_public_keys(pem).unwrap();
        assert_eq!(keys[0].kind, "ED25519");
        let ssh = keys[0].key.to_openssh().unwrap();
        let raw = "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1";
        let blob = ssh_wire(&[
            b"ssh-ed25519",
            &(0..32)
                .map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).unwrap())
                .collect::<Vec<_>>(),
        ]);
        assert_eq!(ssh, format!("ssh-ed25519 {}", Base64::encode_string(&blob)));
        let damaged = parse_public_keys(
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VxAyEA\n-----END PUBLIC KEY-----\n",
        );
        assert!(
            damaged
                .unwrap_err()
                .to_string()
                .contains("ssh-keygen -i -m PKCS8 -f key.pem"),
        );
    }
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti foo@bar.com";

    #[test]
    fn options_and_comment() {
        let line = format!("from=\"10.0.0.1,10.0.0.2\",command=\"echo a b\",no-pty {ED}");
        let keys = parse_public_keys(&line).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kind, "ED25519");
        assert_eq!(keys[0].comment, "foo@bar.com");
        assert!(keys[0].fingerprint.starts_with("SHA256:"));
        assert_eq!(keys[0].from.as_deref(), Some("10.0.0.1,10.0.0.2"));
        assert_eq!(keys[0].ignored_options, ["command", "no-pty"]);
        // Certificates are refused; a host name in from= too (no DNS).
        for (line, says) in [
            (
                format!("cert-authority {ED}"),
                "cert-authority is not supported",
            ),
            (
                format!("principals=\"a,b\" {ED}"),
                "principals is not supported",
            ),
            (
                format!("from=\"*.example.org\" {ED}"),
                "host names are not matched",
            ),
            (
                format!("from=\"10.0.0.0/33\" {ED}"),
                "not an address, CIDR block",
            ),
            (format!("from=\"\" {ED}"), "address list is empty"),
        ] {
            let e = parse_public_keys(&line).unwrap_err().to_string();
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn address_patterns_follow_openssh() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let cases = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.*", "127.0.0.2", true),
            ("127.0.0.?", "127.0.0.12", false),
            ("!127.0.0.2,127.0.0.0/8", "127.0.0.2", false),
            ("!127.0.0.2,127.0.0.0/8", "127.0.0.3", true),
            ("127.0.0.0/8,!127.0.0.2", "127.0.0.2", false),
            ("!127.0.0.2", "127.0.0.3", false), // nothing positive matched
            ("::1", "::1", true),
            ("[::1]", "::1", true),
            ("::1/128", "::1", true),
            ("2001:db8::/32", "2001:db8::5", true),
            ("2001:DB8::*", "2001:db8::5", true),
            ("192.0.2.0/24", "::ffff:192.0.2.7", true),
            ("0.0.0.0/0", "198.51.100.1", true),
            ("10.0.0.0/8", "::1", false),
        ];
        for (list, addr, want) in cases {
            assert!(check_address_patterns(list).is_ok(), "{list}");
            assert_eq!(address_allowed(list, ip(addr)), want, "{list} vs {addr}");
        }
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            parse_public_keys("\n# only a comment\n").unwrap_err(),
            KeyError::Empty
        );
        assert_eq!(
            parse_public_keys("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n").unwrap_err(),
            KeyError::PrivateKey
        );
        assert!(matches!(
            parse_public_keys("ssh-ed25519 AAAA!!!").unwrap_err(),
            KeyError::Malformed { .. }
        ));
        assert!(matches!(
            parse_public_keys("ssh-ed25519").unwrap_err(),
            KeyError::Malformed { .. }
        ));
        assert!(matches!(
            parse_public_keys("sk-ssh-ed25519@openssh.com AAAA").unwrap_err(),
            KeyError::SecurityKey(_)
        ));
        // type on the line differs from the type inside the data
        let lying = ED.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert!(matches!(
            parse_public_keys(&lying).unwrap_err(),
            KeyError::Malformed { .. }
        ));
    }

    #[test]
    fn quoted_options_keep_spaces() {
        assert_eq!(
            split_outside_quotes(r#"a="x y",b c  d"#),
            vec![r#"a="x y",b"#, "c", "d"]
        );
    }
}
