//! Configuration: YAML file at `AEL_CONFIG_PATH` plus environment overrides.

use std::collections::BTreeMap;
use std::num::ParseIntError;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::yaml::YamlError;

/// Why the configuration (file or environment) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid YAML or does not match the schema.
    #[error(transparent)]
    Syntax(#[from] YamlError),
    /// The file parsed but a value is inconsistent (the cause is the source).
    #[error("{}: invalid configuration", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: Box<ConfigError>,
    },
    /// The config file exists (or was asked for) but cannot be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error (part of the message).
        error: std::io::Error,
    },
    /// A boolean setting has another value.
    #[error("{name}: expected a boolean (true/false), got {value:?}")]
    Bool {
        /// Setting (environment variable) name.
        name: String,
        /// The value, trimmed and lower-cased.
        value: String,
    },
    /// `AEL_LOG_FORMAT` is neither `text` nor `json`.
    #[error("AEL_LOG_FORMAT: expected text or json, got {0:?}")]
    LogFormat(String),
    /// `AEL_HTTP_PORT` is not a port number.
    #[error("AEL_HTTP_PORT: expected a port number 0-65535, got {value:?}")]
    Port {
        /// The raw value.
        value: String,
        /// Why it does not parse.
        #[source]
        source: ParseIntError,
    },
    /// Unknown log level.
    #[error("log level: expected one of ERROR, WARN, INFO, DEBUG, TRACE, got {0:?}")]
    LogLevel(String),
    /// A tool server name that cannot be used as `SERVER` in `SERVER.TOOL`.
    #[error("tool_servers: name {0:?} must be non-empty without '.' or spaces")]
    ServerName(String),
    /// A tool server with both `command` and `url`.
    #[error("tool_servers.{0}: set either `command` or `url`, not both")]
    CommandAndUrl(String),
    /// A tool server with neither `command` nor `url`.
    #[error("tool_servers.{0}: expected `command` (stdio) or `url` (streamable HTTP)")]
    NoTransport(String),
    /// A tool server `url` that is not http(s).
    #[error("tool_servers.{name}.url: expected an http:// or https:// URL, got {url:?}")]
    BadUrl {
        /// Tool server name.
        name: String,
        /// The configured URL.
        url: String,
    },
    /// A bearer token for a server that is not reached over HTTP, or from
    /// two places at once.
    #[error("tool_servers.{name}: {what}")]
    Token {
        /// Tool server name.
        name: String,
        /// What is wrong.
        what: &'static str,
    },
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Default config file path.
pub const DEFAULT_CONFIG_PATH: &str = "/app/config/ael-config.yaml";
/// Default workflows directory.
pub const DEFAULT_WORKFLOWS_DIR: &str = "/app/workflows";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/app/data";
/// Default bind address.
pub const DEFAULT_HOST: &str = "0.0.0.0";
/// Default HTTP port.
pub const DEFAULT_PORT: u16 = 8082;

/// Top-level configuration file schema (see docs/ael.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Log level: ERROR, WARN, INFO, DEBUG, TRACE (case-insensitive).
    pub log_level: String,
    /// Log line format on stderr: `text` or `json` (one JSON object per line).
    pub log_format: LogFormat,
    /// Directory holding workflow YAML files.
    pub workflows_dir: PathBuf,
    /// Directory for persistent data (run history, logs).
    pub data_dir: PathBuf,
    /// Poll the workflows directory for changes.
    pub hot_reload: bool,
    /// Poll interval for hot reload, in milliseconds.
    pub reload_interval_ms: u64,
    /// Runs kept in the history (older ones are dropped at start-up; 0 = all).
    pub history_limit: usize,
    /// HTTP transport settings.
    pub http: HttpConfig,
    /// Tool servers ael connects to as an MCP client, by name.
    pub tool_servers: BTreeMap<String, ToolServerConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            log_level: "INFO".into(),
            log_format: LogFormat::Text,
            workflows_dir: DEFAULT_WORKFLOWS_DIR.into(),
            data_dir: DEFAULT_DATA_DIR.into(),
            hot_reload: false,
            reload_interval_ms: 1000,
            history_limit: 10_000,
            http: HttpConfig::default(),
            tool_servers: BTreeMap::new(),
        }
    }
}

/// The `http:` section: where and how the HTTP transport listens.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Bind address.
    pub host: String,
    /// Port (0 picks a free port).
    pub port: u16,
    /// Host header values accepted by the MCP endpoint (`/mcp`). Entries
    /// may be `name` or `name:port`; `"*"` accepts any Host.
    pub allowed_hosts: Vec<String>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace_ms: u64,
}

impl HttpConfig {
    /// Host headers accepted on /mcp: the configured list plus a specific
    /// bind address and `$HOSTNAME`. Empty means any Host.
    pub fn effective_allowed_hosts(&self) -> Vec<String> {
        let mut hosts = self.allowed_hosts.clone();
        if hosts.is_empty() || hosts.iter().any(|h| h == "*") {
            return Vec::new();
        }
        let bind = self.host.trim().trim_matches(['[', ']']).to_string();
        let extra = [
            (!matches!(bind.as_str(), "" | "0.0.0.0" | "::")).then_some(bind),
            env_var("HOSTNAME"),
        ];
        for h in extra.into_iter().flatten() {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        hosts
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            shutdown_grace_ms: 5000,
        }
    }
}

/// An MCP tool server: either a `command` spawned over stdio or a `url`
/// reached over streamable HTTP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolServerConfig {
    /// Executable to spawn (stdio transport).
    #[serde(default)]
    pub command: Option<String>,
    /// Arguments of `command`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Literal (non-secret) environment variables for the child.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of environment variables copied from ael's environment into the
    /// child (use this for secrets; values never appear in config or logs).
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// Working directory for the child process.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP endpoint (HTTP transport).
    #[serde(default)]
    pub url: Option<String>,
    /// Name of an environment variable holding a bearer token for `url`.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// A file holding a bearer token for `url` (a Docker or Kubernetes
    /// secret, e.g. `/run/secrets/native_tools_token`), read at each
    /// connect, whitespace trimmed.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// If true, /health reports 503 while this server is not connected.
    #[serde(default)]
    pub required: bool,
    /// Set to false to ignore this entry.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Connection (spawn + initialize) timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Default timeout of a single tool call (a step's `timeout_ms` overrides it).
    #[serde(default = "default_call_timeout")]
    pub call_timeout_ms: u64,
}

fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> u64 {
    10_000
}
fn default_call_timeout() -> u64 {
    60_000
}

impl ToolServerConfig {
    /// `http` for a `url` server, else `stdio`.
    pub fn transport_name(&self) -> &'static str {
        if self.url.is_some() { "http" } else { "stdio" }
    }
}

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the config came from, for diagnostics.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigSource {
    /// The config file path that was considered.
    pub path: PathBuf,
    /// Whether that file existed and was read.
    pub loaded: bool,
}

/// Reads an environment variable, treating empty values as unset.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Parses a boolean setting (`true/false`, `1/0`, `yes/no`, `on/off`).
pub fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::Bool {
            name: name.to_string(),
            value: other.to_string(),
        }),
    }
}

impl Config {
    /// Parses a config document (no env overrides).
    pub fn from_yaml(path: &Path, text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let cfg: Config = serde_saphyr::from_str(text).map_err(|e| YamlError::new(path, &e))?;
        cfg.validate().map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        Ok(cfg)
    }

    /// Loads the config from `explicit` (CLI flag) or `AEL_CONFIG_PATH` or the
    /// default path, then applies environment overrides.
    pub fn load(explicit: Option<&Path>) -> Result<(Self, ConfigSource)> {
        let (path, must_exist) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => match env_var("AEL_CONFIG_PATH") {
                Some(p) => (PathBuf::from(p), true),
                None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
            },
        };
        let (mut cfg, loaded) = match std::fs::read_to_string(&path) {
            Ok(text) => (Config::from_yaml(&path, &text)?, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                (Config::default(), false)
            }
            Err(error) => return Err(ConfigError::Read { path, error }),
        };
        cfg.apply_env()?;
        Ok((cfg, ConfigSource { path, loaded }))
    }

    /// Applies `AEL_*` environment overrides.
    pub fn apply_env(&mut self) -> Result<()> {
        if let Some(v) = env_var("AEL_LOG_LEVEL") {
            self.log_level = v;
        }
        if let Some(v) = env_var("AEL_LOG_FORMAT") {
            self.log_format = match v.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(ConfigError::LogFormat(other.to_string())),
            };
        }
        if let Some(v) = env_var("AEL_HTTP_HOST") {
            self.http.host = v;
        }
        if let Some(v) = env_var("AEL_HTTP_PORT") {
            self.http.port = v
                .trim()
                .parse()
                .map_err(|source| ConfigError::Port { value: v, source })?;
        }
        if let Some(v) = env_var("AEL_HOT_RELOAD") {
            self.hot_reload = parse_bool("AEL_HOT_RELOAD", &v)?;
        }
        if let Some(v) = env_var("AEL_WORKFLOWS_DIR") {
            self.workflows_dir = v.into();
        }
        if let Some(v) = env_var("AEL_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env_var("AEL_ALLOWED_HOSTS") {
            self.http.allowed_hosts = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        parse_log_level(&self.log_level)?;
        Ok(())
    }

    /// Checks values the schema cannot: log level and tool server entries.
    pub fn validate(&self) -> Result<()> {
        parse_log_level(&self.log_level)?;
        for (name, ts) in &self.tool_servers {
            if name.is_empty() || name.contains('.') || name.contains(char::is_whitespace) {
                return Err(ConfigError::ServerName(name.clone()));
            }
            match (&ts.command, &ts.url) {
                (Some(_), Some(_)) => return Err(ConfigError::CommandAndUrl(name.clone())),
                (None, None) => return Err(ConfigError::NoTransport(name.clone())),
                (None, Some(u)) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                    return Err(ConfigError::BadUrl {
                        name: name.clone(),
                        url: u.clone(),
                    });
                }
                _ => {}
            }
            let token = |what| ConfigError::Token {
                name: name.clone(),
                what,
            };
            let has_token = ts.bearer_token_env.is_some() || ts.bearer_token_file.is_some();
            if ts.url.is_none() && has_token {
                return Err(token(
                    "a bearer token (bearer_token_env, bearer_token_file) needs a `url` server",
                ));
            }
            if ts.bearer_token_env.is_some() && ts.bearer_token_file.is_some() {
                return Err(token("set bearer_token_env or bearer_token_file, not both"));
            }
        }
        Ok(())
    }
}

/// Parses a log level name (case-insensitive; WARNING, CRITICAL and FATAL
/// are accepted as aliases).
pub fn parse_log_level(s: &str) -> Result<tracing::Level> {
    match s.trim().to_ascii_uppercase().as_str() {
        "ERROR" | "CRITICAL" | "FATAL" => Ok(tracing::Level::ERROR),
        "WARN" | "WARNING" => Ok(tracing::Level::WARN),
        "INFO" => Ok(tracing::Level::INFO),
        "DEBUG" => Ok(tracing::Level::DEBUG),
        "TRACE" => Ok(tracing::Level::TRACE),
        other => Err(ConfigError::LogLevel(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_config() {
        let text = "log_level: debug\nworkflows_dir: /w\nhttp:\n  port: 9000\n  allowed_hosts: ['*']\ntool_servers:\n  native:\n    command: native-tools\n    args: [--root, /app/data]\n    pass_env: [KAFKA_BOOTSTRAP_SERVERS]\n    required: false\n";
        let cfg = Config::from_yaml(Path::new("c.yaml"), text).unwrap();
        assert_eq!(cfg.http.port, 9000);
        assert_eq!(cfg.http.host, "0.0.0.0");
        assert_eq!(cfg.workflows_dir, PathBuf::from("/w"));
        let native = &cfg.tool_servers["native"];
        assert_eq!(native.command.as_deref(), Some("native-tools"));
        assert_eq!(native.args, vec!["--root", "/app/data"]);
        assert!(!native.required);
        assert!(native.enabled);
    }

    #[test]
    fn bearer_token_file_is_for_http_servers_only() {
        let ok = "tool_servers:\n  native:\n    url: http://native-tools:8083/mcp\n    bearer_token_file: /run/secrets/t\n";
        let cfg = Config::from_yaml(Path::new("c.yaml"), ok).unwrap();
        assert_eq!(
            cfg.tool_servers["native"].bearer_token_file.as_deref(),
            Some(Path::new("/run/secrets/t"))
        );
        let stdio = "tool_servers:\n  native:\n    command: x\n    bearer_token_file: /t\n";
        let both = "tool_servers:\n  native:\n    url: http://x/mcp\n    bearer_token_file: /t\n    bearer_token_env: T\n";
        for (text, want) in [(stdio, "needs a `url` server"), (both, "not both")] {
            let err = Config::from_yaml(Path::new("c.yaml"), text).unwrap_err();
            let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
            assert!(chain.contains(want), "{chain}");
        }
    }

    #[test]
    fn unknown_field_reports_line_and_column() {
        let text = "log_level: INFO\nhttp:\n  prot: 9000\n";
        let err = Config::from_yaml(Path::new("cfg.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cfg.yaml:3:"), "{err}");
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn wrong_type_reports_location() {
        let text = "http:\n  port: eighty\n";
        let err = Config::from_yaml(Path::new("cfg.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cfg.yaml:2:"), "{err}");
    }

    #[test]
    fn tool_server_needs_command_or_url() {
        let text = "tool_servers:\n  x:\n    required: true\n";
        let err = Config::from_yaml(Path::new("c.yaml"), text).unwrap_err();
        assert_eq!(err.to_string(), "c.yaml: invalid configuration");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("expected `command`"), "{cause}");
    }

    #[test]
    fn allowed_hosts_include_specific_bind_address() {
        let mut h = HttpConfig {
            host: "10.1.2.3".into(),
            ..HttpConfig::default()
        };
        let eff = h.effective_allowed_hosts();
        assert!(eff.contains(&"10.1.2.3".to_string()) && eff.contains(&"localhost".to_string()));
        h.allowed_hosts = vec!["*".into()];
        assert!(h.effective_allowed_hosts().is_empty());
    }

    #[test]
    fn log_levels_case_insensitive() {
        assert_eq!(parse_log_level("info").unwrap(), tracing::Level::INFO);
        assert_eq!(parse_log_level("Debug").unwrap(), tracing::Level::DEBUG);
        assert!(parse_log_level("loud").is_err());
    }
}
