//! The embedded SSH/SFTP server. Districts log in with their subdomain as the
//! username and a registered public key (looked up in the store at every
//! login, so revocations apply at once); only the `sftp` subsystem is offered.
//! [`run`] races the accept loop against a shutdown future, so tests start it
//! in-process on port 0 and `serve` stops it on SIGINT/SIGTERM.

pub mod sftp;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::clock::Clock;
use crate::config::Config;
use crate::spool::Sender;

/// A connection counted against its address's pending-login limit until it
/// logs in or ends, whichever comes first.
struct PendingLogin {
    shared: Arc<Shared>,
    ip: IpAddr,
    done: AtomicBool,
}

impl PendingLogin {
    fn finish(&self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            self.shared.end_login(self.ip);
        }
    }
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What every session shares: configuration, the store, the clock and the
/// per-address and per-tenant bookkeeping.
pub struct Shared {
    /// Replaced whole by a configuration reload (SIGHUP); sessions read it
    /// when they need a limit, so a reload applies without dropping them.
    config: std::sync::RwLock<Arc<Config>>,
    /// For reads (logins look up keys here; WAL readers never wait for writers).
    pub store: Mutex<Connection>,
    /// For recording uploads, which may wait for a running import's commit.
    pub writer: Mutex<Connection>,
    pub clock: Arc<dyn Clock>,
    /// Notified when an upload is published, so the scheduler looks at once.
    pub uploaded: Arc<tokio::sync::Notify>,
    throttle: Mutex<HashMap<IpAddr, Failures>>,
    /// Connections per address that have not logged in yet.
    pending: Mutex<HashMap<IpAddr, u32>>,
    tenant_sessions: Mutex<HashMap<i64, u32>>,
}

#[derive(Default)]
struct Failures {
    recent: Vec<Instant>,
    banned_until: Option<Instant>,
}

impl Shared {
    /// Open the server's two connections to the store named by `config`.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Self>> {
        let store = crate::store::Store::open(&config.storage.database)?.conn;
        let writer = crate::store::Store::open(&config.storage.database)?.conn;
        // An import holds the write lock for its whole transaction; an upload
        // arriving meanwhile waits for it rather than failing.
        writer.busy_timeout(Duration::from_secs(300))?;
        Ok(Arc::new(Self {
            config: std::sync::RwLock::new(Arc::new(config)),
            store: Mutex::new(store),
            writer: Mutex::new(writer),
            clock,
            uploaded: Arc::new(tokio::sync::Notify::new()),
            throttle: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            tenant_sessions: Mutex::new(HashMap::new()),
        }))
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

    /// Count a connection from `ip` that has yet to log in; `None` if the
    /// address already has as many as allowed.
    fn begin_login(self: &Arc<Self>, ip: IpAddr) -> Option<PendingLogin> {
        let max = self.config().server.max_pending_logins_per_address;
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let n = p.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PendingLogin {
            shared: self.clone(),
            ip,
            done: AtomicBool::new(false),
        })
    }

    fn end_login(&self, ip: IpAddr) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = p.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                p.remove(&ip);
            }
        }
    }

    /// Is the address banned for too many failed logins?
    fn is_banned(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        match t.get(&ip).and_then(|f| f.banned_until) {
            Some(until) if until > now => true,
            Some(_) => {
                t.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Count a failed authentication; ban the address past the limit.
    fn record_failure(&self, ip: IpAddr) {
        let config = self.config();
        let s = &config.server;
        let now = Instant::now();
        let window = Duration::from_secs(s.auth_failure_window_seconds);
        let mut t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the table bounded under a flood from many addresses.
        if t.len() > 100_000 {
            t.retain(|_, f| f.banned_until.is_some_and(|u| u > now));
        }
        let f = t.entry(ip).or_default();
        f.recent.retain(|at| now.duration_since(*at) < window);
        f.recent.push(now);
        if f.recent.len() as u32 >= s.auth_failures_before_ban && f.banned_until.is_none() {
            f.banned_until = Some(now + Duration::from_secs(s.ban_seconds));
            tracing::warn!(%ip, failures = f.recent.len(), ban_seconds = s.ban_seconds, "address banned after repeated failed logins");
        }
    }

    /// Take a session slot for the tenant, if it has one free.
    fn enter_tenant(&self, tenant_id: i64) -> bool {
        let mut m = self
            .tenant_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = m.entry(tenant_id).or_insert(0);
        if *n >= self.config().server.max_sessions_per_tenant {
            return false;
        }
        *n += 1;
        true
    }

    fn leave_tenant(&self, tenant_id: i64) {
        let mut m = self
            .tenant_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&tenant_id) {
            *n = n.saturating_sub(1);
        }
    }

    /// The tenant id if `subdomain` is an enabled tenant holding the active key
    /// `fingerprint`. Every other case is the same `None`.
    async fn authorize(self: &Arc<Self>, subdomain: &str, fingerprint: &str) -> Option<i64> {
        let shared = self.clone();
        let (sub, fp) = (subdomain.to_owned(), fingerprint.to_owned());
        tokio::task::spawn_blocking(move || {
            let conn = shared.store.lock().unwrap_or_else(|e| e.into_inner());
            conn.query_row(
                "SELECT t.id FROM tenants t JOIN ssh_keys k ON k.tenant_id = t.id
                 WHERE t.subdomain = ?1 AND t.disabled = 0 AND k.fingerprint = ?2 AND k.revoked_at IS NULL",
                params![sub, fp],
                |r| r.get::<_, i64>(0),
            )
            .optional()
        })
        .await
        .ok()
        .and_then(|r| r.map_err(|e| tracing::error!(error = %e, "key lookup failed")).ok())
        .flatten()
    }
}

/// SSH messages queued per session on their way to the SFTP handler.
const CHANNEL_BUFFER: usize = 16;

/// The russh configuration: ed25519 host key, public-key authentication only,
/// constant rejection time, idle timeout from the config.
pub fn ssh_config(config: &Config, host_key: PrivateKey) -> Arc<russh::server::Config> {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    Arc::new(russh::server::Config {
        methods,
        keys: vec![host_key],
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::from_secs(0)),
        inactivity_timeout: Some(Duration::from_secs(config.server.idle_timeout_seconds)),
        max_auth_attempts: 6,
        // Large windows and packets keep bulk uploads moving on fast links.
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65535,
        // What a session may hold between the network and the disk: russh
        // widens the window as data arrives, so this queue (not the window)
        // is what stops reading the socket when the disk falls behind. Each
        // message is at most one packet, so a session holds at most about
        // 1 MiB (russh's default of 100 allows 6 MiB, 1.6 GiB over
        // `max_sessions`).
        channel_buffer_size: CHANNEL_BUFFER,
        nodelay: true,
        ..Default::default()
    })
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
                // Checked before any handshake work.
                if shared.is_banned(peer.ip()) {
                    tracing::debug!(%peer, "connection from banned address dropped");
                    continue;
                }
                let Some(pending) = shared.begin_login(peer.ip()) else {
                    tracing::debug!(%peer, "too many connections from this address still logging in; dropped");
                    continue;
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max = max_sessions, "session limit reached; connection refused");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                // Tenant and key are filled in at login; every event of the
                // session, SFTP included, carries them.
                let span = tracing::info_span!(
                    "ssh",
                    %peer,
                    tenant = tracing::field::Empty,
                    key = tracing::field::Empty
                );
                let deadline = tokio::time::Instant::now()
                    + Duration::from_secs(shared.config().server.login_grace_seconds);
                let handler = SshSession::new(shared.clone(), peer, span.clone(), pending);
                let ssh = ssh.clone();
                let mut stop = stop_rx.clone();
                let session = async move {
                    let _permit = permit;
                    let authenticated = handler.authenticated.clone();
                    // The version exchange counts against the login grace too, so
                    // a client that connects and sends nothing is let go.
                    let handshake = russh::server::run_stream(ssh, stream, handler);
                    let Ok(started) = tokio::time::timeout_at(deadline, handshake).await else {
                        tracing::debug!("no SSH handshake within the login grace; disconnected");
                        return;
                    };
                    let running = match started {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::debug!(error = %e, "handshake failed");
                            return;
                        }
                    };
                    let handle = running.handle();
                    let login_deadline = async {
                        tokio::time::sleep_until(deadline).await;
                        if authenticated.load(Ordering::Relaxed) {
                            std::future::pending::<()>().await;
                        }
                    };
                    let reason = tokio::select! {
                        result = running => {
                            if let Err(e) = result {
                                tracing::debug!(error = ?e, "session ended with an error");
                            }
                            return;
                        }
                        () = login_deadline => "login timeout",
                        _ = stop.changed() => "server shutting down",
                    };
                    tracing::info!(reason, "disconnecting");
                    let _ = handle.disconnect(russh::Disconnect::ByApplication, reason.into(), "en".into()).await;
                };
                sessions.spawn(session.instrument(span));
            }
            () = &mut shutdown => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
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
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if closed.is_err() {
            sessions.abort_all();
        }
    }
    Ok(())
}

/// One SSH connection.
pub struct SshSession {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Set once a login succeeded (the login deadline no longer applies).
    authenticated: Arc<AtomicBool>,
    /// Set after authentication: tenant id, subdomain, key fingerprint.
    login: Option<(i64, String, String)>,
    span: tracing::Span,
    /// Released at login: from then on the session counts per tenant instead.
    pending: PendingLogin,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl SshSession {
    fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        span: tracing::Span,
        pending: PendingLogin,
    ) -> Self {
        Self {
            shared,
            peer,
            span,
            pending,
            authenticated: Arc::new(AtomicBool::new(false)),
            login: None,
            channels: HashMap::new(),
        }
    }

    fn reject(&self) -> Auth {
        self.shared.record_failure(self.peer.ip());
        Auth::reject()
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        if let Some((tenant_id, sub, _)) = &self.login {
            self.shared.leave_tenant(*tenant_id);
            tracing::info!(tenant = %sub, peer = %self.peer, "session closed");
        }
    }
}

impl russh::server::Handler for SshSession {
    type Error = anyhow::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
        match self.shared.authorize(user, &fp).await {
            // A key that is not ours is a normal probe (clients offer several);
            // the failure is counted when no key worked, in auth_publickey or by
            // the client giving up.
            Some(_) => Ok(Auth::Accept),
            None => Ok(self.reject()),
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        let Some(tenant_id) = self.shared.authorize(user, &fp).await else {
            tracing::info!(parent: &self.span, user, peer = %self.peer, key = %fp, "login refused");
            return Ok(self.reject());
        };
        if !self.shared.enter_tenant(tenant_id) {
            tracing::warn!(parent: &self.span, tenant = user, peer = %self.peer, "login refused: the tenant's session limit is reached");
            return Ok(Auth::reject());
        }
        self.span.record("tenant", user);
        self.span.record("key", fp.as_str());
        tracing::info!(parent: &self.span, "login");
        self.login = Some((tenant_id, user.to_owned(), fp));
        self.authenticated.store(true, Ordering::Relaxed);
        self.pending.finish();
        Ok(Auth::Accept)
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(self.reject())
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        _user: &str,
        _submethods: &str,
        _response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.reject())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.login.is_some() {
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        } else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // OpenSSH's sftp waits for the server to close after its EOF on `bye`;
        // scp (run over ssh) also wants an exit status, or it reports failure.
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some((tenant_id, sub, fp)), Some(channel)) =
            (self.login.clone(), self.channels.remove(&channel_id))
        else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        if name != "sftp" {
            session.channel_failure(channel_id)?;
            return Ok(());
        }
        session.channel_success(channel_id)?;
        let sender = Sender {
            tenant_id,
            remote_addr: self.peer.to_string(),
            key_fingerprint: fp,
        };
        let sftp = sftp::SftpSession::new(self.shared.clone(), &sub, sender, self.span.clone());
        russh_sftp::server::run(channel.into_stream(), sftp).await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // No shell and no commands: SFTP only (scp runs over SFTP since OpenSSH 9).
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }
}
