//! Districts' SSH public keys: registering, listing, revoking.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, StoreError, timestamp};
use crate::domain::tenant::Tenant;
use crate::keys::AcceptedKey;

/// What `add_keys` did with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAdded {
    New,
    /// Registered already, with the same address restriction.
    Already,
    /// Registered already; its address restriction is now the one given.
    FromChanged,
}

/// A registered SSH key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyRow {
    pub fingerprint: String,
    pub kind: String,
    pub bits: u32,
    pub comment: String,
    pub added_at: String,
    pub revoked_at: Option<String>,
    /// Where it may log in from (OpenSSH pattern list); `None`: anywhere.
    pub from: Option<String>,
}

impl Store {
    /// Register keys for a district, all or none. A key active for another district is
    /// a conflict; one already active for this district is reported, not duplicated.
    /// Returns, per key, whether it was newly added.
    pub fn add_keys(
        &self,
        tenant: &Tenant,
        keys: &[AcceptedKey],
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyAdded>> {
        let tx = self.conn.unchecked_transaction()?;
        let mut added = Vec::new();
        for key in keys {
            let owner: Option<(String, i64, Option<String>)> = tx
                .query_row(
                    "SELECT t.subdomain, k.id, k.from_patterns FROM ssh_keys k JOIN tenants t ON t.id = k.tenant_id
                     WHERE k.fingerprint = ?1 AND k.revoked_at IS NULL",
                    [&key.fingerprint],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            match owner {
                Some((owner, _, from)) if owner == tenant.subdomain && from == key.from => {
                    added.push(KeyAdded::Already)
                }
                Some((owner, id, _)) if owner == tenant.subdomain => {
                    tx.execute(
                        "UPDATE ssh_keys SET from_patterns = ?2 WHERE id = ?1",
                        params![id, key.from],
                    )?;
                    added.push(KeyAdded::FromChanged);
                }
                Some((owner, _, _)) => {
                    return Err(StoreError::Conflict(format!(
                        "key {} is already registered to tenant {owner}; a key may belong to one tenant only. Ask the district for a key of its own",
                        key.fingerprint
                    )));
                }
                None => {
                    tx.execute(
                        "INSERT INTO ssh_keys (tenant_id, fingerprint, kind, bits, public_key, comment, added_at, from_patterns)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            tenant.id,
                            key.fingerprint,
                            key.kind,
                            key.bits,
                            key.openssh_line(),
                            key.comment,
                            timestamp(now),
                            key.from
                        ],
                    )?;
                    added.push(KeyAdded::New);
                }
            }
        }
        tx.commit()?;
        Ok(added)
    }

    pub fn keys(&self, tenant_id: i64) -> Result<Vec<KeyRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT fingerprint, kind, bits, comment, added_at, revoked_at, from_patterns FROM ssh_keys
             WHERE tenant_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([tenant_id], |r| {
                Ok(KeyRow {
                    fingerprint: r.get(0)?,
                    kind: r.get(1)?,
                    bits: r.get(2)?,
                    comment: r.get(3)?,
                    added_at: r.get(4)?,
                    revoked_at: r.get(5)?,
                    from: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Revoke an active key of the district; false if it has no such key.
    pub fn revoke_key(
        &self,
        tenant_id: i64,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE ssh_keys SET revoked_at = ?3 WHERE tenant_id = ?1 AND fingerprint = ?2 AND revoked_at IS NULL",
            params![tenant_id, fingerprint, timestamp(now)],
        )?;
        Ok(n > 0)
    }
}

/// What a login needs to know of a district and one of its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginKey {
    pub tenant_id: i64,
    pub disabled: bool,
    /// The district's own address pattern list (`tenant set --allow-from`).
    pub allow_from: Option<String>,
    /// The key's row for this district, if registered: when it was revoked
    /// (an active row wins over revoked rows of the same key), and its own
    /// `from=` pattern list.
    pub key: Option<(Option<String>, Option<String>)>,
}

/// The district named `subdomain` and its key `fingerprint`, for a login;
/// `None` if no district has that name.
pub fn login_key(
    conn: &Connection,
    subdomain: &str,
    fingerprint: &str,
) -> rusqlite::Result<Option<LoginKey>> {
    let tenant = conn
        .query_row(
            "SELECT id, disabled, allow_from FROM tenants WHERE subdomain = ?1",
            [subdomain],
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
        return Ok(None);
    };
    let key = conn
        .query_row(
            "SELECT revoked_at, from_patterns FROM ssh_keys WHERE tenant_id = ?1 AND fingerprint = ?2
             ORDER BY revoked_at IS NOT NULL, revoked_at DESC LIMIT 1",
            params![tenant_id, fingerprint],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(Some(LoginKey {
        tenant_id,
        disabled,
        allow_from,
        key,
    }))
}
