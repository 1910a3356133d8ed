//! The outbox: messages queued in the same transaction as what they report,
//! a copy per recipient, each claimed by a sender with a lease, and marked
//! sent, retried or failed.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::timestamp;
use crate::domain::email::Outgoing;

/// Queue `mail`, one copy per recipient, unless a message with its key was
/// queued for that recipient before. Returns whether any copy was queued now.
pub fn queue_mail(
    conn: &Connection,
    mail: &Outgoing,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO outbox (tenant_id, dedupe_key, kind, recipient, subject, message, created_at, next_attempt_at,
            after_delivery)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
         ON CONFLICT DO NOTHING",
    )?;
    let mut queued = false;
    for recipient in &mail.recipients {
        queued |= stmt.execute(params![
            mail.tenant_id,
            mail.dedupe_key,
            mail.kind,
            recipient,
            mail.subject,
            mail.message,
            timestamp(now),
            mail.after_delivery,
        ])? == 1;
    }
    Ok(queued)
}

/// Whether a message with `dedupe_key` was queued for every one of
/// `recipients` already: composing it again would queue nothing.
pub fn queued_for_all(
    conn: &Connection,
    dedupe_key: &str,
    recipients: &[&str],
) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE dedupe_key = ?1 AND recipient = ?2 COLLATE NOCASE)",
    )?;
    for recipient in recipients {
        if !stmt.query_row(params![dedupe_key, recipient], |r| r.get::<_, bool>(0))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Messages waiting for delivery (queued, not yet sent or given up on).
pub fn queue_length(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM outbox WHERE state = 'queued'",
        [],
        |r| r.get(0),
    )
}

/// One copy of a message (one recipient's) as `rosterd status` and the tests see it.
#[derive(Debug, Clone, serde::Serialize)]
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

/// A queued message whose next attempt is due.
#[derive(Debug, Clone)]
pub struct DueMessage {
    pub id: i64,
    pub kind: String,
    /// Its district's subdomain, or `rosterd` for a message of none.
    pub subdomain: String,
    pub recipient: String,
    pub message: Vec<u8>,
    pub attempts: u32,
}

/// Up to `limit` queued messages due at `now`, oldest first.
pub fn due_messages(
    conn: &Connection,
    now: DateTime<Utc>,
    limit: i64,
) -> rusqlite::Result<Vec<DueMessage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, o.kind, coalesce(t.subdomain, 'rosterd'), o.recipient, o.message, o.attempts
         FROM outbox o LEFT JOIN tenants t ON t.id = o.tenant_id
         WHERE o.state = 'queued' AND o.next_attempt_at <= ?1 ORDER BY o.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![timestamp(now), limit], |r| {
        Ok(DueMessage {
            id: r.get(0)?,
            kind: r.get(1)?,
            subdomain: r.get(2)?,
            recipient: r.get(3)?,
            message: r.get(4)?,
            attempts: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Take message `id` for one attempt, leased until `lease_until`, if it is
/// still queued and due at `now`; returns the rows claimed (0: another
/// sender has it).
pub fn claim_message(
    conn: &Connection,
    id: i64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?3
         WHERE id = ?1 AND state = 'queued' AND next_attempt_at <= ?2",
        params![id, timestamp(now), timestamp(lease_until)],
    )
}

/// Message `id` was not delivered this time: try again at `next`.
pub fn retry_message(
    conn: &Connection,
    id: i64,
    next: DateTime<Utc>,
    why: &str,
) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE outbox SET next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
        params![id, timestamp(next), why],
    )
}

/// Message `id` was refused for good.
///
/// A copy that carried generated passwords keeps none of them either (as in
/// [`mark_sent`]): they are discarded, and its key (`run:N`) is returned so
/// the caller can say how support issues new ones.
pub fn fail_message(conn: &Connection, id: i64, why: &str) -> rusqlite::Result<Option<String>> {
    let carried = carrying_passwords(conn, id)?;
    conn.execute(
        "UPDATE outbox SET state = 'failed', last_error = ?2,
            message = coalesce(after_delivery, message), after_delivery = NULL
         WHERE id = ?1",
        params![id, why],
    )?;
    Ok(carried)
}

/// The key of copy `id` if it still carries generated passwords, with
/// `secure_delete` turned on for this connection first, so the update that
/// drops them (to the message kept after delivery) overwrites their bytes.
fn carrying_passwords(conn: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    let key: Option<String> = conn
        .query_row(
            "SELECT dedupe_key FROM outbox
             WHERE id = ?1 AND after_delivery IS NOT NULL AND state != 'sent'",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    if key.is_some() {
        conn.pragma_update(None, "secure_delete", true)?;
    }
    Ok(key)
}

/// Message `id` was delivered at `sent_at` to `delivered_to`.
///
/// A copy that carried generated passwords becomes the message kept without
/// them, its old bytes overwritten with zeros in the database file
/// (`secure_delete`); returns true when one did, and the caller then clears
/// them from the write-ahead log too ([`scrub_log`]).
pub fn mark_sent(
    conn: &Connection,
    id: i64,
    sent_at: &str,
    delivered_to: &str,
) -> rusqlite::Result<bool> {
    let carried = carrying_passwords(conn, id)?.is_some();
    conn.execute(
        "UPDATE outbox SET state = 'sent', sent_at = ?2, delivered_to = ?3, last_error = NULL,
            message = coalesce(after_delivery, message), after_delivery = NULL
         WHERE id = ?1 AND state != 'sent'",
        params![id, sent_at, delivered_to],
    )?;
    Ok(carried)
}

/// Copy the write-ahead log into the database and empty it, so that bytes
/// overwritten in the database (a delivered message's passwords) are gone
/// from the log as well. False when readers kept it from finishing (try
/// again later).
pub fn scrub_log(conn: &Connection) -> rusqlite::Result<bool> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    Ok(busy == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewTenant, Store};

    fn mail(tenant_id: i64, key: &str, recipients: &[&str]) -> Outgoing {
        Outgoing {
            tenant_id,
            dedupe_key: key.into(),
            kind: "missing",
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            subject: "s".into(),
            message: b"m".to_vec(),
            after_delivery: None,
        }
    }

    #[test]
    fn a_message_queued_before_several_addresses_stays_and_is_not_queued_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // A database as the rosterd before migration 10 left it: one copy,
        // sent, of a message whose key is queued again every scheduler pass.
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &super::super::migrations::MIGRATIONS[..9] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 9).unwrap();
            conn.execute(
                "INSERT INTO tenants (subdomain, admin_name, admin_email, created_at) VALUES ('d1', 'A', 'a@x.org', 't')",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO outbox (id, tenant_id, dedupe_key, kind, recipient, subject, message, created_at, state, next_attempt_at)
                 VALUES (7, 1, 'missing:1:2026-11-20', 'missing', 'a@x.org', 's', x'6d', 't', 'sent', 't')",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let now = Utc::now();
        let conn = &store.conn;
        let key = "missing:1:2026-11-20";
        // The old copy is kept, id and all; its address is not mailed again
        // (whatever the case), the address added since is.
        assert!(queue_mail(conn, &mail(1, key, &["A@X.org", "b@y.org"]), now).unwrap());
        assert!(!queue_mail(conn, &mail(1, key, &["a@x.org", "b@y.org"]), now).unwrap());
        let rows: Vec<(i64, String, String)> = outbox(conn)
            .unwrap()
            .into_iter()
            .map(|m| (m.id, m.recipient, m.state))
            .collect();
        assert_eq!(
            rows,
            [
                (7, "a@x.org".into(), "sent".into()),
                (8, "b@y.org".into(), "queued".into())
            ]
        );
        // A new district's messages: a copy per address.
        let id = store
            .add_tenant(
                &NewTenant {
                    subdomain: "d2",
                    admin_name: "A",
                    admin_email: "c@x.org, d@y.org",
                    timezone: None,
                    sso: false,
                    window: None,
                },
                now,
            )
            .unwrap();
        assert!(queue_mail(conn, &mail(id, "run:1", &["c@x.org", "d@y.org"]), now).unwrap());
        assert_eq!(queue_length(conn).unwrap(), 3);
    }
}
