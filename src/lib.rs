//! rosterd: a standalone SFTP rostering daemon.
//!
//! School districts' student information systems upload `users.csv` every night;
//! rosterd imports it into student and staff accounts and reports the result to the
//! district's administrator. This crate holds everything testable; `main.rs` only
//! parses the command line and calls [`cli::run`].

pub mod cli;
pub mod clock;
pub mod config;
pub mod crash;
pub mod import;
pub mod keys;
pub mod mail;
pub mod memory;
pub mod password;
pub mod safety;
pub mod schedule;
pub mod scheduler;
pub mod server;
pub mod spool;
pub mod store;
pub mod tenant;
pub mod text;
