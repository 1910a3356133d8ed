//! One message sent now, past the outbox, for support's `rosterd mail test`:
//! a copy to each recipient, as the outbox would deliver it, through the
//! configured SMTP server or as `.eml` files, with the server's answer to each
//! copy (or the file written) reported at once. Nothing is queued or retried.

use std::path::PathBuf;

use lettre::address::Envelope;
use lettre::transport::smtp::response::Response;

use super::sender::{Delivery, envelope_from, write_durably};
use super::smtp::SendError;
use crate::config::MailConfig;
use crate::domain::email::Outgoing;
use crate::domain::text::echo;

/// The most characters of a server's answer shown.
const ANSWER_CHARS: usize = 500;

/// What became of one recipient's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The SMTP server took it; its answer (`250 2.0.0 OK …`).
    Accepted(String),
    /// Written as this `.eml` file.
    Written(PathBuf),
    /// The SMTP server refused it; its answer, or what broke.
    Refused(String),
    /// No session with the SMTP server (connecting, TLS or logging in failed):
    /// the server (`host:port`) and why.
    NoSession { server: String, error: String },
    /// The file could not be written.
    NotWritten(String),
    /// Not tried: an earlier copy found no SMTP session.
    NotTried,
}

impl Outcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Accepted(_) | Self::Written(_))
    }
}

/// Send `mail` now, a copy per recipient, by `config`'s delivery; `.eml`
/// files are named `{stem}-{n}.eml` in the outbox directory. After a copy
/// finds no SMTP session the rest are not tried (each would wait for the
/// same server). Errors only for a configuration that cannot send at all.
pub async fn send_now(
    config: &MailConfig,
    mail: &Outgoing,
    stem: &str,
) -> anyhow::Result<Vec<(String, Outcome)>> {
    let delivery = Delivery::from_config(config)?;
    let from = envelope_from(config)?;
    let mut outcomes = Vec::with_capacity(mail.recipients.len());
    let mut session_failed = false;
    for (n, recipient) in mail.recipients.iter().enumerate() {
        let outcome = match &delivery {
            _ if session_failed => Outcome::NotTried,
            Delivery::Eml(dir) => {
                let dir = dir.clone();
                let name = format!("{stem}-{}.eml", n + 1);
                let bytes = mail.message.clone();
                match tokio::task::spawn_blocking(move || write_durably(&dir, &name, &bytes))
                    .await?
                {
                    Ok(path) => Outcome::Written(path.into()),
                    Err(e) => Outcome::NotWritten(format!(
                        "cannot write to {}: {e}",
                        config.outbox_dir.display()
                    )),
                }
            }
            Delivery::Smtp(server) => {
                let envelope = recipient
                    .parse()
                    .map_err(|e| format!("{e}"))
                    .and_then(|to| {
                        Envelope::new(Some(from.clone()), vec![to]).map_err(|e| e.to_string())
                    });
                match envelope {
                    Err(e) => Outcome::Refused(format!("not an address lettre can use: {e}")),
                    Ok(envelope) => match server.send(&envelope, &mail.message, answer).await {
                        Ok(answer) => Outcome::Accepted(answer),
                        Err(SendError::Message(e)) => Outcome::Refused(refusal(&e)),
                        Err(SendError::Session(e)) => {
                            session_failed = true;
                            Outcome::NoSession {
                                server: server.address(),
                                error: echo(&format!("{e}"), ANSWER_CHARS).into_owned(),
                            }
                        }
                    },
                }
            }
        };
        outcomes.push((recipient.clone(), outcome));
    }
    Ok(outcomes)
}

/// A server's answer as a person reads it: `250 2.0.0 OK queued as 4F2A`.
fn answer(response: &Response) -> String {
    let text = response.message().collect::<Vec<_>>().join(" ");
    echo(&format!("{} {text}", response.code()), ANSWER_CHARS).into_owned()
}

/// The server's refusal (`550 5.1.1 no such user`), or what broke while
/// sending.
fn refusal(e: &lettre::transport::smtp::Error) -> String {
    let text = match (e.status(), std::error::Error::source(e)) {
        (Some(code), Some(text)) => format!("{code} {text}"),
        _ => e.to_string(),
    };
    echo(&text, ANSWER_CHARS).into_owned()
}
