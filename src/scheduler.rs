//! The nightly scheduler: imports each district's pending upload once it has
//! settled and the district's window is open, archives it with passwords
//! blanked, expires old archives, and notices a night with no delivery. All of
//! its state is in the store, so a restarted daemon carries on where it
//! stopped; imports run on blocking threads, never on the SFTP server's.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::config::Config;
use crate::domain::window::Window;
use crate::import::progress::{Note, Progress, Silent, Snapshot, Watch};
use crate::import::{ImportContext, ImportOptions, Report, Source};
use crate::metrics::{ImportOutcome, Metrics};
use crate::spool::{self, TenantSpool};
use crate::store::{Store, Tenant, timestamp};

/// Imports running at once. Every import holds the database's write lock from
/// its first row to its commit, so more would only wait for it (and fail once
/// the wait passes the busy timeout), each holding a connection, its page
/// cache and its file's state in memory; one import already keeps both cores
/// busy (reader and writer stages).
pub const MAX_RUNNING_IMPORTS: usize = 1;

/// How often the scheduler looks, at most; an upload wakes it at once.
const TICK: Duration = Duration::from_secs(5);
/// After an import fails (disk, database), leave the district alone this long.
const FAILURE_BACKOFF: chrono::Duration = chrono::Duration::minutes(5);
/// Times an upload is taken for import before rosterd gives up on it: an
/// import that fails with an error (not a rejection, which is a result) is
/// tried again after [`FAILURE_BACKOFF`], up to this many attempts in all.
pub const MAX_ATTEMPTS: u32 = 3;
/// Imports of one upload the daemon may fail to survive. An import cut short
/// once (a power cut, a kill) is resumed at the next start; a file whose
/// import was cut short twice is not resumed into the same crash again.
pub const MAX_INTERRUPTED: u32 = 2;

/// What the scheduler's loop calls after each survey, on the survey's
/// blocking thread with its connection: the daemon's sign of life (systemd's
/// watchdog, [`crate::systemd`]) and its status line. Called from the loop
/// itself, so a wedged loop (a survey that never returns) stops it.
pub struct Pulse {
    /// How often it must be called, at least (the loop wakes that often).
    pub every: Option<Duration>,
    pub beat: Box<dyn Fn(&Connection) + Send + Sync>,
}

/// How [`Scheduler::import_next_showing`] shows an import's progress.
pub enum Show<'a> {
    /// In the log: each phase with its total, and every [`LOG_PROGRESS_EVERY`].
    Log,
    /// Told to this (the command line's bar or lines).
    By(&'a dyn Progress),
}

/// How often the log says how far a running import has got.
pub const LOG_PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// The daemon's log of an import's progress: each phase as it begins, with
/// its total, and ends, and how far it has got every [`LOG_PROGRESS_EVERY`].
/// The events name the district and upload themselves: they come from the
/// import's worker threads, outside its span.
fn logged_progress(district: &str, upload: i64) -> impl Progress {
    let district = district.to_owned();
    Watch::new(LOG_PROGRESS_EVERY, move |note, at: &Snapshot| {
        let phase = at.phase.label();
        match note {
            Note::Began => tracing::info!(
                %district, upload, phase, total = at.total, unit = at.phase.unit(),
                "import: {phase}{}",
                at.total
                    .map(|t| format!(", {} {}", crate::domain::report::thousands(t), at.phase.unit()))
                    .unwrap_or_default()
            ),
            Note::Going => tracing::info!(
                %district, upload, phase, done = at.done, total = at.total,
                rate = at.rate(), seconds_left = at.left().map(|d| d.as_secs()),
                "import: {phase}: {}", at.describe()
            ),
            Note::Ended => tracing::info!(
                %district, upload, phase, done = at.done, seconds = at.seconds,
                "import: {phase} done, {}", at.describe_done()
            ),
        }
    })
}

/// What [`Scheduler::import_next`] did.
#[derive(Debug)]
pub enum Next {
    Imported(Box<Report>),
    /// Nothing pending.
    Nothing,
    /// Another process or thread is importing this district's upload.
    Busy,
    /// rosterd gave up on the upload (see [`MAX_ATTEMPTS`]); its
    /// administrator is emailed and `rosterd status` shows why.
    Failed(String),
}

pub struct Scheduler {
    settings: RwLock<Arc<Settings>>,
    database: PathBuf,
    spool: PathBuf,
    /// Where its imports are counted.
    metrics: Arc<Metrics>,
}

/// What a configuration reload may change.
struct Settings {
    ctx: ImportContext,
    window: Window,
    settle: chrono::Duration,
    archive_days: u32,
    /// How long a staged file may wait for its rename: the login grace and
    /// idle timeout, after which its session has surely ended.
    staged_max_age: std::time::Duration,
    /// Hold thresholds for districts without their own.
    holds: crate::domain::safety::HoldLimits,
}

impl Settings {
    /// The district's window: its own, else the configured default.
    fn window_of(&self, tenant: &Tenant) -> Window {
        tenant.window_or(self.window)
    }

    /// The district's pause, if it covers `at` (its own date).
    fn pause_at(&self, tenant: &Tenant, at: DateTime<Utc>) -> Option<crate::domain::safety::Pause> {
        let day = at.with_timezone(&self.ctx.timezone_of(tenant)).date_naive();
        tenant.pause.filter(|p| p.covers(day))
    }
}

impl Scheduler {
    /// A scheduler counting its imports in `metrics`.
    pub fn new(config: &Config, ctx: ImportContext, metrics: Arc<Metrics>) -> Self {
        Self {
            settings: RwLock::new(Arc::new(Self::settings_from(config, ctx))),
            database: config.storage.database.clone(),
            spool: config.storage.spool.clone(),
            metrics,
        }
    }

    fn settings_from(config: &Config, ctx: ImportContext) -> Settings {
        Settings {
            ctx,
            window: config.schedule.window,
            settle: chrono::Duration::seconds(config.schedule.settle_seconds as i64),
            archive_days: config.storage.archive_days,
            staged_max_age: std::time::Duration::from_secs(
                config.server.login_grace_seconds + config.server.idle_timeout_seconds,
            ),
            holds: config.holds,
        }
    }

    /// Take the schedule, retention and mail settings of a reloaded `config`
    /// (with the context built from it); paths stay as they were.
    pub fn reload(&self, config: &Config, ctx: ImportContext) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Self::settings_from(config, ctx));
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn spool_of(&self, tenant: &Tenant) -> TenantSpool {
        TenantSpool::new(&self.spool, &tenant.subdomain)
    }

    /// Look at every district once: record stray uploads, expire old archives,
    /// queue the "nothing received" notes of windows that closed, and return
    /// the districts whose upload should be imported now.
    pub fn survey(&self, conn: &Connection) -> anyhow::Result<Vec<Tenant>> {
        let s = self.settings();
        let now = s.ctx.clock.now();
        let cutoff = now - chrono::Duration::days(s.archive_days.into());
        let expired = spool::expire_archives(conn, cutoff)?;
        if expired > 0 {
            tracing::info!(
                expired,
                "deleted archived uploads past the retention period"
            );
        }
        let tenants = Store::tenants_of(conn)?;
        let mut due = Vec::new();
        for tenant in tenants.into_iter().filter(|t| !t.disabled) {
            // One district's trouble (its spool unreadable) must not stop
            // the others' imports.
            let look = || -> anyhow::Result<bool> {
                let removed = spool::remove_stale_staged(
                    &self.spool_of(&tenant),
                    std::time::SystemTime::now() - s.staged_max_age,
                )?;
                if removed > 0 {
                    tracing::info!(district = %tenant.subdomain, removed, "removed staged uploads never renamed to users.csv (their session has ended)");
                }
                spool::adopt_unrecorded(conn, &self.spool_of(&tenant), tenant.id, now)?;
                check_missing(&s, conn, &tenant, now)?;
                is_due(&s, conn, &tenant, now)
            };
            match look() {
                Ok(true) => due.push(tenant),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(district = %tenant.subdomain, error = %format!("{e:#}"), "cannot look at this district's uploads; the others go on")
                }
            }
        }
        Ok(due)
    }

    /// Import the district's next upload now, whatever the time: the one a stopped
    /// daemon left half-done first, else the pending `users.csv`. The report
    /// email is queued in the import's transaction; afterwards the file is
    /// archived with its passwords blanked. Its progress is logged.
    pub fn import_next(&self, conn: &mut Connection, tenant: &Tenant) -> anyhow::Result<Next> {
        self.import_next_showing(conn, tenant, Show::Log)
    }

    /// [`Self::import_next`], its progress shown as `show` says; always
    /// posted on the district's board for `rosterd status`.
    pub fn import_next_showing(
        &self,
        conn: &mut Connection,
        tenant: &Tenant,
        show: Show<'_>,
    ) -> anyhow::Result<Next> {
        // `tenant` was read a while ago (a survey, then other districts'
        // imports): renamed or deleted since, its folder is another or gone.
        let renamed = |conn: &Connection| -> rusqlite::Result<bool> {
            Ok(crate::store::tenant_subdomain(conn, tenant.id)?.as_deref()
                != Some(tenant.subdomain.as_str()))
        };
        if renamed(conn)? {
            return Ok(Next::Nothing);
        }
        let spool = self.spool_of(tenant);
        let Some(_importing) = spool.try_lock_import()? else {
            return Ok(Next::Busy);
        };
        // Once more under the lock, which a rename or delete holds until
        // its change is committed.
        if renamed(conn)? {
            return Ok(Next::Nothing);
        }
        let Some(claimed) = spool::claim(conn, &spool, tenant.id)? else {
            return Ok(Next::Nothing);
        };
        let _watch = crate::crash::ImportWatch::new(claimed.upload_id);
        let span =
            tracing::info_span!("import", district = %tenant.subdomain, upload = claimed.upload_id);
        let _enter = span.enter();
        let s = self.settings();
        let pause = s.pause_at(tenant, s.ctx.clock.now());
        // Held uploads this newer one replaces; set aside once it is imported.
        let replaced = spool::held_before(conn, tenant.id, claimed.upload_id)?;
        let mut notes: Vec<String> = replaced
            .iter()
            .map(|h| {
                format!(
                    "this upload replaces the users.csv received {} that was held for review (run {}); the held file will not be applied",
                    h.received_at, h.run_id
                )
            })
            .collect();
        if let Some(p) = pause.filter(|p| p.additions_only) {
            notes.push(format!(
                "the district is paused {}: changes to existing users are kept back until the pause ends",
                p.describe()
            ));
        }
        let opts = ImportOptions {
            dry_run: false,
            force: false,
            source: Source::Sftp,
            upload_id: Some(claimed.upload_id),
            file_name: spool::USERS_CSV.into(),
            email: true,
            holds: (!claimed.approved).then(|| s.holds.for_tenant(tenant)),
            additions_only: pause.is_some_and(|p| p.additions_only),
            notes,
            // The district's own setting decides; they go with the report.
            generate_passwords: false,
            passwords_out: None,
        };
        if claimed.attempts > MAX_ATTEMPTS {
            let why = format!("taken for import {MAX_ATTEMPTS} times without a result");
            self.give_up(conn, tenant, &spool, claimed.upload_id, &why)?;
            return Ok(Next::Failed(why));
        }
        let board = spool
            .progress_board(
                Source::Sftp.as_str(),
                spool::USERS_CSV,
                Some(claimed.upload_id),
            )
            .unwrap_or_else(|e| {
                tracing::debug!(error = %e, "cannot post the import's progress");
                None
            });
        let logged = logged_progress(&tenant.subdomain, claimed.upload_id);
        let shown: &dyn Progress = match show {
            Show::Log => &logged,
            Show::By(p) => p,
        };
        let progress = (
            board.as_ref().map_or(&Silent as &dyn Progress, |b| b),
            shown,
        );
        let started = std::time::Instant::now();
        let imported = crate::import::users::import_with_progress(
            conn,
            &s.ctx,
            tenant,
            &claimed.path,
            &opts,
            &progress,
        );
        drop(board);
        let report = match imported {
            Ok(report) => report,
            Err(e) => {
                self.metrics.import_ended(ImportOutcome::Error);
                let why = format!("{e:#}");
                crate::store::set_upload_failure(conn, claimed.upload_id, &why)?;
                if claimed.attempts < MAX_ATTEMPTS {
                    return Err(e);
                }
                self.give_up(conn, tenant, &spool, claimed.upload_id, &why)?;
                return Ok(Next::Failed(why));
            }
        };
        self.metrics.import_finished(
            report.outcome,
            opts.additions_only,
            &report.counts,
            started.elapsed().as_secs_f64(),
        );
        // A held upload keeps its original until support decides.
        if report.outcome != crate::import::Outcome::Held {
            spool::archive_imported(conn, &spool, tenant.id, claimed.upload_id)?;
        }
        for h in &replaced {
            spool::set_aside(
                conn,
                &spool,
                tenant.id,
                h,
                "superseded",
                &format!("superseded by upload {}", claimed.upload_id),
            )?;
        }
        Ok(Next::Imported(Box::new(report)))
    }

    /// Stop trying to import upload `upload_id`: mark it failed with `why`,
    /// keep its blanked copy, and queue the one email telling the
    /// administrator (support learns it from the log and `rosterd status`).
    fn give_up(
        &self,
        conn: &Connection,
        tenant: &Tenant,
        spool: &TenantSpool,
        upload_id: i64,
        why: &str,
    ) -> anyhow::Result<()> {
        let s = self.settings();
        let now = s.ctx.clock.now();
        let received = crate::import::upload_received(conn, upload_id)?;
        let (size, sha256) = crate::store::upload_size_and_hash(conn, upload_id)?;
        let mail = s.ctx.composer.failed(
            tenant,
            s.ctx.timezone_of(tenant),
            upload_id,
            (size as u64, &sha256),
            received.as_ref(),
            now,
        )?;
        let tx = conn.unchecked_transaction()?;
        spool::fail(&tx, spool, tenant.id, upload_id, why)?;
        crate::mail::queue(&tx, &mail, now)?;
        tx.commit()?;
        self.metrics.import_ended(ImportOutcome::Failed);
        tracing::error!(
            district = %tenant.subdomain, upload = upload_id, reason = why,
            "gave up importing this upload; its administrator is emailed, `rosterd status` shows it, and the next upload is imported as usual"
        );
        Ok(())
    }

    /// At start-up, before any import: uploads whose import a previous run
    /// did not survive are resumed, unless the daemon crashed importing it
    /// (`crashed`, from [`crate::crash::install`]) or that already happened
    /// [`MAX_INTERRUPTED`] times, when the file may well be what stopped it;
    /// those are given up. Returns how many were given up.
    pub fn settle_interrupted(
        &self,
        conn: &Connection,
        crashed: Option<i64>,
    ) -> anyhow::Result<usize> {
        let mut given_up = 0;
        for (upload_id, tenant_id, sub, attempts) in spool::interrupted(conn)? {
            let Some(tenant) = Store::tenants_of(conn)?
                .into_iter()
                .find(|t| t.id == tenant_id)
            else {
                continue;
            };
            let spool = self.spool_of(&tenant);
            // A support command importing it right now has not stopped.
            let Some(_importing) = spool.try_lock_import()? else {
                continue;
            };
            if crashed == Some(upload_id) {
                let why = "the daemon crashed (a fatal signal) while importing this upload; not resumed into the same crash".to_string();
                self.give_up(conn, &tenant, &spool, upload_id, &why)?;
                given_up += 1;
            } else if attempts >= MAX_INTERRUPTED {
                let why = format!(
                    "the daemon stopped during this upload's import {attempts} times (a crash or a kill); not resumed again"
                );
                self.give_up(conn, &tenant, &spool, upload_id, &why)?;
                given_up += 1;
            } else {
                tracing::warn!(district = %sub, upload = upload_id, "the previous run stopped during this upload's import; it is imported again now");
            }
        }
        Ok(given_up)
    }

    fn open(&self) -> anyhow::Result<Connection> {
        Ok(Store::open(&self.database)?.conn)
    }

    /// Survey once and import everything due, one district after another,
    /// waiting for all of it: what tests and `run_until_stopped` build on.
    pub async fn run_once(self: &Arc<Self>) -> anyhow::Result<Vec<Report>> {
        let due = self.survey_blocking().await?;
        let mut reports = Vec::new();
        for tenant in due {
            let me = self.clone();
            let done = tokio::task::spawn_blocking(move || me.import_blocking(&tenant)).await??;
            if let Next::Imported(report) = done {
                reports.push(*report);
            }
        }
        Ok(reports)
    }

    async fn survey_blocking(self: &Arc<Self>) -> anyhow::Result<Vec<Tenant>> {
        self.survey_and_beat(None).await
    }

    /// [`Self::survey`], then `pulse`'s beat on the same thread and connection.
    async fn survey_and_beat(
        self: &Arc<Self>,
        pulse: Option<&Arc<Pulse>>,
    ) -> anyhow::Result<Vec<Tenant>> {
        let me = self.clone();
        let pulse = pulse.cloned();
        tokio::task::spawn_blocking(move || {
            let conn = me.open()?;
            let due = me.survey(&conn);
            if let Some(pulse) = pulse {
                (pulse.beat)(&conn);
            }
            due
        })
        .await?
    }

    fn import_blocking(&self, tenant: &Tenant) -> anyhow::Result<Next> {
        let next = self
            .open()
            .and_then(|mut conn| self.import_next(&mut conn, tenant));
        crate::memory::release_free();
        next
    }

    /// Run until `stop` turns true. Imports run on a blocking thread, at most
    /// [`MAX_RUNNING_IMPORTS`] at once, the others waiting for the next survey;
    /// `uploaded` wakes the scheduler when a file arrives and `mail` is
    /// notified after each import; `pulse` beats after each survey.
    /// On stop, running imports are allowed to finish.
    pub async fn run_until_stopped(
        self: Arc<Self>,
        uploaded: Arc<tokio::sync::Notify>,
        mail: Arc<tokio::sync::Notify>,
        mut stop: tokio::sync::watch::Receiver<bool>,
        pulse: Option<Arc<Pulse>>,
    ) {
        let tick = pulse
            .as_ref()
            .and_then(|p| p.every)
            .map_or(TICK, |every| every.min(TICK));
        let mut running = tokio::task::JoinSet::new();
        let mut busy: HashSet<i64> = HashSet::new();
        let mut resting: HashMap<i64, DateTime<Utc>> = HashMap::new();
        loop {
            match self.survey_and_beat(pulse.as_ref()).await {
                Ok(due) => {
                    let now = self.settings().ctx.clock.now();
                    resting.retain(|_, until| *until > now);
                    for tenant in due {
                        if running.len() >= MAX_RUNNING_IMPORTS {
                            break;
                        }
                        if busy.contains(&tenant.id) || resting.contains_key(&tenant.id) {
                            continue;
                        }
                        busy.insert(tenant.id);
                        let me = self.clone();
                        running.spawn_blocking(move || {
                            let result = me.import_blocking(&tenant);
                            (tenant, result)
                        });
                    }
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "scheduler survey failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = uploaded.notified() => {}
                Some(done) = running.join_next(), if !running.is_empty() => {
                    self.finished(done, &mut busy, &mut resting, &mail);
                }
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if !running.is_empty() {
            tracing::info!(
                imports = running.len(),
                "waiting for running imports to finish"
            );
        }
        while let Some(done) = running.join_next().await {
            self.finished(done, &mut busy, &mut resting, &mail);
        }
    }

    fn finished(
        &self,
        done: Result<(Tenant, anyhow::Result<Next>), tokio::task::JoinError>,
        busy: &mut HashSet<i64>,
        resting: &mut HashMap<i64, DateTime<Utc>>,
        mail: &tokio::sync::Notify,
    ) {
        let (tenant, result) = match done {
            Ok(pair) => pair,
            Err(e) => {
                // A panicked import: its district id is lost with it, so let every
                // district be tried again; the failed one is logged here.
                tracing::error!(error = %e, "an import task failed");
                busy.clear();
                return;
            }
        };
        busy.remove(&tenant.id);
        match result {
            Ok(Next::Imported(report)) => {
                tracing::info!(district = %tenant.subdomain, outcome = report.outcome.as_str(), "{}", report.headline());
                mail.notify_one();
            }
            Ok(Next::Failed(_)) => {
                mail.notify_one();
            }
            Ok(Next::Nothing | Next::Busy) => {}
            Err(e) => {
                tracing::error!(district = %tenant.subdomain, error = %format!("{e:#}"), "import failed; the upload is kept and will be tried again in 5 minutes");
                resting.insert(tenant.id, self.settings().ctx.clock.now() + FAILURE_BACKOFF);
            }
        }
    }
}

/// An import cut short by a stop is due at once; a pending upload is due
/// once settled and inside the window.
fn is_due(
    s: &Settings,
    conn: &Connection,
    tenant: &Tenant,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let (importing, pending_since) = crate::store::import_due_state(conn, tenant.id)?;
    if importing {
        return Ok(true);
    }
    let Some(since) = pending_since.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()) else {
        return Ok(false);
    };
    // Paused: received and kept, imported when the pause ends.
    if s.pause_at(tenant, now).is_some_and(|p| !p.additions_only) {
        return Ok(false);
    }
    let settled = now - since.to_utc() >= s.settle;
    Ok(settled && s.window_of(tenant).is_open(s.ctx.timezone_of(tenant), now))
}

/// Queue one "no users.csv received" note for the last window that closed,
/// if the district has delivered before but sent nothing for that night
/// (between the window's closing the night before and this closing).
fn check_missing(
    s: &Settings,
    conn: &Connection,
    tenant: &Tenant,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let tz = s.ctx.timezone_of(tenant);
    let window = s.window_of(tenant);
    let close = window.last_close(tz, now);
    let night_began = window.last_close(tz, close - chrono::Duration::seconds(1));
    // A paused night sends no "nothing received" note.
    if s.pause_at(tenant, close).is_some() || s.pause_at(tenant, night_began).is_some() {
        return Ok(());
    }
    // What the note says and the queueing it: one transaction.
    let tx = conn.unchecked_transaction()?;
    let (before, tonight, last) =
        crate::store::delivery_history(&tx, tenant.id, night_began, close)?;
    if !before
        || tonight
        || crate::store::queued_for_all(
            &tx,
            &crate::mail::compose::missing_key(tenant, tz, close),
            &tenant.recipients(),
        )?
    {
        // Nothing to say, or said already: the picture is not drawn again.
        return Ok(());
    }
    let last = last
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|d| d.to_utc());
    // The missed night is the one the window closed on.
    let trend = crate::mail::compose::trend(&tx, tenant.id, tz, close, None)?;
    let mail = s
        .ctx
        .composer
        .missing(tenant, tz, close, last, Some(&trend), now)?;
    let queued = crate::mail::queue(&tx, &mail, now)?;
    tx.commit()?;
    if queued {
        tracing::warn!(district = %tenant.subdomain, window_closed = %timestamp(close), "no users.csv received during the window; administrator notified");
    }
    Ok(())
}
