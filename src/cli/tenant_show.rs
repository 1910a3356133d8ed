//! `rosterd tenant show`: one district's settings, keys, schools, column
//! mapping, last import, and what was refused of it lately; as text or JSON.

use std::io::Write;

use chrono::{DateTime, Utc};

use super::Listing;
use super::status::{describe_failure, describe_refused_upload, describe_throttle, stored_time};
use super::tenant::{effective_timezone, effective_window, tenant_tz};
use crate::config::Config;
use crate::domain::safety::{Absent, Pause};
use crate::store::{self, Store};

/// Refused connections and uploads shown.
const RECENT: i64 = 10;

/// What `tenant show` reports. Times are RFC 3339 UTC; the text shows
/// them in the district's time zone.
#[derive(serde::Serialize)]
struct View {
    subdomain: String,
    disabled: bool,
    admin_name: String,
    /// Every address the district's mail goes to.
    admin_emails: Vec<String>,
    timezone: String,
    timezone_is_default: bool,
    window: String,
    window_is_default: bool,
    sso: bool,
    generate_passwords: bool,
    /// Addresses its logins may come from (OpenSSH patterns); null: anywhere.
    allow_from: Option<String>,
    /// `keep` or `deactivate` (full sync).
    absent: &'static str,
    holds: Holds,
    pause: Option<Pause>,
    created_at: String,
    /// Every key, revoked ones included.
    keys: Vec<store::KeyRow>,
    schools: usize,
    columns: Vec<Column>,
    last_import: Option<store::RunRow>,
    throttles: Vec<store::LoginThrottle>,
    refused_logins: Vec<store::ConnectionFailure>,
    refused_uploads: Vec<store::RefusedUpload>,
}

#[derive(serde::Serialize)]
struct Holds {
    update_percent: u8,
    update_is_default: bool,
    deactivate_percent: u8,
    deactivate_is_default: bool,
}

#[derive(serde::Serialize)]
struct Column {
    header: String,
    field: String,
}

pub(super) fn show(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
    subdomain: &str,
    format: Listing,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let t = store.require_tenant(subdomain)?;
    let limits = config.holds.for_tenant(&t);
    let view = View {
        timezone: effective_timezone(config, &t),
        timezone_is_default: t.timezone.is_none(),
        window: effective_window(config, &t),
        window_is_default: t.window.is_none(),
        allow_from: store.allow_from(t.id)?,
        absent: match t.absent {
            Absent::Keep => "keep",
            Absent::Deactivate => "deactivate",
        },
        holds: Holds {
            update_percent: limits.update_percent,
            update_is_default: t.hold_update_percent.is_none(),
            deactivate_percent: limits.deactivate_percent,
            deactivate_is_default: t.hold_deactivate_percent.is_none(),
        },
        keys: store.keys(t.id)?,
        schools: store.schools(t.id)?.len(),
        columns: store
            .column_map(t.id)?
            .into_iter()
            .map(|(header, field)| Column { header, field })
            .collect(),
        last_import: store.runs(t.id, 1)?.into_iter().next(),
        throttles: store::login_throttles(&store.conn, Some(t.id), now)?,
        refused_logins: store::connection_failures(&store.conn, Some(t.id), RECENT)?,
        refused_uploads: store::refused_uploads(&store.conn, t.id, RECENT)?,
        pause: t.pause,
        created_at: t.created_at.clone(),
        subdomain: t.subdomain.clone(),
        disabled: t.disabled,
        admin_name: t.admin_name.clone(),
        admin_emails: crate::domain::email::split_recipients(&t.admin_email)
            .map(str::to_owned)
            .collect(),
        sso: t.sso,
        generate_passwords: t.generate_passwords,
    };
    match format {
        Listing::Json => super::write_json(out, &view)?,
        Listing::Text => write_text(&view, tenant_tz(config, &t), out)?,
    }
    Ok(0)
}

fn write_text(v: &View, tz: chrono_tz::Tz, out: &mut impl Write) -> anyhow::Result<()> {
    let default = |is: bool| if is { " (default)" } else { "" };
    writeln!(out, "tenant      {}", v.subdomain)?;
    let state = if v.disabled { "disabled" } else { "enabled" };
    writeln!(out, "state       {state}")?;
    writeln!(
        out,
        "admin       {} <{}>",
        v.admin_name,
        v.admin_emails.join(", ")
    )?;
    writeln!(
        out,
        "timezone    {}{}",
        v.timezone,
        default(v.timezone_is_default)
    )?;
    writeln!(
        out,
        "window      {}{}",
        v.window,
        default(v.window_is_default)
    )?;
    writeln!(out, "sso         {}", if v.sso { "yes" } else { "no" })?;
    writeln!(
        out,
        "passwords   {}",
        if v.generate_passwords {
            "generated for new users without one (sent to the administrator as new-passwords.csv)"
        } else {
            "not generated (new users without one have none)"
        }
    )?;
    writeln!(
        out,
        "allow from  {}",
        v.allow_from
            .as_deref()
            .unwrap_or("anywhere (each key's own from= still applies)")
    )?;
    writeln!(
        out,
        "absent      {}",
        match v.absent {
            "keep" => "keep (users missing from a file are left alone)",
            _ => "deactivate (full sync: users missing from a complete file are deactivated)",
        }
    )?;
    let limit = |p: u8, what: &str, is_default: bool| {
        if p >= 100 {
            format!("never for {what}{}", default(is_default))
        } else {
            format!("more than {p}% {what}{}", default(is_default))
        }
    };
    let h = &v.holds;
    writeln!(
        out,
        "holds       {}; {}",
        limit(h.update_percent, "updated", h.update_is_default),
        limit(h.deactivate_percent, "deactivated", h.deactivate_is_default)
    )?;
    match v.pause {
        Some(p) => writeln!(out, "pause       {}", p.describe())?,
        None => writeln!(out, "pause       none")?,
    }
    writeln!(out, "created     {}", stored_time(&v.created_at, tz))?;
    let active = v.keys.iter().filter(|k| k.revoked_at.is_none()).count();
    writeln!(
        out,
        "keys        {active} active, {} revoked",
        v.keys.len() - active
    )?;
    for k in v.keys.iter().filter(|k| k.revoked_at.is_none()) {
        writeln!(
            out,
            "            {} {} {}",
            k.fingerprint, k.kind, k.comment
        )?;
    }
    writeln!(out, "schools     {}", v.schools)?;
    if v.columns.is_empty() {
        writeln!(out, "columns     no custom mapping")?;
    }
    for (i, c) in v.columns.iter().enumerate() {
        let label = if i == 0 { "columns    " } else { "           " };
        writeln!(out, "{label} {:?} -> {}", c.header, c.field)?;
    }
    match &v.last_import {
        Some(r) => writeln!(
            out,
            "last import {} {} ({} rows, {} errors)",
            stored_time(&r.finished_at, tz),
            r.outcome,
            r.rows,
            r.errors
        )?,
        None => writeln!(out, "last import never")?,
    }
    if v.throttles.is_empty() {
        writeln!(out, "throttled   no")?;
    }
    for (i, th) in v.throttles.iter().enumerate() {
        let label = if i == 0 { "THROTTLED  " } else { "           " };
        writeln!(out, "{label} {}", describe_throttle(th, tz))?;
    }
    if v.refused_logins.is_empty() {
        writeln!(out, "refused     no refused connections recorded")?;
    } else {
        writeln!(
            out,
            "refused     the newest {} connections that ended without a login:",
            v.refused_logins.len()
        )?;
        for f in &v.refused_logins {
            writeln!(out, "  {}", describe_failure(f, tz))?;
        }
    }
    if v.refused_uploads.is_empty() {
        writeln!(out, "wrong name  no uploads refused for their name")?;
    } else {
        writeln!(
            out,
            "wrong name  the newest {} uploads refused for their name (only users.csv is imported):",
            v.refused_uploads.len()
        )?;
        for r in &v.refused_uploads {
            writeln!(out, "  {}", describe_refused_upload(r, tz))?;
        }
    }
    Ok(())
}
