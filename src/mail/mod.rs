//! Email to district administrators, through an outbox table. A message is
//! composed ([`compose`]) and queued in the same transaction as the result it
//! reports, so a report is never lost and never queued twice; the [`sender`]
//! delivers queued messages by SMTP (or as `.eml` files) and retries until
//! the server takes them.

pub mod compose;
pub mod sender;
pub mod smtp;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::store::timestamp;

pub use compose::Composer;
pub use sender::{Delivery, Mailer};

/// A composed message, ready to queue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub tenant_id: i64,
    /// Identifies what the message is about (`run:42`, `missing:3:2026-11-21`):
    /// queueing a second message with the same key does nothing.
    pub dedupe_key: String,
    /// `report` or `missing`.
    pub kind: &'static str,
    pub recipient: String,
    pub subject: String,
    /// The whole RFC 5322 message.
    pub message: Vec<u8>,
}

/// Queue `mail` unless a message with its key was queued before. Returns
/// whether it was queued now.
pub fn queue(conn: &Connection, mail: &Outgoing, now: DateTime<Utc>) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT INTO outbox (tenant_id, dedupe_key, kind, recipient, subject, message, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT (dedupe_key) DO NOTHING",
        params![
            mail.tenant_id,
            mail.dedupe_key,
            mail.kind,
            mail.recipient,
            mail.subject,
            mail.message,
            timestamp(now)
        ],
    )?;
    Ok(n == 1)
}

/// Messages waiting for delivery (queued, not yet sent or given up on).
pub fn queue_length(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM outbox WHERE state = 'queued'",
        [],
        |r| r.get(0),
    )
}

/// One message as `rosterd status` and the tests see it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// The outbox, oldest first.
pub fn outbox(conn: &Connection) -> rusqlite::Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare(
        "SELECT id, kind, recipient, state, attempts, last_error FROM outbox ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(OutboxRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            recipient: r.get(2)?,
            state: r.get(3)?,
            attempts: r.get(4)?,
            last_error: r.get(5)?,
        })
    })?;
    rows.collect()
}
