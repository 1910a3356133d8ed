//! Field rules of `users.csv`, one small parser per column. Each returns the
//! clean value or the message the district reads in its report, so the rules are
//! table-tested here and nothing else parses a cell.

use std::borrow::Cow;

use chrono::{Datelike, NaiveDate};

/// A username: trimmed, 4–254 characters of letters, digits and `. _ @ - +`.
/// `key` is the lowercase form that uniqueness (across all districts) uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    pub display: String,
    pub key: String,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let text = check_username(raw)?;
        Ok(Self {
            display: text.to_owned(),
            key: username_key(text).into_owned(),
        })
    }
}

/// The rules of [`Username`] without copying: the trimmed username, borrowed.
pub fn check_username(raw: &str) -> Result<&str, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("Username is required; add one or remove the row".into());
    }
    let len = text.chars().count();
    if len < 4 {
        return Err("Username must be at least 4 characters long".into());
    }
    if len > 254 {
        return Err("Username must be at most 254 characters long".into());
    }
    // ASCII only: a Cyrillic 'а' or a full-width 'ａ' would make a name that
    // looks like another district's.
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-' | '+')))
    {
        return Err(format!(
            "Username may contain only the letters A-Z, digits and . _ @ - + (it contains {})",
            describe_char(bad)
        ));
    }
    Ok(text)
}

/// The lowercase form of a username that uniqueness uses; borrowed when the
/// name is lowercase already.
pub fn username_key(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(text.to_ascii_lowercase())
        } else {
            Cow::Borrowed(text)
        }
    } else {
        match text.to_lowercase() {
            lower if lower == text => Cow::Borrowed(text),
            lower => Cow::Owned(lower),
        }
    }
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        '\n' | '\r' => "a line break".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c if crate::domain::text::is_hidden(c) => {
            format!("the invisible formatting character U+{:04X}", c as u32)
        }
        c if !c.is_ascii() => format!("'{c}' (U+{:04X}, not an ASCII letter)", c as u32),
        c => format!("'{c}'"),
    }
}

/// A password cell: blank means "none given" (`Ok(None)`).
pub fn parse_password(raw: &str) -> Result<Option<&str>, String> {
    // Passwords are case- and space-sensitive: not trimmed, except that a cell of
    // only spaces counts as blank.
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let len = raw.chars().count();
    if len < 6 {
        return Err("Password must be at least 6 characters long".into());
    }
    if len > 256 {
        return Err("Password must be at most 256 characters long".into());
    }
    if raw.chars().any(char::is_control) {
        return Err("Password contains a line break or control character".into());
    }
    Ok(Some(raw))
}

/// First or last name: trimmed; blank means "none given".
pub fn parse_name<'a>(label: &str, raw: &'a str) -> Result<Option<&'a str>, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    // Nearly every name is ASCII, where the only hidden characters are the
    // controls and a character is a byte: one pass over the bytes.
    let ascii = text.is_ascii();
    let control = if ascii {
        text.bytes().any(|b| b.is_ascii_control())
    } else {
        text.chars().any(char::is_control)
    };
    if control {
        return Err(format!(
            "{label} contains a line break or control character; check the quoting of this row"
        ));
    }
    if !ascii && let Some(c) = text.chars().find(|&c| crate::domain::text::is_hidden(c)) {
        return Err(format!(
            "{label} contains the invisible formatting character U+{:04X} (it can reverse or hide the text around it); remove it in your SIS",
            c as u32
        ));
    }
    let chars = if ascii {
        text.len()
    } else {
        text.chars().count()
    };
    if chars > 100 {
        return Err(format!("{label} must be at most 100 characters long"));
    }
    Ok(Some(text))
}

/// Special privileges of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessType {
    Administrator,
    SchoolAdministrator,
    Manager,
}

impl AccessType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administrator => "Administrator",
            Self::SchoolAdministrator => "School Administrator",
            Self::Manager => "Manager",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        match text {
            "Administrator" => Some(Self::Administrator),
            "School Administrator" => Some(Self::SchoolAdministrator),
            "Manager" => Some(Self::Manager),
            _ => None,
        }
    }
}

/// What an Access Type cell asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    /// Blank: keep what is stored.
    Keep,
    /// `None`: remove privileges.
    Remove,
    Set(AccessType),
}

/// Parse an Access Type cell. With `oneroster_role` (the column was OneRoster's
/// `role`), that standard's role names are understood too: `administrator`
/// grants Administrator, and the roles without privileges keep what is stored.
pub fn parse_access_type(raw: &str, oneroster_role: bool) -> Result<AccessChange, String> {
    // Every accepted spelling is ASCII, so comparing word by word while ignoring
    // ASCII case is the same as folding the cell, without building a copy of it.
    let is = |phrase: &str| {
        let mut words = raw.split_whitespace();
        phrase
            .split(' ')
            .all(|want| words.next().is_some_and(|w| w.eq_ignore_ascii_case(want)))
            && words.next().is_none()
    };
    const ONEROSTER_WITHOUT_PRIVILEGES: [&str; 7] = [
        "student", "teacher", "aide", "proctor", "guardian", "parent", "relative",
    ];
    if raw.trim().is_empty() {
        Ok(AccessChange::Keep)
    } else if is("administrator") {
        Ok(AccessChange::Set(AccessType::Administrator))
    } else if is("school administrator") {
        Ok(AccessChange::Set(AccessType::SchoolAdministrator))
    } else if is("manager") {
        Ok(AccessChange::Set(AccessType::Manager))
    } else if is("none") {
        Ok(AccessChange::Remove)
    } else if oneroster_role && ONEROSTER_WITHOUT_PRIVILEGES.iter().any(|role| is(role)) {
        Ok(AccessChange::Keep)
    } else {
        Err(
            "Access Type must be Administrator, School Administrator, Manager, None (to remove privileges) or blank"
                .into(),
        )
    }
}

/// The calendar year in which the school year containing `today` ends. School
/// years roll over on 1 July.
pub fn school_year_end(today: NaiveDate) -> i32 {
    if today.month() >= 7 {
        today.year() + 1
    } else {
        today.year()
    }
}

/// Parse a Graduation Year cell: a 4-digit year within `E-1 ..= E+14`, or a
/// grade level converted with `E + 12 - grade`, where `E` is
/// [`school_year_end`]. Blank means "none given".
pub fn parse_graduation_year(raw: &str, year_end: i32) -> Result<Option<i32>, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (low, high) = (year_end - 1, year_end + 14);
    if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()) {
        let year: i32 = text.parse().map_err(|_| "unreachable".to_string())?;
        if !(low..=high).contains(&year) {
            return Err(format!(
                "Graduation Year {year} is outside the accepted range {low}–{high}"
            ));
        }
        return Ok(Some(year));
    }
    match grade_level(text) {
        Some(Ok(grade)) => Ok(Some(year_end + 12 - grade)),
        Some(Err(grade)) => Err(format!(
            "Graduation Year: grade {grade} does not exist; use PK, K or 1 to 12, or a 4-digit year"
        )),
        None => Err(
            "Graduation Year must be a 4-digit year (2031) or a grade level (PK, K, 1 to 12, 3rd, third grade, Grade 3)"
                .into(),
        ),
    }
}

const ORDINALS: [&str; 12] = [
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth",
];
const CARDINALS: [&str; 12] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve",
];

/// A grade level: `Some(Ok(-1))` for pre-kindergarten, 0 for kindergarten,
/// 1–12; `Some(Err(n))` for a number that is no grade (13); `None` if the text is
/// not a grade at all.
pub fn grade_level(text: &str) -> Option<Result<i32, i32>> {
    if text.trim_start().starts_with('-') {
        return None; // "-1" is no spelling of any grade; don't let the hyphen rule eat the sign
    }
    // Fold case, and drop spaces, hyphens, dots and the word "grade", so that
    // "Grade 3", "3rd grade", "Pre-K" and "pre k" all meet one table. A short
    // ASCII cell (every real one) is folded on the stack.
    let skip = |c: char| matches!(c, ' ' | '-' | '_' | '.');
    let mut buf = [0u8; 32];
    let folded: Cow<'_, str> = if text.is_ascii() && text.len() <= buf.len() {
        let mut n = 0;
        for b in text.bytes().filter(|&b| !skip(b as char)) {
            buf[n] = b.to_ascii_lowercase();
            n += 1;
        }
        std::str::from_utf8(&buf[..n]).ok()?.into()
    } else {
        text.to_lowercase()
            .chars()
            .filter(|&c| !skip(c))
            .collect::<String>()
            .into()
    };
    let s = folded
        .strip_prefix("grade")
        .or_else(|| folded.strip_suffix("grade"))
        .or_else(|| folded.strip_prefix("gr"))
        .unwrap_or(&folded);
    match s {
        "pk" | "prek" | "prekindergarten" | "tk" | "transitionalkindergarten" => {
            return Some(Ok(-1));
        }
        "k" | "kg" | "kindergarten" | "kinder" => return Some(Ok(0)),
        _ => {}
    }
    if let Some(i) = ORDINALS.iter().position(|w| *w == s) {
        return Some(Ok(i as i32 + 1));
    }
    if let Some(i) = CARDINALS.iter().position(|w| *w == s) {
        return Some(Ok(i as i32 + 1));
    }
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i32 = digits.parse().ok()?;
    let expected = match n % 100 {
        11..=13 => "th",
        _ => match n % 10 {
            1 => "st",
            2 => "nd",
            3 => "rd",
            _ => "th",
        },
    };
    if !(suffix.is_empty() || suffix == expected) {
        return None;
    }
    Some(if n <= 12 { Ok(n) } else { Err(n) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_pass_the_password_rule() {
        for _ in 0..200 {
            let p = crate::password::generate();
            assert_eq!(parse_password(&p), Ok(Some(p.as_str())));
        }
    }

    #[test]
    fn usernames() {
        let ok = [
            ("jdoe", "jdoe"),
            ("  JDoe  ", "jdoe"),
            ("jane.doe@lincoln.k12.ca.us", "jane.doe@lincoln.k12.ca.us"),
            ("a_b-c+d", "a_b-c+d"),
            ("Jose.Garcia", "jose.garcia"),
            ("1234", "1234"),
        ];
        for (raw, key) in ok {
            let u = Username::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(u.key, key);
            assert_eq!(u.display, raw.trim());
        }
        let bad = [
            ("", "required"),
            ("   ", "required"),
            ("abc", "at least 4"),
            ("john doe", "a space"),
            ("john,doe", "','"),
            ("john!", "'!'"),
            ("jo\nhn", "a line break"),
            // Look-alikes of ASCII names, and accented letters (the seed's
            // "alpha-numeric"; SIS exports transliterate usernames).
            ("\u{430}dmin.user", "U+0430, not an ASCII letter"),
            ("\u{ff41}dmin", "U+FF41, not an ASCII letter"),
            ("José.García", "U+00E9"),
            ("admin\u{202e}resu", "invisible formatting character U+202E"),
        ];
        for (raw, msg) in bad {
            let e = Username::parse(raw).unwrap_err();
            assert!(e.contains(msg), "{raw:?}: {e}");
        }
        assert!(
            Username::parse(&"a".repeat(255))
                .unwrap_err()
                .contains("at most 254")
        );
    }

    #[test]
    fn username_keys_are_borrowed_only_when_already_lowercase() {
        for (name, key, borrowed) in [
            ("jdoe@x.org", "jdoe@x.org", true),
            ("JDoe@X.org", "jdoe@x.org", false),
            ("josé.garcía", "josé.garcía", true),
            ("José.García", "josé.garcía", false),
            ("ΣΊΣΥΦΟΣ", "σίσυφος", false),
        ] {
            let got = username_key(name);
            assert_eq!(got, key, "{name:?}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), borrowed, "{name:?}");
            assert_eq!(got, name.to_lowercase(), "{name:?}");
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(parse_password(""), Ok(None));
        assert_eq!(parse_password("   "), Ok(None));
        assert_eq!(parse_password("secret"), Ok(Some("secret")));
        assert_eq!(parse_password(" Pass word "), Ok(Some(" Pass word ")));
        assert!(parse_password("abc12").unwrap_err().contains("at least 6"));
        assert!(parse_password("abc\n123").unwrap_err().contains("control"));
    }

    #[test]
    fn names() {
        assert_eq!(parse_name("First Name", "  Ann "), Ok(Some("Ann")));
        assert_eq!(parse_name("First Name", " "), Ok(None));
        assert!(
            parse_name("Last Name", "Ann\nBob")
                .unwrap_err()
                .starts_with("Last Name")
        );
        assert!(parse_name("Last Name", &"x".repeat(101)).is_err());
        // Bidirectional overrides and zero-width characters are refused.
        for hidden in ["Ann\u{202e}lee", "A\u{200b}nn", "\u{2066}Ann"] {
            let e = parse_name("First Name", hidden).unwrap_err();
            assert!(e.contains("invisible formatting character U+"), "{e}");
        }
        assert_eq!(
            parse_name("First Name", "José Ñúñez"),
            Ok(Some("José Ñúñez"))
        );
    }

    #[test]
    fn access_types() {
        use AccessChange::*;
        use AccessType::*;
        let cases = [
            ("", Keep),
            ("administrator", Set(Administrator)),
            ("ADMINISTRATOR", Set(Administrator)),
            ("School  Administrator", Set(SchoolAdministrator)),
            (" school\tADMINISTRATOR ", Set(SchoolAdministrator)),
            ("manager", Set(Manager)),
            ("None", Remove),
            ("   ", Keep),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_access_type(raw, false), Ok(want), "{raw:?}");
        }
        for bad in [
            "Teacher",
            "admin",
            "student",
            "Principal",
            "School",
            "Administrator School",
            "administrator administrator",
            "SchoolAdministrator",
        ] {
            assert!(parse_access_type(bad, false).is_err(), "{bad:?}");
        }
        assert_eq!(parse_access_type("student", true), Ok(Keep));
        assert_eq!(parse_access_type("teacher", true), Ok(Keep));
        assert_eq!(
            parse_access_type("administrator", true),
            Ok(Set(Administrator))
        );
        assert!(parse_access_type("wizard", true).is_err());
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn school_year_rolls_over_on_1_july() {
        assert_eq!(school_year_end(date(2026, 6, 30)), 2026);
        assert_eq!(school_year_end(date(2026, 7, 1)), 2027);
        assert_eq!(school_year_end(date(2026, 1, 1)), 2026);
        assert_eq!(school_year_end(date(2026, 12, 31)), 2027);
    }

    #[test]
    fn every_grade_spelling() {
        let e = 2027; // school year 2026-27
        let cases: &[(&str, i32)] = &[
            ("12", 2027),
            ("0", 2039),
            ("00", 2039),
            ("03", 2036),
            ("3", 2036),
            ("K", 2039),
            ("k", 2039),
            ("KG", 2039),
            ("Kindergarten", 2039),
            ("PK", 2040),
            ("Pre-K", 2040),
            ("pre k", 2040),
            ("PreK", 2040),
            ("TK", 2040),
            ("1st", 2038),
            ("first", 2038),
            ("First Grade", 2038),
            ("2nd grade", 2037),
            ("second grade", 2037),
            ("2nd", 2037),
            ("3rd", 2036),
            ("Grade 3", 2036),
            ("grade 03", 2036),
            ("4th", 2035),
            ("fifth", 2034),
            ("sixth grade", 2033),
            ("seventh", 2032),
            ("8th Grade", 2031),
            ("ninth", 2030),
            ("10th", 2029),
            ("eleventh", 2028),
            ("11th", 2028),
            ("twelfth", 2027),
            ("12th grade", 2027),
            ("Grade 12", 2027),
            // Longer than the on-stack fold, and not ASCII: the same table.
            ("Transitional - Kindergarten - Grade", 2040),
            ("Grade                             3", 2036),
            ("\u{212A}", 2039), // KELVIN SIGN, which lowercases to k
            ("2031", 2031),
            ("2026", 2026),
            ("2041", 2041),
        ];
        for &(raw, want) in cases {
            assert_eq!(parse_graduation_year(raw, e), Ok(Some(want)), "{raw:?}");
        }
        assert_eq!(parse_graduation_year("  ", e), Ok(None));
    }

    #[test]
    fn graduation_year_bounds_around_1_july() {
        // Before 1 July 2026: E = 2026, range 2025..=2040.
        let before = school_year_end(date(2026, 6, 30));
        assert_eq!(parse_graduation_year("2025", before), Ok(Some(2025)));
        assert_eq!(parse_graduation_year("2040", before), Ok(Some(2040)));
        assert!(
            parse_graduation_year("2024", before)
                .unwrap_err()
                .contains("2025–2040")
        );
        assert!(
            parse_graduation_year("2041", before)
                .unwrap_err()
                .contains("2025–2040")
        );
        assert_eq!(parse_graduation_year("12", before), Ok(Some(2026)));
        assert_eq!(parse_graduation_year("K", before), Ok(Some(2038)));
        // From 1 July 2026: E = 2027, range 2026..=2041.
        let after = school_year_end(date(2026, 7, 1));
        assert_eq!(parse_graduation_year("2026", after), Ok(Some(2026)));
        assert_eq!(parse_graduation_year("2041", after), Ok(Some(2041)));
        assert!(parse_graduation_year("2025", after).is_err());
        assert!(parse_graduation_year("2042", after).is_err());
        assert_eq!(parse_graduation_year("12", after), Ok(Some(2027)));
        assert_eq!(parse_graduation_year("K", after), Ok(Some(2039)));
    }

    #[test]
    fn graduation_year_refusals() {
        for bad in [
            "13", "13th", "abc", "1rd", "3st", "2nd3", "PS", "20301", "123", "-1", "K12",
        ] {
            assert!(
                parse_graduation_year(bad, 2027).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(
            parse_graduation_year("13", 2027)
                .unwrap_err()
                .contains("grade 13 does not exist")
        );
    }
}
