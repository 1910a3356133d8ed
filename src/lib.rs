//! rosterd: a standalone SFTP rostering daemon.
//!
//! School districts' student information systems upload `users.csv` every night;
//! rosterd imports it into student and staff accounts and reports the result to the
//! district's administrator. This crate holds everything testable; `main.rs` only
//! calls [`cli::main`].
//!
//! The modules stand on floors; each uses only the floors below it (checked by
//! `tests/it/layers.rs`), so no circle can form:
//!
//! ```text
//! cli                      the command line: parse, call the library, print
//! daemon                   the daemon assembled: `serve` and the tests build it
//! ops                      the operator's HTTP endpoint: /metrics, /healthz, /readyz
//! scheduler, server,       the nightly imports and mail; the SSH/SFTP server;
//!   district               renaming or deleting a district, store and spool
//! spool                    uploads: publication, claims, archive, retention
//! import                   decoding, field rules, the users and groups imports
//! mail                     composing reports, the outbox, SMTP and .eml delivery
//! store                    SQLite: schema, migrations, queries
//! config                   the TOML configuration
//! password, keys           Argon2id and fingerprints; SSH public-key rules
//! clock, memory, files,    time, allocator limits, private files, crash marks,
//!   crash, systemd,        systemd's notifications and watchdog, the log's
//!   logging, metrics       text and JSON lines, the Prometheus counters and
//!                          gauges
//! domain                   the shared words: district, email address, safety
//!                          settings, window, report, safe text (imports nothing)
//! ```

pub mod cli;
pub mod clock;
pub mod config;
pub mod crash;
pub mod daemon;
pub mod district;
pub mod domain;
pub mod files;
pub mod import;
pub mod keys;
pub mod logging;
pub mod mail;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod password;
pub mod scheduler;
pub mod server;
pub mod spool;
pub mod store;
pub mod systemd;
