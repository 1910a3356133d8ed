//! Faults the daemon must survive without losing anything: a full disk under
//! the upload spool. (Killed daemons are in `crash.rs` and `pipeline.rs`; an
//! unreachable or refusing SMTP server in `pipeline.rs`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;
use crate::server::{TestServer, tenant_with_key};

/// A small tmpfs mounted for one test; unmounted when dropped. Needs root
/// (CI runs as root); anywhere else the test fails saying so.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill the disk and must run as root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_upload_cleanly_and_the_server_keeps_serving() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let spool = env.path("small-disk");
    let _disk = SmallDisk::mount(&spool, "1m");
    let srv = TestServer::start(env, |c| c.storage.spool = spool.clone());

    srv.env.file("users.csv", "Username\nfirst1\n");
    assert_eq!(srv.sftp("lincoln", &key, "put users.csv\n").0, 0);
    let first = std::fs::read(spool.join("lincoln/users.csv")).unwrap();

    // 2 MiB does not fit on a 1 MiB disk.
    let big: String = (0..100_000).map(|i| format!("user{i:08}\n")).collect();
    srv.env.file("big.csv", format!("Username\n{big}"));
    let (code, _, err) = srv.sftp("lincoln", &key, "put big.csv users.csv\n");
    assert_ne!(code, 0, "the upload should fail");
    // OpenSSH shows only the status code; the message ("the server's disk is
    // full…") is in the reply for clients that show it.
    assert!(err.contains("Failure"), "{err}");
    // Nothing half-written is left, the previous file is intact, nothing recorded.
    assert_eq!(
        std::fs::read(spool.join("lincoln/users.csv")).unwrap(),
        first
    );
    let leftovers: Vec<_> = std::fs::read_dir(spool.join("lincoln/incoming"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(srv.uploads().len(), 1);

    // The space is back, and so is the service.
    srv.env.file("users.csv", "Username\nsecond1\n");
    let (code, _, err) = srv.sftp("lincoln", &key, "put users.csv\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(spool.join("lincoln/users.csv")).unwrap(),
        b"Username\nsecond1\n"
    );
    assert_eq!(srv.uploads().len(), 2);
}
