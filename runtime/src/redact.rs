//! Hides secret values in text that leaves the process: the run log files
//! (`runs.jsonl`, `logs.jsonl`) and the MCP log notifications built from
//! the same records.

use std::borrow::Cow;

use serde_json::Value;

use crate::config::{Config, env_var};

/// What a secret value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not treated as secrets (they would blank
/// out ordinary words).
const MIN_SECRET_LEN: usize = 6;

/// The secret values to hide: those of the environment variables the
/// configuration names as secret (each tool server's `pass_env` and
/// `bearer_token_env`), and ael's own bearer token (`AEL_HTTP_TOKEN` or
/// `AEL_HTTP_TOKEN_FILE`).
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the given secret values (longest first, so a secret
    /// containing another is hidden whole).
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = values
            .into_iter()
            .map(|v| v.trim().to_string())
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// The secrets of `config`, read from the environment now (and ael's
    /// own token, also when it comes from `AEL_HTTP_TOKEN_FILE`).
    pub fn from_config(config: &Config) -> Redactor {
        let mut names: Vec<String> = Vec::new();
        for s in config.tool_servers.values() {
            names.extend(s.pass_env.iter().cloned());
            names.extend(s.bearer_token_env.iter().cloned());
        }
        let own = bearer_auth::token_from_env("AEL_HTTP").ok().flatten();
        Redactor::new(names.iter().filter_map(|n| env_var(n)).chain(own))
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
        out
    }
}

impl Redactor {
    /// `v` with every secret value in its strings replaced by [`REDACTED`].
    pub fn redact_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.redact(s).into_owned()),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.redact_value(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.redact_value(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_strings_inside_json() {
        let r = Redactor::new(["key-123456".to_string()]);
        let v = serde_json::json!({"error": "bad key-123456", "n": 1, "a": ["x key-123456"]});
        assert_eq!(
            r.redact_value(&v),
            serde_json::json!({"error": "bad [REDACTED]", "n": 1, "a": ["x [REDACTED]"]})
        );
    }

    #[test]
    fn hides_secrets_longest_first_and_ignores_short_values() {
        let r = Redactor::new([
            "abc".to_string(),
            "key-123456".into(),
            "key-123456-long".into(),
        ]);
        assert_eq!(r.redact("a key-123456-long b"), "a [REDACTED] b");
        assert_eq!(r.redact("x key-123456 y"), "x [REDACTED] y");
        assert_eq!(r.redact("abc stays"), "abc stays");
        assert!(matches!(r.redact("nothing"), Cow::Borrowed(_)));
    }
}
