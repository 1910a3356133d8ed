//! How far a long import has got, told to whoever shows it: the import calls
//! a [`Progress`] at each phase and as work is done; the command line draws a
//! bar or prints lines, the daemon logs, `rosterd status` reads a board in the
//! spool. The importer itself never prints.
//!
//! A first import of a file with passwords is mostly Argon2 (about 12 ms a
//! password on each core), so rows advance one password at a time there.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::report::thousands;

/// The parts of an import, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The first pass: size, SHA-256, encoding, line count (units: bytes).
    Reading,
    /// Checking each row, hashing its password if new or changed, and
    /// writing it (units: rows; the total is the file's lines after the
    /// header, which blank lines and quoted line breaks make a little more).
    Rows,
    /// Deactivations of a full sync, holds, the report and the commit.
    Finishing,
}

impl Phase {
    /// What the phase does, for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Reading => "reading the file",
            Self::Rows => "checking rows, hashing passwords, writing",
            Self::Finishing => "finishing and committing",
        }
    }

    /// What its counts count (finishing counts nothing, only time).
    pub fn unit(self) -> &'static str {
        match self {
            Self::Reading => "bytes",
            Self::Rows => "rows",
            Self::Finishing => "",
        }
    }
}

/// Told as an import goes. Called from the import's threads (the reader,
/// Argon2's workers, the writer): implementations are cheap and `Sync`.
pub trait Progress: Sync {
    /// A phase begins, with its amount of work if known.
    fn phase(&self, phase: Phase, total: Option<u64>);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// The import is over (whatever its outcome).
    fn end(&self) {}
}

/// Tells nobody.
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: Phase, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
}

impl<T: Progress + ?Sized> Progress for &T {
    fn phase(&self, phase: Phase, total: Option<u64>) {
        (**self).phase(phase, total)
    }
    fn advance(&self, n: u64) {
        (**self).advance(n)
    }
    fn end(&self) {
        (**self).end()
    }
}

/// Both told, the first first.
impl<A: Progress, B: Progress> Progress for (A, B) {
    fn phase(&self, phase: Phase, total: Option<u64>) {
        self.0.phase(phase, total);
        self.1.phase(phase, total);
    }
    fn advance(&self, n: u64) {
        self.0.advance(n);
        self.1.advance(n);
    }
    fn end(&self) {
        self.0.end();
        self.1.end();
    }
}

/// Where a phase stands.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub phase: Phase,
    pub done: u64,
    pub total: Option<u64>,
    /// Since the phase began.
    pub seconds: f64,
}

impl Snapshot {
    /// Units a second, once there is enough to tell.
    pub fn rate(&self) -> Option<f64> {
        (self.seconds >= 0.5 && self.done > 0).then(|| self.done as f64 / self.seconds)
    }

    /// Time left at the rate so far.
    pub fn left(&self) -> Option<Duration> {
        let (total, rate) = (self.total?, self.rate()?);
        Some(Duration::from_secs_f64(
            total.saturating_sub(self.done) as f64 / rate,
        ))
    }

    /// `rows 10,240 of 20,000 (51%), 85 rows/s, about 2 min left`.
    pub fn describe(&self) -> String {
        let unit = self.phase.unit();
        if unit.is_empty() {
            return format!("{} so far", duration(Duration::from_secs_f64(self.seconds)));
        }
        let mut text = match self.total {
            Some(total) if total > 0 => format!(
                "{unit} {} of {} ({}%)",
                thousands(self.done),
                thousands(total),
                (self.done.min(total) * 100) / total
            ),
            _ => format!("{unit} {}", thousands(self.done)),
        };
        if let Some(rate) = self.rate() {
            text.push_str(&format!(", {} {unit}/s", thousands(rate.round() as u64)));
        }
        if let Some(left) = self.left() {
            text.push_str(&format!(", about {} left", duration(left)));
        }
        text
    }

    /// `20,000 rows in 3 min 59 s`, for a phase that ended.
    pub fn describe_done(&self) -> String {
        if self.phase.unit().is_empty() {
            return format!("in {}", duration(Duration::from_secs_f64(self.seconds)));
        }
        format!(
            "{} {} in {}",
            thousands(self.done),
            self.phase.unit(),
            duration(Duration::from_secs_f64(self.seconds))
        )
    }
}

/// `45 s`, `3 min 59 s`, `1 h 02 min`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// What a [`Watch`] has to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// A phase began (its total in the snapshot).
    Began,
    /// A phase is under way: said at most once per interval.
    Going,
    /// A phase ended (the import moved on, or ended).
    Ended,
}

/// What a [`Watch`] calls, boxed.
pub type Say = Box<dyn Fn(Note, &Snapshot) + Send + Sync>;

/// Counts what an import reports and hands `say` a [`Snapshot`] at each
/// phase's beginning and end and, in between, at most once per interval:
/// the plain lines of the command line, the daemon's log, the status board.
pub struct Watch<F> {
    every: Duration,
    say: F,
    state: Mutex<Option<Tally>>,
}

struct Tally {
    phase: Phase,
    total: Option<u64>,
    done: u64,
    began: Instant,
    said: Instant,
}

impl Tally {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            phase: self.phase,
            done: self.done,
            total: self.total,
            seconds: self.began.elapsed().as_secs_f64(),
        }
    }
}

impl<F: Fn(Note, &Snapshot) + Sync> Watch<F> {
    pub fn new(every: Duration, say: F) -> Self {
        Self {
            every,
            say,
            state: Mutex::new(None),
        }
    }

    fn ended(&self, state: &mut Option<Tally>) {
        if let Some(tally) = state.take() {
            (self.say)(Note::Ended, &tally.snapshot());
        }
    }
}

impl<F: Fn(Note, &Snapshot) + Sync> Progress for Watch<F> {
    fn phase(&self, phase: Phase, total: Option<u64>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.ended(&mut state);
        let now = Instant::now();
        let tally = Tally {
            phase,
            total,
            done: 0,
            began: now,
            said: now,
        };
        (self.say)(Note::Began, &tally.snapshot());
        *state = Some(tally);
    }

    fn advance(&self, n: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tally) = state.as_mut() else {
            return;
        };
        tally.done += n;
        if tally.said.elapsed() >= self.every {
            tally.said = Instant::now();
            (self.say)(Note::Going, &tally.snapshot());
        }
    }

    fn end(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.ended(&mut state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        for (s, text) in [
            (0, "0 s"),
            (59, "59 s"),
            (239, "3 min 59 s"),
            (3720, "1 h 02 min"),
        ] {
            assert_eq!(duration(Duration::from_secs(s)), text);
        }
    }

    #[test]
    fn a_snapshot_says_done_of_total_rate_and_time_left() {
        let s = Snapshot {
            phase: Phase::Rows,
            done: 10_240,
            total: Some(20_000),
            seconds: 120.0,
        };
        assert_eq!(
            s.describe(),
            "rows 10,240 of 20,000 (51%), 85 rows/s, about 1 min 54 s left"
        );
        let early = Snapshot { seconds: 0.1, ..s };
        assert_eq!(early.describe(), "rows 10,240 of 20,000 (51%)");
        let open = Snapshot {
            phase: Phase::Finishing,
            done: 0,
            total: None,
            seconds: 2.0,
        };
        assert_eq!(open.describe(), "2 s so far");
        assert_eq!(open.describe_done(), "in 2 s");
        assert_eq!(s.describe_done(), "10,240 rows in 2 min 0 s");
    }

    #[test]
    fn a_watch_says_each_phase_begin_and_end_and_in_between_at_most_per_interval() {
        let said = Mutex::new(Vec::new());
        let watch = Watch::new(Duration::from_secs(3600), |note, s: &Snapshot| {
            said.lock().unwrap().push((note, s.phase, s.done, s.total))
        });
        watch.phase(Phase::Reading, Some(100));
        watch.advance(60);
        watch.advance(40);
        watch.phase(Phase::Rows, Some(3));
        watch.advance(3);
        watch.end();
        watch.end();
        assert_eq!(
            said.into_inner().unwrap(),
            [
                (Note::Began, Phase::Reading, 0, Some(100)),
                (Note::Ended, Phase::Reading, 100, Some(100)),
                (Note::Began, Phase::Rows, 0, Some(3)),
                (Note::Ended, Phase::Rows, 3, Some(3)),
            ]
        );
        let every = Mutex::new(0);
        let chatty = Watch::new(Duration::ZERO, |note, _: &Snapshot| {
            if note == Note::Going {
                *every.lock().unwrap() += 1;
            }
        });
        chatty.phase(Phase::Rows, None);
        chatty.advance(1);
        chatty.advance(1);
        assert_eq!(*every.lock().unwrap(), 2);
    }
}
