//! Authentication: WWW-Authenticate challenges, basic credentials, bearer
//! tokens from the registry's token service (scoped per repository and
//! cached), and the OAuth2 refresh-token grant for identity tokens.
//!
//! Depends on [`super::retry`] only; the HTTP client and the retry budget
//! are passed in by the caller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use base64::Engine as _;
use reqwest::Url;
use reqwest::blocking::Client;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};

use super::super::credentials::Credential;
use super::super::error::RegistryError;
use super::retry::{self, Policy};
use crate::error::{Error, Result, chain as describe};
use crate::reference::{host_of, is_loopback};

/// How a registry wants to be authenticated, as learnt from its challenge.
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

/// What a token request needs from the connection.
pub(super) struct TokenClient<'a> {
    /// The HTTP client.
    pub http: &'a Client,
    /// Retries after the first attempt.
    pub retries: u32,
    /// How long to wait between attempts.
    pub policy: Policy,
    /// Counts the retries.
    pub retried: &'a AtomicU64,
}

/// The authentication state of one registry connection.
pub(super) struct Auth {
    registry: String,
    creds: Option<Credential>,
    /// Registries (`host[:port]`) reached over plain HTTP: a token realm on
    /// one of these hosts may be plain HTTP too.
    insecure: Vec<String>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<String, String>>,
}

impl Auth {
    pub(super) fn new(registry: &str, creds: Option<Credential>, insecure: Vec<String>) -> Self {
        Self {
            registry: registry.to_string(),
            creds,
            insecure,
            scheme: Mutex::new(Scheme::Unknown),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn has_credentials(&self) -> bool {
        self.creds.is_some()
    }

    /// The registry answered `/v2/` without asking for credentials.
    pub(super) fn set_anonymous(&self) {
        *self.scheme.lock().expect("scheme") = Scheme::Anonymous;
    }

    /// Whether the registry asks for credentials and we have some to check.
    pub(super) fn should_check_login(&self) -> bool {
        let auth = !matches!(
            *self.scheme.lock().expect("scheme"),
            Scheme::Anonymous | Scheme::Unknown
        );
        auth && self.creds.is_some()
    }

    /// Learns the scheme from a 401's `WWW-Authenticate`.
    pub(super) fn learn(&self, headers: &HeaderMap) -> Result<()> {
        let Some(h) = headers.get(WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()) else {
            return Err(RegistryError::Protocol(format!(
                "{} answered 401 with no WWW-Authenticate challenge",
                self.registry
            ))
            .into());
        };
        let (scheme, params) = parse_challenge(h);
        let s = match scheme.as_str() {
            "basic" => Scheme::Basic,
            "bearer" => Scheme::Bearer {
                realm: params.get("realm").cloned().ok_or_else(|| {
                    RegistryError::Protocol(format!(
                        "{}: bearer challenge without a realm",
                        self.registry
                    ))
                })?,
                service: params.get("service").cloned(),
            },
            other => {
                return Err(RegistryError::Protocol(format!(
                    "{} asks for `{other}` authentication, which aelimg does not speak (basic and bearer only)",
                    self.registry
                ))
                .into());
            }
        };
        *self.scheme.lock().expect("scheme") = s;
        Ok(())
    }

    /// The error for a 401 (or a refused token): no credentials, or
    /// credentials that were refused for `what`.
    pub(super) fn refused(&self, what: &str) -> Error {
        if self.creds.is_some() {
            self.bad_creds_error(what)
        } else {
            self.no_creds_error()
        }
    }

    fn no_creds_error(&self) -> Error {
        RegistryError::Credentials(format!(
            "{} requires authentication and no credentials were found for it (looked in $REGISTRY_AUTH_FILE, the docker config and containers' auth.json): run `aelimg login {} -u USER --password-stdin`",
            self.registry, self.registry
        ))
        .into()
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
        RegistryError::Credentials(format!(
            "{} refused {whose} (from {src}) to {what} (401 Unauthorized): check them, or run `aelimg login {} -u USER --password-stdin`",
            self.registry, self.registry
        ))
        .into()
    }

    fn basic_header(&self) -> Result<HeaderValue> {
        let c = self.creds.as_ref().ok_or_else(|| self.no_creds_error())?;
        if c.is_identity_token() {
            return Err(RegistryError::Credentials(format!(
                "{}: the credentials from {} are an identity token, which works only with a registry that hands out bearer tokens; this one asks for a user and password (`aelimg login {} -u USER --password-stdin`)",
                self.registry, c.source, self.registry
            ))
            .into());
        }
        let v = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.secret));
        let mut h = HeaderValue::from_str(&format!("Basic {v}")).map_err(|_| {
            RegistryError::Credentials("credentials hold characters a header cannot".into())
        })?;
        h.set_sensitive(true);
        Ok(h)
    }

    /// The Authorization header for a request in these scopes, if any; a
    /// fresh token when `refresh` (the cached one may have expired).
    pub(super) fn header(
        &self,
        t: &TokenClient<'_>,
        scopes: &[String],
        refresh: bool,
    ) -> Result<Option<HeaderValue>> {
        let scheme = self.scheme.lock().expect("scheme").clone();
        match scheme {
            Scheme::Unknown | Scheme::Anonymous => Ok(None),
            Scheme::Basic => self.basic_header().map(Some),
            Scheme::Bearer { realm, service } => {
                let key = scopes.join(" ");
                if !refresh && let Some(tok) = self.tokens.lock().expect("tokens").get(&key) {
                    return Ok(Some(bearer(tok)?));
                }
                let tok = self.token(t, &realm, service.as_deref(), scopes)?;
                self.tokens.lock().expect("tokens").insert(key, tok.clone());
                Ok(Some(bearer(&tok)?))
            }
        }
    }

    /// Fetches a bearer token for these scopes.
    fn token(
        &self,
        t: &TokenClient<'_>,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String> {
        let name = &self.registry;
        let mut url = Url::parse(realm).map_err(|e| {
            RegistryError::Protocol(format!("{name}: bad token realm `{realm}`: {e}"))
        })?;
        let host = url.host_str().unwrap_or("");
        if url.scheme() != "https"
            && !is_loopback(host)
            && !self.insecure.iter().any(|i| host_of(i) == host)
        {
            return Err(RegistryError::Protocol(format!(
                "{name}: refusing to send credentials to the plain-HTTP token realm {realm}"
            ))
            .into());
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
                t.http
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
                let req = t.http.get(url.clone());
                if self.creds.is_some() {
                    req.header(AUTHORIZATION, self.basic_header()?)
                } else {
                    req
                }
            }
        };
        let mut last = None;
        for attempt in 0..=t.retries {
            match req.try_clone().expect("no body").send() {
                Ok(resp) if resp.status().is_success() => {
                    let body = resp.bytes().map_err(|e| {
                        RegistryError::Transfer(format!("{name}: cannot read the token: {e}"))
                    })?;
                    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                        RegistryError::Protocol(format!("{name}: token answer is not JSON: {e}"))
                    })?;
                    return v
                        .get("token")
                        .or_else(|| v.get("access_token"))
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            RegistryError::Protocol(format!("{name}: token answer holds no token"))
                                .into()
                        });
                }
                Ok(resp) if resp.status().as_u16() == 401 || resp.status().as_u16() == 403 => {
                    return Err(self.refused("get a token"));
                }
                Ok(resp) if retry::retriable(resp.status().as_u16()) && attempt < t.retries => {
                    t.policy.pause(attempt, resp.headers(), t.retried);
                }
                Ok(resp) => {
                    return Err(RegistryError::Protocol(format!(
                        "{name}: the token service at {realm} answered {}",
                        resp.status()
                    ))
                    .into());
                }
                Err(e) => {
                    last = Some(describe(&e));
                    if attempt < t.retries {
                        t.policy.pause(attempt, &HeaderMap::new(), t.retried);
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
}

fn bearer(t: &str) -> Result<HeaderValue> {
    let mut h = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
        RegistryError::Protocol("the registry's token is not a valid header".into())
    })?;
    h.set_sensitive(true);
    Ok(h)
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
    fn bad_challenges_are_protocol_errors() {
        let auth = Auth::new("r.test", None, Vec::new());
        for (challenge, want) in [
            (None, "answered 401 with no WWW-Authenticate challenge"),
            (
                Some("Bearer service=\"x\""),
                "bearer challenge without a realm",
            ),
            (Some("Negotiate abc"), "asks for `negotiate` authentication"),
        ] {
            let mut h = HeaderMap::new();
            if let Some(c) = challenge {
                h.insert(WWW_AUTHENTICATE, HeaderValue::from_static(c));
            }
            let e = auth.learn(&h).unwrap_err();
            assert!(
                matches!(e.registry(), Some(RegistryError::Protocol(m)) if m.contains(want)),
                "{e}"
            );
        }
    }

    #[test]
    fn refusals_name_the_credentials_never_the_secret() {
        let cred = Credential {
            username: "alice".into(),
            secret: "s3cret-pw".into(),
            source: "/home/a/.docker/config.json".into(),
        };
        let with = Auth::new("r.test", Some(cred), Vec::new());
        let without = Auth::new("r.test", None, Vec::new());
        for (auth, want) in [
            (&with, "refused the credentials for user `alice`"),
            (&without, "no credentials were found"),
        ] {
            let e = auth.refused("get a token");
            assert!(matches!(e.registry(), Some(RegistryError::Credentials(_))));
            let m = e.to_string();
            assert!(m.contains(want), "{m}");
            assert!(!m.contains("s3cret-pw"), "{m}");
        }
    }
}
