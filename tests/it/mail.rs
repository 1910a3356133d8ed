//! A district's several addresses, through the real binary: stored and shown,
//! refused naming the wrong one, every report reaching each of them at a real
//! SMTP server on loopback (one refused address losing the message for none
//! of the others), and `rosterd mail test` against that server, a dead port
//! and the `.eml` directory.

use crate::helpers::*;
use crate::smtp::{SmtpServer, free_port};

const ADDRESSES: &str = "ann@lincoln.example.org, it@lincoln.example.org,ops@example.net";

/// `lincoln`, mailing ADDRESSES.
fn district(env: &Env) {
    env.ok(&[
        "tenant",
        "add",
        "lincoln",
        "--admin-name",
        "Ann Lee",
        "--admin-email",
        ADDRESSES,
    ]);
}

/// Mail goes to `url` from now on.
fn smtp_url(env: &Env, url: &str) {
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&format!("[mail]\nsmtp_url = \"{url}\"\n"));
    std::fs::write(&env.config, config).unwrap();
}

fn rcpt_tos(message: &serde_json::Value) -> Vec<String> {
    message["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn several_addresses_are_stored_shown_and_refused_naming_the_wrong_one() {
    let env = Env::new();
    district(&env);
    let all = "ann@lincoln.example.org, it@lincoln.example.org, ops@example.net";
    let show = env.ok(&["tenant", "show", "lincoln"]);
    assert!(
        show.contains(&format!("admin       Ann Lee <{all}>\n")),
        "{show}"
    );
    let list = env.ok(&["tenant", "list"]);
    assert!(list.contains(&format!("Ann Lee <{all}>\n")), "{list}");

    // One wrong address refuses the whole list, naming it; nothing changes.
    for (list, says) in [
        (
            "ann@lincoln.example.org,it@lincoln",
            "--admin-email: address 2 of 2, \"it@lincoln\", is not a valid email address: the domain after @ needs a dot",
        ),
        (
            "ann@lincoln.example.org it@lincoln.example.org",
            "is not one email address: separate addresses with commas",
        ),
        (
            "a1@x.org,a2@x.org,a3@x.org,a4@x.org,a5@x.org,a6@x.org,a7@x.org,a8@x.org,a9@x.org,a10@x.org,a11@x.org",
            "11 addresses given; a district's mail may go to at most 10",
        ),
    ] {
        let (code, _, err) = env.run(&["tenant", "set", "lincoln", "--admin-email", list]);
        assert_eq!(code, 1, "{list}");
        assert!(err.contains(says), "{list}: {err}");
        let (code, _, err) = env.run(&[
            "tenant",
            "add",
            "other",
            "--admin-name",
            "O",
            "--admin-email",
            list,
        ]);
        assert_eq!(code, 1, "{list}");
        assert!(err.contains(says), "{list}: {err}");
    }
    let show = env.ok(&["tenant", "show", "lincoln"]);
    assert!(show.contains(all), "{show}");
    assert!(env.run(&["tenant", "show", "other"]).0 == 1);

    // Repeated flags add up; `set` replaces the list, duplicates once.
    env.ok(&[
        "tenant",
        "set",
        "lincoln",
        "--admin-email",
        "it@lincoln.example.org",
        "--admin-email",
        "dana@lincoln.example.org, IT@lincoln.example.org",
    ]);
    let show = env.ok(&["tenant", "show", "lincoln"]);
    assert!(
        show.contains("admin       Ann Lee <it@lincoln.example.org, dana@lincoln.example.org>\n"),
        "{show}"
    );
    env.ok(&[
        "tenant",
        "set",
        "lincoln",
        "--admin-email",
        "ann@lincoln.example.org",
    ]);
    let show = env.ok(&["tenant", "show", "lincoln"]);
    assert!(
        show.contains("admin       Ann Lee <ann@lincoln.example.org>\n"),
        "{show}"
    );
}

#[test]
fn a_report_reaches_every_address_and_one_refused_loses_it_for_none_of_the_others() {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(
        smtp_dir.path().to_path_buf(),
        &["--reject-rcpt", "it@lincoln.example.org"],
    );
    let env = Env::new();
    smtp_url(&env, &smtp.url());
    district(&env);
    env.file("users.csv", "Username,Password\r\nann.lee,Secr3t-Ann!\r\n");
    let (code, out, err) = env.run(&["import", "users", "lincoln", "users.csv", "--email"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("emailed 2 message(s) via smtp://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("1 message(s) refused for good"), "{err}");

    // One message, To: all three; each address that the server took got it.
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(rcpt_tos(&messages[0]), ["ann@lincoln.example.org"]);
    assert_eq!(rcpt_tos(&messages[1]), ["ops@example.net"]);
    for m in &messages {
        assert_eq!(
            m["to"],
            "ann@lincoln.example.org, it@lincoln.example.org, ops@example.net"
        );
        assert_eq!(
            m["subject"],
            "lincoln: users.csv imported — 1 created, 0 updated"
        );
        assert!(
            m["text"]
                .as_str()
                .unwrap()
                .contains("sent by rosterd to the addresses registered for lincoln"),
            "{m}"
        );
        assert_eq!(m["message_id"], messages[0]["message_id"]);
    }

    // The outbox holds a copy per address; status names the refused one.
    let outbox = rosterd::mail::outbox(&env.store().conn).unwrap();
    let copies: Vec<(&str, &str)> = outbox
        .iter()
        .map(|m| (m.recipient.as_str(), m.state.as_str()))
        .collect();
    assert_eq!(
        copies,
        [
            ("ann@lincoln.example.org", "sent"),
            ("it@lincoln.example.org", "failed"),
            ("ops@example.net", "sent"),
        ]
    );
    let status = env.ok(&["status"]);
    assert!(
        status.contains("mail: 0 queued, 1 failed, 2 sent"),
        "{status}"
    );
    assert!(
        status.contains("#2 report to it@lincoln.example.org (failed, 1 attempts): SMTP server refused the message: permanent error (550): 5.1.1 <it@lincoln.example.org>: no such mailbox"),
        "{status}"
    );
}

#[test]
fn mail_test_prints_the_smtp_servers_answer_per_copy_and_queues_nothing() {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(
        smtp_dir.path().to_path_buf(),
        &["--reject-rcpt", "ops@example.net"],
    );
    let env = Env::new();
    smtp_url(&env, &smtp.url());
    district(&env);
    let (code, out, err) = env.run(&["mail", "test", "lincoln"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "sending a test message for lincoln to 3 addresses via {}\n\
             ann@lincoln.example.org: accepted: 250 2.0.0 OK\n\
             it@lincoln.example.org: accepted: 250 2.0.0 OK\n\
             ops@example.net: REFUSED: 550 5.1.1 <ops@example.net>: no such mailbox (test server)\n",
            smtp.url()
        )
    );
    assert!(
        err.contains("error: refused ops@example.net: 550 5.1.1 <ops@example.net>: no such mailbox (test server)"),
        "{err}"
    );
    assert!(err.contains("2 of 3 test messages delivered"), "{err}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["subject"], "lincoln: rosterd test message");
    assert_eq!(rcpt_tos(&messages[1]), ["it@lincoln.example.org"]);
    assert!(
        messages[0]["text"]
            .as_str()
            .unwrap()
            .replace("\r\n", "\n")
            .contains("  ann@lincoln.example.org\n  it@lincoln.example.org\n  ops@example.net\n"),
        "{}",
        messages[0]["text"]
    );
    // Sent directly: the outbox has nothing.
    assert!(rosterd::mail::outbox(&env.store().conn).unwrap().is_empty());

    // All taken: exit 0.
    env.ok(&[
        "tenant",
        "set",
        "lincoln",
        "--admin-email",
        "ann@lincoln.example.org",
    ]);
    let out = env.ok(&["mail", "test", "lincoln"]);
    assert!(
        out.ends_with("\nann@lincoln.example.org: accepted: 250 2.0.0 OK\n"),
        "{out}"
    );
    assert_eq!(smtp.messages().len(), 3);
}

#[test]
fn mail_test_against_a_dead_port_exits_1_naming_the_server_and_no_password() {
    let env = Env::new();
    let port = free_port();
    smtp_url(&env, &format!("smtp://rosterd:s3cret-pw@127.0.0.1:{port}"));
    district(&env);
    let (code, out, err) = env.run(&["mail", "test", "lincoln"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with(&format!(
            "sending a test message for lincoln to 3 addresses via smtp://…@127.0.0.1:{port}\n\
             ann@lincoln.example.org: not sent: no SMTP session with 127.0.0.1:{port}: "
        )),
        "{out}"
    );
    assert!(out.contains("it@lincoln.example.org: not tried\n"), "{out}");
    assert!(
        err.contains(&format!(
            "error: cannot send through the SMTP server 127.0.0.1:{port} (mail.smtp_url): Connection error: Connection refused"
        )),
        "{err}"
    );
    assert!(err.contains("0 of 3 test messages delivered"), "{err}");
    assert!(
        !out.contains("s3cret") && !err.contains("s3cret"),
        "{out}{err}"
    );
}

#[test]
fn mail_test_without_smtp_writes_an_eml_per_address() {
    let env = Env::new();
    district(&env);
    env.ok(&[
        "tenant",
        "set",
        "lincoln",
        "--admin-email",
        "ann@lincoln.example.org",
    ]);
    let out = env.ok(&["mail", "test", "lincoln"]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(
            "sending a test message for lincoln to 1 address as .eml files in data/outbox (mail.smtp_url is not set)"
        )
    );
    let written = lines
        .next()
        .and_then(|l| l.strip_prefix("ann@lincoln.example.org: written to "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(written.starts_with("data/outbox/test-lincoln-"), "{out}");
    let eml = crate::pipeline::read_eml(&env.path(written));
    assert!(
        eml.contains("To: \"Ann Lee\" <ann@lincoln.example.org>\n"),
        "{eml}"
    );
    assert!(
        eml.contains("Subject: lincoln: rosterd test message\n"),
        "{eml}"
    );
    assert!(
        eml.contains("sent by rosterd to the administrator registered for lincoln"),
        "{eml}"
    );
    assert!(rosterd::mail::outbox(&env.store().conn).unwrap().is_empty());
}
