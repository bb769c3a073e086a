//! `ael runs`: the persistent run history.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::RunsCmd;
use crate::config::Config;
use crate::output::{out, pretty};
use crate::store::Store;

/// Runs `ael runs list|show`.
pub fn run(cfg: &Config, command: &RunsCmd) -> Result<ExitCode> {
    let store = Store::open(&cfg.data_dir);
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
            let mut run = store
                .runs(None, usize::MAX)
                .into_iter()
                .find(|r| r["run_id"].as_str() == Some(run_id))
                .with_context(|| format!("no run {run_id}"))?;
            run["logs"] = json!(store.logs(run_id));
            out(&pretty(&run));
            Ok(ExitCode::SUCCESS)
        }
    }
}
