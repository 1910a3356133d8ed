//! `rosterd serve`, the daemon in the foreground, and `rosterd host-key`.

use std::io::Write;

use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;

/// `rosterd serve`: the daemon, built by [`crate::daemon::Daemon`], with
/// what it says at start on standard error (as log events when the log is
/// JSON).
pub(super) fn serve(
    config: Config,
    clock: Arc<dyn Clock>,
    ready_file: Option<PathBuf>,
) -> anyhow::Result<i32> {
    crate::memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal().context("cannot catch SIGINT and SIGTERM")?;
        let options = crate::daemon::Options {
            process_wide: true,
        };
        let daemon = crate::daemon::Daemon::build(config, clock, options).await?;
        let config = daemon.config();
        let addr = daemon.local_addr()?;
        let fingerprint = daemon.host_keys.join(", ");
        let mail_target = crate::mail::Mailer::describe(&config.mail);
        tracing::info!(listen = %addr, host_key = %fingerprint, mail = %mail_target, "rosterd listening for SFTP");
        // For the person who started it; an event like any other when the
        // log is JSON, so every line of standard error parses.
        let say = |line: String| {
            if crate::logging::is_json() {
                tracing::info!("{line}");
            } else {
                eprintln!("{line}");
            }
        };
        say(format!("rosterd is listening on {addr} (SFTP); host keys {fingerprint}"));
        say(format!("reports go to {mail_target}; imports run {} in each district's time zone (default {})", config.schedule.window, config.schedule.timezone));
        let mut ready_text = format!("{addr}\n");
        if let Some(metrics) = daemon.metrics_addr() {
            tracing::info!(%metrics, "serving /metrics, /healthz and /readyz over HTTP");
            say(format!("metrics at http://{metrics}/metrics; health at /healthz and /readyz"));
            ready_text.push_str(&format!("metrics {metrics}\n"));
        }
        if let Some(advice) = crate::domain::tenant::timezone_advice(config.schedule.timezone) {
            tracing::warn!("schedule.timezone: {advice}");
        }
        if !daemon.has_districts {
            say("no districts yet: register one with `rosterd tenant add SUBDOMAIN --admin-name NAME --admin-email EMAIL`,".into());
            say(format!("then its key with `rosterd key add SUBDOMAIN FILE.pub`; it uploads with `sftp -P {} SUBDOMAIN@HOST`", addr.port()));
        }
        // Ready: the listener is bound and the store settled. A script waits
        // for this file rather than guessing with a sleep.
        let ready = match ready_file {
            Some(path) => {
                crate::files::write_secret_file(&path, ready_text.as_bytes())
                    .context("cannot write the ready file")?;
                Some(path)
            }
            None => None,
        };
        let served = daemon
            .run_until_stopped(shutdown, crate::daemon::Background::Run)
            .await;
        if let Some(path) = ready {
            let _ = std::fs::remove_file(path);
        }
        served?;
        Ok(0)
    })
}

/// Completes on SIGINT or SIGTERM.
/// SIGINT and SIGTERM, caught from the moment this is called: before the
/// daemon says it is listening, so a script that stops it as soon as it is
/// ready (`kill %1`) gets a clean stop, not the default action's death.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

/// `rosterd host-key`: each host key's fingerprint, creating missing keys.
pub(super) fn host_key(config: &Config, out: &mut impl Write) -> anyhow::Result<i32> {
    // Only an installation's keys: run where none is (the wrong directory
    // or configuration), this would make new keys whose fingerprints
    // support would hand out, and the daemon would never use.
    drop(super::open_store(config)?);
    for (kind, path, key, created) in
        crate::server::host_keys::load_or_create_host_keys(&config.server)?
    {
        if created {
            eprintln!(
                "created a new {} host key at {}",
                kind.label(),
                path.display()
            );
        }
        writeln!(
            out,
            "{} ({})",
            crate::server::host_keys::host_key_fingerprint(&key),
            kind.label()
        )?;
    }
    Ok(0)
}
