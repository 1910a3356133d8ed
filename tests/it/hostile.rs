//! Hostile clients: a raw paramiko client trying every request type against
//! the virtual root, handles and limits; connections that never finish the
//! handshake (authentication floods are in `server.rs`). Legitimate districts
//! on other addresses must not notice.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::server::{TestServer, tenant_with_key};

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = files_under(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn a_hostile_sftp_client_gets_nothing_and_breaks_nothing() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let (other_key, _) = tenant_with_key(&env, "other-district");
    let srv = TestServer::start(env, |c| c.server.max_upload_bytes = 1 << 20);
    srv.env.file("users.csv", "Username\nother1\n");
    assert_eq!(
        srv.sftp("other-district", &other_key, "put users.csv\n").0,
        0
    );
    let other_before = tree(&srv.env.path("data/spool/other-district"));

    let stdout = srv.paramiko("hostile_sftp.py", &[], "lincoln", &key, 300);
    let results: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(stdout.trim()).expect("json");
    assert!(results.len() > 200, "only {} checks ran", results.len());
    let failures: Vec<_> = results.iter().filter(|(_, v)| *v != "ok").collect();
    assert!(failures.is_empty(), "{failures:#?}");

    // Nothing leaked into the file system: the district's spool holds only its
    // users.csv (the last complete upload), no stray or sparse file.
    assert_eq!(
        tree(&srv.env.path("data/spool/lincoln")),
        [".sessions.lock", ".spool.lock", "users.csv"]
    );
    assert_eq!(
        tree(&srv.env.path("data/spool/other-district")),
        other_before
    );
    assert!(!srv.env.path("data/spool/lincoln/link.csv").exists());
    // And the server still serves both districts.
    srv.env.file("users.csv", "Username\nafter1\n");
    assert_eq!(srv.sftp("lincoln", &key, "put users.csv\n").0, 0);
    assert_eq!(srv.sftp("other-district", &other_key, "ls\n").0, 0);
}

/// Whether the server closes `conn` (EOF) within `limit`, and whether it
/// first sent its SSH version line.
fn closed_within(mut conn: TcpStream, limit: Duration) -> (bool, bool) {
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut banner = false;
    let mut buf = [0u8; 256];
    while start.elapsed() < limit {
        match conn.read(&mut buf) {
            Ok(0) => return (true, banner),
            Ok(n) => banner |= buf[..n].starts_with(b"SSH-2.0-"),
            Err(_) => {}
        }
    }
    (false, banner)
}

#[test]
fn stalled_connections_from_one_address_do_not_lock_out_others() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |c| {
        c.server.login_grace_seconds = 3;
        c.server.max_pending_logins_per_address = 5;
        c.server.max_sessions = 20;
    });
    // 20 connections that never say anything.
    let stalled: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", srv.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A district on another address logs in and uploads meanwhile.
    srv.env.file("users.csv", "Username\nfirst1\n");
    let (code, _, err) = srv.sftp_from("127.0.0.2", "lincoln", &key, "put users.csv\n");
    assert_eq!(code, 0, "{err}");
    // The stalled address holds 5 slots at most; the rest wait their turn
    // without getting so much as the SSH banner, and all are let go when the
    // login grace ends.
    let outcomes: Vec<(bool, bool)> = stalled
        .into_iter()
        .map(|c| closed_within(c, Duration::from_secs(6)))
        .collect();
    assert!(outcomes.iter().all(|(closed, _)| *closed), "{outcomes:?}");
    let held = outcomes.iter().filter(|(_, banner)| *banner).count();
    assert_eq!(held, 5, "{outcomes:?}");
    // Once they are gone, that address is served again.
    let (code, _, err) = srv.sftp("lincoln", &key, "ls\n");
    assert_eq!(code, 0, "{err}");
}
