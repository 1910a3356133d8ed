//! Telling a crash from a kill. A daemon that dies during an import is
//! resumed at its next start, because a kill or a power cut is no fault of
//! the file; but a file whose import crashed the daemon must not be resumed
//! into the same crash. So while an import runs, a fatal signal raised by
//! the daemon itself (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT: a memory
//! fault, or an abort such as a failed allocation) first writes the upload's
//! id to a marker file; the next start reads it and sets that upload aside.
//! SIGKILL cannot be caught, so a kill leaves no mark.

use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

/// The upload being imported now (0: none).
static IMPORTING: AtomicI64 = AtomicI64::new(0);
/// The open marker file (-1: not installed).
static MARKER: AtomicI32 = AtomicI32::new(-1);

const FATAL: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// Marks upload `id` as being imported until dropped.
pub struct ImportWatch;

impl ImportWatch {
    pub fn new(upload_id: i64) -> Self {
        IMPORTING.store(upload_id, Ordering::SeqCst);
        Self
    }
}

impl Drop for ImportWatch {
    fn drop(&mut self) {
        IMPORTING.store(0, Ordering::SeqCst);
    }
}

extern "C" fn on_fatal(signal: libc::c_int) {
    let id = IMPORTING.load(Ordering::SeqCst);
    let fd = MARKER.load(Ordering::SeqCst);
    // SAFETY: pwrite, fsync, signal and raise are async-signal-safe; the
    // buffer lives on this stack frame.
    unsafe {
        if id != 0 && fd >= 0 {
            let bytes = id.to_le_bytes();
            libc::pwrite(fd, bytes.as_ptr().cast(), bytes.len(), 0);
            libc::fsync(fd);
        }
        // Then die of the signal as if nothing had caught it.
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Read what the previous run left in `marker` (the upload it crashed
/// importing, if it did), clear it, and catch fatal signals from now on.
pub fn install(marker: &Path) -> anyhow::Result<Option<i64>> {
    let crashed = std::fs::read(marker)
        .ok()
        .and_then(|bytes| {
            bytes
                .get(..8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        })
        .filter(|&id| id > 0);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(marker)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", marker.display()))?;
    file.sync_all()?;
    MARKER.store(file.into_raw_fd(), Ordering::SeqCst);
    for signal in FATAL {
        // SAFETY: on_fatal only touches atomics and async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    Ok(crashed)
}
