//! Credentials as docker, podman and skopeo keep them.
//!
//! Looked up, first hit wins:
//! 1. `$REGISTRY_AUTH_FILE` (containers' auth.json format), when set;
//! 2. the docker config, `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`:
//!    `credHelpers[registry]`, else `credsStore`, else `auths[registry]`;
//! 3. containers' auth.json: `$XDG_RUNTIME_DIR/containers/auth.json`, then
//!    `~/.config/containers/auth.json`.
//!
//! A credential helper named in a config but not installed is an error, never
//! a silent anonymous request. Secrets are kept out of `Debug` and of every
//! message.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};

use super::error::RegistryError;
use crate::error::{Error, IoContext, Result};
use crate::reference::DOCKER_HUB;

/// The user name docker uses for an identity token (an OAuth2 refresh token
/// from `auths.*.identitytoken`, or from a helper that answers this name).
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A user name and its secret (password or token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub username: String,
    /// The password or token; never printed.
    pub secret: String,
    /// Where it came from, for messages (a path or `docker-credential-X`).
    pub source: String,
}

impl Credential {
    /// Whether the secret is an identity (OAuth2 refresh) token, traded at
    /// the registry's token service for access tokens instead of being sent
    /// as a password.
    #[must_use]
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// The keys a registry may be stored under in a config's `auths`.
fn keys_for(registry: &str) -> Vec<String> {
    if registry == DOCKER_HUB {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
            format!("https://{registry}/v1/"),
            format!("https://{registry}/v2/"),
        ]
    }
}

/// The key `aelimg login` writes for a registry.
fn login_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

/// The docker config directory.
#[must_use]
pub fn docker_config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::from(RegistryError::Credentials(format!(
                "{} is not valid JSON: {e}",
                path.display()
            )))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

/// Reads `auths[registry]` of a docker config or auth.json.
fn from_auths(doc: &Value, registry: &str, path: &Path) -> Result<Option<Credential>> {
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    for key in keys_for(registry) {
        let Some(entry) = auths.get(&key) else {
            continue;
        };
        let source = path.display().to_string();
        // As docker does: an identity token wins over a user and password.
        if let Some(token) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credential {
                username: IDENTITY_TOKEN_USER.to_string(),
                secret: token.to_string(),
                source,
            }));
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| {
                    Error::from(RegistryError::Credentials(format!(
                        "{source}: auths.\"{key}\".auth is not base64 of USER:PASSWORD"
                    )))
                })?;
            let raw = String::from_utf8(raw).map_err(|_| {
                Error::from(RegistryError::Credentials(format!(
                    "{source}: auths.\"{key}\".auth is not UTF-8"
                )))
            })?;
            let (u, p) = raw.split_once(':').ok_or_else(|| {
                Error::from(RegistryError::Credentials(format!(
                    "{source}: auths.\"{key}\".auth is not base64 of USER:PASSWORD"
                )))
            })?;
            return Ok(Some(Credential {
                username: u.to_string(),
                secret: p.to_string(),
                source,
            }));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            return Ok(Some(Credential {
                username: u.to_string(),
                secret: p.to_string(),
                source,
            }));
        }
    }
    Ok(None)
}

fn helper_program(name: &str) -> String {
    format!("docker-credential-{name}")
}

/// Asks `docker-credential-<helper> get` for the registry's credentials.
fn from_helper(helper: &str, registry: &str, config: &Path) -> Result<Option<Credential>> {
    let prog = helper_program(helper);
    let server = login_key(registry);
    let mut child = Command::new(&prog)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::from(RegistryError::Credentials(format!(
                "{} names the credential helper `{helper}` for {registry}, but `{prog}` cannot be run ({e}): install it or remove it from the config",
                config.display()
            )))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("cannot run {prog}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        // The helper's own output may echo secrets: report only its status.
        return Err(Error::from(RegistryError::Credentials(format!(
            "`{prog} get` failed for {registry} ({})",
            out.status
        ))));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        Error::from(RegistryError::Credentials(format!(
            "`{prog} get` printed something that is not JSON"
        )))
    })?;
    let u = v.get("Username").and_then(Value::as_str).unwrap_or("");
    let s = v.get("Secret").and_then(Value::as_str).unwrap_or("");
    if s.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username: u.to_string(),
        secret: s.to_string(),
        source: prog,
    }))
}

fn from_docker_config(registry: &str) -> Result<Option<Credential>> {
    let Some(dir) = docker_config_dir() else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let Some(doc) = read_json(&path)? else {
        return Ok(None);
    };
    if let Some(helpers) = doc.get("credHelpers").and_then(Value::as_object) {
        for key in keys_for(registry) {
            if let Some(h) = helpers.get(&key).and_then(Value::as_str) {
                return from_helper(h, registry, &path);
            }
        }
    }
    if let Some(store) = doc
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        && let Some(c) = from_helper(store, registry, &path)?
    {
        return Ok(Some(c));
    }
    from_auths(&doc, registry, &path)
}

fn containers_auth_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        out.push(PathBuf::from(d).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        out.push(PathBuf::from(h).join(".config/containers/auth.json"));
    }
    out
}

/// The credentials for a registry (`host[:port]`, or `docker.io`), if any.
pub fn lookup(registry: &str) -> Result<Option<Credential>> {
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        let path = PathBuf::from(f);
        if let Some(doc) = read_json(&path)?
            && let Some(c) = from_auths(&doc, registry, &path)?
        {
            return Ok(Some(c));
        }
    }
    if let Some(c) = from_docker_config(registry)? {
        return Ok(Some(c));
    }
    for path in containers_auth_files() {
        if let Some(doc) = read_json(&path)?
            && let Some(c) = from_auths(&doc, registry, &path)?
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Stores credentials where docker keeps them: through the configured helper,
/// else base64 in `auths` of the docker config, written atomically with mode
/// 0600. Returns where they went.
pub fn store(registry: &str, username: &str, secret: &str) -> Result<String> {
    let dir = docker_config_dir().ok_or_else(|| {
        Error::from(RegistryError::Credentials(
            "neither DOCKER_CONFIG nor HOME is set: nowhere to write credentials".into(),
        ))
    })?;
    let path = dir.join("config.json");
    let mut doc = read_json(&path)?.unwrap_or_else(|| json!({}));
    if !doc.is_object() {
        return Err(Error::from(RegistryError::Credentials(format!(
            "{} is not a JSON object",
            path.display()
        ))));
    }
    let helper = keys_for(registry)
        .iter()
        .find_map(|k| {
            doc.pointer(&format!(
                "/credHelpers/{}",
                k.replace('~', "~0").replace('/', "~1")
            ))
        })
        .or_else(|| doc.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let key = login_key(registry);
    if let Some(h) = helper {
        let prog = helper_program(&h);
        let mut child = Command::new(&prog)
            .arg("store")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::from(RegistryError::Credentials(format!(
                    "{} names the credential helper `{h}`, but `{prog}` cannot be run ({e})",
                    path.display()
                )))
            })?;
        let payload = json!({"ServerURL": key, "Username": username, "Secret": secret});
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(payload.to_string().as_bytes());
        }
        let status = child.wait().ctx(|| format!("cannot run {prog}"))?;
        if !status.success() {
            return Err(Error::from(RegistryError::Credentials(format!(
                "`{prog} store` failed ({status})"
            ))));
        }
        return Ok(prog);
    }
    let auth = base64::engine::general_purpose::STANDARD.format_auth(username, secret);
    let obj = doc.as_object_mut().expect("checked above");
    let auths = obj.entry("auths").or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    auths
        .as_object_mut()
        .expect("an object")
        .insert(key, json!({ "auth": auth }));
    std::fs::create_dir_all(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
    let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Json {
        context: "docker config".into(),
        source: e,
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(&dir)
        .ctx(|| format!("cannot create a temporary file in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .ctx(|| "cannot set permissions".into())?;
    }
    tmp.write_all(&bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .ctx(|| format!("cannot write {}", path.display()))?;
    tmp.persist(&path)
        .map_err(|e| e.error)
        .ctx(|| format!("cannot rename into {}", path.display()))?;
    Ok(path.display().to_string())
}

trait FormatAuth {
    fn format_auth(&self, user: &str, secret: &str) -> String;
}

impl FormatAuth for base64::engine::GeneralPurpose {
    fn format_auth(&self, user: &str, secret: &str) -> String {
        self.encode(format!("{user}:{secret}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_and_redacts() {
        let doc = json!({"auths": {"reg.test:5000": {"auth": "dTpwQHNz"}}});
        let c = from_auths(&doc, "reg.test:5000", Path::new("x.json"))
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "u");
        assert_eq!(c.secret, "p@ss");
        assert!(!format!("{c:?}").contains("p@ss"));
        assert!(
            from_auths(&doc, "other:5000", Path::new("x.json"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn docker_hub_keys() {
        let doc =
            json!({"auths": {"https://index.docker.io/v1/": {"username": "a", "password": "b"}}});
        assert!(
            from_auths(&doc, DOCKER_HUB, Path::new("x"))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn an_identity_token_wins_over_a_password() {
        let doc = json!({"auths": {"acr.test": {"auth": "dTpwQHNz", "identitytoken": "rt-1"}}});
        let c = from_auths(&doc, "acr.test", Path::new("x"))
            .unwrap()
            .unwrap();
        assert!(c.is_identity_token());
        assert_eq!(c.secret, "rt-1");
        assert!(!format!("{c:?}").contains("rt-1"));
    }
}
