//! Per-session MCP state: the log level a client asked for
//! (`logging/setLevel`) and the resources it subscribed to, and the task
//! that forwards run events to it as `notifications/message` and
//! `notifications/resources/updated`.

// MCP logging is deprecated by SEP-2577 but still what 2025-xx clients use.
#![allow(deprecated)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotificationParam,
};
use rmcp::service::Peer;
use serde_json::json;
use tokio::sync::broadcast;

use crate::app::App;
use crate::mcp::resources;
use crate::store::{EventLevel, RunEvent};

/// Name of the logger in `notifications/message`.
pub const LOGGER: &str = "ael";

/// What one MCP session asked for.
#[derive(Default)]
pub struct Session {
    /// Minimum level of `notifications/message`; None until the client
    /// sends `logging/setLevel` (then nothing is sent).
    level: Mutex<Option<LoggingLevel>>,
    /// Subscribed resource URIs.
    subscriptions: Mutex<HashSet<String>>,
    /// The forwarding task runs (one per session).
    pumping: AtomicBool,
}

/// Rank of a level, least severe first.
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

/// The MCP level of a run event.
pub fn mcp_level(l: EventLevel) -> LoggingLevel {
    match l {
        EventLevel::Debug => LoggingLevel::Debug,
        EventLevel::Info => LoggingLevel::Info,
        EventLevel::Warn => LoggingLevel::Warning,
        EventLevel::Error => LoggingLevel::Error,
    }
}

/// The `notifications/message` of a run event.
pub fn log_message(e: &RunEvent) -> LoggingMessageNotificationParam {
    let data = json!({
        "run_id": e.run_id,
        "workflow": e.workflow,
        "step": e.step,
        "message": e.message,
        "data": e.data,
    });
    LoggingMessageNotificationParam::new(mcp_level(e.level), data).with_logger(LOGGER)
}

impl Session {
    /// Sets the client's log level.
    pub fn set_level(&self, level: LoggingLevel) {
        *self.level.lock().unwrap_or_else(|e| e.into_inner()) = Some(level);
    }

    /// Whether an event at `level` goes to the client.
    pub fn wants(&self, level: LoggingLevel) -> bool {
        self.level
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|min| rank(level) >= rank(min))
    }

    /// Subscribes to `uri`.
    pub fn subscribe(&self, uri: &str) {
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uri.to_string());
    }

    /// Unsubscribes from `uri`.
    pub fn unsubscribe(&self, uri: &str) {
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uri);
    }

    /// Whether the client subscribed to `uri`.
    pub fn subscribed(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(uri)
    }

    /// Starts (once) the task that forwards run events to `peer` until its
    /// transport closes.
    pub fn start_pump(self: &Arc<Self>, app: &Arc<App>, peer: Peer<RoleServer>) {
        if self.pumping.swap(true, Ordering::SeqCst) {
            return;
        }
        let rx = app.store.subscribe();
        let session = self.clone();
        tokio::spawn(async move { session.pump(rx, peer).await });
    }

    async fn pump(&self, mut rx: broadcast::Receiver<RunEvent>, peer: Peer<RoleServer>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let event = tokio::select! {
                e = rx.recv() => e,
                _ = tick.tick() => {
                    if peer.is_transport_closed() {
                        break;
                    }
                    continue;
                }
            };
            let event = match event {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!("MCP session missed {n} run events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let sent = async {
                if self.wants(mcp_level(event.level)) {
                    peer.notify_logging_message(log_message(&event)).await?;
                }
                let uri = resources::run_uri(&event.run_id);
                if self.subscribed(&uri) {
                    peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                        .await?;
                }
                Ok::<(), rmcp::ServiceError>(())
            };
            if sent.await.is_err() && peer.is_transport_closed() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_filter() {
        let s = Session::default();
        assert!(!s.wants(LoggingLevel::Emergency), "nothing before setLevel");
        s.set_level(LoggingLevel::Warning);
        assert!(!s.wants(LoggingLevel::Info));
        assert!(s.wants(LoggingLevel::Warning));
        assert!(s.wants(LoggingLevel::Error));
        s.set_level(LoggingLevel::Debug);
        assert!(s.wants(LoggingLevel::Info));
    }
}
