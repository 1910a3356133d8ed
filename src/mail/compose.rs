//! The emails administrators read: the report after each import (summary,
//! first problems, every problem in `errors.csv`), the notes that an import
//! was held or failed or that no file arrived last night, and support's test
//! message. Each goes to every address the district has. Composed from the
//! import [`Report`], which never holds a password, so no email can carry one.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use super::Outgoing;
use crate::domain::report::thousands;
use crate::domain::report::{Outcome, Report};
use crate::domain::window::Window;
use crate::store::Tenant;

/// How many problems the body lists; the attachment has them all.
pub const PROBLEMS_IN_BODY: usize = 50;
/// The most bytes `errors.csv` may take, so that a report stays well under
/// 1 MiB once base64-encoded (relays refuse larger mail with 5xx, and the
/// report would be lost). Beyond it the attachment lists the first problems
/// and says how many more there are.
pub const MAX_ATTACHMENT_BYTES: usize = 512 * 1024;

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

    /// The email reporting one import to the district's administrator.
    pub fn report(
        &self,
        tenant: &Tenant,
        tz: Tz,
        report: &Report,
        received: Option<&Received>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Outgoing> {
        let subject = report_subject(report);
        let mut body = format!("Hello {},\n\n", tenant.admin_name);
        body.push_str(&match (report.outcome, received) {
            _ if report.kind == "undo" => format!(
                "Support undid an import for {} ({}): every value that import changed is back as it was before it, and the accounts it created are deactivated.\n",
                tenant.subdomain, report.file_name
            ),
            (Outcome::Rejected, _) => format!(
                "rosterd could not import the {} that {} sent, so nothing in your accounts was changed.\n",
                report.file_name, tenant.subdomain
            ),
            (Outcome::Unchanged, _) => format!(
                "The {} that {} sent is byte-for-byte the same as the last one imported, so there was nothing to change.\n",
                report.file_name, tenant.subdomain
            ),
            _ => format!(
                "rosterd imported the {} that {} sent. The counts and any rows that need fixing are below.\n",
                report.file_name, tenant.subdomain
            ),
        });
        if let Some(r) = received {
            body.push_str(&format!("\n  received   {}", local(r.at, tz)));
            if let Some(addr) = &r.remote_addr {
                body.push_str(&format!(" (from {addr})"));
            }
        }
        if let Ok(done) = DateTime::parse_from_rfc3339(&report.finished_at) {
            body.push_str(&format!(
                "\n  imported   {}\n",
                local(done.with_timezone(&Utc), tz)
            ));
        }
        body.push('\n');
        body.push_str(&report.render_text(
            PROBLEMS_IN_BODY,
            "the attached errors.csv lists every problem",
        ));
        if report.outcome == Outcome::Rejected {
            body.push_str(
                "\nWhat to do: fix the file as described above and upload users.csv again; it will be imported in the next window.\n",
            );
        } else if report.counts.errors > 0 {
            body.push_str(
                "\nRows with errors were skipped; every other row was applied. Fix the rows listed (errors.csv has all of them) in your SIS and they will be imported with the next upload.\n",
            );
        }
        let attachment = if report.problems.is_empty() && report.problems_truncated == 0 {
            None
        } else {
            let mut csv = Vec::new();
            let left_out = report.write_problems_csv(&mut csv, MAX_ATTACHMENT_BYTES)?;
            if left_out > 0 || report.problems_truncated > 0 {
                body.push_str(&format!(
                    "\nerrors.csv lists the first {} problems; the file has more than an email can carry. Fix those and upload again to see the rest.\n",
                    thousands((report.problems.len() - left_out) as u64)
                ));
            }
            Some(("errors.csv", csv))
        };
        body.push_str(&footer(tenant));
        let key = match report.run_id {
            Some(id) => format!("run:{id}"),
            // A dry run has no stored run; every one is a message of its own.
            None => format!("dry-run:{}:{:016x}", tenant.id, rand::random::<u64>()),
        };
        self.build(tenant, "report", key, subject, body, attachment, now)
    }

    /// The email saying an import was held for review: what it would have
    /// done, why it was held, and every change it would make in
    /// `changes.csv` (`changes`, already cut to fit).
    pub fn held(
        &self,
        tenant: &Tenant,
        tz: Tz,
        report: &Report,
        changes: Vec<u8>,
        received: Option<&Received>,
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
        let mut body = format!(
            "Hello {},\n\nrosterd received the {} that {} sent, but did not apply it: it would change more of your accounts than an ordinary night does, which is what a broken export looks like. Your accounts are as they were.\n",
            tenant.admin_name, report.file_name, tenant.subdomain
        );
        if let Some(r) = received {
            body.push_str(&format!("\n  received   {}", local(r.at, tz)));
            if let Some(addr) = &r.remote_addr {
                body.push_str(&format!(" (from {addr})"));
            }
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&report.render_text(PROBLEMS_IN_BODY, "support can list all of them"));
        body.push_str(
            "\nThe attached changes.csv lists every change the file would make (before and after). If they are what you expect, ask your rostering support contact to approve the import; if not, fix the export and upload again: a newer upload replaces this one.\n",
        );
        body.push_str(&footer(tenant));
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
            Some(("changes.csv", changes)),
            now,
        )
    }

    /// The one note for a night in which a district that has delivered before sent
    /// nothing. `close` is when that night's window closed.
    pub fn missing(
        &self,
        tenant: &Tenant,
        tz: Tz,
        close: DateTime<Utc>,
        last_received: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Outgoing> {
        let close_local = close.with_timezone(&tz);
        let subject = format!(
            "{}: no users.csv received last night (window closed {})",
            tenant.subdomain,
            close_local.format("%a %-d %b %H:%M %Z")
        );
        let mut body = format!(
            "Hello {},\n\nrosterd did not receive a users.csv from {} before the import window closed at {}, so nothing was imported last night.\n",
            tenant.admin_name,
            tenant.subdomain,
            local(close, tz)
        );
        if let Some(last) = last_received {
            body.push_str(&format!(
                "\nThe last users.csv arrived {}.\n",
                local(last, tz)
            ));
        }
        body.push_str(
            "\nPlease check that your SIS export job ran and could connect (it logs in with SFTP as your district's subdomain, with its registered SSH key). Accounts stay as they were until the next file arrives.\n",
        );
        body.push_str(&footer(tenant));
        let key = format!(
            "missing:{}:{}",
            tenant.id,
            close_local.date_naive().format("%Y-%m-%d")
        );
        self.build(tenant, "missing", key, subject, body, None, now)
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
        self.build(tenant, "failed", key, subject, body, None, now)
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
        self.build(tenant, "refused", key, subject, body, None, now)
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
        self.build(tenant, "test", key, subject, body, None, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        tenant: &Tenant,
        kind: &'static str,
        dedupe_key: String,
        subject: String,
        body: String,
        attachment: Option<(&str, Vec<u8>)>,
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
        let message = match attachment {
            None => builder.singlepart(text)?,
            Some((name, bytes)) => builder.multipart(
                MultiPart::mixed().singlepart(text).singlepart(
                    Attachment::new(name.to_owned())
                        .body(bytes, ContentType::parse("text/csv; charset=utf-8")?),
                ),
            )?,
        };
        Ok(Outgoing {
            tenant_id: tenant.id,
            dedupe_key,
            kind,
            recipients: to.iter().map(|m| m.email.to_string()).collect(),
            subject,
            message: message.formatted(),
        })
    }
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
