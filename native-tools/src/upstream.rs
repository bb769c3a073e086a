//! Firecrawl and Ollama tools (HTTP upstreams configured by environment).

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::limits::OutOfRange;
use crate::net::{UrlError, error_chain};

/// Firecrawl API used when FIRECRAWL_API_URL is not set.
pub const DEFAULT_FIRECRAWL_URL: &str = "https://api.firecrawl.dev";
const MAX_UPSTREAM_BYTES: usize = 20 * 1024 * 1024;

/// An OLLAMA_HOST value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OllamaHostError {
    /// Only whitespace and slashes.
    #[error("OLLAMA_HOST is empty")]
    Empty,
    /// Not an http(s) URL once normalized.
    #[error("invalid OLLAMA_HOST: {0}")]
    Invalid(UrlError),
}

/// Reading an upstream response body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection failed mid-body (the error chain, as text).
    #[error("reading body failed: {0}")]
    Read(String),
    /// The body exceeds the limit.
    #[error("body larger than {MAX_UPSTREAM_BYTES} bytes")]
    TooLarge,
}

/// Why a Firecrawl or Ollama tool failed.
///
/// Fields holding text from the upstream (messages, error chains, body
/// snippets) are Strings so Firecrawl errors can have the API key redacted.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A numeric argument is out of bounds.
    #[error(transparent)]
    Limit(#[from] OutOfRange),
    /// The URL to scrape or crawl is refused.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The request failed (connection, TLS, protocol).
    #[error("{service} request to {url} failed: {chain}")]
    Request {
        /// "firecrawl" or "ollama".
        service: &'static str,
        /// The URL requested.
        url: String,
        /// The error with its sources, as text.
        chain: String,
    },
    /// An Ollama request did not answer in time.
    #[error("ollama request to {url} timed out after {ms} ms")]
    Timeout {
        /// The URL requested.
        url: String,
        /// The timeout.
        ms: u128,
    },
    /// The response body could not be read.
    #[error("{service} response from {url}: {error}")]
    Body {
        /// "firecrawl" or "ollama".
        service: &'static str,
        /// The URL requested.
        url: String,
        /// Why (part of the message).
        error: BodyError,
    },
    /// A non-2xx answer.
    #[error("{service} returned HTTP {status}: {message}")]
    Status {
        /// "firecrawl" or "ollama".
        service: &'static str,
        /// HTTP status code.
        status: u16,
        /// The upstream's error message or a body snippet.
        message: String,
    },
    /// A 2xx answer that is not JSON.
    #[error("{service} returned invalid JSON: {snippet}")]
    InvalidJson {
        /// "firecrawl" or "ollama".
        service: &'static str,
        /// The start of the body.
        snippet: String,
    },
    /// Firecrawl answered `success: false`.
    #[error("firecrawl reported failure: {0}")]
    FirecrawlFailure(String),
    /// A crawl answer without a job id.
    #[error("firecrawl crawl response has no job id")]
    NoJobId,
    /// A crawl job id with unexpected characters.
    #[error("firecrawl returned an invalid crawl job id")]
    InvalidJobId,
    /// The crawl job failed.
    #[error("firecrawl crawl {0} failed")]
    CrawlFailed(String),
    /// Ollama answered with an `error` field.
    #[error("ollama error: {0}")]
    Ollama(String),
    /// An Ollama generate answer without `response`.
    #[error("ollama response has no \"response\" field")]
    NoResponse,
    /// An Ollama tags answer without `models`.
    #[error("ollama /api/tags response has no \"models\" list")]
    NoModels,
}

impl UpstreamError {
    /// Applies `f` to every field that may hold upstream text.
    fn map_text(self, f: impl Fn(String) -> String) -> Self {
        match self {
            UpstreamError::Request {
                service,
                url,
                chain,
            } => UpstreamError::Request {
                service,
                url: f(url),
                chain: f(chain),
            },
            UpstreamError::Body {
                service,
                url,
                error,
            } => UpstreamError::Body {
                service,
                url: f(url),
                error: match error {
                    BodyError::Read(chain) => BodyError::Read(f(chain)),
                    other => other,
                },
            },
            UpstreamError::Status {
                service,
                status,
                message,
            } => UpstreamError::Status {
                service,
                status,
                message: f(message),
            },
            UpstreamError::InvalidJson { service, snippet } => UpstreamError::InvalidJson {
                service,
                snippet: f(snippet),
            },
            UpstreamError::FirecrawlFailure(m) => UpstreamError::FirecrawlFailure(f(m)),
            other => other,
        }
    }
}

type Result<T, E = UpstreamError> = std::result::Result<T, E>;

// ---------------------------------------------------------------- Firecrawl

/// Firecrawl API client settings (the key is never printed).
#[derive(Clone)]
pub struct Firecrawl {
    base: String,
    key: String,
}

impl std::fmt::Debug for Firecrawl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firecrawl")
            .field("base", &self.base)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ScrapeFormat {
    Markdown,
    Html,
    RawHtml,
    Links,
    Screenshot,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrapeArgs {
    /// Page URL to scrape (http or https).
    #[schemars(length(min = 1, max = 8192))]
    pub url: String,
    /// Output formats (default ["markdown"]).
    #[schemars(length(min = 1, max = 5))]
    pub formats: Option<Vec<ScrapeFormat>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrawlArgs {
    /// Start URL (http or https).
    #[schemars(length(min = 1, max = 8192))]
    pub url: String,
    /// Maximum pages to crawl (default 10, at most 100).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// How long to wait for the crawl to finish, in milliseconds (default 60000, at most 300000). On timeout the partial status is returned.
    #[schemars(range(min = 1000, max = 300000))]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ScrapeResult {
    pub url: String,
    /// Firecrawl's `data` object (markdown, html, links, metadata, ... depending on formats).
    pub data: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CrawlResult {
    pub url: String,
    /// Firecrawl crawl job id.
    pub id: String,
    /// "completed", "failed", or the in-progress status when timeout_ms elapsed first.
    pub status: String,
    pub completed: Option<u64>,
    pub total: Option<u64>,
    /// Scraped pages returned so far.
    pub data: Vec<Value>,
}

impl Firecrawl {
    /// From FIRECRAWL_API_KEY (and FIRECRAWL_API_URL); `None` without a key.
    pub fn from_env() -> Option<Self> {
        let key = std::env::var("FIRECRAWL_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())?;
        let base = std::env::var("FIRECRAWL_API_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_FIRECRAWL_URL.to_string());
        Some(Self::new(&base, &key))
    }

    /// A client for the API at `base` with `key`.
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            base: base.trim().trim_end_matches('/').to_string(),
            key: key.trim().to_string(),
        }
    }

    /// The API base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Remove the API key from any text that might reach the client or logs.
    fn redact(&self, s: String) -> String {
        if self.key.len() >= 4 {
            s.replace(&self.key, "[REDACTED]")
        } else {
            s
        }
    }

    async fn call(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut req = client
            .request(method, &url)
            .bearer_auth(&self.key)
            .timeout(timeout);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let r = async {
            let resp = req.send().await.map_err(|e| UpstreamError::Request {
                service: "firecrawl",
                url: url.clone(),
                chain: error_chain(&e),
            })?;
            let status = resp.status();
            let text = read_limited(resp)
                .await
                .map_err(|error| UpstreamError::Body {
                    service: "firecrawl",
                    url: url.clone(),
                    error,
                })?;
            let parsed: Option<Value> = serde_json::from_str(&text).ok();
            if !status.is_success() {
                let msg = parsed
                    .as_ref()
                    .and_then(|v| v.get("error").or_else(|| v.get("message")))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| snippet(&text));
                return Err(UpstreamError::Status {
                    service: "firecrawl",
                    status: status.as_u16(),
                    message: msg,
                });
            }
            let v = parsed.ok_or_else(|| UpstreamError::InvalidJson {
                service: "firecrawl",
                snippet: snippet(&text),
            })?;
            if v.get("success").and_then(Value::as_bool) == Some(false) {
                let msg = v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                return Err(UpstreamError::FirecrawlFailure(msg.to_string()));
            }
            Ok(v)
        }
        .await;
        r.map_err(|e| e.map_text(|s| self.redact(s)))
    }

    /// The firecrawl_scrape tool.
    pub async fn scrape(&self, client: &reqwest::Client, a: ScrapeArgs) -> Result<ScrapeResult> {
        crate::net::parse_http_url(&a.url)?;
        let formats = a.formats.unwrap_or_else(|| vec![ScrapeFormat::Markdown]);
        let v = self
            .call(
                client,
                reqwest::Method::POST,
                "/v1/scrape",
                Some(json!({"url": a.url, "formats": formats})),
                Duration::from_secs(120),
            )
            .await?;
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        Ok(ScrapeResult { url: a.url, data })
    }

    /// The firecrawl_crawl tool.
    pub async fn crawl(&self, client: &reqwest::Client, a: CrawlArgs) -> Result<CrawlResult> {
        crate::net::parse_http_url(&a.url)?;
        let limit = crate::limits::arg("limit", a.limit, 10, 1, 100)?;
        let timeout = Duration::from_millis(crate::limits::arg(
            "timeout_ms",
            a.timeout_ms,
            60_000,
            1_000,
            300_000,
        )?);
        let started = Instant::now();
        let v = self
            .call(
                client,
                reqwest::Method::POST,
                "/v1/crawl",
                Some(json!({"url": a.url, "limit": limit})),
                Duration::from_secs(60),
            )
            .await?;
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or(UpstreamError::NoJobId)?
            .to_string();
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(UpstreamError::InvalidJobId);
        }
        let mut interval = Duration::from_millis(250);
        loop {
            let remaining = timeout.saturating_sub(started.elapsed());
            let st = self
                .call(
                    client,
                    reqwest::Method::GET,
                    &format!("/v1/crawl/{id}"),
                    None,
                    remaining
                        .max(Duration::from_secs(1))
                        .min(Duration::from_secs(60)),
                )
                .await?;
            let status = st
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            let done = matches!(status.as_str(), "completed" | "failed" | "cancelled");
            if done || started.elapsed() + interval >= timeout {
                if status == "failed" {
                    return Err(UpstreamError::CrawlFailed(id));
                }
                return Ok(CrawlResult {
                    url: a.url,
                    id,
                    status,
                    completed: st.get("completed").and_then(Value::as_u64),
                    total: st.get("total").and_then(Value::as_u64),
                    data: st
                        .get("data")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_secs(5));
        }
    }
}

// ---------------------------------------------------------------- Ollama

/// Ollama server client settings.
#[derive(Debug, Clone)]
pub struct Ollama {
    base: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateArgs {
    /// Model name, e.g. "llama3.2".
    #[schemars(length(min = 1, max = 256))]
    pub model: String,
    /// Prompt text.
    #[schemars(length(min = 1))]
    pub prompt: String,
    /// Optional system prompt.
    pub system: Option<String>,
    /// Deadline in milliseconds (default 120000, at most 600000).
    #[schemars(range(min = 1000, max = 600000))]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GenerateResult {
    pub model: String,
    /// Generated text.
    pub response: String,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_duration_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListModelsArgs {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListModelsResult {
    pub host: String,
    pub models: Vec<ModelInfo>,
}

/// Normalize OLLAMA_HOST the way the Ollama CLI does: default scheme http,
/// default port 11434 when no scheme and no port are given.
pub fn normalize_ollama_host(raw: &str) -> Result<String, OllamaHostError> {
    let raw = raw.trim().trim_end_matches('/');
    if raw.is_empty() {
        return Err(OllamaHostError::Empty);
    }
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        let has_port = match raw.rsplit_once(':') {
            Some((h, p)) => {
                !p.is_empty()
                    && p.chars().all(|c| c.is_ascii_digit())
                    && (!h.contains(':') || h.ends_with(']'))
            }
            None => false,
        };
        if has_port {
            format!("http://{raw}")
        } else {
            format!("http://{raw}:11434")
        }
    };
    let u = crate::net::parse_http_url(&with_scheme).map_err(OllamaHostError::Invalid)?;
    Ok(u.as_str().trim_end_matches('/').to_string())
}

impl Ollama {
    /// From OLLAMA_HOST; `None` when it is not set.
    pub fn from_env() -> Option<Result<Self, OllamaHostError>> {
        let raw = std::env::var("OLLAMA_HOST")
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        Some(normalize_ollama_host(&raw).map(Self::from_base))
    }

    /// A client for the normalized base URL.
    pub fn from_base(base: String) -> Self {
        Self { base }
    }

    /// The server base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut req = client.request(method, &url).timeout(timeout);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                UpstreamError::Timeout {
                    url: url.clone(),
                    ms: timeout.as_millis(),
                }
            } else {
                UpstreamError::Request {
                    service: "ollama",
                    url: url.clone(),
                    chain: error_chain(&e),
                }
            }
        })?;
        let status = resp.status();
        let text = read_limited(resp)
            .await
            .map_err(|error| UpstreamError::Body {
                service: "ollama",
                url: url.clone(),
                error,
            })?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let msg = parsed
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| snippet(&text));
            return Err(UpstreamError::Status {
                service: "ollama",
                status: status.as_u16(),
                message: msg,
            });
        }
        parsed.ok_or_else(|| UpstreamError::InvalidJson {
            service: "ollama",
            snippet: snippet(&text),
        })
    }

    /// The ollama_generate tool.
    pub async fn generate(
        &self,
        client: &reqwest::Client,
        a: GenerateArgs,
    ) -> Result<GenerateResult> {
        let timeout = Duration::from_millis(crate::limits::arg(
            "timeout_ms",
            a.timeout_ms,
            120_000,
            1_000,
            600_000,
        )?);
        let mut body = json!({"model": a.model, "prompt": a.prompt, "stream": false});
        if let Some(s) = a.system {
            body["system"] = Value::String(s);
        }
        let v = self
            .call(
                client,
                reqwest::Method::POST,
                "/api/generate",
                Some(body),
                timeout,
            )
            .await?;
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            return Err(UpstreamError::Ollama(err.to_string()));
        }
        let response = v
            .get("response")
            .and_then(Value::as_str)
            .ok_or(UpstreamError::NoResponse)?
            .to_string();
        Ok(GenerateResult {
            model: v
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&a.model)
                .to_string(),
            response,
            done: v.get("done").and_then(Value::as_bool).unwrap_or(true),
            done_reason: v
                .get("done_reason")
                .and_then(Value::as_str)
                .map(str::to_string),
            total_duration_ns: v.get("total_duration").and_then(Value::as_u64),
            eval_count: v.get("eval_count").and_then(Value::as_u64),
        })
    }

    /// The ollama_list_models tool.
    pub async fn list_models(&self, client: &reqwest::Client) -> Result<ListModelsResult> {
        let v = self
            .call(
                client,
                reqwest::Method::GET,
                "/api/tags",
                None,
                Duration::from_secs(30),
            )
            .await?;
        let models = v
            .get("models")
            .and_then(Value::as_array)
            .ok_or(UpstreamError::NoModels)?
            .iter()
            .filter_map(|m| {
                Some(ModelInfo {
                    name: m
                        .get("name")
                        .or_else(|| m.get("model"))?
                        .as_str()?
                        .to_string(),
                    size: m.get("size").and_then(Value::as_u64),
                    modified_at: m
                        .get("modified_at")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    digest: m.get("digest").and_then(Value::as_str).map(str::to_string),
                })
            })
            .collect();
        Ok(ListModelsResult {
            host: self.base.clone(),
            models,
        })
    }
}

// ---------------------------------------------------------------- helpers

async fn read_limited(mut resp: reqwest::Response) -> Result<String, BodyError> {
    let mut buf = Vec::new();
    while let Some(c) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Read(error_chain(&e)))?
    {
        if buf.len() + c.len() > MAX_UPSTREAM_BYTES {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&c);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn snippet(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        return "(empty body)".into();
    }
    let mut end = t.len().min(300);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    if end < t.len() {
        format!("{}…", &t[..end])
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_host_normalization() {
        assert_eq!(
            normalize_ollama_host("ollama").unwrap(),
            "http://ollama:11434"
        );
        assert_eq!(
            normalize_ollama_host("ollama:1234").unwrap(),
            "http://ollama:1234"
        );
        assert_eq!(
            normalize_ollama_host("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            normalize_ollama_host("https://x.example").unwrap(),
            "https://x.example"
        );
        assert_eq!(
            normalize_ollama_host("0.0.0.0").unwrap(),
            "http://0.0.0.0:11434"
        );
        assert!(normalize_ollama_host("ftp://x").is_err());
    }

    #[test]
    fn firecrawl_redacts_key() {
        let f = Firecrawl {
            base: "http://x".into(),
            key: "fc-secret-123".into(),
        };
        assert_eq!(
            f.redact("bad key fc-secret-123 here".into()),
            "bad key [REDACTED] here"
        );
        assert!(!format!("{f:?}").contains("fc-secret-123"));
    }

    #[test]
    fn snippet_is_bounded() {
        let long = "é".repeat(1000);
        assert!(snippet(&long).len() < 320);
        assert_eq!(snippet("  "), "(empty body)");
    }
}
