//! `ael health`: probe a running server's /health endpoint.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::Cli;
use crate::config::{self, Config};
use crate::http;
use crate::output::out;

/// Address to probe for a bind address: wildcards and empty mean loopback.
fn probe_host(bind: &str) -> String {
    match bind.trim() {
        "" | "0.0.0.0" | "localhost" => "127.0.0.1".to_string(),
        "::" | "[::]" | "::1" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    }
}

/// The URL `serve` listens on: env, then config file, then default.
fn default_url(cli: &Cli) -> Result<String> {
    let file = Config::load(cli.config.as_deref())
        .ok()
        .map(|(c, _)| c.http);
    let port = match config::env_var("AEL_HTTP_PORT") {
        Some(p) => p.trim().parse::<u16>().context("AEL_HTTP_PORT")?,
        None => file
            .as_ref()
            .map(|h| h.port)
            .unwrap_or(config::DEFAULT_PORT),
    };
    let host = config::env_var("AEL_HTTP_HOST")
        .or(file.map(|h| h.host))
        .unwrap_or_default();
    Ok(format!("http://{}:{port}/health", probe_host(&host)))
}

/// Probes `url` (default: the local server); success when it answers 200.
pub async fn run(cli: &Cli, url: Option<&str>, timeout_ms: u64, quiet: bool) -> Result<ExitCode> {
    let url = match url {
        Some(u) => u.to_string(),
        None => default_url(cli)?,
    };
    match http::probe(&url, Duration::from_millis(timeout_ms)).await {
        Ok((status, body)) => {
            if !quiet {
                out(body.trim());
            }
            if status == 200 {
                Ok(ExitCode::SUCCESS)
            } else {
                if !quiet {
                    eprintln!("ael health: {url} answered HTTP {status}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
        Err(e) => {
            if !quiet {
                eprintln!("ael health: {url}: {:#}", anyhow::Error::from(e));
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_host_maps_wildcards_to_loopback() {
        assert_eq!(probe_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(probe_host(""), "127.0.0.1");
        assert_eq!(probe_host("::"), "[::1]");
        assert_eq!(probe_host("10.1.2.3"), "10.1.2.3");
        assert_eq!(probe_host("fe80::1"), "[fe80::1]");
    }
}
