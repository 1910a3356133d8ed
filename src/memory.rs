//! Keeping the daemon's memory from drifting up over nights of imports.
//!
//! glibc's allocator gives threads that allocate at the same time arenas of
//! their own (up to eight per core) and keeps what they free for reuse. In the
//! daemon, SFTP sessions, the import's reader and writer stages and the
//! password hashers all allocate on different threads, so memory freed by one
//! night's large import stayed spread over many arenas: the load run
//! (`bench/load.py`) peaked at 500 MiB, against 190 MiB for the same import
//! alone. Two arenas per process and handing free memory back after each
//! import keep it near what the work in hand needs. Elsewhere (musl, other
//! systems) both are no-ops.

/// Arenas the daemon's allocator may use, unless `MALLOC_ARENA_MAX` says otherwise.
const ARENAS: i32 = 2;

/// Cap the allocator's arenas. Call before any thread is started.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called
        // before the daemon starts any thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// Give memory the allocator holds free back to the system (after an import,
/// whose batches and caches are gone).
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the allocator's own locks and only returns
    // pages no allocation uses.
    unsafe {
        libc::malloc_trim(0);
    }
}
