//! `ael`: the AEL runtime — MCP server, workflow engine and CLI.

mod app;
mod config;
mod engine;
mod http;
mod mcp;
mod reaper;
mod store;
mod template;
mod tools;
mod validate;
mod workflow;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::app::App;
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
        /// Port (overrides AEL_HTTP_PORT; 0 picks a free port).
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
    /// Inspect, validate and run workflows.
    Workflows {
        #[command(subcommand)]
        command: WorkflowsCmd,
    },
    /// Show the persistent run history.
    Runs {
        #[command(subcommand)]
        command: RunsCmd,
    },
    /// Check the configuration and print the effective settings as JSON.
    Config,
}

#[derive(Subcommand, Debug)]
enum WorkflowsCmd {
    /// List workflows (name and description).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one workflow.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Validate workflows by name or file (default: every file in the directory).
    Validate {
        targets: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a workflow, connecting to the tool servers it uses.
    Run {
        name: String,
        /// Input as NAME=VALUE (repeatable); values are converted to the input's type.
        #[arg(long = "input", short = 'i')]
        inputs: Vec<String>,
        /// Inputs as a JSON object (merged before --input values).
        #[arg(long)]
        inputs_json: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum RunsCmd {
    /// List recent runs, newest first.
    List {
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show one run with its step logs.
    Show { run_id: String },
}

/// Address to probe for a bind address: wildcards and empty mean loopback.
fn probe_host(bind: &str) -> String {
    match bind.trim() {
        "" | "0.0.0.0" | "localhost" => "127.0.0.1".to_string(),
        "::" | "[::]" | "::1" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    }
}

/// Prints to stdout, ignoring a closed pipe.
fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn init_logging(level: &str, format: config::LogFormat) -> Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = config::parse_log_level(level)?;
    // The MCP SDK logs every session at INFO; keep it at WARN unless debugging.
    let sdk = if level >= tracing::Level::DEBUG {
        level
    } else {
        tracing::Level::WARN
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("rmcp", sdk);
    let base = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        config::LogFormat::Text => registry.with(base).try_init(),
        config::LogFormat::Json => registry
            .with(base.json().flatten_event(true).with_current_span(false))
            .try_init(),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn load_config(cli: &Cli) -> Result<(Config, config::ConfigSource)> {
    let (mut cfg, src) = Config::load(cli.config.as_deref())?;
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
    Ok((cfg, src))
}

/// SIGTERM and SIGINT, registered with the kernel when this is built, so a
/// signal that arrives before any task has run is caught, not fatal.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Option<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some(Self { term, int }),
            _ => {
                tracing::error!("cannot install signal handlers");
                None
            }
        }
    }

    /// Resolves on the next SIGTERM or SIGINT.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = self.int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    }
}

/// Installs the stop signals now and returns two tokens: the first is
/// cancelled by the first SIGTERM/SIGINT, the second by the one after it.
fn spawn_signal_watch() -> (CancellationToken, CancellationToken) {
    let (first, second) = (CancellationToken::new(), CancellationToken::new());
    let Some(mut signals) = StopSignals::install() else {
        return (first, second);
    };
    let (f, s) = (first.clone(), second.clone());
    tokio::spawn(async move {
        signals.recv().await;
        f.cancel();
        signals.recv().await;
        s.cancel();
    });
    (first, second)
}

/// Polls the workflows directory and reloads on change.
fn spawn_reloader(app: Arc<App>, stop: CancellationToken) {
    let interval = Duration::from_millis(app.config.reload_interval_ms.max(100));
    tokio::spawn(async move {
        let dir = app.config.workflows_dir.clone();
        let mut last = workflow::scan_dir(&dir).ok();
        tracing::info!(dir = %dir.display(), interval_ms = interval.as_millis() as u64, "hot reload enabled");
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let now = workflow::scan_dir(&dir).ok();
            if now != last {
                last = now;
                let (added, changed, removed) = app.reload();
                tracing::info!(?added, ?changed, ?removed, "workflows reloaded");
                if !(added.is_empty() && changed.is_empty() && removed.is_empty()) {
                    app.notify_tools_changed();
                }
            }
        }
    });
}

async fn serve(cfg: Config, transport: Transport) -> Result<()> {
    let (shutdown, second) = spawn_signal_watch();
    // Read before anything starts, so a bad token setting fails fast.
    let token = match transport {
        Transport::Http => bearer_auth::token_from_env("AEL_HTTP")?,
        Transport::Stdio => None,
    };
    let app = App::new(cfg, None);
    app.store.recover();
    app.store.compact(app.config.history_limit);
    {
        // A second SIGTERM/SIGINT skips the grace period for in-flight runs.
        let stop = app.stop.clone();
        tokio::spawn(async move {
            second.cancelled().await;
            tracing::warn!("second signal: interrupting runs now");
            stop.cancel();
        });
    }
    reaper::spawn(
        app.tools.clone(),
        shutdown.clone(),
        config::env_var("AEL_REAP_ORPHANS")
            .is_some_and(|v| config::parse_bool("AEL_REAP_ORPHANS", &v).unwrap_or(false)),
    );
    if app.config.hot_reload {
        spawn_reloader(app.clone(), shutdown.clone());
    }
    {
        // SIGHUP re-reads the workflows directory (with or without hot reload).
        let (app, sd) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = sd.cancelled() => break,
                    _ = hup.recv() => {
                        let (added, changed, removed) = app.reload();
                        tracing::info!(?added, ?changed, ?removed, "SIGHUP: workflows reloaded");
                        if !(added.is_empty() && changed.is_empty() && removed.is_empty()) {
                            app.notify_tools_changed();
                        }
                    }
                }
            }
        });
    }
    match transport {
        Transport::Http => http::serve(app.clone(), shutdown.clone(), token).await?,
        Transport::Stdio => {
            use rmcp::ServiceExt;
            let ct = CancellationToken::new();
            let init = mcp::AelServer::new(app.clone())
                .serve_with_ct(rmcp::transport::io::stdio_pipes(), ct.clone());
            let service = tokio::select! {
                r = init => match r {
                    Ok(s) => Some(s),
                    // stdin closed before a client initialized: nothing to serve.
                    Err(e) => {
                        tracing::info!("MCP stdio session not established: {e}");
                        None
                    }
                },
                _ = shutdown.cancelled() => None,
            };
            let Some(service) = service else {
                shutdown.cancel();
                app.shutdown().await;
                return Ok(());
            };
            tracing::info!("serving MCP over stdio");
            let waiting = service.waiting();
            tokio::pin!(waiting);
            tokio::select! {
                _ = &mut waiting => tracing::info!("stdin closed"),
                _ = shutdown.cancelled() => {
                    let grace = Duration::from_millis(app.config.http.shutdown_grace_ms);
                    let deadline = tokio::time::Instant::now() + grace;
                    while app.active.count() > 0 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    app.stop.cancel();
                    tokio::time::sleep(Duration::from_millis(if app.active.count() > 0 { 200 } else { 0 })).await;
                    ct.cancel();
                    let _ = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
                }
            }
        }
    }
    shutdown.cancel();
    app.shutdown().await;
    Ok(())
}

/// Parses `--input NAME=VALUE` values using the workflow's declared types.
fn cli_inputs(
    wf: &workflow::Workflow,
    json_inputs: Option<&str>,
    kv: &[String],
) -> Result<Map<String, Value>> {
    let mut map = match json_inputs {
        Some(j) => match serde_json::from_str::<Value>(j).context("--inputs-json")? {
            Value::Object(m) => m,
            _ => bail!("--inputs-json: expected a JSON object"),
        },
        None => Map::new(),
    };
    for item in kv {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("--input {item:?}: expected NAME=VALUE"))?;
        let value = match wf.def.inputs.get(k) {
            Some(def) => def
                .kind
                .parse_cli(v)
                .map_err(|e| anyhow::anyhow!("--input {k}: {e}"))?,
            None => Value::String(v.to_string()),
        };
        map.insert(k.to_string(), value);
    }
    Ok(map)
}

async fn workflows_cmd(cfg: Config, command: &WorkflowsCmd) -> Result<ExitCode> {
    let names = app::server_names(&cfg);
    let set = workflow::WorkflowSet::load(&cfg.workflows_dir, Some(&names));
    match command {
        WorkflowsCmd::List { json } => {
            if *json {
                let list: Vec<_> = set.workflows.values().map(workflow::summary).collect();
                out(&pretty(&json!({"workflows": list, "errors": set.errors})));
            } else {
                for wf in set.workflows.values() {
                    out(&format!("{}\t{}", wf.name(), wf.def.description));
                }
                for e in &set.errors {
                    eprintln!("error: {}", e.error);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowsCmd::Show { name, json } => {
            let wf = set
                .get(name)
                .with_context(|| format!("no workflow named {name:?}"))?;
            if *json {
                out(&pretty(&workflow::describe(wf)));
            } else {
                out(&format!("{}: {}", wf.name(), wf.def.description));
                out(&format!("file: {}", wf.file.display()));
                out("inputs:");
                for (n, i) in &wf.def.inputs {
                    let req = if i.required { " (required)" } else { "" };
                    let def = i
                        .default
                        .as_ref()
                        .map(|d| format!(" [default: {d}]"))
                        .unwrap_or_default();
                    out(&format!(
                        "  {n}: {}{req}{def} {}",
                        i.kind.as_str(),
                        i.description
                    ));
                }
                out("steps:");
                for s in &wf.def.steps {
                    let cond = s
                        .value
                        .condition
                        .as_ref()
                        .map(|c| format!(" if {c}"))
                        .unwrap_or_default();
                    out(&format!("  {}: {}{cond}", s.value.id, s.value.tool));
                }
                for p in &wf.problems {
                    out(&format!("problem: {p}"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowsCmd::Validate { targets, json } => {
            let mut reports = Vec::new();
            let files: Vec<PathBuf> = if targets.is_empty() {
                workflow::scan_dir(&cfg.workflows_dir)
                    .with_context(|| format!("cannot read {}", cfg.workflows_dir.display()))?
                    .into_keys()
                    .collect()
            } else {
                targets
                    .iter()
                    .map(|t| match set.get(t) {
                        Some(wf) => wf.file.clone(),
                        None => PathBuf::from(t),
                    })
                    .collect()
            };
            for f in &files {
                let report = match std::fs::read_to_string(f) {
                    Ok(text) => match workflow::parse_workflow(f, &text, Some(&names)) {
                        Ok(wf) => {
                            json!({"file": f, "name": wf.name(), "valid": wf.is_valid(), "problems": wf.problems})
                        }
                        Err(e) => json!({"file": f, "name": null, "valid": false, "problems": [e]}),
                    },
                    Err(e) => {
                        json!({"file": f, "name": null, "valid": false, "problems": [format!("{}: {e}", f.display())]})
                    }
                };
                reports.push(report);
            }
            // Duplicate names are reported by the set loader.
            for e in &set.errors {
                if e.error.contains("duplicate workflow name") && files.contains(&e.file) {
                    reports.push(json!({"file": e.file, "name": null, "valid": false, "problems": [e.error]}));
                }
            }
            let all_ok = reports.iter().all(|r| r["valid"] == true);
            if *json {
                out(&pretty(&json!({"valid": all_ok, "results": reports})));
            } else {
                for r in &reports {
                    if r["valid"] == true {
                        out(&format!(
                            "ok\t{}",
                            Path::new(r["file"].as_str().unwrap_or_default()).display()
                        ));
                    } else {
                        for p in r["problems"].as_array().into_iter().flatten() {
                            out(&format!("error\t{}", p.as_str().unwrap_or_default()));
                        }
                    }
                }
            }
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        WorkflowsCmd::Run {
            name,
            inputs,
            inputs_json,
            json,
        } => {
            let wf = set
                .get(name)
                .with_context(|| format!("no workflow named {name:?}"))?
                .clone();
            let provided = cli_inputs(&wf, inputs_json.as_deref(), inputs)?;
            let used: HashSet<String> = wf
                .def
                .steps
                .iter()
                .filter_map(|s| s.value.target().map(|(srv, _)| srv.to_string()))
                .collect();
            let connect = used
                .iter()
                .filter_map(|s| cfg.tool_servers.get(s).map(|c| c.connect_timeout_ms))
                .max()
                .unwrap_or(0);
            let (sig, _) = spawn_signal_watch();
            let app = App::new(cfg, Some(&used));
            app.store.recover();
            let stop = app.stop.clone();
            tokio::spawn(async move {
                sig.cancelled().await;
                stop.cancel();
            });
            app.tools.wait_settled(Duration::from_millis(connect)).await;
            let rec = app
                .run_workflow(wf.name(), &provided, "cli", None)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            app.shutdown().await;
            if *json {
                out(&pretty(&rec));
            } else {
                out(&format!(
                    "run {} {}",
                    rec["run_id"].as_str().unwrap_or_default(),
                    rec["status"].as_str().unwrap_or_default()
                ));
                if let Some(e) = rec["error"].as_str() {
                    out(&format!("error: {e}"));
                }
                out(&pretty(&rec["output"]));
            }
            Ok(if rec["status"] == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
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
            let (mut cfg, src) = load_config(&cli)?;
            if let Some(h) = host {
                cfg.http.host = h.clone();
            }
            if let Some(p) = port {
                cfg.http.port = *p;
            }
            if *reload {
                cfg.hot_reload = true;
            }
            init_logging(&cfg.log_level, cfg.log_format)?;
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                config = %src.path.display(),
                loaded = src.loaded,
                workflows_dir = %cfg.workflows_dir.display(),
                data_dir = %cfg.data_dir.display(),
                "starting ael"
            );
            serve(cfg, *transport).await?;
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
                    // Same precedence as `serve`: env, then config file, then default.
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
                    format!("http://{}:{port}/health", probe_host(&host))
                }
            };
            match http::probe(&url, Duration::from_millis(*timeout_ms)).await {
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
                        eprintln!("ael health: {url}: {e:#}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Workflows { command } => {
            let (cfg, _) = load_config(&cli)?;
            init_logging(&cfg.log_level, cfg.log_format)?;
            workflows_cmd(cfg, command).await
        }
        Command::Runs { command } => {
            let (cfg, _) = load_config(&cli)?;
            init_logging(&cfg.log_level, cfg.log_format)?;
            let store = store::Store::open(&cfg.data_dir);
            match command {
                RunsCmd::List {
                    workflow,
                    limit,
                    json,
                } => {
                    let runs = store.runs(workflow.as_deref(), *limit);
                    if *json {
                        out(&pretty(&json!({"runs": runs})));
                    } else {
                        for r in &runs {
                            out(&format!(
                                "{}\t{}\t{}\t{}",
                                r["run_id"].as_str().unwrap_or_default(),
                                r["workflow"].as_str().unwrap_or_default(),
                                r["status"].as_str().unwrap_or_default(),
                                r["started_at"].as_str().unwrap_or_default()
                            ));
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                RunsCmd::Show { run_id } => {
                    let run = store
                        .runs(None, usize::MAX)
                        .into_iter()
                        .find(|r| r["run_id"].as_str() == Some(run_id))
                        .with_context(|| format!("no run {run_id}"))?;
                    let mut run = run;
                    run["logs"] = json!(store.logs(run_id));
                    out(&pretty(&run));
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Config => {
            let (cfg, src) = load_config(&cli)?;
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

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "ael",
            "workflows",
            "run",
            "x",
            "-i",
            "a=1",
            "--input",
            "b=2",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Workflows {
                command:
                    WorkflowsCmd::Run {
                        name, inputs, json, ..
                    },
            } => {
                assert_eq!(name, "x");
                assert_eq!(inputs, vec!["a=1", "b=2"]);
                assert!(json);
            }
            other => panic!("{other:?}"),
        }
    }
}
