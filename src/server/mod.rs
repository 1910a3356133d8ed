//! The embedded SSH/SFTP server. Districts log in with their subdomain as the
//! username and a registered public key (looked up in the store at every
//! login, so revocations apply at once); only the `sftp` subsystem is offered.
//! [`run`] races the accept loop against a shutdown future, so tests start it
//! in-process on port 0 and `serve` stops it on SIGINT/SIGTERM.
//!
//! What one connection or one district may hold is bounded: the front door
//! ([`door`]) orders handshakes per address and, once a connection names a
//! district, counts its logins and failures per address and district, the ledger ([`ledger`]) counts each
//! district's sessions, handles and bytes in flight, each channel runs on a
//! task that never lets russh's loop wait on it ([`channel`]), and a watchdog
//! ends idle, stalled and unreading connections ([`connection`]).

pub mod channel;
pub mod connection;
pub mod door;
pub mod host_keys;
pub mod ledger;
pub mod sftp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection as Db, OptionalExtension, params};
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::Clock;
use crate::config::Config;
use crate::spool::Sender;
use connection::{Connection, Killable, Verdict};
use door::{Admission, Bucket, FrontDoor, Limits, LoginSlot, Pending, Refusal};
use ledger::{Ledger, SessionSlot};

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
}

/// What the front door writes to the store: connections that ended without a
/// login, and throttles as they begin and grow.
enum DoorRecord {
    Failure(crate::store::ConnectionFailure),
    Throttle(crate::store::LoginThrottle),
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
}

impl Shared {
    /// Open the server's two connections to the store named by `config`.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Self>> {
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

    /// A bucket's throttle began or grew: warn when it begins (with what was
    /// tried), and keep it for `rosterd status` and `tenant show`.
    fn record_throttle(&self, bucket: Bucket, name: &str, throttled: &door::Throttled) {
        let t = &throttled.throttle;
        let now = Instant::now().into_std();
        let wall = |at: std::time::Instant| {
            let (later, by) = if at >= now {
                (true, at - now)
            } else {
                (false, now - at)
            };
            let by = chrono::Duration::from_std(by).unwrap_or_default();
            crate::store::timestamp(if later {
                self.clock.now() + by
            } else {
                self.clock.now() - by
            })
        };
        let (since, until) = (wall(t.since), wall(t.until));
        let window = self.config().server.auth_failure_window_seconds;
        let ip = bucket.ip();
        if throttled.began {
            let tried = t.tried.join(", ");
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
                tried: t.tried.join(", "),
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
        }
    }

    /// The tenant id if `subdomain` is an enabled tenant holding the active key
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
            let tenant = conn
                .query_row(
                    "SELECT id, disabled, allow_from FROM tenants WHERE subdomain = ?1",
                    [&sub],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, bool>(1)?,
                            r.get::<_, Option<String>>(2)?,
                        ))
                    },
                )
                .optional()?;
            let Some((tenant_id, disabled, allow_from)) = tenant else {
                return Ok(Err(LoginRefusal::NoSuchDistrict));
            };
            // The key's rows for this district: an active one wins over
            // revoked ones of the same key.
            let key: Option<(Option<String>, Option<String>)> = conn
                .query_row(
                    "SELECT revoked_at, from_patterns FROM ssh_keys WHERE tenant_id = ?1 AND fingerprint = ?2
                     ORDER BY revoked_at IS NOT NULL, revoked_at DESC LIMIT 1",
                    params![tenant_id, fp],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            // A pattern list this address does not pass, if any.
            let outside = |list: Option<String>| {
                list.filter(|l| !crate::keys::address_allowed(l, from))
            };
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
}

/// SSH messages queued per channel on their way to its task.
const CHANNEL_BUFFER: usize = 16;

/// How long a connection being closed may take to say goodbye before its
/// socket is failed, and then to end.
const GOODBYE: Duration = Duration::from_secs(2);
const AFTER_KILL: Duration = Duration::from_secs(5);

/// Key exchanges offered: everything OpenSSH 9.x's sshd offers by default
/// that russh implements, in OpenSSH's order (the client's order decides),
/// and the markers for RFC 8308 extensions and OpenSSH's strict key exchange
/// (the Terrapin fix, on only while its marker is listed).
const KEX: &[russh::kex::Name] = &[
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::ECDH_SHA2_NISTP256,
    russh::kex::ECDH_SHA2_NISTP384,
    russh::kex::ECDH_SHA2_NISTP521,
    russh::kex::DH_GEX_SHA256,
    russh::kex::DH_G16_SHA512,
    russh::kex::DH_G18_SHA512,
    russh::kex::DH_G14_SHA256,
    russh::kex::EXTENSION_SUPPORT_AS_SERVER,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];
/// Host-key and user-key signature algorithms (also sent as
/// `server-sig-algs`); a host-key algorithm is offered only with its key.
const KEYS: &[russh::keys::Algorithm] = &[
    russh::keys::Algorithm::Ed25519,
    russh::keys::Algorithm::Ecdsa {
        curve: russh::keys::EcdsaCurve::NistP256,
    },
    russh::keys::Algorithm::Ecdsa {
        curve: russh::keys::EcdsaCurve::NistP384,
    },
    russh::keys::Algorithm::Ecdsa {
        curve: russh::keys::EcdsaCurve::NistP521,
    },
    russh::keys::Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    russh::keys::Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_128_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_GCM,
];
const MACS: &[russh::mac::Name] = &[
    russh::mac::HMAC_SHA256_ETM,
    russh::mac::HMAC_SHA512_ETM,
    russh::mac::HMAC_SHA256,
    russh::mac::HMAC_SHA512,
];

/// What `server.legacy_algorithms` adds: the weak algorithms OpenSSH has
/// turned off, last in each list.
const LEGACY_KEX: &[russh::kex::Name] = &[russh::kex::DH_G14_SHA1];
const LEGACY_KEYS: &[russh::keys::Algorithm] = &[russh::keys::Algorithm::Rsa { hash: None }];
const LEGACY_MACS: &[russh::mac::Name] = &[russh::mac::HMAC_SHA1_ETM, russh::mac::HMAC_SHA1];

/// The algorithms offered, with or without the legacy ones.
pub fn preferred(legacy: bool) -> russh::Preferred {
    use std::borrow::Cow;
    fn with<T: Clone>(base: &'static [T], extra: &'static [T], legacy: bool) -> Cow<'static, [T]> {
        if legacy {
            Cow::Owned(base.iter().chain(extra).cloned().collect())
        } else {
            Cow::Borrowed(base)
        }
    }
    russh::Preferred {
        kex: with(KEX, LEGACY_KEX, legacy),
        key: with(KEYS, LEGACY_KEYS, legacy),
        host_key_certificates: Cow::Borrowed(&[]),
        cipher: Cow::Borrowed(CIPHERS),
        mac: with(MACS, LEGACY_MACS, legacy),
        compression: Cow::Borrowed(&[russh::compression::NONE]),
    }
}

/// The russh configuration: the host keys, the algorithms above, public-key
/// authentication only, constant rejection time.
pub fn ssh_config(config: &Config, host_keys: Vec<PrivateKey>) -> Arc<russh::server::Config> {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    Arc::new(russh::server::Config {
        methods,
        keys: host_keys,
        preferred: preferred(config.server.legacy_algorithms),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::from_secs(0)),
        // Only a backstop: the watchdog in `serve_connection` applies the idle
        // and write timeouts, also while russh's loop is waiting.
        inactivity_timeout: Some(Duration::from_secs(
            config.server.idle_timeout_seconds.saturating_mul(2),
        )),
        max_auth_attempts: 6,
        // Large windows and packets keep bulk uploads moving on fast links.
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65535,
        // What a channel may hold between the network and its task: russh
        // widens the window as data arrives, so this queue (not the window)
        // is what stops reading the socket when the disk falls behind. Each
        // message is at most one packet, so a channel holds at most about
        // 1 MiB here (russh's default of 100 allows 6 MiB).
        channel_buffer_size: CHANNEL_BUFFER,
        nodelay: true,
        ..Default::default()
    })
}

/// File descriptors the configured limits may need at once: a socket per
/// waiting connection and per session, a file per open handle of every
/// session's district, and some for the store, the listener and logs.
pub fn descriptors_needed(config: &Config) -> u64 {
    let s = &config.server;
    u64::from(s.max_queued_logins)
        + u64::from(s.max_sessions) * (1 + u64::from(s.max_open_handles_per_tenant))
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
                // Tenant and key are filled in at login; every event of the
                // session, SFTP included, carries them.
                let span = tracing::info_span!(
                    "ssh",
                    %peer,
                    tenant = tracing::field::Empty,
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

/// Completes once the server is stopping.
async fn stopping(stop: &mut watch::Receiver<bool>) {
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
                    session_error(&shared, peer, &e);
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

/// A logged-in session's district.
struct Login {
    tenant_id: i64,
    subdomain: String,
    fingerprint: String,
    _slot: SessionSlot,
}

/// What a connection named at its first authentication request, and its
/// place in that bucket until it logs in or ends.
struct Named {
    user: String,
    pending: Pending,
}

/// One credential refused on a connection: the username, its district, what
/// was offered and why it was refused, and the key's fingerprint if any.
struct Refused {
    user: String,
    tenant_id: Option<i64>,
    what: String,
    fingerprint: Option<String>,
}

/// One SSH connection.
pub struct SshSession {
    shared: Arc<Shared>,
    peer: SocketAddr,
    conn: Arc<Connection>,
    /// Set once a login succeeded (the login deadline no longer applies).
    authenticated: Arc<AtomicBool>,
    login: Option<Login>,
    span: tracing::Span,
    /// Given back at the first authentication request: from then on the
    /// connection counts against what it named ([`Named`]).
    login_slot: LoginSlot,
    named: Option<Named>,
    /// When the connection must have logged in (the login grace).
    deadline: Instant,
    /// A credential was refused: if the connection never logs in, it counts
    /// as one failed login of its bucket (however many keys it offered).
    refused: bool,
    /// What was refused, for the log and `rosterd status` if the connection
    /// never logs in: the first few.
    refusals: Vec<Refused>,
}

/// Refusals one connection keeps for its report; the rest are counted.
const KEPT_REFUSALS: usize = 8;

impl SshSession {
    fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        span: tracing::Span,
        login_slot: LoginSlot,
        conn: Arc<Connection>,
        deadline: Instant,
    ) -> Self {
        shared.connections.fetch_add(1, Ordering::AcqRel);
        Self {
            shared,
            peer,
            conn,
            span,
            login_slot,
            named: None,
            deadline,
            authenticated: Arc::new(AtomicBool::new(false)),
            login: None,
            refused: false,
            refusals: Vec::new(),
        }
    }

    /// Count the connection against what `user` names, at its first
    /// authentication request: its address slot passes to the next waiting
    /// connection. An error closes the connection: its bucket already has as
    /// many connections not logged in as allowed, or it names a second user
    /// (as OpenSSH's sshd, which refuses a change of username).
    async fn name(&mut self, user: &str) -> anyhow::Result<()> {
        if let Some(named) = &self.named {
            if named.user == user {
                return Ok(());
            }
            tracing::info!(parent: &self.span, "closed: a second username on one connection");
            anyhow::bail!("a second username on one connection");
        }
        let ip = self.peer.ip();
        let bucket = match self.shared.tenant_id_of(user).await {
            Some(id) => Bucket::District(ip, id),
            None => Bucket::Unnamed(ip),
        };
        self.login_slot.release();
        let limits = self.shared.limits();
        let pending = match self.shared.door.name(bucket, limits) {
            Ok(pending) => pending,
            // The door has warned. Closed after the constant time of a
            // refusal, so a full bucket is no quicker to try than a refusal.
            Err(_) => {
                tokio::time::sleep(door::PACE).await;
                anyhow::bail!("too many connections not logged in");
            }
        };
        self.named = Some(Named {
            user: user.to_owned(),
            pending,
        });
        Ok(())
    }

    /// Refuse a credential, noting what and why for the connection's report.
    /// While the connection's bucket (or its address's unnamed logins) is
    /// throttled, the refusal waits its turn; one whose turn would come after
    /// the login grace closes the connection instead.
    async fn refuse(
        &mut self,
        user: &str,
        tenant_id: Option<i64>,
        what: String,
        fingerprint: Option<String>,
    ) -> anyhow::Result<Auth> {
        self.refused = true;
        if self.refusals.len() < KEPT_REFUSALS {
            self.refusals.push(Refused {
                user: user.to_owned(),
                tenant_id,
                what,
                fingerprint,
            });
        }
        let turn = match &self.named {
            Some(n) => self.shared.door.refusal_turn(
                n.pending.bucket(),
                self.deadline.into_std(),
                self.shared.limits(),
            ),
            None => door::Turn::Now,
        };
        match turn {
            door::Turn::Now => {}
            door::Turn::At(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
            door::Turn::TooLate => {
                tokio::time::sleep(door::PACE).await;
                tracing::info!(parent: &self.span, "closed: its refusal's turn in the throttle would come too late");
                anyhow::bail!("a throttled refusal would come too late");
            }
        }
        Ok(Auth::reject())
    }

    /// Start the task that serves a newly opened channel.
    fn spawn_channel(&self, channel: Channel<Msg>, login: &Login) {
        let shared = self.shared.clone();
        let sender = Sender {
            tenant_id: login.tenant_id,
            remote_addr: self.peer.to_string(),
            key_fingerprint: login.fingerprint.clone(),
        };
        let subdomain = login.subdomain.clone();
        let span = self.span.clone();
        let sftp = {
            let (shared, span) = (shared.clone(), span.clone());
            move || sftp::SftpSession::new(shared, &subdomain, sender, span)
        };
        let conn = self.conn.clone();
        let id = channel.id();
        shared.channels.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            channel::run(channel, conn.clone(), sftp, span).await;
            conn.channel_ended(id);
            shared.channels.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::AcqRel);
        if let Some(login) = &self.login {
            tracing::info!(parent: &self.span, tenant = %login.subdomain, peer = %self.peer, "session closed");
        } else if self.refused {
            // One line for the whole connection: every username and key it
            // tried, and why each was refused.
            let tried: Vec<String> = self
                .refusals
                .iter()
                .map(|r| format!("{}: {}", crate::domain::text::echo(&r.user, 64), r.what))
                .collect();
            tracing::warn!(parent: &self.span, peer = %self.peer, refused = %tried.join("; "), "login refused");
            let mut recorded: Vec<(&str, Option<i64>)> = Vec::new();
            for r in &self.refusals {
                // One record per username the connection tried.
                if recorded.contains(&(r.user.as_str(), r.tenant_id)) {
                    continue;
                }
                recorded.push((&r.user, r.tenant_id));
                self.shared.record_failure(
                    r.tenant_id,
                    self.peer,
                    Some(&r.user),
                    format!("login refused: {}", r.what),
                );
            }
            if let Some(named) = &self.named {
                let bucket = named.pending.bucket();
                // What a throttle shows support: the keys a district's
                // clients tried, or the names tried on an address.
                let mut tried: Vec<String> = Vec::new();
                for r in &self.refusals {
                    let what = match bucket {
                        Bucket::District(..) => r.fingerprint.clone(),
                        Bucket::Unnamed(_) => {
                            Some(crate::domain::text::echo(&r.user, 64).into_owned())
                        }
                    };
                    if let Some(what) = what.filter(|w| !tried.contains(w)) {
                        tried.push(what);
                    }
                }
                if let Some(throttled) =
                    self.shared
                        .door
                        .record_failure(bucket, &tried, self.shared.limits())
                {
                    self.shared.record_throttle(bucket, &named.user, &throttled);
                }
            }
        }
    }
}

impl russh::server::Handler for SshSession {
    type Error = anyhow::Error;

    /// The first request of most clients (OpenSSH, paramiko): it names the
    /// user, so the connection is counted against that district from here.
    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.conn.touch();
        self.name(user).await?;
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.conn.touch();
        self.name(user).await?;
        let fp = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
        match self.shared.authorize(user, &fp, self.peer.ip()).await {
            Ok(_) => Ok(Auth::Accept),
            // A key that is not ours is a normal probe (clients offer several);
            // it counts only if the connection never logs in.
            Err(why) => {
                let what = format!("{} {}", describe_key(offer.public_key, offer.algorithm), fp);
                tracing::debug!(parent: &self.span, user, key = %what, reason = %why.describe(), "key refused");
                self.refuse(
                    user,
                    why.tenant_id(),
                    format!("{what}: {}", why.describe()),
                    Some(fp),
                )
                .await
            }
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.conn.touch();
        self.name(user).await?;
        let fp = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        let tenant_id = match self.shared.authorize(user, &fp, self.peer.ip()).await {
            Ok(tenant_id) => tenant_id,
            Err(why) => {
                let what = format!("{} {}", describe_key(key.public_key, key.algorithm), fp);
                return self
                    .refuse(
                        user,
                        why.tenant_id(),
                        format!("{what}: {}", why.describe()),
                        Some(fp),
                    )
                    .await;
            }
        };
        let max = self.shared.config().server.max_sessions_per_tenant;
        let Some(slot) = self.shared.ledger.session(tenant_id, max) else {
            // Not a failure: the key is the district's, which is only busy.
            // The connection keeps its place in its bucket while it stays.
            tracing::warn!(parent: &self.span, tenant = user, peer = %self.peer, max, "login refused: the tenant's session limit is reached (server.max_sessions_per_tenant)");
            return Ok(Auth::reject());
        };
        self.span.record("tenant", user);
        self.span.record("key", fp.as_str());
        tracing::info!(parent: &self.span, "login");
        self.login = Some(Login {
            tenant_id,
            subdomain: user.to_owned(),
            fingerprint: fp,
            _slot: slot,
        });
        self.authenticated.store(true, Ordering::Release);
        self.login_slot.release();
        if let Some(named) = &mut self.named {
            named.pending.release();
        }
        Ok(Auth::Accept)
    }

    /// RFC 4419 group exchange: the smallest group at least as large as the
    /// client prefers within its minimum and maximum, else the largest within
    /// them (as OpenSSH chooses). russh's own choice ignores the bounds: a
    /// client allowing at most 2048 bits got 4096 and failed.
    async fn lookup_dh_gex_group(
        &mut self,
        params: &russh::client::GexParams,
    ) -> Result<Option<russh::kex::dh::groups::DhGroup>, Self::Error> {
        Ok(dh_group(
            params.min_group_size(),
            params.preferred_group_size(),
            params.max_group_size(),
        ))
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        self.conn.touch();
        self.name(user).await?;
        let tenant_id = self.shared.tenant_id_of(user).await;
        self.refuse(
            user,
            tenant_id,
            "a password (only SSH keys are accepted)".into(),
            None,
        )
        .await
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        self.conn.touch();
        self.name(user).await?;
        let tenant_id = self.shared.tenant_id_of(user).await;
        self.refuse(
            user,
            tenant_id,
            "keyboard-interactive (only SSH keys are accepted)".into(),
            None,
        )
        .await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.conn.touch();
        let Some(login) = &self.login else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let max = self.shared.config().server.max_channels_per_connection;
        if !self.conn.open_channel(channel.id(), max) {
            tracing::info!(parent: &self.span, max, "channel refused: this connection has as many open as allowed (server.max_channels_per_connection)");
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        self.spawn_channel(channel, login);
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.conn.touch();
        self.conn.channel_ended(channel);
        Ok(())
    }

    async fn data(
        &mut self,
        _channel: ChannelId,
        _data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The channel's task has the data; this only says the client is active.
        self.conn.touch();
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.conn.touch();
        // The channel's task starts SFTP on seeing this same request, by the
        // same rule: the first subsystem request of the channel, named sftp.
        if self.conn.start_subsystem(channel, name) {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // No shell and no commands: SFTP only (scp runs over SFTP since OpenSSH 9).
        refuse(channel, session)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(channel, session)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(channel, session)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(channel, session)
    }

    /// `SendEnv` (OpenSSH sends `LANG` and `LC_*` by default): refused, and
    /// the channel carries on, as with OpenSSH's sshd without `AcceptEnv`.
    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(channel, session)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(channel, session)
    }
}

/// Answer a channel request rosterd does not support with a failure (sent
/// only if the client asked for a reply).
fn refuse(channel: ChannelId, session: &mut Session) -> Result<(), anyhow::Error> {
    session.channel_failure(channel)?;
    Ok(())
}

/// Log how a session failed. A failed algorithm negotiation is a district's
/// job that cannot connect at all: warned with everything the client offered
/// and which list did not match, and recorded for `rosterd status` (no
/// district is known yet at that point).
fn session_error(shared: &Shared, peer: SocketAddr, e: &anyhow::Error) {
    match e.downcast_ref::<russh::Error>() {
        Some(russh::Error::NoCommonAlgo {
            kind,
            ours,
            theirs,
            offered,
        }) => {
            let what = match format!("{kind:?}").as_str() {
                "Kex" => "key-exchange",
                "Key" => "host-key",
                "Cipher" => "cipher",
                "Mac" => "MAC",
                _ => "compression",
            };
            let offered = match offered {
                Some(offer) => describe_offer(offer),
                None => format!("{what} {}", offer_list(theirs)),
            };
            let reason = format!(
                "no {what} algorithm in common: the client offered {offered}; rosterd offers {what} {}{}",
                offer_list(ours),
                if shared.config().server.legacy_algorithms {
                    ""
                } else {
                    " (server.legacy_algorithms adds OpenSSH's retired ones)"
                }
            );
            tracing::warn!(%peer, reason = %reason, "SSH negotiation failed");
            shared.record_failure(None, peer, None, reason);
        }
        _ => tracing::debug!(error = %e, "session ended with an error"),
    }
}

/// The most of one name-list of a client's offer that is logged: a hostile
/// client can send lists of 16 KiB each.
const OFFER_LIST_CHARS: usize = 512;

/// A name-list as the log shows it: comma-separated, cut (and marked as
/// cut) at [`OFFER_LIST_CHARS`], control characters escaped.
fn offer_list(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".to_owned();
    }
    crate::domain::text::echo(&names.join(","), OFFER_LIST_CHARS).into_owned()
}

/// What a client's KEXINIT offered: `key-exchange a,b; host-key c; cipher
/// d; MAC e; compression f`, a server-to-client list only where it differs
/// from the client-to-server one.
fn describe_offer(offer: &russh::KexInitOffer) -> String {
    let both = |c2s: &[String], s2c: &[String]| {
        let mut out = offer_list(c2s);
        if s2c != c2s {
            out.push_str(&format!(" (server-to-client {})", offer_list(s2c)));
        }
        out
    };
    format!(
        "key-exchange {}; host-key {}; cipher {}; MAC {}; compression {}",
        offer_list(&offer.kex),
        offer_list(&offer.host_key),
        both(
            &offer.cipher_client_to_server,
            &offer.cipher_server_to_client
        ),
        both(&offer.mac_client_to_server, &offer.mac_server_to_client),
        both(
            &offer.compression_client_to_server,
            &offer.compression_server_to_client
        ),
    )
}

/// A key as the log shows it: `RSA 2048 (rsa-sha2-512)`, `ED25519`.
fn describe_key(key: &russh::keys::PublicKey, signature: &russh::keys::Algorithm) -> String {
    let mut out = match crate::keys::kind_and_bits(key) {
        Some((kind, bits)) => format!("{kind} {bits}"),
        None => key.algorithm().to_string(),
    };
    let sig = signature.to_string();
    if sig != key.algorithm().to_string() {
        out.push_str(&format!(" ({sig})"));
    }
    out
}

/// The DH group for a group-exchange request (min, preferred, max bits).
fn dh_group(min: usize, preferred: usize, max: usize) -> Option<russh::kex::dh::groups::DhGroup> {
    use russh::kex::dh::groups::{DH_GROUP14, DH_GROUP15, DH_GROUP16, DH_GROUP17, DH_GROUP18};
    let mut fits: Vec<_> = [DH_GROUP14, DH_GROUP15, DH_GROUP16, DH_GROUP17, DH_GROUP18]
        .into_iter()
        .filter(|g| (min..=max).contains(&g.bit_size()))
        .collect();
    match fits.iter().position(|g| g.bit_size() >= preferred) {
        Some(i) => Some(fits.swap_remove(i)),
        None => fits.pop(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_negotiation_names_the_whole_offer_each_list_capped() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let offer = russh::KexInitOffer {
            kex: (0..200).map(|i| format!("kex{i}@example.org")).collect(),
            host_key: names(&["ssh-rsa"]),
            cipher_client_to_server: names(&["aes128-cbc", "3des-cbc"]),
            cipher_server_to_client: names(&["aes128-cbc", "3des-cbc"]),
            mac_client_to_server: names(&["hmac-md5"]),
            mac_server_to_client: names(&["hmac-sha1\n"]),
            compression_client_to_server: names(&["none"]),
            compression_server_to_client: names(&["none"]),
        };
        let text = describe_offer(&offer);
        assert!(
            text.starts_with("key-exchange kex0@example.org,kex1@"),
            "{text}"
        );
        assert!(text.contains("… [cut: "), "{text}");
        assert!(
            text.ends_with(
                "; host-key ssh-rsa; cipher aes128-cbc,3des-cbc; \
                 MAC hmac-md5 (server-to-client hmac-sha1\\n); compression none"
            ),
            "{text}"
        );
        assert!(text.chars().count() < OFFER_LIST_CHARS + 200, "{text}");
        assert_eq!(offer_list(&[]), "(none)");
    }

    #[test]
    fn group_exchange_honours_the_clients_bounds() {
        let bits = |min, n, max| dh_group(min, n, max).map(|g| g.bit_size());
        assert_eq!(bits(1024, 2048, 2048), Some(2048)); // JSch: at most 2048
        assert_eq!(bits(2048, 2048, 2048), Some(2048));
        assert_eq!(bits(2048, 3072, 8192), Some(3072));
        assert_eq!(bits(2048, 8192, 8192), Some(8192)); // OpenSSH's request
        assert_eq!(bits(2048, 7000, 8192), Some(8192));
        assert_eq!(bits(3000, 4000, 5000), Some(4096));
        assert_eq!(bits(2048, 9000, 9000), Some(8192));
        assert_eq!(bits(9000, 9000, 9500), None);
        assert_eq!(bits(1024, 1024, 1536), None); // nothing this weak is offered
    }

    #[test]
    fn legacy_algorithms_are_off_unless_switched_on() {
        let names = |p: &russh::Preferred| {
            let mut v: Vec<String> = p.kex.iter().map(|k| k.as_ref().to_string()).collect();
            v.extend(p.mac.iter().map(|m| m.as_ref().to_string()));
            v.extend(p.key.iter().map(|k| k.to_string()));
            v
        };
        let modern = names(&preferred(false));
        for weak in [
            "diffie-hellman-group14-sha1",
            "hmac-sha1",
            "hmac-sha1-etm@openssh.com",
            "ssh-rsa",
        ] {
            assert!(
                !modern.iter().any(|n| n == weak),
                "{weak} offered by default"
            );
        }
        for wanted in [
            "ecdh-sha2-nistp256",
            "curve25519-sha256",
            "diffie-hellman-group-exchange-sha256",
            "rsa-sha2-512",
            "kex-strict-s-v00@openssh.com",
        ] {
            assert!(modern.iter().any(|n| n == wanted), "{wanted} missing");
        }
        let legacy = names(&preferred(true));
        for weak in ["diffie-hellman-group14-sha1", "hmac-sha1", "ssh-rsa"] {
            assert!(
                legacy.iter().any(|n| n == weak),
                "{weak} not offered with the switch"
            );
        }
    }

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
