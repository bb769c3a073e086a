//! Log output on stderr (text or JSON lines).

use crate::config::{self, ConfigError, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level name is not known.
    #[error(transparent)]
    Level(#[from] ConfigError),
    /// A global subscriber is already installed.
    #[error("{0}")]
    Init(tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber at `level` in `format`.
pub fn init(level: &str, format: LogFormat) -> Result<(), LoggingError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = config::parse_log_level(level)?;
    // The MCP SDK logs every session at INFO; keep it at WARN unless debugging.
    let sdk = if level >= tracing::Level::DEBUG {
        level
    } else {
        tracing::Level::WARN
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("rmcp", sdk);
    let base = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(base).try_init(),
        LogFormat::Json => registry
            .with(base.json().flatten_event(true).with_current_span(false))
            .try_init(),
    }
    .map_err(LoggingError::Init)
}
