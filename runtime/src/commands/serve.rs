//! `ael serve`: the MCP server over HTTP or stdio until a stop signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::cli::Transport;
use crate::config::{self, Config};
use crate::{http, mcp, reaper, signals, workflow};

/// Reloads the workflows and tells MCP clients when the tool list changed.
fn reload(app: &Arc<App>, what: &str) {
    let (added, changed, removed) = app.reload();
    tracing::info!(?added, ?changed, ?removed, "{what}");
    if !(added.is_empty() && changed.is_empty() && removed.is_empty()) {
        app.notify_workflows_changed();
    }
}

/// Polls the workflows directory and reloads on change.
fn spawn_reloader(app: Arc<App>, stop: CancellationToken) {
    let interval = Duration::from_millis(app.config.reload_interval_ms.max(100));
    tokio::spawn(async move {
        let dir = app.config.workflows_dir.clone();
        let mut last = workflow::scan_dir(&dir).ok();
        tracing::info!(dir = %dir.display(), interval_ms = interval.as_millis() as u64, "hot reload enabled");
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let now = workflow::scan_dir(&dir).ok();
            if now != last {
                last = now;
                reload(&app, "workflows reloaded");
            }
        }
    });
}

/// SIGHUP re-reads the workflows directory (with or without hot reload).
fn spawn_hup_reloader(app: Arc<App>, stop: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = hup.recv() => reload(&app, "SIGHUP: workflows reloaded"),
            }
        }
    });
}

/// Serves MCP over stdin/stdout until stdin closes or `shutdown`.
async fn serve_stdio(app: &Arc<App>, shutdown: &CancellationToken) {
    use rmcp::ServiceExt;
    let ct = CancellationToken::new();
    let init = mcp::AelServer::new(app.clone())
        .serve_with_ct(rmcp::transport::io::stdio_pipes(), ct.clone());
    let service = tokio::select! {
        r = init => match r {
            Ok(s) => Some(s),
            // stdin closed before a client initialized: nothing to serve.
            Err(e) => {
                tracing::info!("MCP stdio session not established: {e}");
                None
            }
        },
        _ = shutdown.cancelled() => None,
    };
    let Some(service) = service else {
        return;
    };
    tracing::info!("serving MCP over stdio");
    let waiting = service.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        _ = &mut waiting => tracing::info!("stdin closed"),
        _ = shutdown.cancelled() => {
            let grace = Duration::from_millis(app.config.http.shutdown_grace_ms);
            let deadline = tokio::time::Instant::now() + grace;
            while app.active.count() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            app.stop.cancel();
            tokio::time::sleep(Duration::from_millis(if app.active.count() > 0 { 200 } else { 0 })).await;
            ct.cancel();
            let _ = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
        }
    }
}

/// Runs the server until a stop signal (or, for stdio, end of input).
pub async fn serve(cfg: Config, transport: Transport) -> Result<()> {
    let (shutdown, second) = signals::spawn_watch();
    // Read before anything starts, so a bad token setting fails fast.
    let token = match transport {
        Transport::Http => bearer_auth::token_from_env("AEL_HTTP")?,
        Transport::Stdio => None,
    };
    // Before any tool server starts, so that orphans of their launchers
    // come to ael and not to the host's init.
    let reaping = reaper::adopt_orphans(
        config::env_var("AEL_REAP_ORPHANS")
            .is_some_and(|v| config::parse_bool("AEL_REAP_ORPHANS", &v).unwrap_or(false)),
    );
    let app = App::new(cfg, None);
    app.store.recover();
    app.store.compact(app.config.history_limit);
    {
        // A second SIGTERM/SIGINT skips the grace period for in-flight runs.
        let stop = app.stop.clone();
        tokio::spawn(async move {
            second.cancelled().await;
            tracing::warn!("second signal: interrupting runs now");
            stop.cancel();
        });
    }
    reaper::spawn(app.tools.clone(), shutdown.clone(), reaping);
    if app.config.hot_reload {
        spawn_reloader(app.clone(), shutdown.clone());
    }
    spawn_hup_reloader(app.clone(), shutdown.clone());
    match transport {
        Transport::Http => http::serve(app.clone(), shutdown.clone(), token).await?,
        Transport::Stdio => serve_stdio(&app, &shutdown).await,
    }
    shutdown.cancel();
    app.shutdown().await;
    Ok(())
}

/// `ael serve`: applies the command's flags, starts logging and serves.
pub async fn run(
    cli: &crate::cli::Cli,
    transport: Transport,
    host: Option<&str>,
    port: Option<u16>,
    reload: bool,
) -> Result<()> {
    let (mut cfg, src) = cli.load_config()?;
    if let Some(h) = host {
        cfg.http.host = h.to_string();
    }
    if let Some(p) = port {
        cfg.http.port = p;
    }
    if reload {
        cfg.hot_reload = true;
    }
    crate::logging::init(&cfg.log_level, cfg.log_format)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %src.path.display(),
        loaded = src.loaded,
        workflows_dir = %cfg.workflows_dir.display(),
        data_dir = %cfg.data_dir.display(),
        "starting ael"
    );
    serve(cfg, transport).await?;
    tracing::info!("stopped");
    Ok(())
}
