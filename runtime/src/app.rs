//! Shared runtime state.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::{self, Active, InputErrors, RunOptions};
use crate::store::Store;
use crate::tools::{State, ToolManager};
use crate::workflow::{self, Workflow, WorkflowSet};

/// Why a run request is refused before it starts.
#[derive(Debug, thiserror::Error)]
pub enum RunRequestError {
    /// No loaded workflow has that name.
    #[error("no workflow named {name:?} (known: {known:?})")]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// Loaded workflow names.
        known: Vec<String>,
    },
    /// The workflow has validation problems.
    #[error("workflow is invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The inputs do not match the workflow's declarations.
    #[error(transparent)]
    Inputs(#[from] InputErrors),
}

/// State shared by the MCP server, the HTTP routes and the CLI commands.
pub struct App {
    /// Effective configuration.
    pub config: Config,
    /// Loaded workflows (replaced on reload).
    pub workflows: RwLock<Arc<WorkflowSet>>,
    /// When the process started (for uptime).
    pub started: Instant,
    /// Tool server connections.
    pub tools: Arc<ToolManager>,
    /// Run history.
    pub store: Store,
    /// Runs in progress.
    pub active: Active,
    /// MCP client sessions, told when the tool list changes (hot reload).
    pub peers: Mutex<Vec<rmcp::service::Peer<rmcp::RoleServer>>>,
    /// Records of recently finished runs (also when history is disabled).
    pub recent: Mutex<VecDeque<Value>>,
    /// Cancelled when runs must stop (after the shutdown grace period).
    pub stop: CancellationToken,
}

impl App {
    /// Loads workflows, opens the data dir and starts tool server
    /// connections (in the background; `only` limits which servers).
    pub fn new(config: Config, only: Option<&HashSet<String>>) -> Arc<App> {
        let servers = server_names(&config);
        let set = WorkflowSet::load(&config.workflows_dir, Some(&servers));
        for e in &set.errors {
            tracing::warn!("workflow not loaded: {}", e.error);
        }
        for wf in set.workflows.values().filter(|w| !w.is_valid()) {
            for p in &wf.problems {
                tracing::warn!(workflow = %wf.name(), "invalid workflow: {p}");
            }
        }
        let store = Store::open(&config.data_dir)
            .with_redactor(crate::redact::Redactor::from_config(&config));
        let tools = ToolManager::start(&config, only);
        Arc::new(App {
            config,
            workflows: RwLock::new(Arc::new(set)),
            started: Instant::now(),
            tools,
            store,
            active: Active::default(),
            recent: Mutex::new(VecDeque::new()),
            peers: Mutex::new(Vec::new()),
            stop: CancellationToken::new(),
        })
    }

    /// The current workflow set.
    pub fn workflows(&self) -> Arc<WorkflowSet> {
        self.workflows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the workflow set.
    pub fn set_workflows(&self, set: WorkflowSet) {
        *self.workflows.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }

    /// Names of enabled tool servers.
    pub fn server_names(&self) -> Vec<String> {
        server_names(&self.config)
    }

    /// Re-reads the workflows directory; returns (added, changed, removed).
    pub fn reload(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let old = self.workflows();
        let new = WorkflowSet::load(&self.config.workflows_dir, Some(&self.server_names()));
        let mut added = Vec::new();
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        for (name, wf) in &new.workflows {
            match old.workflows.get(name) {
                None => added.push(name.clone()),
                Some(prev) => {
                    let a = serde_json::to_string(&workflow::describe(prev)).unwrap_or_default();
                    let b = serde_json::to_string(&workflow::describe(wf)).unwrap_or_default();
                    if a != b {
                        changed.push(name.clone());
                    }
                }
            }
        }
        for name in old.workflows.keys() {
            if !new.workflows.contains_key(name) {
                removed.push(name.clone());
            }
        }
        for e in &new.errors {
            let text = e.error.to_string();
            if !old.errors.iter().any(|o| o.error.to_string() == text) {
                tracing::warn!("workflow not loaded: {}", e.error);
            }
        }
        self.set_workflows(new);
        (added, changed, removed)
    }

    /// Sends `notifications/tools/list_changed`, `.../resources/list_changed`
    /// and `.../prompts/list_changed` to every MCP session (workflows are
    /// tools, resources and prompts); drops sessions that are gone.
    pub fn notify_workflows_changed(self: &Arc<Self>) {
        let peers: Vec<_> = self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if peers.is_empty() {
            return;
        }
        let app = self.clone();
        tokio::spawn(async move {
            use rmcp::model::ServerNotification as N;
            for p in peers {
                for n in [
                    N::ToolListChangedNotification(Default::default()),
                    N::ResourceListChangedNotification(Default::default()),
                    N::PromptListChangedNotification(Default::default()),
                ] {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), p.send_notification(n)).await;
                }
            }
            app.peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|p| !p.is_transport_closed());
        });
    }

    /// Problems of a workflow including checks against live tool lists.
    pub fn live_problems(&self, wf: &Workflow) -> Vec<String> {
        let mut problems = wf.problems.clone();
        for s in &wf.def.steps {
            let Some((server, tool)) = s.value.target() else {
                continue;
            };
            let Some(srv) = self.tools.servers.get(server) else {
                continue;
            };
            let st = srv.status();
            if st.state == State::Connected
                && !st.tools.is_empty()
                && !st.tools.iter().any(|t| t == tool)
            {
                problems.push(format!(
                    "{}:{}: step `{}`: tool server `{server}` has no tool `{tool}` (available: {})",
                    wf.file.display(),
                    s.referenced.line(),
                    s.value.id,
                    st.tools.join(", ")
                ));
            }
        }
        problems
    }

    fn find(&self, name: &str) -> Result<Workflow, RunRequestError> {
        let set = self.workflows();
        set.get(name)
            .cloned()
            .ok_or_else(|| RunRequestError::UnknownWorkflow {
                name: name.to_string(),
                known: set.workflows.keys().cloned().collect(),
            })
    }

    async fn run_with_id(
        &self,
        wf: &Workflow,
        inputs: &Map<String, Value>,
        origin: &str,
        run_id: Option<String>,
        progress: Option<engine::Progress>,
        cancel: CancellationToken,
    ) -> Value {
        let opts = RunOptions {
            origin,
            progress,
            run_id,
            stop: self.stop.clone(),
            cancel,
        };
        let rec = engine::run(
            self.tools.as_ref(),
            &self.store,
            &self.active,
            wf,
            inputs,
            opts,
        )
        .await;
        // The record goes to clients (tool results, run_get, resources):
        // the same redaction as the history.
        let rec = self.store.redactor().redact_value(&rec);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= 100 {
            recent.pop_front();
        }
        recent.push_back(rec.clone());
        rec
    }

    /// Runs a workflow and waits for the run record; `cancel` cancels the
    /// run (recorded as cancelled).
    pub async fn run_workflow(
        &self,
        name: &str,
        inputs: &Map<String, Value>,
        origin: &str,
        progress: Option<engine::Progress>,
        cancel: CancellationToken,
    ) -> Result<Value, RunRequestError> {
        let wf = self.find(name)?;
        Ok(self
            .run_with_id(&wf, inputs, origin, None, progress, cancel)
            .await)
    }

    /// Starts a workflow in the background; returns its run id. Unknown
    /// workflows, invalid workflows and input errors are reported at once.
    pub fn start_workflow(
        self: &Arc<Self>,
        name: &str,
        inputs: Map<String, Value>,
        origin: &'static str,
    ) -> Result<String, RunRequestError> {
        let wf = self.find(name)?;
        if !wf.is_valid() {
            return Err(RunRequestError::Invalid(wf.problems.clone()));
        }
        engine::resolve_inputs(&wf, &inputs)?;
        let run_id = engine::new_run_id();
        let app = self.clone();
        let id = run_id.clone();
        tokio::spawn(async move {
            app.run_with_id(
                &wf,
                &inputs,
                origin,
                Some(id),
                None,
                CancellationToken::new(),
            )
            .await;
        });
        Ok(run_id)
    }

    /// The most recent runs, newest first: the history, or the runs this
    /// process finished when the history is disabled.
    pub fn recent_runs(&self, limit: usize) -> Vec<Value> {
        if self.store.writable() {
            return self.store.runs(None, limit);
        }
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().rev().take(limit).cloned().collect()
    }

    /// A run by id: finished runs of this process, else the history.
    pub fn run_get(&self, run_id: &str) -> Option<Value> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = recent.iter().rev().find(|r| r["run_id"] == run_id) {
            return Some(r.clone());
        }
        drop(recent);
        self.store
            .runs(None, usize::MAX)
            .into_iter()
            .find(|r| r["run_id"] == run_id)
    }

    /// Health document and whether the service is healthy.
    pub fn health(&self) -> (bool, Value) {
        let wf = self.workflows();
        let servers = self.tools.statuses();
        let required_ok = self.tools.required_ok();
        let any_down = servers.values().any(|s| s.state != State::Connected);
        let status = if !required_ok {
            "unhealthy"
        } else if any_down {
            "degraded"
        } else {
            "ok"
        };
        let body = json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_ms": self.started.elapsed().as_millis() as u64,
            "workflows": wf.workflows.len(),
            "workflow_errors": wf.errors.len(),
            "active_runs": self.active.count(),
            "tool_servers": servers,
            "data_dir": self.store.status(),
            "hot_reload": self.config.hot_reload,
        });
        (required_ok, body)
    }

    /// Stops tool servers (bounded).
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tools.shutdown(Duration::from_millis(1500)).await;
    }
}

/// Names of enabled tool servers.
pub fn server_names(config: &Config) -> Vec<String> {
    config
        .tool_servers
        .iter()
        .filter(|(_, s)| s.enabled)
        .map(|(n, _)| n.clone())
        .collect()
}
