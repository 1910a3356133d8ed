//! Files only the daemon's user may read: private directories, secrets
//! written atomically, spool files opened without following a link, the
//! lock that keeps a second daemon off the same data, and swapping two
//! folders in one step.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Write a file readable only by this user, atomically: a temporary file beside
/// it (mode 0600 from creation), fsync, rename. Creates the parent directory.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let ctx =
        |what: &str, e: std::io::Error| anyhow::anyhow!("cannot {what} {}: {e}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir).map_err(|e| ctx("create the directory of", e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| ctx("create", e))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(ctx("write", e));
    }
    Ok(())
}

/// Create `dir` and its missing parents readable by the daemon's user only
/// (0700); an existing directory keeps its mode.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Open a file of the spool for reading without following a symbolic link
/// in its last component: an upload is always a plain file rosterd wrote,
/// so a link there (put by someone else on the machine) is refused rather
/// than read, and its target never reaches a report.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the file in the spool was replaced by a symbolic link on the server, so it was not read; upload users.csv again",
                )
            } else {
                e
            }
        })
}

/// Hold `dir` exclusively for as long as the returned handle lives (an
/// advisory `flock` on the directory itself, released by the kernel if the
/// process dies); `None` if another process holds it.
pub fn lock_dir(dir: &Path) -> io::Result<Option<File>> {
    private_dir(dir)?;
    let handle = File::open(dir)?;
    match handle.try_lock() {
        Ok(()) => Ok(Some(handle)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Swap two paths in one step (Linux `renameat2` with `RENAME_EXCHANGE`):
/// at no moment does either name point at nothing, so a process that opens
/// a file under one of them finds the one folder or the other, never a gap
/// it could fill with a new, empty folder of its own.
#[cfg(target_os = "linux")]
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(a.as_os_str().as_bytes())?;
    let b = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Swap two paths in one step; only Linux can.
#[cfg(not(target_os = "linux"))]
pub fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
