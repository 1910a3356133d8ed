//! The embedded SSH/SFTP server. Districts log in with their subdomain as the
//! username and a registered public key (looked up in the store at every
//! login, so revocations apply at once); only the `sftp` subsystem is offered.
//! [`run`] races the accept loop against a shutdown future, so tests start it
//! in-process on port 0 and `serve` stops it on SIGINT/SIGTERM. What is offered
//! in the negotiation, and how a failed one is explained, is in `algorithms`;
//! one connection's login and requests in `session` ([`SshSession`]).
//!
//! What one connection or one district may hold is bounded: the front door
//! ([`door`]) orders handshakes per address and, once a connection names a
//! district, counts its logins and failures per address and district; the
//! ledger ([`ledger`]) counts each district's sessions, handles and bytes in
//! flight; each channel runs on a task that never lets russh's loop wait on it
//! ([`channel`]); and a watchdog ends idle, stalled and unreading connections
//! ([`connection`]).

mod algorithms;
pub mod channel;
pub mod connection;
pub mod door;
pub mod host_keys;
pub mod ledger;
mod session;
pub mod sftp;

pub use algorithms::{preferred, ssh_config};
pub use session::SshSession;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection as Db;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::Clock;
use crate::config::Config;
use connection::{Connection, Killable, Verdict};
use door::{Admission, Bucket, FrontDoor, Limits, Refusal};
use ledger::Ledger;

/// What every session shares: configuration, the store, the clock, the front
/// door and the districts' ledger.
pub struct Shared {
    /// Replaced whole by a configuration reload (SIGHUP); sessions read it
    /// when they need a limit, so a reload applies without dropping them.
    config: std::sync::RwLock<Arc<Config>>,
    /// For reads (logins look up keys here; WAL readers never wait for writers).
    pub store: Mutex<Db>,
    /// For recording uploads, which may wait for a running import's commit.
    pub writer: Mutex<Db>,
    pub clock: Arc<dyn Clock>,
    /// Notified when an upload is published, so the scheduler looks at once.
    pub uploaded: Arc<tokio::sync::Notify>,
    pub door: Arc<FrontDoor>,
    pub ledger: Arc<Ledger>,
    /// The daemon's metrics, counted here as logins and uploads happen.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whether [`run`] has its listener bound and is accepting.
    listening: AtomicBool,
    connections: AtomicUsize,
    channels: AtomicUsize,
    /// Connection failures on their way to the store (see [`FailureLog`]).
    failures: FailureLog,
}

/// Why a login was refused. The client never learns which (every refusal
/// looks the same to it); support reads it in the log and `rosterd status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefusal {
    NoSuchDistrict,
    Disabled {
        tenant_id: i64,
    },
    KeyNotRegistered {
        tenant_id: i64,
    },
    KeyRevoked {
        tenant_id: i64,
        at: String,
    },
    /// The key, or every key of the district, may log in only from
    /// addresses this one is not among.
    AddressNotAllowed {
        tenant_id: i64,
        rule: String,
    },
    /// The store could not be read.
    Unavailable,
}

impl LoginRefusal {
    /// The district the username named, if it is one.
    pub fn tenant_id(&self) -> Option<i64> {
        match self {
            Self::Disabled { tenant_id }
            | Self::KeyNotRegistered { tenant_id }
            | Self::KeyRevoked { tenant_id, .. }
            | Self::AddressNotAllowed { tenant_id, .. } => Some(*tenant_id),
            Self::NoSuchDistrict | Self::Unavailable => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::NoSuchDistrict => {
                "no district has this name (the SSH username must be the district's subdomain)"
                    .into()
            }
            Self::Disabled { .. } => "the district is disabled (`rosterd tenant enable`)".into(),
            Self::KeyNotRegistered { .. } => {
                "the key is not registered for this district (`rosterd key add`)".into()
            }
            Self::KeyRevoked { at, .. } => format!("the key was revoked at {at}"),
            Self::AddressNotAllowed { rule, .. } => {
                format!("this address is not allowed ({rule})")
            }
            Self::Unavailable => "the key lookup failed (see the error above)".into(),
        }
    }

    /// Its reason as the metrics count it.
    pub fn metric(&self) -> crate::metrics::LoginRefusal {
        use crate::metrics::LoginRefusal as M;
        match self {
            Self::NoSuchDistrict => M::UnknownDistrict,
            Self::Disabled { .. } => M::DistrictDisabled,
            Self::KeyNotRegistered { .. } => M::KeyNotRegistered,
            Self::KeyRevoked { .. } => M::KeyRevoked,
            Self::AddressNotAllowed { .. } => M::AddressNotAllowed,
            Self::Unavailable => M::StoreUnavailable,
        }
    }
}

/// What the front door writes to the store: connections that ended without a
/// login, and throttles as they begin and grow.
enum DoorRecord {
    Failure(crate::store::ConnectionFailure),
    Throttle(crate::store::LoginThrottle),
    RefusedUpload(crate::store::RefusedUpload),
}

/// Connection failures and throttles written to the store by one thread of
/// their own, so a session ending never waits for the database; past
/// [`FailureLog::QUEUE`] waiting (a flood), further ones are only logged.
struct FailureLog(std::sync::mpsc::SyncSender<DoorRecord>);

impl FailureLog {
    const QUEUE: usize = 256;

    fn start(database: &std::path::Path) -> anyhow::Result<Self> {
        let conn = crate::store::Store::open(database)?.conn;
        let (tx, rx) = std::sync::mpsc::sync_channel::<DoorRecord>(Self::QUEUE);
        std::thread::Builder::new()
            .name("failure-log".into())
            .spawn(move || {
                for record in rx {
                    let written = match &record {
                        DoorRecord::Failure(f) => crate::store::record_connection_failure(&conn, f),
                        DoorRecord::Throttle(t) => crate::store::record_login_throttle(&conn, t),
                        DoorRecord::RefusedUpload(r) => {
                            crate::store::record_refused_upload(&conn, r)
                        }
                    };
                    if let Err(e) = written {
                        tracing::error!(error = %e, "cannot record a connection failure");
                    }
                }
            })?;
        Ok(Self(tx))
    }

    fn record(&self, record: DoorRecord) {
        if self.0.try_send(record).is_err() {
            tracing::debug!("connection failure not recorded: too many waiting");
        }
    }
}

/// What the server holds right now, for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// Connections past the front door (handshaking, logging in or logged in).
    pub connections: usize,
    /// Channel tasks running.
    pub channels: usize,
    /// Connections holding a login slot, and waiting for one.
    pub logging_in: u32,
    pub waiting: u32,
    /// Logged-in sessions, over all districts.
    pub sessions: u32,
}

impl Shared {
    /// Open the server's two connections to the store named by `config`;
    /// logins and uploads are counted in `metrics`.
    pub fn open(
        config: Config,
        clock: Arc<dyn Clock>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let store = crate::store::Store::open(&config.storage.database)?.conn;
        let writer = crate::store::Store::open(&config.storage.database)?.conn;
        // An import holds the write lock for its whole transaction; an upload
        // arriving meanwhile waits for it rather than failing.
        writer.busy_timeout(Duration::from_secs(300))?;
        let failures = FailureLog::start(&config.storage.database)?;
        Ok(Arc::new(Self {
            config: std::sync::RwLock::new(Arc::new(config)),
            store: Mutex::new(store),
            writer: Mutex::new(writer),
            clock,
            uploaded: Arc::new(tokio::sync::Notify::new()),
            door: FrontDoor::new(),
            ledger: Ledger::new(),
            metrics,
            listening: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            channels: AtomicUsize::new(0),
            failures,
        }))
    }

    /// The id of the district named `subdomain`, if there is one.
    async fn tenant_id_of(self: &Arc<Self>, subdomain: &str) -> Option<i64> {
        match self
            .authorize(subdomain, "", std::net::Ipv4Addr::UNSPECIFIED.into())
            .await
        {
            Ok(id) => Some(id),
            Err(why) => why.tenant_id(),
        }
    }

    /// Record a connection that ended without a login, for `rosterd status`.
    pub fn record_failure(
        &self,
        tenant_id: Option<i64>,
        peer: SocketAddr,
        username: Option<&str>,
        reason: String,
    ) {
        self.failures
            .record(DoorRecord::Failure(crate::store::ConnectionFailure {
                tenant_id,
                at: crate::store::timestamp(self.clock.now()),
                address: peer.ip().to_string(),
                username: username.map(|u| crate::domain::text::echo(u, 64).into_owned()),
                reason,
            }));
    }

    /// Record an upload refused for its name (`name` already made safe to
    /// show), for `rosterd status` and `tenant show`.
    pub fn record_refused_upload(&self, tenant_id: i64, address: &str, name: &str, action: &str) {
        self.failures
            .record(DoorRecord::RefusedUpload(crate::store::RefusedUpload {
                tenant_id,
                at: crate::store::timestamp(self.clock.now()),
                // The address without the port, as connection failures keep it.
                address: address
                    .parse::<SocketAddr>()
                    .map_or_else(|_| address.to_owned(), |a| a.ip().to_string()),
                name: name.to_owned(),
                action: action.to_owned(),
            }));
    }

    /// A bucket's throttle began or grew: warn when it begins (with what was
    /// tried), and keep it for `rosterd status` and `tenant show`.
    fn record_throttle(&self, bucket: Bucket, name: &str, throttled: &door::Throttled) {
        let t = &throttled.throttle;
        // The throttle's instants as the clock's times: it began at or
        // before now and lasts past it.
        let (now, wall_now) = (Instant::now().into_std(), self.clock.now());
        let span = |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or_default();
        let since =
            crate::store::timestamp(wall_now - span(now.saturating_duration_since(t.since)));
        let until =
            crate::store::timestamp(wall_now + span(t.until.saturating_duration_since(now)));
        let window = self.config().server.auth_failure_window_seconds;
        let ip = bucket.ip();
        let tried = t.tried.join(", ");
        if throttled.began {
            match bucket {
                Bucket::District(..) => tracing::warn!(
                    district = %crate::domain::text::echo(name, 64),
                    address = %ip,
                    failures = t.failures,
                    window_seconds = window,
                    keys = %tried,
                    until = %until,
                    "district throttled after repeated failed logins from this address: its refused logins from there are answered one a second until then; a registered key still logs in at once"
                ),
                Bucket::Unnamed(_) => tracing::warn!(
                    address = %ip,
                    failures = t.failures,
                    window_seconds = window,
                    usernames = %tried,
                    until = %until,
                    "address throttled after repeated failed logins naming no district: every refused login from it is answered one a second until then; registered keys still log in at once"
                ),
            }
        }
        self.failures
            .record(DoorRecord::Throttle(crate::store::LoginThrottle {
                tenant_id: bucket.tenant_id(),
                address: ip.to_string(),
                failures: i64::from(t.failures),
                window_seconds: window as i64,
                tried,
                since,
                until,
            }));
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Apply a reloaded configuration's limits to new checks and sessions.
    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    fn limits(&self) -> Limits {
        Limits::from_config(&self.config().server)
    }

    /// What the server holds now.
    pub fn live(&self) -> Live {
        let (logging_in, waiting) = self.door.load();
        Live {
            connections: self.connections.load(Ordering::Acquire),
            channels: self.channels.load(Ordering::Acquire),
            logging_in,
            waiting,
            sessions: self.ledger.sessions(),
        }
    }

    /// Whether the SSH listener is bound and accepting (false before
    /// [`run`] starts and once it stops taking connections).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// The district id if `subdomain` is an enabled district holding the active key
    /// `fingerprint`, else why not.
    async fn authorize(
        self: &Arc<Self>,
        subdomain: &str,
        fingerprint: &str,
        from: std::net::IpAddr,
    ) -> Result<i64, LoginRefusal> {
        let shared = self.clone();
        let (sub, fp) = (subdomain.to_owned(), fingerprint.to_owned());
        let looked = tokio::task::spawn_blocking(move || {
            let conn = shared.store.lock().unwrap_or_else(|e| e.into_inner());
            let Some(crate::store::LoginKey {
                tenant_id,
                disabled,
                allow_from,
                key,
            }) = crate::store::login_key(&conn, &sub, &fp)?
            else {
                return Ok(Err(LoginRefusal::NoSuchDistrict));
            };
            // A pattern list this address does not pass, if any.
            let outside =
                |list: Option<String>| list.filter(|l| !crate::keys::address_allowed(l, from));
            Ok(match (disabled, key) {
                (true, _) => Err(LoginRefusal::Disabled { tenant_id }),
                (false, None) => Err(LoginRefusal::KeyNotRegistered { tenant_id }),
                (false, Some((Some(at), _))) => Err(LoginRefusal::KeyRevoked { tenant_id, at }),
                (false, Some((None, key_from))) => {
                    if let Some(list) = outside(key_from) {
                        Err(LoginRefusal::AddressNotAllowed {
                            tenant_id,
                            rule: format!("the key may log in only from {list}"),
                        })
                    } else if let Some(list) = outside(allow_from) {
                        Err(LoginRefusal::AddressNotAllowed {
                            tenant_id,
                            rule: format!("the district allows only {list}"),
                        })
                    } else {
                        Ok(tenant_id)
                    }
                }
            })
        })
        .await;
        match looked {
            Ok(Ok(answer)) => answer,
            Ok(Err::<_, rusqlite::Error>(e)) => {
                tracing::error!(error = %e, "key lookup failed");
                Err(LoginRefusal::Unavailable)
            }
            Err(e) => {
                tracing::error!(error = %e, "key lookup failed");
                Err(LoginRefusal::Unavailable)
            }
        }
    }

    /// A logged-in session's hold on the spool folder of district
    /// `tenant_id`, named `subdomain` (see
    /// [`crate::spool::TenantSpool::hold_for_session`]): while it is held,
    /// support cannot rename or delete the district under the session's
    /// uploads. `None` if support is doing so right now, or has just done
    /// so (the district no longer has this name); why is logged.
    async fn hold_spool(
        self: &Arc<Self>,
        tenant_id: i64,
        subdomain: &str,
    ) -> Option<Arc<std::fs::File>> {
        let shared = self.clone();
        let sub = subdomain.to_owned();
        let held = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<std::fs::File>> {
            let spool = crate::spool::TenantSpool::new(&shared.config().storage.spool, &sub);
            let Some(hold) = spool.hold_for_session()? else {
                return Ok(None);
            };
            let conn = shared.store.lock().unwrap_or_else(|e| e.into_inner());
            let named = crate::store::tenant_subdomain(&conn, tenant_id)?;
            Ok((named.as_deref() == Some(sub.as_str())).then_some(hold))
        })
        .await;
        match held.map_err(anyhow::Error::from).and_then(|held| held) {
            Ok(Some(hold)) => Some(Arc::new(hold)),
            Ok(None) => {
                tracing::warn!(
                    district = subdomain,
                    "login refused: support is renaming or deleting this district right now"
                );
                None
            }
            Err(e) => {
                tracing::error!(district = subdomain, error = %format!("{e:#}"), "login refused: cannot hold the district's spool folder");
                None
            }
        }
    }
}

/// SSH messages queued per channel on their way to its task.
const CHANNEL_BUFFER: usize = 16;

/// How long a connection being closed may take to say goodbye before its
/// socket is failed, and then to end.
const GOODBYE: Duration = Duration::from_secs(2);
const AFTER_KILL: Duration = Duration::from_secs(5);

/// File descriptors the configured limits may need at once: a socket per
/// waiting connection, a socket and a lock file per session, a file per open
/// handle of every session's district, and some for the store, the listener
/// and logs.
pub fn descriptors_needed(config: &Config) -> u64 {
    let s = &config.server;
    // Per session: its socket, its hold on the district's spool folder
    // (`.sessions.lock`), and its district's open handles at most.
    u64::from(s.max_queued_logins)
        + u64::from(s.max_sessions) * (2 + u64::from(s.max_open_handles_per_tenant))
        + 64
}

/// Raise this process's limit on open files to its hard limit (the usual soft
/// limit, 1024, is below what the default limits may use), and warn if even
/// the hard limit is lower than [`descriptors_needed`]. Returns the limit in
/// force.
pub fn raise_open_file_limit(config: &Config) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                limit = wanted;
            }
        }
        limit.rlim_cur
    };
    let needed = descriptors_needed(config);
    if raised < needed {
        tracing::warn!(
            limit = raised,
            needed,
            "the open-file limit is below what server.max_queued_logins, max_sessions and max_open_handles_per_tenant may use; raise it (LimitNOFILE= in the systemd unit, ulimit -n) or lower those"
        );
    }
    raised
}

/// Serve SSH on `listener` until `shutdown` completes. Then no new connection
/// is accepted; running sessions get `grace` to finish their transfers before
/// they are closed.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    ssh: Arc<russh::server::Config>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    // Fixed for the life of the listener: a reload does not resize it.
    let max_sessions = shared.config().server.max_sessions;
    let slots = Arc::new(Semaphore::new(max_sessions as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    let mut tidy = tokio::time::interval(Duration::from_secs(60));
    tokio::pin!(shutdown);
    shared.listening.store(true, Ordering::Release);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Decided before any handshake work.
                let admission = match shared.door.admit(peer.ip(), shared.limits()) {
                    Ok(a) => a,
                    // The door has said so in the log.
                    Err(Refusal::QueueFull) => continue,
                };
                // District and key are filled in at login; every event of the
                // session, SFTP included, carries them.
                let span = tracing::info_span!(
                    "ssh",
                    address = %peer,
                    district = tracing::field::Empty,
                    key = tracing::field::Empty
                );
                let connection = serve_connection(
                    stream,
                    peer,
                    admission,
                    slots.clone(),
                    shared.clone(),
                    ssh.clone(),
                    stop_rx.clone(),
                    span.clone(),
                );
                sessions.spawn(connection.instrument(span));
            }
            () = &mut shutdown => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = tidy.tick() => shared.door.tidy(shared.limits()),
        }
    }
    shared.listening.store(false, Ordering::Release);
    drop(listener);
    tracing::info!(
        sessions = sessions.len(),
        grace_seconds = grace.as_secs(),
        "shutting down: no new sessions"
    );
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            sessions = sessions.len(),
            "grace period over; closing the remaining sessions"
        );
        let _ = stop_tx.send(true);
        let closed = tokio::time::timeout(GOODBYE + AFTER_KILL + Duration::from_secs(1), async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if closed.is_err() {
            sessions.abort_all();
        }
    }
    Ok(())
}

/// Completes once `stop` turns true: the server (or the metrics endpoint)
/// is stopping. The guard `wait_for` returns is dropped at once, so a
/// `select!` holding this stays `Send`.
pub(crate) async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One connection from accept to close: wait for its turn to log in, run
/// russh on it, and end it when the watchdog says so.
#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    slots: Arc<Semaphore>,
    shared: Arc<Shared>,
    ssh: Arc<russh::server::Config>,
    mut stop: watch::Receiver<bool>,
    span: tracing::Span,
) {
    let config = shared.config();
    // Waiting for a turn counts against the login grace, version exchange
    // included, so a client that connects and sends nothing is let go.
    let grace = Duration::from_secs(config.server.login_grace_seconds);
    let deadline = Instant::now() + grace;
    let login_slot = match admission {
        Admission::Now(slot) => slot,
        Admission::Queued(waiting) => {
            // A turn that comes with under a quarter of the grace left is
            // not taken: the client could hardly log in in that time, and the
            // slot serves the next waiter better than a banner this one
            // cannot use.
            let last_useful = deadline - grace / 4;
            let turn = tokio::select! {
                slot = waiting.until(last_useful) => slot,
                () = stopping(&mut stop) => None,
            };
            let Some(slot) = turn else {
                tracing::info!(
                    "closed: the login grace ran out while waiting for a turn to log in \
                     (server.max_pending_logins_per_address connections from this address were logging in)"
                );
                return;
            };
            slot
        }
    };
    let session_slot = tokio::select! {
        permit = tokio::time::timeout_at(deadline, slots.acquire_owned()) => permit.ok().and_then(Result::ok),
        () = stopping(&mut stop) => None,
    };
    let Some(_session_slot) = session_slot else {
        tracing::warn!(
            max = config.server.max_sessions,
            "closed: the login grace ran out while waiting for a free session (server.max_sessions)"
        );
        return;
    };
    if Instant::now() >= deadline {
        // Served just as the grace ran out: too late to start a handshake.
        tracing::info!("closed: the login grace ran out while waiting for a turn to log in");
        return;
    }
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Connection::default());
    let stream = Killable::new(stream, conn.kill.clone());
    let handler = SshSession::new(
        shared.clone(),
        peer,
        span,
        login_slot,
        conn.clone(),
        deadline,
    );
    let authenticated = handler.authenticated.clone();
    let handshake = russh::server::run_stream(ssh, stream, handler);
    let running = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(running)) => running,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("no SSH version exchange within the login grace; disconnected");
            return;
        }
    };
    let handle = running.handle();
    tokio::pin!(running);
    let reason = loop {
        let config = shared.config();
        let idle = Duration::from_secs(config.server.idle_timeout_seconds);
        let write = Duration::from_secs(config.server.write_timeout_seconds);
        let mut wake = match conn.verdict(idle, write) {
            Verdict::CheckAt(at) => at,
            Verdict::Idle => break "idle timeout",
            Verdict::NotReading => break "the client stopped reading the server's replies",
        };
        if !authenticated.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                break "login timeout";
            }
            wake = wake.min(deadline);
        }
        // What the connection does changes between checks (a reply starts
        // waiting, a reload shortens a timeout): look at least every second.
        wake = wake.min(Instant::now() + Duration::from_secs(1));
        tokio::select! {
            result = &mut running => {
                if let Err(e) = result {
                    algorithms::session_error(&shared, peer, &e);
                }
                return;
            }
            () = tokio::time::sleep_until(wake) => {}
            () = stopping(&mut stop) => break "server shutting down",
        }
    };
    tracing::info!(reason, "disconnecting");
    let goodbye = async {
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, reason.into(), "en".into())
            .await;
        let _ = (&mut running).await;
    };
    if tokio::time::timeout(GOODBYE, goodbye).await.is_ok() {
        return;
    }
    // russh's loop is stuck (on a socket the client does not read, or waiting
    // for the client to close): fail the socket and stop the channel tasks.
    conn.kill.cancel();
    if tokio::time::timeout(AFTER_KILL, &mut running)
        .await
        .is_err()
    {
        tracing::error!("session did not end after its socket was closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let raised = raise_open_file_limit(&Config::default());
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(raised, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert!(descriptors_needed(&Config::default()) > 1024);
    }
}
