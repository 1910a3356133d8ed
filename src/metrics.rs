//! The daemon's Prometheus metrics: one [`Metrics`] per daemon, counted where
//! things happen (logins, uploads, imports, sends) and, for what is a state
//! rather than an event (connections open, the outbox, each district's last
//! upload), set from a [`Snapshot`] taken at each scrape. Written in
//! Prometheus's classic text format (`prometheus` crate), which promtool and
//! every Prometheus accept.
//!
//! Every label value is from a fixed list here, except `district`, the
//! subdomain: nothing a client or a file supplies reaches a label. Counters
//! live as long as the daemon (a SIGHUP reload keeps them).

use std::sync::Mutex;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::report::{Counts, Outcome};

/// The `Content-Type` of a scrape: the classic text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Declares a label enum: its variants, each with the label value it writes,
/// and `ALL`, so every value's series exists (at 0) from the first scrape and
/// `rate()` sees the first event.
macro_rules! labels {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }
    };
}

labels! {
    /// How a connection's login ended.
    LoginOutcome {
        /// Logged in.
        Accepted => "accepted",
        /// Never logged in, after at least one refusal.
        Refused => "refused",
        /// A registered key, turned away only for now: the district's session
        /// limit, or support renaming or deleting the district.
        Busy => "busy",
    }
}

labels! {
    /// Why a connection that never logged in was refused.
    LoginRefusal {
        UnknownDistrict => "unknown_district",
        DistrictDisabled => "district_disabled",
        KeyNotRegistered => "key_not_registered",
        KeyRevoked => "key_revoked",
        AddressNotAllowed => "address_not_allowed",
        /// A password or keyboard-interactive: only keys are accepted.
        Password => "password",
        /// The key lookup failed (the store could not be read).
        StoreUnavailable => "store_unavailable",
        /// The district (or address) already had as many connections not
        /// logged in as allowed.
        TooManyPending => "too_many_pending",
        /// Throttled: its refusal's turn would have come after its login grace.
        Throttled => "throttled",
    }
}

labels! {
    /// Which list of a failed SSH negotiation had nothing in common.
    Negotiation {
        Kex => "kex",
        HostKey => "host_key",
        Cipher => "cipher",
        Mac => "mac",
        Compression => "compression",
    }
}

labels! {
    /// Why an SFTP upload, or a request on the way to one, was refused.
    UploadRefusal {
        /// A name other than users.csv in the root folder.
        Name => "name",
        /// Delete, mkdir, symlink and the like: not uploads.
        Operation => "operation",
        /// Past `server.max_upload_bytes`.
        TooLarge => "too_large",
        /// The district's uploads in progress together past their byte limit.
        BytesInFlight => "bytes_in_flight",
        /// The district's open handles at `server.max_open_handles_per_tenant`.
        Handles => "handles",
        DiskFull => "disk_full",
        /// Any other failure to store or publish the file.
        Storage => "storage",
        /// users.csv that shows it cannot be imported (not CSV, no Username
        /// column, most rows failing their own rules), refused at a write
        /// or at the close.
        BrokenFile => "broken_file",
    }
}

labels! {
    /// What became of one import the daemon ran.
    ImportOutcome {
        Applied => "applied",
        AppliedWithErrors => "applied_with_errors",
        /// Over a hold threshold: nothing applied, waiting for support.
        Held => "held",
        Rejected => "rejected",
        /// Byte-identical to the file imported before.
        Unchanged => "unchanged",
        /// Run during an additions-only pause: new users created, changes
        /// to existing ones kept back.
        Paused => "paused",
        /// An attempt that ended in an error (tried again later).
        Error => "error",
        /// Given up after its attempts, or after the daemon did not survive it.
        Failed => "failed",
    }
}

labels! {
    /// What an import did to a row or a user.
    RowChange {
        Created => "created",
        Updated => "updated",
        Deactivated => "deactivated",
        Reactivated => "reactivated",
        /// Skipped for errors.
        Errored => "errored",
    }
}

labels! {
    /// What one delivery attempt of one outbox copy came to.
    SendOutcome {
        /// Accepted by the SMTP server, or written as an `.eml` file.
        Delivered => "delivered",
        /// Not delivered this time; retried later.
        Deferred => "deferred",
        /// Refused for good (5xx); not retried.
        Failed => "failed",
    }
}

labels! {
    /// The readiness checks (`/readyz`).
    Check {
        /// The database opens and takes a write.
        Store => "store",
        /// The upload spool takes a new file.
        Spool => "spool",
        /// The SSH listener is bound and accepting.
        Listener => "listener",
        /// No outbox message has waited longer than `metrics.outbox_stuck_seconds`.
        Outbox => "outbox",
    }
}

/// A district's state as a scrape reports it; times in Unix seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DistrictGauges {
    pub subdomain: String,
    pub last_upload: Option<f64>,
    /// The last import that left the district's users as its file says:
    /// applied (with or without row errors) or unchanged.
    pub last_applied_import: Option<f64>,
    /// Import windows that opened and closed since that import, not counting
    /// paused nights (at most [`MAX_WINDOWS_MISSED`]); `None` for a disabled
    /// district or one without an applied import yet.
    pub windows_missed: Option<u32>,
    pub held_imports: u32,
    /// When the oldest of them was held.
    pub held_since: Option<f64>,
    pub paused: bool,
}

/// Where the count of missed windows stops: enough for any alert, and a
/// scrape never walks a year of nights for a long-silent district.
pub const MAX_WINDOWS_MISSED: u32 = 14;

/// What is a state, not an event: read at each scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub connections: u64,
    pub sessions: u64,
    pub logins_in_progress: u64,
    pub logins_waiting: u64,
    pub outbox_messages: u64,
    /// Seconds the oldest unsent outbox copy has waited (0: none waiting).
    pub outbox_oldest_age: f64,
    /// Each readiness check and whether it passed.
    pub checks: Vec<(Check, bool)>,
    /// `None` when the store could not be read for them (logged): the
    /// district series are left out rather than shown as zero.
    pub districts: Option<Vec<DistrictGauges>>,
}

/// One daemon's metrics.
pub struct Metrics {
    registry: Registry,
    logins: IntCounterVec,
    login_refusals: IntCounterVec,
    negotiation_failures: IntCounterVec,
    uploads: IntCounter,
    upload_bytes: IntCounter,
    upload_refusals: IntCounterVec,
    upload_seconds: Histogram,
    imports: IntCounterVec,
    import_rows: IntCounterVec,
    import_seconds: Histogram,
    import_rows_per_second: Histogram,
    mail_sends: IntCounterVec,
    connections: IntGauge,
    sessions: IntGauge,
    logins_in_progress: IntGauge,
    logins_waiting: IntGauge,
    outbox_messages: IntGauge,
    outbox_oldest_age: Gauge,
    ready: IntGauge,
    checks: IntGaugeVec,
    district_last_upload: GaugeVec,
    district_last_applied: GaugeVec,
    district_windows_missed: IntGaugeVec,
    district_held: IntGaugeVec,
    district_held_since: GaugeVec,
    district_paused: IntGaugeVec,
    /// One scrape at a time sets the gauges and writes them out, so two
    /// scrapes never interleave a reset and a fill.
    render: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("rosterd".into()), None).unwrap_or_else(|_| Registry::new());
        let m = Self {
            logins: counters(
                &registry,
                "logins_total",
                "SSH connections by how their login ended",
                "outcome",
                LoginOutcome::ALL.iter().map(|o| o.as_str()),
            ),
            login_refusals: counters(
                &registry,
                "login_refusals_total",
                "Connections that never logged in, by each reason they were refused for",
                "reason",
                LoginRefusal::ALL.iter().map(|r| r.as_str()),
            ),
            negotiation_failures: counters(
                &registry,
                "negotiation_failures_total",
                "SSH negotiations that failed, by the algorithm list with nothing in common",
                "list",
                Negotiation::ALL.iter().map(|n| n.as_str()),
            ),
            uploads: counter(
                &registry,
                "uploads_total",
                "users.csv uploads received whole and published",
            ),
            upload_bytes: counter(
                &registry,
                "upload_received_bytes_total",
                "Bytes written to uploads, finished or not",
            ),
            upload_refusals: counters(
                &registry,
                "upload_refusals_total",
                "SFTP uploads and requests refused, by reason",
                "reason",
                UploadRefusal::ALL.iter().map(|r| r.as_str()),
            ),
            upload_seconds: histogram(
                &registry,
                "upload_duration_seconds",
                "Seconds from an upload's open to the close that stored it",
                vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0],
            ),
            imports: counters(
                &registry,
                "imports_total",
                "Imports the daemon ran, by outcome",
                "outcome",
                ImportOutcome::ALL.iter().map(|o| o.as_str()),
            ),
            import_rows: counters(
                &registry,
                "import_rows_total",
                "Users created, updated, deactivated or reactivated, and rows skipped for errors, by the daemon's imports",
                "change",
                RowChange::ALL.iter().map(|c| c.as_str()),
            ),
            import_seconds: histogram(
                &registry,
                "import_duration_seconds",
                "Seconds one import took, from reading the file to its commit",
                vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0],
            ),
            import_rows_per_second: histogram(
                &registry,
                "import_rows_per_second",
                "Data rows read per second by one import (imports of at least one row)",
                vec![
                    100.0, 1_000.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0, 250_000.0,
                ],
            ),
            mail_sends: counters(
                &registry,
                "mail_sends_total",
                "Delivery attempts of outbox messages (one per recipient), by outcome",
                "outcome",
                SendOutcome::ALL.iter().map(|o| o.as_str()),
            ),
            connections: gauge(
                &registry,
                "connections_open",
                "SSH connections past the front door: handshaking, logging in or logged in",
            ),
            sessions: gauge(&registry, "sessions_open", "Logged-in SSH sessions"),
            logins_in_progress: gauge(
                &registry,
                "logins_in_progress",
                "Connections holding one of their address's login slots",
            ),
            logins_waiting: gauge(
                &registry,
                "logins_waiting",
                "Connections waiting at the front door for a login slot of their address",
            ),
            outbox_messages: gauge(
                &registry,
                "outbox_messages",
                "Outbox copies (one per recipient) not yet delivered nor refused for good",
            ),
            outbox_oldest_age: float_gauge(
                &registry,
                "outbox_oldest_unsent_age_seconds",
                "Seconds the oldest undelivered outbox copy has waited; 0 when none waits",
            ),
            ready: gauge(
                &registry,
                "ready",
                "1 when every readiness check passes (as /readyz), else 0",
            ),
            checks: gauges(
                &registry,
                "readiness_check",
                "Each readiness check: 1 passed, 0 failed",
                &["check"],
            ),
            district_last_upload: float_gauges(
                &registry,
                "district_last_upload_timestamp_seconds",
                "When the district's newest upload was received, Unix time",
            ),
            district_last_applied: float_gauges(
                &registry,
                "district_last_applied_import_timestamp_seconds",
                "When the district's newest import that applied its file (with or without row errors, or found it unchanged) finished, Unix time",
            ),
            district_windows_missed: gauges(
                &registry,
                "district_windows_missed",
                "Import windows that opened and closed since the district's last applied import, paused nights not counted, up to 14; only enabled districts with an applied import",
                &["district"],
            ),
            district_held: gauges(
                &registry,
                "district_held_imports",
                "The district's imports held for support's approval",
                &["district"],
            ),
            district_held_since: float_gauges(
                &registry,
                "district_held_since_timestamp_seconds",
                "When the district's oldest held import was held, Unix time (only districts with one)",
            ),
            district_paused: gauges(
                &registry,
                "district_paused",
                "1 while a pause (full or additions-only) covers the district's today",
                &["district"],
            ),
            registry,
            render: Mutex::new(()),
        };
        for check in Check::ALL {
            m.checks.with_label_values(&[check.as_str()]).set(0);
        }
        m
    }

    /// A connection's login ended so.
    pub fn login(&self, outcome: LoginOutcome) {
        self.logins.with_label_values(&[outcome.as_str()]).inc();
    }

    /// A connection that never logged in was refused for `reason` (once per
    /// reason and connection).
    pub fn login_refused(&self, reason: LoginRefusal) {
        self.login_refusals
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    pub fn negotiation_failed(&self, list: Negotiation) {
        self.negotiation_failures
            .with_label_values(&[list.as_str()])
            .inc();
    }

    /// `bytes` more were written to an upload.
    pub fn upload_bytes(&self, bytes: u64) {
        self.upload_bytes.inc_by(bytes);
    }

    /// An upload was stored, `seconds` after its open.
    pub fn upload_stored(&self, seconds: f64) {
        self.upload_seconds.observe(seconds);
    }

    /// An upload was published as the district's pending users.csv.
    pub fn upload_published(&self) {
        self.uploads.inc();
    }

    pub fn upload_refused(&self, reason: UploadRefusal) {
        self.upload_refusals
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// An import ended with a report: its outcome (`paused` when run under an
    /// additions-only pause and applied), rows and time.
    pub fn import_finished(&self, outcome: Outcome, paused: bool, counts: &Counts, seconds: f64) {
        let label = match outcome {
            Outcome::Applied | Outcome::AppliedWithErrors if paused => ImportOutcome::Paused,
            Outcome::Applied => ImportOutcome::Applied,
            Outcome::AppliedWithErrors => ImportOutcome::AppliedWithErrors,
            Outcome::Held => ImportOutcome::Held,
            Outcome::Rejected => ImportOutcome::Rejected,
            Outcome::Unchanged => ImportOutcome::Unchanged,
        };
        self.import_ended(label);
        // A held or rejected import changed nothing.
        if matches!(outcome, Outcome::Applied | Outcome::AppliedWithErrors) {
            for (change, n) in [
                (RowChange::Created, counts.created),
                (RowChange::Updated, counts.updated),
                (RowChange::Deactivated, counts.deactivated),
                (RowChange::Reactivated, counts.reactivated),
                (RowChange::Errored, counts.skipped),
            ] {
                self.import_rows
                    .with_label_values(&[change.as_str()])
                    .inc_by(n);
            }
        }
        self.import_seconds.observe(seconds);
        if counts.rows > 0 && seconds > 0.0 {
            self.import_rows_per_second
                .observe(counts.rows as f64 / seconds);
        }
    }

    /// An import ended without a report (an error, or given up).
    pub fn import_ended(&self, outcome: ImportOutcome) {
        self.imports.with_label_values(&[outcome.as_str()]).inc();
    }

    pub fn mail_sent(&self, outcome: SendOutcome) {
        self.mail_sends.with_label_values(&[outcome.as_str()]).inc();
    }

    /// The scrape: `snapshot`'s states set, then every metric in the text
    /// format.
    pub fn render(&self, snapshot: &Snapshot) -> Vec<u8> {
        let _one = self.render.lock().unwrap_or_else(|e| e.into_inner());
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.connections.set(int(snapshot.connections));
        self.sessions.set(int(snapshot.sessions));
        self.logins_in_progress
            .set(int(snapshot.logins_in_progress));
        self.logins_waiting.set(int(snapshot.logins_waiting));
        self.outbox_messages.set(int(snapshot.outbox_messages));
        self.outbox_oldest_age.set(snapshot.outbox_oldest_age);
        for (check, passed) in &snapshot.checks {
            self.checks
                .with_label_values(&[check.as_str()])
                .set(i64::from(*passed));
        }
        let ready = !snapshot.checks.is_empty() && snapshot.checks.iter().all(|(_, ok)| *ok);
        self.ready.set(i64::from(ready));
        let per_district: [&dyn Reset; 6] = [
            &self.district_last_upload,
            &self.district_last_applied,
            &self.district_windows_missed,
            &self.district_held,
            &self.district_held_since,
            &self.district_paused,
        ];
        // Districts renamed or deleted since the last scrape go.
        for vec in per_district {
            vec.reset();
        }
        for d in snapshot.districts.iter().flatten() {
            let label = [d.subdomain.as_str()];
            if let Some(at) = d.last_upload {
                self.district_last_upload.with_label_values(&label).set(at);
            }
            if let Some(at) = d.last_applied_import {
                self.district_last_applied.with_label_values(&label).set(at);
            }
            if let Some(n) = d.windows_missed {
                self.district_windows_missed
                    .with_label_values(&label)
                    .set(i64::from(n));
            }
            self.district_held
                .with_label_values(&label)
                .set(i64::from(d.held_imports));
            if let Some(at) = d.held_since {
                self.district_held_since.with_label_values(&label).set(at);
            }
            self.district_paused
                .with_label_values(&label)
                .set(i64::from(d.paused));
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot write the metrics");
        }
        out
    }
}

/// A labelled metric family whose series can all be dropped.
trait Reset {
    fn reset(&self);
}

impl Reset for GaugeVec {
    fn reset(&self) {
        GaugeVec::reset(self);
    }
}

impl Reset for IntGaugeVec {
    fn reset(&self) {
        IntGaugeVec::reset(self);
    }
}

/// Register `collector`. Names and labels are this file's constants, so a
/// failure is a mistake here; the unit tests register every one.
fn registered<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    if let Err(e) = registry.register(Box::new(c.clone())) {
        tracing::error!(error = %e, "metric not registered");
    }
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    registered(
        registry,
        IntCounter::with_opts(Opts::new(name, help)).expect("valid metric"),
    )
}

/// A counter per value of `label`, each at 0 from the start.
fn counters<'a>(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = &'a str>,
) -> IntCounterVec {
    let vec = registered(
        registry,
        IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
    );
    for value in values {
        vec.with_label_values(&[value]).reset();
    }
    vec
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    registered(
        registry,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("valid metric"),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    registered(
        registry,
        IntGauge::with_opts(Opts::new(name, help)).expect("valid metric"),
    )
}

fn float_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    registered(
        registry,
        Gauge::with_opts(Opts::new(name, help)).expect("valid metric"),
    )
}

fn gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn float_gauges(registry: &Registry, name: &str, help: &str) -> GaugeVec {
    registered(
        registry,
        GaugeVec::new(Opts::new(name, help), &["district"]).expect("valid metric"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics, s: &Snapshot) -> String {
        String::from_utf8(m.render(s)).unwrap()
    }

    #[test]
    fn every_labelled_series_exists_at_zero_from_the_start() {
        let out = text(&Metrics::new(), &Snapshot::default());
        for line in [
            "rosterd_logins_total{outcome=\"refused\"} 0",
            "rosterd_login_refusals_total{reason=\"throttled\"} 0",
            "rosterd_negotiation_failures_total{list=\"kex\"} 0",
            "rosterd_upload_refusals_total{reason=\"disk_full\"} 0",
            "rosterd_imports_total{outcome=\"paused\"} 0",
            "rosterd_import_rows_total{change=\"errored\"} 0",
            "rosterd_mail_sends_total{outcome=\"deferred\"} 0",
            "rosterd_readiness_check{check=\"outbox\"} 0",
            "rosterd_uploads_total 0",
            "rosterd_ready 0",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
        }
        // Classic text format: HELP and TYPE for every family, no OpenMetrics EOF.
        assert!(out.contains("# TYPE rosterd_logins_total counter"));
        assert!(out.contains("# HELP rosterd_logins_total "));
        assert!(!out.contains("# EOF"));
    }

    #[test]
    fn an_import_counts_its_outcome_rows_and_time() {
        let m = Metrics::new();
        let counts = Counts {
            rows: 100,
            created: 90,
            updated: 5,
            skipped: 5,
            ..Counts::default()
        };
        m.import_finished(Outcome::AppliedWithErrors, false, &counts, 0.5);
        m.import_finished(Outcome::Applied, true, &counts, 0.5);
        m.import_finished(Outcome::Held, false, &counts, 0.5);
        let out = text(&m, &Snapshot::default());
        for line in [
            "rosterd_imports_total{outcome=\"applied_with_errors\"} 1",
            "rosterd_imports_total{outcome=\"paused\"} 1",
            "rosterd_imports_total{outcome=\"held\"} 1",
            "rosterd_imports_total{outcome=\"applied\"} 0",
            // The held import created nobody.
            "rosterd_import_rows_total{change=\"created\"} 180",
            "rosterd_import_rows_total{change=\"errored\"} 10",
            "rosterd_import_duration_seconds_count 3",
            "rosterd_import_rows_per_second_bucket{le=\"100\"} 0",
            "rosterd_import_rows_per_second_bucket{le=\"1000\"} 3",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
        }
    }

    /// The `rosterd_…` metric names `text` mentions (a histogram's
    /// `_bucket`, `_sum` and `_count` read as the histogram).
    fn names_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        for (i, _) in text.match_indices("rosterd_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .map_or(name.clone(), str::to_owned);
            names.insert(name);
        }
        names
    }

    #[test]
    fn the_alert_rules_and_the_dashboard_use_only_metrics_that_exist() {
        let district = DistrictGauges {
            subdomain: "lincoln".into(),
            last_upload: Some(1.0),
            last_applied_import: Some(1.0),
            windows_missed: Some(0),
            held_imports: 1,
            held_since: Some(1.0),
            paused: false,
        };
        let out = text(
            &Metrics::new(),
            &Snapshot {
                districts: Some(vec![district]),
                ..Snapshot::default()
            },
        );
        let exported: std::collections::BTreeSet<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect();
        for (file, text) in [
            (
                "deploy/prometheus/rosterd.rules.yml",
                include_str!("../deploy/prometheus/rosterd.rules.yml"),
            ),
            (
                "deploy/grafana/rosterd.json",
                include_str!("../deploy/grafana/rosterd.json"),
            ),
        ] {
            let used = names_in(text);
            assert!(used.len() > 5, "{file}: {used:?}");
            let unknown: Vec<_> = used.difference(&exported).collect();
            assert!(
                unknown.is_empty(),
                "{file} uses {unknown:?}, which rosterd does not export"
            );
        }
    }

    #[test]
    fn district_series_follow_the_latest_snapshot() {
        let m = Metrics::new();
        let district = |sub: &str| DistrictGauges {
            subdomain: sub.into(),
            last_upload: Some(1_700_000_000.0),
            windows_missed: Some(2),
            held_imports: 1,
            held_since: Some(1_700_000_100.0),
            ..DistrictGauges::default()
        };
        let mut snap = Snapshot {
            checks: Check::ALL.iter().map(|c| (*c, true)).collect(),
            districts: Some(vec![district("lincoln"), district("adams")]),
            ..Snapshot::default()
        };
        let out = text(&m, &snap);
        assert!(out.contains("rosterd_district_windows_missed{district=\"lincoln\"} 2"));
        assert!(out.contains(
            "rosterd_district_last_upload_timestamp_seconds{district=\"adams\"} 1700000000"
        ));
        assert!(out.contains(
            "rosterd_district_held_since_timestamp_seconds{district=\"adams\"} 1700000100"
        ));
        assert!(out.contains("rosterd_ready 1"));
        // Never applied: no series rather than a zero that reads as 1970.
        assert!(!out.contains("rosterd_district_last_applied_import_timestamp_seconds{"));
        // A district deleted since goes; a failed check makes it unready.
        snap.districts = Some(vec![district("lincoln")]);
        snap.checks[1].1 = false;
        let out = text(&m, &snap);
        assert!(!out.contains("district=\"adams\""));
        assert!(out.contains("rosterd_readiness_check{check=\"spool\"} 0"));
        assert!(out.contains("rosterd_ready 0"));
    }
}
