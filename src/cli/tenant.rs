//! `rosterd tenant`: register districts and change their settings, pauses
//! and column mappings; rename or delete one.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::clock::Clock;
use crate::config::Config;
use crate::district;
use crate::domain::email::Recipients;
use crate::domain::tenant::{Subdomain, parse_timezone};
use crate::domain::window::Window;
use crate::import::header::{self, FieldSet};
use crate::import::users::UserField;
use crate::keys;
use crate::store::{self, NewTenant, Tenant};

use super::open_store;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Register a district; its subdomain is the SSH username
    #[command(
        after_help = "Example:\n  rosterd tenant add lincoln-usd --admin-name 'Ann Lee' --admin-email ann@lincoln.k12.ca.us \\\n      --timezone America/Los_Angeles"
    )]
    Add {
        /// Subdomain: lowercase letters, digits and inner hyphens, 1-63 characters
        subdomain: String,
        /// Name of the district's administrator, as the emails greet them
        #[arg(long, value_name = "NAME")]
        admin_name: String,
        /// Where the district's emails go (import reports, held-import and
        /// failure notices, "no users.csv received" notes): one address, or
        /// several separated by commas (a@x.org,b@y.org) or in repeated
        /// flags; at most 10 addresses, 990 characters in all
        #[arg(long, value_name = "EMAIL[,EMAIL…]", required = true)]
        admin_email: Vec<String>,
        /// IANA time zone [default: schedule.timezone of the config]
        #[arg(long, value_name = "TZ")]
        timezone: Option<String>,
        /// Users sign in by SSO, so a missing password is normal
        #[arg(long)]
        sso: bool,
        /// Import window HH:MM-HH:MM in the district's time [default: schedule.window of the config]
        #[arg(long, value_name = "HH:MM-HH:MM")]
        window: Option<String>,
    },
    /// List all districts
    List,
    /// Show one district: settings, keys, schools, column mapping, last import
    #[command(
        after_help = "Times are the district's own; with --format json they are RFC 3339 UTC.\n\n\
Examples:\n  rosterd tenant show lincoln-usd\n  rosterd tenant show lincoln-usd --format json"
    )]
    Show {
        subdomain: String,
        /// Output format: text for people, json (stable field names) for scripts
        #[arg(long, value_enum, default_value_t = super::Listing::Text)]
        format: super::Listing,
    },
    /// Change a district's settings
    #[command(
        after_help = "Examples:\n  rosterd tenant set lincoln-usd --admin-email it@lincoln.k12.ca.us\n  rosterd tenant set lincoln-usd --admin-email 'ann@lincoln.k12.ca.us, it@lincoln.k12.ca.us'\n  rosterd tenant set lincoln-usd --sso true --window 20:00-04:00\n  rosterd tenant set lincoln-usd --generate-passwords on\n  rosterd tenant set lincoln-usd --timezone default\n  rosterd tenant set lincoln-usd --allow-from 203.0.113.0/24,198.51.100.7"
    )]
    Set {
        subdomain: String,
        /// Name of the district's administrator, as the emails greet them
        #[arg(long, value_name = "NAME")]
        admin_name: Option<String>,
        /// Where the district's emails go, replacing the addresses stored:
        /// one address, or several separated by commas (a@x.org,b@y.org) or
        /// in repeated flags; at most 10 addresses, 990 characters in all
        #[arg(long, value_name = "EMAIL[,EMAIL…]")]
        admin_email: Vec<String>,
        /// IANA time zone, or `default` for the config's
        #[arg(long, value_name = "TZ")]
        timezone: Option<String>,
        #[arg(long, value_name = "true|false")]
        sso: Option<bool>,
        /// HH:MM-HH:MM, or `default` for the config's
        #[arg(long, value_name = "WINDOW")]
        window: Option<String>,
        /// Addresses every key of the district may log in from (OpenSSH
        /// pattern list: addresses, CIDR blocks, `!` to exclude), on top of
        /// each key's own from=; `any` removes the list
        #[arg(long, value_name = "CIDR[,CIDR…]|any")]
        allow_from: Option<String>,
        /// Users a complete file does not list: `keep` (left alone, the
        /// default) or `deactivate` (full sync: deactivated, never deleted,
        /// and reactivated when a file lists them again)
        #[arg(long, value_name = "keep|deactivate")]
        absent: Option<String>,
        /// Hold a nightly import that would update more than PCT% of the
        /// district's active users, for support to approve; `off` never
        /// holds, `default` uses holds.update_percent of the config
        #[arg(long, value_name = "PCT|off|default")]
        hold_updates: Option<String>,
        /// Hold a nightly import that would deactivate more than PCT% of the
        /// district's active users (full sync); `off`, `default` as above
        #[arg(long, value_name = "PCT|off|default")]
        hold_deactivations: Option<String>,
        /// `on`: every user an import creates without a password gets a
        /// generated one, sent to the administrator as new-passwords.csv with
        /// the report, to hand out (for districts that do not sign in with
        /// SSO); `off` (the default) leaves such users without one
        #[arg(long, value_enum, value_name = "on|off")]
        generate_passwords: Option<OnOff>,
    },
    /// Pause a district's imports over a break: uploads are received and kept
    /// but not imported (or, with --additions-only, only new users are
    /// created); no "nothing received" email is sent meanwhile
    #[command(
        after_help = "Dates are the district's own, both inclusive. When the pause ends, the newest upload\n\
received meanwhile is imported as usual.\n\nExamples:\n  rosterd tenant pause lincoln-usd --from 2027-06-15 --until 2027-08-20\n  \
rosterd tenant pause lincoln-usd --until 2027-08-20 --additions-only\n  rosterd tenant resume lincoln-usd"
    )]
    Pause {
        subdomain: String,
        /// First paused day, YYYY-MM-DD [default: today, in the district's time zone]
        #[arg(long, value_name = "DATE")]
        #[arg(value_parser = crate::domain::safety::parse_day)]
        from: Option<chrono::NaiveDate>,
        /// Last paused day, YYYY-MM-DD
        #[arg(long, value_name = "DATE")]
        #[arg(value_parser = crate::domain::safety::parse_day)]
        until: chrono::NaiveDate,
        /// Still create new users (new students over the summer); change no existing one
        #[arg(long)]
        additions_only: bool,
    },
    /// End a district's pause now
    Resume { subdomain: String },
    /// Refuse the district's logins and imports (nothing is deleted)
    Disable { subdomain: String },
    /// Allow the district's logins and imports again
    Enable { subdomain: String },
    /// Store a column mapping every import of this district uses
    #[command(
        after_help = "Tell rosterd which field a column of the district's export holds, when its header \
is not one rosterd recognises (or map it to `ignore`):\n  \
rosterd tenant map lincoln-usd 'Student Email' 'Email Address'\n  \
rosterd tenant map lincoln-usd 'Homeroom' ignore\n  \
rosterd tenant map lincoln-usd --remove 'Student Email'\n\
Fields: Username, Password, Email Address, First Name, Last Name, School, Graduation Year, Access Type, \
Owner Name, Group Name."
    )]
    Map {
        subdomain: String,
        /// Column header as the district's file writes it
        header: String,
        /// Field it holds, or `ignore`
        #[arg(required_unless_present = "remove")]
        field: Option<String>,
        /// Remove the mapping of HEADER instead
        #[arg(long)]
        remove: bool,
    },
    /// Change a district's subdomain, and so its SFTP username
    #[command(
        after_help = "Its SSH keys, users, schools, settings, import history and waiting upload stay with it, \
and its spool folder (with the archives) is renamed. From now on the district's SFTP job must log in as \
the new subdomain; the old one is refused like any unknown name.\n\n\
Refused while the district has an SFTP session open or its upload is being imported: try again once \
that has finished.\n\n\
Example:\n  rosterd tenant rename lincoln-usd lincoln"
    )]
    Rename {
        subdomain: String,
        /// The new subdomain: lowercase letters, digits and inner hyphens, 1-63 characters
        new_subdomain: String,
    },
    /// Delete a district and everything it has, for good
    #[command(
        after_help = "A district with users is deleted only with --purge, which deletes them too. Everything \
of the district goes: users, groups, schools, SSH keys, import history and change journals, uploads, \
its spool folder (waiting upload and archives), queued emails, column mapping and refused-login records. \
Nothing of another district is touched, and nothing can be undone.\n\n\
You are asked to type the subdomain again (standard input must be a terminal) unless you add --yes.\n\
Refused while the district has an SFTP session open or its upload is being imported.\n\n\
Examples:\n  rosterd tenant delete test-district                # no users: asks, then deletes\n  \
rosterd tenant delete lincoln-usd --purge          # with its users\n  \
rosterd tenant delete lincoln-usd --purge --yes    # in a script: no question"
    )]
    Delete {
        subdomain: String,
        /// Delete the district's users too (needed when it has any)
        #[arg(long)]
        purge: bool,
        /// Do not ask for the subdomain to be typed again
        #[arg(long)]
        yes: bool,
    },
}

pub(super) fn tenant_command(
    config: &Config,
    clock: &dyn Clock,
    cmd: TenantCommand,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_store(config)?;
    match cmd {
        TenantCommand::Add {
            subdomain,
            admin_name,
            admin_email,
            timezone,
            sso,
            window,
        } => {
            let sub = Subdomain::parse(&subdomain)?;
            let admin_name = admin_name.trim();
            anyhow::ensure!(!admin_name.is_empty(), "--admin-name must not be empty");
            let recipients = parse_recipients(&admin_email)?;
            let timezone = timezone.as_deref().map(checked_timezone).transpose()?;
            let window = window
                .map(|w| w.parse::<Window>().map(|w| w.to_string()))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            store.add_tenant(
                &NewTenant {
                    subdomain: sub.as_str(),
                    admin_name,
                    admin_email: &recipients.joined(),
                    timezone: timezone.as_deref(),
                    sso,
                    window: window.as_deref(),
                },
                clock.now(),
            )?;
            writeln!(out, "added tenant {sub}")?;
            writeln!(
                out,
                "next: register the district's SSH public key with `rosterd key add {sub} FILE`"
            )?;
            Ok(0)
        }
        TenantCommand::List => {
            let tenants = store.tenants()?;
            if tenants.is_empty() {
                writeln!(out, "no tenants yet; add one with `rosterd tenant add`")?;
                return Ok(0);
            }
            writeln!(
                out,
                "{:<24} {:<8} {:<4} {:<22} {:<12} ADMIN",
                "SUBDOMAIN", "STATE", "SSO", "TIMEZONE", "WINDOW"
            )?;
            for t in tenants {
                writeln!(
                    out,
                    "{:<24} {:<8} {:<4} {:<22} {:<12} {} <{}>",
                    t.subdomain,
                    if t.disabled { "disabled" } else { "enabled" },
                    if t.sso { "yes" } else { "no" },
                    effective_timezone(config, &t),
                    effective_window(config, &t),
                    t.admin_name,
                    t.admin_email
                )?;
            }
            Ok(0)
        }
        TenantCommand::Show { subdomain, format } => {
            super::tenant_show::show(config, &store, clock.now(), &subdomain, format, out)
        }
        TenantCommand::Set {
            subdomain,
            admin_name,
            admin_email,
            timezone,
            sso,
            window,
            allow_from,
            absent,
            hold_updates,
            hold_deactivations,
            generate_passwords,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let absent = absent
                .map(|a| crate::domain::safety::Absent::parse(&a))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let percent = |flag: &str, v: Option<String>| {
                v.map(|v| crate::domain::safety::parse_percent(flag, &v))
                    .transpose()
                    .map_err(anyhow::Error::msg)
            };
            let hold_updates = percent("--hold-updates", hold_updates)?;
            let hold_deactivations = percent("--hold-deactivations", hold_deactivations)?;
            if let Some(list) = allow_from.as_deref().filter(|l| *l != "any") {
                keys::check_address_patterns(list)
                    .map_err(|e| anyhow::anyhow!("--allow-from: {e}"))?;
            }
            let admin_email = if admin_email.is_empty() {
                None
            } else {
                Some(parse_recipients(&admin_email)?.joined())
            };
            let timezone = match timezone.as_deref() {
                None => None,
                Some("default") => Some(None),
                Some(tz) => Some(Some(checked_timezone(tz)?)),
            };
            let window = match window.as_deref() {
                None => None,
                Some("default") => Some(None),
                Some(w) => Some(Some(
                    w.parse::<Window>().map_err(anyhow::Error::msg)?.to_string(),
                )),
            };
            if let Some(name) = &admin_name {
                anyhow::ensure!(!name.trim().is_empty(), "--admin-name must not be empty");
            }
            // Everything is checked: only now is anything changed.
            match allow_from.as_deref() {
                None => {}
                Some("any") => store.set_allow_from(t.id, None)?,
                Some(list) => store.set_allow_from(t.id, Some(list))?,
            }
            if let Some(a) = absent {
                crate::store::set_absent(&store.conn, t.id, a)?;
            }
            crate::store::set_hold_limits(&store.conn, t.id, hold_updates, hold_deactivations)?;
            if let Some(on) = generate_passwords {
                crate::store::set_generate_passwords(&store.conn, t.id, on == OnOff::On)?;
            }
            store.update_tenant(
                t.id,
                admin_name.as_deref().map(str::trim),
                admin_email.as_deref(),
                timezone.as_ref().map(|o| o.as_deref()),
                sso,
                window.as_ref().map(|o| o.as_deref()),
            )?;
            writeln!(out, "updated tenant {}", t.subdomain)?;
            if generate_passwords == Some(OnOff::On) && sso.unwrap_or(t.sso) {
                eprintln!(
                    "note: {} signs in with SSO, where passwords are not used; generated passwords are for districts without SSO",
                    t.subdomain
                );
            }
            Ok(0)
        }
        TenantCommand::Pause {
            subdomain,
            from,
            until,
            additions_only,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let tz = tenant_tz(config, &t);
            let today = clock.now().with_timezone(&tz).date_naive();
            let pause = crate::domain::safety::Pause::new(
                from.unwrap_or(today),
                until,
                additions_only,
                today,
            )
            .map_err(anyhow::Error::msg)?;
            crate::store::set_pause(&store.conn, t.id, Some(pause))?;
            writeln!(out, "{} is paused {}", t.subdomain, pause.describe())?;
            Ok(0)
        }
        TenantCommand::Resume { subdomain } => {
            let t = store.require_tenant(&subdomain)?;
            crate::store::set_pause(&store.conn, t.id, None)?;
            writeln!(
                out,
                "{} is not paused: its next upload is imported in its window as usual",
                t.subdomain
            )?;
            Ok(0)
        }
        TenantCommand::Disable { subdomain } => {
            let t = store.require_tenant(&subdomain)?;
            store.set_disabled(t.id, true)?;
            writeln!(
                out,
                "disabled tenant {}: its logins and imports are refused until `rosterd tenant enable {}`",
                t.subdomain, t.subdomain
            )?;
            Ok(0)
        }
        TenantCommand::Enable { subdomain } => {
            let t = store.require_tenant(&subdomain)?;
            store.set_disabled(t.id, false)?;
            writeln!(out, "enabled tenant {}", t.subdomain)?;
            Ok(0)
        }
        TenantCommand::Map {
            subdomain,
            header,
            field,
            remove,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let key = header::header_key(&header);
            anyhow::ensure!(!key.is_empty(), "the column header must not be empty");
            if remove {
                if !store.remove_column(t.id, &key)? {
                    bail!("tenant {} has no mapping for {header:?}", t.subdomain);
                }
                writeln!(out, "removed the mapping of {header:?}")?;
                return Ok(0);
            }
            let field = field.context("FIELD is required")?;
            let label = mapping_target_label(&field)?;
            store.set_column(t.id, &key, header.trim(), label)?;
            writeln!(
                out,
                "{}: column {:?} -> {label}",
                t.subdomain,
                header.trim()
            )?;
            Ok(0)
        }
        TenantCommand::Rename {
            subdomain,
            new_subdomain,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let new = Subdomain::parse(&new_subdomain)?;
            district::rename(&store, &config.storage.spool, &t, &new)?;
            writeln!(
                out,
                "renamed district {} to {new}; its SFTP username is now {new}",
                t.subdomain
            )?;
            writeln!(
                out,
                "next: tell the district to change the username of its SFTP job to {new}"
            )?;
            Ok(0)
        }
        TenantCommand::Delete {
            subdomain,
            purge,
            yes,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let users = store::user_count(&store.conn, t.id)?;
            if users > 0 && !purge {
                bail!("{}", district::has_users(&t.subdomain, users));
            }
            if !yes {
                confirm_delete(&t.subdomain, users)?;
            }
            let d = district::delete(&store, &config.storage.spool, &t, purge)?;
            writeln!(
                out,
                "deleted district {}: {}, {}, {}, {}, {}, {}, {} and its spool folder",
                t.subdomain,
                count(d.users as u64, "user"),
                count(d.groups as u64, "group"),
                count(d.schools as u64, "school"),
                count(d.keys as u64, "key"),
                count(d.runs as u64, "import run"),
                count(d.uploads as u64, "upload"),
                count(d.emails as u64, "email"),
            )?;
            Ok(0)
        }
    }
}

/// The addresses of `--admin-email`, given once or more, each a list.
fn parse_recipients(flags: &[String]) -> anyhow::Result<Recipients> {
    Recipients::parse(flags.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("--admin-email: {e}"))
}

/// Ask support to type the subdomain of the district about to be deleted;
/// an error unless they do.
fn confirm_delete(sub: &str, users: u64) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "not deleted: deleting {sub} must be confirmed by typing its subdomain, and standard input is not a terminal; add --yes to delete it without asking"
        );
    }
    eprint!(
        "This deletes district {sub}{} and everything of it, for good.\nType its subdomain to confirm: ",
        if users > 0 {
            format!(" with its {}", count(users, "user"))
        } else {
            String::new()
        }
    );
    let mut typed = String::new();
    stdin
        .read_line(&mut typed)
        .context("cannot read standard input")?;
    match typed.trim() {
        "" => bail!("not deleted: nothing was typed"),
        t if t == sub => Ok(()),
        t => bail!("not deleted: {t:?} is not {sub}"),
    }
}

/// "1 user", "312 users".
pub(super) fn count(n: impl Into<u64>, what: &str) -> String {
    let n = n.into();
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The canonical name of a mapping target: a field of any import kind, or `ignore`.
pub(super) fn mapping_target_label(text: &str) -> anyhow::Result<&'static str> {
    match header::parse_target::<UserField>(text) {
        Ok(header::Mapped::Field(f)) => Ok(f.label()),
        Ok(header::Mapped::Ignore) => Ok(header::IGNORE),
        Err(_) => match header::header_key(text).as_str() {
            "ownername" | "owner" => Ok("Owner Name"),
            "groupname" | "group" => Ok("Group Name"),
            _ => bail!(
                "{text:?} is not a field; use one of: {}, Owner Name, Group Name, or ignore",
                UserField::ALL
                    .iter()
                    .map(|f| f.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

pub(super) fn effective_timezone(config: &Config, t: &Tenant) -> String {
    t.timezone
        .clone()
        .unwrap_or_else(|| config.schedule.timezone.name().to_owned())
}

/// The district's time zone: its own, else the config's.
pub(super) fn tenant_tz(config: &Config, t: &Tenant) -> chrono_tz::Tz {
    t.timezone_or(config.schedule.timezone)
}

pub(super) fn effective_window(config: &Config, t: &Tenant) -> String {
    t.window
        .clone()
        .unwrap_or_else(|| config.schedule.window.to_string())
}

/// A time zone from the command line, by its canonical name; accepted with a
/// warning on standard error when it is a fixed offset or an old alias.
fn checked_timezone(text: &str) -> anyhow::Result<String> {
    let tz = parse_timezone(text).map_err(anyhow::Error::msg)?;
    if let Some(advice) = crate::domain::tenant::timezone_advice(tz) {
        eprintln!("warning: --timezone {advice}");
    }
    Ok(tz.name().to_owned())
}

/// A setting turned `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}
