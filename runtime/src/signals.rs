//! Stop signals (SIGTERM, SIGINT) as cancellation tokens.

use tokio_util::sync::CancellationToken;

/// SIGTERM and SIGINT, registered with the kernel when this is built, so a
/// signal that arrives before any task has run is caught, not fatal.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Option<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some(Self { term, int }),
            _ => {
                tracing::error!("cannot install signal handlers");
                None
            }
        }
    }

    /// Resolves on the next SIGTERM or SIGINT.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = self.int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    }
}

/// Installs the stop signals now and returns two tokens: the first is
/// cancelled by the first SIGTERM/SIGINT, the second by the one after it.
pub fn spawn_watch() -> (CancellationToken, CancellationToken) {
    let (first, second) = (CancellationToken::new(), CancellationToken::new());
    let Some(mut signals) = StopSignals::install() else {
        return (first, second);
    };
    let (f, s) = (first.clone(), second.clone());
    tokio::spawn(async move {
        signals.recv().await;
        f.cancel();
        signals.recv().await;
        s.cancel();
    });
    (first, second)
}
