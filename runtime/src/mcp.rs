//! The MCP server ael exposes (stdio and streamable HTTP).

use std::path::Path;
use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::workflow;

/// The MCP server: fixed tools plus one `wf_*` tool per valid workflow.
#[derive(Clone)]
pub struct AelServer {
    app: Arc<App>,
    tool_router: ToolRouter<Self>,
}

// Arguments of `workflow_describe`. A doc comment here would change the tool schema.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NameArgs {
    /// Workflow name.
    pub name: String,
}

// Arguments of `workflow_validate`. A doc comment here would change the tool schema.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ValidateArgs {
    /// Name of a loaded workflow to validate (re-reads its file).
    #[serde(default)]
    pub name: Option<String>,
    /// Workflow YAML text to validate instead of a loaded workflow.
    #[serde(default)]
    pub yaml: Option<String>,
}

// Arguments of `workflow_run`. A doc comment here would change the tool schema.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunArgs {
    /// Workflow name.
    pub name: String,
    /// Input values by name.
    #[serde(default)]
    pub inputs: Map<String, Value>,
    /// Wait for the run to finish (default true). With false, returns
    /// `{run_id, status: "running"}` at once; poll with `run_get`.
    #[serde(default)]
    pub wait: Option<bool>,
}

// Arguments of `run_get`. A doc comment here would change the tool schema.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunGetArgs {
    /// Run id returned by workflow_run.
    pub run_id: String,
    /// Include the run's step logs.
    #[serde(default)]
    pub logs: bool,
}

// Arguments of `runs_list`. A doc comment here would change the tool schema.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunsArgs {
    /// Only runs of this workflow.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Maximum number of runs (newest first, default 20).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Include step logs of the returned runs.
    #[serde(default)]
    pub logs: bool,
}

// Arguments of `tool_call`. A doc comment here would change the tool schema.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CallArgs {
    /// Tool server name from the config.
    pub server: String,
    /// Tool name on that server.
    pub tool: String,
    /// Tool arguments.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

fn ok(v: Value) -> CallToolResult {
    CallToolResult::structured(v)
}

/// A tool error result; `msg` is the text the client sees.
fn err(msg: impl Into<String>) -> CallToolResult {
    CallToolResult::structured_error(json!({"error": msg.into()}))
}

/// Validates a workflow document; returns the JSON report.
pub fn validate_text(app: &App, file: &Path, text: &str) -> Value {
    match workflow::parse_workflow(file, text, Some(&app.server_names())) {
        Ok(wf) => {
            let problems = app.live_problems(&wf);
            json!({"valid": problems.is_empty(), "name": wf.name(), "problems": problems})
        }
        Err(e) => json!({"valid": false, "name": null, "problems": [e.to_string()]}),
    }
}

#[tool_router]
impl AelServer {
    /// A server (one per MCP session) over the shared app state.
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "List the workflows in the workflows directory (name, description, inputs) and files that failed to load"
    )]
    async fn workflows_list(&self) -> CallToolResult {
        let set = self.app.workflows();
        let list: Vec<Value> = set.workflows.values().map(workflow::summary).collect();
        ok(json!({"workflows": list, "errors": set.errors}))
    }

    #[tool(
        description = "Describe a workflow: inputs (with JSON schema), steps, output template and validation problems"
    )]
    async fn workflow_describe(&self, Parameters(a): Parameters<NameArgs>) -> CallToolResult {
        let set = self.app.workflows();
        match set.get(&a.name) {
            Some(wf) => {
                let mut d = workflow::describe(wf);
                d["problems"] = json!(self.app.live_problems(wf));
                d["valid"] = json!(d["problems"].as_array().is_some_and(|p| p.is_empty()));
                ok(d)
            }
            None => err(format!("no workflow named {:?}", a.name)),
        }
    }

    #[tool(
        description = "Validate a workflow, by name (re-reads its file) or from YAML text; reports problems with file:line"
    )]
    async fn workflow_validate(&self, Parameters(a): Parameters<ValidateArgs>) -> CallToolResult {
        match (a.name, a.yaml) {
            (_, Some(yaml)) => ok(validate_text(&self.app, Path::new("<yaml>"), &yaml)),
            (Some(name), None) => {
                let set = self.app.workflows();
                let file = match set.get(&name) {
                    Some(wf) => wf.file.clone(),
                    None => match set
                        .errors
                        .iter()
                        .find(|e| e.file.file_stem().and_then(|s| s.to_str()) == Some(&name))
                    {
                        Some(e) => e.file.clone(),
                        None => return err(format!("no workflow named {name:?}")),
                    },
                };
                match std::fs::read_to_string(&file) {
                    Ok(text) => ok(validate_text(&self.app, &file, &text)),
                    Err(e) => err(format!("{}: {e}", file.display())),
                }
            }
            (None, None) => err("give `name` or `yaml`"),
        }
    }

    #[tool(
        description = "Run a workflow with the given inputs; returns the run record (status, output, steps). With wait=false, returns the run id at once (poll with run_get)"
    )]
    async fn workflow_run(
        &self,
        Parameters(a): Parameters<RunArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run_tool(&a.name, a.inputs, a.wait, ctx).await
    }

    #[tool(
        description = "A run by id: status (running, succeeded, failed, interrupted), output and steps"
    )]
    async fn run_get(&self, Parameters(a): Parameters<RunGetArgs>) -> CallToolResult {
        match self.app.run_get(&a.run_id) {
            Some(mut r) => {
                if a.logs {
                    r["logs"] = json!(self.app.store.logs(&a.run_id));
                }
                ok(r)
            }
            None => err(format!("no run {:?}", a.run_id)),
        }
    }

    #[tool(description = "Recent workflow runs from the persistent history, newest first")]
    async fn runs_list(&self, Parameters(a): Parameters<RunsArgs>) -> CallToolResult {
        let mut runs = self
            .app
            .store
            .runs(a.workflow.as_deref(), a.limit.unwrap_or(20));
        if a.logs {
            for r in &mut runs {
                let id = r["run_id"].as_str().unwrap_or_default().to_string();
                r["logs"] = json!(self.app.store.logs(&id));
            }
        }
        ok(json!({"runs": runs}))
    }

    #[tool(description = "State and tools of the tool servers ael is connected to")]
    async fn tool_servers_status(&self) -> CallToolResult {
        ok(json!({"tool_servers": self.app.tools.statuses()}))
    }

    #[tool(description = "Call one tool of a connected tool server directly")]
    async fn tool_call(&self, Parameters(a): Parameters<CallArgs>) -> CallToolResult {
        use crate::tools::ToolCaller;
        match self
            .app
            .tools
            .call(&a.server, &a.tool, a.arguments, None)
            .await
        {
            Ok(out) if !out.is_error => ok(json!({"result": out.value})),
            Ok(out) => CallToolResult::structured_error(json!({"error": out.value})),
            Err(e) => err(e.to_string()),
        }
    }
}

/// MCP tool name of a workflow: `wf_` + name (characters other than
/// letters, digits, `_` and `-` become `_`).
pub fn workflow_tool_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("wf_{clean}")
}

impl AelServer {
    /// Runs a workflow for an MCP request (shared by `workflow_run` and the
    /// per-workflow `wf_*` tools).
    async fn run_tool(
        &self,
        name: &str,
        inputs: Map<String, Value>,
        wait: Option<bool>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        if wait == Some(false) {
            return match self.app.start_workflow(name, inputs, "mcp") {
                Ok(run_id) => ok(json!({"run_id": run_id, "workflow": name, "status": "running"})),
                Err(e) => err(e.to_string()),
            };
        }
        let mut forwarder = None;
        let progress = ctx.meta.get_progress_token().map(|token| {
            // Forward progress in order through one task.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, u64, String)>();
            let peer = ctx.peer.clone();
            forwarder = Some(tokio::spawn(async move {
                while let Some((done, total, msg)) = rx.recv().await {
                    let p = ProgressNotificationParam::new(token.clone(), done as f64)
                        .with_total(total as f64)
                        .with_message(msg);
                    if peer.notify_progress(p).await.is_err() {
                        break;
                    }
                }
            }));
            let f: crate::engine::Progress = Arc::new(move |done, total, msg| {
                let _ = tx.send((done, total, msg));
            });
            f
        });
        let result = self.app.run_workflow(name, &inputs, "mcp", progress).await;
        // The callback (and its sender) is gone now: let the last
        // notifications go out before the response.
        if let Some(f) = forwarder {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), f).await;
        }
        match result {
            Ok(rec) if rec["status"] == "succeeded" => ok(rec),
            Ok(rec) => CallToolResult::structured_error(rec),
            Err(e) => err(e.to_string()),
        }
    }

    /// One MCP tool per valid workflow, with the workflow's input schema.
    fn workflow_tools(&self) -> Vec<Tool> {
        let set = self.app.workflows();
        set.workflows
            .values()
            .filter(|wf| wf.is_valid())
            .filter_map(|wf| {
                let Value::Object(schema) = workflow::input_schema(&wf.def) else {
                    return None;
                };
                let desc = if wf.def.description.is_empty() {
                    format!("Run workflow {}", wf.name())
                } else {
                    format!("Run workflow {}: {}", wf.name(), wf.def.description)
                };
                Some(Tool::new(
                    workflow_tool_name(wf.name()),
                    desc,
                    Arc::new(schema),
                ))
            })
            .collect()
    }

    fn workflow_for_tool(&self, tool: &str) -> Option<String> {
        let set = self.app.workflows();
        set.workflows
            .keys()
            .find(|n| workflow_tool_name(n) == tool)
            .cloned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AelServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
            .with_server_info(Implementation::new("ael", env!("CARGO_PKG_VERSION")))
            .with_instructions("AEL runtime: list, describe, validate and run YAML workflows that call tools of connected MCP tool servers. Each valid workflow is also a tool named wf_<name>.")
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut peers = self.app.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|p| !p.is_transport_closed());
        peers.push(context.peer);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.tool_router.list_all();
        tools.extend(self.workflow_tools());
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_router
            .get(name)
            .cloned()
            .or_else(|| self.workflow_tools().into_iter().find(|t| t.name == name))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if self.tool_router.get(&request.name).is_none()
            && let Some(wf) = self.workflow_for_tool(&request.name)
        {
            let inputs = request.arguments.unwrap_or_default();
            return Ok(self.run_tool(&wf, inputs, None, context).await.into());
        }
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }
}
