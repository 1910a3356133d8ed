//! An email address, as rosterd accepts one for a district's administrator
//! and in a users file: the dot-atom subset of RFC 5322 that real mail
//! systems accept, parsed once at the boundary; and a composed message ready
//! to queue ([`Outgoing`]).

/// A syntactically valid email address (`local@domain.tld`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_email(raw).map(|text| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The rules of [`EmailAddress`] without copying: the trimmed address, borrowed.
pub fn check_email(raw: &str) -> Result<&str, String> {
    let text = raw.trim();
    check_address(text, true)
        .map(|()| text)
        .map_err(|why| format!("Email Address is not a valid email address: {why}"))
}

/// Address syntax: the dot-atom subset of RFC 5322 that real mail systems accept.
/// `dotted_domain` requires a domain like `example.org` (not `localhost`).
pub fn check_address(text: &str, dotted_domain: bool) -> Result<(), &'static str> {
    if text.len() > 254 {
        return Err("longer than 254 characters");
    }
    let (local, domain) = text.rsplit_once('@').ok_or("it has no @")?;
    if local.is_empty() || local.len() > 64 {
        return Err("the part before @ must be 1 to 64 characters");
    }
    let local_ok = local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before @ has a character or dot that is not allowed");
    }
    if dotted_domain && !domain.contains('.') {
        return Err("the domain after @ needs a dot, as in example.org");
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err("the domain after @ is not a valid domain name");
        }
    }
    Ok(())
}

/// A composed message, ready to queue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub tenant_id: i64,
    /// Identifies what the message is about (`run:42`, `missing:3:2026-11-21`):
    /// queueing a second message with the same key does nothing.
    pub dedupe_key: String,
    /// `report` or `missing`.
    pub kind: &'static str,
    pub recipient: String,
    pub subject: String,
    /// The whole RFC 5322 message.
    pub message: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "jane.doe+tag@lincoln.k12.ca.us", " x_y@d-1.org "] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a@@b.co",
            "a b@c.org",
            ".a@b.co",
            "a..b@c.org",
            "a@-b.co",
            "a@b..co",
            "a@b_c.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_address("rostering@localhost", false).is_ok());
        assert!(check_address("rostering@localhost", true).is_err());
    }
}
