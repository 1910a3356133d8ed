//! The log's two forms on standard error: text for people (the default) and
//! JSON for Loki or Elastic, one event per line with stable top-level field
//! names: `time` (RFC 3339 UTC), `level`, `target`, `message`, then the
//! event's fields and those of the spans it happened in (`district`,
//! `address`, `upload`, `run`, `key`…), an event's own field winning over a
//! span's of the same name.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::{FormatEvent, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether the log is JSON: what else the process prints on standard error
/// (the start-up banner, a fatal error) must then be an event too.
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] chose JSON.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Send `tracing`'s events to standard error, as text or JSON lines,
/// filtered by `ROSTERD_LOG` if set, else `level` (a `tracing` filter).
pub fn init(json: bool, level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROSTERD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    JSON.store(json, Ordering::Relaxed);
    let _ = if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// One event as one JSON object on one line.
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Map::new();
        // Outermost span first, so an inner span's field replaces an outer one's.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(recorded) = extensions.get::<FormattedFields<JsonFields>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str(recorded.as_str())
                {
                    fields.extend(map);
                }
            }
        }
        event.record(&mut Fields(&mut fields));
        let meta = event.metadata();
        let message = fields.remove("message").unwrap_or(Value::from(""));
        let mut line = String::with_capacity(256);
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        write!(
            line,
            "{{\"time\":{},\"level\":{},\"target\":{},\"message\":{}",
            Value::from(time),
            Value::from(meta.level().as_str()),
            Value::from(meta.target()),
            message
        )?;
        for (name, value) in &fields {
            write!(line, ",{}:{}", Value::from(name.as_str()), value)?;
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// An event's fields as JSON values: numbers and booleans as themselves,
/// anything else as its text.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }
}
