//! The SFTP view a district gets: a virtual root `/` holding at most the
//! pending `users.csv`, which is the only name it may write. Everything else is
//! refused with "permission denied" and a message naming `users.csv`. Writes go
//! to a private temporary file; only a clean close publishes it, and only a
//! file the upload check passes (`crate::import::check`, fed the writes as
//! they arrive): a broken one is refused at the write that shows it, or at
//! the close, with a one-line reason, and replaces nothing.

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use russh_sftp::protocol::{
    Attrs, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;

use super::Shared;
use super::ledger::HandleSlot;
use crate::import::check::{self, Refusal, UploadCheck};
use crate::metrics::UploadRefusal;
use crate::spool::{self, Sender, TenantSpool, USERS_CSV};

/// What every refusal says.
pub const ONLY_USERS_CSV: &str =
    "permission denied: only users.csv may be uploaded, in the root folder";

fn denied() -> StatusReply {
    StatusCode::PermissionDenied.with_message(ONLY_USERS_CSV)
}

fn failure(message: impl Into<String>) -> StatusReply {
    StatusCode::Failure.with_message(message)
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

/// A path inside the virtual root: the root itself, or one name in it.
#[derive(Debug, PartialEq, Eq)]
pub enum VPath {
    Root,
    Name(String),
}

/// Resolve a client path. `.` and repeated slashes are ignored; `..` and any
/// sub-path are refused, so no path can leave the root.
pub fn resolve(path: &str) -> Option<VPath> {
    let mut parts = path.split('/').filter(|p| !p.is_empty() && *p != ".");
    match (parts.next(), parts.next()) {
        (None, _) => Some(VPath::Root),
        (Some(".."), _) | (Some(_), Some(_)) => None,
        (Some(name), None) => Some(VPath::Name(name.to_owned())),
    }
}

/// Canonical form for `realpath`: `..` is clamped at the root, as a chroot does.
pub fn canonical(path: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            p => stack.push(p),
        }
    }
    format!("/{}", stack.join("/"))
}

/// An upload in progress.
struct Upload {
    file: Arc<std::fs::File>,
    tmp: PathBuf,
    /// `users.csv`, or a temporary name that a rename will publish.
    name: String,
    /// Set once a write failed: the handle is dead and its file removed.
    failed: Option<String>,
    /// The SHA-256 of the bytes written in order from the start; `None` once
    /// a write went back over them (publishing then hashes the whole file).
    hashed: Option<spool::Hashed>,
    /// Bytes written since the last background sync started.
    unsynced: u64,
    /// The background sync in progress, if any (at most one per upload).
    syncing: Option<tokio::task::JoinHandle<()>>,
    /// The upload check, fed the writes that continue the bytes it has
    /// taken; `None` if the district's rules could not be read (the import
    /// alone then judges the file).
    check: Option<Box<UploadCheck>>,
    /// When the client opened it, for the upload's duration.
    opened: std::time::Instant,
}

/// The longest status message a refusal sends: one line a client's log
/// keeps whole.
const REFUSAL_STATUS_BYTES: usize = 400;

/// Every this many bytes written, an upload's data is synced to disk in the
/// background: the fsync at close, which makes the upload durable before
/// it is acknowledged, then waits for the last few megabytes instead of the
/// whole file (0.3 to 0.7 s for 256 MiB on this machine), and one upload
/// never leaves the disk hundreds of megabytes to flush at once.
const SYNC_EVERY: u64 = 32 << 20;

impl Upload {
    /// Account for `data`, just written at `offset`: hash it if it extends
    /// the hashed prefix, and start a background sync when due.
    fn written(&mut self, offset: u64, data: &[u8]) -> Result<(), Refusal> {
        if let Some(hashed) = &mut self.hashed {
            if offset == hashed.upto() {
                hashed.update(data);
            } else if offset < hashed.upto() {
                // Hashed bytes were overwritten.
                self.hashed = None;
            }
            // A write past the prefix (out of order) is hashed at close.
        }
        self.unsynced += data.len() as u64;
        if self.unsynced >= SYNC_EVERY && self.syncing.as_ref().is_none_or(|s| s.is_finished()) {
            self.unsynced = 0;
            let file = self.file.clone();
            // Only an early start: a failure shows again at the fsync of
            // close, which decides.
            self.syncing = Some(tokio::task::spawn_blocking(move || {
                let _ = file.sync_data();
            }));
        }
        self.check_written(offset, data)
    }

    /// Feed the upload check `data`, written at `offset`, if it continues
    /// the bytes the check has taken. A write past them (out of order) is
    /// left for the close, which reads on from where they stop; a write
    /// over them starts the check again from the start of the file, and
    /// the close reads what the writes then do not bring. Either way each
    /// byte is checked at most twice: no write order makes the close slow.
    fn check_written(&mut self, offset: u64, data: &[u8]) -> Result<(), Refusal> {
        let Some(check) = &mut self.check else {
            return Ok(());
        };
        if offset < check.fed() {
            **check = UploadCheck::new(check.rules());
        }
        if offset == check.fed() {
            check.feed(data)?;
        }
        Ok(())
    }

    /// The upload is refused with `message`: later writes and the close
    /// answer it too. Its file is moved aside (out of reach of the session
    /// ending) for its record; returns where it went, and the hash so far.
    fn refused(&mut self, message: String) -> (PathBuf, Option<spool::Hashed>) {
        self.failed = Some(message);
        let aside = self.tmp.with_extension("refused");
        let file = match std::fs::rename(&self.tmp, &aside) {
            Ok(()) => aside,
            Err(_) => self.tmp.clone(),
        };
        (file, self.hashed.take())
    }
}

enum Open {
    Upload(Box<Upload>),
    Dir { listed: bool },
}

/// An open handle and its place in the district's count of handles and bytes.
struct Entry {
    open: Open,
    slot: HandleSlot,
}

/// One SFTP subsystem of an authenticated session.
pub struct SftpSession {
    shared: Arc<Shared>,
    spool: TenantSpool,
    sender: Sender,
    handles: HashMap<String, Entry>,
    /// What was hashed of the staged files this session closed, by name.
    staged: HashMap<String, spool::Hashed>,
    next_handle: u64,
    /// Writes refused for their name so far (see [`Self::refuse_name`]).
    refused_names: u32,
    span: tracing::Span,
    /// The login's hold on the district's spool folder, kept while an
    /// upload may still be published, even past the SSH session's end.
    _hold: Arc<std::fs::File>,
}

impl SftpSession {
    /// `span` is the SSH session's (district, address, key): russh-sftp runs the
    /// handler on a task of its own, so its events name their parent. `hold`
    /// is the login's hold on the district's spool folder.
    pub fn new(
        shared: Arc<Shared>,
        subdomain: &str,
        sender: Sender,
        span: tracing::Span,
        hold: Arc<std::fs::File>,
    ) -> Self {
        let spool = TenantSpool::new(&shared.config().storage.spool, subdomain);
        Self {
            shared,
            spool,
            sender,
            span,
            _hold: hold,
            handles: HashMap::new(),
            staged: HashMap::new(),
            next_handle: 0,
            refused_names: 0,
        }
    }

    /// Refuse a write to `path`, a name other than `users.csv` in the root
    /// (`users_20261205.csv`, `upload/users.csv`). The session's first few
    /// are logged at warn and kept for `rosterd status` and `tenant show`,
    /// so support can answer "we uploaded it, why nothing?"; a client
    /// repeating itself is logged only at debug and stores nothing more.
    fn refuse_name(&mut self, action: &'static str, path: &str) -> StatusReply {
        const NOTED_PER_SESSION: u32 = 5;
        self.refused_names += 1;
        let name = crate::domain::text::echo(path, 255);
        if self.refused_names <= NOTED_PER_SESSION {
            tracing::warn!(parent: &self.span, %name, action, "upload refused for its name: only users.csv in the root folder is accepted");
            self.shared.record_refused_upload(
                self.sender.tenant_id,
                &self.sender.remote_addr,
                &name,
                action,
            );
        } else {
            tracing::debug!(parent: &self.span, %name, action, "upload refused for its name");
        }
        self.shared.metrics.upload_refused(UploadRefusal::Name);
        denied()
    }

    /// Refuse a request that is no upload (remove, mkdir, symlink).
    fn refuse_operation(&self) -> StatusReply {
        self.shared.metrics.upload_refused(UploadRefusal::Operation);
        denied()
    }

    /// A failure of the server to store an upload, counted as `reason`.
    fn storage_failure(&self, reason: UploadRefusal, message: impl Into<String>) -> StatusReply {
        self.shared.metrics.upload_refused(reason);
        failure(message)
    }

    /// A new handle's name and slot, or a failure when the district already
    /// has `server.max_open_handles_per_tenant` open over all its sessions
    /// (each upload holds a file and a descriptor).
    fn new_handle(&mut self, prefix: &str) -> Result<(String, HandleSlot), StatusReply> {
        let max = self.shared.config().server.max_open_handles_per_tenant;
        let slot = self
            .shared
            .ledger
            .handle(self.sender.tenant_id, max)
            .ok_or_else(|| {
                self.storage_failure(UploadRefusal::Handles, format!(
                    "too many open files for this district (at most {max} over all its sessions); close some first"
                ))
            })?;
        self.next_handle += 1;
        Ok((format!("{prefix}{}", self.next_handle), slot))
    }

    fn get(&self, handle: &str) -> Option<&Open> {
        self.handles.get(handle).map(|e| &e.open)
    }

    /// Write `data` at `offset` of the upload `handle`: what an
    /// `SSH_FXP_WRITE` does, taking the data where it was received.
    pub async fn write_at(
        &mut self,
        id: u32,
        handle: &str,
        offset: u64,
        data: &[u8],
    ) -> Result<Status, StatusReply> {
        let config = self.shared.config();
        let max = config.server.max_upload_bytes;
        let in_flight = config.server.upload_bytes_in_flight_per_tenant();
        let span = &self.span;
        let metrics = &self.shared.metrics;
        let Some(Entry {
            open: Open::Upload(upload),
            slot,
        }) = self.handles.get_mut(handle)
        else {
            return Err(StatusCode::Failure.with_message("invalid handle"));
        };
        if let Some(message) = &upload.failed {
            return Err(failure(message.clone()));
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > max {
            metrics.upload_refused(UploadRefusal::TooLarge);
            return Err(Self::fail_upload(
                upload,
                format!(
                    "users.csv is larger than this server accepts ({max} bytes); nothing was stored"
                ),
            ));
        }
        if !slot.reserve_to(end, in_flight) {
            tracing::warn!(parent: span, limit = in_flight, "upload refused: the district's uploads in progress would exceed their byte limit");
            metrics.upload_refused(UploadRefusal::BytesInFlight);
            return Err(Self::fail_upload(
                upload,
                format!(
                    "this district's uploads in progress together exceed {in_flight} bytes; finish or cancel the others first; nothing was stored"
                ),
            ));
        }
        let file = upload.file.clone();
        // pwrite at the client's offset: out-of-order and concurrent writes
        // (rclone, lftp) land where they belong.
        let written = tokio::task::block_in_place(|| file.write_all_at(data, offset));
        if let Err(e) = written {
            let (message, reason) = if e.raw_os_error() == Some(28) {
                (
                    "the server's disk is full; nothing was stored, please try again later"
                        .to_string(),
                    UploadRefusal::DiskFull,
                )
            } else {
                (
                    format!("the server could not store users.csv ({e}); nothing was stored"),
                    UploadRefusal::Storage,
                )
            };
            tracing::error!(parent: span, error = %e, "upload write failed");
            metrics.upload_refused(reason);
            return Err(Self::fail_upload(upload, message));
        }
        metrics.upload_bytes(data.len() as u64);
        let Err(refusal) = upload.written(offset, data) else {
            return Ok(ok(id));
        };
        let message = refusal_status(&upload.name, &refusal);
        let name = upload.name.clone();
        let (file, hashed) = upload.refused(message.clone());
        self.record_refusal(&name, file, hashed, refusal, "write");
        Err(failure(message))
    }

    /// The district's rules for the upload check, read at each open (a
    /// mapping support just changed applies to the next upload); `None`,
    /// logged, if they cannot be read.
    async fn check_rules(&self) -> Option<Arc<check::Rules>> {
        let shared = self.shared.clone();
        let tenant_id = self.sender.tenant_id;
        let read = tokio::task::spawn_blocking(move || -> anyhow::Result<check::Rules> {
            let conn = shared.store.lock().unwrap_or_else(|e| e.into_inner());
            let tz = crate::store::tenant_by_id(&conn, tenant_id)?
                .ok_or_else(|| anyhow::anyhow!("the district is gone"))?
                .timezone_or(shared.config().schedule.timezone);
            let today = shared.clock.now().with_timezone(&tz).date_naive();
            check::Rules::load(&conn, tenant_id, today)
        })
        .await;
        match read.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(rules) => Some(Arc::new(rules)),
            Err(e) => {
                tracing::error!(parent: &self.span, error = %format!("{e:#}"), "cannot read the district's rules for the upload check; this upload is left to the import to judge");
                None
            }
        }
    }

    /// An upload refused by the upload check at its `moment` (`write` or
    /// `close`): logged at warn, then recorded in the background (its row,
    /// a passwords-blanked copy, the administrator's note, at most one a
    /// night) while the client has its answer at once. `file` holds what
    /// was received; the recording removes it.
    fn record_refusal(
        &self,
        name: &str,
        file: PathBuf,
        hashed: Option<spool::Hashed>,
        refusal: Refusal,
        moment: &'static str,
    ) {
        self.shared
            .metrics
            .upload_refused(UploadRefusal::BrokenFile);
        tracing::warn!(parent: &self.span, %name, at = moment, reason = %refusal.reason, "upload refused: the file shows it cannot be imported; it replaced nothing, and the district's job was told why");
        let (shared, spool, sender) =
            (self.shared.clone(), self.spool.clone(), self.sender.clone());
        let (span, hold) = (self.span.clone(), self._hold.clone());
        tokio::task::spawn_blocking(move || {
            // Kept until the record is made: support cannot move the
            // district's folder from under it.
            let _hold = hold;
            let config = shared.config();
            let now = shared.clock.now();
            let conn = shared.writer.lock().unwrap_or_else(|e| e.into_inner());
            let mail = |size, sha256: &str| {
                refusal_mail(&conn, &config, &sender, (size, sha256), &refusal, now)
                    .inspect_err(|e| tracing::error!(parent: &span, error = %format!("{e:#}"), "cannot compose the refused upload's note to the administrator"))
                    .ok()
                    .flatten()
            };
            let refused = spool::Refused {
                file: &file,
                hashed,
                sender: &sender,
                at: now,
                reason: &refusal.reason,
            };
            match spool::refuse(&conn, &spool, refused, mail) {
                Ok(upload_id) => {
                    tracing::info!(parent: &span, upload_id, "refused upload recorded")
                }
                Err(e) => {
                    tracing::error!(parent: &span, error = %format!("{e:#}"), "cannot record a refused upload")
                }
            }
        });
    }

    /// The file a visible name stands for: the pending upload or a staged one.
    fn visible_path(&self, name: &str) -> Option<PathBuf> {
        if name == USERS_CSV {
            Some(self.spool.pending())
        } else if spool::is_staging_name(name) {
            Some(self.spool.staging().join(name))
        } else {
            None
        }
    }

    fn attrs_of(&self, name: &str) -> Result<FileAttributes, StatusReply> {
        let path = self
            .visible_path(name)
            .ok_or_else(|| StatusReply::new(StatusCode::NoSuchFile))?;
        let meta = std::fs::metadata(path).map_err(|_| StatusReply::new(StatusCode::NoSuchFile))?;
        Ok(file_attrs(&meta))
    }

    /// Publish a completed upload or staged file as the pending users.csv.
    async fn publish(
        &self,
        complete: PathBuf,
        hashed: Option<spool::Hashed>,
    ) -> Result<(), StatusReply> {
        let shared = self.shared.clone();
        let spool = self.spool.clone();
        let sender = self.sender.clone();
        let result = tokio::task::spawn_blocking(move || {
            let now = shared.clock.now();
            // Its own connection: waiting for an import's write lock here must
            // not hold up the logins that read through `store`.
            let conn = shared.writer.lock().unwrap_or_else(|e| e.into_inner());
            spool::publish(&conn, &spool, &complete, hashed, &sender, now)
        })
        .await;
        match result {
            Ok(Ok((upload, superseded))) => {
                // Freeing the replaced file's blocks is not the client's wait.
                tokio::task::spawn_blocking(move || drop(superseded));
                self.shared.metrics.upload_published();
                self.shared.uploaded.notify_one();
                tracing::info!(parent: &self.span, upload = upload.id, size = upload.size, sha256 = %upload.sha256, "users.csv received");
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::error!(parent: &self.span, error = %e, "could not publish users.csv");
                Err(self.storage_failure(
                    UploadRefusal::Storage,
                    "the server could not store users.csv; nothing was changed, please upload again",
                ))
            }
            Err(e) => {
                tracing::error!(parent: &self.span, error = %e, "publish task failed");
                Err(self.storage_failure(
                    UploadRefusal::Storage,
                    "the server could not store users.csv; please upload again",
                ))
            }
        }
    }

    /// Finish the upload check of the closed file at `tmp` (what the
    /// in-order writes did not bring is read from it): the refusal, if any.
    /// A check that cannot finish (the file cannot be read) refuses
    /// nothing: the import judges the file.
    async fn finish_check(
        &self,
        check: Box<UploadCheck>,
        tmp: &std::path::Path,
    ) -> Option<Refusal> {
        let path = tmp.to_owned();
        let started = std::time::Instant::now();
        let finished = tokio::task::spawn_blocking(move || check.finish(&path)).await;
        match finished.map_err(std::io::Error::other).and_then(|f| f) {
            Ok(Ok(passed)) => {
                tracing::debug!(parent: &self.span, rows = passed.rows, bad_rows = passed.bad_rows, seconds = started.elapsed().as_secs_f64(), "upload check passed");
                None
            }
            Ok(Err(refusal)) => Some(refusal),
            Err(e) => {
                tracing::error!(parent: &self.span, error = %e, "the upload check could not finish; the import will judge the file");
                None
            }
        }
    }

    fn fail_upload(upload: &mut Upload, message: String) -> StatusReply {
        let _ = std::fs::remove_file(&upload.tmp);
        upload.failed = Some(message.clone());
        failure(message)
    }
}

impl Drop for SftpSession {
    /// A session that ends with uploads still open (a dropped connection, a
    /// killed client) leaves nothing behind and publishes nothing.
    fn drop(&mut self) {
        let span = self.span.clone();
        for (_, entry) in self.handles.drain() {
            if let Open::Upload(u) = entry.open {
                let _ = std::fs::remove_file(&u.tmp);
                if u.failed.is_none() {
                    tracing::warn!(parent: &span, name = %u.name, "upload abandoned before close; discarded");
                }
            }
        }
    }
}

/// The one-line status a refused upload `name` is answered with: printable
/// ASCII, the district's text in it escaped and cut.
fn refusal_status(name: &str, refusal: &Refusal) -> String {
    crate::domain::text::ascii_line(
        &format!(
            "{} refused: {}; nothing was replaced",
            crate::domain::text::echo(name, 64),
            refusal.reason
        ),
        REFUSAL_STATUS_BYTES,
    )
}

/// The administrator's note of a refused upload (of `size` bytes and that
/// SHA-256, received now from `sender`), or `None` if the district is gone.
fn refusal_mail(
    conn: &rusqlite::Connection,
    config: &crate::config::Config,
    sender: &Sender,
    (size, sha256): (u64, &str),
    refusal: &Refusal,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Option<crate::domain::email::Outgoing>> {
    let Some(tenant) = crate::store::tenant_by_id(conn, sender.tenant_id)? else {
        return Ok(None);
    };
    let composer = crate::mail::Composer::new(&config.mail.from)?;
    let received = crate::mail::compose::Received {
        at: now,
        remote_addr: Some(sender.remote_addr.clone()),
    };
    Ok(Some(composer.refused(
        &tenant,
        tenant.timezone_or(config.schedule.timezone),
        tenant.window_or(config.schedule.window),
        (&refusal.reason, &refusal.detail),
        (size, sha256),
        &received,
        now,
    )?))
}

/// Attributes of a regular file or the root, as clients expect them.
fn file_attrs(meta: &std::fs::Metadata) -> FileAttributes {
    use std::os::unix::fs::MetadataExt;
    let mut attrs = FileAttributes::empty();
    attrs.size = Some(meta.len());
    attrs.permissions = Some(if meta.is_dir() { 0o040700 } else { 0o100600 });
    attrs.mtime = Some(meta.mtime().clamp(0, u32::MAX as i64) as u32);
    attrs.atime = attrs.mtime;
    attrs
}

fn root_attrs() -> FileAttributes {
    let mut attrs = FileAttributes::empty();
    attrs.size = Some(0);
    attrs.permissions = Some(0o040700);
    attrs
}

/// Read one SSH string from `data`, returning it and the rest.
fn ssh_string(data: &[u8]) -> Option<(String, &[u8])> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let bytes = data.get(4..4 + len)?;
    Some((
        String::from_utf8_lossy(bytes).into_owned(),
        &data[4 + len..],
    ))
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.with_message("not supported: only uploading users.csv is")
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        let mut v = Version::new();
        // Advertised so clients rename over an existing users.csv in one step
        // (a plain SFTP v3 rename may not overwrite, and remove is refused).
        v.extensions
            .insert("posix-rename@openssh.com".into(), "1".into());
        v.extensions.insert("fsync@openssh.com".into(), "1".into());
        Ok(v)
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let writes = pflags.contains(OpenFlags::WRITE);
        let name = match resolve(&filename) {
            Some(VPath::Name(name)) if self.visible_path(&name).is_some() => name,
            Some(VPath::Name(_)) | None if writes => {
                return Err(self.refuse_name("upload", &filename));
            }
            _ => return Err(denied()),
        };
        if !writes || pflags.contains(OpenFlags::READ) {
            return Err(denied());
        }
        let (handle, slot) = self.new_handle("f")?;
        let cannot = |e: std::io::Error| {
            self.storage_failure(
                UploadRefusal::Storage,
                format!("the server cannot store uploads right now: {e}"),
            )
        };
        self.spool.create_dirs().map_err(cannot)?;
        let tmp = self.spool.incoming().join(format!(
            "{}-{}.tmp",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(cannot)?;
        let hashed = spool::Hashed::new(&file).ok();
        let check = self
            .check_rules()
            .await
            .map(|rules| Box::new(UploadCheck::new(rules)));
        self.handles.insert(
            handle.clone(),
            Entry {
                open: Open::Upload(Box::new(Upload {
                    file: Arc::new(file),
                    tmp,
                    name,
                    failed: None,
                    hashed,
                    unsynced: 0,
                    syncing: None,
                    check,
                    opened: std::time::Instant::now(),
                })),
                slot,
            },
        );
        Ok(Handle { id, handle })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        self.write_at(id, &handle, offset, &data).await
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle).map(|e| e.open) {
            Some(Open::Dir { .. }) => Ok(ok(id)),
            Some(Open::Upload(upload)) => {
                if let Some(message) = upload.failed {
                    return Err(failure(message));
                }
                let Upload {
                    file,
                    tmp,
                    name,
                    hashed,
                    syncing,
                    check,
                    opened,
                    ..
                } = *upload;
                drop(file);
                if let Some(syncing) = syncing {
                    let _ = syncing.await;
                }
                if let Some(check) = check
                    && let Some(refusal) = self.finish_check(check, &tmp).await
                {
                    let message = refusal_status(&name, &refusal);
                    self.record_refusal(&name, tmp, hashed, refusal, "close");
                    return Err(failure(message));
                }
                if name == USERS_CSV {
                    self.publish(tmp, hashed).await?;
                } else {
                    let staged = self.spool.staging().join(&name);
                    if let Err(e) = std::fs::rename(&tmp, &staged) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(self.storage_failure(
                            UploadRefusal::Storage,
                            format!("the server could not store {name}: {e}"),
                        ));
                    }
                    // Kept for the rename that publishes it; the hash says
                    // which file it is of, so another session's file of the
                    // same name is hashed afresh.
                    if let Some(hashed) = hashed {
                        self.staged.insert(name, hashed);
                    }
                }
                self.shared
                    .metrics
                    .upload_stored(opened.elapsed().as_secs_f64());
                Ok(ok(id))
            }
            None => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        match resolve(&path) {
            Some(VPath::Root) => {
                let (handle, slot) = self.new_handle("d")?;
                let open = Open::Dir { listed: false };
                self.handles.insert(handle.clone(), Entry { open, slot });
                Ok(Handle { id, handle })
            }
            Some(VPath::Name(name)) if self.visible_path(&name).is_some() => {
                Err(StatusCode::Failure.with_message(format!("{name} is not a folder")))
            }
            _ => Err(denied()),
        }
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let Some(Entry {
            open: Open::Dir { listed },
            ..
        }) = self.handles.get_mut(&handle)
        else {
            return Err(StatusCode::Failure.with_message("invalid handle"));
        };
        if *listed {
            return Err(StatusCode::Eof.into());
        }
        *listed = true;
        let mut files = vec![File::new(".", root_attrs()), File::new("..", root_attrs())];
        if let Ok(meta) = std::fs::metadata(self.spool.pending()) {
            files.push(File::new(USERS_CSV, file_attrs(&meta)));
        }
        Ok(Name { id, files })
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        Ok(Name {
            id,
            files: vec![File::dummy(canonical(&path))],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        match resolve(&path) {
            Some(VPath::Root) => Ok(Attrs {
                id,
                attrs: root_attrs(),
            }),
            Some(VPath::Name(name)) => Ok(Attrs {
                id,
                attrs: self.attrs_of(&name)?,
            }),
            None => Err(StatusCode::NoSuchFile.into()),
        }
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        match self.get(&handle) {
            Some(Open::Upload(u)) => {
                let meta = u.file.metadata().map_err(|e| failure(e.to_string()))?;
                Ok(Attrs {
                    id,
                    attrs: file_attrs(&meta),
                })
            }
            Some(Open::Dir { .. }) => Ok(Attrs {
                id,
                attrs: root_attrs(),
            }),
            None => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    /// `put -p` and many clients set times and modes; accepted, without effect.
    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        match resolve(&path) {
            Some(_) => Ok(ok(id)),
            None => Err(denied()),
        }
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        if self.handles.contains_key(&handle) {
            Ok(ok(id))
        } else {
            Err(StatusCode::Failure.with_message("invalid handle"))
        }
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let (Some(VPath::Name(old)), new) = (resolve(&oldpath), resolve(&newpath)) else {
            return Err(denied());
        };
        if !spool::is_staging_name(&old) {
            return Err(denied());
        }
        if new != Some(VPath::Name(USERS_CSV.into())) {
            return Err(self.refuse_name("rename", &newpath));
        }
        let staged = self.spool.staging().join(&old);
        if !staged.exists() {
            return Err(StatusCode::NoSuchFile.with_message(format!("{old} does not exist")));
        }
        let hashed = self.staged.remove(&old);
        self.publish(staged, hashed).await?;
        Ok(ok(id))
    }

    async fn extended(
        &mut self,
        id: u32,
        request: String,
        data: Vec<u8>,
    ) -> Result<Packet, Self::Error> {
        match request.as_str() {
            "posix-rename@openssh.com" => {
                let (old, rest) =
                    ssh_string(&data).ok_or_else(|| StatusReply::new(StatusCode::BadMessage))?;
                let (new, _) =
                    ssh_string(rest).ok_or_else(|| StatusReply::new(StatusCode::BadMessage))?;
                Ok(Packet::Status(self.rename(id, old, new).await?))
            }
            "fsync@openssh.com" => {
                let (handle, _) =
                    ssh_string(&data).ok_or_else(|| StatusReply::new(StatusCode::BadMessage))?;
                match self.get(&handle) {
                    Some(Open::Upload(u)) => {
                        let file = u.file.clone();
                        tokio::task::block_in_place(|| file.sync_data())
                            .map_err(|e| failure(e.to_string()))?;
                        Ok(Packet::Status(ok(id)))
                    }
                    _ => Err(StatusCode::Failure.with_message("invalid handle")),
                }
            }
            _ => Err(self.unimplemented()),
        }
    }

    async fn remove(&mut self, _id: u32, _filename: String) -> Result<Status, Self::Error> {
        Err(self.refuse_operation())
    }

    async fn mkdir(
        &mut self,
        _id: u32,
        _path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse_operation())
    }

    async fn rmdir(&mut self, _id: u32, _path: String) -> Result<Status, Self::Error> {
        Err(self.refuse_operation())
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse_operation())
    }

    async fn readlink(&mut self, _id: u32, _path: String) -> Result<Name, Self::Error> {
        Err(denied())
    }

    async fn read(
        &mut self,
        _id: u32,
        _handle: String,
        _offset: u64,
        _len: u32,
    ) -> Result<russh_sftp::protocol::Data, Self::Error> {
        Err(denied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_leave_the_root() {
        assert_eq!(resolve("/"), Some(VPath::Root));
        assert_eq!(resolve(""), Some(VPath::Root));
        assert_eq!(resolve("."), Some(VPath::Root));
        assert_eq!(resolve("//./"), Some(VPath::Root));
        for same in [
            "users.csv",
            "/users.csv",
            "/./users.csv",
            "//users.csv",
            "./users.csv/",
        ] {
            assert_eq!(
                resolve(same),
                Some(VPath::Name("users.csv".into())),
                "{same}"
            );
        }
        for bad in [
            "../users.csv",
            "/../users.csv",
            "..",
            "/tmp/users.csv",
            "a/users.csv",
            "users.csv/x",
            "/x/../users.csv",
        ] {
            assert_eq!(resolve(bad), None, "{bad}");
        }
        assert_eq!(canonical("/../../etc"), "/etc");
        assert_eq!(canonical("."), "/");
        assert_eq!(canonical("/a/./b/.."), "/a");
    }
}
