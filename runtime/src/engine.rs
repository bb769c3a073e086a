//! Workflow execution.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::definition::InputType;
use crate::store::{Store, now};
use crate::template::{self, TemplateError};
use crate::tools::{ToolCaller, ToolError};
use crate::workflow::Workflow;

/// One reason the inputs of a run are refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A value for an input the workflow does not declare.
    #[error("unknown input `{name}` (known: {known})")]
    Unknown {
        /// The name given.
        name: String,
        /// Declared input names, comma-separated.
        known: String,
    },
    /// A value outside the input's `enum`.
    #[error("input `{name}`: {value} is not one of {allowed}")]
    NotAllowed {
        /// Input name.
        name: String,
        /// The value given.
        value: Value,
        /// The allowed values as JSON, comma-separated.
        allowed: String,
    },
    /// A value of the wrong type.
    #[error("input `{name}`: expected {expected}, got {value}")]
    WrongType {
        /// Input name.
        name: String,
        /// The declared type.
        expected: &'static str,
        /// The value given.
        value: Value,
    },
    /// A required input without a value or default.
    #[error("missing required input `{0}`")]
    Missing(String),
}

/// Every reason the inputs of a run are refused; displays them joined by `; `.
#[derive(Debug, Clone, PartialEq)]
pub struct InputErrors(pub Vec<InputError>);

impl std::fmt::Display for InputErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputErrors {}

/// Why one attempt of a step's tool call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call did not complete (server unavailable, timeout, protocol).
    #[error(transparent)]
    Call(#[from] ToolError),
    /// The tool ran and reported an error; its text is passed on as-is.
    #[error("{0}")]
    Reported(String),
}

/// Why a run stopped at a step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The `if:` condition does not evaluate.
    #[error("step `{step}`: if: {error}")]
    Condition {
        /// Step id.
        step: String,
        /// The template error (part of the message).
        error: TemplateError,
    },
    /// `tool` is not `SERVER.TOOL`.
    #[error("step `{step}`: bad tool {tool:?}")]
    BadTool {
        /// Step id.
        step: String,
        /// The `tool` value.
        tool: String,
    },
    /// An argument template does not render.
    #[error("step `{step}`: with.{arg}: {error}")]
    Argument {
        /// Step id.
        step: String,
        /// Argument name.
        arg: String,
        /// The template error (part of the message).
        error: TemplateError,
    },
    /// The tool call failed (after retries) and the step does not continue on error.
    #[error("step `{step}` failed: {error}")]
    Failed {
        /// Step id.
        step: String,
        /// The last attempt's error (part of the message).
        error: CallError,
    },
}

/// Resolves provided inputs against the workflow's declarations: applies
/// defaults, checks required inputs and types, rejects unknown names.
pub fn resolve_inputs(
    wf: &Workflow,
    provided: &Map<String, Value>,
) -> Result<Map<String, Value>, InputErrors> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for k in provided.keys() {
        if !wf.def.inputs.contains_key(k) {
            let known: Vec<&str> = wf.def.inputs.keys().map(String::as_str).collect();
            errors.push(InputError::Unknown {
                name: k.clone(),
                known: known.join(", "),
            });
        }
    }
    for (name, def) in &wf.def.inputs {
        match provided.get(name) {
            Some(v) if v.is_null() && !def.required => {
                out.insert(name.clone(), def.default.clone().unwrap_or(Value::Null));
            }
            Some(v) => {
                // Accept strings for non-string inputs (CLI and loosely typed clients).
                let v = match (def.kind, v) {
                    (InputType::String, _)
                    | (_, Value::Object(_) | Value::Array(_) | Value::Bool(_) | Value::Number(_)) => {
                        v.clone()
                    }
                    (kind, Value::String(s)) => kind.parse_cli(s).unwrap_or_else(|_| v.clone()),
                    _ => v.clone(),
                };
                if let Some(allowed) = def.allowed.as_ref().filter(|a| !a.contains(&v)) {
                    let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                    errors.push(InputError::NotAllowed {
                        name: name.clone(),
                        value: v,
                        allowed: list.join(", "),
                    });
                } else if def.kind.matches(&v) {
                    out.insert(name.clone(), v);
                } else {
                    errors.push(InputError::WrongType {
                        name: name.clone(),
                        expected: def.kind.as_str(),
                        value: v,
                    });
                }
            }
            None => match &def.default {
                Some(d) => {
                    out.insert(name.clone(), d.clone());
                }
                None if def.required => errors.push(InputError::Missing(name.clone())),
                None => {
                    out.insert(name.clone(), Value::Null);
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(InputErrors(errors))
    }
}

/// Tracks runs in progress so shutdown can record them as interrupted.
#[derive(Default)]
pub struct Active {
    runs: Mutex<HashMap<String, String>>,
}

impl Active {
    /// Number of runs in progress.
    pub fn count(&self) -> usize {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Progress callback: (steps done, total steps, message).
pub type Progress = std::sync::Arc<dyn Fn(u64, u64, String) + Send + Sync>;

/// How a run is started.
pub struct RunOptions<'a> {
    /// Who started the run (`cli`, `mcp`, ...), recorded in the history.
    pub origin: &'a str,
    /// Called before each step and when the run ends.
    pub progress: Option<Progress>,
    /// Run id to use (a new UUID when None).
    pub run_id: Option<String>,
    /// Cancelled when the process must stop (the run is recorded as interrupted).
    pub stop: CancellationToken,
    /// Cancelled when the client that started the run cancels it (MCP
    /// `notifications/cancelled`); the run is recorded as cancelled and the
    /// tool call in flight is abandoned (the tool server is told to cancel it).
    pub cancel: CancellationToken,
}

/// A fresh run id (UUID v4).
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn step_ctx(ctx: &mut Value, id: &str, v: Value) {
    ctx["steps"][id] = v;
}

/// Runs a workflow to completion and returns the run record.
pub async fn run<T: ToolCaller>(
    tools: &T,
    store: &Store,
    active: &Active,
    wf: &Workflow,
    provided: &Map<String, Value>,
    opts: RunOptions<'_>,
) -> Value {
    let run_id = opts.run_id.clone().unwrap_or_else(new_run_id);
    let started_at = now();
    let t0 = Instant::now();
    let name = wf.name().to_string();
    let base = |status: &str, error: Option<String>| {
        json!({"run_id": run_id, "workflow": name, "status": status, "error": error,
               "started_at": started_at, "finished_at": now(), "duration_ms": t0.elapsed().as_millis() as u64})
    };
    if !wf.is_valid() {
        return base(
            "failed",
            Some(format!("workflow is invalid: {}", wf.problems.join("; "))),
        );
    }
    let inputs = match resolve_inputs(wf, provided) {
        Ok(i) => i,
        Err(e) => return base("failed", Some(e.to_string())),
    };
    store.run_started(&run_id, &name, &Value::Object(inputs.clone()), opts.origin);
    active
        .runs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(run_id.clone(), name.clone());
    tracing::info!(run_id = %run_id, workflow = %name, origin = opts.origin, "run started");

    let mut ctx =
        json!({"inputs": inputs, "steps": {}, "workflow": {"name": name}, "run": {"id": run_id}});
    let mut steps_rec: Vec<Value> = Vec::new();
    let progress = opts.progress.clone();
    let body = execute(
        tools,
        store,
        wf,
        &run_id,
        &mut ctx,
        &mut steps_rec,
        progress.as_ref(),
    );
    let total = wf
        .def
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(Duration::MAX);
    let outcome: Result<(), (String, String)> = tokio::select! {
        r = tokio::time::timeout(total, body) => match r {
            Ok(r) => r.map_err(|e| ("failed".to_string(), e.to_string())),
            Err(_) => Err(("failed".to_string(), format!("workflow timed out after {} ms", total.as_millis()))),
        },
        _ = opts.stop.cancelled() => Err(("interrupted".to_string(), "ael is shutting down".to_string())),
        _ = opts.cancel.cancelled() => Err(("cancelled".to_string(), "cancelled by the client".to_string())),
    };
    let (status, error, output) = match outcome {
        Ok(()) => {
            let out = match &wf.def.output {
                Some(tpl) => template::render_value(tpl, &ctx),
                None => Ok(ctx["steps"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v["output"].clone()))
                            .collect::<Map<_, _>>()
                    })
                    .map(Value::Object)
                    .unwrap_or(Value::Null)),
            };
            match out {
                Ok(o) => ("succeeded".to_string(), None, o),
                Err(e) => (
                    "failed".to_string(),
                    Some(format!("output: {e}")),
                    Value::Null,
                ),
            }
        }
        Err((s, e)) => (s, Some(e), Value::Null),
    };
    if let Some(p) = &progress {
        let n = wf.def.steps.len() as u64;
        p(n, n, format!("run {status}"));
    }
    let mut rec = base(&status, error.clone());
    rec["output"] = output;
    rec["steps"] = Value::Array(steps_rec);
    store.run_finished(&rec);
    active
        .runs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&run_id);
    match &error {
        None => tracing::info!(run_id = %run_id, workflow = %name, "run succeeded"),
        Some(e) => {
            tracing::warn!(run_id = %run_id, workflow = %name, status = %status, "run did not succeed: {e}")
        }
    }
    rec
}

async fn execute<T: ToolCaller>(
    tools: &T,
    store: &Store,
    wf: &Workflow,
    run_id: &str,
    ctx: &mut Value,
    steps_rec: &mut Vec<Value>,
    progress: Option<&Progress>,
) -> Result<(), StepError> {
    let total = wf.def.steps.len() as u64;
    for (i, spanned) in wf.def.steps.iter().enumerate() {
        let step = &spanned.value;
        if let Some(p) = progress {
            p(i as u64, total, format!("step {} ({})", step.id, step.tool));
        }
        let t0 = Instant::now();
        if let Some(cond) = &step.condition {
            let ok = template::eval_condition(cond, ctx).map_err(|error| StepError::Condition {
                step: step.id.clone(),
                error,
            })?;
            if !ok {
                store.log(
                    run_id,
                    "info",
                    Some(&step.id),
                    "skipped (condition is false)",
                    Value::Null,
                );
                step_ctx(
                    ctx,
                    &step.id,
                    json!({"status": "skipped", "output": null, "error": null, "attempts": 0}),
                );
                steps_rec.push(json!({"id": step.id, "tool": step.tool, "status": "skipped", "attempts": 0, "duration_ms": 0}));
                continue;
            }
        }
        let (server, tool) = step.target().ok_or_else(|| StepError::BadTool {
            step: step.id.clone(),
            tool: step.tool.clone(),
        })?;
        let mut args = Map::new();
        for (k, v) in &step.with {
            let rendered = template::render_value(v, ctx).map_err(|error| StepError::Argument {
                step: step.id.clone(),
                arg: k.clone(),
                error,
            })?;
            args.insert(k.clone(), rendered);
        }
        let max_attempts = step
            .retry
            .as_ref()
            .map(|r| r.max_attempts.max(1))
            .unwrap_or(1);
        let mut delay = Duration::from_millis(step.retry.as_ref().map(|r| r.delay_ms).unwrap_or(0));
        let backoff = step
            .retry
            .as_ref()
            .map(|r| r.backoff)
            .unwrap_or(1.0)
            .clamp(1.0, 10.0);
        let timeout = step.timeout_ms.map(Duration::from_millis);
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            store.log(
                run_id,
                "info",
                Some(&step.id),
                &format!("calling {} (attempt {attempt})", step.tool),
                Value::Null,
            );
            let r = match tools.call(server, tool, args.clone(), timeout).await {
                Ok(out) if out.is_error => Err(CallError::Reported(match &out.value {
                    Value::String(s) => s.clone(),
                    v => v
                        .get("error")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                })),
                Ok(out) => Ok(out.value),
                Err(e) => Err(CallError::Call(e)),
            };
            match r {
                Ok(v) => break Ok(v),
                Err(e) if attempt < max_attempts => {
                    store.log(
                        run_id,
                        "warn",
                        Some(&step.id),
                        &format!("attempt {attempt} failed: {e}"),
                        Value::Null,
                    );
                    tokio::time::sleep(delay).await;
                    delay = delay.mul_f64(backoff);
                }
                Err(e) => break Err(e),
            }
        };
        let ms = t0.elapsed().as_millis() as u64;
        match result {
            Ok(v) => {
                store.log(
                    run_id,
                    "info",
                    Some(&step.id),
                    "succeeded",
                    json!({"duration_ms": ms}),
                );
                step_ctx(
                    ctx,
                    &step.id,
                    json!({"status": "succeeded", "output": v, "error": null, "attempts": attempt}),
                );
                steps_rec.push(json!({"id": step.id, "tool": step.tool, "status": "succeeded", "attempts": attempt, "duration_ms": ms}));
            }
            Err(error) => {
                let e = error.to_string();
                store.log(
                    run_id,
                    "error",
                    Some(&step.id),
                    &format!("failed: {e}"),
                    json!({"duration_ms": ms}),
                );
                step_ctx(
                    ctx,
                    &step.id,
                    json!({"status": "failed", "output": null, "error": e, "attempts": attempt}),
                );
                steps_rec.push(json!({"id": step.id, "tool": step.tool, "status": "failed", "attempts": attempt,
                                      "duration_ms": ms, "error": e}));
                if !step.continue_on_error {
                    return Err(StepError::Failed {
                        step: step.id.clone(),
                        error,
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ToolOutput;
    use crate::workflow::parse_workflow;
    use std::path::Path;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// In-memory tool server: `t.echo` returns its arguments, `t.flaky`
    /// fails twice then succeeds, `t.fail` always fails, `t.slow` sleeps.
    #[derive(Default)]
    struct Fake {
        flaky: AtomicU32,
        calls: Mutex<Vec<String>>,
    }

    impl ToolCaller for Fake {
        async fn call(
            &self,
            server: &str,
            tool: &str,
            args: Map<String, Value>,
            timeout: Option<Duration>,
        ) -> Result<ToolOutput, ToolError> {
            self.calls.lock().unwrap().push(format!("{server}.{tool}"));
            match tool {
                "echo" => Ok(ToolOutput {
                    value: Value::Object(args),
                    is_error: false,
                }),
                "flaky" => {
                    if self.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(ToolError::Connecting(server.to_string()))
                    } else {
                        Ok(ToolOutput {
                            value: json!({"ok": true}),
                            is_error: false,
                        })
                    }
                }
                "fail" => Ok(ToolOutput {
                    value: json!({"error": "boom"}),
                    is_error: true,
                }),
                "slow" => {
                    let t = timeout.unwrap_or(Duration::from_secs(5));
                    match tokio::time::timeout(t, tokio::time::sleep(Duration::from_secs(5))).await
                    {
                        Ok(()) => Ok(ToolOutput {
                            value: json!("late"),
                            is_error: false,
                        }),
                        Err(_) => Err(ToolError::Timeout {
                            server: server.to_string(),
                            tool: tool.to_string(),
                            ms: t.as_millis(),
                        }),
                    }
                }
                _ => Err(ToolError::NotConfigured(server.to_string())),
            }
        }
    }

    fn wf(yaml: &str) -> Workflow {
        let w = parse_workflow(Path::new("t.yaml"), yaml, Some(&["t".to_string()])).unwrap();
        assert!(w.problems.is_empty(), "{:?}", w.problems);
        w
    }

    async fn go(w: &Workflow, inputs: Value) -> (Value, Fake) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let fake = Fake::default();
        let opts = RunOptions {
            origin: "test",
            progress: None,
            run_id: None,
            stop: CancellationToken::new(),
            cancel: CancellationToken::new(),
        };
        let rec = run(
            &fake,
            &store,
            &Active::default(),
            w,
            inputs.as_object().unwrap(),
            opts,
        )
        .await;
        (rec, fake)
    }

    const FLOW: &str = r#"
name: flow
inputs:
  path: {type: string, required: true}
  n: {type: integer, default: 2}
  go: {type: boolean, default: false}
steps:
  - id: a
    tool: t.echo
    with:
      p: ${{ inputs.path }}
      n: ${{ inputs.n }}
      msg: "n is ${{ inputs.n }}"
  - id: b
    tool: t.echo
    if: inputs.go
    with: {x: 1}
  - id: c
    tool: t.flaky
    retry: {max_attempts: 3, delay_ms: 1}
  - id: d
    tool: t.echo
    with:
      from_a: ${{ steps.a.output.p }}
      b_status: ${{ steps.b.status }}
output:
  result: ${{ steps.d.output }}
  attempts: ${{ steps.c.attempts }}
"#;

    #[tokio::test]
    async fn runs_steps_with_templates_conditions_and_retry() {
        let w = wf(FLOW);
        let (rec, fake) = go(&w, json!({"path": "/x"})).await;
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(
            rec["output"]["result"],
            json!({"from_a": "/x", "b_status": "skipped"})
        );
        assert_eq!(rec["output"]["attempts"], 3);
        assert_eq!(fake.calls.lock().unwrap().len(), 1 + 3 + 1);
        assert_eq!(rec["steps"][1]["status"], "skipped");
    }

    #[tokio::test]
    async fn input_errors() {
        let w = wf(FLOW);
        let (rec, _) = go(&w, json!({})).await;
        assert_eq!(rec["status"], "failed");
        assert!(
            rec["error"]
                .as_str()
                .unwrap()
                .contains("missing required input `path`")
        );
        let (rec, _) = go(&w, json!({"path": "/x", "n": "abc"})).await;
        assert!(
            rec["error"].as_str().unwrap().contains("expected integer"),
            "{rec}"
        );
        let w2 = wf(
            "name: e\ninputs:\n  mode: {type: string, enum: [fast, slow], default: fast}\nsteps:\n  - id: a\n    tool: t.echo\n    with: {m: '${{ inputs.mode }}'}\n",
        );
        let (rec, _) = go(&w2, json!({"mode": "medium"})).await;
        assert!(
            rec["error"]
                .as_str()
                .unwrap()
                .contains("\"medium\" is not one of \"fast\", \"slow\""),
            "{rec}"
        );
        let (rec, _) = go(&w2, json!({})).await;
        assert_eq!(rec["steps"][0]["status"], "succeeded");
        let (rec, _) = go(&w, json!({"path": "/x", "zzz": 1})).await;
        assert!(
            rec["error"]
                .as_str()
                .unwrap()
                .contains("unknown input `zzz`")
        );
        // Strings are coerced for typed inputs.
        let (rec, _) = go(&w, json!({"path": "/x", "n": "7", "go": "true"})).await;
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(rec["steps"][1]["status"], "succeeded");
    }

    #[tokio::test]
    async fn failures_timeouts_and_continue_on_error() {
        let w = wf(
            "name: f\nsteps:\n  - id: x\n    tool: t.fail\n    continue_on_error: true\n  - id: y\n    tool: t.slow\n    timeout_ms: 50\n  - id: z\n    tool: t.echo\n",
        );
        let (rec, fake) = go(&w, json!({})).await;
        assert_eq!(rec["status"], "failed");
        assert_eq!(rec["steps"][0]["error"], "boom");
        assert!(
            rec["error"]
                .as_str()
                .unwrap()
                .contains("step `y` failed: t.slow: timed out after 50 ms"),
            "{rec}"
        );
        assert_eq!(fake.calls.lock().unwrap().as_slice(), ["t.fail", "t.slow"]);
    }

    #[tokio::test]
    async fn stop_marks_run_interrupted() {
        let w = wf("name: s\nsteps:\n  - id: y\n    tool: t.slow\n");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let stop = CancellationToken::new();
        let s2 = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s2.cancel();
        });
        let active = Active::default();
        let rec = run(
            &Fake::default(),
            &store,
            &active,
            &w,
            &Map::new(),
            RunOptions {
                origin: "test",
                progress: None,
                run_id: None,
                stop,
                cancel: CancellationToken::new(),
            },
        )
        .await;
        assert_eq!(rec["status"], "interrupted");
        assert_eq!(active.count(), 0);
        assert_eq!(store.runs(None, 5)[0]["status"], "interrupted");
    }

    #[tokio::test]
    async fn client_cancel_marks_run_cancelled_and_publishes_events() {
        let w = wf("name: c\nsteps:\n  - id: y\n    tool: t.slow\n");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let mut events = store.subscribe();
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c2.cancel();
        });
        let t0 = Instant::now();
        let rec = run(
            &Fake::default(),
            &store,
            &Active::default(),
            &w,
            &Map::new(),
            RunOptions {
                origin: "test",
                progress: None,
                run_id: None,
                stop: CancellationToken::new(),
                cancel,
            },
        )
        .await;
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(rec["status"], "cancelled");
        assert_eq!(store.runs(None, 5)[0]["status"], "cancelled");
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            assert_eq!(e.workflow, "c");
            seen.push((e.step.clone(), e.message.clone()));
        }
        assert_eq!(seen.first().unwrap().1, "run started");
        assert_eq!(seen[1].0.as_deref(), Some("y"));
        let last = seen.last().unwrap();
        assert!(last.1.starts_with("run cancelled"), "{seen:?}");
    }
}
