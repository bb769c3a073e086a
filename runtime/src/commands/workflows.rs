//! `ael workflows`: list, show, validate and run workflows.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::app::{self, App};
use crate::cli::WorkflowsCmd;
use crate::config::Config;
use crate::output::{out, pretty};
use crate::signals;
use crate::workflow::{self, Workflow, WorkflowError, WorkflowSet};

/// Parses `--input NAME=VALUE` values using the workflow's declared types.
fn cli_inputs(
    wf: &Workflow,
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
                .with_context(|| format!("--input {k}"))?,
            None => Value::String(v.to_string()),
        };
        map.insert(k.to_string(), value);
    }
    Ok(map)
}

fn list(set: &WorkflowSet, json: bool) {
    if json {
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
}

fn show(wf: &Workflow, json: bool) {
    if json {
        out(&pretty(&workflow::describe(wf)));
        return;
    }
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

fn validate(
    cfg: &Config,
    set: &WorkflowSet,
    names: &[String],
    targets: &[String],
    json: bool,
) -> Result<ExitCode> {
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
            Ok(text) => match workflow::parse_workflow(f, &text, Some(names)) {
                Ok(wf) => {
                    json!({"file": f, "name": wf.name(), "valid": wf.is_valid(), "problems": wf.problems})
                }
                Err(e) => {
                    json!({"file": f, "name": null, "valid": false, "problems": [e.to_string()]})
                }
            },
            Err(e) => {
                json!({"file": f, "name": null, "valid": false, "problems": [format!("{}: {e}", f.display())]})
            }
        };
        reports.push(report);
    }
    // Duplicate names are reported by the set loader.
    for e in &set.errors {
        if matches!(e.error, WorkflowError::DuplicateName { .. }) && files.contains(&e.file) {
            reports.push(json!({"file": e.file, "name": null, "valid": false, "problems": [e.error.to_string()]}));
        }
    }
    let all_ok = reports.iter().all(|r| r["valid"] == true);
    if json {
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

async fn run_one(
    cfg: Config,
    wf: Workflow,
    inputs_json: Option<&str>,
    inputs: &[String],
    json: bool,
) -> Result<ExitCode> {
    let provided = cli_inputs(&wf, inputs_json, inputs)?;
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
    let (sig, _) = signals::spawn_watch();
    let app = App::new(cfg, Some(&used));
    app.store.recover();
    let stop = app.stop.clone();
    tokio::spawn(async move {
        sig.cancelled().await;
        stop.cancel();
    });
    app.tools.wait_settled(Duration::from_millis(connect)).await;
    let rec = app
        .run_workflow(wf.name(), &provided, "cli", None, CancellationToken::new())
        .await?;
    app.shutdown().await;
    if json {
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

/// Runs `ael workflows list|show|validate|run`.
pub async fn run(cfg: Config, command: &WorkflowsCmd) -> Result<ExitCode> {
    let names = app::server_names(&cfg);
    let set = WorkflowSet::load(&cfg.workflows_dir, Some(&names));
    let find = |name: &str| {
        set.get(name)
            .with_context(|| format!("no workflow named {name:?}"))
    };
    match command {
        WorkflowsCmd::List { json } => {
            list(&set, *json);
            Ok(ExitCode::SUCCESS)
        }
        WorkflowsCmd::Show { name, json } => {
            show(find(name)?, *json);
            Ok(ExitCode::SUCCESS)
        }
        WorkflowsCmd::Validate { targets, json } => validate(&cfg, &set, &names, targets, *json),
        WorkflowsCmd::Run {
            name,
            inputs,
            inputs_json,
            json,
        } => {
            let wf = find(name)?.clone();
            run_one(cfg, wf, inputs_json.as_deref(), inputs, *json).await
        }
    }
}
