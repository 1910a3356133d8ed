//! Typed configuration, read from TOML. Every setting has a default so an empty
//! file (or none at the default path) runs; an unknown key or a bad value stops
//! start-up with a message that names the key.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use serde::{Deserialize, Deserializer};

use crate::domain::window::Window;

/// Where the configuration is looked for when neither `--config` nor
/// `ROSTERD_CONFIG` names a file: in the working directory (a checkout, the
/// quickstart), then where the deploy files install it.
pub const DEFAULT_PATH: &str = "config/rosterd.toml";
pub const SYSTEM_PATH: &str = "/etc/rosterd/rosterd.toml";
/// The environment variable naming the configuration file.
pub const ENV_VAR: &str = "ROSTERD_CONFIG";

/// Where the configuration in use came from, so every command can say which
/// file (and so which database) it works on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origin {
    /// `--config PATH`.
    Flag(PathBuf),
    /// `ROSTERD_CONFIG=PATH`.
    Env(PathBuf),
    /// Found at [`DEFAULT_PATH`] or [`SYSTEM_PATH`].
    Found(PathBuf),
    /// No file: every setting at its default.
    #[default]
    Embedded,
}

impl Origin {
    /// The first of: `--config`, `ROSTERD_CONFIG`, `config/rosterd.toml`
    /// if it exists, `/etc/rosterd/rosterd.toml` if it exists, else the
    /// embedded defaults.
    pub fn locate(flag: Option<&Path>) -> Self {
        if let Some(path) = flag {
            return Self::Flag(path.to_owned());
        }
        if let Some(path) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
            return Self::Env(path.into());
        }
        [DEFAULT_PATH, SYSTEM_PATH]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .map_or(Self::Embedded, Self::Found)
    }

    /// The file to read, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Flag(p) | Self::Env(p) | Self::Found(p) => Some(p),
            Self::Embedded => None,
        }
    }

    /// How it was chosen, in a word, for scripts: `flag`, `env`, `found`,
    /// `embedded`.
    pub fn source(&self) -> &'static str {
        match self {
            Self::Flag(_) => "flag",
            Self::Env(_) => "env",
            Self::Found(_) => "found",
            Self::Embedded => "embedded",
        }
    }

    /// For a person: the file's absolute path and how it was chosen.
    pub fn describe(&self) -> String {
        let how = match self {
            Self::Flag(_) => "from --config",
            Self::Env(_) => "from ROSTERD_CONFIG",
            Self::Found(_) => "found",
            Self::Embedded => {
                return format!(
                    "embedded defaults (no --config, no {ENV_VAR}, no {DEFAULT_PATH} here, no {SYSTEM_PATH})"
                );
            }
        };
        let path = self.path().map(absolute).unwrap_or_default();
        format!("{} ({how})", path.display())
    }
}

/// `path` made absolute against the working directory, for messages that
/// must name exactly which file is meant.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where these settings came from (not a setting itself).
    #[serde(skip)]
    pub origin: Origin,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub schedule: ScheduleConfig,
    pub mail: MailConfig,
    pub log: LogConfig,
    /// Default hold thresholds for districts without their own.
    pub holds: crate::domain::safety::HoldLimits,
    pub metrics: MetricsConfig,
}

/// The operator's HTTP endpoint: Prometheus metrics, liveness and readiness.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` are served over plain
    /// HTTP; unset (the default): not at all.
    pub listen: Option<SocketAddr>,
    /// `/readyz` fails once an outbox message has waited this long undelivered.
    pub outbox_stuck_seconds: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            outbox_stuck_seconds: 6 * 3600,
        }
    }
}

/// The SSH/SFTP listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub host_key: PathBuf,
    pub max_upload_bytes: u64,
    pub max_sessions_per_tenant: u32,
    pub max_sessions: u32,
    pub idle_timeout_seconds: u64,
    /// Connections ending without a login, within the window, that throttle
    /// what they named for `ban_seconds`: a district from one address, or an
    /// address's logins naming no district (the names are kept from when
    /// this was a ban of the whole address).
    pub auth_failures_before_ban: u32,
    pub auth_failure_window_seconds: u64,
    pub ban_seconds: u64,
    /// On SIGINT/SIGTERM, how long running transfers may take to finish.
    pub shutdown_grace_seconds: u64,
    /// How long a connection may take from connecting to a successful login.
    pub login_grace_seconds: u64,
    /// Connections from one address handshaking at once (before they name a
    /// district), at most; more wait their turn (within the login grace), so
    /// one address cannot hold every slot and a burst from one address is
    /// served in order, not dropped. Also the most connections of one
    /// district from one address (or of names no district has) that have not
    /// logged in.
    pub max_pending_logins_per_address: u32,
    /// Connections from one address waiting for a login slot, at most; more
    /// are refused at once.
    pub max_queued_logins_per_address: u32,
    /// Connections from all addresses waiting for a login slot, at most.
    pub max_queued_logins: u32,
    /// Channels one connection may have open (OpenSSH's sftp uses one).
    pub max_channels_per_connection: u32,
    /// Open SFTP handles of one district over all its sessions.
    pub max_open_handles_per_tenant: u32,
    /// Bytes of one district's uploads still being written, over all its
    /// sessions; unset: twice `max_upload_bytes`.
    pub max_upload_bytes_in_flight_per_tenant: Option<u64>,
    /// A connection whose client has not read the server's replies for this
    /// long is closed.
    pub write_timeout_seconds: u64,
    /// The ECDSA P-256 host key; unset: `ssh_host_ecdsa_key` beside `host_key`.
    pub host_key_ecdsa: Option<PathBuf>,
    /// The RSA (3072-bit) host key; unset: `ssh_host_rsa_key` beside `host_key`.
    pub host_key_rsa: Option<PathBuf>,
    /// Also offer what OpenSSH has turned off for being weak, for SIS exports
    /// on old SSH libraries: diffie-hellman-group14-sha1, hmac-sha1 (and its
    /// -etm form), and ssh-rsa (SHA-1) host-key signatures.
    pub legacy_algorithms: bool,
}

/// The kinds of host key the server holds, each in a file of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyKind {
    Ed25519,
    EcdsaP256,
    Rsa3072,
}

impl HostKeyKind {
    /// As `ssh-keygen -l` names the type.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ed25519 => "ED25519",
            Self::EcdsaP256 => "ECDSA",
            Self::Rsa3072 => "RSA",
        }
    }
}

impl ServerConfig {
    /// Every host key file, ed25519 first (`host_key`, as before), then the
    /// ECDSA and RSA keys, by default beside it.
    pub fn host_keys(&self) -> [(HostKeyKind, PathBuf); 3] {
        let beside = |name: &str| {
            self.host_key
                .parent()
                .map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
        };
        [
            (HostKeyKind::Ed25519, self.host_key.clone()),
            (
                HostKeyKind::EcdsaP256,
                self.host_key_ecdsa
                    .clone()
                    .unwrap_or_else(|| beside("ssh_host_ecdsa_key")),
            ),
            (
                HostKeyKind::Rsa3072,
                self.host_key_rsa
                    .clone()
                    .unwrap_or_else(|| beside("ssh_host_rsa_key")),
            ),
        ]
    }

    /// `max_upload_bytes_in_flight_per_tenant`, or its default.
    pub fn upload_bytes_in_flight_per_tenant(&self) -> u64 {
        self.max_upload_bytes_in_flight_per_tenant
            .unwrap_or(self.max_upload_bytes.saturating_mul(2))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            host_key: "keys/ssh_host_ed25519_key".into(),
            max_upload_bytes: 1 << 30,
            max_sessions_per_tenant: 4,
            max_sessions: 256,
            idle_timeout_seconds: 600,
            auth_failures_before_ban: 10,
            auth_failure_window_seconds: 300,
            ban_seconds: 900,
            shutdown_grace_seconds: 30,
            login_grace_seconds: 30,
            max_pending_logins_per_address: 10,
            max_queued_logins_per_address: 1024,
            max_queued_logins: 4096,
            max_channels_per_connection: 4,
            max_open_handles_per_tenant: 16,
            max_upload_bytes_in_flight_per_tenant: None,
            write_timeout_seconds: 120,
            host_key_ecdsa: None,
            host_key_rsa: None,
            legacy_algorithms: false,
        }
    }
}

/// Files on disk: the database, the upload spool and archives, the secret that
/// keys password fingerprints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub database: PathBuf,
    pub spool: PathBuf,
    pub archive_days: u32,
    /// 32 random bytes, created on first use, that key the fingerprints which let
    /// an unchanged password skip Argon2. Kept out of the database so that a copy
    /// of the database alone gives no fast way to test password guesses.
    pub fingerprint_key: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database: "data/rosterd.db".into(),
            spool: "data/spool".into(),
            archive_days: 14,
            fingerprint_key: "data/fingerprint.key".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    #[serde(deserialize_with = "parsed")]
    pub window: Window,
    #[serde(deserialize_with = "timezone")]
    pub timezone: chrono_tz::Tz,
    pub settle_seconds: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            window: Window::default(),
            timezone: chrono_tz::America::New_York,
            settle_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub from: String,
    pub smtp_url: Option<String>,
    pub outbox_dir: PathBuf,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: "Rostering <rostering@localhost>".into(),
            smtp_url: None,
            outbox_dir: "data/outbox".into(),
        }
    }
}

/// `log.format`, or `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `rosterd=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

fn parsed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let text = String::deserialize(d)?;
    crate::domain::tenant::parse_timezone(&text).map_err(serde::de::Error::custom)
}

impl Config {
    /// Parse TOML text; `origin` names the file in error messages.
    pub fn from_toml(text: &str, origin: &str) -> anyhow::Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        config
            .validate()
            .with_context(|| format!("{origin}: invalid setting"))?;
        Ok(config)
    }

    /// Load from where `origin` says: its file (a missing or unreadable one
    /// is an error, naming it), or the embedded defaults.
    pub fn load(origin: &Origin) -> anyhow::Result<Self> {
        let mut config = match origin.path() {
            None => Self::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read config file {}: {e}", absolute(path).display())
                })?;
                Self::from_toml(&text, &path.display().to_string())?
            }
        };
        config.origin = origin.clone();
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("server.max_upload_bytes", self.server.max_upload_bytes),
            (
                "server.max_sessions_per_tenant",
                self.server.max_sessions_per_tenant.into(),
            ),
            ("server.max_sessions", self.server.max_sessions.into()),
            (
                "server.idle_timeout_seconds",
                self.server.idle_timeout_seconds,
            ),
            (
                "server.auth_failures_before_ban",
                self.server.auth_failures_before_ban.into(),
            ),
            (
                "server.auth_failure_window_seconds",
                self.server.auth_failure_window_seconds,
            ),
            ("storage.archive_days", self.storage.archive_days.into()),
            (
                "server.login_grace_seconds",
                self.server.login_grace_seconds,
            ),
            (
                "server.max_pending_logins_per_address",
                self.server.max_pending_logins_per_address.into(),
            ),
            (
                "server.max_queued_logins_per_address",
                self.server.max_queued_logins_per_address.into(),
            ),
            (
                "server.max_queued_logins",
                self.server.max_queued_logins.into(),
            ),
            (
                "server.max_channels_per_connection",
                self.server.max_channels_per_connection.into(),
            ),
            (
                "server.max_open_handles_per_tenant",
                self.server.max_open_handles_per_tenant.into(),
            ),
            (
                "server.write_timeout_seconds",
                self.server.write_timeout_seconds,
            ),
            (
                "metrics.outbox_stuck_seconds",
                self.metrics.outbox_stuck_seconds,
            ),
        ];
        for (key, value) in positive {
            anyhow::ensure!(value > 0, "{key} must be greater than 0");
        }
        for (key, value) in [
            ("holds.update_percent", self.holds.update_percent),
            ("holds.deactivate_percent", self.holds.deactivate_percent),
        ] {
            anyhow::ensure!(
                value <= 100,
                "{key} is a percentage from 0 to 100 (100: never hold)"
            );
        }
        if let Some(bytes) = self.server.max_upload_bytes_in_flight_per_tenant {
            anyhow::ensure!(
                bytes >= self.server.max_upload_bytes,
                "server.max_upload_bytes_in_flight_per_tenant ({bytes}) must be at least server.max_upload_bytes ({}), or no upload of the largest size could finish",
                self.server.max_upload_bytes
            );
        }
        if let Some(url) = &self.mail.smtp_url {
            // Never the user name and password, even of a mistyped URL.
            let shown = match url.rfind('@') {
                Some(at) => format!("…@{}", &url[at + 1..]),
                None => url.clone(),
            };
            anyhow::ensure!(
                url.starts_with("smtp://") || url.starts_with("smtps://"),
                "mail.smtp_url {shown:?} must start with smtp:// or smtps://"
            );
        }
        anyhow::ensure!(
            mailbox_address(&self.mail.from).is_some(),
            "mail.from {:?} must be an address such as \"Rostering <rostering@example.org>\"",
            self.mail.from
        );
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| anyhow::anyhow!("log.level {:?}: {e}", self.log.level))?;
        Ok(())
    }
}

/// The address part of `Name <addr>` or a bare `addr`, if it is a valid address.
fn mailbox_address(text: &str) -> Option<&str> {
    let text = text.trim();
    let addr = match (text.rfind('<'), text.ends_with('>')) {
        (Some(open), true) => &text[open + 1..text.len() - 1],
        (None, false) => text,
        _ => return None,
    };
    crate::domain::email::check_address(addr, false).ok()?;
    Some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::from_toml("", "test").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:2222");
        assert_eq!(c.storage.database, PathBuf::from("data/rosterd.db"));
        assert_eq!(c.schedule.window.to_string(), "18:00-06:00");
        assert_eq!(c.schedule.timezone, chrono_tz::America::New_York);
        assert_eq!(c.schedule.settle_seconds, 60);
        assert!(c.mail.smtp_url.is_none());
    }

    #[test]
    fn shipped_config_parses_to_the_defaults() {
        let text = include_str!("../config/rosterd.toml");
        let c = Config::from_toml(text, "config/rosterd.toml").unwrap();
        let d = Config::default();
        // Every setting the file shows is the default it claims to be.
        assert_eq!(format!("{:?}", c.server), format!("{:?}", d.server));
        assert_eq!(format!("{:?}", c.storage), format!("{:?}", d.storage));
        assert_eq!(format!("{:?}", c.schedule), format!("{:?}", d.schedule));
        assert_eq!(format!("{:?}", c.mail), format!("{:?}", d.mail));
        assert_eq!(format!("{:?}", c.metrics), format!("{:?}", d.metrics));
    }

    #[test]
    fn deployment_configs_parse() {
        let prod = Config::from_toml(
            include_str!("../deploy/rosterd.production.toml"),
            "deploy/rosterd.production.toml",
        )
        .unwrap();
        assert_eq!(prod.server.listen.port(), 22);
        let metrics = prod.metrics.listen.expect("production serves metrics");
        assert!(metrics.ip().is_loopback(), "{metrics}");
        assert!(prod.storage.database.starts_with("/var/lib/rosterd"));
        let container = Config::from_toml(
            include_str!("../deploy/rosterd.container.toml"),
            "deploy/rosterd.container.toml",
        )
        .unwrap();
        assert_eq!(container.server.listen.port(), 2222);
        assert!(container.server.host_key.starts_with("/var/lib/rosterd"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let cases = [
            ("[server]\nlisten_addr = \"x\"", "listen_addr"),
            ("[storage]\ndatabse = \"x\"", "databse"),
            ("[bogus]\n", "bogus"),
            ("[schedule]\nwindow = \"6pm-6am\"", "window"),
            ("[schedule]\ntimezone = \"Mars/Base\"", "timezone"),
            ("[server]\nlisten = \"nowhere\"", "listen"),
            ("[server]\nmax_sessions = 0", "server.max_sessions"),
            ("[mail]\nsmtp_url = \"http://x\"", "mail.smtp_url"),
            (
                "[mail]\nsmtp_url = \"smtps//u:TopSecretPW@host\"",
                "\"…@host\" must start",
            ),
            ("[mail]\nfrom = \"not an address\"", "mail.from"),
            ("[log]\nformat = \"xml\"", "format"),
            ("[metrics]\nlisten = \"9090\"", "listen"),
            ("[metrics]\nport = 9090", "port"),
            (
                "[metrics]\noutbox_stuck_seconds = 0",
                "metrics.outbox_stuck_seconds",
            ),
        ];
        for (text, key) in cases {
            let err = format!("{:#}", Config::from_toml(text, "t.toml").unwrap_err());
            assert!(
                err.contains(key),
                "error for {text:?} does not name {key}: {err}"
            );
            assert!(!err.contains("TopSecretPW"), "{err}");
        }
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let origin = Origin::Flag("/nonexistent/rosterd.toml".into());
        let err = Config::load(&origin).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/rosterd.toml"));
    }
}
