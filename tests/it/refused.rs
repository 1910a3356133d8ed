//! Broken uploads refused by the SFTP server itself (the upload check): the
//! real OpenSSH `sftp -b` and paramiko clients upload files that are not CSV,
//! lack a Username column, repeat a column, break the record limits, cannot
//! be decoded, or have errors in more than half of their rows; each is
//! refused at the write that shows it, or at the close, with a one-line
//! reason, replaces nothing, and is recorded, logged and mailed once a night.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rosterd::clock::FixedClock;

use crate::helpers::*;
use crate::pipeline::{NIGHT, at, query_i64, read_eml, wait_for};
use crate::server::{TestServer, tenant_with_key};

/// What `tests/refused_upload.py` saw: the request refused (`write N`,
/// `close`, `rename`, `put`, or none) and the client's message.
#[derive(Debug)]
struct Seen {
    refused: Option<String>,
    message: String,
}

fn paramiko(srv: &TestServer, key: &Path, mode: &str, file: &Path) -> Seen {
    let out = srv.paramiko(
        "refused_upload.py",
        &[mode, file.to_str().unwrap()],
        "lincoln",
        key,
        120,
    );
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    Seen {
        refused: json["refused"].as_str().map(str::to_owned),
        message: json["message"].as_str().unwrap_or_default().to_owned(),
    }
}

/// A server at 23:00 New York time whose district `lincoln` already has a
/// pending users.csv: the server, its clock, the district's key, and the
/// pending file's bytes.
fn server_with_pending() -> (TestServer, FixedClock, std::path::PathBuf, Vec<u8>) {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let clock = FixedClock::new(at(NIGHT));
    let srv = TestServer::start_at(env, Arc::new(clock.clone()), |_| {});
    srv.env
        .file("first.csv", "Username,First Name\nann.lee,Ann\n");
    let (code, _, err) = srv.sftp("lincoln", &key, "put first.csv users.csv\n");
    assert_eq!(code, 0, "{err}");
    let before = std::fs::read(srv.pending("lincoln")).unwrap();
    (srv, clock, key, before)
}

/// The refused uploads recorded so far: (size, reason, blanked copy).
fn refused_rows(srv: &TestServer) -> Vec<(i64, String, Option<String>)> {
    let store = srv.env.store();
    let mut stmt = store
        .conn
        .prepare("SELECT size, failure, archive FROM uploads WHERE state = 'refused' ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Wait until `n` refused uploads are recorded (they are recorded after
/// the client's answer).
fn wait_refused(srv: &TestServer, n: usize) -> Vec<(i64, String, Option<String>)> {
    wait_for(
        "the refused upload's record",
        Duration::from_secs(20),
        || refused_rows(srv).len() >= n,
    );
    refused_rows(srv)
}

/// Upload `body` with `sftp -b` and with paramiko (writes of 32 KiB, each
/// awaited): both are refused at `moment` (`write N` or `close`) with a
/// status beginning `users.csv refused: {reason}`, and the pending file
/// stays as it was.
fn refused_by_both(body: &[u8], moment: &str, reason: &str) {
    let (srv, _, key, before) = server_with_pending();
    let file = srv.env.file("broken.csv", body);
    let (code, _, err) = srv.sftp("lincoln", &key, "put broken.csv users.csv\n");
    assert_eq!(code, 1, "sftp -b ends non-zero: {err}");
    let said = if moment == "close" {
        "close remote"
    } else {
        "write remote \"/users.csv\": Failure"
    };
    assert!(err.contains(said), "sftp said {err:?}, expected {said:?}");
    let seen = paramiko(&srv, &key, "writes", &file);
    assert_eq!(seen.refused.as_deref(), Some(moment), "{seen:?}");
    let status = format!("users.csv refused: {reason}");
    assert!(seen.message.starts_with(&status), "{:?}", seen.message);
    assert!(
        seen.message.ends_with("; nothing was replaced"),
        "{:?}",
        seen.message
    );
    assert!(
        seen.message.len() <= 400 && seen.message.bytes().all(|b| (b' '..=b'~').contains(&b)),
        "one line of ASCII: {:?}",
        seen.message
    );
    assert_eq!(std::fs::read(srv.pending("lincoln")).unwrap(), before);
    // Both recorded, with the reason the status gave (there made ASCII).
    let rows = wait_refused(&srv, 2);
    assert_eq!(rows.len(), 2);
    for (_, why, _) in &rows {
        assert_eq!(
            rosterd::domain::text::ascii_line(
                &format!("users.csv refused: {why}; nothing was replaced"),
                400
            ),
            seen.message
        );
    }
    assert!(
        std::fs::read_dir(srv.env.path("data/spool/lincoln/incoming"))
            .unwrap()
            .next()
            .is_none(),
        "a refused upload left a file behind"
    );
    assert_eq!(
        srv.uploads().iter().filter(|u| u.4 == "pending").count(),
        1,
        "the earlier upload is still the pending one"
    );
}

#[test]
fn a_zip_or_xlsx_file_is_refused_at_its_first_write() {
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend((0..100_000u32).map(|i| (i * 7 % 251) as u8 | 1));
    refused_by_both(
        &zip,
        "write 1",
        "this is a ZIP or Excel (.xlsx) file, not CSV text",
    );
}

#[test]
fn a_nul_byte_is_refused_at_the_write_that_holds_it() {
    let mut body = b"Username\n".to_vec();
    body.extend(b"ann.lee\n".repeat(4998)); // to byte 39,993
    body.extend_from_slice(b"bob.ray");
    body.push(0); // byte 40,000, in the second write
    body.extend_from_slice(b"more\n");
    refused_by_both(
        &body,
        "write 2",
        "the file holds a NUL byte at byte 40000, so it is not CSV text",
    );
}

#[test]
fn a_header_without_username_is_refused_at_the_write_that_completes_it() {
    // The header line ends in the second write.
    let header = format!("Student ID,First,Last,{}\n", "Note".repeat(9000));
    let body = format!("{header}1,Ann,Lee,x\n");
    refused_by_both(
        body.as_bytes(),
        "write 2",
        "no Username column (header: \"Student ID,First,Last,NoteNote",
    );
}

#[test]
fn a_repeated_column_is_refused_at_the_write_that_completes_the_header() {
    refused_by_both(
        b"Username,Email,E-mail\nann.lee,a@x.org,b@x.org\n",
        "write 1",
        "columns 2 (\"Email\") and 3 (\"E-mail\") both hold Email Address",
    );
}

#[test]
fn an_over_long_line_is_refused_at_the_write_that_passes_the_limit() {
    let mut body = b"Username\n".to_vec();
    body.extend(vec![b'x'; (1 << 20) + 10]);
    body.push(b'\n');
    // 9 + 1 MiB + 1 bytes end in the 33rd write of 32 KiB.
    refused_by_both(&body, "write 33", "line 2 is longer than 1 MiB");
}

#[test]
fn undecodable_text_is_refused_where_it_shows() {
    // A UTF-8 byte-order mark, then a byte that is not UTF-8: at the write.
    refused_by_both(
        b"\xEF\xBB\xBFUsername\nJos\xE9\n",
        "write 1",
        "the file starts with a UTF-8 byte-order mark but byte 15 is not valid UTF-8",
    );
}

#[test]
fn utf16_cut_short_is_refused_at_the_close() {
    // UTF-16 with an odd last byte: known only once the file has ended.
    let mut body: Vec<u8> = "\u{feff}Username\r\nann.lee\r\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    body.push(b'x');
    refused_by_both(
        &body,
        "close",
        "the file is marked as UTF-16LE (byte-order mark) but is not valid UTF-16LE",
    );
}

/// More than half of the rows failing rules of the row alone: the file
/// shows it only once complete, so the close refuses it.
const HALF_BAD: &str =
    "Username,Graduation Year\nann.lee,1990\nab\nbob.ray,2031\ncat.diaz,Year 3000\n";

#[test]
fn more_than_half_of_the_rows_bad_is_refused_at_the_close_and_replaces_nothing() {
    refused_by_both(
        HALF_BAD.as_bytes(),
        "close",
        "more than half of the data rows (3 of 4) have errors; the first: line 2, Graduation Year \"1990\": Graduation Year 1990 is outside the accepted range 2026-2041",
    );
}

/// paramiko's `put` reads the answers to its pipelined writes only once
/// 100 are waiting, and `SFTPFile.close()` swallows a failed close: a
/// refusal shows as the server's reason only for a file refused after that
/// many writes; otherwise `put(confirm=True)` notices only that users.csv
/// is missing or not the size it sent.
#[test]
fn what_paramiko_s_put_sees_of_each_refusal() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let srv = TestServer::start(env, |_| {});
    let put = |name: &str, body: &str| paramiko(&srv, &key, "put", &srv.env.file(name, body));
    // No users.csv yet: the stat after the upload finds none.
    let seen = put("early.csv", "Student ID,First\n1,Ann\n");
    assert_eq!(seen.refused.as_deref(), Some("put"), "{seen:?}");
    assert!(seen.message.contains("No such file"), "{seen:?}");
    srv.env.file("first.csv", "Username\nann.lee\n");
    assert_eq!(srv.sftp("lincoln", &key, "put first.csv users.csv\n").0, 0);
    // Refused at the first write, or at the close: a size mismatch.
    for (name, body) in [
        ("early.csv", "Student ID,First\n1,Ann\n"),
        ("late.csv", HALF_BAD),
    ] {
        let seen = put(name, body);
        assert_eq!(seen.refused.as_deref(), Some("put"), "{seen:?}");
        assert!(
            seen.message.starts_with("size mismatch in put!"),
            "{seen:?}"
        );
    }
    // A 6 MiB file refused at its first write: past 100 writes in flight,
    // put() reads their answers and raises the server's reason.
    let big = format!("Student ID,First\n{}", "1234,Ann\n".repeat((6 << 20) / 9));
    let seen = put("big.csv", &big);
    assert_eq!(seen.refused.as_deref(), Some("put"), "{seen:?}");
    assert!(
        seen.message
            .starts_with("users.csv refused: no Username column"),
        "{seen:?}"
    );
}

#[test]
fn out_of_order_writes_are_checked_at_the_close() {
    let (srv, _, key, before) = server_with_pending();
    // 3 writes of rows, the last half first: the check reads the file at close.
    let mut body = String::from("Username,Graduation Year\n");
    let mut i = 0;
    while body.len() < 70_000 {
        body.push_str(&format!(
            "user{i:05},{}\n",
            if i % 3 == 0 { "2031" } else { "1900" }
        ));
        i += 1;
    }
    let bad = srv.env.file("bad.csv", &body);
    let seen = paramiko(&srv, &key, "out-of-order", &bad);
    assert_eq!(seen.refused.as_deref(), Some("close"), "{seen:?}");
    assert!(
        seen.message.contains("more than half of the data rows"),
        "{seen:?}"
    );
    assert_eq!(std::fs::read(srv.pending("lincoln")).unwrap(), before);
    // The same rows, all good, written out of order: published exactly.
    let good = srv.env.file("good.csv", body.replace("1900", "2030"));
    let seen = paramiko(&srv, &key, "out-of-order", &good);
    assert_eq!(seen.refused, None, "{seen:?}");
    assert_eq!(
        std::fs::read(srv.pending("lincoln")).unwrap(),
        std::fs::read(&good).unwrap()
    );
}

#[test]
fn a_staged_upload_is_checked_before_its_rename() {
    let (srv, _, key, before) = server_with_pending();
    let bad = srv.env.file("bad.csv", HALF_BAD);
    let seen = paramiko(&srv, &key, "filepart", &bad);
    assert_eq!(seen.refused.as_deref(), Some("close"), "{seen:?}");
    assert!(
        seen.message
            .starts_with("users.csv.part refused: more than half"),
        "{seen:?}"
    );
    assert_eq!(std::fs::read(srv.pending("lincoln")).unwrap(), before);
    let good = srv.env.file("good.csv", "Username\nbob.ray\n");
    let seen = paramiko(&srv, &key, "filepart", &good);
    assert_eq!(seen.refused, None, "{seen:?}");
    assert_eq!(
        std::fs::read_to_string(srv.pending("lincoln")).unwrap(),
        "Username\nbob.ray\n"
    );
}

#[test]
fn a_retry_gets_the_same_answer_and_a_good_file_then_publishes() {
    let (srv, _, key, before) = server_with_pending();
    let bad = srv.env.file(
        "bad.csv",
        "Student ID,Password,First\n1,Secr3t-Ann!,Ann\n2,Secr3t-Bob!,Bob\n",
    );
    let first = paramiko(&srv, &key, "writes", &bad);
    let again = paramiko(&srv, &key, "writes", &bad);
    assert_eq!(first.refused.as_deref(), Some("write 1"));
    assert_eq!(
        (again.refused, again.message),
        (first.refused, first.message)
    );
    assert_eq!(std::fs::read(srv.pending("lincoln")).unwrap(), before);
    // Both recorded; one blanked copy for the same bytes, passwords blanked.
    let rows = wait_refused(&srv, 2);
    let copies: Vec<&String> = rows.iter().filter_map(|r| r.2.as_ref()).collect();
    assert_eq!(copies.len(), 1, "{rows:?}");
    let copy = std::fs::read_to_string(copies[0]).unwrap();
    assert_eq!(copy, "Student ID,Password,First\n1,,Ann\n2,,Bob\n");
    // Support sees it.
    let status = srv.env.ok(&["status"]);
    assert!(
        status.contains(
            "REFUSED       users.csv received 2026-11-19 23:00:00 EST: no Username column"
        ),
        "{status}"
    );
    // A good file after it publishes as before, and status no longer shows the refusal.
    let good = srv
        .env
        .file("good.csv", "Username,First Name\nbob.ray,Bob\n");
    let seen = paramiko(&srv, &key, "writes", &good);
    assert_eq!(seen.refused, None, "{seen:?}");
    assert_eq!(
        std::fs::read(srv.pending("lincoln")).unwrap(),
        std::fs::read(&good).unwrap()
    );
    let status = srv.env.ok(&["status"]);
    assert!(!status.contains("REFUSED"), "{status}");
}

#[test]
fn the_administrator_is_told_once_a_night_with_the_reason() {
    let (srv, clock, key, _) = server_with_pending();
    let bad = srv.env.file("bad.csv", "Student ID,First\n1,Ann\n");
    let worse = srv.env.file("worse.csv", HALF_BAD);
    paramiko(&srv, &key, "writes", &bad);
    clock.advance(chrono::Duration::hours(2)); // 01:00, the same night
    paramiko(&srv, &key, "writes", &worse);
    wait_refused(&srv, 2);
    let refused_mail = || {
        query_i64(
            &srv.env,
            "SELECT count(*) FROM outbox WHERE kind = 'refused'",
        )
    };
    assert_eq!(refused_mail(), 1, "one note for the night");
    // The next night (its window closes the morning after): one more.
    clock.advance(chrono::Duration::hours(20)); // 21:00 the next evening
    paramiko(&srv, &key, "writes", &bad);
    wait_refused(&srv, 3);
    assert_eq!(refused_mail(), 2);
    assert_eq!(srv.block_on(srv.mailer.run_once()).unwrap().sent, 2);
    let eml = read_eml(&srv.env.path("data/outbox/000001-lincoln-refused.eml"));
    assert!(
        eml.contains("Subject: lincoln: users.csv refused on upload "),
        "{eml}"
    );
    assert!(
        eml.contains("rosterd refused the users.csv that lincoln uploaded 2026-11-19 23:00:00 EST (from 127.0.0.1:"),
        "{eml}"
    );
    assert!(
        eml.contains("): no Username column (header: \"Student ID,First\")."),
        "{eml}"
    );
    assert!(eml.contains("such as Username,Password"), "{eml}");
    assert!(eml.contains("for the night ending Fri 20 Nov"), "{eml}");
}

/// A real `rosterd serve`: one refusal is one warning in its log, however
/// many writes the client had in flight after the refused one.
#[test]
fn a_refusal_is_logged_at_warn_once() {
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    let port = crate::smtp::free_port();
    let config = std::fs::read_to_string(&env.config).unwrap().replace(
        "[server]\n",
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    std::fs::write(&env.config, config).unwrap();
    let _daemon = crate::pipeline::Daemon::start(&env);
    wait_for("the daemon to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // 2 MiB: OpenSSH has dozens of writes in flight when the first is refused.
    let body = format!("Student ID,First\n{}", "1234,Ann\n".repeat((2 << 20) / 9));
    env.file("big.csv", &body);
    let (code, err) = crate::bad_files::sftp_put(&env, &key, port, "big.csv");
    assert_eq!(code, Some(1), "{err}");
    wait_for(
        "the refused upload's record",
        Duration::from_secs(20),
        || query_i64(&env, "SELECT count(*) FROM uploads WHERE state = 'refused'") == 1,
    );
    let log = std::fs::read_to_string(env.path("daemon.log")).unwrap();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("upload refused:"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("WARN"), "{}", warned[0]);
    assert!(
        warned[0].contains("reason=no Username column (header: \"Student ID,First\")"),
        "{}",
        warned[0]
    );
}
