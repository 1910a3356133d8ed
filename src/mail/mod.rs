//! Email to district administrators, through an outbox table. A message is
//! composed ([`compose`]: its plain text, its HTML part from [`html`] and the
//! district's last nights drawn by [`chart`]) and queued in the same
//! transaction as the result it reports, so a report is never lost and never queued twice; the [`sender`]
//! delivers queued messages by SMTP (or as `.eml` files) and retries until
//! the server takes them. The outbox holds a copy per recipient, so each
//! address a district gave is delivered, retried or refused on its own.
//! Support's test message skips the outbox ([`direct`]).

pub mod chart;
pub mod compose;
pub mod direct;
pub mod html;
pub mod sender;
pub mod smtp;

pub use crate::domain::email::Outgoing;
pub use crate::store::{OutboxRow, outbox, queue_length, queue_mail as queue};
pub use compose::Composer;
pub use sender::{Delivery, Mailer};
