//! The log: human-readable text (coloured only on a terminal) or one JSON object per
//! line for a log pipeline, filtered by `USHER_LOG`, else `RUST_LOG`, else `info`.

use std::io::IsTerminal;

use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for a person: time, level, target, message and fields.
    #[default]
    Text,
    /// One JSON object per line, with the fields and the request's span (its id).
    Json,
}

/// The filter: `USHER_LOG`, else `RUST_LOG` (the usual variable of Rust programs),
/// else `info`. A filter that does not parse falls back to `info`.
pub fn filter(usher_log: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    usher_log
        .or(rust_log)
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// The subscriber for `format`, writing to `writer`; `ansi` colours text lines.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        // Spans as fields of each line, so every line of a request carries its id.
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Installs the process's log on standard error.
pub fn init(format: LogFormat) {
    let filter = filter(
        std::env::var("USHER_LOG").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let ansi = std::io::stderr().is_terminal();
    let _ =
        tracing::subscriber::set_global_default(subscriber(format, filter, std::io::stderr, ansi));
}
