//! The daemon assembled in one place: [`Daemon::build`] does everything that
//! comes before serving (checks the data directory, opens and settles the
//! store, loads or creates the host keys, binds the listener, builds the SSH
//! server, the scheduler and the mailer, and the metrics endpoint when
//! `metrics.listen` is set), and [`Daemon::run_until_stopped`] serves SSH and
//! the metrics endpoint, runs the scheduler and the mailer, and applies SIGHUP
//! reloads until its shutdown future completes. `rosterd serve` and the tests
//! both build it here, so what the tests run is what `serve` runs. Under
//! systemd (`serve` only) it says when it is ready, reloading and stopping,
//! and the scheduler's loop feeds the watchdog ([`crate::systemd`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::import::ImportContext;
use crate::mail::Mailer;
use crate::scheduler::{Pulse, Scheduler};
use crate::server::Shared;
use crate::store::Store;

/// What [`Daemon::build`] is asked to do beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Install the process-wide handlers: the crash marker's and SIGHUP's
    /// reload, and talk to systemd (`serve` only; the tests run many daemons
    /// in one process).
    pub process_wide: bool,
}

/// A daemon ready to serve.
pub struct Daemon {
    config: Config,
    options: Options,
    clock: Arc<dyn Clock>,
    listener: tokio::net::TcpListener,
    ssh: Arc<russh::server::Config>,
    /// The server's state: store connections, front door, ledger.
    pub shared: Arc<Shared>,
    pub scheduler: Arc<Scheduler>,
    pub mailer: Arc<Mailer>,
    /// The operator's HTTP endpoint (`metrics.listen`), if configured: its
    /// listener and what it answers from.
    ops: Option<(tokio::net::TcpListener, Arc<crate::ops::Ops>)>,
    /// Each host key's fingerprint and kind: `SHA256:… (ED25519)`.
    pub host_keys: Vec<String>,
    /// Whether any district is registered yet.
    pub has_districts: bool,
    /// Held while the daemon runs: the data directory is this daemon's.
    _data_lock: std::fs::File,
}

/// Whether the scheduler and the mailer run on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// As in `serve`: both run until the daemon stops.
    Run,
    /// Left to the caller, who drives them with `run_once` (tests).
    Manual,
}

impl Daemon {
    /// Everything that comes before serving, in `serve`'s order. Must run
    /// on a tokio runtime (the listener is bound here).
    pub async fn build(
        config: Config,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> anyhow::Result<Self> {
        let paths = crate::store::data_paths(&config.storage);
        crate::store::check_private(&paths)?;
        let database_dir = paths[0];
        // One daemon per data directory: a second would import the same
        // uploads and send the same reports.
        let data_lock = crate::files::lock_dir(database_dir)
            .with_context(|| format!("cannot lock the data directory {}", database_dir.display()))?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "another rosterd serve is already running on the data directory {} (database {}); stop it first, or give this one its own storage.database and storage.spool",
                    database_dir.display(),
                    config.storage.database.display()
                )
            })?;
        let store = Store::open(&config.storage.database)?;
        let mut host_keys = Vec::new();
        let mut keys = Vec::new();
        for (kind, path, key, created) in
            crate::server::host_keys::load_or_create_host_keys(&config.server)?
        {
            if created {
                tracing::info!(path = %path.display(), kind = kind.label(), "created a new host key");
            }
            host_keys.push(format!(
                "{} ({})",
                crate::server::host_keys::host_key_fingerprint(&key),
                kind.label()
            ));
            keys.push(key);
        }
        let removed = crate::spool::clean_incoming(&config.storage.spool)?;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed unfinished transfers and superseded uploads left in incoming/ by the previous run"
            );
        }
        let finished = crate::spool::archive_leftovers(&store.conn, &config.storage.spool)?;
        if finished > 0 {
            tracing::info!(
                finished,
                "archived uploads whose import finished just before the previous run stopped"
            );
        }
        // One set of counters for the daemon's life: a reload keeps them.
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let scheduler = Arc::new(Scheduler::new(
            &config,
            import_context(&config, clock.clone())?,
            metrics.clone(),
        ));
        let crashed = if options.process_wide {
            let marker = config
                .storage
                .database
                .with_file_name("import-crash.marker");
            crate::crash::install(&marker)?
        } else {
            None
        };
        let given_up = scheduler.settle_interrupted(&store.conn, crashed)?;
        if given_up > 0 {
            tracing::warn!(
                given_up,
                "uploads whose import the daemon did not survive twice were set aside (see `rosterd status`)"
            );
        }
        let open_files = crate::server::raise_open_file_limit(&config);
        tracing::debug!(open_files, "open-file limit");
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| {
                format!("cannot listen on {} (server.listen)", config.server.listen)
            })?;
        let metrics_listener = match config.metrics.listen {
            Some(addr) => Some(crate::ops::bind(addr).await?),
            None => None,
        };
        let ssh = crate::server::ssh_config(&config, keys);
        let mailer = Arc::new(Mailer::new(
            &config.mail,
            Store::open(&config.storage.database)?.conn,
            clock.clone(),
            metrics.clone(),
        )?);
        let has_districts = !store.tenants()?.is_empty();
        drop(store);
        let shared = Shared::open(config.clone(), clock.clone(), metrics)?;
        let ops = match metrics_listener {
            Some(listener) => Some((listener, crate::ops::Ops::new(shared.clone())?)),
            None => None,
        };
        Ok(Self {
            config,
            options,
            clock,
            listener,
            ssh,
            shared,
            scheduler,
            mailer,
            ops,
            host_keys,
            has_districts,
            _data_lock: data_lock,
        })
    }

    /// The address the SSH server listens on (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address the metrics endpoint listens on (port 0 resolved), if
    /// `metrics.listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serve until `shutdown` completes; then stop taking connections, let
    /// running transfers finish within the shutdown grace, and stop the
    /// scheduler and the mailer. With `process_wide`, SIGHUP reloads the
    /// configuration.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
        background: Background,
    ) -> anyhow::Result<()> {
        let Self {
            config,
            options,
            clock,
            listener,
            ssh,
            shared,
            scheduler,
            mailer,
            ops,
            _data_lock,
            ..
        } = self;
        let systemd = Arc::new(if options.process_wide {
            crate::systemd::Notifier::from_env()
        } else {
            crate::systemd::Notifier::off()
        });
        let reloading = if options.process_wide {
            let (origin, shared, scheduler, mailer, systemd) = (
                config.origin.clone(),
                shared.clone(),
                scheduler.clone(),
                mailer.clone(),
                systemd.clone(),
            );
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            Some(tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    systemd.reloading();
                    match reload(&origin, &shared, &scheduler, &mailer, &clock) {
                        Ok(()) => tracing::info!("configuration reloaded (SIGHUP)"),
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "configuration not reloaded; the running one stays in force")
                        }
                    }
                    systemd.ready(&status_line(&shared, None));
                }
            }))
        } else {
            None
        };
        // Listening and the store migrated (both in `build`); before the
        // scheduler's first heartbeat.
        systemd.ready(&status_line(&shared, None));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut jobs = Vec::new();
        // Until the daemon has stopped: while sessions drain, /readyz says
        // the listener is closed.
        if let Some((listener, ops)) = ops {
            jobs.push(tokio::spawn(crate::ops::serve(
                listener,
                ops,
                stopped.clone(),
            )));
        }
        if background == Background::Run {
            let mail_wake = Arc::new(tokio::sync::Notify::new());
            jobs.push(tokio::spawn(scheduler.run_until_stopped(
                shared.uploaded.clone(),
                mail_wake.clone(),
                stopped.clone(),
                pulse(&systemd, &shared),
            )));
            let mailer = mailer.clone();
            jobs.push(tokio::spawn(async move {
                mailer.run_until_stopped(mail_wake, stopped).await
            }));
        }
        let grace = std::time::Duration::from_secs(config.server.shutdown_grace_seconds);
        let stopping = systemd.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.stopping();
        };
        crate::server::run(listener, shared, ssh, shutdown, grace).await?;
        if let Some(reloading) = reloading {
            reloading.abort();
        }
        let _ = stop.send(true);
        for job in jobs {
            let _ = job.await;
        }
        tracing::info!("rosterd stopped");
        Ok(())
    }
}

/// The scheduler's beat under systemd: `WATCHDOG=1` and the status line
/// (connections, imports in the last day, mail queued), from its own loop.
fn pulse(systemd: &Arc<crate::systemd::Notifier>, shared: &Arc<Shared>) -> Option<Arc<Pulse>> {
    if !systemd.is_on() {
        return None;
    }
    let (systemd, shared) = (systemd.clone(), shared.clone());
    Some(Arc::new(Pulse {
        every: systemd.heartbeat_every(),
        beat: Box::new(move |conn| systemd.heartbeat(&status_line(&shared, Some(conn)))),
    }))
}

/// systemd's one-line status: `3 connections, 12 imports in the last 24 h,
/// 0 emails queued` (the store's counts only with a connection to read them).
fn status_line(shared: &Shared, conn: Option<&rusqlite::Connection>) -> String {
    let connections = shared.live().connections;
    let mut line = format!(
        "{connections} connection{}",
        if connections == 1 { "" } else { "s" }
    );
    if let Some(conn) = conn {
        let since = crate::store::timestamp(shared.clock.now() - chrono::Duration::hours(24));
        if let (Ok(imports), Ok(queued)) = (
            crate::store::runs_finished_since(conn, &since),
            crate::mail::queue_length(conn),
        ) {
            line.push_str(&format!(
                ", {imports} import{} in the last 24 h, {queued} email{} queued",
                if imports == 1 { "" } else { "s" },
                if queued == 1 { "" } else { "s" }
            ));
        }
    }
    line
}

/// What every import needs: the clock, the password fingerprint key, the
/// default time zone and the report composer.
pub fn import_context(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<ImportContext> {
    Ok(ImportContext {
        clock,
        fingerprinter: crate::password::Fingerprinter::load_or_create(
            &config.storage.fingerprint_key,
        )?,
        default_timezone: config.schedule.timezone,
        composer: crate::mail::Composer::new(&config.mail.from)?,
    })
}

/// Re-read the configuration and apply what can change while serving: the
/// schedule, retention, mail, the outbox's readiness limit, and every server
/// limit and timeout. Listen addresses (SSH and metrics), host key, storage
/// paths, the session count, the shutdown grace and logging keep their
/// running values until a restart (a warning says so). A file with an error
/// changes nothing.
fn reload(
    origin: &crate::config::Origin,
    shared: &Shared,
    scheduler: &Scheduler,
    mailer: &Mailer,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let new = Config::load(origin)?;
    let running = shared.config();
    let mut applied = (*running).clone();
    // Every server limit is read when it is checked, so all apply at once,
    // except what the listener and russh were built with.
    applied.server = crate::config::ServerConfig {
        listen: running.server.listen,
        host_key: running.server.host_key.clone(),
        host_key_ecdsa: running.server.host_key_ecdsa.clone(),
        host_key_rsa: running.server.host_key_rsa.clone(),
        legacy_algorithms: running.server.legacy_algorithms,
        max_sessions: running.server.max_sessions,
        shutdown_grace_seconds: running.server.shutdown_grace_seconds,
        ..new.server.clone()
    };
    applied.storage.archive_days = new.storage.archive_days;
    applied.schedule = new.schedule.clone();
    applied.mail = new.mail.clone();
    applied.metrics.outbox_stuck_seconds = new.metrics.outbox_stuck_seconds;
    let ctx = import_context(&applied, clock.clone())?;
    mailer.reload(&applied.mail)?;
    scheduler.reload(&applied, ctx);
    if format!("{applied:?}") != format!("{new:?}") {
        tracing::warn!(
            "some changed settings (listen address, metrics.listen, host key, storage paths, max_sessions, shutdown grace, logging) take effect only after a restart"
        );
    }
    shared.set_config(applied);
    Ok(())
}
