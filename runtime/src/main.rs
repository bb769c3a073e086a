//! `ael`: the AEL runtime — MCP server, workflow engine and CLI.

// Some helpers are only used by later features and tests.
#![allow(dead_code)]

mod app;
mod config;
mod http;
mod template;
mod validate;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "ael",
    version,
    about = "AEL runtime: MCP server, workflow engine and CLI"
)]
struct Cli {
    /// Config file (default: $AEL_CONFIG_PATH or /app/config/ael-config.yaml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log level (overrides AEL_LOG_LEVEL and the config file).
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Workflows directory (overrides AEL_WORKFLOWS_DIR and the config file).
    #[arg(long, global = true)]
    workflows_dir: Option<PathBuf>,
    /// Data directory (overrides AEL_DATA_DIR and the config file).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Transport {
    Http,
    Stdio,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the MCP server.
    Serve {
        #[arg(long, value_enum, default_value = "http")]
        transport: Transport,
        /// Bind address (overrides AEL_HTTP_HOST).
        #[arg(long)]
        host: Option<String>,
        /// Port (overrides AEL_HTTP_PORT).
        #[arg(long)]
        port: Option<u16>,
        /// Watch the workflows directory for changes (also AEL_HOT_RELOAD=true).
        #[arg(long)]
        reload: bool,
    },
    /// Probe a running server's /health endpoint; exit 0 when healthy.
    Health {
        /// Full URL (default: http://127.0.0.1:$AEL_HTTP_PORT/health).
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// Print nothing.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Inspect and run workflows.
    Workflows {
        #[command(subcommand)]
        command: WorkflowsCmd,
    },
}

#[derive(Subcommand, Debug)]
enum WorkflowsCmd {
    /// List workflows (name and description).
    List {
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(level: &str) -> Result<()> {
    let level = config::parse_log_level(level)?;
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn load_config(cli: &Cli) -> Result<Config> {
    let (mut cfg, _src) = Config::load(cli.config.as_deref())?;
    if let Some(l) = &cli.log_level {
        config::parse_log_level(l)?;
        cfg.log_level = l.clone();
    }
    if let Some(d) = &cli.workflows_dir {
        cfg.workflows_dir = d.clone();
    }
    if let Some(d) = &cli.data_dir {
        cfg.data_dir = d.clone();
    }
    Ok(cfg)
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install SIGTERM handler: {e}");
            return std::future::pending().await;
        }
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install SIGINT handler: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Serve {
            transport,
            host,
            port,
            reload,
        } => {
            let mut cfg = load_config(&cli)?;
            if let Some(h) = host {
                cfg.http.host = h.clone();
            }
            if let Some(p) = port {
                cfg.http.port = *p;
            }
            if *reload {
                cfg.hot_reload = true;
            }
            init_logging(&cfg.log_level)?;
            let shutdown = CancellationToken::new();
            {
                let sd = shutdown.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    sd.cancel();
                });
            }
            let app = app::App::new(cfg);
            match transport {
                Transport::Http => http::serve(app, shutdown).await?,
                Transport::Stdio => bail!("stdio transport is not available in this build"),
            }
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Health {
            url,
            timeout_ms,
            quiet,
        } => {
            let url = match url {
                Some(u) => u.clone(),
                None => {
                    let port = match config::env_var("AEL_HTTP_PORT") {
                        Some(p) => p.trim().parse::<u16>().context("AEL_HTTP_PORT")?,
                        None => Config::load(cli.config.as_deref())
                            .map(|(c, _)| c.http.port)
                            .unwrap_or(config::DEFAULT_PORT),
                    };
                    format!("http://127.0.0.1:{port}/health")
                }
            };
            match http::probe(&url, Duration::from_millis(*timeout_ms)).await {
                Ok((status, body)) => {
                    if !quiet {
                        println!("{}", body.trim());
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
                        eprintln!("ael health: {url}: {e:#}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Workflows { command } => {
            let cfg = load_config(&cli)?;
            init_logging(&cfg.log_level)?;
            let names = app::server_names(&cfg);
            let set = workflow::WorkflowSet::load(&cfg.workflows_dir, Some(&names));
            match command {
                WorkflowsCmd::List { json } => {
                    if *json {
                        let list: Vec<_> = set.workflows.values().map(workflow::summary).collect();
                        let errors = &set.errors;
                        println!(
                            "{}",
                            serde_json::to_string_pretty(
                                &serde_json::json!({"workflows": list, "errors": errors})
                            )?
                        );
                    } else {
                        for wf in set.workflows.values() {
                            println!("{}\t{}", wf.name(), wf.def.description);
                        }
                        for e in &set.errors {
                            eprintln!("error: {}", e.error);
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    // Do not wait for lingering blocking tasks (e.g. stdin readers).
    rt.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ael: {e:#}");
            ExitCode::FAILURE
        }
    }
}
