//! `rosterd status`: per district, the last upload and import, what is
//! pending, refused on upload, held, paused or throttled, when the window
//! opens; the mail queue.

use std::io::Write;

use crate::clock::Clock;
use crate::config::Config;
use crate::store;

use super::open_store;
use super::tenant::tenant_tz;

/// One refused connection: when, from where, as whom, why.
pub(super) fn describe_failure(f: &store::ConnectionFailure, tz: chrono_tz::Tz) -> String {
    let user = f
        .username
        .as_deref()
        .map(|u| format!(" as {u:?}"))
        .unwrap_or_default();
    format!(
        "{} from {}{user}: {}",
        stored_time(&f.at, tz),
        f.address,
        f.reason
    )
}

/// A time the store keeps (RFC 3339, UTC) as a reader in `tz` reads it;
/// anything else as it is.
pub(super) fn stored_time(text: &str, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|d| crate::mail::compose::local(d.to_utc(), tz))
        .unwrap_or_else(|_| text.to_owned())
}

/// One throttle: how many failed logins from where since when, until when
/// (in `tz`), and what was tried.
pub(super) fn describe_throttle(t: &store::LoginThrottle, tz: chrono_tz::Tz) -> String {
    let tried = if t.tried.is_empty() {
        String::new()
    } else if t.tenant_id.is_some() {
        format!("; keys tried: {}", t.tried)
    } else {
        format!("; usernames tried: {}", t.tried)
    };
    format!(
        "{} failed logins from {} since {}, throttled until {} (its refused logins are answered one a second; a registered key still logs in at once){tried}",
        t.failures,
        t.address,
        stored_time(&t.since, tz),
        stored_time(&t.until, tz)
    )
}

/// What `rosterd status` reports, gathered once and shown as text or JSON.
/// Times are RFC 3339 UTC in JSON; the text shows them in each district's
/// time zone.
#[derive(serde::Serialize)]
struct Status {
    configuration: Configuration,
    database: String,
    at: chrono::DateTime<chrono::Utc>,
    districts: Vec<District>,
    /// Addresses throttled for logins naming no district.
    throttled_addresses: Vec<store::LoginThrottle>,
    /// The newest connections that failed before naming a district.
    failures_without_district: Vec<store::ConnectionFailure>,
    mail: Mail,
}

#[derive(serde::Serialize)]
struct Configuration {
    /// The file read (absolute), or null for the embedded defaults.
    path: Option<String>,
    /// `flag`, `env`, `found` or `embedded`.
    source: &'static str,
}

#[derive(serde::Serialize)]
struct District {
    subdomain: String,
    #[serde(serialize_with = "tz_name")]
    timezone: chrono_tz::Tz,
    window: String,
    disabled: bool,
    #[serde(flatten)]
    status: store::TenantStatus,
    held: Vec<store::Held>,
    /// The import running now, as it last posted its progress.
    importing: Option<crate::spool::Posted>,
    pause: Option<PauseState>,
    window_open: bool,
    /// When the window next closes (while open) or opens.
    window_changes_at: chrono::DateTime<chrono::Utc>,
    last_refused_login: Option<store::ConnectionFailure>,
    throttles: Vec<store::LoginThrottle>,
    /// The newest uploads refused for their name, newest first.
    refused_uploads: Vec<store::RefusedUpload>,
}

#[derive(serde::Serialize)]
struct PauseState {
    #[serde(flatten)]
    pause: crate::domain::safety::Pause,
    /// `paused` (today is in it), `planned` or `ended`.
    state: &'static str,
}

#[derive(serde::Serialize)]
struct Mail {
    transport: String,
    queued: usize,
    failed: usize,
    sent: usize,
    /// Every message not yet delivered, oldest first.
    unsent: Vec<store::OutboxRow>,
}

fn tz_name<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// Refused uploads `status` shows per district.
const REFUSED_UPLOADS_SHOWN: i64 = 3;

fn gather(
    config: &Config,
    store: &store::Store,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Status> {
    let mut districts = Vec::new();
    for t in store.tenants()? {
        let tz = tenant_tz(config, &t);
        let window = t.window_or(config.schedule.window);
        let today = now.with_timezone(&tz).date_naive();
        let pause = t.pause.map(|p| PauseState {
            pause: p,
            state: if p.covers(today) {
                "paused"
            } else if today < p.from {
                "planned"
            } else {
                "ended"
            },
        });
        let window_open = window.is_open(tz, now);
        districts.push(District {
            status: store::tenant_status(&store.conn, t.id)?,
            held: crate::spool::held(&store.conn, t.id)?,
            // Support's view must not fail for want of a progress board.
            importing: crate::spool::import_in_progress(&crate::spool::TenantSpool::new(
                &config.storage.spool,
                &t.subdomain,
            ))
            .unwrap_or(None),
            pause,
            window_open,
            window_changes_at: if window_open {
                window.next_close(tz, now)
            } else {
                window.next_opening(tz, now)
            },
            last_refused_login: store::connection_failures(&store.conn, Some(t.id), 1)?
                .into_iter()
                .next(),
            throttles: store::login_throttles(&store.conn, Some(t.id), now)?,
            refused_uploads: store::refused_uploads(&store.conn, t.id, REFUSED_UPLOADS_SHOWN)?,
            window: window.to_string(),
            disabled: t.disabled,
            subdomain: t.subdomain,
            timezone: tz,
        });
    }
    let outbox = crate::mail::outbox(&store.conn)?;
    let count = |state: &str| outbox.iter().filter(|m| m.state == state).count();
    let mail = Mail {
        transport: crate::mail::Mailer::describe(&config.mail),
        queued: count("queued"),
        failed: count("failed"),
        sent: count("sent"),
        unsent: outbox
            .iter()
            .filter(|m| m.state != "sent")
            .cloned()
            .collect(),
    };
    Ok(Status {
        configuration: Configuration {
            path: config
                .origin
                .path()
                .map(|p| crate::config::absolute(p).display().to_string()),
            source: config.origin.source(),
        },
        database: crate::config::absolute(&config.storage.database)
            .display()
            .to_string(),
        at: now,
        districts,
        throttled_addresses: store::login_throttles(&store.conn, None, now)?,
        failures_without_district: store::connection_failures(&store.conn, None, 5)?,
        mail,
    })
}

/// `rosterd status`: one block per district, then the mail queue; or all of
/// it as one JSON document.
pub(super) fn status(
    config: &Config,
    clock: &dyn Clock,
    format: super::Listing,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_store(config)?;
    let status = gather(config, &store, clock.now())?;
    match format {
        super::Listing::Json => super::write_json(out, &status)?,
        super::Listing::Text => write_text(config, &status, out)?,
    }
    Ok(0)
}

fn write_text(config: &Config, status: &Status, out: &mut impl Write) -> anyhow::Result<()> {
    use crate::domain::text::{MESSAGE_CHARS, echo};
    use crate::mail::compose::local;
    writeln!(out, "configuration  {}", config.origin.describe())?;
    writeln!(out, "database       {}\n", status.database)?;
    if status.districts.is_empty() {
        writeln!(
            out,
            "no districts yet: `rosterd tenant add SUBDOMAIN --admin-name NAME --admin-email EMAIL`"
        )?;
    }
    for d in &status.districts {
        let tz = d.timezone;
        let st = &d.status;
        let disabled = if d.disabled { ", DISABLED" } else { "" };
        writeln!(out, "{} ({tz}, window {}{disabled})", d.subdomain, d.window)?;
        match &st.last_upload {
            Some(u) => writeln!(
                out,
                "  last upload   {}, {} ({})",
                stored_time(&u.received_at, tz),
                crate::domain::report::human_size(u.size as u64),
                u.state
            )?,
            None => writeln!(out, "  last upload   never")?,
        }
        match &st.last_import {
            Some(r) => writeln!(
                out,
                "  last import   {}: {}, {} created, {} updated, {} errors{}",
                stored_time(&r.finished_at, tz),
                r.outcome,
                r.created,
                r.updated,
                r.errors,
                r.resolution
                    .as_deref()
                    .map(|then| format!("; then {then}"))
                    .unwrap_or_default()
            )?,
            None => writeln!(out, "  last import   never")?,
        }
        if let Some(f) = &st.failed {
            writeln!(
                out,
                "  FAILED        upload {} (received {}) not imported after {} attempt(s): {}",
                f.upload,
                stored_time(&f.received_at, tz),
                f.attempts,
                f.reason
            )?;
            writeln!(
                out,
                "                the administrator was told; its passwords-blanked copy is upload-{}.csv in the district's archive",
                f.upload
            )?;
        }
        if let Some(i) = &d.importing {
            let what = match i.upload {
                Some(upload) => format!("upload {upload}"),
                None => format!("{} by `rosterd import`", i.file),
            };
            writeln!(
                out,
                "  IMPORTING     {what} since {}: {}: {} (as of {})",
                stored_time(&i.started_at, tz),
                i.at.phase.label(),
                i.at.describe(),
                stored_time(&i.updated_at, tz)
            )?;
        }
        if let Some(r) = &st.refused {
            writeln!(
                out,
                "  REFUSED       users.csv received {}: {}",
                stored_time(&r.received_at, tz),
                echo(&r.reason, MESSAGE_CHARS)
            )?;
            writeln!(
                out,
                "                refused on upload (it replaced nothing; the job was told why, the administrator emailed once a night){}",
                r.copy
                    .as_ref()
                    .map(|_| format!(
                        "; its passwords-blanked copy is upload-{}.csv in the district's archive",
                        r.upload
                    ))
                    .unwrap_or_default()
            )?;
        }
        match &st.pending_since {
            Some(since) => writeln!(
                out,
                "  pending       users.csv received {}",
                stored_time(since, tz)
            )?,
            None => writeln!(out, "  pending       none")?,
        }
        for h in &d.held {
            writeln!(
                out,
                "  HELD          run {} (upload {}, received {}): {}",
                h.run_id,
                h.upload_id,
                stored_time(&h.received_at, tz),
                echo(&h.reason, MESSAGE_CHARS)
            )?;
            writeln!(
                out,
                "                review: rosterd runs {sub} --id {run} --changes; then rosterd import approve {sub} {run} (or discard)",
                sub = d.subdomain,
                run = h.run_id
            )?;
        }
        if let Some(p) = &d.pause {
            let when = match p.state {
                "paused" => "PAUSED",
                "planned" => "pause planned",
                _ => "pause ended",
            };
            writeln!(out, "  {when:<13} {}", p.pause.describe())?;
        }
        let verb = if d.window_open {
            "open now, closes"
        } else {
            "opens"
        };
        writeln!(
            out,
            "  window        {verb} {}",
            local(d.window_changes_at, tz)
        )?;
        writeln!(out, "  mail queued   {}", st.mail_queued)?;
        if let Some(f) = &d.last_refused_login {
            writeln!(out, "  last refused  {}", describe_failure(f, tz))?;
        }
        for th in &d.throttles {
            writeln!(out, "  THROTTLED     {}", describe_throttle(th, tz))?;
        }
        for (i, r) in d.refused_uploads.iter().enumerate() {
            writeln!(
                out,
                "  {} {}",
                if i == 0 {
                    "wrong name   "
                } else {
                    "             "
                },
                describe_refused_upload(r, tz)
            )?;
        }
    }
    if !status.throttled_addresses.is_empty() {
        writeln!(out, "addresses throttled for logins naming no district:")?;
        for th in &status.throttled_addresses {
            writeln!(out, "  {}", describe_throttle(th, config.schedule.timezone))?;
        }
    }
    let unknown = &status.failures_without_district;
    if !unknown.is_empty() {
        writeln!(
            out,
            "connections that failed before naming a district (newest {}):",
            unknown.len()
        )?;
        for f in unknown {
            writeln!(out, "  {}", describe_failure(f, config.schedule.timezone))?;
        }
    }
    let mail = &status.mail;
    writeln!(
        out,
        "mail: {} queued, {} failed, {} sent (via {})",
        mail.queued, mail.failed, mail.sent, mail.transport
    )?;
    for m in &mail.unsent {
        writeln!(
            out,
            "  #{} {} to {} ({}, {} attempts){}",
            m.id,
            m.kind,
            m.recipient,
            m.state,
            m.attempts,
            m.last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

/// One upload refused for its name: what, when (in `tz`), from where.
pub(super) fn describe_refused_upload(r: &store::RefusedUpload, tz: chrono_tz::Tz) -> String {
    let how = if r.action == "rename" {
        "renamed to"
    } else {
        "uploaded as"
    };
    // The name is stored escaped (see `Shared::record_refused_upload`).
    format!(
        "{how} \"{}\" at {} from {}: refused, only users.csv in the root folder is imported",
        r.name,
        stored_time(&r.at, tz),
        r.address
    )
}
