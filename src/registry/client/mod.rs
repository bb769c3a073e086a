//! A small client of the distribution (OCI registry) HTTP API over reqwest's
//! blocking client (rustls, ring): scheme choice, TLS roots, authentication
//! (basic and bearer tokens scoped per repository), redirects that never carry
//! credentials to another host, and retries with capped, jittered backoff
//! that honours `Retry-After`.
//!
//! - [`tls`]: the root store and CA files;
//! - [`auth`]: challenges, basic and bearer credentials, the token service;
//! - [`retry`]: retriable statuses, backoff, jitter and `Retry-After`.
//!
//! This module uses those three; they use nothing of it (what they need is
//! passed in), so the imports form no cycle.

mod auth;
mod retry;
mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use reqwest::Method;
use reqwest::Url;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, HeaderMap, LOCATION};

pub use auth::{pull_scopes, push_scopes};

use super::credentials::{self, Credential};
use super::error::RegistryError;
use crate::error::{Error, Result};
use crate::reference::{host_of, is_loopback};

pub(crate) use crate::error::chain as describe;

/// Options of every registry connection.
#[derive(Debug, Clone)]
pub struct Options {
    /// Extra CA certificates (PEM files) trusted besides the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure: Vec<String>,
    /// Host names resolved to fixed addresses (like curl's --resolve).
    pub resolve: Vec<(String, IpAddr)>,
    /// Retries after the first attempt of a request.
    pub retries: u32,
    /// First backoff delay.
    pub backoff: Duration,
    /// Largest backoff delay (and largest Retry-After honoured).
    pub max_backoff: Duration,
    /// Blobs up to this size go in one request; larger ones in chunks of it.
    pub chunk_size: u64,
    /// Blobs transferred at once.
    pub jobs: usize,
    /// Repositories of the same registry to mount blobs from.
    pub mount_from: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ca_files: Vec::new(),
            insecure: Vec::new(),
            resolve: Vec::new(),
            retries: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(15),
            chunk_size: 5 << 20,
            jobs: 4,
            mount_from: Vec::new(),
        }
    }
}

/// Counters of one connection's work.
#[derive(Debug, Default)]
pub struct Stats {
    /// Blob bytes sent.
    pub uploaded_bytes: AtomicU64,
    /// Blobs uploaded.
    pub uploaded: AtomicU64,
    /// Blobs the registry already had.
    pub skipped: AtomicU64,
    /// Blobs mounted from another repository.
    pub mounted: AtomicU64,
    /// Requests retried.
    pub retried: AtomicU64,
}

/// A connection to one registry.
pub struct Registry {
    /// `host[:port]` as written in references (the credential key).
    pub name: String,
    base: Url,
    http: Client,
    auth: auth::Auth,
    /// Options.
    pub opts: Options,
    /// Counters.
    pub stats: Stats,
    /// Blobs known to be in a repository of this registry (digest → repo).
    pub known: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.name)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

fn http_client(opts: &Options) -> Result<Client> {
    let mut b = Client::builder()
        .tls_backend_preconfigured(tls::client_config(&opts.ca_files)?)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("aelimg/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(300));
    for (name, ip) in &opts.resolve {
        b = b.resolve(name, SocketAddr::new(*ip, 0));
    }
    b.build().map_err(|e| {
        Error::from(RegistryError::Config(format!(
            "cannot build the HTTP client: {e}"
        )))
    })
}

impl Registry {
    /// Connects to a registry: picks the scheme, pings `/v2/`, learns how it
    /// authenticates and finds the credentials for it.
    pub fn connect(name: &str, api_host: &str, opts: Options) -> Result<Self> {
        let creds = credentials::lookup(name)?;
        Self::connect_with(name, api_host, opts, creds)
    }

    /// [`Registry::connect`] with these credentials instead of the stored ones.
    pub fn connect_with(
        name: &str,
        api_host: &str,
        opts: Options,
        creds: Option<Credential>,
    ) -> Result<Self> {
        let http = http_client(&opts)?;
        let insecure = opts
            .insecure
            .iter()
            .any(|i| i == name || i == host_of(name));
        let url = |scheme: &str| {
            Url::parse(&format!("{scheme}://{api_host}/"))
                .map_err(|e| Error::Request(format!("`{name}` is not a registry host: {e}")))
        };
        let mut reg = Self {
            name: name.to_string(),
            base: url(if insecure { "http" } else { "https" })?,
            http,
            auth: auth::Auth::new(name, creds, opts.insecure.clone()),
            opts,
            stats: Stats::default(),
            known: Mutex::new(HashMap::new()),
        };
        let checked = |reg: Self| -> Result<Self> {
            // Credentials are checked once here (as `docker login` does: basic
            // on /v2/, or a token with no scope), so that wrong ones fail with
            // one clear message instead of one per request.
            if reg.auth.should_check_login() {
                reg.check_login()?;
            }
            Ok(reg)
        };
        match reg.ping() {
            Ok(()) => checked(reg),
            Err(first) if !insecure && is_loopback(name) => {
                reg.base = url("http")?;
                match reg.ping() {
                    Ok(()) => checked(reg),
                    Err(_) => Err(first),
                }
            }
            Err(Error::Registry(r))
                if !insecure && matches!(*r, RegistryError::Unreachable { .. }) =>
            {
                let RegistryError::Unreachable { target, detail } = *r else {
                    unreachable!("matched above")
                };
                Err(RegistryError::Unreachable {
                    target,
                    detail: format!(
                        "{detail} (aelimg speaks plain HTTP only to loopback registries and to ones named with --insecure-registry {name})"
                    ),
                }
                .into())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether credentials were found for this registry.
    #[must_use]
    pub fn has_credentials(&self) -> bool {
        self.auth.has_credentials()
    }

    fn ping(&self) -> Result<()> {
        let url = self.url("/v2/")?;
        let resp = self
            .http
            .get(url.clone())
            .send()
            .map_err(|e| RegistryError::Unreachable {
                target: url.to_string(),
                detail: describe(&e),
            })?;
        match resp.status().as_u16() {
            200..=299 => {
                self.auth.set_anonymous();
                Ok(())
            }
            401 => self.auth.learn(resp.headers()),
            _ => Err(RegistryError::Protocol(format!(
                "{url} answered {} to the API check: is this a registry?",
                resp.status()
            ))
            .into()),
        }
    }

    /// Checks the credentials by asking for a token (or `/v2/` with basic auth).
    pub fn check_login(&self) -> Result<()> {
        let url = self.url("/v2/")?;
        let resp = self.send(Method::GET, &url, &[], &HeaderMap::new(), None)?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(resp, "log in"))
        }
    }

    /// An absolute URL on this registry (path, or an absolute Location).
    pub fn url(&self, path_or_url: &str) -> Result<Url> {
        self.base.join(path_or_url).map_err(|e| {
            Error::from(RegistryError::Config(format!(
                "{}: bad URL `{path_or_url}`: {e}",
                self.name
            )))
        })
    }

    /// The URL of a `Location` the registry sent: a bad one breaks the
    /// protocol.
    pub fn location(&self, resp: &Response, what: &str) -> Result<Url> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| {
                RegistryError::Protocol(format!("{}: {what} without Location", self.name))
            })?;
        self.base.join(loc).map_err(|e| {
            Error::from(RegistryError::Protocol(format!(
                "{}: bad URL `{loc}`: {e}",
                self.name
            )))
        })
    }

    fn same_host(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    fn policy(&self) -> retry::Policy {
        retry::Policy {
            backoff: self.opts.backoff,
            max_backoff: self.opts.max_backoff,
        }
    }

    fn token_client(&self) -> auth::TokenClient<'_> {
        auth::TokenClient {
            http: &self.http,
            retries: self.opts.retries,
            policy: self.policy(),
            retried: &self.stats.retried,
        }
    }

    fn pause(&self, attempt: u32, headers: &HeaderMap) {
        self.policy().pause(attempt, headers, &self.stats.retried);
    }

    /// Sends a request with authentication, retries and redirects. Returns
    /// the final response whatever its status, except that 401 after
    /// authenticating and exhausted retries are errors.
    pub fn send(
        &self,
        method: Method,
        url: &Url,
        scopes: &[String],
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Response> {
        self.send_with(method, url, scopes, headers, body, self.opts.retries)
    }

    /// [`Registry::send`] with its own retry budget.
    pub fn send_with(
        &self,
        method: Method,
        url: &Url,
        scopes: &[String],
        headers: &HeaderMap,
        body: Option<&[u8]>,
        retries: u32,
    ) -> Result<Response> {
        let mut url = url.clone();
        let mut attempt = 0;
        let mut reauthed = false;
        let mut redirects = 0;
        loop {
            let mut req: RequestBuilder = self.http.request(method.clone(), url.clone());
            req = req.headers(headers.clone());
            let mut sent_basic = false;
            if self.same_host(&url)
                && let Some(h) = self.auth.header(&self.token_client(), scopes, false)?
            {
                sent_basic = h.as_bytes().starts_with(b"Basic ");
                req = req.header(AUTHORIZATION, h);
            }
            if let Some(b) = body {
                req = req.body(b.to_vec());
            } else if method == Method::PUT || method == Method::POST || method == Method::PATCH {
                req = req.header(reqwest::header::CONTENT_LENGTH, "0");
            }
            match req.send() {
                Err(e) => {
                    if attempt >= retries {
                        return Err(RegistryError::Unreachable {
                            target: format!("{} ({method} {})", self.name, url.path()),
                            detail: format!("{} (after {} attempts)", describe(&e), attempt + 1),
                        }
                        .into());
                    }
                    self.pause(attempt, &HeaderMap::new());
                    attempt += 1;
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 401 && self.same_host(&url) {
                        // Basic credentials that were refused will not do better.
                        if reauthed || sent_basic {
                            return Err(self.auth.refused(&format!("{method} {}", url.path())));
                        }
                        self.auth.learn(resp.headers())?;
                        // A fresh token (the cached one may have expired).
                        self.auth.header(&self.token_client(), scopes, true)?;
                        reauthed = true;
                        continue;
                    }
                    if retry::retriable(status) && attempt < retries {
                        self.pause(attempt, resp.headers());
                        attempt += 1;
                        continue;
                    }
                    if matches!(status, 301 | 302 | 303 | 307 | 308)
                        && (method == Method::GET || method == Method::HEAD)
                    {
                        redirects += 1;
                        if redirects > 5 {
                            return Err(RegistryError::Protocol(format!(
                                "{}: too many redirects for {}",
                                self.name,
                                url.path()
                            ))
                            .into());
                        }
                        let loc = resp
                            .headers()
                            .get(LOCATION)
                            .and_then(|l| l.to_str().ok())
                            .ok_or_else(|| {
                                RegistryError::Protocol(format!(
                                    "{}: redirect without Location",
                                    self.name
                                ))
                            })?;
                        url = url.join(loc).map_err(|e| {
                            RegistryError::Protocol(format!("{}: bad redirect: {e}", self.name))
                        })?;
                        continue;
                    }
                    return Ok(resp);
                }
            }
        }
    }

    /// An error for an unexpected status, with the registry's own message
    /// and what to do about it.
    pub fn status_error(&self, resp: Response, what: &str) -> Error {
        #[derive(serde::Deserialize)]
        struct Body {
            errors: Vec<ErrorItem>,
        }
        #[derive(serde::Deserialize)]
        struct ErrorItem {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        let (detail, codes) = match serde_json::from_str::<Body>(&body) {
            Ok(b) => (
                b.errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            if e.code.is_empty() { "?" } else { &e.code },
                            e.message
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                b.errors.into_iter().map(|e| e.code).collect(),
            ),
            Err(_) => (body.chars().take(200).collect(), Vec::new()),
        };
        RegistryError::Status {
            registry: self.name.clone(),
            what: what.to_string(),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            detail,
            codes,
            hint: RegistryError::hint_for(status.as_u16()),
        }
        .into()
    }
}

/// Client options for a test server: plain HTTP, two retries, backoffs of
/// milliseconds.
#[cfg(test)]
pub(crate) fn test_options(srv: &super::testserver::Server) -> Options {
    Options {
        insecure: vec![srv.name()],
        retries: 2,
        backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        ..Options::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testserver::{Reply, Server};
    use super::*;

    /// An anonymous registry asks for a bearer token in the middle of a
    /// request: the token is fetched (a GET with the scopes, or the OAuth2
    /// refresh-token grant for an identity token) and the request retried
    /// with it; the next request reuses the cached token.
    #[test]
    fn bearer_challenge_then_token_then_retry() {
        let identity = Credential {
            username: credentials::IDENTITY_TOKEN_USER.into(),
            secret: "refresh-1".into(),
            source: "config.json".into(),
        };
        for creds in [None, Some(identity)] {
            let srv = Server::start();
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="reg.test""#,
                srv.name()
            );
            srv.script([
                Reply::status(200),
                Reply::status(401).header("www-authenticate", &challenge),
                Reply::status(200).body(r#"{"access_token":"tok-1"}"#),
                Reply::status(200),
                Reply::status(200),
            ]);
            let oauth = creds.is_some();
            let reg = Registry::connect_with(&srv.name(), &srv.name(), test_options(&srv), creds)
                .unwrap();
            let url = reg.url("/v2/a/b/blobs/sha256:00").unwrap();
            let scopes = pull_scopes("a/b");
            for _ in 0..2 {
                let resp = reg
                    .send(Method::HEAD, &url, &scopes, &HeaderMap::new(), None)
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 200);
            }
            let reqs = srv.take_requests();
            let lines: Vec<String> = reqs.iter().map(|r| r.line()).collect();
            let token = if oauth {
                "POST /token".to_string()
            } else {
                "GET /token?service=reg.test&scope=repository%3Aa%2Fb%3Apull".to_string()
            };
            assert_eq!(
                lines,
                [
                    "GET /v2/",
                    "HEAD /v2/a/b/blobs/sha256:00",
                    &token,
                    "HEAD /v2/a/b/blobs/sha256:00",
                    "HEAD /v2/a/b/blobs/sha256:00",
                ]
            );
            assert_eq!(reqs[1].header("authorization"), None);
            assert_eq!(reqs[3].header("authorization"), Some("Bearer tok-1"));
            assert_eq!(reqs[4].header("authorization"), Some("Bearer tok-1"));
            if oauth {
                let form: HashMap<String, String> =
                    form_urlencoded::parse(&reqs[2].body).into_owned().collect();
                assert_eq!(form["grant_type"], "refresh_token");
                assert_eq!(form["refresh_token"], "refresh-1");
                assert_eq!(form["scope"], "repository:a/b:pull");
                assert_eq!(form["service"], "reg.test");
            }
        }
    }

    /// What `connect` makes of the registry's first answer.
    #[test]
    fn connect_classifies_the_api_check() {
        let srv = Server::start();
        srv.script([Reply::status(404)]);
        let e =
            Registry::connect_with(&srv.name(), &srv.name(), test_options(&srv), None).unwrap_err();
        assert!(
            matches!(e.registry(), Some(RegistryError::Protocol(_))),
            "{e}"
        );
        assert!(e.to_string().contains("is this a registry?"), "{e}");

        // Refused basic credentials fail once, at connect, naming the user.
        let srv = Server::start();
        srv.script([
            Reply::status(401).header("www-authenticate", r#"Basic realm="r""#),
            Reply::status(401).header("www-authenticate", r#"Basic realm="r""#),
        ]);
        let creds = Credential {
            username: "alice".into(),
            secret: "pw-secret".into(),
            source: "auth.json".into(),
        };
        let e = Registry::connect_with(&srv.name(), &srv.name(), test_options(&srv), Some(creds))
            .unwrap_err();
        assert!(
            matches!(e.registry(), Some(RegistryError::Credentials(_))),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("user `alice`") && !msg.contains("pw-secret"),
            "{msg}"
        );
        let reqs = srv.take_requests();
        assert_eq!(reqs.len(), 2);
        assert!(
            reqs[1]
                .header("authorization")
                .is_some_and(|a| a.starts_with("Basic "))
        );
    }
}
