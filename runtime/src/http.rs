//! HTTP transport: GET /health (and MCP at /mcp).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::app::App;

pub fn health_body(app: &App) -> (StatusCode, serde_json::Value) {
    let wf = app.workflows();
    let body = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_ms": app.started.elapsed().as_millis() as u64,
        "workflows": wf.workflows.len(),
        "workflow_errors": wf.errors.len(),
    });
    (StatusCode::OK, body)
}

async fn health(State(app): State<Arc<App>>) -> impl IntoResponse {
    let (code, body) = health_body(&app);
    (code, Json(body))
}

pub fn router(app: Arc<App>) -> Router {
    Router::new().route("/health", get(health)).with_state(app)
}

/// Serves until `shutdown` is cancelled, then lets in-flight requests finish
/// within the configured grace period.
pub async fn serve(app: Arc<App>, shutdown: CancellationToken) -> Result<()> {
    let addr = format!("{}:{}", app.config.http.host, app.config.http.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot bind {addr}"))?;
    let local: SocketAddr = listener.local_addr()?;
    tracing::info!(%local, "listening (GET /health, MCP at /mcp)");
    let grace = Duration::from_millis(app.config.http.shutdown_grace_ms);
    let router = router(app);
    let sd = shutdown.clone();
    let server =
        axum::serve(listener, router).with_graceful_shutdown(async move { sd.cancelled().await });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        r = &mut server => r.context("http server")?,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("in-flight requests did not finish within {} ms; exiting", grace.as_millis());
        }
    }
    Ok(())
}

/// `ael health`: GET the health URL with a short timeout.
pub async fn probe(url: &str, timeout: Duration) -> Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/health"),
    };
    let fut = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("connect {authority}"))?;
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\nAccept: application/json\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("malformed HTTP response")?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok::<_, anyhow::Error>((status, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .context("health check timed out")?
}
