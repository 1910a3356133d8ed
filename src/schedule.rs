//! The nightly import window: the part of the day, in a tenant's own time zone,
//! when its uploads may be imported (default 18:00–06:00, crossing midnight).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveTime;

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
}
