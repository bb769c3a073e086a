//! Command-line arguments of `ael`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config, ConfigSource};

// The clap types keep exactly their original doc comments: clap turns doc
// comments into help text, and `--help` output must not change.

#[derive(Parser, Debug)]
#[command(
    name = "ael",
    version,
    about = "AEL runtime: MCP server, workflow engine and CLI"
)]
pub struct Cli {
    /// Config file (default: $AEL_CONFIG_PATH or /app/config/ael-config.yaml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Log level (overrides AEL_LOG_LEVEL and the config file).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Workflows directory (overrides AEL_WORKFLOWS_DIR and the config file).
    #[arg(long, global = true)]
    pub workflows_dir: Option<PathBuf>,
    /// Data directory (overrides AEL_DATA_DIR and the config file).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Http,
    Stdio,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
pub enum WorkflowsCmd {
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
pub enum RunsCmd {
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

impl Cli {
    /// Loads the config and applies the global flags on top of it.
    pub fn load_config(&self) -> Result<(Config, ConfigSource)> {
        let (mut cfg, src) = Config::load(self.config.as_deref())?;
        if let Some(l) = &self.log_level {
            config::parse_log_level(l)?;
            cfg.log_level = l.clone();
        }
        if let Some(d) = &self.workflows_dir {
            cfg.workflows_dir = d.clone();
        }
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        Ok((cfg, src))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
