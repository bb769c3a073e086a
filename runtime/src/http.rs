//! HTTP transport: GET /health and MCP (streamable HTTP) at /mcp.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::Method;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::mcp::AelServer;

/// Why the HTTP server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address cannot be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// `host:port`.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket has no local address.
    #[error(transparent)]
    LocalAddr(std::io::Error),
    /// The server failed while running.
    #[error("http server")]
    Serve(#[source] std::io::Error),
}

/// Why `ael health` got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not `http://...`.
    #[error("only http:// URLs are supported")]
    UnsupportedUrl,
    /// The TCP connection failed.
    #[error("connect {authority}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Sending the request or reading the answer failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The answer has no HTTP status line.
    #[error("malformed HTTP response")]
    Malformed,
    /// No complete answer within the timeout.
    #[error("health check timed out")]
    Timeout(#[source] tokio::time::error::Elapsed),
}

async fn health(State(app): State<Arc<App>>) -> impl IntoResponse {
    let (ok, body) = app.health();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Counts MCP POST requests whose response has not been fully sent.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    /// Requests in flight.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

async fn track_in_flight(State(inflight): State<InFlight>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    inflight.0.fetch_add(1, Ordering::SeqCst);
    let guard = InFlightGuard(inflight.0.clone());
    let (parts, body) = next.run(req).await.into_parts();
    // The guard lives as long as the (possibly streamed) response body.
    let stream = body.into_data_stream().map(move |chunk| {
        let _keep = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The HTTP routes: open `/health`, and MCP at `/mcp` (behind `token` when
/// one is set).
pub fn router(
    app: Arc<App>,
    mcp_ct: CancellationToken,
    inflight: InFlight,
    token: Option<String>,
) -> Router {
    let mut cfg = StreamableHttpServerConfig::default().with_cancellation_token(mcp_ct);
    let hosts = app.config.http.effective_allowed_hosts();
    cfg = if hosts.is_empty() {
        cfg.disable_allowed_hosts()
    } else {
        cfg.with_allowed_hosts(hosts)
    };
    let a = app.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(AelServer::new(a.clone())),
        Arc::new(LocalSessionManager::default()),
        cfg,
    );
    let mut mcp =
        Router::new()
            .nest_service("/mcp", mcp)
            .layer(axum::middleware::from_fn_with_state(
                inflight,
                track_in_flight,
            ));
    if let Some(token) = token {
        let bearer = bearer_auth::Bearer::new(&token, "ael");
        mcp = mcp.layer(axum::middleware::from_fn_with_state(
            bearer,
            bearer_auth::require,
        ));
    }
    Router::new()
        .route("/health", get(health))
        .with_state(app)
        .merge(mcp)
}

/// Serves until `shutdown` is cancelled. Then: stop accepting, wait for
/// workflow runs in flight (up to the grace period), interrupt the rest,
/// close MCP sessions and return.
pub async fn serve(
    app: Arc<App>,
    shutdown: CancellationToken,
    token: Option<String>,
) -> Result<(), ServeError> {
    let host = app.config.http.host.trim();
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", app.config.http.port) // IPv6 literal
    } else {
        format!("{host}:{}", app.config.http.port)
    };
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(source) => return Err(ServeError::Bind { addr, source }),
    };
    let local: SocketAddr = listener.local_addr().map_err(ServeError::LocalAddr)?;
    tracing::info!(
        %local,
        mcp_auth = if token.is_some() { "bearer token" } else { "none" },
        "listening: GET /health, MCP at /mcp"
    );
    let grace = Duration::from_millis(app.config.http.shutdown_grace_ms);
    let mcp_ct = CancellationToken::new();
    let inflight = InFlight::default();
    let router = router(app.clone(), mcp_ct.clone(), inflight.clone(), token);
    let sd = shutdown.clone();
    let server =
        axum::serve(listener, router).with_graceful_shutdown(async move { sd.cancelled().await });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        r = &mut server => return r.map_err(ServeError::Serve),
        _ = shutdown.cancelled() => {}
    }
    // New connections are refused now. Let in-flight MCP requests and
    // workflow runs finish within the grace period.
    let busy = || app.active.count() > 0 || inflight.count() > 0;
    let deadline = tokio::time::Instant::now() + grace;
    while busy() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            r = &mut server => return r.map_err(ServeError::Serve),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    if busy() {
        tracing::warn!(
            runs = app.active.count(),
            requests = inflight.count(),
            "grace period over; interrupting runs"
        );
        app.stop.cancel();
        // Interrupted runs answer their requests; let those responses go out.
        let flush = tokio::time::Instant::now() + Duration::from_millis(500);
        while busy() && tokio::time::Instant::now() < flush {
            tokio::select! {
                r = &mut server => return r.map_err(ServeError::Serve),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    }
    // Close MCP sessions (idle SSE streams) so the connections end.
    mcp_ct.cancel();
    match tokio::time::timeout(Duration::from_millis(500), &mut server).await {
        Ok(r) => r.map_err(ServeError::Serve)?,
        Err(_) => tracing::debug!("closing remaining connections"),
    }
    Ok(())
}

/// `ael health`: GET the health URL with a short timeout.
pub async fn probe(url: &str, timeout: Duration) -> Result<(u16, String), ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or(ProbeError::UnsupportedUrl)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/health"),
    };
    let fut = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|source| ProbeError::Connect {
                authority: authority.to_string(),
                source,
            })?;
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
            .ok_or(ProbeError::Malformed)?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok::<_, ProbeError>((status, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(ProbeError::Timeout)?
}
