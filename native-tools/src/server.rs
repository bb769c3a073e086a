//! The MCP server: shared context, tool router and handler (tools, files
//! as resources, logging).

// MCP logging is deprecated by SEP-2577 but still what 2025-xx clients use.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::{
    ErrorData, Json, RoleServer, ServerHandler,
    handler::server::tool::ToolCallContext,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ServerCapabilities,
        ServerConfig, SetLevelRequestParams,
    },
    service::RequestContext,
    tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fs_tools::{self, *};
use crate::kafka::{self, Kafka, KafkaError};
use crate::limits::OutOfRange;
use crate::mcp_log::SessionLog;
use crate::net::{self, HttpFetchArgs, HttpFetchResult, NetError, TcpCheckArgs, TcpCheckResult};
use crate::paths::Roots;
use crate::progress::Monitor;
use crate::resources;
use crate::tls::TlsError;
use crate::upstream::{self, Firecrawl, Ollama, OllamaHostError, UpstreamError};

/// Tools that exist only when Firecrawl is configured.
pub const FIRECRAWL_TOOLS: &[&str] = &["firecrawl_scrape", "firecrawl_crawl"];
/// Tools that exist only when Ollama is configured.
pub const OLLAMA_TOOLS: &[&str] = &["ollama_generate", "ollama_list_models"];

/// A tool error; its text is what the MCP client sees (as an `isError`
/// result with one text block).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// fs_* tools.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// http_fetch.
    #[error(transparent)]
    Net(#[from] NetError),
    /// tcp_check bounds.
    #[error(transparent)]
    Limit(#[from] OutOfRange),
    /// kafka_* tools.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// firecrawl_* and ollama_* tools.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A Firecrawl tool without FIRECRAWL_API_KEY.
    #[error("Firecrawl is not configured: FIRECRAWL_API_KEY is not set")]
    FirecrawlNotConfigured,
    /// An Ollama tool without OLLAMA_HOST.
    #[error("Ollama is not configured: OLLAMA_HOST is not set")]
    OllamaNotConfigured,
    /// An Ollama tool with an unusable OLLAMA_HOST.
    #[error(transparent)]
    OllamaHost(#[from] OllamaHostError),
    /// dns_resolve did not answer in time.
    #[error("resolving {0:?} timed out after 10s")]
    DnsTimeout(String),
    /// dns_resolve failed.
    #[error("cannot resolve {host:?}: {error}")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver error (part of the message).
        error: std::io::Error,
    },
    /// A blocking filesystem task panicked or was cancelled.
    #[error("{tool} failed: {error}")]
    Join {
        /// Tool name.
        tool: &'static str,
        /// The task error (part of the message).
        error: tokio::task::JoinError,
    },
}

impl rmcp::model::IntoContents for ToolError {
    fn into_contents(self) -> Vec<rmcp::model::ContentBlock> {
        vec![rmcp::model::ContentBlock::text(self.to_string())]
    }
}

/// Process-wide configuration and clients shared by all sessions.
#[derive(Debug)]
pub struct Context {
    /// Filesystem roots.
    pub roots: Roots,
    /// Shared HTTP client.
    pub http: reqwest::Client,
    /// Kafka connection (lazy).
    pub kafka: Kafka,
    /// Firecrawl, when FIRECRAWL_API_KEY is set.
    pub firecrawl: Option<Firecrawl>,
    /// Ollama, when OLLAMA_HOST is set (an error when it is unusable).
    pub ollama: Option<Result<Ollama, OllamaHostError>>,
}

impl Context {
    /// Reads the tool configuration from the environment.
    pub fn from_env(roots: Roots) -> Result<Self, TlsError> {
        for r in roots.list() {
            tracing::info!(root = %r.given.display(), "filesystem root");
        }
        let kafka = Kafka::from_env();
        match kafka.bootstrap() {
            Some(b) => tracing::info!(bootstrap = %b.join(","), "kafka tools enabled"),
            None => tracing::info!("KAFKA_BOOTSTRAP_SERVERS not set: kafka tools will report that"),
        }
        let firecrawl = Firecrawl::from_env();
        match &firecrawl {
            Some(f) => tracing::info!(base = %f.base(), "firecrawl tools enabled"),
            None => tracing::info!("FIRECRAWL_API_KEY not set: firecrawl tools disabled"),
        }
        let ollama = Ollama::from_env();
        match &ollama {
            Some(Ok(o)) => tracing::info!(host = %o.base(), "ollama tools enabled"),
            Some(Err(e)) => tracing::warn!(error = %e, "OLLAMA_HOST is invalid"),
            None => tracing::info!("OLLAMA_HOST not set: ollama tools disabled"),
        }
        Ok(Self {
            roots,
            http: crate::tls::http_client()?,
            kafka,
            firecrawl,
            ollama,
        })
    }
}

// Arguments of dns_resolve. A doc comment here would change the tool schema.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsResolveArgs {
    /// Host name (or literal IP address) to resolve.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
}

// Result of dns_resolve. A doc comment here would change the output schema.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DnsResolveResult {
    pub host: String,
    /// Resolved addresses, deduplicated, in resolver order.
    pub addresses: Vec<String>,
}

/// What native-tools tells clients it is for (`instructions` of `initialize`).
const INSTRUCTIONS: &str = "native-tools: tools for filesystem access confined to the configured roots \
(fs_read, fs_write, fs_list, fs_stat, fs_search, fs_mkdir, fs_move, fs_delete), network checks and requests \
(dns_resolve, tcp_check, http_fetch), Kafka (kafka_list_topics, kafka_produce, kafka_consume) and, when \
configured, Firecrawl and Ollama. The files under the roots are also resources (file:// URIs, up to 16 MiB). \
http_fetch and fs_search report progress when given a progress token and stop on notifications/cancelled; \
logging/setLevel streams native-tools' log lines.";

/// A progress/cancellation monitor for one tool call.
fn monitor(ctx: &RequestContext<RoleServer>) -> Monitor {
    let m = Monitor::new(ctx.ct.clone());
    match ctx.meta.get_progress_token() {
        Some(token) => m.with_progress(ctx.peer.clone(), token),
        None => m,
    }
}

/// The MCP server (one per session) over the shared [`Context`].
#[derive(Debug, Clone)]
pub struct NativeTools {
    ctx: Arc<Context>,
    tool_router: ToolRouter<Self>,
    log: Arc<SessionLog>,
}

impl NativeTools {
    /// A server with the optional tools that are configured.
    pub fn new(ctx: Arc<Context>) -> Self {
        let mut tool_router = Self::tool_router();
        if ctx.firecrawl.is_none() {
            for t in FIRECRAWL_TOOLS {
                tool_router.remove_route(t);
            }
        }
        if ctx.ollama.is_none() {
            for t in OLLAMA_TOOLS {
                tool_router.remove_route(t);
            }
        }
        Self {
            ctx,
            tool_router,
            log: Arc::new(SessionLog::default()),
        }
    }

    fn firecrawl(&self) -> Result<&Firecrawl, ToolError> {
        self.ctx
            .firecrawl
            .as_ref()
            .ok_or(ToolError::FirecrawlNotConfigured)
    }

    fn ollama(&self) -> Result<&Ollama, ToolError> {
        match &self.ctx.ollama {
            Some(Ok(o)) => Ok(o),
            Some(Err(e)) => Err(e.clone().into()),
            None => Err(ToolError::OllamaNotConfigured),
        }
    }

    /// Run a blocking filesystem operation on the blocking pool.
    async fn fs<T, F>(&self, name: &'static str, f: F) -> Result<Json<T>, ToolError>
    where
        T: Send + 'static,
        F: FnOnce(&Roots) -> Result<T, FsError> + Send + 'static,
    {
        let ctx = self.ctx.clone();
        let r = tokio::task::spawn_blocking(move || f(&ctx.roots))
            .await
            .map_err(|error| ToolError::Join { tool: name, error })?;
        if let Err(e) = &r {
            tracing::debug!(tool = name, error = %e, "tool error");
        }
        Ok(Json(r?))
    }
}

#[tool_router]
impl NativeTools {
    #[tool(
        name = "fs_read",
        description = "Read a file inside the allowed roots. Returns UTF-8 text (or base64 for binary data), truncated to max_bytes."
    )]
    async fn fs_read(
        &self,
        Parameters(a): Parameters<FsReadArgs>,
    ) -> Result<Json<FsReadResult>, ToolError> {
        self.fs("fs_read", move |r| fs_tools::read(r, a)).await
    }

    #[tool(
        name = "fs_write",
        description = "Write UTF-8 text to a file inside the allowed roots, replacing existing content. Set create_dirs to create missing parent directories."
    )]
    async fn fs_write(
        &self,
        Parameters(a): Parameters<FsWriteArgs>,
    ) -> Result<Json<FsWriteResult>, ToolError> {
        self.fs("fs_write", move |r| fs_tools::write(r, a)).await
    }

    #[tool(
        name = "fs_list",
        description = "List the entries of a directory inside the allowed roots (name, type, size), sorted by name."
    )]
    async fn fs_list(
        &self,
        Parameters(a): Parameters<PathArgs>,
    ) -> Result<Json<FsListResult>, ToolError> {
        self.fs("fs_list", move |r| fs_tools::list(r, a)).await
    }

    #[tool(
        name = "fs_stat",
        description = "Describe a path inside the allowed roots: existence, type, size, mode, modification time. Symlinks are not followed."
    )]
    async fn fs_stat(
        &self,
        Parameters(a): Parameters<PathArgs>,
    ) -> Result<Json<FsStatResult>, ToolError> {
        self.fs("fs_stat", move |r| fs_tools::stat(r, a)).await
    }

    #[tool(
        name = "fs_search",
        description = "Recursively find paths under a directory whose relative path (or, for patterns without '/', file name) matches a glob pattern. Symlinked directories are not descended."
    )]
    async fn fs_search(
        &self,
        Parameters(a): Parameters<FsSearchArgs>,
        rc: RequestContext<RoleServer>,
    ) -> Result<Json<FsSearchResult>, ToolError> {
        let m = monitor(&rc);
        let sent = m.clone();
        let r = self
            .fs("fs_search", move |r| fs_tools::search(r, a, &m))
            .await;
        sent.flush().await;
        r
    }

    #[tool(
        name = "fs_mkdir",
        description = "Create a directory (and missing parents) inside the allowed roots."
    )]
    async fn fs_mkdir(
        &self,
        Parameters(a): Parameters<PathArgs>,
    ) -> Result<Json<FsMkdirResult>, ToolError> {
        self.fs("fs_mkdir", move |r| fs_tools::mkdir(r, a)).await
    }

    #[tool(
        name = "fs_move",
        description = "Move or rename a file or directory; both ends must be inside the allowed roots and the destination must not exist."
    )]
    async fn fs_move(
        &self,
        Parameters(a): Parameters<FsMoveArgs>,
    ) -> Result<Json<FsMoveResult>, ToolError> {
        self.fs("fs_move", move |r| fs_tools::mv(r, a)).await
    }

    #[tool(
        name = "fs_delete",
        description = "Delete a file, symlink or empty directory inside the allowed roots; set recursive to delete a directory tree. Roots themselves cannot be deleted."
    )]
    async fn fs_delete(
        &self,
        Parameters(a): Parameters<FsDeleteArgs>,
    ) -> Result<Json<FsDeleteResult>, ToolError> {
        self.fs("fs_delete", move |r| fs_tools::delete(r, a)).await
    }

    #[tool(
        name = "dns_resolve",
        description = "Resolve a host name to its IP addresses (A and AAAA) using the system resolver."
    )]
    async fn dns_resolve(
        &self,
        Parameters(args): Parameters<DnsResolveArgs>,
    ) -> Result<Json<DnsResolveResult>, ToolError> {
        let lookup = tokio::net::lookup_host((args.host.as_str(), 0));
        let addrs = tokio::time::timeout(std::time::Duration::from_secs(10), lookup)
            .await
            .map_err(|_| ToolError::DnsTimeout(args.host.clone()))?
            .map_err(|error| ToolError::Dns {
                host: args.host.clone(),
                error,
            })?;
        let mut addresses: Vec<String> = Vec::new();
        for a in addrs {
            let ip = a.ip().to_string();
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
        Ok(Json(DnsResolveResult {
            host: args.host,
            addresses,
        }))
    }

    #[tool(
        name = "http_fetch",
        description = "Make an HTTP(S) request and return status, headers and body. Bounded by max_bytes (body truncated), timeout_ms (overall deadline) and max_redirects (exceeding it is an error)."
    )]
    async fn http_fetch(
        &self,
        Parameters(a): Parameters<HttpFetchArgs>,
        rc: RequestContext<RoleServer>,
    ) -> Result<Json<HttpFetchResult>, ToolError> {
        let url = a.url.clone();
        let m = monitor(&rc);
        let r = net::http_fetch(&self.ctx.http, a, &m).await;
        m.flush().await;
        match &r {
            Ok(f) => tracing::debug!(%url, status = f.status, bytes = f.bytes, "http_fetch done"),
            Err(e) => tracing::debug!(%url, error = %e, "http_fetch failed"),
        }
        Ok(Json(r?))
    }

    #[tool(
        name = "tcp_check",
        description = "Check whether a TCP port accepts connections. Unreachable ports are reported with open=false and the reason, not as errors."
    )]
    async fn tcp_check(
        &self,
        Parameters(a): Parameters<TcpCheckArgs>,
    ) -> Result<Json<TcpCheckResult>, ToolError> {
        Ok(Json(net::tcp_check(a).await?))
    }

    #[tool(
        name = "kafka_list_topics",
        description = "List Kafka topics and their partitions (KAFKA_BOOTSTRAP_SERVERS)."
    )]
    async fn kafka_list_topics(
        &self,
        Parameters(_a): Parameters<kafka::ListTopicsArgs>,
    ) -> Result<Json<kafka::ListTopicsResult>, ToolError> {
        Ok(Json(self.ctx.kafka.list_topics().await?))
    }

    #[tool(
        name = "kafka_produce",
        description = "Produce one message to a Kafka topic partition and return its offset. Missing topics are created (1 partition, unless KAFKA_AUTO_CREATE_TOPICS=false)."
    )]
    async fn kafka_produce(
        &self,
        Parameters(a): Parameters<kafka::ProduceArgs>,
    ) -> Result<Json<kafka::ProduceResult>, ToolError> {
        Ok(Json(self.ctx.kafka.produce(a).await?))
    }

    #[tool(
        name = "kafka_consume",
        description = "Read up to max_messages messages from a Kafka topic partition starting at offset (default earliest), waiting at most timeout_ms. Does not commit consumer offsets."
    )]
    async fn kafka_consume(
        &self,
        Parameters(a): Parameters<kafka::ConsumeArgs>,
    ) -> Result<Json<kafka::ConsumeResult>, ToolError> {
        Ok(Json(self.ctx.kafka.consume(a).await?))
    }

    #[tool(
        name = "firecrawl_scrape",
        description = "Scrape one web page with Firecrawl (FIRECRAWL_API_KEY) and return the requested formats (default markdown)."
    )]
    async fn firecrawl_scrape(
        &self,
        Parameters(a): Parameters<upstream::ScrapeArgs>,
    ) -> Result<Json<upstream::ScrapeResult>, ToolError> {
        Ok(Json(self.firecrawl()?.scrape(&self.ctx.http, a).await?))
    }

    #[tool(
        name = "firecrawl_crawl",
        description = "Crawl a site with Firecrawl starting at url (up to limit pages), wait up to timeout_ms for completion and return the pages."
    )]
    async fn firecrawl_crawl(
        &self,
        Parameters(a): Parameters<upstream::CrawlArgs>,
    ) -> Result<Json<upstream::CrawlResult>, ToolError> {
        Ok(Json(self.firecrawl()?.crawl(&self.ctx.http, a).await?))
    }

    #[tool(
        name = "ollama_generate",
        description = "Generate a completion with an Ollama model (OLLAMA_HOST), non-streaming."
    )]
    async fn ollama_generate(
        &self,
        Parameters(a): Parameters<upstream::GenerateArgs>,
    ) -> Result<Json<upstream::GenerateResult>, ToolError> {
        Ok(Json(self.ollama()?.generate(&self.ctx.http, a).await?))
    }

    #[tool(
        name = "ollama_list_models",
        description = "List the models available on the Ollama server (OLLAMA_HOST)."
    )]
    async fn ollama_list_models(
        &self,
        Parameters(_a): Parameters<upstream::ListModelsArgs>,
    ) -> Result<Json<upstream::ListModelsResult>, ToolError> {
        Ok(Json(self.ollama()?.list_models(&self.ctx.http).await?))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NativeTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_resources()
                .enable_tools()
                .build(),
        )
        .with_server_info(
            Implementation::new("native-tools", env!("CARGO_PKG_VERSION"))
                .with_title("native-tools")
                .with_description(env!("CARGO_PKG_DESCRIPTION")),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // notifications/cancelled: drop the call (an HTTP request, a Kafka
        // fetch, ... stops with it; fs_search also watches the token).
        let ct = context.ct.clone();
        let name = request.name.clone();
        let call = self
            .tool_router
            .call(ToolCallContext::new(self, request, context));
        tokio::select! {
            r = call => r,
            _ = ct.cancelled() => {
                tracing::debug!(tool = %name, "call cancelled by the client");
                Ok(CallToolResult::error(vec![ContentBlock::text("cancelled by the client")]).into())
            }
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log.set_level(request.level, context.peer);
        Ok(())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let ctx = self.ctx.clone();
        let list = tokio::task::spawn_blocking(move || resources::list(&ctx.roots))
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ListResourcesResult::with_all_items(list))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let ctx = self.ctx.clone();
        let uri = request.uri.clone();
        let r = tokio::task::spawn_blocking(move || resources::read(&ctx.roots, &uri))
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        match r {
            Ok(c) => Ok(ReadResourceResult::new(vec![c]).into()),
            Err(e) => {
                tracing::debug!(uri = %request.uri, error = %e, "resource refused");
                let data = Some(serde_json::json!({"uri": request.uri}));
                Err(if e.is_not_found() {
                    ErrorData::resource_not_found(e.to_string(), data)
                } else {
                    ErrorData::invalid_params(e.to_string(), data)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &[&str] = &[
        "dns_resolve",
        "fs_delete",
        "fs_list",
        "fs_mkdir",
        "fs_move",
        "fs_read",
        "fs_search",
        "fs_stat",
        "fs_write",
        "http_fetch",
        "kafka_consume",
        "kafka_list_topics",
        "kafka_produce",
        "tcp_check",
    ];

    fn ctx(firecrawl: bool, ollama: bool) -> (tempfile::TempDir, Arc<Context>) {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots::new(&[d.path().to_path_buf()]).unwrap();
        let c = Context {
            roots,
            http: crate::tls::http_client().unwrap(),
            kafka: Kafka::new(None, true),
            firecrawl: firecrawl.then(|| Firecrawl::new("http://127.0.0.1:9", "k")),
            ollama: ollama
                .then(|| upstream::normalize_ollama_host("127.0.0.1:9").map(Ollama::from_base)),
        };
        (d, Arc::new(c))
    }

    fn names(s: &NativeTools) -> Vec<String> {
        let mut v: Vec<String> = s
            .tool_router
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn optional_tools_follow_configuration() {
        let (_d, c) = ctx(false, false);
        assert_eq!(names(&NativeTools::new(c)), BASE);
        let (_d, c) = ctx(true, true);
        let all = names(&NativeTools::new(c));
        for t in FIRECRAWL_TOOLS.iter().chain(OLLAMA_TOOLS) {
            assert!(all.iter().any(|n| n == t), "{t} missing");
        }
        assert_eq!(all.len(), BASE.len() + 4);
    }

    #[test]
    fn schemas_are_strict_objects_with_descriptions() {
        let (_d, c) = ctx(true, true);
        for t in NativeTools::new(c).tool_router.list_all() {
            let schema = serde_json::Value::Object((*t.input_schema).clone());
            assert_eq!(schema["type"], "object", "{}", t.name);
            assert_eq!(schema["additionalProperties"], false, "{}", t.name);
            assert!(
                t.description.as_deref().unwrap_or("").len() > 20,
                "{}",
                t.name
            );
            assert!(t.output_schema.is_some(), "{} has no output schema", t.name);
        }
    }
}
