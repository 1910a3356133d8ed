//! The emails administrators read: the report after each import (summary,
//! first problems, every problem in `errors.csv`), the notes that an import
//! was held or failed or that no file arrived last night, and support's test
//! message. Each goes to every address the district has. Composed from the
//! import [`Report`], which never holds a password, so no email can carry one.
//!
//! The report and the held and nothing-received notes carry an HTML part
//! ([`super::html`]) beside their complete plain text, with the district's
//! last nights drawn as a PNG ([`super::chart`]) that the HTML shows by
//! `cid:`. Their structure:
//!
//! ```text
//! multipart/mixed                (only with attachments)
//! ├─ multipart/alternative
//! │  ├─ text/plain               what a plain-text client shows: all of it
//! │  └─ multipart/related        (only with the picture)
//! │     ├─ text/html
//! │     └─ image/png             Content-ID: <trend.png@rosterd>
//! └─ errors.csv / changes.csv …  the attachments, in order
//! ```
//!
//! A message stays under [`MAX_MESSAGE_BYTES`] all told: the problem table
//! is capped, and `errors.csv` gets the room the other parts leave.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};

use rusqlite::Connection;

use super::html::{self, Page, Problems, Verdict};
use super::{Outgoing, chart};
use crate::domain::credentials::Delivery;
use crate::domain::report::thousands;
use crate::domain::report::{Outcome, Report};
use crate::domain::trend::{RunFigures, Trend};
use crate::domain::window::Window;
use crate::store::Tenant;

/// Where a held import's email says the problems it does not list are.
const HELD_REST: &str = "support can list all of them";

/// How many problems the body lists; the attachment has them all.
pub const PROBLEMS_IN_BODY: usize = 50;
/// The most bytes `errors.csv` (or `changes.csv`) may take, so that a
/// report stays under [`MAX_MESSAGE_BYTES`] once base64-encoded beside its
/// text, HTML and picture. Beyond it the attachment lists the first problems
/// and says how many more there are; `errors.csv` is cut sooner when the
/// other parts leave less room.
pub const MAX_ATTACHMENT_BYTES: usize = 448 * 1024;
/// The most bytes `new-passwords.csv` may take (about 6,000 users): what it
/// takes is left out of `errors.csv`'s room. More passwords than this are
/// not attached: the email says how support issues them as a file.
pub const MAX_PASSWORDS_BYTES: usize = 384 * 1024;
/// The most bytes a whole message may take, headers and encoding included:
/// relays refuse larger mail with 5xx, and the report would be lost.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Room kept for the headers (up to ten recipients), the MIME boundaries and
/// the sentence saying that `errors.csv` was cut.
const HEADROOM: usize = 32 * 1024;
/// What the HTML around its problem table and the picture take at most,
/// encoded: the page's fixed parts and a reason quoted from the file, and a
/// PNG of flat colours and short labels (about 15 KiB).
const PAGE_AND_PICTURE: usize = 128 * 1024;

/// Builds messages from the configured sender address.
#[derive(Debug, Clone)]
pub struct Composer {
    from: Mailbox,
}

/// Where and when the reported file came in, when it came over SFTP.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: DateTime<Utc>,
    pub remote_addr: Option<String>,
}

impl Received {
    /// "2026-11-21 01:02:03 EST (from 203.0.113.9)".
    fn describe(&self, tz: Tz) -> String {
        match &self.remote_addr {
            Some(addr) => format!("{} (from {addr})", local(self.at, tz)),
            None => local(self.at, tz),
        }
    }
}

/// The HTML part of a message, and the picture it shows, if any.
#[derive(Clone)]
struct Html {
    page: String,
    picture: Option<Vec<u8>>,
}

/// The district's last nights for the email about the night holding
/// `tonight`, from its users imports stored in `conn` (read in the
/// transaction that queues the email), plus `unstored`: an import the store
/// does not hold (a dry run).
pub fn trend(
    conn: &Connection,
    tenant_id: i64,
    tz: Tz,
    tonight: DateTime<Utc>,
    unstored: Option<RunFigures>,
) -> anyhow::Result<Trend> {
    let (mut runs, mut first) = crate::store::trend_runs(conn, tenant_id, Trend::since(tonight))?;
    if let Some(run) = unstored {
        first = Some(first.map_or(run.finished_at, |f| f.min(run.finished_at)));
        runs.push(run);
    }
    Ok(Trend::new(&runs, first, tz, tonight))
}

impl Composer {
    /// `from` as in `mail.from` ("Rostering <rostering@example.org>").
    pub fn new(from: &str) -> anyhow::Result<Self> {
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail.from {from:?} is not an address: {e}"))?;
        Ok(Self { from })
    }

    /// The address the SMTP envelope uses.
    pub fn from_address(&self) -> &lettre::Address {
        &self.from.email
    }

    /// The email reporting one import to the district's administrator, with
    /// the district's last nights (`trend`, for users imports) and the
    /// passwords it generated (`passwords`): attached as
    /// `new-passwords.csv`, and the message to keep once delivered
    /// ([`Outgoing::after_delivery`]) the same without them.
    #[allow(clippy::too_many_arguments)]
    pub fn report(
        &self,
        tenant: &Tenant,
        tz: Tz,
        report: &Report,
        received: Option<&Received>,
        trend: Option<&Trend>,
        passwords: Delivery<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Outgoing> {
        let subject = report_subject(report);
        let undo = report.kind == "undo";
        let mut body = format!("Hello {},\n\n", tenant.admin_name);
        let intro = match (report.outcome, received) {
            _ if undo => format!(
                "Support undid an import for {} ({}): every value that import changed is back as it was before it, and the accounts it created are deactivated.",
                tenant.subdomain, report.file_name
            ),
            (Outcome::Rejected, _) => format!(
                "rosterd could not import the {} that {} sent, so nothing in your accounts was changed.",
                report.file_name, tenant.subdomain
            ),
            (Outcome::Unchanged, _) => format!(
                "The {} that {} sent is byte-for-byte the same as the last one imported, so there was nothing to change.",
                report.file_name, tenant.subdomain
            ),
            _ => format!(
                "rosterd imported the {} that {} sent. The counts and any rows that need fixing are below.",
                report.file_name, tenant.subdomain
            ),
        };
        body.push_str(&intro);
        body.push('\n');
        let mut facts = Vec::new();
        if let Some(r) = received {
            body.push_str(&format!("\n  received   {}", r.describe(tz)));
            facts.push(("received", r.describe(tz)));
        }
        if let Ok(done) = DateTime::parse_from_rfc3339(&report.finished_at) {
            let done = local(done.with_timezone(&Utc), tz);
            body.push_str(&format!("\n  imported   {done}\n"));
            facts.push(("imported", done));
        }
        if !undo {
            facts.extend(file_facts(report));
        }
        body.push('\n');
        let rest = "the attached errors.csv lists every problem";
        body.push_str(&report.render_text(PROBLEMS_IN_BODY, rest));
        let mut closing = Vec::new();
        if report.outcome == Outcome::Rejected {
            closing.push(
                "What to do: fix the file as described above and upload users.csv again; it will be imported in the next window.",
            );
        } else if report.counts.errors > 0 {
            closing.push(
                "Rows with errors were skipped; every other row was applied. Fix the rows listed (errors.csv has all of them) in your SIS and they will be imported with the next upload.",
            );
        }
        let mut closing: Vec<String> = closing.into_iter().map(String::from).collect();
        let new_passwords = match passwords {
            Delivery::Attach(issued) if !issued.is_empty() => {
                let csv = issued.to_csv();
                closing.extend(passwords_note(tenant, report, issued.len(), csv.len()));
                (csv.len() <= MAX_PASSWORDS_BYTES).then_some(csv)
            }
            Delivery::File if report.counts.passwords_generated > 0 => {
                closing.push(format!(
                    "{} new users had no password in the file, so rosterd generated one for each. Support wrote them to a file for you, as you asked; they are not in this email.",
                    thousands(report.counts.passwords_generated)
                ));
                None
            }
            _ => None,
        };
        for paragraph in &closing {
            body.push('\n');
            body.push_str(paragraph);
            body.push('\n');
        }
        let verdict = match report.outcome {
            _ if undo => Verdict::Undone,
            Outcome::Applied => Verdict::Applied,
            Outcome::AppliedWithErrors => Verdict::AppliedWithErrors,
            Outcome::Unchanged => Verdict::Unchanged,
            Outcome::Rejected => Verdict::Rejected,
            Outcome::Held => Verdict::Held,
        };
        let footer = footer(tenant);
        let mut page = Page {
            title: &subject,
            verdict,
            verdict_detail: if undo {
                "every value the undone import changed is back as it was".into()
            } else {
                report.headline()
            },
            dry_run: report.dry_run,
            admin_name: &tenant.admin_name,
            intro: &intro,
            facts,
            reason: report.reason.as_deref(),
            counts: (report.outcome != Outcome::Unchanged).then_some(&report.counts),
            trend,
            problems: problems(report, rest),
            closing: closing.clone(),
            footer: footer_line(&footer),
        };
        let picture = trend.map(chart::png).transpose()?;
        let mut attachments = Vec::new();
        if !report.problems.is_empty() || report.problems_truncated > 0 {
            // errors.csv takes the room the other parts leave.
            let used = text_len(&body)
                + text_len(&html::render(&page))
                + picture.as_ref().map_or(0, |p| binary_len(p.len()))
                + new_passwords.as_ref().map_or(0, |p| binary_len(p.len()))
                + text_len(&footer);
            let room = MAX_MESSAGE_BYTES.saturating_sub(used + HEADROOM);
            let mut csv = Vec::new();
            let left_out =
                report.write_problems_csv(&mut csv, MAX_ATTACHMENT_BYTES.min(raw_room(room)))?;
            if left_out > 0 || report.problems_truncated > 0 {
                let cut = format!(
                    "errors.csv lists the first {} problems; the file has more than an email can carry. Fix those and upload again to see the rest.",
                    thousands((report.problems.len() - left_out) as u64)
                );
                body.push_str(&format!("\n{cut}\n"));
                closing.push(cut);
            }
            attachments.push(("errors.csv", csv));
        }
        body.push_str(&footer);
        page.closing = closing;
        let html = Html {
            page: html::render(&page),
            picture,
        };
        let key = match report.run_id {
            Some(id) => format!("run:{id}"),
            // A dry run has no stored run; every one is a message of its own.
            None => format!("dry-run:{}:{:016x}", tenant.id, rand::random::<u64>()),
        };
        let build = |attachments| {
            self.build(
                tenant,
                "report",
                key.clone(),
                subject.clone(),
                body.clone(),
                Some(html.clone()),
                attachments,
                now,
            )
        };
        let Some(passwords) = new_passwords else {
            return build(attachments);
        };
        // Delivered with the passwords; kept, once delivered, without them
        // (the same Message-ID and Date: the same message).
        let kept = build(attachments.clone())?;
        attachments.push(("new-passwords.csv", passwords.to_vec()));
        let mut mail = build(attachments)?;
        mail.after_delivery = Some(kept.message);
        Ok(mail)
    }

    /// The most bytes the `changes.csv` of `report`'s "held" email may take
    /// (at most [`MAX_ATTACHMENT_BYTES`]): what its text, its HTML (the
    /// problem table at most [`html::TABLE_BYTES`]) and its picture leave
    /// under [`MAX_MESSAGE_BYTES`]. The held import writes its changes with
    /// it before the run is stored.
    pub fn held_attachment_room(report: &Report) -> usize {
        let text = text_len(&report.render_text(PROBLEMS_IN_BODY, HELD_REST));
        let html = binary_len(html::TABLE_BYTES) + PAGE_AND_PICTURE;
        let room = MAX_MESSAGE_BYTES.saturating_sub(text + html + HEADROOM);
        MAX_ATTACHMENT_BYTES.min(raw_room(room))
    }

    /// The email saying an import was held for review: what it would have
    /// done, why it was held, and every change it would make in
    /// `changes.csv` (`changes`, already cut to fit), with the district's
    /// last nights (`trend`).
    #[allow(clippy::too_many_arguments)]
    pub fn held(
        &self,
        tenant: &Tenant,
        tz: Tz,
        report: &Report,
        changes: Vec<u8>,
        received: Option<&Received>,
        trend: Option<&Trend>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Outgoing> {
        let c = &report.counts;
        let subject = format!(
            "{}: {} held for review — it would update {} and deactivate {} accounts; nothing applied yet",
            tenant.subdomain,
            report.file_name,
            thousands(c.updated),
            thousands(c.deactivated)
        );
        let intro = format!(
            "rosterd received the {} that {} sent, but did not apply it: it would change more of your accounts than an ordinary night does, which is what a broken export looks like. Your accounts are as they were.",
            report.file_name, tenant.subdomain
        );
        let mut body = format!("Hello {},\n\n{intro}\n", tenant.admin_name);
        let mut facts = Vec::new();
        if let Some(r) = received {
            body.push_str(&format!("\n  received   {}\n", r.describe(tz)));
            facts.push(("received", r.describe(tz)));
        }
        facts.extend(file_facts(report));
        body.push('\n');
        let rest = HELD_REST;
        body.push_str(&report.render_text(PROBLEMS_IN_BODY, rest));
        let closing = "The attached changes.csv lists every change the file would make (before and after). If they are what you expect, ask your rostering support contact to approve the import; if not, fix the export and upload again: a newer upload replaces this one.";
        body.push_str(&format!("\n{closing}\n"));
        let footer = footer(tenant);
        body.push_str(&footer);
        let page = Page {
            title: &subject,
            verdict: Verdict::Held,
            verdict_detail: format!(
                "nothing applied yet — it would create {}, update {}, reactivate {} and deactivate {} accounts",
                thousands(c.created),
                thousands(c.updated),
                thousands(c.reactivated),
                thousands(c.deactivated)
            ),
            dry_run: report.dry_run,
            admin_name: &tenant.admin_name,
            intro: &intro,
            facts,
            reason: report.reason.as_deref(),
            counts: Some(c),
            trend,
            problems: problems(report, rest),
            closing: vec![closing.into()],
            footer: footer_line(&footer),
        };
        let html = Html {
            page: html::render(&page),
            picture: trend.map(chart::png).transpose()?,
        };
        let key = match report.run_id {
            Some(id) => format!("run:{id}"),
            None => format!("held:{}:{:016x}", tenant.id, rand::random::<u64>()),
        };
        self.build(
            tenant,
            "held",
            key,
            subject,
            body,
            Some(html),
            vec![("changes.csv", changes)],
            now,
        )
    }

    /// The one note for a night in which a district that has delivered before sent
    /// nothing, with its last nights (`trend`, tonight without a file).
    /// `close` is when that night's window closed.
    pub fn missing(
        &self,
        tenant: &Tenant,
        tz: Tz,
        close: DateTime<Utc>,
        last_received: Option<DateTime<Utc>>,
        trend: Option<&Trend>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Outgoing> {
        let close_local = close.with_timezone(&tz);
        let subject = format!(
            "{}: no users.csv received last night (window closed {})",
            tenant.subdomain,
            close_local.format("%a %-d %b %H:%M %Z")
        );
        let intro = format!(
            "rosterd did not receive a users.csv from {} before the import window closed at {}, so nothing was imported last night.",
            tenant.subdomain,
            local(close, tz)
        );
        let mut body = format!("Hello {},\n\n{intro}\n", tenant.admin_name);
        let mut facts = vec![("window closed", local(close, tz))];
        if let Some(last) = last_received {
            body.push_str(&format!(
                "\nThe last users.csv arrived {}.\n",
                local(last, tz)
            ));
            facts.push(("last users.csv", local(last, tz)));
        }
        let closing = "Please check that your SIS export job ran and could connect (it logs in with SFTP as your district's subdomain, with its registered SSH key). Accounts stay as they were until the next file arrives.";
        body.push_str(&format!("\n{closing}\n"));
        let footer = footer(tenant);
        body.push_str(&footer);
        let page = Page {
            title: &subject,
            verdict: Verdict::NothingReceived,
            verdict_detail: "no users.csv arrived last night; nothing was imported".into(),
            dry_run: false,
            admin_name: &tenant.admin_name,
            intro: &intro,
            facts,
            reason: None,
            counts: None,
            trend,
            problems: None,
            closing: vec![closing.into()],
            footer: footer_line(&footer),
        };
        let html = Html {
            page: html::render(&page),
            picture: trend.map(chart::png).transpose()?,
        };
        let key = missing_key(tenant, tz, close);
        self.build(
            tenant,
            "missing",
            key,
            subject,
            body,
            Some(html),
            Vec::new(),
            now,
        )
    }

    /// The one note that an upload could not be imported at all (its import
    /// kept failing, or the daemon did not survive it) and support was told.
    pub fn failed(
        &self,
        tenant: &Tenant,
        tz: Tz,
        upload_id: i64,
        (size, sha256): (u64, &str),
        received: Option<&Received>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Outgoing> {
        let subject = format!(
            "{}: we could not import your users.csv — support has been told",
            tenant.subdomain
        );
        let mut body = format!(
            "Hello {},\n\nrosterd could not import the users.csv that {} sent",
            tenant.admin_name, tenant.subdomain
        );
        if let Some(r) = received {
            body.push_str(&format!(" (received {})", local(r.at, tz)));
        }
        body.push_str(
            ". Its import failed on our side, more than once, so we stopped trying: nothing in your accounts was changed by this file.\n\n\
Support has been told and will look into it; you do not need to do anything. The next users.csv your SIS uploads will be imported as usual.\n",
        );
        body.push_str(&format!(
            "\n  file       users.csv ({})\n  sha256     {sha256}\n",
            crate::domain::report::human_size(size)
        ));
        body.push_str(&footer(tenant));
        let key = format!("failed:{upload_id}");
        self.build(tenant, "failed", key, subject, body, None, Vec::new(), now)
    }

    /// The note that an upload was refused as it arrived (the upload
    /// check's `reason`, and its `detail` with what to fix): that it
    /// replaced nothing, what to do. One a night per district: its dedupe key is the
    /// district and the local date on which the night's `window` closes, so
    /// a job retrying all night is not another email each time.
    #[allow(clippy::too_many_arguments)]
    pub fn refused(
        &self,
        tenant: &Tenant,
        tz: Tz,
        window: Window,
        (reason, detail): (&str, &str),
        (size, sha256): (u64, &str),
        received: &Received,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Outgoing> {
        let night = window
            .next_close(tz, received.at)
            .with_timezone(&tz)
            .date_naive();
        let subject = format!(
            "{}: users.csv refused on upload — nothing was replaced",
            tenant.subdomain
        );
        let mut body = format!(
            "Hello {},\n\nrosterd refused the users.csv that {} uploaded {}",
            tenant.admin_name,
            tenant.subdomain,
            local(received.at, tz)
        );
        if let Some(addr) = &received.remote_addr {
            body.push_str(&format!(" (from {addr})"));
        }
        body.push_str(&format!(": {reason}.\n"));
        if detail != reason {
            body.push_str(&format!("\n{detail}.\n"));
        }
        body.push_str(&format!(
            "\n  file       users.csv ({})\n  sha256     {sha256}\n",
            crate::domain::report::human_size(size)
        ));
        body.push_str(
            "\nThe file was not stored: the users.csv received before it, if any, stays and is imported as usual, and nothing in your accounts changed because of this upload. The upload job was answered with the same reason as an error, which most SFTP clients report as a failed upload.\n\n\
What to do: fix the export and upload users.csv again.\n",
        );
        body.push_str(&format!(
            "\nThis is the only such note for the night ending {}: an upload refused again before then gets the same answer and is logged for support (`rosterd status` shows the last one).\n",
            night.format("%a %-d %b")
        ));
        body.push_str(&footer(tenant));
        let key = format!("refused:{}:{}", tenant.id, night.format("%Y-%m-%d"));
        self.build(tenant, "refused", key, subject, body, None, Vec::new(), now)
    }

    /// A short message support sends (`rosterd mail test`) to see that the
    /// district's mail arrives: it names every address it went to and what
    /// else will come the same way.
    pub fn test(&self, tenant: &Tenant, tz: Tz, now: DateTime<Utc>) -> anyhow::Result<Outgoing> {
        let subject = format!("{}: rosterd test message", tenant.subdomain);
        let mut body = format!(
            "Hello {},\n\nThis is a test message from rosterd, sent {} by your rostering support contact to check that email for {} reaches you. Nothing was imported and nothing in your accounts changed.\n\n\
Import reports, held-import notices and \"no users.csv received\" notes for {} go to:\n",
            tenant.admin_name,
            local(now, tz),
            tenant.subdomain,
            tenant.subdomain
        );
        for address in tenant.recipients() {
            body.push_str(&format!("\n  {address}"));
        }
        body.push_str("\n\nYou do not need to do anything. If an address above is wrong or missing, tell your rostering support contact.\n");
        body.push_str(&footer(tenant));
        let key = format!("test:{}:{:016x}", tenant.id, rand::random::<u64>());
        self.build(tenant, "test", key, subject, body, None, Vec::new(), now)
    }

    /// The message: its plain text `body`, beside `html` when there is
    /// one, then each attachment in order.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        tenant: &Tenant,
        kind: &'static str,
        dedupe_key: String,
        subject: String,
        body: String,
        html: Option<Html>,
        attachments: Vec<(&str, Vec<u8>)>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Outgoing> {
        let to = recipients(tenant)?;
        let message_id = format!(
            "<{}.{}@{}>",
            dedupe_key.replace(':', "."),
            now.timestamp(),
            self.from.email.domain()
        );
        let mut builder = lettre::Message::builder().from(self.from.clone());
        for mailbox in &to {
            builder = builder.to(mailbox.clone());
        }
        let builder = builder
            .subject(subject.clone())
            .date(now.into())
            .message_id(Some(message_id));
        let text = SinglePart::plain(body);
        let message = match (html, attachments.is_empty()) {
            (None, true) => builder.singlepart(text)?,
            (Some(html), true) => builder.multipart(alternative(text, html)?)?,
            (html, false) => {
                let mut mixed = match html {
                    Some(html) => MultiPart::mixed().multipart(alternative(text, html)?),
                    None => MultiPart::mixed().singlepart(text),
                };
                for (name, bytes) in attachments {
                    // Always base64: a CSV's bare line feeds sent as 7bit
                    // make one long line that SMTP servers refuse.
                    let body = Body::new_with_encoding(bytes, ContentTransferEncoding::Base64)
                        .map_err(|_| anyhow::anyhow!("{name} cannot be base64-encoded"))?;
                    mixed = mixed.singlepart(
                        Attachment::new(name.to_owned())
                            .body(body, ContentType::parse("text/csv; charset=utf-8")?),
                    );
                }
                builder.multipart(mixed)?
            }
        };
        Ok(Outgoing {
            tenant_id: tenant.id,
            dedupe_key,
            kind,
            recipients: to.iter().map(|m| m.email.to_string()).collect(),
            subject,
            message: message.formatted(),
            after_delivery: None,
        })
    }
}

/// The plain text and the HTML (with its picture) as alternatives.
fn alternative(text: SinglePart, html: Html) -> anyhow::Result<MultiPart> {
    let page = SinglePart::html(html.page);
    Ok(match html.picture {
        None => MultiPart::alternative().singlepart(text).singlepart(page),
        Some(png) => MultiPart::alternative().singlepart(text).multipart(
            MultiPart::related().singlepart(page).singlepart(
                Attachment::new_inline(html::TREND_CID.to_owned())
                    .body(png, ContentType::parse("image/png")?),
            ),
        ),
    })
}

/// The paragraphs the report says of the `n` passwords an import generated,
/// attached as `new-passwords.csv` of `bytes` (or not, past
/// [`MAX_PASSWORDS_BYTES`]).
fn passwords_note(tenant: &Tenant, report: &Report, n: usize, bytes: usize) -> Vec<String> {
    let n = thousands(n as u64);
    let reissue = format!(
        "rosterd users reset-passwords {} --run {}",
        tenant.subdomain,
        report.run_id.unwrap_or_default()
    );
    if bytes > MAX_PASSWORDS_BYTES {
        return vec![format!(
            "{n} new users had no password in the file, so rosterd generated one for each: more than one email can carry, so they are not attached. Ask your rostering support contact to issue them to you as a file (support runs `{reissue} --out new-passwords.csv`, which sets new ones; nobody has seen these)."
        )];
    }
    vec![
        format!(
            "{n} new users had no password in the file, so rosterd generated one for each. The attached new-passwords.csv lists them (Username, First Name, Last Name, School, Password)."
        ),
        format!(
            "Hand each user their password, then delete the file and this email. rosterd keeps no copy: once this message is delivered, the attachment is removed from rosterd's records, so a lost file cannot be sent again. If it is lost, your rostering support contact can set new passwords for these users (`{reissue}`)."
        ),
    ]
}

/// The outbox key of the "no users.csv received" note for the window that
/// closed at `close`: one note per district and night.
pub fn missing_key(tenant: &Tenant, tz: Tz, close: DateTime<Utc>) -> String {
    format!(
        "missing:{}:{}",
        tenant.id,
        close.with_timezone(&tz).date_naive().format("%Y-%m-%d")
    )
}

/// The file lines of a report, for the HTML's facts.
fn file_facts(report: &Report) -> [(&'static str, String); 2] {
    [
        (
            "file",
            format!(
                "{} ({}, {})",
                report.file_name,
                crate::domain::report::human_size(report.size),
                report.encoding.as_deref().unwrap_or("not decoded")
            ),
        ),
        ("sha256", report.sha256.clone()),
    ]
}

/// The problems the HTML lists: as many as the plain text does.
fn problems<'a>(report: &'a Report, rest: &'a str) -> Option<Problems<'a>> {
    (!report.problems.is_empty()).then(|| Problems {
        shown: &report.problems[..report.problems.len().min(PROBLEMS_IN_BODY)],
        total: report.counts.errors + report.counts.warnings,
        rest,
    })
}

/// The bytes `text` takes in a message, once encoded.
fn text_len(text: &str) -> usize {
    Body::new(text.to_owned()).len()
}

/// The bytes `len` bytes of binary take in a message: base64 in lines of 76.
fn binary_len(len: usize) -> usize {
    len.div_ceil(57) * 78
}

/// How many bytes of binary fit in `encoded` bytes of a message.
fn raw_room(encoded: usize) -> usize {
    encoded / 78 * 57
}

/// "lincoln-usd: users.csv imported — 1,204 created, 37 updated, 3 errors".
pub fn report_subject(report: &Report) -> String {
    let c = &report.counts;
    let dry = if report.dry_run { "[dry run] " } else { "" };
    if report.kind == "undo" {
        return format!(
            "{}: {} done — {} restored, {} deactivated",
            report.tenant,
            report.file_name,
            thousands(c.updated),
            thousands(c.deactivated)
        );
    }
    let what = match report.outcome {
        Outcome::Held => format!("{} held for review — nothing applied yet", report.file_name),
        Outcome::Rejected => format!("{} rejected — nothing was applied", report.file_name),
        Outcome::Unchanged => format!("{} unchanged since the last import", report.file_name),
        _ => {
            let mut s = format!(
                "{} imported — {} created, {} updated",
                report.file_name,
                thousands(c.created),
                thousands(c.updated)
            );
            // Never hidden: a night that deactivates every account must not
            // read like a quiet one.
            if c.deactivated > 0 {
                s.push_str(&format!(", {} deactivated", thousands(c.deactivated)));
            }
            if c.reactivated > 0 {
                s.push_str(&format!(", {} reactivated", thousands(c.reactivated)));
            }
            if c.errors > 0 {
                s.push_str(&format!(
                    ", {} error{}",
                    thousands(c.errors),
                    if c.errors == 1 { "" } else { "s" }
                ));
            }
            s
        }
    };
    format!("{dry}{}: {what}", report.tenant)
}

/// A time as the district reads it: its own zone, with the zone named.
pub fn local(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The district's addresses for `To:`: its administrator by name when there is
/// one address; when there are several, the addresses alone (the name is not
/// known to belong to any one of them).
fn recipients(tenant: &Tenant) -> anyhow::Result<Vec<Mailbox>> {
    let addresses = tenant.recipients();
    let unusable = |address: &str, e: lettre::address::AddressError| {
        anyhow::anyhow!(
            "tenant {} has an administrator address lettre cannot use ({address:?}): {e}; fix it with `rosterd tenant set`",
            tenant.subdomain
        )
    };
    if let [address] = addresses[..] {
        let named: Result<Mailbox, _> = format!("{} <{address}>", tenant.admin_name).parse();
        return named
            .or_else(|_| address.parse())
            .map(|m| vec![m])
            .map_err(|e| unusable(address, e));
    }
    anyhow::ensure!(
        !addresses.is_empty(),
        "tenant {} has no administrator address; set one with `rosterd tenant set {} --admin-email`",
        tenant.subdomain,
        tenant.subdomain
    );
    addresses
        .into_iter()
        .map(|address| address.parse().map_err(|e| unusable(address, e)))
        .collect()
}

fn footer(tenant: &Tenant) -> String {
    let to = if tenant.recipients().len() > 1 {
        "the addresses"
    } else {
        "the administrator"
    };
    format!(
        "\n-- \nThis message was sent by rosterd to {to} registered for {}. Reply to your rostering support contact with any questions.\n",
        tenant.subdomain
    )
}

/// The plain text's footer without its signature separator, for the HTML.
fn footer_line(footer: &str) -> String {
    footer.trim_start_matches("\n-- \n").trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::credentials::{Issued, IssuedPassword};
    use crate::domain::report::{Counts, Problem, Severity};

    fn tenant() -> Tenant {
        Tenant {
            id: 1,
            subdomain: "lincoln".into(),
            admin_name: "Ann".into(),
            admin_email: "ann@example.org".into(),
            timezone: None,
            sso: false,
            generate_passwords: true,
            window: None,
            disabled: false,
            created_at: String::new(),
            absent: crate::domain::safety::Absent::Keep,
            hold_update_percent: None,
            hold_deactivate_percent: None,
            pause: None,
        }
    }

    fn report(problems: usize, generated: usize) -> Report {
        let mut r = Report {
            tenant: "lincoln".into(),
            kind: "users",
            file_name: "users.csv".into(),
            size: 1,
            sha256: String::new(),
            encoding: None,
            started_at: "2026-11-20T04:00:00Z".into(),
            finished_at: "2026-11-20T04:00:00Z".into(),
            dry_run: false,
            outcome: Outcome::AppliedWithErrors,
            reason: None,
            counts: Counts {
                passwords_generated: generated as u64,
                ..Counts::default()
            },
            problems: Vec::new(),
            problems_truncated: 0,
            problem_bytes: 0,
            run_id: Some(7),
        };
        for i in 0..problems {
            r.add(Problem {
                line: Some(i as u64 + 2),
                column: "Graduation Year".into(),
                value: "x".repeat(200),
                severity: Severity::Error,
                message: "Graduation Year must be a 4-digit year".into(),
                who: None,
            });
        }
        r
    }

    fn issued(n: usize) -> Issued {
        let mut issued = Issued::default();
        for i in 0..n {
            issued.push(IssuedPassword {
                username: format!("student.number{i}@lincoln.k12.example.org"),
                first_name: "Firstname".into(),
                last_name: "Lastname".into(),
                school: "Lincoln Elementary School".into(),
                password: crate::password::generate(),
            });
        }
        issued
    }

    fn compose(problems: usize, n: usize) -> Outgoing {
        let issued = issued(n);
        Composer::new("Rostering <r@example.org>")
            .unwrap()
            .report(
                &tenant(),
                chrono_tz::UTC,
                &report(problems, n),
                None,
                None,
                Delivery::Attach(&issued),
                Utc::now(),
            )
            .unwrap()
    }

    #[test]
    fn passwords_and_every_problem_fit_one_message_under_1_mib() {
        let mail = compose(10_000, 3_000);
        let text = String::from_utf8_lossy(&mail.message);
        assert!(text.contains("filename=\"new-passwords.csv\""));
        assert!(text.contains("filename=\"errors.csv\""));
        assert!(mail.message.len() < 1024 * 1024, "{}", mail.message.len());
        // Kept once delivered: the same message without the passwords.
        let kept = String::from_utf8_lossy(mail.after_delivery.as_ref().unwrap());
        assert!(!kept.contains("new-passwords.csv\""));
        assert!(kept.contains("filename=\"errors.csv\""));
        let header = |m: &str, h: &str| {
            m.lines()
                .find(|l| l.starts_with(h))
                .map(str::to_owned)
                .unwrap()
        };
        assert_eq!(header(&text, "Message-ID"), header(&kept, "Message-ID"));
    }

    #[test]
    fn more_passwords_than_an_email_carries_are_not_attached_and_the_email_says_how_to_get_them() {
        let mail = compose(0, 8_000);
        // Quoted-printable's soft line breaks joined again.
        let text = String::from_utf8_lossy(&mail.message).replace("=\r\n", "");
        assert!(!text.contains("new-passwords.csv\""));
        assert!(mail.after_delivery.is_none());
        assert!(
            text.contains("rosterd users reset-passwords lincoln --run 7 --out new-passwords.csv"),
            "{text}"
        );
    }

    #[test]
    fn a_report_without_generated_passwords_has_nothing_to_scrub() {
        let mail = compose(3, 0);
        assert!(mail.after_delivery.is_none());
        assert!(!String::from_utf8_lossy(&mail.message).contains("new-passwords"));
    }
}
