//! Districts and the values that name and configure them: the
//! subdomain that is also the SSH username, and the administrator's address.

use std::fmt;

use thiserror::Error;

/// A district's subdomain (`lincoln-usd`): a DNS label, lowercase letters, digits
/// and inner hyphens, 1–63 characters. It is also the SSH username, so anything
/// else is refused before it reaches the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subdomain(String);

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0:?} is not a valid subdomain: {1}")]
pub struct SubdomainError(pub String, pub &'static str);

impl Subdomain {
    pub fn parse(text: &str) -> Result<Self, SubdomainError> {
        let err = |why| Err(SubdomainError(text.to_owned(), why));
        if text.is_empty() {
            return err("it is empty");
        }
        if text.len() > 63 {
            return err("it is longer than 63 characters");
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return err("use only lowercase letters a-z, digits and hyphens");
        }
        if text.starts_with('-') || text.ends_with('-') {
            return err("it may not start or end with a hyphen");
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subdomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse an IANA time zone name such as `America/Chicago`.
pub fn parse_timezone(text: &str) -> Result<chrono_tz::Tz, String> {
    text.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        format!("{text:?} is not an IANA time zone name (for example America/New_York, America/Chicago, America/Los_Angeles)")
    })
}

/// What is wrong with a zone that parses but is not what a district means:
/// a fixed offset (`EST` is UTC−5 all year, so the window would slip an hour
/// every summer) or an old alias kept only for compatibility (`US/Eastern`).
/// `None` for a region/city name such as `America/New_York`, and for UTC.
pub fn timezone_advice(tz: chrono_tz::Tz) -> Option<String> {
    let name = tz.name();
    let region = |n: &str| -> Option<&'static str> {
        Some(match n {
            "EST" | "EST5EDT" | "US/Eastern" => "America/New_York",
            "CST6CDT" | "US/Central" => "America/Chicago",
            "MST7MDT" | "US/Mountain" => "America/Denver",
            "MST" | "US/Arizona" => "America/Phoenix (no daylight saving) or America/Denver",
            "PST8PDT" | "US/Pacific" => "America/Los_Angeles",
            "HST" | "US/Hawaii" => "Pacific/Honolulu",
            "US/Alaska" => "America/Anchorage",
            "US/Aleutian" => "America/Adak",
            "US/East-Indiana" => "America/Indiana/Indianapolis",
            "US/Indiana-Starke" => "America/Indiana/Knox",
            "US/Michigan" => "America/Detroit",
            "US/Samoa" => "Pacific/Pago_Pago",
            _ => return None,
        })
    };
    let suggestion = region(name)
        .map(|r| format!("use {r}"))
        .unwrap_or_else(|| "use the region/city name, for example America/New_York".to_owned());
    if matches!(
        name,
        "UTC" | "Etc/UTC" | "Etc/UCT" | "UCT" | "Etc/Universal" | "Universal" | "Zulu" | "Etc/Zulu"
    ) {
        return None;
    }
    let fixed = matches!(name, "EST" | "MST" | "HST")
        || name.starts_with("Etc/")
        || name.starts_with("GMT");
    if fixed {
        return Some(format!(
            "{name} is a fixed offset from UTC with no daylight saving, so the import window would move an hour when the clocks change; {suggestion}"
        ));
    }
    let legacy = !name.contains('/')
        || ["US/", "Canada/", "Mexico/", "Brazil/", "Chile/"]
            .iter()
            .any(|p| name.starts_with(p));
    legacy.then(|| format!("{name} is an old alias kept only for compatibility; {suggestion}"))
}

/// A district as stored.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    pub subdomain: String,
    pub admin_name: String,
    /// Where the district's mail goes: one address, or several as
    /// [`super::email::Recipients::joined`] writes them (`a@x.org, b@y.org`);
    /// [`Tenant::recipients`] reads it.
    pub admin_email: String,
    pub timezone: Option<String>,
    pub sso: bool,
    /// Every user an import creates without a password gets a generated
    /// one, delivered with the report (opt-in: SSO districts need none).
    pub generate_passwords: bool,
    pub window: Option<String>,
    pub disabled: bool,
    pub created_at: String,
    /// What a complete file's omissions do (full sync, opt-in).
    pub absent: super::safety::Absent,
    /// Hold thresholds of its own, in percent; `None`: the config's.
    pub hold_update_percent: Option<u8>,
    pub hold_deactivate_percent: Option<u8>,
    pub pause: Option<super::safety::Pause>,
}

impl Tenant {
    /// Every address the district's mail goes to, in the order support gave.
    pub fn recipients(&self) -> Vec<&str> {
        super::email::split_recipients(&self.admin_email).collect()
    }

    /// The district's time zone: its own, else `default` (the config's).
    pub fn timezone_or(&self, default: chrono_tz::Tz) -> chrono_tz::Tz {
        self.timezone
            .as_deref()
            .and_then(|tz| tz.parse().ok())
            .unwrap_or(default)
    }

    /// The district's import window: its own, else `default` (the config's).
    pub fn window_or(&self, default: super::window::Window) -> super::window::Window {
        self.window
            .as_deref()
            .and_then(|w| w.parse().ok())
            .unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_rules() {
        for ok in ["a", "lincoln-usd", "d1", "a-b-c", &"x".repeat(63)] {
            assert_eq!(Subdomain::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "-lead",
            "trail-",
            "Upper",
            "under_score",
            "dot.ted",
            "sp ace",
            &"x".repeat(64),
            "ünï",
        ] {
            assert!(Subdomain::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn timezones() {
        assert!(parse_timezone("America/Chicago").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
