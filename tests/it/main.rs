//! rosterd's integration tests: one binary, real SQLite files in temp dirs, the
//! built `rosterd` binary for the command line, real `ssh-keygen` for keys.

mod helpers;

mod bad_files;
mod cli;
mod connect;
mod crash;
mod faults;
mod fix_mistakes;
mod front_door;
mod fuzz_corpus;
mod golden;
mod groups;
mod hostile;
mod importer;
mod installation;
mod keys;
mod layers;
mod mail;
mod metrics;
mod mime;
mod passwords;
mod pipeline;
mod progress;
mod quickstart;
mod refused;
mod report_email;
mod safety;
mod server;
mod smtp;
mod systemd;
