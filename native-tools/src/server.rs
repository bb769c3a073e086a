//! The MCP server: shared context, tool router and handler.

use std::sync::Arc;

use rmcp::{
    Json, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fs_tools::{self, *};
use crate::kafka::{self, Kafka};
use crate::net::{self, HttpFetchArgs, HttpFetchResult, TcpCheckArgs, TcpCheckResult};
use crate::paths::Roots;
use crate::upstream::{self, Firecrawl, Ollama};

pub const FIRECRAWL_TOOLS: &[&str] = &["firecrawl_scrape", "firecrawl_crawl"];
pub const OLLAMA_TOOLS: &[&str] = &["ollama_generate", "ollama_list_models"];

/// Process-wide configuration and clients shared by all sessions.
#[derive(Debug)]
pub struct Context {
    pub roots: Roots,
    pub http: reqwest::Client,
    pub kafka: Kafka,
    pub firecrawl: Option<Firecrawl>,
    pub ollama: Option<Result<Ollama, String>>,
}

impl Context {
    pub fn from_env(roots: Roots) -> Result<Self, String> {
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsResolveArgs {
    /// Host name (or literal IP address) to resolve.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DnsResolveResult {
    pub host: String,
    /// Resolved addresses, deduplicated, in resolver order.
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NativeTools {
    ctx: Arc<Context>,
    tool_router: ToolRouter<Self>,
}

impl NativeTools {
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
        Self { ctx, tool_router }
    }

    fn firecrawl(&self) -> Result<&Firecrawl, String> {
        self.ctx
            .firecrawl
            .as_ref()
            .ok_or_else(|| "Firecrawl is not configured: FIRECRAWL_API_KEY is not set".to_string())
    }

    fn ollama(&self) -> Result<&Ollama, String> {
        match &self.ctx.ollama {
            Some(Ok(o)) => Ok(o),
            Some(Err(e)) => Err(e.clone()),
            None => Err("Ollama is not configured: OLLAMA_HOST is not set".to_string()),
        }
    }

    /// Run a blocking filesystem operation on the blocking pool.
    async fn fs<T, F>(&self, name: &'static str, f: F) -> Result<Json<T>, String>
    where
        T: Send + 'static,
        F: FnOnce(&Roots) -> Result<T, String> + Send + 'static,
    {
        let ctx = self.ctx.clone();
        let r = tokio::task::spawn_blocking(move || f(&ctx.roots))
            .await
            .map_err(|e| format!("{name} failed: {e}"))?;
        if let Err(e) = &r {
            tracing::debug!(tool = name, error = %e, "tool error");
        }
        r.map(Json)
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
    ) -> Result<Json<FsReadResult>, String> {
        self.fs("fs_read", move |r| fs_tools::read(r, a)).await
    }

    #[tool(
        name = "fs_write",
        description = "Write UTF-8 text to a file inside the allowed roots, replacing existing content. Set create_dirs to create missing parent directories."
    )]
    async fn fs_write(
        &self,
        Parameters(a): Parameters<FsWriteArgs>,
    ) -> Result<Json<FsWriteResult>, String> {
        self.fs("fs_write", move |r| fs_tools::write(r, a)).await
    }

    #[tool(
        name = "fs_list",
        description = "List the entries of a directory inside the allowed roots (name, type, size), sorted by name."
    )]
    async fn fs_list(
        &self,
        Parameters(a): Parameters<PathArgs>,
    ) -> Result<Json<FsListResult>, String> {
        self.fs("fs_list", move |r| fs_tools::list(r, a)).await
    }

    #[tool(
        name = "fs_stat",
        description = "Describe a path inside the allowed roots: existence, type, size, mode, modification time. Symlinks are not followed."
    )]
    async fn fs_stat(
        &self,
        Parameters(a): Parameters<PathArgs>,
    ) -> Result<Json<FsStatResult>, String> {
        self.fs("fs_stat", move |r| fs_tools::stat(r, a)).await
    }

    #[tool(
        name = "fs_search",
        description = "Recursively find paths under a directory whose relative path (or, for patterns without '/', file name) matches a glob pattern. Symlinked directories are not descended."
    )]
    async fn fs_search(
        &self,
        Parameters(a): Parameters<FsSearchArgs>,
    ) -> Result<Json<FsSearchResult>, String> {
        self.fs("fs_search", move |r| fs_tools::search(r, a)).await
    }

    #[tool(
        name = "fs_mkdir",
        description = "Create a directory (and missing parents) inside the allowed roots."
    )]
    async fn fs_mkdir(
        &self,
        Parameters(a): Parameters<PathArgs>,
    ) -> Result<Json<FsMkdirResult>, String> {
        self.fs("fs_mkdir", move |r| fs_tools::mkdir(r, a)).await
    }

    #[tool(
        name = "fs_move",
        description = "Move or rename a file or directory; both ends must be inside the allowed roots and the destination must not exist."
    )]
    async fn fs_move(
        &self,
        Parameters(a): Parameters<FsMoveArgs>,
    ) -> Result<Json<FsMoveResult>, String> {
        self.fs("fs_move", move |r| fs_tools::mv(r, a)).await
    }

    #[tool(
        name = "fs_delete",
        description = "Delete a file, symlink or empty directory inside the allowed roots; set recursive to delete a directory tree. Roots themselves cannot be deleted."
    )]
    async fn fs_delete(
        &self,
        Parameters(a): Parameters<FsDeleteArgs>,
    ) -> Result<Json<FsDeleteResult>, String> {
        self.fs("fs_delete", move |r| fs_tools::delete(r, a)).await
    }

    #[tool(
        name = "dns_resolve",
        description = "Resolve a host name to its IP addresses (A and AAAA) using the system resolver."
    )]
    async fn dns_resolve(
        &self,
        Parameters(args): Parameters<DnsResolveArgs>,
    ) -> Result<Json<DnsResolveResult>, String> {
        let lookup = tokio::net::lookup_host((args.host.as_str(), 0));
        let addrs = tokio::time::timeout(std::time::Duration::from_secs(10), lookup)
            .await
            .map_err(|_| format!("resolving {:?} timed out after 10s", args.host))?
            .map_err(|e| format!("cannot resolve {:?}: {e}", args.host))?;
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
    ) -> Result<Json<HttpFetchResult>, String> {
        net::http_fetch(&self.ctx.http, a).await.map(Json)
    }

    #[tool(
        name = "tcp_check",
        description = "Check whether a TCP port accepts connections. Unreachable ports are reported with open=false and the reason, not as errors."
    )]
    async fn tcp_check(
        &self,
        Parameters(a): Parameters<TcpCheckArgs>,
    ) -> Result<Json<TcpCheckResult>, String> {
        net::tcp_check(a).await.map(Json)
    }

    #[tool(
        name = "kafka_list_topics",
        description = "List Kafka topics and their partitions (KAFKA_BOOTSTRAP_SERVERS)."
    )]
    async fn kafka_list_topics(
        &self,
        Parameters(_a): Parameters<kafka::ListTopicsArgs>,
    ) -> Result<Json<kafka::ListTopicsResult>, String> {
        self.ctx.kafka.list_topics().await.map(Json)
    }

    #[tool(
        name = "kafka_produce",
        description = "Produce one message to a Kafka topic partition and return its offset. Missing topics are created (1 partition, unless KAFKA_AUTO_CREATE_TOPICS=false)."
    )]
    async fn kafka_produce(
        &self,
        Parameters(a): Parameters<kafka::ProduceArgs>,
    ) -> Result<Json<kafka::ProduceResult>, String> {
        self.ctx.kafka.produce(a).await.map(Json)
    }

    #[tool(
        name = "kafka_consume",
        description = "Read up to max_messages messages from a Kafka topic partition starting at offset (default earliest), waiting at most timeout_ms. Does not commit consumer offsets."
    )]
    async fn kafka_consume(
        &self,
        Parameters(a): Parameters<kafka::ConsumeArgs>,
    ) -> Result<Json<kafka::ConsumeResult>, String> {
        self.ctx.kafka.consume(a).await.map(Json)
    }

    #[tool(
        name = "firecrawl_scrape",
        description = "Scrape one web page with Firecrawl (FIRECRAWL_API_KEY) and return the requested formats (default markdown)."
    )]
    async fn firecrawl_scrape(
        &self,
        Parameters(a): Parameters<upstream::ScrapeArgs>,
    ) -> Result<Json<upstream::ScrapeResult>, String> {
        self.firecrawl()?.scrape(&self.ctx.http, a).await.map(Json)
    }

    #[tool(
        name = "firecrawl_crawl",
        description = "Crawl a site with Firecrawl starting at url (up to limit pages), wait up to timeout_ms for completion and return the pages."
    )]
    async fn firecrawl_crawl(
        &self,
        Parameters(a): Parameters<upstream::CrawlArgs>,
    ) -> Result<Json<upstream::CrawlResult>, String> {
        self.firecrawl()?.crawl(&self.ctx.http, a).await.map(Json)
    }

    #[tool(
        name = "ollama_generate",
        description = "Generate a completion with an Ollama model (OLLAMA_HOST), non-streaming."
    )]
    async fn ollama_generate(
        &self,
        Parameters(a): Parameters<upstream::GenerateArgs>,
    ) -> Result<Json<upstream::GenerateResult>, String> {
        self.ollama()?.generate(&self.ctx.http, a).await.map(Json)
    }

    #[tool(
        name = "ollama_list_models",
        description = "List the models available on the Ollama server (OLLAMA_HOST)."
    )]
    async fn ollama_list_models(
        &self,
        Parameters(_a): Parameters<upstream::ListModelsArgs>,
    ) -> Result<Json<upstream::ListModelsResult>, String> {
        self.ollama()?.list_models(&self.ctx.http).await.map(Json)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NativeTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "native-tools: filesystem, network, kafka, firecrawl and ollama tools",
        )
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
