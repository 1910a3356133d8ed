//! `rosterd serve` under systemd's eye: this test plays systemd with a real
//! unix datagram socket as `NOTIFY_SOCKET` and a one-second `WATCHDOG_USEC`,
//! and reads what the real daemon process says: ready, heartbeats from the
//! scheduler, reloading and ready again around SIGHUP, stopping on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::helpers::Env;

/// The next datagram, as text; fails the test after `within`.
fn next(socket: &UnixDatagram, within: Duration) -> String {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("rosterd said nothing to NOTIFY_SOCKET in time");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Datagrams until one holds `wanted` (a `KEY=value` line); returns those
/// before it and it.
fn until(socket: &UnixDatagram, wanted: &str) -> (Vec<String>, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {wanted} in time; got {before:?}");
        let message = next(socket, left);
        if message.lines().any(|l| l == wanted) {
            return (before, message);
        }
        before.push(message);
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn serve_tells_systemd_ready_watchdog_reloading_and_stopping() {
    let env = Env::new();
    std::fs::write(
        &env.config,
        "[server]\nlisten = \"127.0.0.1:0\"\nhost_key = \"keys/host\"\n[storage]\ndatabase = \"data/rosterd.db\"\n",
    )
    .unwrap();
    let socket_path = env.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut child = env
        .command(&["serve"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();

    let (before, ready) = until(&socket, "READY=1");
    assert!(before.is_empty(), "READY=1 comes first: {before:?}");
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .expect("READY=1 carries a status line");
    assert_eq!(status, "0 connections");
    // Half the watchdog interval apart, from the scheduler's loop: a few in
    // a row, each with nothing but status lines between.
    let mut beats = Vec::new();
    for _ in 0..3 {
        let (between, beat) = until(&socket, "WATCHDOG=1");
        assert!(
            between.iter().all(|m| m.starts_with("STATUS=")),
            "{between:?}"
        );
        beats.push((Instant::now(), beat));
    }
    let statuses: Vec<&str> = beats
        .iter()
        .flat_map(|(_, b)| b.lines())
        .filter_map(|l| l.strip_prefix("STATUS="))
        .collect();
    assert!(
        statuses.contains(&"0 connections, 0 imports in the last 24 h, 0 emails queued"),
        "the scheduler's status line: {beats:?}"
    );

    signal(pid, "HUP");
    let (_, reloading) = until(&socket, "RELOADING=1");
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    let (between, _) = until(&socket, "READY=1");
    assert!(
        between.iter().all(|m| !m.contains("STOPPING=1")),
        "{between:?}"
    );

    signal(pid, "TERM");
    until(&socket, "STOPPING=1");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
