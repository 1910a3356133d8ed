//! `rosterd key`: register, list and revoke districts' SSH public keys.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;

use super::{open_store, read_input};
use crate::clock::Clock;
use crate::config::Config;
use crate::keys;
use crate::store;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Register a district's SSH public key(s) from FILE, or `-` for standard input
    #[command(
        after_help = "Accepts an OpenSSH public key or authorized_keys line (ssh-ed25519, ecdsa-sha2-nistp256/384/521, \
ssh-rsa of at least 2048 bits), the '---- BEGIN SSH2 PUBLIC KEY ----' block PuTTYgen and WinSCP write, \
and a PEM public key ('-----BEGIN PUBLIC KEY-----' from `ssh-keygen -e -m PKCS8`, OpenSSL or Java \
tools, or '-----BEGIN RSA PUBLIC KEY-----'). \
Prints each key's SHA256 fingerprint. An authorized_keys line's from=\"…\" option is honoured: \
the key then logs in only from those addresses (--from sets or replaces it); its other options \
(command=, no-pty, …) mean nothing to an upload-only server and are reported as ignored; \
cert-authority and principals= are refused.\n\nExamples:\n  rosterd key add lincoln-usd lincoln.pub\n  \
rosterd key add lincoln-usd lincoln.pub --from 203.0.113.0/24,198.51.100.7\n  \
pbpaste | rosterd key add lincoln-usd -"
    )]
    Add {
        subdomain: String,
        /// File holding the key(s), or `-`
        file: PathBuf,
        /// Addresses the key(s) may log in from: addresses, CIDR blocks or
        /// address patterns, `!` to exclude (OpenSSH's from= syntax); replaces
        /// a from="…" option in the file
        #[arg(long, value_name = "CIDR[,CIDR…]")]
        from: Option<String>,
    },
    /// List a district's keys, revoked ones included
    #[command(
        after_help = "Times are the district's own; with --format json they are RFC 3339 UTC.\n\n\
Examples:\n  rosterd key list lincoln-usd\n  rosterd key list lincoln-usd --format json"
    )]
    List {
        subdomain: String,
        /// Output format: text for people, json (stable field names) for scripts
        #[arg(long, value_enum, default_value_t = super::Listing::Text)]
        format: super::Listing,
    },
    /// Revoke a key; effective from the next login, no restart needed
    #[command(
        after_help = "Example:\n  rosterd key revoke lincoln-usd SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
    )]
    Revoke {
        subdomain: String,
        fingerprint: String,
    },
}

pub(super) fn key_command(
    config: &Config,
    clock: &dyn Clock,
    cmd: KeyCommand,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_store(config)?;
    match cmd {
        KeyCommand::Add {
            subdomain,
            file,
            from,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let text = read_input(&file)?;
            let mut parsed = keys::parse_public_keys(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if let Some(list) = &from {
                keys::check_address_patterns(list).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
                for key in &mut parsed {
                    key.from = Some(list.clone());
                }
            }
            let added = store.add_keys(&t, &parsed, clock.now())?;
            for (key, added) in parsed.iter().zip(added) {
                writeln!(out, "{}", key.fingerprint)?;
                let note = match added {
                    store::KeyAdded::New => "registered",
                    store::KeyAdded::Already => "already registered",
                    store::KeyAdded::FromChanged => {
                        "already registered; address restriction updated"
                    }
                };
                let whence = key.from.as_deref().map_or_else(
                    || "from any address".to_owned(),
                    |f| format!("only from {f}"),
                );
                eprintln!(
                    "{note}: {} {} key {} for {}, {whence}",
                    key.kind, key.bits, key.comment, t.subdomain
                );
                if !key.ignored_options.is_empty() {
                    eprintln!(
                        "ignored options: {} (an upload-only server runs no commands, terminals or forwarding; only from= applies)",
                        key.ignored_options.join(", ")
                    );
                }
            }
            Ok(0)
        }
        KeyCommand::List { subdomain, format } => {
            let t = store.require_tenant(&subdomain)?;
            let keys = store.keys(t.id)?;
            if format == super::Listing::Json {
                super::write_district_list(out, &t.subdomain, "keys", &keys)?;
                return Ok(0);
            }
            let tz = super::tenant::tenant_tz(config, &t);
            let time = |at: &str| super::status::stored_time(at, tz);
            if keys.is_empty() {
                writeln!(
                    out,
                    "{} has no keys; add one with `rosterd key add {} FILE`",
                    t.subdomain, t.subdomain
                )?;
            }
            for k in keys {
                let state = match &k.revoked_at {
                    Some(at) => format!("revoked {}", time(at)),
                    None => "active".into(),
                };
                let whence = k
                    .from
                    .as_deref()
                    .map_or_else(|| "from anywhere".to_owned(), |f| format!("from {f}"));
                writeln!(
                    out,
                    "{} {:<7} {:<5} added {} {state} {whence} {}",
                    k.fingerprint,
                    k.kind,
                    k.bits,
                    time(&k.added_at),
                    k.comment
                )?;
            }
            Ok(0)
        }
        KeyCommand::Revoke {
            subdomain,
            fingerprint,
        } => {
            let t = store.require_tenant(&subdomain)?;
            if !store.revoke_key(t.id, fingerprint.trim(), clock.now())? {
                bail!(
                    "{} has no active key {}; `rosterd key list {}` shows its keys",
                    t.subdomain,
                    fingerprint.trim(),
                    t.subdomain
                );
            }
            writeln!(
                out,
                "revoked {} for {}; the next login with it is refused",
                fingerprint.trim(),
                t.subdomain
            )?;
            Ok(0)
        }
    }
}
