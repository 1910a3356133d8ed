//! Data safety for districts: the per-district settings that decide whether
//! an import may change what it would change. A broken export must not
//! mass-update or mass-deactivate accounts unseen (holds), accounts a
//! district stopped sending should go away only when it asks for that (full
//! sync), and a district can stop imports over a break (pauses). These are
//! the settings and their rules; the store keeps them, the importer and the
//! scheduler apply them.

use chrono::NaiveDate;
use serde::Deserialize;

/// What an import does with the district's active users that a complete
/// file does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Absent {
    /// Left alone (SPEC 3's default).
    #[default]
    Keep,
    /// Deactivated (never deleted); reactivated when they reappear.
    Deactivate,
}

impl Absent {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(Self::Keep),
            "deactivate" => Ok(Self::Deactivate),
            other => Err(format!(
                "--absent takes `keep` (users missing from a file are left alone) or `deactivate` (full sync: they are deactivated), not {other:?}"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Deactivate => "deactivate",
        }
    }
}

/// Days (inclusive, in the district's time zone) on which uploads are
/// received and recorded but not imported, or only their new users created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pause {
    pub from: NaiveDate,
    pub until: NaiveDate,
    /// New users are still created; nothing existing changes.
    pub additions_only: bool,
}

/// A day given on the command line, `YYYY-MM-DD`; a US-style `12/20/2026`
/// is refused with the form it should take.
pub fn parse_day(text: &str) -> Result<NaiveDate, String> {
    let text = text.trim();
    text.parse::<NaiveDate>().map_err(|_| {
        let us = NaiveDate::parse_from_str(text, "%m/%d/%Y")
            .map(|d| format!("; for {text} write {d}"))
            .unwrap_or_default();
        format!("{text:?} is not a date in the form YYYY-MM-DD (for example 2027-06-15){us}")
    })
}

impl Pause {
    /// The pause stored in a district's row, if any.
    pub fn from_columns(
        from: Option<String>,
        until: Option<String>,
        additions_only: bool,
    ) -> Option<Self> {
        Some(Self {
            from: from?.parse().ok()?,
            until: until?.parse().ok()?,
            additions_only,
        })
    }

    /// A pause from `from` until `until`, both inclusive, set on `today` (the
    /// district's date): one wholly in the past would only replace the
    /// pause that is running, so it is refused.
    pub fn new(
        from: NaiveDate,
        until: NaiveDate,
        additions_only: bool,
        today: NaiveDate,
    ) -> Result<Self, String> {
        if until < today {
            return Err(format!(
                "the pause would end ({until}) before today ({today}, the district's date); nothing changed"
            ));
        }
        if until < from {
            return Err(format!(
                "the pause would end ({until}) before it begins ({from}); --until is the last paused day"
            ));
        }
        Ok(Self {
            from,
            until,
            additions_only,
        })
    }

    /// Whether `day` (the district's date) is paused.
    pub fn covers(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.until
    }

    /// "from 2027-06-15 until 2027-08-20 (additions only)".
    pub fn describe(&self) -> String {
        format!(
            "from {} until {}{}",
            self.from,
            self.until,
            if self.additions_only {
                " (additions only: new users are created, existing ones are not changed)"
            } else {
                " (uploads are received and kept, not imported)"
            }
        )
    }
}

/// Hold thresholds in percent of the district's active users before the
/// import: more updates, or more deactivations, than this and the import is
/// held for support's approval. 100 never holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HoldLimits {
    pub update_percent: u8,
    pub deactivate_percent: u8,
}

impl Default for HoldLimits {
    fn default() -> Self {
        Self {
            update_percent: 50,
            deactivate_percent: 10,
        }
    }
}

impl HoldLimits {
    /// The district's own thresholds where it has them, else these.
    pub fn for_tenant(self, tenant: &super::tenant::Tenant) -> Self {
        Self {
            update_percent: tenant.hold_update_percent.unwrap_or(self.update_percent),
            deactivate_percent: tenant
                .hold_deactivate_percent
                .unwrap_or(self.deactivate_percent),
        }
    }

    /// Why an import that would update `updated` and deactivate
    /// `deactivated` of `active` users must be held, or `None`. A district
    /// without users (its first import) is never held; exactly at a
    /// threshold is not over it.
    pub fn hold_reason(self, active: u64, updated: u64, deactivated: u64) -> Option<String> {
        let over = |n: u64, percent: u8| active > 0 && n * 100 > active * u64::from(percent);
        let mut why = Vec::new();
        if over(updated, self.update_percent) {
            why.push(format!(
                "it would update or reactivate {updated} users, against the district's {active} active users ({}), more than its limit of {}%",
                percent_of(updated, active),
                self.update_percent
            ));
        }
        if over(deactivated, self.deactivate_percent) {
            why.push(format!(
                "it would deactivate {deactivated} of the district's {active} active users ({}), more than its limit of {}%",
                percent_of(deactivated, active),
                self.deactivate_percent
            ));
        }
        (!why.is_empty()).then(|| why.join("; and "))
    }
}

fn percent_of(n: u64, of: u64) -> String {
    format!("{:.1}%", n as f64 * 100.0 / of as f64)
}

/// A threshold as `tenant set` takes it: a percentage 0-100, `off` (100:
/// never held) or `default` (the config's, `None`).
pub fn parse_percent(flag: &str, s: &str) -> Result<Option<u8>, String> {
    match s {
        "default" => Ok(None),
        "off" => Ok(Some(100)),
        _ => match s.trim_end_matches('%').parse::<u8>() {
            Ok(p) if p <= 100 => Ok(Some(p)),
            _ => Err(format!(
                "{flag} takes a percentage from 0 to 100, `off` or `default`, not {s:?}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_start_just_past_each_threshold() {
        let limits = HoldLimits::default(); // 50% updates, 10% deactivations
        // (active, updated, deactivated, held?)
        let cases = [
            (100, 50, 0, false),
            (100, 51, 0, true),
            (100, 0, 10, false),
            (100, 0, 11, true),
            (3, 1, 0, false),
            (3, 2, 0, true),
            (10, 1, 1, false),
            (10, 5, 2, true),
            (0, 0, 0, false), // a first import
            (1, 1, 0, true),
        ];
        for (active, updated, deactivated, held) in cases {
            assert_eq!(
                limits.hold_reason(active, updated, deactivated).is_some(),
                held,
                "{active} active, {updated} updated, {deactivated} deactivated"
            );
        }
        let off = HoldLimits {
            update_percent: 100,
            deactivate_percent: 100,
        };
        assert_eq!(off.hold_reason(10, 10, 10), None);
        let both = limits.hold_reason(200, 150, 40).unwrap();
        assert!(
            both.contains(
                "update or reactivate 150 users, against the district's 200 active users (75.0%)"
            ) && both.contains("deactivate 40 of the district's 200 active users (20.0%)"),
            "{both}"
        );
    }

    #[test]
    fn thresholds_and_pauses_parse() {
        assert_eq!(parse_percent("--hold-updates", "25"), Ok(Some(25)));
        assert_eq!(parse_percent("--hold-updates", "25%"), Ok(Some(25)));
        assert_eq!(parse_percent("--hold-updates", "off"), Ok(Some(100)));
        assert_eq!(parse_percent("--hold-updates", "default"), Ok(None));
        assert!(parse_percent("--hold-updates", "101").is_err());
        assert!(parse_percent("--hold-updates", "-1").is_err());
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let today = d("2027-01-10");
        let p = Pause::new(d("2027-06-15"), d("2027-08-20"), false, today).unwrap();
        assert!(!p.covers(d("2027-06-14")));
        assert!(p.covers(d("2027-06-15")));
        assert!(p.covers(d("2027-08-20")));
        assert!(!p.covers(d("2027-08-21")));
        assert!(Pause::new(d("2027-06-15"), d("2027-06-14"), false, today).is_err());
        // Wholly past: refused; begun in the past and running: kept.
        assert!(Pause::new(d("2026-06-15"), d("2026-08-20"), false, today).is_err());
        assert!(Pause::new(d("2026-12-15"), d("2027-01-10"), false, today).is_ok());
        assert_eq!(Absent::parse("deactivate"), Ok(Absent::Deactivate));
        assert!(Absent::parse("delete").is_err());
    }
}
