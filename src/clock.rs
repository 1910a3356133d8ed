//! The one source of "now". Everything time-dependent (the import window, the
//! 1 July school-year rollover, retries) asks a [`Clock`], so tests pin the time
//! instead of sleeping until 6 PM.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// Where the current time comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stays where a test puts it.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<Mutex<DateTime<Utc>>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The wall clock shifted by a fixed amount: it starts at a chosen time and then
/// runs at real speed, so a daemon started "at 23:00" keeps its schedule moving.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock(chrono::Duration);

impl OffsetClock {
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Self(at - Utc::now())
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

/// The clock the CLI and daemon use. `ROSTERD_NOW` (an RFC 3339 time) sets where
/// it starts, so support can rehearse "what would this file do on 1 July" and
/// tests can run the daemon "at night"; from there it runs at real speed.
pub fn from_env() -> anyhow::Result<Arc<dyn Clock>> {
    match std::env::var("ROSTERD_NOW") {
        Ok(text) => {
            let at = DateTime::parse_from_rfc3339(text.trim()).map_err(|e| {
                anyhow::anyhow!(
                    "ROSTERD_NOW={text:?} is not an RFC 3339 time such as 2026-09-01T12:00:00Z: {e}"
                )
            })?;
            Ok(Arc::new(OffsetClock::starting_at(at.with_timezone(&Utc))))
        }
        Err(_) => Ok(Arc::new(SystemClock)),
    }
}
