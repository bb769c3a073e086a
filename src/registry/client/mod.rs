//! A small client of the distribution (OCI registry) HTTP API over reqwest's
//! blocking client (rustls, ring): scheme choice, TLS roots, authentication
//! (basic and bearer tokens scoped per repository), redirects that never carry
//! credentials to another host, and retries with capped, jittered backoff
//! that honours `Retry-After`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use reqwest::Url;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};

use super::credentials::{self, Credential};
use super::error::RegistryError;
use crate::error::{Error, Result};
use crate::reference::{host_of, is_loopback};

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

#[derive(Debug, Clone)]
enum Scheme {
    Unknown,
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
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
    creds: Option<Credential>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<String, String>>,
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

/// Whether an HTTP status is worth retrying.
fn retriable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

fn root_store(ca_files: &[PathBuf]) -> Result<rustls::RootCertStore> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut store = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        store.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    }
    for f in ca_files {
        let certs = CertificateDer::pem_file_iter(f)
            .map_err(|e| Error::Request(format!("CA file {}: {e}", f.display())))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Request(format!("CA file {}: {e}", f.display())))?;
        if certs.is_empty() {
            return Err(Error::Request(format!(
                "CA file {}: no PEM certificate in it",
                f.display()
            )));
        }
        for c in certs {
            store.add(c).map_err(|e| {
                Error::Request(format!(
                    "CA file {}: unusable certificate: {e}",
                    f.display()
                ))
            })?;
        }
    }
    Ok(store)
}

fn http_client(opts: &Options) -> Result<Client> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            Error::from(RegistryError::Failed(format!(
                "TLS configuration failed: {e}"
            )))
        })?
        .with_root_certificates(root_store(&opts.ca_files)?)
        .with_no_client_auth();
    let mut b = Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("aelimg/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(300));
    for (name, ip) in &opts.resolve {
        b = b.resolve(name, SocketAddr::new(*ip, 0));
    }
    b.build().map_err(|e| {
        Error::from(RegistryError::Failed(format!(
            "cannot build the HTTP client: {e}"
        )))
    })
}

pub(crate) use crate::error::chain as describe;

/// A pseudo-random number in [0, 1) for jitter (no need for a CSPRNG).
fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    #[allow(clippy::cast_precision_loss)]
    let x = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    x
}

/// One `key=value` list of a WWW-Authenticate challenge.
fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, after) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (q[..end].to_string(), q.get(end + 1..).unwrap_or(""))
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (v[..end].trim().to_string(), &v[end..])
        };
        params.insert(k, val);
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
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
            creds,
            scheme: Mutex::new(Scheme::Unknown),
            tokens: Mutex::new(HashMap::new()),
            opts,
            stats: Stats::default(),
            known: Mutex::new(HashMap::new()),
        };
        let checked = |reg: Self| -> Result<Self> {
            // Credentials are checked once here (as `docker login` does: basic
            // on /v2/, or a token with no scope), so that wrong ones fail with
            // one clear message instead of one per request.
            let auth = !matches!(
                *reg.scheme.lock().expect("scheme"),
                Scheme::Anonymous | Scheme::Unknown
            );
            if auth && reg.creds.is_some() {
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
        self.creds.is_some()
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
        let status = resp.status().as_u16();
        match status {
            200..=299 => {
                *self.scheme.lock().expect("scheme") = Scheme::Anonymous;
                Ok(())
            }
            401 => {
                self.learn(resp.headers())?;
                Ok(())
            }
            _ => Err(Error::from(RegistryError::Failed(format!(
                "{url} answered {} to the API check: is this a registry?",
                resp.status()
            )))),
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

    fn learn(&self, headers: &HeaderMap) -> Result<()> {
        let Some(h) = headers.get(WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()) else {
            return Err(Error::from(RegistryError::Failed(format!(
                "{} answered 401 with no WWW-Authenticate challenge",
                self.name
            ))));
        };
        let (scheme, params) = parse_challenge(h);
        let s = match scheme.as_str() {
            "basic" => Scheme::Basic,
            "bearer" => Scheme::Bearer {
                realm: params.get("realm").cloned().ok_or_else(|| {
                    Error::from(RegistryError::Failed(format!(
                        "{}: bearer challenge without a realm",
                        self.name
                    )))
                })?,
                service: params.get("service").cloned(),
            },
            other => {
                return Err(Error::from(RegistryError::Failed(format!(
                    "{} asks for `{other}` authentication, which aelimg does not speak (basic and bearer only)",
                    self.name
                ))));
            }
        };
        *self.scheme.lock().expect("scheme") = s;
        Ok(())
    }

    /// An absolute URL on this registry (path, or an absolute Location).
    pub fn url(&self, path_or_url: &str) -> Result<Url> {
        self.base.join(path_or_url).map_err(|e| {
            Error::from(RegistryError::Failed(format!(
                "{}: bad URL `{path_or_url}`: {e}",
                self.name
            )))
        })
    }

    fn same_host(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    fn no_creds_error(&self) -> Error {
        Error::from(RegistryError::Failed(format!(
            "{} requires authentication and no credentials were found for it (looked in $REGISTRY_AUTH_FILE, the docker config and containers' auth.json): run `aelimg login {} -u USER --password-stdin`",
            self.name, self.name
        )))
    }

    fn bad_creds_error(&self, what: &str) -> Error {
        let src = self
            .creds
            .as_ref()
            .map_or_else(|| "no credentials".to_string(), |c| c.source.clone());
        let whose = match self.creds.as_ref() {
            Some(c) if c.is_identity_token() => "the identity token".to_string(),
            Some(c) => format!("the credentials for user `{}`", c.username),
            None => "the credentials".to_string(),
        };
        Error::from(RegistryError::Failed(format!(
            "{} refused {whose} (from {src}) to {what} (401 Unauthorized): check them, or run `aelimg login {} -u USER --password-stdin`",
            self.name, self.name
        )))
    }

    fn basic_header(&self) -> Result<HeaderValue> {
        let c = self.creds.as_ref().ok_or_else(|| self.no_creds_error())?;
        if c.is_identity_token() {
            return Err(Error::from(RegistryError::Failed(format!(
                "{}: the credentials from {} are an identity token, which works only with a registry that hands out bearer tokens; this one asks for a user and password (`aelimg login {} -u USER --password-stdin`)",
                self.name, c.source, self.name
            ))));
        }
        let v = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.secret));
        let mut h = HeaderValue::from_str(&format!("Basic {v}")).map_err(|_| {
            Error::from(RegistryError::Failed(
                "credentials hold characters a header cannot".into(),
            ))
        })?;
        h.set_sensitive(true);
        Ok(h)
    }

    /// Fetches a bearer token for these scopes.
    fn token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
        let mut url = Url::parse(realm).map_err(|e| {
            Error::from(RegistryError::Failed(format!(
                "{}: bad token realm `{realm}`: {e}",
                self.name
            )))
        })?;
        if url.scheme() != "https"
            && !is_loopback(url.host_str().unwrap_or(""))
            && !self
                .opts
                .insecure
                .iter()
                .any(|i| host_of(i) == url.host_str().unwrap_or(""))
        {
            return Err(Error::from(RegistryError::Failed(format!(
                "{}: refusing to send credentials to the plain-HTTP token realm {realm}",
                self.name
            ))));
        }
        let req = match self.creds.as_ref().filter(|c| c.is_identity_token()) {
            // OAuth2 refresh-token grant, as docker does with an identity
            // token (distribution's token authentication, "oauth" section).
            Some(c) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", c.secret.clone()),
                    ("client_id", "aelimg".to_string()),
                    ("scope", scopes.join(" ")),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_string()));
                }
                let body = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                self.http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            None => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let req = self.http.get(url.clone());
                if self.creds.is_some() {
                    req.header(AUTHORIZATION, self.basic_header()?)
                } else {
                    req
                }
            }
        };
        let mut last = None;
        for attempt in 0..=self.opts.retries {
            match req.try_clone().expect("no body").send() {
                Ok(resp) if resp.status().is_success() => {
                    let body = resp.bytes().map_err(|e| {
                        Error::from(RegistryError::Failed(format!(
                            "{}: cannot read the token: {e}",
                            self.name
                        )))
                    })?;
                    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                        Error::from(RegistryError::Failed(format!(
                            "{}: token answer is not JSON: {e}",
                            self.name
                        )))
                    })?;
                    return v
                        .get("token")
                        .or_else(|| v.get("access_token"))
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            Error::from(RegistryError::Failed(format!(
                                "{}: token answer holds no token",
                                self.name
                            )))
                        });
                }
                Ok(resp) if resp.status().as_u16() == 401 || resp.status().as_u16() == 403 => {
                    return Err(if self.creds.is_some() {
                        self.bad_creds_error("get a token")
                    } else {
                        self.no_creds_error()
                    });
                }
                Ok(resp) if retriable(resp.status().as_u16()) && attempt < self.opts.retries => {
                    self.pause(attempt, resp.headers());
                }
                Ok(resp) => {
                    return Err(Error::from(RegistryError::Failed(format!(
                        "{}: the token service at {realm} answered {}",
                        self.name,
                        resp.status()
                    ))));
                }
                Err(e) => {
                    last = Some(describe(&e));
                    if attempt < self.opts.retries {
                        self.pause(attempt, &HeaderMap::new());
                    }
                }
            }
        }
        Err(RegistryError::Unreachable {
            target: format!("the token service {realm}"),
            detail: last.unwrap_or_default(),
        }
        .into())
    }

    /// The Authorization header for a request in these scopes, if any.
    fn auth_header(&self, scopes: &[String], refresh: bool) -> Result<Option<HeaderValue>> {
        let scheme = self.scheme.lock().expect("scheme").clone();
        match scheme {
            Scheme::Unknown | Scheme::Anonymous => Ok(None),
            Scheme::Basic => self.basic_header().map(Some),
            Scheme::Bearer { realm, service } => {
                let key = scopes.join(" ");
                if !refresh && let Some(t) = self.tokens.lock().expect("tokens").get(&key) {
                    return Ok(Some(bearer(t)?));
                }
                let t = self.token(&realm, service.as_deref(), scopes)?;
                self.tokens.lock().expect("tokens").insert(key, t.clone());
                Ok(Some(bearer(&t)?))
            }
        }
    }

    fn pause(&self, attempt: u32, headers: &HeaderMap) {
        self.stats.retried.fetch_add(1, Ordering::Relaxed);
        let cap = self.opts.max_backoff;
        let exp = self
            .opts
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(cap);
        // Full jitter between half and all of the exponential delay.
        let mut d = exp.mul_f64(0.5 + 0.5 * jitter());
        if let Some(ra) = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            d = d.max(Duration::from_secs(ra).min(cap));
        }
        std::thread::sleep(d);
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
                && let Some(h) = self.auth_header(scopes, false)?
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
                            return Err(if self.creds.is_some() {
                                self.bad_creds_error(&format!("{method} {}", url.path()))
                            } else {
                                self.no_creds_error()
                            });
                        }
                        self.learn(resp.headers())?;
                        // A fresh token (the cached one may have expired).
                        self.auth_header(scopes, true)?;
                        reauthed = true;
                        continue;
                    }
                    if retriable(status) && attempt < retries {
                        self.pause(attempt, resp.headers());
                        attempt += 1;
                        continue;
                    }
                    if matches!(status, 301 | 302 | 303 | 307 | 308)
                        && (method == Method::GET || method == Method::HEAD)
                    {
                        redirects += 1;
                        if redirects > 5 {
                            return Err(Error::from(RegistryError::Failed(format!(
                                "{}: too many redirects for {}",
                                self.name,
                                url.path()
                            ))));
                        }
                        let loc = resp
                            .headers()
                            .get(LOCATION)
                            .and_then(|l| l.to_str().ok())
                            .ok_or_else(|| {
                                Error::from(RegistryError::Failed(format!(
                                    "{}: redirect without Location",
                                    self.name
                                )))
                            })?;
                        url = url.join(loc).map_err(|e| {
                            Error::from(RegistryError::Failed(format!(
                                "{}: bad redirect: {e}",
                                self.name
                            )))
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

fn bearer(t: &str) -> Result<HeaderValue> {
    let mut h = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
        Error::from(RegistryError::Failed(
            "the registry's token is not a valid header".into(),
        ))
    })?;
    h.set_sensitive(true);
    Ok(h)
}

/// The scopes for pushing to a repository (and mounting from others).
#[must_use]
pub fn push_scopes(repo: &str, mount_from: Option<&str>) -> Vec<String> {
    let mut v = vec![format!("repository:{repo}:pull,push")];
    if let Some(m) = mount_from {
        v.push(format!("repository:{m}:pull"));
    }
    v
}

/// The scope for pulling from a repository.
#[must_use]
pub fn pull_scopes(repo: &str) -> Vec<String> {
    vec![format!("repository:{repo}:pull")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.test/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.test/token");
        assert_eq!(p["service"], "reg");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn jitter_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
