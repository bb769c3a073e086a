//! native-tools: an MCP server exposing filesystem, network, Kafka, Firecrawl
//! and Ollama tools over stdio (default) or streamable HTTP.

mod fs_tools;
mod kafka;
mod limits;
mod mcp_log;
mod net;
mod paths;
mod progress;
mod resources;
mod server;
mod text;
mod tls;
mod upstream;

use clap::{Parser, Subcommand, ValueEnum};
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

/// Why native-tools exits with an error (printed as `native-tools: <error>`).
#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error(transparent)]
    Roots(#[from] paths::PathError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Token(#[from] bearer_auth::TokenError),
    #[error("health check {url} failed: {chain}")]
    HealthRequest { url: String, chain: String },
    #[error("health check {url}: HTTP {status}")]
    HealthStatus { url: String, status: u16 },
    #[error("MCP stdio service failed: {0}")]
    Stdio(tokio::task::JoinError),
    #[error("cannot bind {host}:{port}: {error}")]
    Bind {
        host: String,
        port: u16,
        error: std::io::Error,
    },
    #[error("{0}")]
    LocalAddr(std::io::Error),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Transport {
    Stdio,
    Http,
}

#[derive(Debug, Parser)]
#[command(
    name = "native-tools",
    version,
    about = "MCP server for native tools (filesystem, network, kafka, firecrawl, ollama)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// MCP transport: stdio (default) or streamable HTTP at /mcp.
    #[arg(long, value_enum, default_value_t = Transport::Stdio, env = "NATIVE_TOOLS_TRANSPORT")]
    transport: Transport,
    /// Address to bind with --transport http.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1",
        env = "NATIVE_TOOLS_HOST"
    )]
    host: String,
    /// Port to bind with --transport http.
    #[arg(long, global = true, default_value_t = 8083, env = "NATIVE_TOOLS_PORT")]
    port: u16,
    /// Filesystem root the fs_* tools are confined to (repeatable). Default: NATIVE_TOOLS_ROOTS
    /// (colon-separated) or the current directory.
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<std::path::PathBuf>,
    /// Host header values accepted by the HTTP transport (repeatable or comma-separated;
    /// "*" accepts any host). Default: localhost, 127.0.0.1, ::1, native-tools and $HOSTNAME.
    #[arg(
        long = "allowed-host",
        value_name = "HOST",
        env = "NATIVE_TOOLS_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Probe GET /health of a running HTTP server (for container health checks);
    /// exits 0 when healthy, 1 otherwise.
    Health {
        /// Health URL (default: http://127.0.0.1:<--port>/health, or --host when it is not a wildcard).
        #[arg(long)]
        url: Option<String>,
        /// Timeout in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
}

fn health_url(cli: &Cli, url: Option<&str>) -> String {
    if let Some(u) = url {
        return u.to_string();
    }
    let host = match cli.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    format!("http://{host}:{}/health", cli.port)
}

async fn health(url: &str, timeout_ms: u64) -> Result<(), MainError> {
    let client = tls::http_client()?;
    let resp = client
        .get(url)
        .timeout(std::time::Duration::from_millis(timeout_ms.max(1)))
        .send()
        .await
        .map_err(|e| MainError::HealthRequest {
            url: url.to_string(),
            chain: net::error_chain(&e),
        })?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    println!("{}", body.trim());
    if status.is_success() {
        Ok(())
    } else {
        Err(MainError::HealthStatus {
            url: url.to_string(),
            status: status.as_u16(),
        })
    }
}

/// The log filter for `LOG_LEVEL`: a level (`warning`, `critical` and
/// `fatal` are accepted too) or `target=level` directives separated by commas
/// (`native_tools=debug,rmcp=warn`); anything else means `info`.
///
/// A `Targets` filter reads the same directives as tracing's `EnvFilter`
/// without its regex engine, which cost the payload's cold build more than
/// half a minute (decision 0002). Span and field filters (`[span]{x=1}`) are
/// not supported and fall back to `info`.
fn log_filter(level: Option<&str>) -> tracing_subscriber::filter::Targets {
    let level = level
        .map(|l| l.trim().to_ascii_lowercase())
        .map(|l| match l.as_str() {
            "warning" => "warn".to_string(),
            "critical" | "fatal" => "error".to_string(),
            _ => l,
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "info".to_string());
    level.parse().unwrap_or_else(|_| {
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
    })
}

fn init_logging() {
    let filter = log_filter(std::env::var("LOG_LEVEL").ok().as_deref());
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // stderr gets what LOG_LEVEL allows; MCP clients choose their own level
    // (logging/setLevel) over native-tools' events down to debug.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(filter);
    let mcp = mcp_log::McpLogLayer::from_env()
        .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG);
    tracing_subscriber::registry().with(stderr).with(mcp).init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("native-tools: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli));
    // Do not wait for the blocking stdin reader thread.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("native-tools: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn configured_roots(cli: &Cli) -> Result<paths::Roots, paths::PathError> {
    let dirs = if !cli.roots.is_empty() {
        cli.roots.clone()
    } else if let Some(v) = std::env::var("NATIVE_TOOLS_ROOTS")
        .ok()
        .filter(|v| !v.is_empty())
    {
        paths::split_roots(&v)
    } else {
        vec![std::path::PathBuf::from(".")]
    };
    paths::Roots::new(&dirs)
}

fn allowed_hosts(cli: &Cli) -> Vec<String> {
    let given: Vec<String> = cli
        .allowed_hosts
        .iter()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if !given.is_empty() {
        return given;
    }
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1", "native-tools"]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    if let Ok(h) = std::env::var("HOSTNAME")
        && !h.is_empty()
    {
        hosts.push(h);
    }
    if cli.host != "0.0.0.0" && cli.host != "::" && !hosts.contains(&cli.host) {
        hosts.push(cli.host.clone());
    }
    hosts
}

async fn run(cli: Cli) -> Result<(), MainError> {
    if let Some(Command::Health { url, timeout_ms }) = &cli.command {
        return health(&health_url(&cli, url.as_deref()), *timeout_ms).await;
    }
    let roots = configured_roots(&cli)?;
    let ctx = std::sync::Arc::new(server::Context::from_env(roots)?);
    let shutdown = CancellationToken::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    match cli.transport {
        Transport::Stdio => {
            tracing::info!("serving MCP over stdio");
            let service = tokio::select! {
                r = server::NativeTools::new(ctx.clone()).serve(rmcp::transport::stdio()) => match r {
                    Ok(s) => s,
                    Err(e) => {
                        // Typically stdin closed before initialization finished.
                        tracing::info!("MCP stdio session ended before initialization: {e}");
                        return Ok(());
                    }
                },
                () = &mut signal => {
                    tracing::info!("signal received, exiting");
                    return Ok(());
                }
            };
            let ct = service.cancellation_token();
            tokio::select! {
                r = service.waiting() => {
                    r.map_err(MainError::Stdio)?;
                    tracing::info!("stdin closed, exiting");
                }
                () = &mut signal => {
                    tracing::info!("signal received, exiting");
                    ct.cancel();
                }
            }
            Ok(())
        }
        Transport::Http => {
            let token = bearer_auth::token_from_env("NATIVE_TOOLS_HTTP")?;
            use rmcp::transport::streamable_http_server::{
                StreamableHttpServerConfig, StreamableHttpService,
                session::local::LocalSessionManager,
            };
            let hosts = allowed_hosts(&cli);
            // fs_write accepts 16 MiB of content; allow for JSON escaping.
            let config = StreamableHttpServerConfig::default()
                .with_cancellation_token(shutdown.child_token())
                .with_max_request_body_bytes(48 * 1024 * 1024);
            let config = if hosts.iter().any(|h| h == "*") {
                config.disable_allowed_hosts()
            } else {
                config.with_allowed_hosts(hosts.clone())
            };
            let service: StreamableHttpService<server::NativeTools, LocalSessionManager> =
                StreamableHttpService::new(
                    {
                        let ctx = ctx.clone();
                        move || Ok(server::NativeTools::new(ctx.clone()))
                    },
                    Default::default(),
                    config,
                );
            let mut mcp = axum::Router::new().nest_service("/mcp", service);
            if let Some(token) = &token {
                mcp = mcp.layer(axum::middleware::from_fn_with_state(
                    bearer_auth::Bearer::new(token, "native-tools"),
                    bearer_auth::require,
                ));
            }
            let app = axum::Router::new()
                .route(
                    "/health",
                    axum::routing::get(|| async {
                        axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
                    }),
                )
                .merge(mcp);
            let bind_host = cli.host.trim_start_matches('[').trim_end_matches(']');
            let listener = tokio::net::TcpListener::bind((bind_host, cli.port))
                .await
                .map_err(|error| MainError::Bind {
                    host: cli.host.clone(),
                    port: cli.port,
                    error,
                })?;
            let local = listener.local_addr().map_err(MainError::LocalAddr)?;
            tracing::info!(
                %local,
                allowed_hosts = ?hosts,
                mcp_auth = if token.is_some() { "bearer token" } else { "none" },
                "serving MCP over streamable HTTP at /mcp"
            );
            // Machine-readable line for launchers that pass --port 0.
            eprintln!("native-tools listening on http://{local}/mcp");
            let sd = shutdown.clone();
            let server = axum::serve(listener, app)
                .with_graceful_shutdown(async move { sd.cancelled_owned().await })
                .into_future();
            tokio::pin!(server);
            tokio::select! {
                r = &mut server => r.map_err(MainError::Serve),
                () = &mut signal => {
                    tracing::info!("signal received, shutting down");
                    shutdown.cancel();
                    // Open streams (SSE) get a short grace period, then we exit anyway.
                    match tokio::time::timeout(std::time::Duration::from_secs(3), &mut server).await {
                        Ok(r) => r.map_err(MainError::Serve),
                        Err(_) => {
                            tracing::warn!("connections still open after 3s; exiting");
                            Ok(())
                        }
                    }
                }
            }
        }
    }
}

/// Registers SIGTERM and SIGINT now (so a signal that arrives before the
/// returned future is first polled is caught, not fatal) and returns a future
/// that resolves on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match streams {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                tracing::error!("cannot install signal handlers");
                std::future::pending::<()>().await
            }
        }
    }
}

#[cfg(test)]
mod log_filter_tests {
    use super::log_filter;
    use tracing::level_filters::LevelFilter;

    fn default(level: Option<&str>) -> Option<LevelFilter> {
        log_filter(level).default_level()
    }

    fn enabled(level: Option<&str>, target: &str, at: tracing::Level) -> bool {
        log_filter(level).would_enable(target, &at)
    }

    #[test]
    fn log_level_names_and_directives() {
        assert_eq!(default(None), Some(LevelFilter::INFO));
        assert_eq!(default(Some(" ")), Some(LevelFilter::INFO));
        assert_eq!(default(Some("WARNING")), Some(LevelFilter::WARN));
        assert_eq!(default(Some("fatal")), Some(LevelFilter::ERROR));
        assert_eq!(default(Some("trace")), Some(LevelFilter::TRACE));
        let d = Some("native_tools=debug,rmcp=warn");
        assert!(enabled(d, "native_tools::kafka", tracing::Level::DEBUG));
        assert!(!enabled(d, "native_tools", tracing::Level::TRACE));
        assert!(!enabled(d, "rmcp::service", tracing::Level::INFO));
        assert!(enabled(d, "rmcp::service", tracing::Level::WARN));
        assert!(!enabled(d, "hyper", tracing::Level::ERROR));
        let d = Some("info,rskafka=off");
        assert!(enabled(d, "native_tools", tracing::Level::INFO));
        assert!(!enabled(d, "rskafka::client", tracing::Level::ERROR));
        // Not a directive: the default.
        let d = Some("native_tools=loud");
        assert!(enabled(d, "native_tools", tracing::Level::INFO));
        assert!(!enabled(d, "native_tools", tracing::Level::DEBUG));
    }
}
