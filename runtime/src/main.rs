//! `ael`: the AEL runtime — MCP server, workflow engine and CLI.

mod app;
mod cli;
mod commands;
mod config;
mod definition;
mod engine;
mod http;
mod logging;
mod mcp;
mod output;
mod reaper;
mod redact;
mod signals;
mod store;
mod template;
mod tools;
mod validate;
mod workflow;
mod yaml;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::output::{out, pretty};

/// Dispatches a subcommand.
async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Serve {
            transport,
            host,
            port,
            reload,
        } => {
            commands::serve::run(&cli, *transport, host.as_deref(), *port, *reload).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Health {
            url,
            timeout_ms,
            quiet,
        } => commands::health::run(&cli, url.as_deref(), *timeout_ms, *quiet).await,
        Command::Workflows { command } => {
            let (cfg, _) = cli.load_config()?;
            logging::init(&cfg.log_level, cfg.log_format)?;
            commands::workflows::run(cfg, command).await
        }
        Command::Runs { command } => {
            let (cfg, _) = cli.load_config()?;
            logging::init(&cfg.log_level, cfg.log_format)?;
            commands::runs::run(&cfg, command)
        }
        Command::Config => {
            let (cfg, src) = cli.load_config()?;
            out(&pretty(&json!({"source": src, "config": cfg})));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ael: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli));
    // Do not wait for lingering blocking tasks (e.g. a stdin reader).
    rt.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ael: {e:#}");
            ExitCode::FAILURE
        }
    }
}
