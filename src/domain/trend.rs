//! A district's last nights at a glance, for the picture in its report email:
//! per night what the users imports created, updated and deactivated and how
//! many errors they found, the nights on which nothing was imported, and what
//! a typical night looks like, so that tonight's 3,000 deactivations or 400
//! errors stand out.
//!
//! A night runs from noon to noon in the district's time zone and is named by
//! the date it begins: an import window (default 18:00–06:00) lies within one
//! night, and so does support's manual import the next morning. A night's
//! figures are the sum of its applied (or unchanged) users imports; a night
//! that applied nothing shows what its last file would have done (held for
//! review) or found (rejected). Nights before the district's first import are
//! not counted as nights without a file.

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;

use super::report::{Outcome, Report, thousands};

/// How many nights the trend shows, tonight included.
pub const NIGHTS: usize = 30;

/// One stored users import, as the trend counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFigures {
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    pub figures: Figures,
}

impl RunFigures {
    /// An import that is not stored (a dry run), finished at `at`.
    pub fn of(report: &Report, at: DateTime<Utc>) -> Self {
        let c = &report.counts;
        Self {
            finished_at: at,
            outcome: report.outcome,
            figures: Figures {
                created: c.created,
                updated: c.updated,
                deactivated: c.deactivated,
                errors: c.errors,
            },
        }
    }
}

/// What the trend draws of a night.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub created: u64,
    pub updated: u64,
    pub deactivated: u64,
    pub errors: u64,
}

impl Figures {
    /// The four figures with their names, in the order the picture draws them.
    pub fn named(&self) -> [(&'static str, u64); 4] {
        [
            ("created", self.created),
            ("updated", self.updated),
            ("deactivated", self.deactivated),
            ("errors", self.errors),
        ]
    }

    fn add(&mut self, other: &Figures) {
        self.created += other.created;
        self.updated += other.updated;
        self.deactivated += other.deactivated;
        self.errors += other.errors;
    }
}

/// What became of a night.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NightState {
    /// Before the district's first import: not a missed night.
    BeforeFirst,
    /// The district had imported before, but nothing was imported this night.
    NoFile,
    /// At least one import was applied (or found nothing to change).
    Applied(Figures),
    /// Its file applied nothing: held for review or rejected; the figures
    /// are what it would have done, and the errors it found.
    NotApplied(Figures),
}

impl NightState {
    pub fn figures(&self) -> Option<&Figures> {
        match self {
            Self::Applied(f) | Self::NotApplied(f) => Some(f),
            Self::BeforeFirst | Self::NoFile => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Night {
    /// The local date on which the night begins.
    pub date: NaiveDate,
    pub state: NightState,
}

/// The last [`NIGHTS`] nights of a district, oldest first; the last one is
/// tonight (the night being reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trend {
    pub nights: Vec<Night>,
}

/// The night an instant belongs to: the local date twelve hours earlier.
pub fn night_of(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    (at.with_timezone(&tz).naive_local() - TimeDelta::hours(12)).date()
}

impl Trend {
    /// The earliest instant a run of the trend of `tonight` can have
    /// finished at (a little earlier, whatever daylight saving does).
    pub fn since(tonight: DateTime<Utc>) -> DateTime<Utc> {
        tonight - TimeDelta::days(NIGHTS as i64 + 1)
    }

    /// The trend of the night holding `tonight`, from the district's users
    /// runs since [`Trend::since`] (in any order) and when its first users
    /// run ever finished.
    pub fn new(
        runs: &[RunFigures],
        first_run: Option<DateTime<Utc>>,
        tz: Tz,
        tonight: DateTime<Utc>,
    ) -> Self {
        let last = night_of(tonight, tz);
        let first_night = first_run.map(|at| night_of(at, tz));
        let mut runs: Vec<&RunFigures> = runs.iter().collect();
        runs.sort_by_key(|r| r.finished_at);
        let nights = (0..NIGHTS as u64)
            .rev()
            .filter_map(|back| last.checked_sub_days(Days::new(back)))
            .map(|date| {
                let of_night: Vec<&RunFigures> = runs
                    .iter()
                    .copied()
                    .filter(|r| night_of(r.finished_at, tz) == date)
                    .collect();
                let applied: Vec<&RunFigures> = of_night
                    .iter()
                    .copied()
                    .filter(|r| {
                        matches!(
                            r.outcome,
                            Outcome::Applied | Outcome::AppliedWithErrors | Outcome::Unchanged
                        )
                    })
                    .collect();
                let state = if !applied.is_empty() {
                    let mut sum = Figures::default();
                    for r in applied {
                        sum.add(&r.figures);
                    }
                    NightState::Applied(sum)
                } else if let Some(r) = of_night.last() {
                    NightState::NotApplied(r.figures)
                } else if first_night.is_some_and(|first| first <= date) {
                    NightState::NoFile
                } else {
                    NightState::BeforeFirst
                };
                Night { date, state }
            })
            .collect();
        Self { nights }
    }

    /// Tonight: the last night.
    pub fn tonight(&self) -> Option<&Night> {
        self.nights.last()
    }

    /// The nights before tonight.
    pub fn before_tonight(&self) -> &[Night] {
        &self.nights[..self.nights.len().saturating_sub(1)]
    }

    /// The median of each figure over the nights before tonight that had a
    /// file: what an ordinary night of this district looks like. `None`
    /// when no earlier night had one.
    pub fn typical(&self) -> Option<Figures> {
        let with_file: Vec<&Figures> = self
            .before_tonight()
            .iter()
            .filter_map(|n| n.state.figures())
            .collect();
        if with_file.is_empty() {
            return None;
        }
        let median = |pick: fn(&Figures) -> u64| {
            let mut v: Vec<u64> = with_file.iter().map(|f| pick(f)).collect();
            v.sort_unstable();
            v[(v.len() - 1) / 2]
        };
        Some(Figures {
            created: median(|f| f.created),
            updated: median(|f| f.updated),
            deactivated: median(|f| f.deactivated),
            errors: median(|f| f.errors),
        })
    }

    /// The highest of each figure over the nights before tonight.
    pub fn highest_before(&self) -> Option<Figures> {
        highest(self.before_tonight())
    }

    /// The highest value of each figure over all nights, tonight included:
    /// the top of each panel's scale.
    pub fn peaks(&self) -> Figures {
        highest(&self.nights).unwrap_or_default()
    }

    /// The picture in words, with the numbers it shows, for its `alt` text
    /// and for readers whose client shows no images: "Last 30 nights (Oct 23
    /// to Nov 21): tonight 3,000 deactivated, 12 created, …; a typical night
    /// 0 deactivated, …; no file imported on 2 nights: Oct 30, Nov 6."
    pub fn describe(&self) -> String {
        let (Some(first), Some(tonight)) = (self.nights.first(), self.tonight()) else {
            return String::new();
        };
        let day = |d: NaiveDate| d.format("%b %-d").to_string();
        let list = |f: &Figures| {
            f.named()
                .iter()
                .map(|(name, n)| format!("{} {name}", thousands(*n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "Last {} nights ({} to {}): ",
            self.nights.len(),
            day(first.date),
            day(tonight.date)
        );
        s.push_str(&match tonight.state {
            NightState::Applied(f) => format!("tonight {}", list(&f)),
            NightState::NotApplied(f) => format!("tonight, not applied, {}", list(&f)),
            NightState::NoFile | NightState::BeforeFirst => "tonight no file imported".into(),
        });
        match self.typical() {
            Some(typical) => {
                s.push_str(&format!("; a typical night {}", list(&typical)));
                if let Some(high) = self.highest_before() {
                    s.push_str(&format!("; the highest before tonight {}", list(&high)));
                }
            }
            None => s.push_str("; no earlier night to compare with"),
        }
        let missed: Vec<String> = self
            .before_tonight()
            .iter()
            .filter(|n| n.state == NightState::NoFile)
            .map(|n| day(n.date))
            .collect();
        match missed.len() {
            0 => {}
            1 => s.push_str(&format!("; no file imported on 1 night: {}", missed[0])),
            n => s.push_str(&format!(
                "; no file imported on {n} nights: {}",
                missed.join(", ")
            )),
        }
        if let Some(n) = self
            .nights
            .iter()
            .find(|n| n.state != NightState::BeforeFirst)
            .filter(|n| n.date != first.date)
        {
            s.push_str(&format!("; the first import was on {}", day(n.date)));
        }
        s.push('.');
        s
    }
}

/// The highest of each figure over `nights`; `None` if none had a file.
fn highest(nights: &[Night]) -> Option<Figures> {
    let mut high: Option<Figures> = None;
    for f in nights.iter().filter_map(|n| n.state.figures()) {
        let h = high.get_or_insert_with(Figures::default);
        h.created = h.created.max(f.created);
        h.updated = h.updated.max(f.updated);
        h.deactivated = h.deactivated.max(f.deactivated);
        h.errors = h.errors.max(f.errors);
    }
    high
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn run(s: &str, outcome: Outcome, created: u64, deactivated: u64) -> RunFigures {
        RunFigures {
            finished_at: at(s),
            outcome,
            figures: Figures {
                created,
                updated: 0,
                deactivated,
                errors: 0,
            },
        }
    }

    const NY: Tz = chrono_tz::America::New_York;

    #[test]
    fn a_night_runs_noon_to_noon_in_the_districts_zone() {
        // 01:30 on Nov 21 in New York belongs to the night of Nov 20.
        assert_eq!(
            night_of(at("2026-11-21T06:30:00Z"), NY).to_string(),
            "2026-11-20"
        );
        // 13:00 begins the next night.
        assert_eq!(
            night_of(at("2026-11-21T18:00:00Z"), NY).to_string(),
            "2026-11-21"
        );
    }

    #[test]
    fn nights_sum_applied_runs_mark_missing_ones_and_show_held_files() {
        let tonight = at("2026-11-21T07:00:00Z");
        let runs = [
            // Two imports on the night of Nov 18: summed.
            run("2026-11-18T23:30:00Z", Outcome::Applied, 3, 0),
            run("2026-11-19T08:00:00Z", Outcome::AppliedWithErrors, 4, 1),
            // Nov 19: nothing. Nov 20 (tonight): held, then nothing else.
            run("2026-11-21T06:00:00Z", Outcome::Held, 0, 3000),
            // A held night followed by its approval on the same night counts once.
            run("2026-11-17T23:00:00Z", Outcome::Held, 0, 50),
            run("2026-11-18T15:00:00Z", Outcome::Applied, 0, 50),
        ];
        let trend = Trend::new(&runs, Some(at("2026-11-17T23:00:00Z")), NY, tonight);
        assert_eq!(trend.nights.len(), NIGHTS);
        let last4: Vec<(String, NightState)> = trend.nights[NIGHTS - 4..]
            .iter()
            .map(|n| (n.date.to_string(), n.state))
            .collect();
        let f = |created, deactivated| Figures {
            created,
            updated: 0,
            deactivated,
            errors: 0,
        };
        assert_eq!(
            last4,
            [
                ("2026-11-17".into(), NightState::Applied(f(0, 50))),
                ("2026-11-18".into(), NightState::Applied(f(7, 1))),
                ("2026-11-19".into(), NightState::NoFile),
                ("2026-11-20".into(), NightState::NotApplied(f(0, 3000))),
            ]
        );
        assert_eq!(trend.nights[0].state, NightState::BeforeFirst);
        assert_eq!(trend.typical(), Some(f(0, 1)));
        assert_eq!(
            trend.describe(),
            "Last 30 nights (Oct 22 to Nov 20): tonight, not applied, 0 created, 0 updated, 3,000 deactivated, 0 errors; \
             a typical night 0 created, 0 updated, 1 deactivated, 0 errors; \
             the highest before tonight 7 created, 0 updated, 50 deactivated, 0 errors; \
             no file imported on 1 night: Nov 19; the first import was on Nov 17."
        );
    }

    #[test]
    fn a_first_night_has_nothing_to_compare_with() {
        let tonight = at("2026-11-21T07:00:00Z");
        let runs = [run("2026-11-21T06:00:00Z", Outcome::Applied, 120, 0)];
        let trend = Trend::new(&runs, Some(runs[0].finished_at), NY, tonight);
        assert_eq!(trend.typical(), None);
        assert!(
            trend.describe().ends_with(
                "tonight 120 created, 0 updated, 0 deactivated, 0 errors; no earlier night to compare with; the first import was on Nov 20."
            ),
            "{}",
            trend.describe()
        );
    }
}
