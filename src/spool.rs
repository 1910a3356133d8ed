//! The upload spool: one folder per tenant. Uploads are written to
//! `incoming/` under a private name and published as the pending `users.csv`
//! only by an atomic rename once complete, so a broken transfer never replaces
//! a complete file. Each publication is recorded in the store.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use crate::store::timestamp;

/// The one name districts may upload.
pub const USERS_CSV: &str = "users.csv";

/// Temporary names clients upload to before renaming to `users.csv`
/// (WinSCP's `.filepart`, and the usual `.part`/`.partial`/`.tmp`).
pub const STAGING_SUFFIXES: &[&str] = &["filepart", "part", "partial", "tmp"];

/// Paths of one tenant's spool.
#[derive(Debug, Clone)]
pub struct TenantSpool {
    pub dir: PathBuf,
}

impl TenantSpool {
    pub fn new(spool: &Path, subdomain: &str) -> Self {
        Self {
            dir: spool.join(subdomain),
        }
    }

    /// The complete upload waiting for import.
    pub fn pending(&self) -> PathBuf {
        self.dir.join(USERS_CSV)
    }

    /// Transfers in progress; never seen by the importer.
    pub fn incoming(&self) -> PathBuf {
        self.dir.join("incoming")
    }

    /// Complete uploads under a temporary name, waiting for their rename.
    pub fn staging(&self) -> PathBuf {
        self.dir.join("staging")
    }

    pub fn create_dirs(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(self.incoming())?;
        b.create(self.staging())
    }
}

/// Is `name` one of the temporary names that may be renamed to `users.csv`?
pub fn is_staging_name(name: &str) -> bool {
    name.strip_prefix("users.csv.")
        .is_some_and(|suffix| STAGING_SUFFIXES.contains(&suffix))
}

/// What is known of a published upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: i64,
    pub size: u64,
    pub sha256: String,
}

/// Who sent an upload, for its record.
#[derive(Debug, Clone)]
pub struct Sender {
    pub tenant_id: i64,
    pub remote_addr: String,
    pub key_fingerprint: String,
}

/// Make `complete` (a finished file inside the tenant's spool) the pending
/// `users.csv`: fsync it, hash it, rename it over the pending file, fsync the
/// directory, and record the upload (superseding any earlier pending one).
pub fn publish(
    conn: &Connection,
    spool: &TenantSpool,
    complete: &Path,
    sender: &Sender,
    now: DateTime<Utc>,
) -> anyhow::Result<Upload> {
    let file = std::fs::File::open(complete)?;
    file.sync_all()?;
    let (size, sha256) = hash_file(file)?;
    let target = spool.pending();
    std::fs::rename(complete, &target)?;
    std::fs::File::open(&spool.dir)?.sync_all()?;
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "UPDATE uploads SET state = 'superseded' WHERE tenant_id = ?1 AND state = 'pending'",
        [sender.tenant_id],
    )?;
    tx.execute(
        "INSERT INTO uploads (tenant_id, received_at, size, sha256, remote_addr, key_fingerprint, path, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
        params![
            sender.tenant_id,
            timestamp(now),
            size as i64,
            sha256,
            sender.remote_addr,
            sender.key_fingerprint,
            target.to_string_lossy()
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(Upload { id, size, sha256 })
}

fn hash_file(mut file: std::fs::File) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, crate::import::decode::hex(&hasher.finalize())))
}

/// Remove transfers a previous run left unfinished (a killed daemon): they
/// were never complete, so they are never imported.
pub fn clean_incoming(spool: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    let Ok(tenants) = std::fs::read_dir(spool) else {
        return Ok(0);
    };
    for tenant in tenants.flatten() {
        let incoming = tenant.path().join("incoming");
        if let Ok(files) = std::fs::read_dir(&incoming) {
            for f in files.flatten() {
                std::fs::remove_file(f.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names() {
        assert!(is_staging_name("users.csv.filepart"));
        assert!(is_staging_name("users.csv.part"));
        assert!(!is_staging_name("users.csv"));
        assert!(!is_staging_name("users.csv.exe"));
        assert!(!is_staging_name("other.csv.filepart"));
    }
}
