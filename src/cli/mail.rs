//! `rosterd mail test`: send a district's addresses a test message now,
//! through the configured SMTP server (or as `.eml` files), and print what
//! became of each copy: the server's answer, or the file written.

use std::io::Write;

use clap::Subcommand;

use crate::clock::Clock;
use crate::config::Config;
use crate::mail::direct::{Outcome, send_now};

use super::open_store;
use super::tenant::tenant_tz;

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Send a test message to a district's addresses now, not through the
    /// outbox, and print the SMTP server's answer to each copy (or the .eml
    /// file written when mail.smtp_url is not set)
    #[command(after_help = "Example:\n  \
rosterd mail test lincoln-usd\n  \
sending a test message for lincoln-usd to 2 addresses via smtp://mail.example.org:587\n  \
ann@lincoln.k12.ca.us: accepted: 250 2.0.0 OK queued as 4F2A1C\n  \
it@lincoln.k12.ca.us: accepted: 250 2.0.0 OK queued as 4F2A1D\n\n\
Exit 1 if the server refuses a copy or cannot be reached; the error names the server (host:port) and \
its answer. Reports, notices and notes to the district go to the same addresses the same way \
(`rosterd tenant set SUB --admin-email` changes them).")]
    Test {
        /// The district whose addresses get the message
        subdomain: String,
    },
}

pub(super) fn mail_command(
    config: &Config,
    clock: &dyn Clock,
    cmd: MailCommand,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let MailCommand::Test { subdomain } = cmd;
    let store = open_store(config)?;
    let tenant = store.require_tenant(&subdomain)?;
    let now = clock.now();
    let composer = crate::mail::Composer::new(&config.mail.from)?;
    let mail = composer.test(&tenant, tenant_tz(config, &tenant), now)?;
    let count = mail.recipients.len();
    writeln!(
        out,
        "sending a test message for {} to {count} address{} {}",
        tenant.subdomain,
        if count == 1 { "" } else { "es" },
        match &config.mail.smtp_url {
            Some(_) => format!("via {}", crate::mail::Mailer::describe(&config.mail)),
            None => format!(
                "as .eml files in {} (mail.smtp_url is not set)",
                config.mail.outbox_dir.display()
            ),
        }
    )?;
    let stem = format!(
        "test-{}-{}-{:04x}",
        tenant.subdomain,
        now.format("%Y%m%dT%H%M%SZ"),
        rand::random::<u16>()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcomes = runtime.block_on(send_now(&config.mail, &mail, &stem))?;
    let mut failures = Vec::new();
    for (recipient, outcome) in &outcomes {
        let said = match outcome {
            Outcome::Accepted(answer) => format!("accepted: {answer}"),
            Outcome::Written(path) => format!("written to {}", path.display()),
            Outcome::Refused(answer) => {
                failures.push(format!("refused {recipient}: {answer}"));
                format!("REFUSED: {answer}")
            }
            Outcome::NoSession { server, error } => {
                failures.push(format!(
                    "cannot send through the SMTP server {server} (mail.smtp_url): {error}"
                ));
                format!("not sent: no SMTP session with {server}: {error}")
            }
            Outcome::NotWritten(why) => {
                failures.push(why.clone());
                format!("not written: {why}")
            }
            Outcome::NotTried => "not tried".to_owned(),
        };
        writeln!(out, "{recipient}: {said}")?;
    }
    out.flush()?;
    if failures.is_empty() {
        return Ok(0);
    }
    let delivered = outcomes.iter().filter(|(_, o)| o.is_delivered()).count();
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    eprintln!(
        "{delivered} of {count} test message{} delivered",
        if count == 1 { "" } else { "s" }
    );
    Ok(1)
}
