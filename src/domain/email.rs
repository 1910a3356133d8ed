//! An email address, as rosterd accepts one for a district's administrator
//! and in a users file: the dot-atom subset of RFC 5322 that real mail
//! systems accept, parsed once at the boundary; the list of addresses a
//! district's mail goes to ([`Recipients`]); and a composed message ready to
//! queue ([`Outgoing`]).

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

/// The most addresses a district's mail may go to.
pub const MAX_RECIPIENTS: usize = 10;
/// The most characters the addresses may take together, as stored and as the
/// `To:` header lists them (`a@x.org, b@y.org`): well within what relays
/// accept in one header.
pub const MAX_RECIPIENTS_CHARS: usize = 990;

/// The addresses a district's mail goes to: one or more, each an
/// [`EmailAddress`], none twice (compared without case), at most
/// [`MAX_RECIPIENTS`] of them in [`MAX_RECIPIENTS_CHARS`] characters.
/// Stored as its [`Recipients::joined`] form, so a database written when a
/// district had one address reads as a list of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipients(Vec<EmailAddress>);

impl Recipients {
    /// Parse lists such as `a@x.org,b@y.org` (commas, spaces around them
    /// optional, an empty item ignored), one list per entry of `lists` (the
    /// flag given several times). The error names the address that is wrong.
    pub fn parse<'a>(lists: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let items: Vec<&str> = lists
            .into_iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect();
        if items.is_empty() {
            return Err("no address given".into());
        }
        let mut addresses: Vec<EmailAddress> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let which = if items.len() == 1 {
                format!("{item:?}")
            } else {
                format!("address {} of {}, {item:?},", i + 1, items.len())
            };
            if item.contains(|c: char| c.is_whitespace() || c == ';') {
                return Err(format!(
                    "{which} is not one email address: separate addresses with commas, as in a@example.org,b@example.org"
                ));
            }
            check_address(item, true)
                .map_err(|why| format!("{which} is not a valid email address: {why}"))?;
            if !addresses
                .iter()
                .any(|a| a.as_str().eq_ignore_ascii_case(item))
            {
                addresses.push(EmailAddress((*item).to_owned()));
            }
        }
        if addresses.len() > MAX_RECIPIENTS {
            return Err(format!(
                "{} addresses given; a district's mail may go to at most {MAX_RECIPIENTS}",
                addresses.len()
            ));
        }
        let recipients = Self(addresses);
        let chars = recipients.joined().chars().count();
        if chars > MAX_RECIPIENTS_CHARS {
            return Err(format!(
                "the addresses take {} characters together; at most {} fit in a message's To: header",
                super::report::thousands(chars as u64),
                super::report::thousands(MAX_RECIPIENTS_CHARS as u64)
            ));
        }
        Ok(recipients)
    }

    /// The addresses, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(EmailAddress::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `a@x.org, b@y.org`: as stored, shown and written in `To:`.
    pub fn joined(&self) -> String {
        self.iter().collect::<Vec<_>>().join(", ")
    }
}

/// The addresses of a stored list (its [`Recipients::joined`] form, or the
/// one address an older rosterd stored).
pub fn split_recipients(stored: &str) -> impl Iterator<Item = &str> {
    stored.split(',').map(str::trim).filter(|a| !a.is_empty())
}

/// A composed message, ready to queue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub tenant_id: i64,
    /// Identifies what the message is about (`run:42`, `missing:3:2026-11-21`):
    /// queueing a second message with the same key does nothing.
    pub dedupe_key: String,
    /// `report`, `held`, `missing`, `failed` or `test`.
    pub kind: &'static str,
    /// Every address in its `To:` header. The outbox keeps a copy per
    /// address, each delivered (and retried, or refused) on its own, so a
    /// server refusing one address loses the message for none of the others.
    pub recipients: Vec<String>,
    pub subject: String,
    /// The whole RFC 5322 message.
    pub message: Vec<u8>,
    /// The message as it is to be kept once delivered, when that differs
    /// (a report carrying generated passwords keeps none of them).
    pub after_delivery: Option<Vec<u8>>,
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

    #[test]
    fn recipient_lists() {
        for (lists, joined) in [
            (&["a@x.org"][..], "a@x.org"),
            (&[" a@x.org "], "a@x.org"),
            (&["a@x.org,b@y.org"], "a@x.org, b@y.org"),
            (&["a@x.org , b@y.org,"], "a@x.org, b@y.org"),
            (
                &["a@x.org", "b@y.org, c@z.org"],
                "a@x.org, b@y.org, c@z.org",
            ),
            (&["a@x.org,A@X.org,b@y.org"], "a@x.org, b@y.org"),
        ] {
            let r = Recipients::parse(lists.iter().copied()).unwrap();
            assert_eq!(r.joined(), joined, "{lists:?}");
            assert_eq!(
                split_recipients(&r.joined()).collect::<Vec<_>>(),
                r.iter().collect::<Vec<_>>()
            );
        }
        let ten: Vec<String> = (0..10).map(|i| format!("u{i}@example.org")).collect();
        assert_eq!(
            Recipients::parse(ten.iter().map(String::as_str))
                .unwrap()
                .len(),
            10
        );
        let eleven = format!("{},u10@example.org", ten.join(","));
        let long = format!("{}@{}.example.org", "x".repeat(60), "d".repeat(60));
        let long = (0..9)
            .map(|i| format!("{i}{long}"))
            .collect::<Vec<_>>()
            .join(",");
        for (list, says) in [
            ("", "no address given"),
            (" , ", "no address given"),
            (
                "a,b",
                "address 1 of 2, \"a\", is not a valid email address: it has no @",
            ),
            (
                "a@x.org,b@y",
                "address 2 of 2, \"b@y\", is not a valid email address: the domain after @ needs a dot",
            ),
            (
                "not-an-address",
                "\"not-an-address\" is not a valid email address",
            ),
            ("a@x.org b@y.org", "separate addresses with commas"),
            ("a@x.org;b@y.org", "separate addresses with commas"),
            (
                &eleven,
                "11 addresses given; a district's mail may go to at most 10",
            ),
            (
                &long,
                "take 1,222 characters together; at most 990 fit in a message's To: header",
            ),
        ] {
            match Recipients::parse([list]) {
                Ok(r) => panic!("{list:?} accepted as {r:?}"),
                Err(e) => assert!(e.contains(says), "{list:?}: {e}"),
            }
        }
    }
}
