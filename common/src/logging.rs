//! Tracing set-up for both binaries: human-readable for a terminal, JSON for a log shipper.

use serde::Deserialize;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

#[cfg(feature = "runtime")]
/// Default filter: `apache_avro` warns on every parse that the EdgeEvent payload union has one member, which
/// is deliberate (more event families join it later), so only its errors are shown.
const DEFAULT_FILTER: &str = "info,apache_avro=error";

#[cfg(feature = "runtime")]
/// Installs the global subscriber; the filter comes from `RUST_LOG` (default [`DEFAULT_FILTER`]). Safe to
/// call twice.
pub fn init(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
