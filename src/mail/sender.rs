//! Delivers the outbox. Each message is leased before it is tried, so two
//! senders (the daemon and a support command) never send it twice; a server
//! that is down or answers 4xx means "try again later", with the wait doubling
//! up to an hour; a 5xx answer to the message itself is recorded and logged,
//! and the message is not retried (a refused login is retried: it is the
//! configuration that is wrong, not the message). Without an SMTP URL every
//! message becomes an `.eml` file.
//!
//! A delivery is written down as a receipt file (`<database>-sent/<id>`) the
//! moment the server accepts it: before the goodbye to the server, before the
//! fsync, and before the outbox row is marked sent (that update may wait
//! seconds for an import holding the database). A crash anywhere after the
//! server's acceptance therefore does not send the message again: the file
//! exists, even if empty, and receipts are applied to the outbox before every
//! pass. What no client can close is the moment between the server storing a
//! message and its answer arriving (RFC 1047): a crash then sends it again,
//! with the same Message-ID.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::address::Envelope;
use rusqlite::Connection;

use super::smtp::{SendError, SmtpServer};

use crate::clock::Clock;
use crate::config::MailConfig;
use crate::metrics::SendOutcome;
use crate::store::timestamp;

/// How long a message is reserved for the sender trying it; after a crash it
/// becomes due again when the lease runs out.
const LEASE: Duration = Duration::from_secs(120);
/// The first retry waits this long, each next one twice as long...
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// ...up to this.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// Messages tried per pass.
const BATCH: i64 = 20;

/// Where messages go.
pub enum Delivery {
    Smtp(SmtpServer),
    /// One `.eml` file per message in this directory.
    Eml(PathBuf),
}

impl Delivery {
    /// The configured way: the SMTP server of `mail.smtp_url`, else `.eml`
    /// files in `mail.outbox_dir`. The error does not repeat a password.
    pub fn from_config(config: &MailConfig) -> anyhow::Result<Self> {
        Ok(match &config.smtp_url {
            Some(url) => Self::Smtp(SmtpServer::from_url(url).map_err(|e| {
                anyhow::anyhow!("mail.smtp_url {} is not usable: {e}", redact(url))
            })?),
            None => Self::Eml(config.outbox_dir.clone()),
        })
    }
}

/// The SMTP envelope's sender: the address of `mail.from`.
pub fn envelope_from(config: &MailConfig) -> anyhow::Result<lettre::Address> {
    Ok(super::Composer::new(&config.from)?.from_address().clone())
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
}

pub struct Mailer {
    /// Replaced whole when the configuration is reloaded.
    route: std::sync::RwLock<Arc<Route>>,
    db: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    /// Delivery receipts not yet recorded in the outbox; `None` for an
    /// in-memory database.
    receipts: Option<PathBuf>,
    /// A delivered message's passwords were overwritten in the database but
    /// may still be in its write-ahead log ([`crate::store::scrub_log`]).
    scrub_pending: std::sync::atomic::AtomicBool,
    metrics: Arc<crate::metrics::Metrics>,
}

struct Route {
    delivery: Delivery,
    envelope_from: lettre::Address,
}

struct Due {
    id: i64,
    name: String,
    recipient: String,
    message: Vec<u8>,
    attempts: u32,
}

enum Failure {
    /// Try again later.
    Transient(String),
    /// The server refused the message for good (5xx) or it cannot be sent.
    Permanent(String),
}

impl Mailer {
    /// A mailer for `config`, using its own connection `db` to the store.
    /// Its attempts are counted in `metrics`.
    pub fn new(
        config: &MailConfig,
        db: Connection,
        clock: Arc<dyn Clock>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Self> {
        let receipts = db
            .path()
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(format!("{p}-sent")));
        Ok(Self {
            route: std::sync::RwLock::new(Arc::new(Self::route(config)?)),
            db: Arc::new(Mutex::new(db)),
            clock,
            receipts,
            scrub_pending: Default::default(),
            metrics,
        })
    }

    /// Deliver by a reloaded configuration's settings from the next message on.
    pub fn reload(&self, config: &MailConfig) -> anyhow::Result<()> {
        let route = Arc::new(Self::route(config)?);
        *self.route.write().unwrap_or_else(|e| e.into_inner()) = route;
        Ok(())
    }

    fn route(config: &MailConfig) -> anyhow::Result<Route> {
        Ok(Route {
            delivery: Delivery::from_config(config)?,
            envelope_from: envelope_from(config)?,
        })
    }

    /// Where messages go, for the start-up banner: the SMTP server (without its
    /// password) or the `.eml` directory.
    pub fn describe(config: &MailConfig) -> String {
        match &config.smtp_url {
            Some(url) => redact(url),
            None => format!("{} (.eml files)", config.outbox_dir.display()),
        }
    }

    /// Try every message that is due now, once.
    pub async fn run_once(&self) -> anyhow::Result<Pass> {
        let now = self.clock.now();
        if let Some(dir) = self.receipts.clone()
            && self.db(move |c| apply_receipts(c, &dir, now)).await?
        {
            self.scrub_pending.store(true, Ordering::SeqCst);
        }
        let due = self.db(move |c| due(c, now)).await?;
        let mut pass = Pass::default();
        for msg in due {
            let id = msg.id;
            let lease_until = now + LEASE;
            let claimed = self
                .db(move |c| crate::store::claim_message(c, id, now, lease_until))
                .await?;
            if claimed != 1 {
                continue; // another sender has it
            }
            let attempts = msg.attempts + 1;
            match self.deliver(&msg).await {
                Ok(receipt) => {
                    tracing::info!(outbox_id = id, recipient = %msg.recipient, delivered_to = %receipt.delivered_to, "email delivered");
                    let dir = self.receipts.clone();
                    let scrubbed = self
                        .db(move |c| {
                            if let Some(dir) = &dir
                                && let Err(e) = receipt.sync(dir)
                            {
                                tracing::warn!(outbox_id = id, error = %e, "cannot flush the delivery receipt to disk; recording the delivery now");
                            }
                            let scrubbed = receipt.record(c)?;
                            if let Some(dir) = &dir {
                                receipt.remove(dir);
                            }
                            Ok(scrubbed)
                        })
                        .await?;
                    if scrubbed {
                        self.scrub_pending.store(true, Ordering::SeqCst);
                    }
                    self.metrics.mail_sent(SendOutcome::Delivered);
                    pass.sent += 1;
                }
                Err(Failure::Transient(why)) => {
                    let wait = retry_wait(attempts);
                    let next = self.clock.now() + wait;
                    tracing::warn!(outbox_id = id, attempts, retry_in_seconds = wait.num_seconds(), error = %why, "email not delivered yet; will retry");
                    self.db(move |c| crate::store::retry_message(c, id, next, &why))
                        .await?;
                    self.metrics.mail_sent(SendOutcome::Deferred);
                    pass.retrying += 1;
                }
                Err(Failure::Permanent(why)) => {
                    tracing::error!(outbox_id = id, recipient = %msg.recipient, error = %why, "email refused for good; not retrying (see `rosterd status`)");
                    let discarded = self
                        .db(move |c| crate::store::fail_message(c, id, &why))
                        .await?;
                    if let Some(key) = discarded {
                        tracing::error!(outbox_id = id, report = %key, "the generated passwords this report carried were discarded with it; support can issue new ones with `rosterd users reset-passwords SUB --run N` (N from the report key)");
                        self.scrub_pending.store(true, Ordering::SeqCst);
                    }
                    self.metrics.mail_sent(SendOutcome::Failed);
                    pass.failed += 1;
                }
            }
        }
        if self.scrub_pending.load(Ordering::SeqCst) {
            // Readers may keep the log from emptying: tried again each pass.
            if self.db(crate::store::scrub_log).await? {
                self.scrub_pending.store(false, Ordering::SeqCst);
                tracing::info!("delivered generated passwords removed from the store's files");
            } else {
                tracing::warn!(
                    "generated passwords delivered but not yet cleared from the store's write-ahead log (readers busy); will retry"
                );
            }
        }
        Ok(pass)
    }

    /// Deliver until `stop` turns true, waking at least every few seconds and
    /// at once when `wake` is notified (something was queued).
    pub async fn run_until_stopped(
        &self,
        wake: Arc<tokio::sync::Notify>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::error!(error = %format!("{e:#}"), "mail pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = wake.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Deliver `msg`; on success its receipt is already written.
    async fn deliver(&self, msg: &Due) -> Result<Receipt, Failure> {
        let route = self.route.read().unwrap_or_else(|e| e.into_inner()).clone();
        match &route.delivery {
            Delivery::Eml(dir) => {
                let dir = dir.clone();
                let name = msg.name.clone();
                let bytes = msg.message.clone();
                let path = tokio::task::spawn_blocking(move || write_durably(&dir, &name, &bytes))
                    .await
                    .map_err(|e| Failure::Transient(e.to_string()))?
                    .map_err(|e| {
                        Failure::Transient(format!("cannot write to the outbox directory: {e}"))
                    })?;
                Ok(self.accepted(msg.id, path))
            }
            Delivery::Smtp(server) => {
                let to = msg.recipient.parse().map_err(|e| {
                    Failure::Permanent(format!(
                        "recipient {:?} is not an address: {e}",
                        msg.recipient
                    ))
                })?;
                let envelope = Envelope::new(Some(route.envelope_from.clone()), vec![to])
                    .map_err(|e| Failure::Permanent(e.to_string()))?;
                match server
                    .send(&envelope, &msg.message, |_| {
                        self.accepted(msg.id, "smtp".into())
                    })
                    .await
                {
                    Ok(receipt) => Ok(receipt),
                    Err(SendError::Session(e)) => Err(Failure::Transient(format!(
                        "cannot start an SMTP session (check mail.smtp_url and the server): {e}"
                    ))),
                    Err(SendError::Message(e)) if e.is_permanent() => Err(Failure::Permanent(
                        format!("SMTP server refused the message: {e}"),
                    )),
                    Err(SendError::Message(e)) => Err(Failure::Transient(format!("SMTP: {e}"))),
                }
            }
        }
    }

    /// The server (or the outbox directory) has taken message `id`: write its
    /// receipt at once, without waiting for the disk, so that from here on a
    /// crash cannot send it again.
    fn accepted(&self, id: i64, delivered_to: String) -> Receipt {
        let receipt = Receipt {
            id,
            sent_at: timestamp(self.clock.now()),
            delivered_to,
        };
        if let Some(dir) = &self.receipts
            && let Err(e) = receipt.write(dir)
        {
            tracing::error!(outbox_id = id, error = %e, "cannot write the delivery receipt; recording the delivery directly");
        }
        receipt
    }

    async fn db<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        let result = tokio::task::spawn_blocking(move || {
            let conn = db.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await?;
        Ok(result?)
    }
}

/// A message the server accepted.
struct Receipt {
    id: i64,
    sent_at: String,
    delivered_to: String,
}

impl Receipt {
    /// Create the receipt file. Its existence is the record; the line inside
    /// (time and destination) is a detail a crash may cut short.
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(self.id.to_string()))?;
        f.write_all(format!("{}\t{}\n", self.sent_at, self.delivered_to).as_bytes())
    }

    /// Make the written receipt survive a power loss too.
    fn sync(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir.join(self.id.to_string()))?.sync_all()?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Mark the message sent; true when it carried generated passwords.
    fn record(&self, conn: &Connection) -> rusqlite::Result<bool> {
        crate::store::mark_sent(conn, self.id, &self.sent_at, &self.delivered_to)
    }

    fn remove(&self, dir: &Path) {
        let _ = std::fs::remove_file(dir.join(self.id.to_string()));
    }
}

/// Record every receipt a stopped sender left (it was killed after the
/// server accepted a message, before the outbox said so).
/// True when one of them carried generated passwords.
fn apply_receipts(conn: &Connection, dir: &Path, now: DateTime<Utc>) -> rusqlite::Result<bool> {
    let mut scrubbed = false;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(false); // none written yet
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.parse::<i64>().ok()) else {
            continue; // not a receipt
        };
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        // A receipt cut short by a crash still means "delivered".
        let receipt = match text.strip_suffix('\n').and_then(|t| t.split_once('\t')) {
            Some((sent_at, delivered_to)) => Receipt {
                id,
                sent_at: sent_at.to_owned(),
                delivered_to: delivered_to.to_owned(),
            },
            None => Receipt {
                id,
                sent_at: timestamp(now),
                delivered_to: "smtp".into(),
            },
        };
        scrubbed |= receipt.record(conn)?;
        tracing::info!(
            outbox_id = id,
            "recorded a delivery the previous run made just before it stopped"
        );
        receipt.remove(dir);
    }
    Ok(scrubbed)
}

fn due(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<Vec<Due>> {
    Ok(crate::store::due_messages(conn, now, BATCH)?
        .into_iter()
        .map(|m| Due {
            name: format!("{:06}-{}-{}.eml", m.id, m.subdomain, m.kind),
            id: m.id,
            recipient: m.recipient,
            message: m.message,
            attempts: m.attempts,
        })
        .collect())
}

/// Write `dir/name` whole or not at all (temporary file, fsync, rename), and
/// make it survive a crash. An `.eml` message has a fixed name, so a crash
/// before its outbox row is marked sent rewrites the same file instead of
/// adding a second one.
pub(super) fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    let path = dir.join(name);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path.to_string_lossy().into_owned())
}

/// How long to wait after the `attempts`-th failed try.
pub fn retry_wait(attempts: u32) -> chrono::Duration {
    let secs = FIRST_RETRY
        .as_secs()
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(16))
        .min(MAX_RETRY.as_secs());
    chrono::Duration::seconds(secs as i64)
}

/// The SMTP URL without its user name and password, for logs and messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_double_up_to_an_hour() {
        let waits: Vec<i64> = (1..=9).map(|n| retry_wait(n).num_seconds()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn smtp_url_secrets_are_redacted() {
        assert_eq!(
            redact("smtps://user:s3cret@mail.example.org:465"),
            "smtps://…@mail.example.org:465"
        );
        assert_eq!(redact("smtp://127.0.0.1:25"), "smtp://127.0.0.1:25");
    }
}
