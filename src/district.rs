//! Support's changes to a district as a whole: renaming it (a new subdomain,
//! so a new SSH username and spool folder) and deleting it with everything
//! it has. Both run beside a live daemon: they hold the district's spool
//! locks, so no session of the district is logged in and no import of it
//! runs meanwhile, and change the store and the spool folder together.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, bail};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::domain::tenant::Subdomain;
use crate::spool::{LOCK_FILES, TenantSpool};
use crate::store::{self, Deleted, Store, Tenant};

/// Every lock of one district's spool folder, held together: no session is
/// logged in (none can start), no import runs, no upload is published.
struct Held {
    _sessions: File,
    _import: File,
    _spool: File,
}

/// Take every lock of `spool`, the folder of district `sub`, or say what
/// is in the way.
fn hold(spool: &TenantSpool, sub: &str) -> anyhow::Result<Held> {
    let cannot = || format!("cannot lock the spool folder {}", spool.dir.display());
    let Some(sessions) = spool.try_lock_sessions().with_context(cannot)? else {
        bail!(
            "{sub} has an SFTP session open (an upload may be in progress); try again once it has ended (`rosterd tenant disable {sub}` keeps new ones out meanwhile)"
        );
    };
    let Some(import) = spool.try_lock_import().with_context(cannot)? else {
        bail!(
            "{sub}'s upload is being imported right now; try again once the import has finished (`rosterd runs {sub}` shows it)"
        );
    };
    let spool = spool.lock().with_context(cannot)?;
    Ok(Held {
        _sessions: sessions,
        _import: import,
        _spool: spool,
    })
}

/// Whether `dir` holds any file but lock files (at any depth): a folder left
/// by a district deleted earlier holds none.
fn holds_files(dir: &Path) -> std::io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if holds_files(&entry.path())? {
                return Ok(true);
            }
        } else if !LOCK_FILES.iter().any(|l| entry.file_name() == *l) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn immediate(conn: &Connection) -> rusqlite::Result<Transaction<'_>> {
    Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
}

/// Give `tenant` the subdomain `new`: its SSH username, and the name of its
/// spool folder (with a pending upload, held imports and archives), which
/// moves with it. Its keys, users, schools, runs and settings name it by id
/// and follow. Refused while a session of the district is logged in or its
/// upload is being imported, and when `new` is taken.
///
/// The folder moves by swapping it with a new, empty one under the new name
/// whose locks are held too, inside the store's transaction: a session or
/// import that read the old name just before finds a folder locked by this
/// rename until the new name is committed, then sees the name has changed.
pub fn rename(
    store: &Store,
    spool_root: &Path,
    tenant: &Tenant,
    new: &Subdomain,
) -> anyhow::Result<()> {
    let old = tenant.subdomain.as_str();
    if new.as_str() == old {
        bail!("the district is named {old} already");
    }
    if store.tenant(new.as_str())?.is_some() {
        bail!("tenant {new} already exists; choose another subdomain");
    }
    let from = TenantSpool::new(spool_root, old);
    let to = TenantSpool::new(spool_root, new.as_str());
    let _from = hold(&from, old)?;
    if holds_files(&to.dir)? {
        bail!(
            "the spool already has a folder {} with files in it (left by an earlier district named {new}?); move it away first",
            to.dir.display()
        );
    }
    let _to = hold(&to, new.as_str())?;
    let tx = immediate(&store.conn)?;
    store::rename_tenant(&tx, tenant.id, new.as_str())?;
    store::move_upload_files(&tx, tenant.id, old, new.as_str())?;
    let moved = move_folder(&from.dir, &to.dir).with_context(|| {
        format!(
            "cannot move the spool folder {} to {}",
            from.dir.display(),
            to.dir.display()
        )
    })?;
    if let Err(e) = tx.commit() {
        // Back as it was: the store still has the old name.
        let _ = match moved {
            Moved::Swapped => crate::files::exchange(&from.dir, &to.dir),
            Moved::Renamed => std::fs::rename(&to.dir, &from.dir),
        };
        return Err(e.into());
    }
    // The district is renamed; tidying up after it is not worth failing for.
    if moved == Moved::Swapped {
        // The old name now has the empty folder swapped in: lock files only.
        if let Err(e) = std::fs::remove_dir_all(&from.dir) {
            tracing::warn!(folder = %from.dir.display(), error = %e, "cannot remove the empty spool folder left by the rename; remove it by hand");
        }
    }
    sync_dir(spool_root);
    Ok(())
}

/// How [`move_folder`] moved a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moved {
    /// Swapped with the empty folder at the new name, now at the old name.
    Swapped,
    /// Renamed, the empty folder at the new name removed first.
    Renamed,
}

/// Move the folder `from` to `to`, where an empty folder (lock files only)
/// is: swapped in one step, or, where the file system cannot swap (NFS),
/// the empty folder removed and the folder renamed.
fn move_folder(from: &Path, to: &Path) -> std::io::Result<Moved> {
    match crate::files::exchange(from, to) {
        Ok(()) => Ok(Moved::Swapped),
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL)
                || e.kind() == std::io::ErrorKind::Unsupported =>
        {
            std::fs::remove_dir_all(to)?;
            std::fs::rename(from, to)?;
            Ok(Moved::Renamed)
        }
        Err(e) => Err(e),
    }
}

/// Delete `tenant` and everything of it: its rows in every table (users,
/// groups, schools, keys, runs and their journals, uploads, emails, column
/// mapping, refused connections, throttles) in one transaction, then its
/// spool folder (a pending upload, held imports, archives). Refused while a
/// session of the district is logged in or its upload is being imported,
/// and, unless `purge`, while it has users.
pub fn delete(
    store: &Store,
    spool_root: &Path,
    tenant: &Tenant,
    purge: bool,
) -> anyhow::Result<Deleted> {
    let sub = tenant.subdomain.as_str();
    let spool = TenantSpool::new(spool_root, sub);
    let _held = hold(&spool, sub)?;
    let tx = immediate(&store.conn)?;
    let users = store::user_count(&tx, tenant.id)?;
    if users > 0 && !purge {
        bail!("{}", has_users(sub, users));
    }
    let deleted = store::delete_tenant(&tx, tenant.id)?;
    tx.commit()?;
    // Its waiting upload holds passwords: a folder left behind is an error.
    std::fs::remove_dir_all(&spool.dir).with_context(|| {
        format!(
            "deleted district {sub}, but cannot remove its spool folder {}; remove it by hand",
            spool.dir.display()
        )
    })?;
    sync_dir(spool_root);
    Ok(deleted)
}

/// Why a district with `users` users is not deleted without `--purge`.
pub fn has_users(sub: &str, users: u64) -> String {
    format!(
        "{sub} has {users} user{}; `rosterd tenant delete {sub} --purge` deletes them with the district",
        if users == 1 { "" } else { "s" }
    )
}

/// Make the spool's change of folders durable; done, the change is made
/// either way, so a failure is only worth a warning.
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(folder = %dir.display(), error = %e, "cannot sync the spool folder");
    }
}
