//! The standard OCI annotations and labels aelimg adds to every image
//! (decision 0018): `created`, `title`, `version`, `licenses`, the MCP
//! server name, and on request the git `source` and `revision`. Values
//! given in images.yaml or on the command line win over these.

use std::collections::BTreeMap;

use crate::units::rfc3339;

/// `org.opencontainers.image.created`.
pub const CREATED: &str = "org.opencontainers.image.created";
/// `org.opencontainers.image.title`.
pub const TITLE: &str = "org.opencontainers.image.title";
/// `org.opencontainers.image.version`.
pub const VERSION: &str = "org.opencontainers.image.version";
/// `org.opencontainers.image.licenses`.
pub const LICENSES: &str = "org.opencontainers.image.licenses";
/// `org.opencontainers.image.source`.
pub const SOURCE: &str = "org.opencontainers.image.source";
/// `org.opencontainers.image.revision`.
pub const REVISION: &str = "org.opencontainers.image.revision";
/// `org.opencontainers.image.base.name`.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// `org.opencontainers.image.base.digest`.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// The label the official MCP registry checks against `server.json`'s name.
pub const MCP_SERVER_NAME: &str = "io.modelcontextprotocol.server.name";

/// What git says about the sources, for `--annotate-git`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitSource {
    /// The commit checked out (`git rev-parse HEAD`).
    pub revision: String,
    /// The `origin` remote when it is a URL, without credentials.
    pub source: Option<String>,
}

/// What the standard keys of one image are made from.
#[derive(Debug, Clone, Default)]
pub struct Inputs<'a> {
    /// The image name (the default title).
    pub name: &'a str,
    /// SOURCE_DATE_EPOCH, the config's `created`.
    pub created: u64,
    /// images.yaml's `version`.
    pub version: Option<&'a str>,
    /// images.yaml's `licenses`.
    pub licenses: Option<&'a str>,
    /// images.yaml's `mcp.name`.
    pub mcp_name: Option<&'a str>,
    /// `--annotate-git`.
    pub git: Option<&'a GitSource>,
}

/// The standard keys of an image, before explicit values go over them.
#[must_use]
pub fn standard(i: &Inputs<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(CREATED.to_string(), rfc3339(i.created));
    out.insert(TITLE.to_string(), i.name.to_string());
    if let Some(v) = i.version {
        out.insert(VERSION.to_string(), v.to_string());
    }
    if let Some(l) = i.licenses {
        out.insert(LICENSES.to_string(), l.to_string());
    }
    if let Some(n) = i.mcp_name {
        out.insert(MCP_SERVER_NAME.to_string(), n.to_string());
    }
    if let Some(g) = i.git {
        out.insert(REVISION.to_string(), g.revision.clone());
        if let Some(s) = &g.source {
            out.insert(SOURCE.to_string(), s.clone());
        }
    }
    out
}

/// Parses a `--annotation`/`--label` value `KEY=VALUE`; the error names
/// the flag.
///
/// # Errors
/// When there is no `=`, the key is not a valid key or the value holds NUL.
pub fn parse_override(flag: &str, s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{flag} {s}: expected KEY=VALUE"))?;
    crate::values::label_key(k).map_err(|m| format!("{flag} {s}: {m}"))?;
    crate::values::no_nul("value", v).map_err(|m| format!("{flag} {s}: {m}"))?;
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys() {
        let git = GitSource {
            revision: "abc".into(),
            source: Some("https://example.com/r.git".into()),
        };
        let m = standard(&Inputs {
            name: "ael",
            created: 0,
            version: Some("1.0"),
            licenses: None,
            mcp_name: Some("io.github.x/ael"),
            git: Some(&git),
        });
        assert_eq!(m[CREATED], "1970-01-01T00:00:00Z");
        assert_eq!(m[TITLE], "ael");
        assert_eq!(m[VERSION], "1.0");
        assert!(!m.contains_key(LICENSES));
        assert_eq!(m[MCP_SERVER_NAME], "io.github.x/ael");
        assert_eq!(m[REVISION], "abc");
        assert_eq!(m[SOURCE], "https://example.com/r.git");
        let m = standard(&Inputs {
            name: "x",
            ..Inputs::default()
        });
        assert!(!m.contains_key(REVISION) && !m.contains_key(SOURCE));
    }

    #[test]
    fn overrides() {
        assert_eq!(
            parse_override("--label", "a.b=c=d").unwrap(),
            ("a.b".into(), "c=d".into())
        );
        assert!(
            parse_override("--annotation", "novalue")
                .unwrap_err()
                .starts_with("--annotation novalue: expected KEY=VALUE")
        );
        assert!(
            parse_override("--annotation", "=x")
                .unwrap_err()
                .contains("--annotation =x: empty key")
        );
        assert!(parse_override("--label", "a b=x").is_err());
    }
}
