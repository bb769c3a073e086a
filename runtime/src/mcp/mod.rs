//! The MCP server ael exposes (stdio and streamable HTTP): tools (fixed
//! ones plus one per workflow), logging, resources, prompts and completions.

// MCP logging and resources/subscribe are deprecated by SEP-2577 / the
// 2026-07-28 protocol but are what 2025-xx clients use.
#![allow(deprecated)]

pub mod completion;
pub mod prompts;
pub mod resources;
pub mod session;

use std::path::Path;
use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, SetLevelRequestParams, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::mcp::session::Session;
use crate::workflow;

/// What ael tells clients it is for (`instructions` of `initialize`).
const INSTRUCTIONS: &str = "AEL runtime: runs YAML workflows that call tools of connected MCP tool servers. \
Tools: list, describe, validate and run workflows (each valid workflow is also a tool named wf_<name>), \
read the run history, call a tool server's tool directly. Resources: ael://workflows/{name} (a workflow's YAML) \
and ael://runs/{run_id} (a run's record and log; subscribe to follow a run). Prompts: one per workflow, \
its arguments are the workflow's inputs. logging/setLevel streams run and step events; \
notifications/cancelled stops a workflow_run.";

/// The MCP server (one per session): fixed tools plus one `wf_*` tool per
/// valid workflow, resources, prompts, completions and log notifications.
#[derive(Clone)]
pub struct AelServer {
    app: Arc<App>,
    tool_router: ToolRouter<Self>,
    session: Arc<Session>,
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
            session: Arc::new(Session::default()),
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
        description = "A run by id: status (running, succeeded, failed, cancelled, interrupted), output and steps"
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
    async fn tool_call(
        &self,
        Parameters(a): Parameters<CallArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        use crate::tools::ToolCaller;
        // Dropping the call on cancellation tells the tool server to cancel it.
        let call = self.app.tools.call(&a.server, &a.tool, a.arguments, None);
        let result = tokio::select! {
            r = call => r,
            _ = ctx.ct.cancelled() => return err("cancelled by the client"),
        };
        match result {
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
        // rmcp cancels ctx.ct on notifications/cancelled for this request.
        let result = self
            .app
            .run_workflow(name, &inputs, "mcp", progress, ctx.ct.clone())
            .await;
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
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(
            Implementation::new("ael", env!("CARGO_PKG_VERSION"))
                .with_title("AEL runtime")
                .with_description(env!("CARGO_PKG_DESCRIPTION")),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session.set_level(request.level);
        self.session.start_pump(&self.app, context.peer);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        Ok(CompleteResult::new(completion::complete(
            &self.app, &request,
        )))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts::list(&self.app)))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        prompts::get(&self.app, &request.name, request.arguments.as_ref()).map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list(
            &self.app,
        )))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&self.app, &request.uri).map(Into::into)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Any URI may be subscribed to; updates are sent for run records
        // (ael://runs/{id}) whenever their run logs an event.
        self.session.subscribe(&request.uri);
        self.session.start_pump(&self.app, context.peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session.unsubscribe(&request.uri);
        Ok(())
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
