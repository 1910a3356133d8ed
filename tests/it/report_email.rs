//! The administrator's email as a person opens it. One district's month,
//! through the real pipeline: 25 nights of history, then a night of each
//! verdict (applied, applied with errors, unchanged, rejected, held for
//! approval, nothing received) uploaded by OpenSSH `sftp`, imported by the
//! scheduler and delivered to a real SMTP server on loopback. Of each
//! message the server received:
//!
//! - the plain-text and HTML parts are compared with golden files in
//!   `tests/golden/mail/` (`ROSTERD_BLESS=1` rewrites them; review the diff);
//! - the HTML part is opened in a real browser, Debian's Chromium, headless:
//!   its DOM holds the verdict and the counts, the picture it names by `cid:`
//!   is resolved from the message (its pixels are on the screenshot) and is
//!   a PNG of the size the page states, and no request leaves the machine
//!   (every request goes to a recording proxy on loopback).
//!
//! `ROSTERD_SCREENSHOTS=1` also writes the screenshots of the applied-with-
//! errors and held nights to `docs/` (the README shows them).
//!
//! Beside it: every value a district sends comes out of the HTML as text,
//! and a worst-case report (10,000 rows of problems, long values) and held
//! note (a changes.csv far over an email's size beside them) stay under 1 MiB.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rosterd::clock::FixedClock;

use crate::helpers::*;
use crate::mime::Part;
use crate::pipeline::{at, upload};
use crate::server::{TestServer, tenant_with_key};
use crate::smtp::SmtpServer;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/mail");
const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs");

/// The verdicts, in the order the month's nights reach them.
const VERDICTS: [&str; 6] = [
    "applied",
    "applied-with-errors",
    "unchanged",
    "rejected",
    "held",
    "nothing-received",
];

/// The size the page gives the picture (`rosterd::mail::chart`).
const PICTURE: (u32, u32) = (560, 300);

const FIRST: [&str; 12] = [
    "Ava", "Ben", "Chloe", "Dev", "Emma", "Finn", "Grace", "Hugo", "Isla", "Jack", "Kai", "Lena",
];
const LAST: [&str; 12] = [
    "Adams", "Brown", "Chen", "Diaz", "Evans", "Fox", "Garcia", "Hill", "Ito", "Jones", "Khan",
    "Lopez",
];

/// The district's roster on history night `k`: two more students each
/// night, a few first names changed for the night (updated, then updated
/// back), and on every fourth night one student missing (deactivated, then
/// reactivated).
fn roster(k: usize) -> String {
    let mut s =
        String::from("Username,First Name,Last Name,Email Address,School,Graduation Year\r\n");
    for i in 1..=60 + 2 * k {
        if k.is_multiple_of(4) && i == (k * 3) % 60 + 1 {
            continue;
        }
        let first = if (i + k).is_multiple_of(17) {
            format!("{}-{}", FIRST[i % 12], LAST[k % 12])
        } else {
            FIRST[i % 12].to_owned()
        };
        let last = LAST[(i / 12) % 12];
        let school = if i % 3 == 0 {
            "Lincoln Elementary"
        } else {
            "Lincoln High"
        };
        s.push_str(&format!(
            "s{i:04},{first},{last},s{i:04}@lincoln.example.org,{school},{}\r\n",
            2030 + i % 6
        ));
    }
    s
}

/// Each verdict's message as the SMTP server received it.
struct Month {
    messages: Vec<(&'static str, Vec<u8>)>,
    /// Each import verdict's counts, as stored: created, updated,
    /// unchanged, deactivated, reactivated, kept back, errors.
    counts: Vec<(&'static str, [i64; 7])>,
}

impl Month {
    fn message(&self, verdict: &str) -> Part {
        let raw = &self
            .messages
            .iter()
            .find(|(v, _)| *v == verdict)
            .unwrap_or_else(|| panic!("no {verdict} message"))
            .1;
        Part::parse(raw)
    }
}

/// The month, lived once per test process (the tests below read it).
fn month() -> &'static Month {
    static MONTH: OnceLock<Month> = OnceLock::new();
    MONTH.get_or_init(live_a_month)
}

fn live_a_month() -> Month {
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(smtp_dir.path().to_path_buf(), &[]);
    let env = Env::new();
    let (key, _) = tenant_with_key(&env, "lincoln");
    env.ok(&[
        "tenant",
        "set",
        "lincoln",
        "--admin-name",
        "Ann Lee",
        "--admin-email",
        "ann.lee@lincoln.example.org",
        "--absent",
        "deactivate",
        "--sso",
        "true",
    ]);
    for school in ["Lincoln Elementary", "Lincoln High"] {
        env.ok(&["school", "add", "lincoln", "--name", school]);
    }
    // History: support's imports on 25 nights from 19 October, three of
    // them skipped.
    let start = at("2026-10-20T07:00:00Z");
    for k in 0..25 {
        if [6, 15, 21].contains(&k) {
            continue;
        }
        let file = env.file(&format!("night-{k:02}.csv"), roster(k));
        let now = start + chrono::Duration::days(k as i64);
        env.import_at("lincoln", &file, now, false);
    }
    let clock = FixedClock::new(at("2026-11-14T04:00:00Z"));
    let url = smtp.url();
    let srv = TestServer::start_at(env, Arc::new(clock.clone()), |c| {
        c.schedule.settle_seconds = 0;
        c.mail.smtp_url = Some(url);
    });
    // Then a night of each verdict, uploaded at 23:00 and imported at once.
    let nightly = |night: &str, body: &str| {
        clock.set(at(night));
        upload(&srv, &key, body);
        let reports = srv.block_on(srv.scheduler.run_once()).unwrap();
        assert_eq!(reports.len(), 1, "one import on the night of {night}");
    };
    nightly("2026-11-14T04:00:00Z", &roster(25));
    let mut with_errors: String = roster(26)
        .lines()
        .filter(|l| {
            !["s0007,", "s0031,", "s0052,"]
                .iter()
                .any(|u| l.starts_with(u))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    with_errors.push_str(
        "s9001,Maria,Garcia,maria.g@,Lincoln High,2031\r\n\
         s9002,Jon,Park,jon.park@lincoln.example.org,Lincon High,2030\r\n\
         s9003,Ava,Chen,ava.chen@lincoln.example.org,Lincoln High,2099\r\n\
         j doe,Jane,Doe,,Lincoln Elementary,2032\r\n",
    );
    nightly("2026-11-15T04:00:00Z", &with_errors);
    nightly("2026-11-16T04:00:00Z", &with_errors);
    // Rejected by the import, not at the upload: the schools it names are
    // the district's to know (a file broken in its rows alone is refused
    // at the SFTP close instead).
    nightly(
        "2026-11-17T04:00:00Z",
        "Username,First Name,Last Name,School,Graduation Year\r\n\
         s0001,Ava,Adams,Lincoln Middle,2030\r\ns0002,Ben,Adams,Lincoln Middle,2031\r\n\
         s0003,Chloe,Adams,Lincoln Middle,2032\r\ns0004,Dev,Adams,Lincoln Middle,2033\r\n\
         s0005,Emma,Adams,Lincoln High,2031\r\ns0006,Finn,Adams,Lincoln High,2032\r\n",
    );
    let half: String = roster(27)
        .lines()
        .take(56)
        .map(|l| format!("{l}\r\n"))
        .collect();
    nightly("2026-11-18T04:00:00Z", &half);
    // The night of 18 November brings nothing: the note goes out when
    // the window closes.
    clock.set(at("2026-11-19T11:30:00Z"));
    srv.block_on(srv.scheduler.run_once()).unwrap();

    srv.block_on(srv.mailer.run_once()).unwrap();
    let outbox = rosterd::mail::outbox(&srv.env.store().conn).unwrap();
    let kinds: Vec<&str> = outbox.iter().map(|m| m.kind.as_str()).collect();
    assert!(
        outbox.iter().all(|m| m.state == "sent"),
        "every message is delivered: {outbox:?}"
    );
    assert_eq!(
        kinds,
        ["report", "report", "report", "report", "held", "missing"]
    );
    let mut emls: Vec<PathBuf> = std::fs::read_dir(smtp_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    emls.sort();
    assert_eq!(emls.len(), 6);
    let messages = VERDICTS
        .iter()
        .zip(&emls)
        .map(|(v, p)| (*v, std::fs::read(p).unwrap()))
        .collect();
    let store = srv.env.store();
    let counts = VERDICTS[..5]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let c = store
                .conn
                .query_row(
                    "SELECT created, updated, unchanged, deactivated, reactivated, kept_back, errors
                     FROM import_runs WHERE source = 'sftp' ORDER BY id LIMIT 1 OFFSET ?1",
                    [i as i64],
                    |r| {
                        let mut c = [0; 7];
                        for (j, n) in c.iter_mut().enumerate() {
                            *n = r.get(j)?;
                        }
                        Ok(c)
                    },
                )
                .unwrap();
            (*v, c)
        })
        .collect();
    Month { messages, counts }
}

/// The HTML part with a line break between tags, so a golden diff reads
/// line by line (the message itself has none).
fn html_lines(html: &str) -> String {
    let mut s = html.replace("><", ">\n<");
    s.push('\n');
    s
}

/// `text` with the SFTP client's port (the system's choice) written as `$PORT`.
fn without_ports(text: &str) -> String {
    let marker = "(from 127.0.0.1:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let end = at + marker.len();
        out.push_str(&rest[..end]);
        out.push_str("$PORT");
        rest = rest[end..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// Compare `text` with `tests/golden/mail/NAME`, or write it when blessing.
fn golden(name: &str, text: &str) -> Result<(), String> {
    let path = Path::new(GOLDEN).join(name);
    if std::env::var_os("ROSTERD_BLESS").is_some() {
        std::fs::create_dir_all(GOLDEN).unwrap();
        std::fs::write(&path, text).unwrap();
        return Ok(());
    }
    let want = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (ROSTERD_BLESS=1 writes it)", path.display()))?;
    if want == text {
        return Ok(());
    }
    let got = path.with_extension(format!(
        "{}.got",
        path.extension().unwrap().to_str().unwrap()
    ));
    std::fs::write(&got, text).unwrap();
    let line = want
        .lines()
        .zip(text.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(want.lines().count().min(text.lines().count()));
    Err(format!(
        "{name} differs from its golden file at line {}:\n  want: {:?}\n  got:  {:?}\n(`diff {} {}`)",
        line + 1,
        want.lines().nth(line),
        text.lines().nth(line),
        path.display(),
        got.display()
    ))
}

#[test]
fn each_verdicts_text_and_html_parts_are_exactly_as_they_were() {
    let month = month();
    let mut failures = Vec::new();
    for verdict in VERDICTS {
        let message = month.message(verdict);
        let text = message.find("text/plain").expect("a text part");
        let html = message.find("text/html").expect("an HTML part");
        let header = format!(
            "Subject: {}\nParts: {}\n\n",
            crate::mime::decode_words(message.header("Subject").unwrap()),
            message.outline()
        );
        for (name, content) in [
            (format!("{verdict}.txt"), header + &text.text()),
            (format!("{verdict}.html"), html_lines(&html.text())),
        ] {
            if let Err(e) = golden(&name, &without_ports(&content)) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_message_is_text_beside_html_with_its_picture_then_the_attachments() {
    let month = month();
    for verdict in VERDICTS {
        let message = month.message(verdict);
        let alternative = message
            .find("multipart/alternative")
            .unwrap_or_else(|| panic!("{verdict}: {}", message.outline()));
        let kinds: Vec<String> = alternative
            .children
            .iter()
            .map(Part::content_type)
            .collect();
        assert_eq!(kinds, ["text/plain", "multipart/related"], "{verdict}");
        let related = &alternative.children[1];
        let kinds: Vec<String> = related.children.iter().map(Part::content_type).collect();
        assert_eq!(kinds, ["text/html", "image/png"], "{verdict}");
        assert_eq!(
            related.children[1].header("Content-ID"),
            Some("<trend.png@rosterd>")
        );
        let attachments: Vec<String> = message
            .children
            .iter()
            .skip(1)
            .filter_map(|p| p.param("Content-Disposition", "filename"))
            .collect();
        let want: &[&str] = match verdict {
            "applied-with-errors" | "rejected" => &["errors.csv"],
            "held" => &["changes.csv"],
            _ => &[],
        };
        assert_eq!(attachments, want, "{verdict}: {}", message.outline());
        if !want.is_empty() {
            assert_eq!(message.content_type(), "multipart/mixed");
            assert_eq!(message.children[0].content_type(), "multipart/alternative");
        }
        // The plain text is complete on its own: the counts and the problems.
        let text = message.find("text/plain").unwrap().text();
        if verdict == "applied-with-errors" {
            for line in [
                "  deactivated 3 (not in the file; full sync)",
                "  errors     4",
                "Lincon High",
                "errors.csv",
            ] {
                assert!(text.contains(line), "{line:?} in\n{text}");
            }
        }
        // No external resources: the only source is the picture's cid:.
        let html = message.find("text/html").unwrap().text();
        for banned in [
            "http:", "https:", "//", "<link", "<script", "url(", "@import",
        ] {
            assert!(!html.contains(banned), "{verdict}: {banned:?} in the HTML");
        }
        assert_eq!(html.matches("src=").count(), 1, "{verdict}");
        assert!(html.contains("src=\"cid:trend.png@rosterd\""), "{verdict}");
    }
}

/// The text of the element after `marker` in `dom`: what lies between the
/// next `>` and the following `<`.
fn text_after<'a>(dom: &'a str, marker: &str) -> Option<&'a str> {
    let at = dom.find(marker)? + marker.len();
    let rest = &dom[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].trim())
}

#[test]
fn the_html_opens_in_a_real_browser_with_its_picture_and_no_request_leaves() {
    let month = month();
    let chromium = Chromium::find();
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start();

    // The proxy sees what a page asks for: a page with a remote image is
    // caught (so the silence below means something).
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<html><body><img src=\"http://rosterd-test.invalid/pixel.png\"></body></html>",
    )
    .unwrap();
    chromium.open(&control, dir.path(), "control", proxy.port);
    let seen = proxy.page_requests();
    assert!(
        seen.iter().any(|r| r.contains("rosterd-test.invalid")),
        "the recording proxy saw no request for the control page's remote image: {seen:?}"
    );
    proxy.clear();

    for verdict in VERDICTS {
        let message = month.message(verdict);
        let related = message.find("multipart/related").unwrap();
        // Chromium opens a multipart/related document as MHTML and resolves
        // cid: in it, as a mail client does.
        let mht = dir.path().join(format!("{verdict}.mht"));
        std::fs::write(&mht, format!("MIME-Version: 1.0\r\n{}", related.raw)).unwrap();
        let (dom, screenshot) = chromium.open(&mht, dir.path(), verdict, proxy.port);
        assert!(screenshot.len() > 10_000, "{verdict}: a blank screenshot");

        let word = match verdict {
            "applied" => "Applied",
            "applied-with-errors" => "Applied with errors",
            "unchanged" => "Unchanged",
            "rejected" => "Rejected",
            "held" => "Held for approval",
            _ => "Nothing received",
        };
        assert_eq!(
            text_after(&dom, "id=\"verdict\""),
            Some(word),
            "{verdict}: the verdict line in\n{dom}"
        );
        let counts = month.counts.iter().find(|(v, _)| *v == verdict);
        // An unchanged file's email, and the note that nothing came, have
        // no counts to show.
        if ["unchanged", "nothing-received"].contains(&verdict) {
            assert!(!dom.contains("data-label"), "{verdict}: counts in\n{dom}");
        } else if let Some((_, counts)) = counts {
            let labels = [
                "created",
                "updated",
                "unchanged",
                "deactivated",
                "reactivated",
                "kept back",
                "errors",
            ];
            for (label, n) in labels.iter().zip(counts) {
                let shown = text_after(&dom, &format!("data-label=\"{label}\""));
                assert_eq!(
                    shown.map(|s| s.replace(',', "")),
                    Some(n.to_string()),
                    "{verdict}: {label}"
                );
            }
        }

        // The picture: named by cid:, stated at its size, and drawn from
        // the message's PNG part, which decodes to that size.
        let img = &dom[dom.find("<img").expect("an img")..];
        let img = &img[..img.find('>').unwrap()];
        for attribute in [
            "id=\"trend\"".to_owned(),
            "src=\"cid:trend.png@rosterd\"".to_owned(),
            format!("width=\"{}\"", PICTURE.0),
            format!("height=\"{}\"", PICTURE.1),
            "alt=\"Last 30 nights (".to_owned(),
        ] {
            assert!(img.contains(&attribute), "{verdict}: {attribute} in {img}");
        }
        let png = related.find("image/png").unwrap().decoded();
        let (width, height, _) = decode_png(&png);
        assert_eq!((width, height), PICTURE, "{verdict}: the PNG part's size");
        let (_, _, pixels) = decode_png(&screenshot);
        let orange = pixels
            .iter()
            .filter(|p| {
                let t = [0xd9, 0x48, 0x0f];
                (0..3).all(|i| p[i].abs_diff(t[i]) <= 6)
            })
            .count();
        assert!(
            orange >= 100,
            "{verdict}: the screenshot shows {orange} pixels of tonight's colour: the picture did not load"
        );

        if std::env::var_os("ROSTERD_SCREENSHOTS").is_some()
            && ["applied-with-errors", "held"].contains(&verdict)
        {
            let out = Path::new(DOCS).join(format!("report-{verdict}.png"));
            std::fs::create_dir_all(DOCS).unwrap();
            std::fs::write(&out, crop_to_content(&screenshot)).unwrap();
        }
    }
    let leaked = proxy.page_requests();
    assert!(
        leaked.is_empty(),
        "the reports made requests to the network: {leaked:?}"
    );
    proxy.stop();
}

/// Import `file` for `lincoln` at `now` as a nightly import that emails its
/// report; returns the message queued.
fn import_and_mail(env: &Env, file: &Path, now: &str) -> Part {
    let mut store = env.store();
    let tenant = store.require_tenant("lincoln").unwrap();
    let mut opts = options(file, false);
    opts.email = true;
    rosterd::import::users::import(
        &mut store.conn,
        &context(env, at(now)),
        &tenant,
        file,
        &opts,
    )
    .unwrap();
    let message: Vec<u8> = store
        .conn
        .query_row(
            "SELECT message FROM outbox ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    Part::parse(&message)
}

/// A CSV cell, quoted.
fn quoted(cell: &str) -> String {
    format!("\"{}\"", cell.replace('"', "\"\""))
}

#[test]
fn every_value_a_district_sent_comes_out_of_the_html_as_text() {
    let env = Env::new();
    let school = "<script>alert('school')</script> & \"High\"";
    env.ok(&[
        "tenant",
        "add",
        "lincoln",
        "--admin-name",
        "Ann \"<b>\" & Co",
        "--admin-email",
        "ann@example.org",
        "--sso",
    ]);
    env.ok(&["school", "add", "lincoln", "--name", school]);
    let file = env.file(
        "a&b \"<i>x\".csv",
        format!(
            "Username,First Name,Last Name,School,Graduation Year,Email Address\n\
             ok.user,{},<img src=x onerror=alert(1)>,{},2030,\n\
             <script>alert(1)</script>,A,B,{},2030,\n\
             ok.two,C,D,,2030,<script>@x\n",
            quoted("Q \"&\" <b>R</b>"),
            quoted(school),
            quoted("Nowhere <i>School</i> & \"Co\""),
        ),
    );
    let message = import_and_mail(&env, &file, "2026-11-20T04:00:00Z");
    let html = message.find("text/html").unwrap().text();
    for raw in [
        "<script",
        "<b>",
        "<i>",
        "<img src=x",
        "onerror",
        "\"Q",
        "& ",
    ] {
        assert!(!html.contains(raw), "{raw:?} came out as markup:\n{html}");
    }
    assert_eq!(html.matches("<img").count(), 1, "only the picture");
    for escaped in [
        // The administrator's name, the file's name (title, facts, verdict).
        "Hello Ann &quot;&lt;b&gt;&quot; &amp; Co,",
        "<title>lincoln: a&amp;b &quot;&lt;i&gt;x&quot;.csv rejected",
        // A username, a name, a school and an address from the rows.
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "Nowhere &lt;i&gt;School&lt;/i&gt; &amp; &quot;Co&quot;",
        "&lt;script&gt;@x",
    ] {
        assert!(html.contains(escaped), "{escaped:?} not in\n{html}");
    }
    // The plain text has them as they were.
    let text = message.find("text/plain").unwrap().text();
    assert!(text.contains("Hello Ann \"<b>\" & Co,"), "{text}");
    assert!(text.contains("Nowhere <i>School</i> & \"Co\""), "{text}");
}

#[test]
fn a_worst_case_report_stays_under_a_mebibyte_all_told() {
    let env = Env::new();
    env.tenant("lincoln");
    // Two earlier nights, so the picture is there.
    let ok = env.file("ok.csv", "Username,First Name\njdoe,Jane\nasmith,Al\n");
    env.import_at("lincoln", &ok, at("2026-11-18T07:00:00Z"), false);
    env.import_at("lincoln", &ok, at("2026-11-19T07:00:00Z"), false);
    // 10,000 rows, each with four errors and every cell 600 characters of
    // what grows most when escaped and encoded: quotes, angle brackets,
    // ampersands and a three-byte character.
    let long = "\"€<&".repeat(150);
    let mut body = String::from("Username,First Name,Last Name,Email Address\n");
    for i in 0..10_000 {
        let cell = quoted(&format!("{long}{i}"));
        body.push_str(&format!(
            "{cell},{cell},{cell},{}\n",
            quoted(&format!("{long}@"))
        ));
    }
    let file = env.file("users.csv", body);
    let message = import_and_mail(&env, &file, "2026-11-20T07:00:00Z");
    let size = message.raw.len();
    assert!(size < 1 << 20, "the report is {size} bytes");
    // Every part is there: the whole text, the HTML with as many problems
    // as fit, the picture, and errors.csv with as many as fit.
    let text = message.find("text/plain").unwrap().text();
    assert!(
        text.contains("Problems (first 50 of 40,000):"),
        "{}",
        text.chars().take(3000).collect::<String>()
    );
    let html = message.find("text/html").unwrap().text();
    let shown = html.matches("<tr><td style=\"padding:6px;").count();
    assert!((5..50).contains(&shown), "{shown} problems in the HTML");
    assert!(html.contains(&format!("(first {shown} of 40,000)")));
    let rest = rosterd::domain::report::thousands(40_000 - shown as u64);
    assert!(html.contains(&format!("… and {rest} more")), "{rest}");
    assert!(message.find("image/png").is_some());
    let csv = message
        .walk()
        .into_iter()
        .find(|p| p.param("Content-Disposition", "filename").as_deref() == Some("errors.csv"))
        .expect("errors.csv");
    let csv = String::from_utf8(csv.decoded()).unwrap();
    assert!(
        csv.lines().count() > 100,
        "{} rows in errors.csv",
        csv.lines().count()
    );
    assert!(
        csv.contains("more problems were counted but not listed here"),
        "{}",
        csv.lines().last().unwrap()
    );
    assert!(text.contains("errors.csv lists the first "), "{text}");
}

#[test]
fn a_worst_case_held_note_stays_under_a_mebibyte_all_told() {
    let env = Env::new();
    env.tenant("lincoln");
    let users = 3_000;
    let mut first = String::from("Username,First Name\n");
    for i in 0..users {
        first.push_str(&format!("user{i},Ann\n"));
    }
    let first = env.file("first.csv", first);
    env.import_at("lincoln", &first, at("2026-11-19T07:00:00Z"), false);
    // Every user renamed at length (a changes.csv far over what an email
    // carries), and almost as many rows again with four errors each, every
    // cell 600 four-byte characters.
    let long = "😀".repeat(600);
    let renamed = "€".repeat(90);
    let mut body = String::from("Username,First Name,Last Name,Email Address\n");
    for i in 0..users {
        body.push_str(&format!("user{i},{renamed}{i},{renamed},\n"));
    }
    for i in 0..users - 100 {
        let cell = quoted(&format!("{long}{i}"));
        body.push_str(&format!(
            "{cell},{cell},{cell},{}\n",
            quoted(&format!("{long}@"))
        ));
    }
    let file = env.file("users.csv", body);
    let mut store = env.store();
    let tenant = store.require_tenant("lincoln").unwrap();
    let mut opts = options(&file, false);
    opts.email = true;
    opts.holds = Some(rosterd::domain::safety::HoldLimits::default());
    let report = rosterd::import::users::import(
        &mut store.conn,
        &context(&env, at("2026-11-20T07:00:00Z")),
        &tenant,
        &file,
        &opts,
    )
    .unwrap();
    assert_eq!(
        report.outcome,
        rosterd::import::Outcome::Held,
        "{:?}",
        report.reason
    );
    let (kind, message): (String, Vec<u8>) = store
        .conn
        .query_row(
            "SELECT kind, message FROM outbox ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kind, "held");
    assert!(
        message.len() < 1 << 20,
        "the held note is {} bytes",
        message.len()
    );
    let message = Part::parse(&message);
    let changes = message
        .walk()
        .into_iter()
        .find(|p| p.param("Content-Disposition", "filename").as_deref() == Some("changes.csv"))
        .expect("changes.csv");
    let changes = String::from_utf8(changes.decoded()).unwrap();
    // Cut to the room the long text and HTML left, well short of its own
    // limit (which, beside them, would come within 30 KB of 1 MiB).
    assert!(
        changes.len() < rosterd::mail::compose::MAX_ATTACHMENT_BYTES - 32 * 1024,
        "changes.csv is {} bytes",
        changes.len()
    );
    assert!(
        changes.contains("more changes are not listed here"),
        "{}",
        changes.lines().last().unwrap()
    );
    assert!(message.find("image/png").is_some() && message.find("text/html").is_some());
}

#[test]
fn a_dry_runs_email_draws_tonight_from_the_dry_run_and_stores_nothing() {
    let env = Env::new();
    env.tenant("lincoln");
    env.file("one.csv", "Username,First Name\njdoe,Jane\n");
    env.file(
        "two.csv",
        "Username,First Name\njdoe,Jane\nasmith,Al\nbkim,Bo\n",
    );
    let run = |now: &str, args: &[&str]| {
        let out = env.command(args).env("ROSTERD_NOW", now).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    run(
        "2026-11-19T04:00:00Z",
        &["import", "users", "lincoln", "one.csv"],
    );
    run(
        "2026-11-20T04:00:00Z",
        &[
            "import",
            "users",
            "lincoln",
            "two.csv",
            "--dry-run",
            "--email",
        ],
    );
    let runs: i64 = env
        .store()
        .conn
        .query_row("SELECT count(*) FROM import_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1, "a dry run stores no run");
    let eml = files_under(&env.path("data/outbox"))
        .pop()
        .expect("the email");
    let html = Part::parse(&std::fs::read(eml).unwrap())
        .find("text/html")
        .unwrap()
        .text();
    assert!(html.contains(">Dry run: Applied</div>"), "{html}");
    assert!(
        html.contains("alt=\"Last 30 nights (Oct 21 to Nov 19): tonight 2 created, 0 updated, 0 deactivated, 0 errors; a typical night 1 created,"),
        "{html}"
    );
}

/// Width, height and RGB pixels of a PNG.
fn decode_png(png: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("a PNG in {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

/// The screenshot without the empty page below the message, as RGB.
fn crop_to_content(screenshot: &[u8]) -> Vec<u8> {
    let (width, height, pixels) = decode_png(screenshot);
    let background = pixels[pixels.len() - 1];
    let rows: Vec<&[[u8; 3]]> = pixels.chunks(width as usize).collect();
    let last = rows
        .iter()
        .rposition(|row| row.iter().any(|p| *p != background))
        .unwrap_or(height as usize - 1);
    let keep = (last + 13).min(height as usize);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, keep as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().unwrap();
    let data: Vec<u8> = rows[..keep]
        .iter()
        .flat_map(|r| r.iter().flatten())
        .copied()
        .collect();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
    out
}

/// Debian's Chromium, run headless.
struct Chromium(PathBuf);

impl Chromium {
    /// The browser itself, not Debian's `chromium` wrapper script (which
    /// adds Google API keys and remote extensions, and so more background
    /// requests); `tests/setup` installs the package.
    fn find() -> Self {
        let binary = Path::new("/usr/lib/chromium/chromium");
        assert!(
            binary.exists(),
            "Chromium is not installed ({} is missing): `bash tests/setup` installs Debian's chromium package (apt-get install chromium)",
            binary.display()
        );
        Self(binary.to_path_buf())
    }

    /// Open `file` at 600 pixels wide with every request sent to the proxy
    /// on `proxy_port`; returns the DOM after loading and a screenshot.
    fn open(&self, file: &Path, dir: &Path, name: &str, proxy_port: u16) -> (String, Vec<u8>) {
        let shot = dir.join(format!("{name}.png"));
        let profile = dir.join(format!("profile-{name}"));
        let mut child = Command::new(&self.0)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter",
                "--force-color-profile=srgb",
                "--hide-scrollbars",
                "--window-size=600,2400",
                "--proxy-bypass-list=<-loopback>",
            ])
            .arg(format!("--proxy-server=http://127.0.0.1:{proxy_port}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--dump-dom")
            .arg(format!("file://{}", file.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromium");
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut dom = String::new();
            stdout.read_to_string(&mut dom).map(|_| dom)
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not finish with {} in 120 s", file.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "chromium failed on {}: {status}",
            file.display()
        );
        let dom = reader.join().unwrap().expect("chromium's DOM dump");
        let screenshot = std::fs::read(&shot)
            .unwrap_or_else(|e| panic!("chromium wrote no screenshot of {name}: {e}"));
        (dom, screenshot)
    }
}

/// A recording HTTP proxy on loopback that answers nothing: every request
/// the browser makes (page or not) arrives here instead of the network.
struct Proxy {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Proxy {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (requests, stop) = (requests.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            stream
                                .set_read_timeout(Some(Duration::from_secs(5)))
                                .unwrap();
                            let mut line = String::new();
                            let _ = BufReader::new(&stream).read_line(&mut line);
                            requests.lock().unwrap().push(line.trim().to_owned());
                            let _ = (&stream).write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => panic!("proxy accept: {e}"),
                    }
                }
            }
        });
        Self {
            port,
            requests,
            stop,
            thread,
        }
    }

    /// Requests other than Chromium's own background services (component
    /// updates, sign-in), which it contacts at start whatever page it
    /// opens. The reports name no host at all (see the test of their
    /// parts), so any other request would be the page's.
    fn page_requests(&self) -> Vec<String> {
        let own = |line: &String| {
            let target = line.split_whitespace().nth(1).unwrap_or("");
            let host = target
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .split(['/', ':'])
                .next()
                .unwrap_or("");
            ["google.com", "googleapis.com", "gvt1.com"]
                .iter()
                .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        };
        let requests = self.requests.lock().unwrap();
        requests.iter().filter(|l| !own(l)).cloned().collect()
    }

    fn clear(&self) {
        self.requests.lock().unwrap().clear();
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
    }
}
