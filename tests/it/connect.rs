//! A failed connection is explained: algorithm negotiation failures and
//! refused logins are logged at warn with what the client offered and why,
//! and recorded so that `rosterd status` and `tenant show` answer "why did
//! the district's job fail to connect last night?". And clients that once
//! failed connect: limited to hmac-sha1 or ssh-rsa signatures, or reading
//! `server-sig-algs` as early as libssh does.

use std::path::Path;
use std::time::Duration;

use crate::helpers::*;
use crate::pipeline::{Daemon, wait_for};
use crate::server::{ssh_opts, tenant_with_key};
use crate::smtp::free_port;

/// Listen on `port`, with `extra` server settings (the config as `Env`
/// wrote it, kept beside it the first time).
fn listen_on(env: &Env, port: u16, extra: &str) {
    let base = env.path("rosterd.toml.base");
    if !base.exists() {
        std::fs::copy(&env.config, &base).unwrap();
    }
    let config = std::fs::read_to_string(&base).unwrap().replace(
        "[server]\n",
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{extra}"),
    );
    std::fs::write(&env.config, config).unwrap();
}

/// `sftp -b -` putting users.csv as lincoln with `key` and `extra` options.
fn sftp(env: &Env, key: &Path, port: u16, extra: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("60")
        .arg("sftp")
        .args(ssh_opts(key))
        .args(extra)
        .args(["-P", &port.to_string(), "-b", "-", "lincoln@127.0.0.1"])
        .current_dir(env.dir.path());
    crate::server::run_with_stdin(cmd, "put users.csv\n")
}

fn start(env: &Env, port: u16) -> Daemon {
    let daemon = Daemon::start(env);
    wait_for("the daemon to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    daemon
}

fn log(env: &Env) -> String {
    std::fs::read_to_string(env.path("daemon.log")).unwrap_or_default()
}

/// The names a failed negotiation's log line says the client offered in
/// `list` (`key-exchange`, `host-key`, `cipher`, `MAC`, `compression`).
fn offered<'a>(line: &'a str, list: &str) -> Vec<&'a str> {
    let start = format!(" {list} ");
    let (_, rest) = line
        .split_once(&format!("the client offered{start}"))
        .or_else(|| line.split_once(&format!(";{start}")))
        .unwrap_or_else(|| panic!("no {list} offer in {line}"));
    rest.split([';', ' ']).next().unwrap().split(',').collect()
}

#[test]
fn a_client_with_only_retired_algorithms_is_explained_and_the_legacy_switch_lets_it_in() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    env.file("users.csv", "Username\njdoe\n");
    let port = free_port();
    listen_on(&env, port, "");
    let old_kex = ["-o", "KexAlgorithms=diffie-hellman-group14-sha1"];

    let daemon = start(&env, port);
    let (code, _, err) = sftp(&env, &key, port, &old_kex);
    assert_ne!(code, 0, "{err}");
    wait_for(
        "the failure in the log and the store",
        Duration::from_secs(10),
        || {
            log(&env).contains("SSH negotiation failed")
                && env
                    .ok(&["status"])
                    .contains("connections that failed before naming a district")
        },
    );
    daemon.kill();
    let line = log(&env)
        .lines()
        .find(|l| l.contains("SSH negotiation failed"))
        .unwrap()
        .to_owned();
    assert!(line.contains(" WARN "), "{line}");
    assert!(line.contains("address=127.0.0.1:"), "{line}");
    assert!(
        line.contains(
            "no key-exchange algorithm in common: the client offered key-exchange diffie-hellman-group14-sha1,"
        ),
        "{line}"
    );
    // Everything the client offered, not only the list that failed: its
    // default host-key, cipher and MAC lists, in full (none is cut).
    assert!(
        offered(&line, "key-exchange").contains(&"ext-info-c"),
        "{line}"
    );
    for (list, name) in [
        ("host-key", "ssh-ed25519"),
        ("host-key", "rsa-sha2-512"),
        ("cipher", "aes128-ctr"),
        ("cipher", "chacha20-poly1305@openssh.com"),
        ("MAC", "hmac-sha2-256"),
        ("MAC", "hmac-sha2-256-etm@openssh.com"),
        ("compression", "none"),
    ] {
        assert!(
            offered(&line, list).contains(&name),
            "{list} {name}: {line}"
        );
    }
    assert!(!line.contains("[cut:"), "{line}");
    assert!(line.contains("; rosterd offers key-exchange "), "{line}");
    assert!(line.contains("server.legacy_algorithms"), "{line}");
    let status = env.ok(&["status"]);
    assert!(
        status.contains("from 127.0.0.1: no key-exchange algorithm in common: the client offered key-exchange diffie-hellman-group14-sha1,"),
        "{status}"
    );
    assert!(status.contains("; MAC "), "{status}");

    // The documented switch lets the same client in.
    listen_on(&env, port, "legacy_algorithms = true\n");
    let daemon = start(&env, port);
    let (code, _, err) = sftp(&env, &key, port, &old_kex);
    daemon.kill();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_refused_login_names_the_key_and_the_reason_in_the_log_status_and_tenant_show() {
    let env = Env::new();
    let (key, fingerprint) = tenant_with_key(&env, "lincoln");
    env.file("users.csv", "Username\njdoe\n");
    let other = env.path("other_key");
    ssh_keygen(&["-q", "-t", "ecdsa", "-N", "", "-f", other.to_str().unwrap()]);
    let port = free_port();
    listen_on(&env, port, "");
    let daemon = start(&env, port);

    let (code, _, _) = sftp(&env, &other, port, &[]);
    assert_ne!(code, 0);
    // A revoked key: the reason says so.
    env.ok(&["key", "revoke", "lincoln", &fingerprint]);
    let (code, _, _) = sftp(&env, &key, port, &[]);
    assert_ne!(code, 0);
    wait_for("both refusals recorded", Duration::from_secs(10), || {
        env.ok(&["tenant", "show", "lincoln"])
            .matches("login refused")
            .count()
            == 2
    });
    daemon.kill();

    let other_fp = String::from_utf8(ssh_keygen(&["-lf", other.to_str().unwrap()]).stdout).unwrap();
    let other_fp = other_fp.split_whitespace().nth(1).unwrap().to_owned();
    let log = log(&env);
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("login refused"))
        .collect();
    assert_eq!(refused.len(), 2, "{log}");
    assert!(
        refused
            .iter()
            .all(|l| l.contains(" WARN ") && l.contains("address=127.0.0.1:")),
        "{refused:?}"
    );
    assert!(
        refused[0].contains(&format!(
            "lincoln: ECDSA 256 {other_fp}: the key is not registered for this district"
        )),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains(&format!(
            "lincoln: ED25519 256 {fingerprint}: the key was revoked at"
        )),
        "{}",
        refused[1]
    );
    let show = env.ok(&["tenant", "show", "lincoln"]);
    assert!(
        show.contains("the newest 2 connections that ended without a login"),
        "{show}"
    );
    assert!(
        show.contains(&format!(
            "as \"lincoln\": login refused: ECDSA 256 {other_fp}"
        )),
        "{show}"
    );
    let status = env.ok(&["status"]);
    assert!(status.contains("  last refused  "), "{status}");
    assert!(status.contains("the key was revoked at"), "{status}");
}

#[test]
fn a_district_throttled_by_its_own_failures_is_named_once_in_the_log_and_in_status_and_tenant_show()
{
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    env.file("users.csv", "Username\njdoe\n");
    let other = env.path("other_key");
    ssh_keygen(&["-q", "-t", "ecdsa", "-N", "", "-f", other.to_str().unwrap()]);
    let other_fp = String::from_utf8(ssh_keygen(&["-lf", other.to_str().unwrap()]).stdout).unwrap();
    let other_fp = other_fp.split_whitespace().nth(1).unwrap().to_owned();
    let port = free_port();
    listen_on(&env, port, "auth_failures_before_ban = 3\n");
    let daemon = start(&env, port);
    // The daemon's clock starts at NIGHT; so does the CLI's here.
    let cli = |args: &[&str]| {
        let out = env
            .command(args)
            .env("ROSTERD_NOW", crate::pipeline::NIGHT)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for _ in 0..4 {
        assert_ne!(sftp(&env, &other, port, &[]).0, 0);
    }
    wait_for("the throttle recorded", Duration::from_secs(10), || {
        cli(&["status"]).contains("4 failed logins")
    });
    // Its registered key still uploads.
    let (code, _, err) = sftp(&env, &key, port, &[]);
    assert_eq!(code, 0, "{err}");
    daemon.kill();

    let log = log(&env);
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("district throttled"))
        .collect();
    assert_eq!(warned.len(), 1, "warned once: {log}");
    for part in [
        " WARN ",
        "district=lincoln",
        "address=127.0.0.1",
        "failures=3",
        &format!("keys={other_fp}"),
        "until=2026-11-20T04:",
    ] {
        assert!(warned[0].contains(part), "{part} missing: {}", warned[0]);
    }
    let status = cli(&["status"]);
    let line = status
        .lines()
        .find(|l| l.starts_with("  THROTTLED     "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        line.starts_with("  THROTTLED     4 failed logins from 127.0.0.1 since 2026-11-19 23:"),
        "{line}"
    );
    assert!(line.contains(", throttled until 2026-11-19 23:"), "{line}");
    assert!(
        line.ends_with(&format!("; keys tried: {other_fp}")),
        "{line}"
    );
    let show = cli(&["tenant", "show", "lincoln"]);
    assert!(
        show.contains("THROTTLED   4 failed logins from 127.0.0.1 since"),
        "{show}"
    );
    // Once it has ended, neither shows it.
    let later = env
        .command(&["status"])
        .env("ROSTERD_NOW", "2026-11-20T05:00:00Z")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&later.stdout).contains("THROTTLED"));
}

/// `sftp` as lincoln from `source` (a loopback alias) to `host`.
fn sftp_from(env: &Env, key: &Path, host: &str, port: u16, source: &str) -> (i32, String, String) {
    let bind = format!("BindAddress={source}");
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("60")
        .arg("sftp")
        .args(ssh_opts(key))
        .args(["-o", &bind, "-P", &port.to_string(), "-b", "-"])
        .arg(format!("lincoln@{host}"))
        .current_dir(env.dir.path());
    crate::server::run_with_stdin(cmd, "put users.csv\n")
}

#[test]
fn keys_log_in_only_from_where_their_from_option_and_the_district_allow() {
    let env = Env::new();
    env.ok(&[
        "tenant",
        "add",
        "lincoln",
        "--admin-name",
        "A",
        "--admin-email",
        "a@example.org",
    ]);
    let new_key = |name: &str| {
        let key = env.path(name);
        ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]);
        key
    };
    let key = new_key("lincoln_key");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let stranger = new_key("stranger_key");
    let public_path = key.with_extension("pub");
    let bind_key = |from: &str| {
        env.ok(&[
            "key",
            "add",
            "lincoln",
            public_path.to_str().unwrap(),
            "--from",
            from,
        ]);
    };
    env.file("users.csv", "Username\njdoe\n");

    // A pasted authorized_keys line: from= is honoured, the rest reported.
    let line = env.file(
        "line.pub",
        format!("from=\"127.0.0.1\",command=\"/bin/false\",no-pty {public}"),
    );
    let (code, fingerprint, err) = env.run(&["key", "add", "lincoln", line.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let fingerprint = fingerprint.trim().to_owned();
    assert!(err.contains("only from 127.0.0.1"), "{err}");
    assert!(err.contains("ignored options: command, no-pty"), "{err}");
    assert!(
        env.ok(&["key", "list", "lincoln"])
            .contains("active from 127.0.0.1"),
        "{}",
        env.ok(&["key", "list", "lincoln"])
    );

    let port = free_port();
    listen_on(&env, port, "");
    let daemon = start(&env, port);
    let ok = |source: &str| sftp_from(&env, &key, "127.0.0.1", port, source);
    assert_eq!(ok("127.0.0.1").0, 0, "{}", ok("127.0.0.1").2);
    // From elsewhere: refused exactly as a key nobody registered.
    let (code, _, refused) = ok("127.0.0.2");
    let (stranger_code, _, unknown) = sftp_from(&env, &stranger, "127.0.0.1", port, "127.0.0.2");
    assert_ne!(code, 0);
    assert_eq!((code, refused.trim()), (stranger_code, unknown.trim()));
    assert!(
        refused.contains("Permission denied (publickey)"),
        "{refused}"
    );

    // --from replaces the restriction: a block with one address excluded.
    let (code, _, err) = env.run(&[
        "key",
        "add",
        "lincoln",
        key.with_extension("pub").to_str().unwrap(),
        "--from",
        "!127.0.0.2,127.0.0.0/8",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("address restriction updated"), "{err}");
    assert_eq!(ok("127.0.0.3").0, 0);
    assert_ne!(ok("127.0.0.2").0, 0);
    assert_eq!(ok("127.0.0.1").0, 0);

    // The district's own list applies on top of each key's.
    env.ok(&["tenant", "set", "lincoln", "--allow-from", "127.0.0.3"]);
    assert!(
        env.ok(&["tenant", "show", "lincoln"])
            .contains("allow from  127.0.0.3")
    );
    assert_ne!(ok("127.0.0.1").0, 0);
    assert_eq!(ok("127.0.0.3").0, 0);
    env.ok(&["tenant", "set", "lincoln", "--allow-from", "any"]);
    assert_eq!(ok("127.0.0.1").0, 0);
    wait_for("the refusals recorded", Duration::from_secs(10), || {
        env.ok(&["tenant", "show", "lincoln"])
            .contains("district allows only 127.0.0.3")
    });
    daemon.kill();

    let log = log(&env);
    let from_refusal = log
        .lines()
        .find(|l| {
            l.contains("login refused") && l.contains("the key may log in only from 127.0.0.1")
        })
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        from_refusal.contains(" WARN ") && from_refusal.contains("address=127.0.0.2:"),
        "{from_refusal}"
    );
    assert!(from_refusal.contains(&fingerprint), "{from_refusal}");

    // IPv6: a key bound to ::1 logs in over ::1, one bound to 127.0.0.1 does not.
    let port = free_port();
    let base = std::fs::read_to_string(env.path("rosterd.toml.base")).unwrap();
    std::fs::write(
        &env.config,
        base.replace(
            "[server]\n",
            &format!("[server]\nlisten = \"[::1]:{port}\"\n"),
        ),
    )
    .unwrap();
    bind_key("[::1]");
    let daemon = Daemon::start(&env);
    wait_for("the daemon on ::1", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("::1", port)).is_ok()
    });
    assert_eq!(sftp_from(&env, &key, "[::1]", port, "::1").0, 0);
    bind_key("127.0.0.1");
    assert_ne!(sftp_from(&env, &key, "[::1]", port, "::1").0, 0);
    daemon.kill();

    // Certificate options are refused outright.
    let cert = env.file("cert.pub", format!("cert-authority {public}"));
    let (code, _, err) = env.run(&["key", "add", "lincoln", cert.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("cert-authority is not supported"), "{err}");
}

#[test]
fn a_second_daemon_on_the_same_data_directory_is_refused_and_the_first_runs_on() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    env.file("users.csv", "Username\njdoe\n");
    let port = free_port();
    listen_on(&env, port, "");
    let first = start(&env, port);
    // The same data, another port.
    let other = env.path("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&env.config)
            .unwrap()
            .replace(&format!(":{port}\""), &format!(":{}\"", free_port())),
    )
    .unwrap();
    // Bounded: a second daemon that did start would run until killed.
    let out = std::process::Command::new("timeout")
        .args([
            "20",
            crate::helpers::BIN,
            "--config",
            other.to_str().unwrap(),
            "serve",
        ])
        .current_dir(env.dir.path())
        .env_remove("ROSTERD_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (code, _, err) = decode(out);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("another rosterd serve is already running on the data directory data (database data/rosterd.db); stop it first"),
        "{err}"
    );
    // The first daemon is unaffected and serves on.
    let (code, _, err) = sftp(&env, &key, port, &[]);
    assert_eq!(code, 0, "{err}");
    first.kill();
    // Once it is gone (even killed), the data directory is free again.
    let second = start(&env, port);
    let (code, _, err) = sftp(&env, &key, port, &[]);
    assert_eq!(code, 0, "{err}");
    second.kill();
}

#[test]
fn clients_limited_to_hmac_sha1_or_ssh_rsa_signatures_connect_without_the_legacy_switch() {
    let env = Env::new();
    let (ed25519, _) = tenant_with_key(&env, "lincoln");
    let rsa = env.path("rsa_key");
    ssh_keygen(&[
        "-q",
        "-t",
        "rsa",
        "-b",
        "2048",
        "-N",
        "",
        "-f",
        rsa.to_str().unwrap(),
    ]);
    env.ok(&["key", "add", "lincoln", &format!("{}.pub", rsa.display())]);
    env.file("users.csv", "Username\njdoe\n");
    let port = free_port();
    listen_on(&env, port, "");
    let daemon = start(&env, port);

    // OpenSSH 9.x's sshd offers hmac-sha1 by default; so does rosterd now.
    let (code, _, err) = sftp(
        &env,
        &ed25519,
        port,
        &["-c", "aes128-ctr", "-o", "MACs=hmac-sha1"],
    );
    assert_eq!(code, 0, "hmac-sha1: {err}");
    let (code, _, err) = sftp(
        &env,
        &ed25519,
        port,
        &["-c", "aes128-ctr", "-o", "MACs=hmac-sha1-etm@openssh.com"],
    );
    assert_eq!(code, 0, "hmac-sha1-etm: {err}");

    // A client that signs with ssh-rsa (SHA-1) only, and trusts the server's
    // server-sig-algs to say whether that is accepted: rosterd accepted the
    // signature but did not list it, so the client gave up.
    let (code, _, err) = sftp(
        &env,
        &rsa,
        port,
        &["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"],
    );
    assert_eq!(code, 0, "OpenSSH limited to ssh-rsa: {err}");
    daemon.kill();
    // (paramiko 5 no longer signs with ssh-rsa at all; the paramiko 2.x
    // that SIS exports embed does, and honours server-sig-algs the same way.)
}

/// libssh 0.10 chooses how to sign with an RSA key from `server-sig-algs`
/// as soon as it has processed the server's NEWKEYS, before it sends
/// anything more. rosterd sent its EXT_INFO only once the client's NEWKEYS
/// had arrived: too late, so libssh fell back to `ssh-rsa`, which its own
/// defaults then refused ("The key algorithm 'ssh-rsa' is not allowed to be
/// used by PUBLICKEY_ACCEPTED_TYPES"). This client stops where libssh
/// decides: it sends its KEXINIT (with `ext-info-c`) and its key-exchange
/// packet but never its NEWKEYS, and reads what the server sends. The
/// cipher is AES-GCM, whose packet length travels in clear, so the packet
/// after NEWKEYS can be told to be EXT_INFO by its size. `tests/compat.sh`
/// runs libssh itself.
#[test]
fn server_sig_algs_arrives_before_the_client_sends_its_newkeys() {
    use std::io::{BufRead, BufReader, Read, Write};

    let srv = crate::server::TestServer::start(Env::new(), |_| {});
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"SSH-2.0-rosterd_test\r\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut banner = String::new();
    reader.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("SSH-2.0-"), "{banner}");
    assert_eq!(
        read_clear_packet(&mut reader)[0],
        20,
        "the server's KEXINIT"
    );

    let mut kexinit = vec![20];
    kexinit.extend([0; 16]);
    for list in [
        "curve25519-sha256,ext-info-c",
        "ssh-ed25519",
        "aes128-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "hmac-sha2-256",
        "hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ] {
        put_string(&mut kexinit, list.as_bytes());
    }
    kexinit.extend([0; 5]); // first_kex_packet_follows, reserved
    let mut ecdh_init = vec![30];
    let mut base_point = [0; 32]; // a valid X25519 public key
    base_point[0] = 9;
    put_string(&mut ecdh_init, &base_point);
    for payload in [kexinit, ecdh_init] {
        stream.write_all(&clear_packet(&payload)).unwrap();
    }
    assert_eq!(read_clear_packet(&mut reader)[0], 31, "KEX_ECDH_REPLY");
    assert_eq!(read_clear_packet(&mut reader), [21], "the server's NEWKEYS");

    let mut length = [0; 4];
    reader.read_exact(&mut length).unwrap_or_else(|e| {
        panic!("nothing followed the server's NEWKEYS before the client's: {e}")
    });
    let length = u32::from_be_bytes(length) as usize;
    // EXT_INFO: type, count 1, "server-sig-algs", the list, padded to 16.
    let sig_algs = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,\
                    rsa-sha2-512,rsa-sha2-256,ssh-rsa";
    let payload = 1 + 4 + (4 + "server-sig-algs".len()) + (4 + sig_algs.len());
    let padding = length.saturating_sub(1 + payload);
    assert!(
        length.is_multiple_of(16) && (4..20).contains(&padding),
        "a packet of {length} bytes followed NEWKEYS, not an EXT_INFO of {payload} bytes"
    );
}

/// An unencrypted SSH packet (RFC 4253 s6) of `payload`, padded to 8 bytes.
fn clear_packet(payload: &[u8]) -> Vec<u8> {
    let padding = 4 + (8 - (5 + payload.len() + 4) % 8) % 8;
    let mut packet = ((1 + payload.len() + padding) as u32)
        .to_be_bytes()
        .to_vec();
    packet.push(padding as u8);
    packet.extend(payload);
    packet.extend(std::iter::repeat_n(0, padding));
    packet
}

/// The payload of the next unencrypted SSH packet.
fn read_clear_packet(reader: &mut impl std::io::Read) -> Vec<u8> {
    let mut length = [0; 4];
    reader.read_exact(&mut length).unwrap();
    let mut packet = vec![0; u32::from_be_bytes(length) as usize];
    reader.read_exact(&mut packet).unwrap();
    let padding = packet[0] as usize;
    packet[1..packet.len() - padding].to_vec()
}

fn put_string(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend((bytes.len() as u32).to_be_bytes());
    buf.extend(bytes);
}
