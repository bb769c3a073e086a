//! Network tools: http_fetch and tcp_check.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::OutOfRange;

/// A URL the network tools refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("invalid URL {url:?}: {error}")]
    Invalid {
        /// The text given.
        url: String,
        /// The parse error (part of the message).
        error: url::ParseError,
    },
    /// Not http or https.
    #[error("unsupported URL scheme {0:?} (only http and https)")]
    Scheme(String),
    /// No host part.
    #[error("URL {0:?} has no host")]
    NoHost(String),
}

/// Why `http_fetch` failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A numeric argument is out of bounds.
    #[error(transparent)]
    Limit(#[from] OutOfRange),
    /// The URL (or a redirect target) is refused.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The overall deadline passed.
    #[error("request timed out after {0} ms")]
    Timeout(u128),
    /// The client cancelled the call.
    #[error("cancelled by the client")]
    Cancelled,
    /// The request body is too large.
    #[error("request body is {0} bytes; the limit is {FETCH_MAX_REQUEST_BODY}")]
    BodyTooLarge(usize),
    /// A header name is not valid.
    #[error("invalid header name {name:?}: {error}")]
    HeaderName {
        /// The name given.
        name: String,
        /// Why (part of the message).
        error: reqwest::header::InvalidHeaderName,
    },
    /// A header value is not valid.
    #[error("invalid value for header {name:?}: {error}")]
    HeaderValue {
        /// The header name.
        name: String,
        /// Why (part of the message).
        error: reqwest::header::InvalidHeaderValue,
    },
    /// The request failed (connection, TLS, protocol).
    #[error("request to {url} failed: {}", error_chain(.error))]
    Request {
        /// The URL requested.
        url: url::Url,
        /// The error, shown with its sources.
        error: reqwest::Error,
    },
    /// A redirect's Location is not text.
    #[error("redirect Location header is not valid text")]
    LocationNotText,
    /// A redirect's Location does not resolve against the URL.
    #[error("invalid redirect Location {location:?}: {error}")]
    InvalidLocation {
        /// The Location header.
        location: String,
        /// The parse error (part of the message).
        error: url::ParseError,
    },
    /// More redirects than allowed.
    #[error("too many redirects: limit is {limit} (last Location: {next})")]
    TooManyRedirects {
        /// The redirect limit.
        limit: u32,
        /// The redirect not followed.
        next: url::Url,
    },
    /// Reading the response body failed.
    #[error("reading response body failed: {}", error_chain(.0))]
    ReadBody(reqwest::Error),
}

/// Default `max_bytes` of http_fetch.
pub const FETCH_DEFAULT_BYTES: u64 = 1024 * 1024;
/// Upper bound of `max_bytes`.
pub const FETCH_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default `timeout_ms` of http_fetch.
pub const FETCH_DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Upper bound of http_fetch `timeout_ms`.
pub const FETCH_MAX_TIMEOUT_MS: u64 = 120_000;
/// Default `max_redirects`.
pub const FETCH_DEFAULT_REDIRECTS: u32 = 5;
/// Upper bound of `max_redirects`.
pub const FETCH_MAX_REDIRECTS: u32 = 10;
/// Largest request body accepted.
pub const FETCH_MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;
/// Default `timeout_ms` of tcp_check.
pub const TCP_DEFAULT_TIMEOUT_MS: u64 = 3_000;
/// Upper bound of tcp_check `timeout_ms`.
pub const TCP_MAX_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Options => reqwest::Method::OPTIONS,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpFetchArgs {
    /// Absolute http:// or https:// URL.
    #[schemars(length(min = 1, max = 8192))]
    pub url: String,
    /// HTTP method (default GET).
    pub method: Option<Method>,
    /// Extra request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Request body (UTF-8 text, at most 10 MiB).
    pub body: Option<String>,
    /// Maximum response body bytes returned (default 1048576, at most 10485760); longer bodies are truncated.
    #[schemars(range(min = 0, max = 10485760))]
    pub max_bytes: Option<u64>,
    /// Overall deadline in milliseconds including redirects and body (default 30000, at most 120000).
    #[schemars(range(min = 1, max = 120000))]
    pub timeout_ms: Option<u64>,
    /// Redirects to follow (default 5, at most 10). 0 returns the 3xx response itself. Exceeding the limit is an error.
    #[schemars(range(min = 0, max = 10))]
    pub max_redirects: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HttpFetchResult {
    /// Final URL after redirects.
    pub url: String,
    pub status: u16,
    /// Response headers (lower-case names; repeated headers joined with ", ").
    pub headers: BTreeMap<String, String>,
    /// Response body: UTF-8 text, or base64 when not valid UTF-8.
    pub body: String,
    /// "utf-8" or "base64".
    pub body_encoding: String,
    /// Number of body bytes returned.
    pub bytes: u64,
    /// True when the body was cut at max_bytes.
    pub truncated: bool,
    /// URLs redirected through, in order (empty when none).
    pub redirects: Vec<String>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpCheckArgs {
    /// Host name or IP address.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Connect timeout in milliseconds (default 3000, at most 30000).
    #[schemars(range(min = 1, max = 30000))]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TcpCheckResult {
    pub host: String,
    pub port: u16,
    /// True when a TCP connection was established.
    pub open: bool,
    /// Address connected to (when open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub elapsed_ms: u64,
    /// Why the port is not reachable (when not open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Parses an absolute http(s) URL with a host.
pub fn parse_http_url(s: &str) -> Result<url::Url, UrlError> {
    let u = url::Url::parse(s).map_err(|error| UrlError::Invalid {
        url: s.to_string(),
        error,
    })?;
    match u.scheme() {
        "http" | "https" => {}
        other => return Err(UrlError::Scheme(other.to_string())),
    }
    if u.host_str().is_none() {
        return Err(UrlError::NoHost(s.to_string()));
    }
    Ok(u)
}

fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The http_fetch tool.
pub async fn http_fetch(
    client: &reqwest::Client,
    a: HttpFetchArgs,
    monitor: &crate::progress::Monitor,
) -> Result<HttpFetchResult, NetError> {
    let timeout = Duration::from_millis(crate::limits::arg(
        "timeout_ms",
        a.timeout_ms,
        FETCH_DEFAULT_TIMEOUT_MS,
        1,
        FETCH_MAX_TIMEOUT_MS,
    )?);
    let started = Instant::now();
    // Dropping the request (timeout, cancellation) aborts the download.
    tokio::select! {
        r = tokio::time::timeout(timeout, fetch_inner(client, a, started, monitor)) => match r {
            Ok(r) => r,
            Err(_) => Err(NetError::Timeout(timeout.as_millis())),
        },
        _ = monitor.cancelled() => Err(NetError::Cancelled),
    }
}

async fn fetch_inner(
    client: &reqwest::Client,
    a: HttpFetchArgs,
    started: Instant,
    monitor: &crate::progress::Monitor,
) -> Result<HttpFetchResult, NetError> {
    let max_bytes = crate::limits::arg(
        "max_bytes",
        a.max_bytes,
        FETCH_DEFAULT_BYTES,
        0,
        FETCH_MAX_BYTES,
    )?;
    let max_redirects = crate::limits::arg(
        "max_redirects",
        a.max_redirects,
        FETCH_DEFAULT_REDIRECTS,
        0,
        FETCH_MAX_REDIRECTS,
    )?;
    if let Some(b) = &a.body
        && b.len() > FETCH_MAX_REQUEST_BODY
    {
        return Err(NetError::BodyTooLarge(b.len()));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in a.headers.iter().flatten() {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|error| {
            NetError::HeaderName {
                name: k.clone(),
                error,
            }
        })?;
        let value =
            reqwest::header::HeaderValue::from_str(v).map_err(|error| NetError::HeaderValue {
                name: k.clone(),
                error,
            })?;
        headers.append(name, value);
    }
    let mut url = parse_http_url(&a.url)?;
    let mut method = a.method.unwrap_or_default().to_reqwest();
    let mut body = a.body;
    let mut redirects = Vec::new();
    let first = url.clone();
    loop {
        let mut req = client
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(b) = &body {
            req = req.body(b.clone());
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(error) => return Err(NetError::Request { url, error }),
        };
        let status = resp.status();
        if status.is_redirection()
            && max_redirects > 0
            && let Some(loc) = resp.headers().get(reqwest::header::LOCATION)
        {
            let loc = loc.to_str().map_err(|_| NetError::LocationNotText)?;
            let next = url.join(loc).map_err(|error| NetError::InvalidLocation {
                location: loc.to_string(),
                error,
            })?;
            if redirects.len() as u32 >= max_redirects {
                return Err(NetError::TooManyRedirects {
                    limit: max_redirects,
                    next,
                });
            }
            let next = parse_http_url(next.as_str())?;
            let code = status.as_u16();
            if code == 303 || ((code == 301 || code == 302) && method == reqwest::Method::POST) {
                method = reqwest::Method::GET;
                body = None;
                headers.remove(reqwest::header::CONTENT_TYPE);
                headers.remove(reqwest::header::CONTENT_LENGTH);
            }
            if !same_origin(&first, &next) {
                headers.remove(reqwest::header::AUTHORIZATION);
                headers.remove(reqwest::header::COOKIE);
                headers.remove(reqwest::header::PROXY_AUTHORIZATION);
            }
            redirects.push(next.to_string());
            url = next;
            continue;
        }
        let mut out_headers: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in resp.headers() {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            out_headers
                .entry(k.as_str().to_string())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut truncated = false;
        let total = resp.content_length().map(|n| n.min(max_bytes));
        let progress = |n: usize, last: bool| {
            monitor.report(n as u64, total, last, || match total {
                Some(t) => format!("downloaded {n} of {t} bytes"),
                None => format!("downloaded {n} bytes"),
            })
        };
        while let Some(chunk) = resp.chunk().await.map_err(NetError::ReadBody)? {
            let room = (max_bytes as usize).saturating_sub(buf.len());
            if chunk.len() > room {
                buf.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            buf.extend_from_slice(&chunk);
            progress(buf.len(), false);
        }
        progress(buf.len(), true);
        let bytes = buf.len() as u64;
        let (body, enc) = crate::text::text_or_base64(buf, truncated);
        return Ok(HttpFetchResult {
            url: url.to_string(),
            status: status.as_u16(),
            headers: out_headers,
            body,
            body_encoding: enc.into(),
            bytes,
            truncated,
            redirects,
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
    }
}

/// Render an error with its sources ("a: b: c").
pub fn error_chain(e: &dyn std::error::Error) -> String {
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

/// The tcp_check tool (an unreachable port is a result, not an error).
pub async fn tcp_check(a: TcpCheckArgs) -> Result<TcpCheckResult, OutOfRange> {
    let timeout = Duration::from_millis(crate::limits::arg(
        "timeout_ms",
        a.timeout_ms,
        TCP_DEFAULT_TIMEOUT_MS,
        1,
        TCP_MAX_TIMEOUT_MS,
    )?);
    crate::limits::arg("port", Some(a.port), 1, 1, u16::MAX)?;
    let started = Instant::now();
    let attempt = tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((a.host.as_str(), a.port)),
    )
    .await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let (open, address, error) = match attempt {
        Ok(Ok(stream)) => (true, stream.peer_addr().ok().map(|p| p.to_string()), None),
        Ok(Err(e)) => (false, None, Some(e.to_string())),
        Err(_) => (
            false,
            None,
            Some(format!(
                "connect timed out after {} ms",
                timeout.as_millis()
            )),
        ),
    };
    Ok(TcpCheckResult {
        host: a.host,
        port: a.port,
        open,
        address,
        elapsed_ms,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation() {
        assert!(parse_http_url("http://127.0.0.1:1/x").is_ok());
        assert!(
            parse_http_url("file:///etc/passwd")
                .unwrap_err()
                .to_string()
                .contains("scheme")
        );
        assert!(parse_http_url("not a url").is_err());
    }

    #[tokio::test]
    async fn tcp_check_closed_and_open() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let r = tcp_check(TcpCheckArgs {
            host: "127.0.0.1".into(),
            port,
            timeout_ms: Some(2000),
        })
        .await
        .unwrap();
        assert!(r.open);
        drop(l);
        let r = tcp_check(TcpCheckArgs {
            host: "127.0.0.1".into(),
            port,
            timeout_ms: Some(2000),
        })
        .await
        .unwrap();
        assert!(!r.open);
        assert!(r.error.is_some());
    }
}
