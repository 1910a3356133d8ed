//! One SSH connection's login and requests ([`SshSession`], russh's
//! handler): it names its district at the first authentication request
//! (counted by the front door from then on), looks each offered key up in the
//! store, refuses passwords, keyboard-interactive and every channel request
//! but `sftp`, and on a login starts the task that serves each channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use russh::keys::HashAlg;
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId};
use tokio::time::Instant;

use super::algorithms::dh_group;
use super::connection::Connection;
use super::door::{self, Bucket, LoginSlot, Pending};
use super::ledger::SessionSlot;
use super::{Shared, channel, sftp};
use crate::metrics::{LoginOutcome, LoginRefusal};
use crate::spool::Sender;

/// A logged-in session's district.
struct Login {
    tenant_id: i64,
    subdomain: String,
    fingerprint: String,
    _slot: SessionSlot,
    /// The session's hold on the district's spool folder, shared with its
    /// SFTP channels (see [`super::Shared::hold_spool`]).
    hold: Arc<std::fs::File>,
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
    pub(super) authenticated: Arc<AtomicBool>,
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
    /// Each reason the connection was refused for, once: counted in the
    /// metrics if it never logs in.
    reasons: Vec<LoginRefusal>,
    /// Its key was the district's, turned away only for now (counted as
    /// busy, not refused).
    busy: bool,
}

/// Refusals one connection keeps for its report; the rest are counted.
const KEPT_REFUSALS: usize = 8;

impl SshSession {
    pub(super) fn new(
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
            reasons: Vec::new(),
            busy: false,
        }
    }

    /// Note that the connection was refused for `reason`.
    fn refused_for(&mut self, reason: LoginRefusal) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// A registered key turned away for now (the district's session limit,
    /// support renaming it).
    fn turn_away(&mut self) -> Auth {
        // Once per connection, however often its client tries again.
        if !self.busy {
            self.busy = true;
            self.shared.metrics.login(LoginOutcome::Busy);
        }
        Auth::reject()
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
                self.refused_for(LoginRefusal::TooManyPending);
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
        reason: LoginRefusal,
    ) -> anyhow::Result<Auth> {
        self.refused = true;
        self.refused_for(reason);
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
                self.refused_for(LoginRefusal::Throttled);
                tokio::time::sleep(door::PACE).await;
                tracing::info!(parent: &self.span, "closed: its refusal's turn in the throttle would come too late");
                anyhow::bail!("a throttled refusal would come too late");
            }
        }
        Ok(Auth::reject())
    }

    /// Refuse a method that is not a public key (a password,
    /// keyboard-interactive), saying which.
    async fn refuse_method(&mut self, user: &str, what: &str) -> anyhow::Result<Auth> {
        self.conn.touch();
        self.name(user).await?;
        // The district `name` looked up for the bucket.
        let tenant_id = self
            .named
            .as_ref()
            .and_then(|n| n.pending.bucket().tenant_id());
        self.refuse(user, tenant_id, what.into(), None, LoginRefusal::Password)
            .await
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
            let (shared, span, hold) = (shared.clone(), span.clone(), login.hold.clone());
            move || sftp::SftpSession::new(shared, &subdomain, sender, span, hold)
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
        if self.login.is_none() && !self.busy && !self.reasons.is_empty() {
            self.shared.metrics.login(LoginOutcome::Refused);
            for reason in &self.reasons {
                self.shared.metrics.login_refused(*reason);
            }
        }
        if let Some(login) = &self.login {
            tracing::info!(parent: &self.span, district = %login.subdomain, address = %self.peer, "session closed");
        } else if self.refused {
            // One line for the whole connection: every username and key it
            // tried, and why each was refused.
            let tried: Vec<String> = self
                .refusals
                .iter()
                .map(|r| format!("{}: {}", crate::domain::text::echo(&r.user, 64), r.what))
                .collect();
            tracing::warn!(parent: &self.span, address = %self.peer, refused = %tried.join("; "), "login refused");
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
                    why.metric(),
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
                        why.metric(),
                    )
                    .await;
            }
        };
        let max = self.shared.config().server.max_sessions_per_tenant;
        let Some(slot) = self.shared.ledger.session(tenant_id, max) else {
            // Not a failure: the key is the district's, which is only busy.
            // The connection keeps its place in its bucket while it stays.
            tracing::warn!(parent: &self.span, district = user, address = %self.peer, max, "login refused: the tenant's session limit is reached (server.max_sessions_per_tenant)");
            return Ok(self.turn_away());
        };
        // Not a failure either: support is renaming or deleting the district.
        let Some(hold) = self.shared.hold_spool(tenant_id, user).await else {
            return Ok(self.turn_away());
        };
        self.span.record("district", user);
        self.span.record("key", fp.as_str());
        tracing::info!(parent: &self.span, "login");
        self.shared.metrics.login(LoginOutcome::Accepted);
        self.login = Some(Login {
            tenant_id,
            subdomain: user.to_owned(),
            fingerprint: fp,
            _slot: slot,
            hold,
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
        self.refuse_method(user, "a password (only SSH keys are accepted)")
            .await
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        self.refuse_method(user, "keyboard-interactive (only SSH keys are accepted)")
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
