//! The nightly import window: the part of the day, in a district's own time zone,
//! when its uploads may be imported (default 18:00–06:00, crossing midnight),
//! and the instants it opens and closes, correct across daylight-saving changes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A daily window `HH:MM-HH:MM`. When `start > end` it crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Window {
    /// Whether a local wall-clock time falls inside the window (start inclusive,
    /// end exclusive).
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// Whether the window is open at `now` in time zone `tz`.
    pub fn is_open(&self, tz: Tz, now: DateTime<Utc>) -> bool {
        self.contains(now.with_timezone(&tz).time())
    }

    /// The first opening strictly after `now`.
    pub fn next_opening(&self, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        local_days(tz, now, -1..=2)
            .map(|day| resolve(tz, day.and_time(self.start)))
            .find(|at| *at > now)
            .expect("a daily window opens within two days")
    }

    /// The last closing at or before `now`.
    pub fn last_close(&self, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        local_days(tz, now, -2..=1)
            .map(|day| resolve(tz, day.and_time(self.end)))
            .filter(|at| *at <= now)
            .last()
            .expect("a daily window closed within two days")
    }

    /// The closing that ends the window open at `now` (or the next one to open).
    pub fn next_close(&self, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        local_days(tz, now, -1..=2)
            .map(|day| resolve(tz, day.and_time(self.end)))
            .find(|at| *at > now)
            .expect("a daily window closes within two days")
    }
}

/// Local calendar days around `now` in `tz`, in order.
fn local_days(
    tz: Tz,
    now: DateTime<Utc>,
    offsets: std::ops::RangeInclusive<i64>,
) -> impl Iterator<Item = NaiveDate> {
    let today = now.with_timezone(&tz).date_naive();
    offsets.filter_map(move |o| {
        if o < 0 {
            today.checked_sub_days(Days::new(o.unsigned_abs()))
        } else {
            today.checked_add_days(Days::new(o as u64))
        }
    })
}

/// The instant a local wall-clock time names. A time that happens twice (clocks
/// going back) is its first occurrence; a time skipped by clocks going forward
/// is the first instant after the gap, when the clock on the wall passes it.
pub fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    use chrono::LocalResult;
    let mut probe = local;
    for _ in 0..=(4 * 60) {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                return at.with_timezone(&Utc);
            }
            LocalResult::None => probe += chrono::Duration::minutes(1),
        }
    }
    // No zone has a gap of four hours; fall back to reading it as UTC.
    Utc.from_utc_datetime(&local)
}

impl Default for Window {
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(18, 0, 0).expect("valid time"),
            end: NaiveTime::from_hms_opt(6, 0, 0).expect("valid time"),
        }
    }
}

impl FromStr for Window {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            || format!("{text:?} is not a window like 18:00-06:00 (HH:MM-HH:MM, 24-hour clock)");
        let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
        let parse = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad());
        let (start, end) = (parse(a)?, parse(b)?);
        if start == end {
            return Err(format!(
                "{text:?}: the window must not start and end at the same time"
            ));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let w: Window = "18:00-06:00".parse().unwrap();
        assert_eq!(w, Window::default());
        assert_eq!(w.to_string(), "18:00-06:00");
        for bad in [
            "",
            "18-06",
            "25:00-06:00",
            "18:00",
            "18:00-18:00",
            "6pm-6am",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn contains_across_midnight_and_not() {
        let night = Window::default();
        assert!(night.contains(t(18, 0)));
        assert!(night.contains(t(23, 59)));
        assert!(night.contains(t(0, 0)));
        assert!(night.contains(t(5, 59)));
        assert!(!night.contains(t(6, 0)));
        assert!(!night.contains(t(17, 59)));
        let day: Window = "01:00-05:00".parse().unwrap();
        assert!(day.contains(t(1, 0)) && day.contains(t(4, 59)));
        assert!(!day.contains(t(5, 0)) && !day.contains(t(0, 59)));
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn open_at_instants_in_zones_either_side_of_utc() {
        let night = Window::default();
        let day: Window = "09:00-17:00".parse().unwrap();
        // (zone, instant in UTC, open for 18:00-06:00, open for 09:00-17:00)
        let table = [
            // New York, UTC-5 in winter.
            ("America/New_York", "2026-01-15T21:59:59Z", false, true), // 16:59:59
            ("America/New_York", "2026-01-15T23:00:00Z", true, false), // 18:00
            ("America/New_York", "2026-01-16T10:59:59Z", true, false), // 05:59:59
            ("America/New_York", "2026-01-16T11:00:00Z", false, false), // 06:00
            ("America/New_York", "2026-01-16T14:00:00Z", false, true), // 09:00
            ("America/New_York", "2026-01-16T22:00:00Z", false, false), // 17:00
            // Los Angeles in summer, UTC-7.
            ("America/Los_Angeles", "2026-07-01T00:59:00Z", false, false), // 17:59
            ("America/Los_Angeles", "2026-07-01T01:00:00Z", true, false),  // 18:00
            ("America/Los_Angeles", "2026-07-01T12:59:00Z", true, false),  // 05:59
            ("America/Los_Angeles", "2026-07-01T13:00:00Z", false, false), // 06:00
            // Berlin, UTC+1 in winter: the same instant is night there, afternoon in New York.
            ("Europe/Berlin", "2026-01-15T16:59:00Z", false, false), // 17:59
            ("Europe/Berlin", "2026-01-15T17:00:00Z", true, false),  // 18:00
            ("Europe/Berlin", "2026-01-16T04:59:00Z", true, false),  // 05:59
            ("Europe/Berlin", "2026-01-16T05:00:00Z", false, false), // 06:00
            // Auckland, UTC+13 in its summer: 18:00 local is 05:00 UTC.
            ("Pacific/Auckland", "2026-01-15T04:59:00Z", false, false), // 17:59
            ("Pacific/Auckland", "2026-01-14T20:00:00Z", false, true),  // 09:00
            ("Pacific/Auckland", "2026-01-15T05:00:00Z", true, false),  // 18:00
            ("Pacific/Auckland", "2026-01-15T16:59:00Z", true, false),  // 05:59
            ("Pacific/Auckland", "2026-01-15T17:00:00Z", false, false), // 06:00
        ];
        for (zone, at, night_open, day_open) in table {
            let tz: Tz = zone.parse().unwrap();
            assert_eq!(night.is_open(tz, utc(at)), night_open, "{zone} {at} night");
            assert_eq!(day.is_open(tz, utc(at)), day_open, "{zone} {at} day");
        }
    }

    #[test]
    fn openings_and_closings_across_daylight_saving_nights() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let night = Window::default();
        // Spring forward (8 March 2026, 02:00 -> 03:00): the window opened at
        // 18:00 EST (23:00Z) and closes at 06:00 EDT (10:00Z), an 11-hour night.
        let mid = utc("2026-03-08T07:00:00Z");
        assert_eq!(night.last_close(ny, mid), utc("2026-03-07T11:00:00Z"));
        assert_eq!(night.next_close(ny, mid), utc("2026-03-08T10:00:00Z"));
        assert_eq!(night.next_opening(ny, mid), utc("2026-03-08T22:00:00Z"));
        assert!(night.is_open(ny, mid));
        // Fall back (1 November 2026, 02:00 -> 01:00): 18:00 EDT (22:00Z) to
        // 06:00 EST (11:00Z), a 13-hour night.
        let mid = utc("2026-11-01T06:30:00Z"); // 01:30 the first time
        assert!(night.is_open(ny, mid));
        assert_eq!(night.next_close(ny, mid), utc("2026-11-01T11:00:00Z"));
        assert_eq!(night.next_opening(ny, mid), utc("2026-11-01T23:00:00Z"));
        // A window that opens inside the skipped hour opens when the gap ends.
        let odd: Window = "02:30-04:00".parse().unwrap();
        assert_eq!(
            odd.next_opening(ny, utc("2026-03-08T05:00:00Z")),
            utc("2026-03-08T07:00:00Z") // 03:00 EDT
        );
        // A window inside one day (not crossing midnight), just after it closes.
        let day: Window = "09:00-17:00".parse().unwrap();
        let after = utc("2026-01-16T22:00:00Z"); // 17:00 EST
        assert_eq!(day.last_close(ny, after), after);
        assert_eq!(day.next_opening(ny, after), utc("2026-01-17T14:00:00Z"));
        assert!(!day.is_open(ny, after));
    }
}
