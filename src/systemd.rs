//! Telling systemd how the daemon is (`Type=notify`, `sd_notify(3)`):
//! ready, reloading, stopping, a one-line status, and the watchdog's
//! heartbeat. Started by anything but systemd (no `NOTIFY_SOCKET`), or built
//! [`Notifier::off`] for a test's in-process daemon, every call does nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The daemon's line to systemd.
pub struct Notifier {
    /// `NOTIFY_SOCKET` was given.
    on: bool,
    /// `WATCHDOG_USEC`, when systemd watches this process.
    watchdog: Option<Duration>,
    /// When the last heartbeat was sent, and the last status line.
    sent: Mutex<(Option<Instant>, String)>,
}

impl Notifier {
    /// As systemd started this process: `NOTIFY_SOCKET`, and `WATCHDOG_USEC`
    /// (for this process, when `WATCHDOG_PID` names one).
    pub fn from_env() -> Self {
        Self {
            on: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
            sent: Mutex::new((None, String::new())),
        }
    }

    /// Says nothing to anyone.
    pub fn off() -> Self {
        Self {
            on: false,
            watchdog: None,
            sent: Mutex::new((None, String::new())),
        }
    }

    /// Whether anything is listening: without it, callers need not gather a
    /// status line.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// How often [`Self::heartbeat`] must be called: half the watchdog's
    /// interval, as `sd_watchdog_enabled(3)` advises. `None` without a watchdog.
    pub fn heartbeat_every(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.on).map(|d| d / 2)
    }

    /// `READY=1`: the listener is bound and the store migrated (again, after a
    /// reload), with the status line.
    pub fn ready(&self, status: &str) {
        if self.on {
            status.clone_into(&mut self.sent.lock().unwrap_or_else(|e| e.into_inner()).1);
        }
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `RELOADING=1` (with the monotonic time systemd asks of
    /// `Type=notify-reload` services): a SIGHUP is being applied; [`Self::ready`]
    /// follows.
    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    /// `STOPPING=1`: a SIGTERM or SIGINT is being obeyed.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// `WATCHDOG=1`, at most once per [`Self::heartbeat_every`], and the
    /// status line when it changed. Called from a loop that would stop if
    /// the daemon were wedged (the scheduler's), never from a timer of its
    /// own: a heartbeat that outlives the work proves nothing.
    pub fn heartbeat(&self, status: &str) {
        if !self.on {
            return;
        }
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let mut states = Vec::new();
        if let Some(every) = self.heartbeat_every()
            && sent.0.is_none_or(|at| at.elapsed() >= every)
        {
            states.push(NotifyState::Watchdog);
            sent.0 = Some(Instant::now());
        }
        if sent.1 != status {
            states.push(NotifyState::Status(status));
            sent.1 = status.to_owned();
        }
        drop(sent);
        self.send(&states);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.on || states.is_empty() {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
        }
    }
}
