//! Tracing set-up, always to stderr: text on a terminal (colours only
//! there), JSON by setting. Under journald (stderr is the stream named by
//! `JOURNAL_STREAM`) every line starts with its syslog priority (`<3>`
//! error ... `<7>` debug) so levels survive, and timestamps are left to
//! journald.

use std::io::IsTerminal;

use tracing::{Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Whether stderr is connected to journald.
pub fn under_journald() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()),
        Err(_) => false,
    }
}

/// Prefixes each event with its syslog priority for journald.
struct Priority<F>(F);

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let p = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{p}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `level`.
/// A second call (tests, the demo) keeps the first subscriber.
pub fn init(format: LogFormat, level: &str) {
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let journald = under_journald();
    let ansi = std::io::stderr().is_terminal() && !journald;
    let base = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match (format, journald) {
        (LogFormat::Json, false) => base
            .with_env_filter(filter())
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        (LogFormat::Json, true) => base
            .with_env_filter(filter())
            .fmt_fields(JsonFields::new())
            .event_format(Priority(
                Format::default()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .without_time(),
            ))
            .try_init(),
        (LogFormat::Text, false) => base.with_env_filter(filter()).try_init(),
        (LogFormat::Text, true) => base
            .with_env_filter(filter())
            .fmt_fields(DefaultFields::new())
            .event_format(Priority(Format::default().without_time().with_ansi(false)))
            .try_init(),
    };
}
