//! native-tools' own log lines as MCP `notifications/message`: a tracing
//! layer publishes every event of native-tools (whatever LOG_LEVEL lets
//! through to stderr) to the sessions that asked for a level with
//! `logging/setLevel`. The Firecrawl API key is redacted, as in tool errors.

// MCP logging is deprecated by SEP-2577 but still what 2025-xx clients use.
#![allow(deprecated)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use rmcp::service::Peer;
use serde_json::json;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};

/// Name of the logger in `notifications/message`.
pub const LOGGER: &str = "native-tools";

/// One log line of native-tools.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Its level.
    pub level: tracing::Level,
    /// The module that logged it.
    pub target: String,
    /// The message and its fields (`message key=value ...`), redacted.
    pub message: String,
}

fn channel() -> &'static broadcast::Sender<LogLine> {
    static TX: OnceLock<broadcast::Sender<LogLine>> = OnceLock::new();
    TX.get_or_init(|| broadcast::channel(1024).0)
}

/// The tracing layer that publishes native-tools' events.
pub struct McpLogLayer {
    secrets: Vec<String>,
}

impl McpLogLayer {
    /// A layer hiding the values of the secret environment variables.
    pub fn from_env() -> McpLogLayer {
        let secrets = ["FIRECRAWL_API_KEY"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| v.len() >= 6)
            .collect();
        McpLogLayer { secrets }
    }
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            self.0.push_str(&rest);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for McpLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let tx = channel();
        if tx.receiver_count() == 0 {
            return;
        }
        let meta = event.metadata();
        if !meta.target().starts_with("native_tools") {
            return; // not the SDK's per-session chatter
        }
        let mut f = Fields(String::new());
        event.record(&mut f);
        let mut message = f.0;
        for s in &self.secrets {
            message = message.replace(s.as_str(), "[REDACTED]");
        }
        let _ = tx.send(LogLine {
            level: *meta.level(),
            target: meta.target().to_string(),
            message,
        });
    }
}

fn mcp_level(l: tracing::Level) -> LoggingLevel {
    match l {
        tracing::Level::ERROR => LoggingLevel::Error,
        tracing::Level::WARN => LoggingLevel::Warning,
        tracing::Level::INFO => LoggingLevel::Info,
        _ => LoggingLevel::Debug,
    }
}

fn rank(l: LoggingLevel) -> u8 {
    match l {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The log level one MCP session asked for, and its forwarding task.
#[derive(Debug, Default)]
pub struct SessionLog {
    level: Mutex<Option<LoggingLevel>>,
    pumping: AtomicBool,
}

impl SessionLog {
    /// Whether a line at `level` goes to the client (nothing before setLevel).
    pub fn wants(&self, level: tracing::Level) -> bool {
        self.level
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|min| rank(mcp_level(level)) >= rank(min))
    }

    /// Sets the level and starts (once) forwarding log lines to `peer`
    /// until its transport closes.
    pub fn set_level(self: &Arc<Self>, level: LoggingLevel, peer: Peer<RoleServer>) {
        *self.level.lock().unwrap_or_else(|e| e.into_inner()) = Some(level);
        if self.pumping.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut rx = channel().subscribe();
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                let line = tokio::select! {
                    l = rx.recv() => l,
                    _ = tick.tick() => {
                        if peer.is_transport_closed() {
                            break;
                        }
                        continue;
                    }
                };
                let line = match line {
                    Ok(l) => l,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if !me.wants(line.level) {
                    continue;
                }
                let p = LoggingMessageNotificationParam::new(
                    mcp_level(line.level),
                    json!({"message": line.message, "target": line.target}),
                )
                .with_logger(LOGGER);
                if peer.notify_logging_message(p).await.is_err() && peer.is_transport_closed() {
                    break;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let s = SessionLog::default();
        assert!(!s.wants(tracing::Level::ERROR));
        *s.level.lock().unwrap() = Some(LoggingLevel::Warning);
        assert!(s.wants(tracing::Level::ERROR));
        assert!(s.wants(tracing::Level::WARN));
        assert!(!s.wants(tracing::Level::INFO));
    }
}
