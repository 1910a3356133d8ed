//! The upload spool: one folder per district. Uploads are written to
//! `incoming/` under a private name and published as the pending `users.csv`
//! only by an atomic rename once complete, so a broken transfer never replaces
//! a complete file. Each publication is recorded in the store.
//!
//! An upload's life: `pending` (the district's `users.csv`) → `importing` (moved
//! to `archive/upload-N.original.csv`, out of the SFTP root, so a new upload
//! during the import is simply the next pending file) → `imported` (the
//! original replaced by `archive/upload-N.csv` with its passwords blanked,
//! deleted after the retention period). Every step is a rename followed by a
//! store update, and each can be redone after a crash between the two. An
//! upload the upload check refused (`crate::import::check`) never becomes
//! pending: it is recorded `refused`, with a blanked copy in the archive
//! ([`refuse`]), and its file removed.
//!
//! Each folder has three locks: the pending file changing hands (publish,
//! claim), the right to import, and the sessions' shared hold that keeps
//! support from renaming or deleting the district (`crate::district`) under
//! a logged-in session. A running import also posts its progress there
//! ([`ProgressBoard`]) for `rosterd status`, under a fourth lock that tells a
//! live board from one a crash left.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::import::progress::{Note, Phase, Progress, Say, Snapshot, Watch};
use crate::store::timestamp;

/// The one name districts may upload.
pub const USERS_CSV: &str = "users.csv";

/// Temporary names clients upload to before renaming to `users.csv`
/// (WinSCP's `.filepart`, and the usual `.part`/`.partial`/`.tmp`).
pub const STAGING_SUFFIXES: &[&str] = &["filepart", "part", "partial", "tmp"];

/// Paths of one district's spool.
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

    /// Uploads taken for import, and their blanked copies.
    pub fn archive(&self) -> PathBuf {
        self.dir.join("archive")
    }

    /// Upload `id` while it is imported (plaintext, deleted afterwards).
    pub fn original(&self, upload_id: i64) -> PathBuf {
        self.archive()
            .join(format!("upload-{upload_id}.original.csv"))
    }

    /// The kept copy of upload `id`, passwords blanked.
    pub fn archived(&self, upload_id: i64) -> PathBuf {
        self.archive().join(format!("upload-{upload_id}.csv"))
    }

    pub fn create_dirs(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(self.incoming())?;
        b.create(self.staging())?;
        b.create(self.archive())
    }

    /// Hold the district's spool while its pending file changes hands (publish
    /// or claim), across threads and processes; released when dropped.
    pub fn lock(&self) -> std::io::Result<std::fs::File> {
        self.create_dirs()?;
        let f = lock_file(&self.dir.join(SPOOL_LOCK))?;
        f.lock()?;
        Ok(f)
    }

    /// The right to import this district's uploads, if nobody else (the daemon, a
    /// support command) holds it. Released when dropped or when the holder dies.
    pub fn try_lock_import(&self) -> std::io::Result<Option<std::fs::File>> {
        self.create_dirs()?;
        let f = lock_file(&self.dir.join(IMPORT_LOCK))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// A logged-in session's hold on the district's spool, shared with its
    /// other sessions and kept until the session ends: support cannot rename
    /// or delete the district (moving or removing this folder under an
    /// upload in progress) while one is held. `None` while support is doing
    /// so. Whoever takes it must check afterwards that the district still
    /// has this subdomain: a rename or delete finished just before leaves
    /// the folder to a new, empty one.
    pub fn hold_for_session(&self) -> std::io::Result<Option<std::fs::File>> {
        self.create_dirs()?;
        let f = lock_file(&self.dir.join(SESSIONS_LOCK))?;
        match f.try_lock_shared() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Support's exclusive hold on the district's spool, to rename or delete
    /// the district: `None` while a session of the district is logged in
    /// (see [`Self::hold_for_session`]).
    pub fn try_lock_sessions(&self) -> std::io::Result<Option<std::fs::File>> {
        self.create_dirs()?;
        let f = lock_file(&self.dir.join(SESSIONS_LOCK))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The lock files of a district's spool folder, and its progress board:
/// they hold nothing of the district's.
pub const LOCK_FILES: [&str; 6] = [
    SPOOL_LOCK,
    IMPORT_LOCK,
    SESSIONS_LOCK,
    PROGRESS_LOCK,
    PROGRESS_BOARD,
    PROGRESS_BOARD_NEXT,
];
const SPOOL_LOCK: &str = ".spool.lock";
const IMPORT_LOCK: &str = ".import.lock";
const SESSIONS_LOCK: &str = ".sessions.lock";
const PROGRESS_LOCK: &str = ".progress.lock";
const PROGRESS_BOARD: &str = ".progress.json";
const PROGRESS_BOARD_NEXT: &str = ".progress.json.next";

/// How often a running import's board is rewritten, at most (and at each
/// phase's beginning and end).
const POST_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// What a running import posts on its district's board.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Posted {
    /// `sftp` (the daemon or `import run`) or `cli` (`import users`).
    pub source: String,
    pub file: String,
    pub upload: Option<i64>,
    /// The importing process.
    pub pid: u32,
    /// RFC 3339 UTC, as the store keeps times.
    pub started_at: String,
    pub updated_at: String,
    #[serde(flatten)]
    pub at: Snapshot,
}

/// A running import's progress, posted in its district's spool folder for
/// `rosterd status` (another process): the import holds the board's lock
/// from start to end, so a board a crash left behind is known stale and
/// never shown. The store cannot hold it: the import holds the database's
/// write lock from its first row to its commit.
pub struct ProgressBoard {
    board: PathBuf,
    watch: Watch<Say>,
    _lock: std::fs::File,
}

impl TenantSpool {
    /// The district's board for an import of `file` (from `source`, upload
    /// `upload`); `None` if another import of the district holds it.
    pub fn progress_board(
        &self,
        source: &str,
        file: &str,
        upload: Option<i64>,
    ) -> std::io::Result<Option<ProgressBoard>> {
        self.create_dirs()?;
        let lock = lock_file(&self.dir.join(PROGRESS_LOCK))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let board = self.dir.join(PROGRESS_BOARD);
        let posted = std::sync::Mutex::new(Posted {
            source: source.to_owned(),
            file: crate::domain::text::echo(file, 200).into_owned(),
            upload,
            pid: std::process::id(),
            started_at: timestamp(chrono::Utc::now()),
            updated_at: String::new(),
            at: Snapshot {
                phase: Phase::Reading,
                done: 0,
                total: None,
                seconds: 0.0,
            },
        });
        let dir = self.dir.clone();
        let post = move |_: Note, at: &Snapshot| {
            let mut posted = posted.lock().unwrap_or_else(|e| e.into_inner());
            posted.at = *at;
            posted.updated_at = timestamp(chrono::Utc::now());
            // Only a help to support: a board that cannot be written is
            // not worth stopping the import for.
            if let Err(e) = post_board(&dir, &posted) {
                tracing::debug!(error = %e, "cannot post the import's progress");
            }
        };
        Ok(Some(ProgressBoard {
            board,
            watch: Watch::new(POST_EVERY, Box::new(post)),
            _lock: lock,
        }))
    }
}

/// Replace the board in `dir` in one step: a reader sees the last post or
/// this one, never half of one.
fn post_board(dir: &Path, posted: &Posted) -> std::io::Result<()> {
    let next = dir.join(PROGRESS_BOARD_NEXT);
    std::fs::write(&next, serde_json::to_vec(posted)?)?;
    std::fs::rename(&next, dir.join(PROGRESS_BOARD))
}

impl Progress for ProgressBoard {
    fn phase(&self, phase: Phase, total: Option<u64>) {
        self.watch.phase(phase, total)
    }
    fn advance(&self, n: u64) {
        self.watch.advance(n)
    }
    fn end(&self) {
        self.watch.end()
    }
}

impl Drop for ProgressBoard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.board);
    }
}

/// The import of the district's uploads running now, as it last posted
/// ([`ProgressBoard`]); `None` when none runs (a board whose lock is free was
/// left by an import that died, and is ignored).
pub fn import_in_progress(spool: &TenantSpool) -> std::io::Result<Option<Posted>> {
    let lock = match std::fs::File::open(spool.dir.join(PROGRESS_LOCK)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match lock.try_lock_shared() {
        Ok(()) => return Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    match std::fs::read(spool.dir.join(PROGRESS_BOARD)) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Is `name` one of the temporary names that may be renamed to `users.csv`?
pub fn is_staging_name(name: &str) -> bool {
    name.strip_prefix("users.csv.")
        .is_some_and(|suffix| STAGING_SUFFIXES.contains(&suffix))
}

/// What is known of a published upload.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Its row; `None` if the file is stored but could not be recorded yet
    /// (the store stayed busy): [`adopt_unrecorded`] records it later.
    pub id: Option<i64>,
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

/// The SHA-256 of the first bytes of an upload, taken as they were written,
/// so that publishing it hashes only what is left (nothing, for a client
/// that writes in order) instead of reading the whole file again.
#[derive(Clone)]
pub struct Hashed {
    sha: Sha256,
    len: u64,
    /// The file (device, inode) the bytes were written to: the hash is used
    /// only for that file.
    file: (u64, u64),
}

impl Hashed {
    /// Nothing hashed yet of `file`.
    pub fn new(file: &std::fs::File) -> std::io::Result<Self> {
        Ok(Self {
            sha: Sha256::new(),
            len: 0,
            file: identity(&file.metadata()?),
        })
    }

    /// How many bytes from the start are hashed.
    pub fn upto(&self) -> u64 {
        self.len
    }

    /// Hash the bytes that follow the hashed ones.
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.len += data.len() as u64;
    }
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// A large superseded pending file, kept by a second name until it is
/// dropped: freeing a large file's blocks takes a while (a quarter of a
/// second for 256 MiB here), which the client whose upload replaced it need
/// not wait for. A crash before the drop leaves it in `incoming/`, which
/// startup empties. Smaller files are freed at once.
#[must_use]
pub struct Superseded(Option<PathBuf>);

/// Superseded files up to this size are removed before [`publish`] returns.
const FREE_AT_ONCE: u64 = 16 << 20;

impl Drop for Superseded {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Make `complete` (a finished file inside the district's spool) the pending
/// `users.csv`: fsync it, hash what `hashed` has not, rename it over the
/// pending file, fsync the directory, and record the upload (superseding any
/// earlier pending one). Once the rename is done the upload is safe: a
/// failure to record it is logged and repaired by the scheduler, not reported
/// to the client. The file it replaced is removed when the returned
/// [`Superseded`] is dropped.
pub fn publish(
    conn: &Connection,
    spool: &TenantSpool,
    complete: &Path,
    hashed: Option<Hashed>,
    sender: &Sender,
    now: DateTime<Utc>,
) -> anyhow::Result<(Upload, Superseded)> {
    let file = std::fs::File::open(complete)?;
    file.sync_all()?;
    let (size, sha256) = finish_hash(file, hashed)?;
    let target = spool.pending();
    let _held = spool.lock()?;
    let superseded = spool.incoming().join(format!(
        "{}-{}.superseded",
        std::process::id(),
        rand::random::<u64>()
    ));
    let superseded = match std::fs::metadata(&target) {
        Ok(meta)
            if meta.len() > FREE_AT_ONCE && std::fs::hard_link(&target, &superseded).is_ok() =>
        {
            Superseded(Some(superseded))
        }
        _ => Superseded(None),
    };
    std::fs::rename(complete, &target)?;
    sync_dir(&spool.dir)?;
    let id = file_id(&target)
        .map_err(anyhow::Error::from)
        .and_then(|file| {
            let pending = Pending {
                size,
                sha256: &sha256,
                path: &target,
                file: &file,
            };
            Ok(record_upload(conn, sender.tenant_id, Some(sender), now, &pending)?)
        })
        .inspect_err(|e| {
            tracing::error!(error = %e, "users.csv is stored but could not be recorded yet; the scheduler will record it")
        })
        .ok();
    Ok((Upload { id, size, sha256 }, superseded))
}

/// How many of a district's newest refused uploads keep a blanked copy in
/// its archive (for support's "what did they send?"); older copies are
/// removed as new refusals arrive, and all go after `storage.archive_days`.
pub const REFUSED_COPIES_KEPT: usize = 3;

/// An upload the upload check refused (`crate::import::check`).
pub struct Refused<'a> {
    /// What was received (the whole file, or up to the write refused).
    pub file: &'a Path,
    /// What was hashed of it as it was written.
    pub hashed: Option<Hashed>,
    pub sender: &'a Sender,
    pub at: DateTime<Utc>,
    pub reason: &'a str,
}

/// Record `refused` as its district's refused upload: its size and SHA-256,
/// a passwords-blanked copy in the archive unless the district's last kept
/// copy is of the same bytes (a job retrying one file), and the note `mail`
/// makes of its size and SHA-256 queued in the same transaction (its dedupe
/// key keeps it to one a night). Its file is removed, whatever happens: a
/// refused file never waits anywhere with its passwords. Nothing here
/// touches the pending `users.csv`. Returns the upload's id.
pub fn refuse(
    conn: &Connection,
    spool: &TenantSpool,
    refused: Refused<'_>,
    mail: impl FnOnce(u64, &str) -> Option<crate::domain::email::Outgoing>,
) -> anyhow::Result<i64> {
    let copy = spool.incoming().join(format!(
        "{}-{}.blanked",
        std::process::id(),
        rand::random::<u64>()
    ));
    let file = refused.file;
    let recorded = record_refused(conn, spool, refused, &copy, mail);
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(&copy);
    recorded
}

fn record_refused(
    conn: &Connection,
    spool: &TenantSpool,
    refused: Refused<'_>,
    copy: &Path,
    mail: impl FnOnce(u64, &str) -> Option<crate::domain::email::Outgoing>,
) -> anyhow::Result<i64> {
    let tenant_id = refused.sender.tenant_id;
    let (size, sha256) = finish_hash(crate::files::open_nofollow(refused.file)?, refused.hashed)?;
    spool.create_dirs()?;
    let repeated = crate::store::last_refused_copy(conn, tenant_id)?.as_deref() == Some(&sha256);
    // A copy that cannot be made leaves the refusal recorded without one.
    let copied = !repeated
        && crate::import::archive::write_blanked_copy(conn, tenant_id, refused.file, copy)
            .inspect_err(|e| tracing::error!(error = %format!("{e:#}"), "cannot keep a blanked copy of a refused upload"))
            .unwrap_or(false);
    let tx = conn.unchecked_transaction()?;
    let id = crate::store::record_refused_file(
        &tx,
        &crate::store::NewUpload {
            tenant_id,
            received_at: refused.at,
            size,
            sha256: &sha256,
            remote_addr: Some(&refused.sender.remote_addr),
            key_fingerprint: Some(&refused.sender.key_fingerprint),
            path: &spool.pending().to_string_lossy(),
            file_id: "",
        },
        refused.reason,
    )?;
    if copied {
        let kept = spool.archived(id);
        std::fs::rename(copy, &kept)?;
        sync_dir(&spool.archive())?;
        crate::store::set_archive(&tx, id, Some(&kept.to_string_lossy()))?;
    }
    if let Some(mail) = mail(size, &sha256) {
        crate::mail::queue(&tx, &mail, refused.at)?;
    }
    tx.commit()?;
    for (old, path) in crate::store::refused_copies_beyond(conn, tenant_id, REFUSED_COPIES_KEPT)? {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::anyhow!("cannot delete {path}: {e}")),
        }
        crate::store::set_archive(conn, old, None)?;
    }
    Ok(id)
}

/// The identity of a file on its file system (device and inode): a new
/// upload is always a new file, renamed into place.
fn file_id(path: &Path) -> std::io::Result<String> {
    let (dev, ino) = identity(&std::fs::metadata(path)?);
    Ok(format!("{dev}:{ino}"))
}

/// A file just made the pending `users.csv`.
struct Pending<'a> {
    size: u64,
    sha256: &'a str,
    path: &'a Path,
    /// [`file_id`] of it.
    file: &'a str,
}

/// Record the pending `users.csv` of `tenant_id` (superseding any earlier
/// pending upload). `sender` is `None` for a file found without a record.
fn record_upload(
    conn: &Connection,
    tenant_id: i64,
    sender: Option<&Sender>,
    now: DateTime<Utc>,
    pending: &Pending<'_>,
) -> rusqlite::Result<i64> {
    let Pending {
        size,
        sha256,
        path,
        file,
    } = *pending;
    crate::store::record_upload(
        conn,
        &crate::store::NewUpload {
            tenant_id,
            received_at: now,
            size,
            sha256,
            remote_addr: sender.map(|s| s.remote_addr.as_str()),
            key_fingerprint: sender.map(|s| s.key_fingerprint.as_str()),
            path: &path.to_string_lossy(),
            file_id: file,
        },
    )
}

/// An upload taken for import.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub upload_id: i64,
    /// The file to import (`archive/upload-N.original.csv`).
    pub path: PathBuf,
    /// Times it has been taken for import, this one included.
    pub attempts: u32,
    /// Support approved it after it was held: imported without holds.
    pub approved: bool,
}

/// Take the district's next upload for import. An upload a previous run had
/// already taken (the daemon stopped mid-import) comes first; otherwise the
/// pending `users.csv` is moved out of the SFTP root. The caller must hold
/// [`TenantSpool::try_lock_import`].
pub fn claim(
    conn: &Connection,
    spool: &TenantSpool,
    tenant_id: i64,
) -> anyhow::Result<Option<Claimed>> {
    spool.create_dirs()?;
    // Taken before: its original is in the archive, whatever its row says (the
    // daemon may have stopped between the rename and the row update).
    for id in crate::store::claimable_uploads(conn, tenant_id)? {
        let path = spool.original(id);
        if path.exists() {
            let (attempts, approved) = crate::store::start_import(conn, id)?;
            return Ok(Some(Claimed {
                upload_id: id,
                path,
                attempts,
                approved,
            }));
        }
    }
    // An approved upload whose file is gone cannot be imported (and would
    // be due at every look).
    let lost = crate::store::lose_approved(conn, tenant_id)?;
    if lost > 0 {
        tracing::error!(
            tenant_id,
            "an approved upload's file is missing from the spool's archive; marking it lost"
        );
    }
    let _held = spool.lock()?;
    let Some(id) = crate::store::latest_pending(conn, tenant_id)? else {
        return Ok(None);
    };
    let path = spool.original(id);
    match std::fs::rename(spool.pending(), &path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::error!(
                upload = id,
                "the pending users.csv is missing from the spool; marking the upload lost"
            );
            crate::store::lose_upload(conn, id)?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    sync_dir(&spool.archive())?;
    sync_dir(&spool.dir)?;
    let attempts = crate::store::start_pending_import(conn, id, &path.to_string_lossy())?;
    Ok(Some(Claimed {
        upload_id: id,
        path,
        attempts,
        approved: false,
    }))
}

pub use crate::store::{Held, held, interrupted};

/// The held upload of `run_id`, or an error saying what became of the run.
fn find_held(conn: &Connection, tenant_id: i64, run_id: i64) -> anyhow::Result<Held> {
    let found = held(conn, tenant_id)?
        .into_iter()
        .find(|h| h.run_id == run_id);
    let Some(h) = found else {
        match crate::store::run_resolution(conn, tenant_id, run_id)? {
            None => anyhow::bail!(
                "no run {run_id} for this district; `rosterd status` lists held imports"
            ),
            Some(what) => anyhow::bail!(
                "run {run_id} is not waiting for approval (it is {}); `rosterd status` lists held imports",
                what.unwrap_or_default()
            ),
        }
    };
    Ok(h)
}

/// The held upload of `run_id`, checked to be still waiting and not
/// replaced by a newer upload (which is imported instead).
fn held_for_decision(conn: &Connection, tenant_id: i64, run_id: i64) -> anyhow::Result<Held> {
    let h = find_held(conn, tenant_id, run_id)?;
    if let Some(newer) = crate::store::newer_upload(conn, tenant_id, h.upload_id)? {
        anyhow::bail!(
            "a newer upload ({newer}) has arrived since run {run_id} was held; it replaces the held file, which can only be discarded"
        );
    }
    Ok(h)
}

/// Support approves held run `run_id`: its upload becomes due at once and is
/// imported without holds, even after a restart. Returns the upload's id.
pub fn approve(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let tx = conn.unchecked_transaction()?;
    let h = held_for_decision(&tx, tenant_id, run_id)?;
    crate::store::approve_upload(
        &tx,
        h.upload_id,
        run_id,
        &format!("approved by support at {}", timestamp(now)),
    )?;
    tx.commit()?;
    Ok(h.upload_id)
}

/// Support discards held run `run_id`: its upload is never imported; its
/// blanked copy is kept as an imported upload's is and the plaintext removed.
pub fn discard(
    conn: &Connection,
    spool: &TenantSpool,
    tenant_id: i64,
    run_id: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    // A held file can be discarded even once a newer upload replaces it.
    let h = find_held(conn, tenant_id, run_id)?;
    set_aside(
        conn,
        spool,
        tenant_id,
        &h,
        "discarded",
        &format!("discarded by support at {}", timestamp(now)),
    )?;
    Ok(h.upload_id)
}

/// Held uploads older than upload `newer`, which replaces them: set aside
/// (the caller does so once `newer` is imported). Returns them.
pub fn held_before(conn: &Connection, tenant_id: i64, newer: i64) -> rusqlite::Result<Vec<Held>> {
    Ok(held(conn, tenant_id)?
        .into_iter()
        .filter(|h| h.upload_id < newer)
        .collect())
}

/// Mark held upload `h` `state` (never imported) with its run's
/// `resolution`, keeping only its blanked copy.
pub fn set_aside(
    conn: &Connection,
    spool: &TenantSpool,
    tenant_id: i64,
    h: &Held,
    state: &str,
    resolution: &str,
) -> anyhow::Result<()> {
    archive_imported(conn, spool, tenant_id, h.upload_id)?;
    let tx = conn.unchecked_transaction()?;
    crate::store::set_held_aside(&tx, h.upload_id, h.run_id, state, resolution)?;
    tx.commit()?;
    Ok(())
}

/// Give up on upload `id`: mark it failed with `why` (for `rosterd status`),
/// keep its blanked copy as an imported upload's is kept, and delete the
/// plaintext original, so it is never taken for import again.
pub fn fail(
    conn: &Connection,
    spool: &TenantSpool,
    tenant_id: i64,
    upload_id: i64,
    why: &str,
) -> anyhow::Result<()> {
    archive_imported(conn, spool, tenant_id, upload_id)?;
    crate::store::fail_upload(conn, upload_id, why)?;
    Ok(())
}

/// After upload `id` was imported: keep its blanked copy and delete the
/// plaintext original. Idempotent, so it is redone at start-up for an import
/// whose result committed just before the daemon stopped.
pub fn archive_imported(
    conn: &Connection,
    spool: &TenantSpool,
    tenant_id: i64,
    upload_id: i64,
) -> anyhow::Result<()> {
    let original = spool.original(upload_id);
    if !original.exists() {
        return Ok(());
    }
    let kept = spool.archived(upload_id);
    let written = crate::import::archive::write_blanked_copy(conn, tenant_id, &original, &kept)?;
    std::fs::remove_file(&original)?;
    sync_dir(&spool.archive())?;
    crate::store::set_archive(
        conn,
        upload_id,
        written
            .then(|| kept.to_string_lossy().into_owned())
            .as_deref(),
    )?;
    Ok(())
}

/// Finish what a stopped daemon left between an import's commit and its
/// archiving, for every district.
pub fn archive_leftovers(conn: &Connection, spool_root: &Path) -> anyhow::Result<usize> {
    let mut done = 0;
    for (id, tenant_id, sub) in crate::store::unarchived_imports(conn)? {
        let spool = TenantSpool::new(spool_root, &sub);
        if spool.original(id).exists() {
            archive_imported(conn, &spool, tenant_id, id)?;
            done += 1;
        }
    }
    Ok(done)
}

/// Delete archived copies of uploads received before `cutoff`.
pub fn expire_archives(conn: &Connection, cutoff: DateTime<Utc>) -> anyhow::Result<usize> {
    let rows = crate::store::archives_before(conn, cutoff)?;
    for (id, path) in &rows {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::anyhow!("cannot delete expired archive {path}: {e}")),
        }
        crate::store::set_archive(conn, *id, None)?;
    }
    Ok(rows.len())
}

/// Record a pending `users.csv` that has no upload row (the daemon stopped,
/// or the store was busy, between publishing the file and recording it), so it
/// is imported like any other. The file is the one the latest pending row
/// names only if it is the same file (device and inode): a file published
/// over an older pending upload just before a crash supersedes that upload
/// here, so the record always describes the bytes that get imported. Returns
/// whether one was adopted.
pub fn adopt_unrecorded(
    conn: &Connection,
    spool: &TenantSpool,
    tenant_id: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    match std::fs::symlink_metadata(spool.pending()) {
        Err(_) => return Ok(false),
        Ok(m) if !m.file_type().is_file() => {
            tracing::warn!(
                tenant_id,
                path = %spool.pending().display(),
                "the pending users.csv is not a plain file (a symbolic link put there by someone on this machine?); it is not read"
            );
            return Ok(false);
        }
        Ok(_) => {}
    }
    let _held = spool.lock()?;
    let Ok(current) = file_id(&spool.pending()) else {
        return Ok(false); // taken for import meanwhile
    };
    let recorded = crate::store::latest_pending_file(conn, tenant_id)?;
    if let Some((_, Some(file), _)) = &recorded
        && *file == current
    {
        return Ok(false);
    }
    let (size, sha256) = hash_file(crate::files::open_nofollow(&spool.pending())?)?;
    if let Some((id, _, recorded_sha)) = &recorded
        && *recorded_sha == sha256
    {
        // A row from before file identities were kept: the same bytes.
        crate::store::set_file_id(conn, *id, &current)?;
        return Ok(false);
    }
    let path = spool.pending();
    let pending = Pending {
        size,
        sha256: &sha256,
        path: &path,
        file: &current,
    };
    record_upload(conn, tenant_id, None, now, &pending)?;
    tracing::warn!(
        tenant_id,
        "found a users.csv with no upload record (stored while the daemon stopped or the database was busy); it will be imported"
    );
    Ok(true)
}

fn hash_file(file: std::fs::File) -> std::io::Result<(u64, String)> {
    finish_hash(file, None)
}

/// The size and SHA-256 of `file`, hashing on from `hashed` when it is of
/// this file.
fn finish_hash(mut file: std::fs::File, hashed: Option<Hashed>) -> std::io::Result<(u64, String)> {
    use std::io::{Seek, SeekFrom};
    let mine = identity(&file.metadata()?);
    let mut hashed = match hashed {
        Some(h) if h.file == mine => h,
        _ => Hashed {
            sha: Sha256::new(),
            len: 0,
            file: mine,
        },
    };
    file.seek(SeekFrom::Start(hashed.len))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hashed.update(&buf[..n]);
    }
    Ok((
        hashed.len,
        crate::import::decode::hex(&hashed.sha.finalize()),
    ))
}

/// Remove the district's staged files (complete uploads under a temporary
/// name such as `users.csv.part`, waiting for their rename) last written
/// before `cutoff`: a client that never renamed one has long gone, and the
/// file holds plaintext passwords. Returns how many were removed.
pub fn remove_stale_staged(
    spool: &TenantSpool,
    cutoff: std::time::SystemTime,
) -> std::io::Result<usize> {
    let mut removed = 0;
    let Ok(files) = std::fs::read_dir(spool.staging()) else {
        return Ok(0);
    };
    for f in files.flatten() {
        let Ok(meta) = f.path().symlink_metadata() else {
            continue;
        };
        if meta.modified().is_ok_and(|at| at < cutoff) {
            std::fs::remove_file(f.path())?;
            removed += 1;
        }
    }
    Ok(removed)
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

    /// A file published over a pending upload, with the daemon killed before it
    /// was recorded: it becomes an upload of its own, superseding the old one,
    /// and the pending row always names the bytes that will be imported.
    #[test]
    fn a_file_published_over_a_pending_upload_before_a_crash_is_recorded_as_new() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("r.db")).unwrap();
        let now = Utc::now();
        let tenant_id = store
            .add_tenant(
                &crate::store::NewTenant {
                    subdomain: "lincoln",
                    admin_name: "A",
                    admin_email: "a@example.org",
                    timezone: None,
                    sso: false,
                    window: None,
                },
                now,
            )
            .unwrap();
        let spool = TenantSpool::new(&dir.path().join("spool"), "lincoln");
        spool.create_dirs().unwrap();
        let sender = Sender {
            tenant_id,
            remote_addr: "127.0.0.1".into(),
            key_fingerprint: "SHA256:x".into(),
        };
        let put = |name: &str, body: &str| {
            let p = spool.incoming().join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let (first, _) = publish(
            &store.conn,
            &spool,
            &put("a", "Username\nold1\n"),
            None,
            &sender,
            now,
        )
        .unwrap();
        let pending = |conn: &Connection| -> Vec<(i64, String)> {
            conn.prepare("SELECT id, sha256 FROM uploads WHERE state = 'pending'")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        // Surveyed again with nothing new: nothing adopted, nothing hashed anew.
        assert!(!adopt_unrecorded(&store.conn, &spool, tenant_id, now).unwrap());
        assert_eq!(
            pending(&store.conn),
            [(first.id.unwrap(), first.sha256.clone())]
        );

        // The rename of a second upload happened; its record did not.
        std::fs::rename(put("b", "Username\nnew1\n"), spool.pending()).unwrap();
        assert!(adopt_unrecorded(&store.conn, &spool, tenant_id, now).unwrap());
        let (size, sha) = hash_file(std::fs::File::open(spool.pending()).unwrap()).unwrap();
        assert_eq!(size, 14);
        let now_pending = pending(&store.conn);
        assert_eq!(now_pending.len(), 1);
        assert_eq!(now_pending[0].1, sha);
        assert_ne!(now_pending[0].0, first.id.unwrap());
        let old_state: String = store
            .conn
            .query_row(
                "SELECT state FROM uploads WHERE id = ?1",
                [first.id.unwrap()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_state, "superseded");
        assert!(!adopt_unrecorded(&store.conn, &spool, tenant_id, now).unwrap());
    }
}
