//! Connections to the configured MCP tool servers (ael as an MCP client).

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::{ClientInitializeError, Peer, RoleClient, RunningService, ServiceExt};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ToolServerConfig, env_var};

/// Why a tool call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// No (enabled) tool server of that name.
    #[error("tool server `{0}` is not configured")]
    NotConfigured(String),
    /// The server did not finish connecting within its connect timeout.
    #[error("tool server `{0}` is still connecting")]
    Connecting(String),
    /// The server is not connected (failed or stopped).
    #[error(
        "tool server `{name}` is unavailable ({state:?}{})",
        .reason.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    Unavailable {
        /// Server name.
        name: String,
        /// Its connection state.
        state: State,
        /// The last connection error.
        reason: Option<String>,
    },
    /// The call did not answer in time.
    #[error("{server}.{tool}: timed out after {ms} ms")]
    Timeout {
        /// Server name.
        server: String,
        /// Tool name.
        tool: String,
        /// The timeout.
        ms: u128,
    },
    /// The MCP request failed.
    #[error("{server}.{tool}: {}", error_chain(error))]
    Failed {
        /// Server name.
        server: String,
        /// Tool name.
        tool: String,
        /// The protocol error (part of the message).
        error: rmcp::ServiceError,
    },
}

/// `e` with its sources ("a: b: c"), leaving out a source whose message
/// `e`'s already holds: "error sending request" alone does not say whether
/// the name did not resolve, the connection was refused or the peer closed
/// it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Why connecting to a tool server failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("environment variable {0} (bearer token) is not set")]
    TokenUnset(String),
    #[error("bearer token file {path}: {error}")]
    TokenFile { path: String, error: String },
    #[error(transparent)]
    Http(Box<ClientInitializeError>),
    #[error("cannot make an HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("no command")]
    NoCommand,
    #[error("cannot start {command}: {error}")]
    Spawn {
        command: String,
        error: std::io::Error,
    },
    #[error("no {0}")]
    NoPipe(&'static str),
    #[error("initialize failed: {0}")]
    Initialize(Box<ClientInitializeError>),
    #[error("connect timed out after {0} ms")]
    Timeout(u128),
}

/// Environment variables always passed to spawned tool servers (if set).
const BASE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TZ",
    "LANG",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Connection state of a tool server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Starting or initializing.
    Connecting,
    /// Ready for calls.
    Connected,
    /// The last attempt failed; retrying with backoff.
    Failed,
    /// Shut down.
    Stopped,
}

/// Public status of one tool server (safe to show in /health: no secrets).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Connection state.
    pub state: State,
    /// `stdio` or `http`.
    pub transport: &'static str,
    /// Whether /health needs this server.
    pub required: bool,
    /// Last connection error, as shown in /health.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Tool names the server listed.
    pub tools: Vec<String>,
    /// Successful connections so far.
    pub connects: u32,
    /// Child process id (stdio servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// One configured tool server and its live connection.
pub struct ToolServer {
    /// Name from the config.
    pub name: String,
    /// Its configuration.
    pub cfg: ToolServerConfig,
    status: watch::Sender<Status>,
    peer: Mutex<Option<Peer<RoleClient>>>,
}

impl ToolServer {
    /// Current status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(f);
    }

    fn peer(&self) -> Option<Peer<RoleClient>> {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_peer(&self, p: Option<Peer<RoleClient>>) {
        *self.peer.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// Waits while the server is connecting (bounded), then returns a peer.
    async fn ready_peer(&self, wait: Duration) -> Result<Peer<RoleClient>, ToolError> {
        let mut rx = self.status.subscribe();
        let res = tokio::time::timeout(wait, rx.wait_for(|s| s.state != State::Connecting)).await;
        if let Some(p) = self.peer() {
            return Ok(p);
        }
        let st = self.status();
        match res {
            Err(_) => Err(ToolError::Connecting(self.name.clone())),
            Ok(_) => Err(ToolError::Unavailable {
                name: self.name.clone(),
                state: st.state,
                reason: st.error,
            }),
        }
    }
}

/// Result of a successful tool call.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// The result as JSON (see [`result_value`]).
    pub value: Value,
    /// The tool reported an error (`isError`).
    pub is_error: bool,
}

/// Converts an MCP tool result to a JSON value: structured content if
/// present, else the text content parsed as JSON, else the text itself.
pub fn result_value(r: &CallToolResult) -> Value {
    if let Some(v) = &r.structured_content {
        return v.clone();
    }
    let texts: Vec<&str> = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect();
    let joined = texts.join("\n");
    match serde_json::from_str::<Value>(&joined) {
        Ok(v) if texts.len() == 1 => v,
        _ => Value::String(joined),
    }
}

/// Something that can call tools; the engine is generic over it.
pub trait ToolCaller: Send + Sync {
    fn call(
        &self,
        server: &str,
        tool: &str,
        args: Map<String, Value>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<ToolOutput, ToolError>> + Send;
}

/// The tool servers ael is a client of, each kept connected by a supervisor task.
pub struct ToolManager {
    /// Servers by name.
    pub servers: BTreeMap<String, Arc<ToolServer>>,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl ToolManager {
    /// Starts a supervisor task per enabled server (optionally only those in
    /// `only`). Connections happen in the background.
    pub fn start(config: &Config, only: Option<&HashSet<String>>) -> Arc<ToolManager> {
        let shutdown = CancellationToken::new();
        let mut servers = BTreeMap::new();
        let mut tasks = Vec::new();
        for (name, cfg) in &config.tool_servers {
            if !cfg.enabled || only.is_some_and(|o| !o.contains(name)) {
                continue;
            }
            let (tx, _) = watch::channel(Status {
                state: State::Connecting,
                transport: cfg.transport_name(),
                required: cfg.required,
                error: None,
                tools: Vec::new(),
                connects: 0,
                pid: None,
            });
            let server = Arc::new(ToolServer {
                name: name.clone(),
                cfg: cfg.clone(),
                status: tx,
                peer: Mutex::new(None),
            });
            tasks.push(tokio::spawn(supervise(server.clone(), shutdown.clone())));
            servers.insert(name.clone(), server);
        }
        Arc::new(ToolManager {
            servers,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }

    /// Waits until no server is in the `connecting` state (or `timeout`).
    pub async fn wait_settled(&self, timeout: Duration) {
        let waits = self.servers.values().map(|s| {
            let mut rx = s.status.subscribe();
            async move {
                let _ = rx.wait_for(|st| st.state != State::Connecting).await;
            }
        });
        let _ = tokio::time::timeout(timeout, futures::future::join_all(waits)).await;
    }

    /// Status of every server, by name.
    pub fn statuses(&self) -> BTreeMap<String, Status> {
        self.servers
            .iter()
            .map(|(n, s)| (n.clone(), s.status()))
            .collect()
    }

    /// True when every required server is connected.
    pub fn required_ok(&self) -> bool {
        self.servers
            .values()
            .all(|s| !s.cfg.required || s.status().state == State::Connected)
    }

    /// Stops all servers (children get EOF on stdin, then are killed).
    pub async fn shutdown(&self, deadline: Duration) {
        self.shutdown.cancel();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        if tokio::time::timeout(deadline, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            tracing::warn!(
                "tool servers did not stop within {} ms",
                deadline.as_millis()
            );
            aborts.iter().for_each(|a| a.abort());
        }
    }
}

impl ToolCaller for ToolManager {
    async fn call(
        &self,
        server: &str,
        tool: &str,
        args: Map<String, Value>,
        timeout: Option<Duration>,
    ) -> Result<ToolOutput, ToolError> {
        let srv = self
            .servers
            .get(server)
            .ok_or_else(|| ToolError::NotConfigured(server.to_string()))?;
        let peer = srv
            .ready_peer(Duration::from_millis(srv.cfg.connect_timeout_ms))
            .await?;
        let timeout = timeout.unwrap_or(Duration::from_millis(srv.cfg.call_timeout_ms));
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        let res = tokio::time::timeout(timeout, peer.call_tool(params))
            .await
            .map_err(|_| ToolError::Timeout {
                server: server.to_string(),
                tool: tool.to_string(),
                ms: timeout.as_millis(),
            })?
            .map_err(|error| ToolError::Failed {
                server: server.to_string(),
                tool: tool.to_string(),
                error,
            })?;
        Ok(ToolOutput {
            value: result_value(&res),
            is_error: res.is_error.unwrap_or(false),
        })
    }
}

/// Splits a child's log line `TIMESTAMP LEVEL message` (tracing's default
/// format) into (level, message); other lines are INFO as-is.
pub fn split_log_line(line: &str) -> (tracing::Level, &str) {
    let trimmed = line.trim_end();
    let mut rest = trimmed;
    let first = rest.split_whitespace().next().unwrap_or_default();
    if first.len() >= 20 && first.as_bytes()[0].is_ascii_digit() && first.contains('T') {
        rest = rest[first.len()..].trim_start();
    }
    let word = rest.split_whitespace().next().unwrap_or_default();
    let level = match word.to_ascii_uppercase().as_str() {
        "ERROR" => Some(tracing::Level::ERROR),
        "WARN" | "WARNING" => Some(tracing::Level::WARN),
        "INFO" => Some(tracing::Level::INFO),
        "DEBUG" => Some(tracing::Level::DEBUG),
        "TRACE" => Some(tracing::Level::TRACE),
        _ => None,
    };
    match level {
        Some(l) => (l, rest[word.len()..].trim_start()),
        None => (tracing::Level::INFO, trimmed),
    }
}

fn forward_log_line(server: &str, line: &str) {
    let (level, msg) = split_log_line(line);
    match level {
        tracing::Level::ERROR => tracing::error!(server, "{msg}"),
        tracing::Level::WARN => tracing::warn!(server, "{msg}"),
        tracing::Level::INFO => tracing::info!(server, "{msg}"),
        tracing::Level::DEBUG => tracing::debug!(server, "{msg}"),
        tracing::Level::TRACE => tracing::trace!(server, "{msg}"),
    }
}

/// A live connection.
struct Conn {
    peer: Peer<RoleClient>,
    service: tokio::task::JoinHandle<()>,
    child: Option<tokio::process::Child>,
    ct: CancellationToken,
    service_done: bool,
}

impl Conn {
    fn new(
        service: RunningService<RoleClient, ClientConfig>,
        child: Option<tokio::process::Child>,
        ct: CancellationToken,
    ) -> Conn {
        let peer = service.peer().clone();
        let service = tokio::spawn(async move {
            let _ = service.waiting().await;
        });
        Conn {
            peer,
            service,
            child,
            ct,
            service_done: false,
        }
    }
}

fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("ael", env!("CARGO_PKG_VERSION")),
    )
}

async fn connect(server: &ToolServer) -> Result<Conn, ConnectError> {
    let cfg = &server.cfg;
    let ct = CancellationToken::new();
    if let Some(url) = &cfg.url {
        use rmcp::transport::StreamableHttpClientTransport;
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        let mut tcfg = StreamableHttpClientTransportConfig::with_uri(url.clone());
        if let Some(var) = &cfg.bearer_token_env {
            let token = env_var(var).ok_or_else(|| ConnectError::TokenUnset(var.clone()))?;
            tcfg = tcfg.auth_header(token);
        }
        if let Some(path) = &cfg.bearer_token_file {
            // Read at every connect, so a rotated secret is picked up.
            let bad = |error: String| ConnectError::TokenFile {
                path: path.display().to_string(),
                error,
            };
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| bad(e.to_string()))?;
            match text.trim() {
                "" => return Err(bad("empty".into())),
                t => tcfg = tcfg.auth_header(t.to_string()),
            }
        }
        // Service names under podman resolve reliably only when asked
        // again (resolve_retry).
        let client = reqwest::Client::builder()
            .dns_resolver(resolve_retry::RetryingResolver)
            .build()
            .map_err(ConnectError::Client)?;
        let transport = StreamableHttpClientTransport::with_client(client, tcfg);
        let service = client_info()
            .serve_with_ct(transport, ct.clone())
            .await
            .map_err(|e| ConnectError::Http(Box::new(e)))?;
        return Ok(Conn::new(service, None, ct));
    }
    let command = cfg.command.as_deref().ok_or(ConnectError::NoCommand)?;
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(&cfg.args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for k in BASE_ENV {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    for k in &cfg.pass_env {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    cmd.envs(&cfg.env);
    if let Some(d) = &cfg.cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().map_err(|error| ConnectError::Spawn {
        command: command.to_string(),
        error,
    })?;
    let pid = child.id();
    let stdin = child.stdin.take().ok_or(ConnectError::NoPipe("stdin"))?;
    let stdout = child.stdout.take().ok_or(ConnectError::NoPipe("stdout"))?;
    if let Some(stderr) = child.stderr.take() {
        let name = server.name.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                forward_log_line(&name, &line);
            }
        });
    }
    server.update(|s| s.pid = pid);
    match client_info()
        .serve_with_ct((stdout, stdin), ct.clone())
        .await
    {
        Ok(service) => Ok(Conn::new(service, Some(child), ct)),
        Err(e) => {
            let _ = child.kill().await;
            Err(ConnectError::Initialize(Box::new(e)))
        }
    }
}

impl Conn {
    async fn close(mut self, server: &ToolServer) {
        self.ct.cancel();
        if !self.service_done
            && tokio::time::timeout(Duration::from_millis(500), &mut self.service)
                .await
                .is_err()
        {
            self.service.abort();
        }
        if let Some(mut child) = self.child.take() {
            // stdin is closed now; give the child a moment to exit on EOF.
            match tokio::time::timeout(Duration::from_millis(300), child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill().await;
                }
            }
            tracing::debug!(server = %server.name, "child stopped");
        }
    }
}

async fn supervise(server: Arc<ToolServer>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    loop {
        server.update(|s| {
            s.state = State::Connecting;
        });
        let timeout = Duration::from_millis(server.cfg.connect_timeout_ms);
        let attempt = tokio::select! {
            r = tokio::time::timeout(timeout, connect(&server)) => r.unwrap_or_else(|_| Err(ConnectError::Timeout(timeout.as_millis()))),
            _ = shutdown.cancelled() => break,
        };
        match attempt {
            Ok(conn) => {
                let peer = conn.peer.clone();
                let tools = match tokio::time::timeout(timeout, peer.list_all_tools()).await {
                    Ok(Ok(t)) => t.into_iter().map(|t| t.name.to_string()).collect(),
                    Ok(Err(e)) => {
                        tracing::warn!(server = %server.name, "tools/list failed: {e}");
                        Vec::new()
                    }
                    Err(_) => Vec::new(),
                };
                tracing::info!(server = %server.name, tools = tools.len(), "tool server connected");
                server.set_peer(Some(peer));
                server.update(|s| {
                    s.state = State::Connected;
                    s.error = None;
                    s.tools = tools;
                    s.connects += 1;
                });
                backoff = Duration::from_millis(500);
                let mut conn = conn;
                let stop = tokio::select! {
                    _ = &mut conn.service => {
                        conn.service_done = true;
                        false
                    }
                    _ = shutdown.cancelled() => true,
                };
                server.set_peer(None);
                conn.close(&server).await;
                if stop {
                    server.update(|s| {
                        s.state = State::Stopped;
                        s.pid = None;
                    });
                    break;
                }
                tracing::warn!(server = %server.name, "tool server connection closed; reconnecting");
                server.update(|s| {
                    s.state = State::Failed;
                    s.error = Some("connection closed".into());
                    s.pid = None;
                });
            }
            Err(e) => {
                tracing::warn!(server = %server.name, "tool server unavailable: {}", error_chain(&e));
                server.update(|s| {
                    s.state = State::Failed;
                    s.error = Some(error_chain(&e));
                    s.pid = None;
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    server.update(|s| {
        if s.state != State::Failed {
            s.state = State::Stopped;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock;

    #[test]
    fn child_log_lines_keep_their_level() {
        let (l, m) = split_log_line("2026-11-23T18:34:38.440352Z  WARN native_tools: low disk\n");
        assert_eq!(l, tracing::Level::WARN);
        assert_eq!(m, "native_tools: low disk");
        assert_eq!(
            split_log_line("plain text"),
            (tracing::Level::INFO, "plain text")
        );
        assert_eq!(split_log_line("DEBUG x").0, tracing::Level::DEBUG);
    }

    #[test]
    fn result_values() {
        let r = CallToolResult::structured(serde_json::json!({"a": 1}));
        assert_eq!(result_value(&r), serde_json::json!({"a": 1}));
        let r = CallToolResult::success(vec![ContentBlock::text("{\"b\": 2}")]);
        assert_eq!(result_value(&r), serde_json::json!({"b": 2}));
        let r = CallToolResult::success(vec![ContentBlock::text("hello")]);
        assert_eq!(result_value(&r), serde_json::json!("hello"));
    }
}
