//! `rosterd status`: per district, the last upload and import, what is
//! pending, held, paused or throttled, when the window opens; the mail queue.

use std::io::Write;

use crate::clock::Clock;
use crate::config::Config;
use crate::store;

use super::open_store;
use super::tenant::tenant_tz;

/// One refused connection: when, from where, as whom, why.
pub(super) fn describe_failure(f: &store::ConnectionFailure) -> String {
    let user = f
        .username
        .as_deref()
        .map(|u| format!(" as {u:?}"))
        .unwrap_or_default();
    format!("{} from {}{user}: {}", f.at, f.address, f.reason)
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

/// `rosterd status`: one block per tenant, then the mail queue.
pub(super) fn status(
    config: &Config,
    clock: &dyn Clock,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    use crate::mail::compose::local;
    let store = open_store(config)?;
    writeln!(out, "configuration  {}", config.origin.describe())?;
    writeln!(
        out,
        "database       {}\n",
        crate::config::absolute(&config.storage.database).display()
    )?;
    let now = clock.now();
    let tenants = store.tenants()?;
    if tenants.is_empty() {
        writeln!(
            out,
            "no districts yet: `rosterd tenant add SUBDOMAIN --admin-name NAME --admin-email EMAIL`"
        )?;
    }
    for t in &tenants {
        let tz = tenant_tz(config, t);
        let window = t.window_or(config.schedule.window);
        let st = crate::store::tenant_status(&store.conn, t.id)?;
        let disabled = if t.disabled { ", DISABLED" } else { "" };
        writeln!(out, "{} ({tz}, window {window}{disabled})", t.subdomain)?;
        match &st.last_upload {
            Some((received, size, state)) => writeln!(
                out,
                "  last upload   {}, {} ({state})",
                stored_time(received, tz),
                crate::domain::report::human_size(*size as u64)
            )?,
            None => writeln!(out, "  last upload   never")?,
        }
        match &st.last_run {
            Some((finished, outcome, created, updated, errors)) => writeln!(
                out,
                "  last import   {}: {outcome}, {created} created, {updated} updated, {errors} errors",
                stored_time(finished, tz)
            )?,
            None => writeln!(out, "  last import   never")?,
        }
        if let Some((id, received, attempts, why)) = &st.failed {
            writeln!(
                out,
                "  FAILED        upload {id} (received {}) not imported after {attempts} attempt(s): {why}",
                stored_time(received, tz)
            )?;
            writeln!(
                out,
                "                the administrator was told; its passwords-blanked copy is upload-{id}.csv in the district's archive"
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
        for h in crate::spool::held(&store.conn, t.id)? {
            writeln!(
                out,
                "  HELD          run {} (upload {}, received {}): {}",
                h.run_id,
                h.upload_id,
                stored_time(&h.received_at, tz),
                crate::domain::text::echo(&h.reason, crate::domain::text::MESSAGE_CHARS)
            )?;
            writeln!(
                out,
                "                review: rosterd runs {sub} --id {run} --changes; then rosterd import approve {sub} {run} (or discard)",
                sub = t.subdomain,
                run = h.run_id
            )?;
        }
        if let Some(p) = t.pause {
            let today = now.with_timezone(&tz).date_naive();
            let when = if p.covers(today) {
                "PAUSED"
            } else if today < p.from {
                "pause planned"
            } else {
                "pause ended"
            };
            writeln!(out, "  {when:<13} {}", p.describe())?;
        }
        if window.is_open(tz, now) {
            writeln!(
                out,
                "  window        open now, closes {}",
                local(window.next_close(tz, now), tz)
            )?;
        } else {
            writeln!(
                out,
                "  window        opens {}",
                local(window.next_opening(tz, now), tz)
            )?;
        }
        writeln!(out, "  mail queued   {}", st.mail_queued)?;
        if let Some(f) = store::connection_failures(&store.conn, Some(t.id), 1)?.first() {
            writeln!(out, "  last refused  {}", describe_failure(f))?;
        }
        for th in store::login_throttles(&store.conn, Some(t.id), now)? {
            writeln!(out, "  THROTTLED     {}", describe_throttle(&th, tz))?;
        }
    }
    let throttled = store::login_throttles(&store.conn, None, now)?;
    if !throttled.is_empty() {
        writeln!(out, "addresses throttled for logins naming no district:")?;
        for th in &throttled {
            writeln!(out, "  {}", describe_throttle(th, config.schedule.timezone))?;
        }
    }
    let unknown = store::connection_failures(&store.conn, None, 5)?;
    if !unknown.is_empty() {
        writeln!(
            out,
            "connections that failed before naming a district (newest {}):",
            unknown.len()
        )?;
        for f in &unknown {
            writeln!(out, "  {}", describe_failure(f))?;
        }
    }
    let outbox = crate::mail::outbox(&store.conn)?;
    let queued = outbox.iter().filter(|m| m.state == "queued").count();
    let failed: Vec<_> = outbox.iter().filter(|m| m.state == "failed").collect();
    writeln!(
        out,
        "mail: {queued} queued, {} failed, {} sent (via {})",
        failed.len(),
        outbox.iter().filter(|m| m.state == "sent").count(),
        crate::mail::Mailer::describe(&config.mail)
    )?;
    for m in outbox.iter().filter(|m| m.state != "sent") {
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
    Ok(0)
}
