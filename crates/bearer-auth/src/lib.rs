//! Bearer-token protection for an MCP endpoint served with axum.
//!
//! The token is a secret, so it comes from the environment only:
//! `<PREFIX>_TOKEN`, or the file named by `<PREFIX>_TOKEN_FILE` (how Docker
//! and Kubernetes mount secrets). Requests without `Authorization: Bearer
//! <token>` get 401 with a `WWW-Authenticate` challenge; the comparison takes
//! the same time whatever the bytes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

/// Why no token could be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Both variables are set.
    #[error("set {0} or {1}, not both")]
    Both(String, String),
    /// The token file cannot be read.
    #[error("{var}: cannot read {path}: {source}")]
    Unreadable {
        /// The `_FILE` variable.
        var: String,
        /// Its value.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token file holds nothing but whitespace.
    #[error("{var}: {path} is empty")]
    Empty {
        /// The `_FILE` variable.
        var: String,
        /// Its value.
        path: String,
    },
}

/// Reads the token from `<prefix>_TOKEN` or the file named by
/// `<prefix>_TOKEN_FILE` (whitespace around it trimmed); `None` when neither
/// is set (empty counts as unset).
///
/// # Errors
/// When both are set, or the file cannot be read or is empty.
pub fn token_from_env(prefix: &str) -> Result<Option<String>, TokenError> {
    token_from(prefix, |name| std::env::var(name).ok())
}

/// [`token_from_env`] with the variables looked up by `get`.
fn token_from(
    prefix: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, TokenError> {
    let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let (var, file_var) = (format!("{prefix}_TOKEN"), format!("{prefix}_TOKEN_FILE"));
    match (get(&var), get(&file_var)) {
        (Some(_), Some(_)) => Err(TokenError::Both(var, file_var)),
        (Some(t), None) => Ok(Some(t.trim().to_string())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|source| TokenError::Unreadable {
                var: file_var.clone(),
                path: path.clone(),
                source,
            })?;
            match text.trim() {
                "" => Err(TokenError::Empty {
                    var: file_var,
                    path,
                }),
                t => Ok(Some(t.to_string())),
            }
        }
        (None, None) => Ok(None),
    }
}

/// The expected token and the realm named in the 401 challenge.
#[derive(Clone)]
pub struct Bearer {
    token: Arc<str>,
    realm: &'static str,
}

impl Bearer {
    /// A guard for `token`, answering 401 with `realm` in the challenge.
    #[must_use]
    pub fn new(token: &str, realm: &'static str) -> Self {
        Self {
            token: token.into(),
            realm,
        }
    }

    /// Whether an `Authorization` header value carries the token.
    #[must_use]
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        let given = authorization
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        given.is_some_and(|t| bool::from(t.as_bytes().ct_eq(self.token.as_bytes())))
    }
}

/// axum middleware: passes requests that carry the token, answers 401
/// otherwise. Use with `axum::middleware::from_fn_with_state(bearer, require)`.
pub async fn require(State(b): State<Bearer>, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if b.accepts(header) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, format!("Bearer realm=\"{}\"", b.realm))],
        Json(serde_json::json!({
            "error": "missing or wrong bearer token: send Authorization: Bearer <token>"
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_exact_token_with_the_bearer_scheme() {
        let b = Bearer::new("s3cret", "t");
        assert!(b.accepts(Some("Bearer s3cret")));
        assert!(b.accepts(Some("bearer  s3cret ")));
        assert!(!b.accepts(None));
        assert!(!b.accepts(Some("Bearer s3cre")));
        assert!(!b.accepts(Some("Bearer s3cret2")));
        assert!(!b.accepts(Some("Basic s3cret")));
        assert!(!b.accepts(Some("s3cret")));
        assert!(!b.accepts(Some("Bearer ")));
    }

    #[test]
    fn token_from_a_variable_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let path = file.to_str().unwrap().to_string();
        let env = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect();
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            }
        };
        assert!(token_from("T", env(&[])).unwrap().is_none());
        assert!(token_from("T", env(&[("T_TOKEN", " ")])).unwrap().is_none());
        assert_eq!(
            token_from("T", env(&[("T_TOKEN", "abc\n")]))
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        std::fs::write(&file, "  from-file\n").unwrap();
        assert_eq!(
            token_from("T", env(&[("T_TOKEN_FILE", &path)]))
                .unwrap()
                .as_deref(),
            Some("from-file")
        );
        let both = token_from("T", env(&[("T_TOKEN", "a"), ("T_TOKEN_FILE", &path)]));
        assert_eq!(
            both.unwrap_err().to_string(),
            "set T_TOKEN or T_TOKEN_FILE, not both"
        );
        std::fs::write(&file, "\n").unwrap();
        let empty = token_from("T", env(&[("T_TOKEN_FILE", &path)])).unwrap_err();
        assert!(empty.to_string().ends_with("is empty"), "{empty}");
        let missing = token_from("T", env(&[("T_TOKEN_FILE", "/nonexistent/t")])).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("T_TOKEN_FILE: cannot read /nonexistent/t")
        );
    }
}
