//! Progress reports and cancellation for long tool calls (http_fetch
//! downloads, fs_search over large trees).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::RoleServer;
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::Peer;
use tokio_util::sync::CancellationToken;

/// Reports are sent at most this often (the last one always goes out).
const MIN_INTERVAL: Duration = Duration::from_millis(100);

type Report = Arc<dyn Fn(Message) + Send + Sync>;

/// What the sending task is asked to do, in order.
enum Message {
    /// Send one progress notification.
    Progress(u64, Option<u64>, String),
    /// Answer once every notification before it has been sent.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// What a long tool call uses to report progress and to notice that the
/// client cancelled it. Cheap to clone; usable from blocking threads.
#[derive(Clone, Default)]
pub struct Monitor {
    cancel: CancellationToken,
    report: Option<Report>,
    last: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("cancelled", &self.cancel.is_cancelled())
            .field("reports", &self.report.is_some())
            .finish()
    }
}

impl Monitor {
    /// A monitor that reports nothing and is cancelled by `cancel`.
    pub fn new(cancel: CancellationToken) -> Monitor {
        Monitor {
            cancel,
            ..Monitor::default()
        }
    }

    /// Sends `notifications/progress` with `token` to `peer` (in order,
    /// through one task that ends when the monitor's clones are gone).
    pub fn with_progress(mut self, peer: Peer<RoleServer>, token: ProgressToken) -> Monitor {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            let mut gone = false;
            while let Some(m) = rx.recv().await {
                match m {
                    Message::Progress(done, total, msg) if !gone => {
                        let mut p = ProgressNotificationParam::new(token.clone(), done as f64)
                            .with_message(msg);
                        if let Some(t) = total {
                            p = p.with_total(t as f64);
                        }
                        gone = peer.notify_progress(p).await.is_err();
                    }
                    Message::Progress(..) => {}
                    Message::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        self.report = Some(Arc::new(move |m| {
            let _ = tx.send(m);
        }));
        self
    }

    /// Waits until every report so far has been sent, so that the last one
    /// reaches the client before the tool's result (a client stops
    /// listening for a request's progress once its result arrives).
    pub async fn flush(&self) {
        let Some(report) = &self.report else {
            return;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        report(Message::Flush(tx));
        let _ = rx.await;
    }

    /// True once the client cancelled the call.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Waits until the client cancels the call.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Reports progress (rate-limited unless `last`); `msg` is built only
    /// when a report goes out.
    pub fn report(&self, done: u64, total: Option<u64>, last: bool, msg: impl FnOnce() -> String) {
        let Some(report) = &self.report else {
            return;
        };
        let mut prev = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if !last && prev.is_some_and(|p| now.duration_since(p) < MIN_INTERVAL) {
            return;
        }
        *prev = Some(now);
        report(Message::Progress(done, total, msg()));
    }
}
