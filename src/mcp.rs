//! The official MCP registry's `server.json` for an image that holds an MCP
//! server (images.yaml `mcp:`), written after a push, when the image's
//! reference by digest is known (decision 0018).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::plan::McpPlan;

/// The `$schema` of the server.json files aelimg writes: the version vendored
/// in `fixtures/mcp-registry`.
pub const SCHEMA_URL: &str =
    "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json";

/// The forge a repository URL is on, as server.json's `repository.source`
/// names it (`github`, `gitlab`, else the host).
fn forge(url: &str) -> String {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    match host {
        "github.com" => "github".to_string(),
        "gitlab.com" => "gitlab".to_string(),
        other => other.to_string(),
    }
}

/// The server.json of an MCP server image pushed as `identifier`
/// (`REGISTRY/REPO@sha256:…`), at `version`.
#[must_use]
pub fn server_json(m: &McpPlan, version: &str, identifier: &str) -> Value {
    let transport = match &m.url {
        Some(url) => json!({"type": "streamable-http", "url": url}),
        None => json!({"type": "stdio"}),
    };
    let mut package = Map::new();
    package.insert("registryType".into(), json!("oci"));
    package.insert("identifier".into(), json!(identifier));
    package.insert("transport".into(), transport);
    if !m.environment_variables.is_empty() {
        let vars = m
            .environment_variables
            .iter()
            .map(|e| {
                let mut v = Map::new();
                v.insert("name".into(), json!(e.name));
                if let Some(d) = &e.description {
                    v.insert("description".into(), json!(d));
                }
                v.insert("isRequired".into(), json!(e.required));
                v.insert("isSecret".into(), json!(e.secret));
                if let Some(d) = &e.default {
                    v.insert("default".into(), json!(d));
                }
                Value::Object(v)
            })
            .collect::<Vec<_>>();
        package.insert("environmentVariables".into(), Value::Array(vars));
    }
    let mut out = Map::new();
    out.insert("$schema".into(), json!(SCHEMA_URL));
    out.insert("name".into(), json!(m.name));
    out.insert("description".into(), json!(m.description));
    out.insert("version".into(), json!(version));
    if let Some(r) = &m.repository {
        out.insert("repository".into(), json!({"url": r, "source": forge(r)}));
    }
    out.insert("packages".into(), json!([Value::Object(package)]));
    Value::Object(out)
}

/// Where the server.json of image `name` goes under `dir`:
/// `DIR/NAME/server.json` (the file name the registry's publisher reads).
#[must_use]
pub fn server_json_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("server.json")
}

/// Writes `value` to `path` atomically (creating its directory), pretty
/// printed with a final newline.
///
/// # Errors
/// When the directory or the file cannot be written.
pub fn write(path: &Path, value: &Value) -> Result<()> {
    let dir = crate::fsutil::parent(path);
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::Error::io(format!("cannot create {}", dir.display()), e))?;
    }
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| crate::Error::json("server.json", e))?;
    bytes.push(b'\n');
    crate::fsutil::atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::McpEnv;

    #[test]
    fn stdio_and_http() {
        let mut m = McpPlan {
            name: "io.github.aelimg/ael".into(),
            description: "AEL".into(),
            url: None,
            repository: Some("https://github.com/aelimg/aelimg".into()),
            environment_variables: vec![McpEnv {
                name: "AEL_LOG_LEVEL".into(),
                description: None,
                required: false,
                secret: false,
                default: Some("info".into()),
            }],
        };
        let v = server_json(&m, "0.1.0", "r.io/ael@sha256:00");
        assert_eq!(v["packages"][0]["transport"], json!({"type": "stdio"}));
        assert_eq!(v["packages"][0]["identifier"], "r.io/ael@sha256:00");
        assert_eq!(v["repository"]["source"], "github");
        assert_eq!(
            v["packages"][0]["environmentVariables"][0]["default"],
            "info"
        );
        m.url = Some("http://localhost:8082/mcp".into());
        let v = server_json(&m, "0.1.0", "x");
        assert_eq!(v["packages"][0]["transport"]["type"], "streamable-http");
    }
}
