//! Workflow file format and loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::config::yaml_error;

/// Type of a workflow input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    #[default]
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
}

impl InputType {
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Number => "number",
            InputType::Boolean => "boolean",
            InputType::Object => "object",
            InputType::Array => "array",
        }
    }

    /// Whether a JSON value has this type.
    pub fn matches(self, v: &Value) -> bool {
        match self {
            InputType::String => v.is_string(),
            InputType::Integer => v.is_i64() || v.is_u64(),
            InputType::Number => v.is_number(),
            InputType::Boolean => v.is_boolean(),
            InputType::Object => v.is_object(),
            InputType::Array => v.is_array(),
        }
    }

    /// Converts a command-line string (`--input k=v`) to a value of this type.
    pub fn parse_cli(self, raw: &str) -> Result<Value, String> {
        let bad =
            |e: &dyn std::fmt::Display| format!("expected {}, got {raw:?} ({e})", self.as_str());
        match self {
            InputType::String => Ok(Value::String(raw.to_string())),
            InputType::Integer => raw
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|e| bad(&e)),
            InputType::Number => raw
                .trim()
                .parse::<f64>()
                .map_err(|e| bad(&e))
                .and_then(|f| {
                    serde_json::Number::from_f64(f)
                        .map(Value::Number)
                        .ok_or_else(|| bad(&"not finite"))
                }),
            InputType::Boolean => crate::config::parse_bool("input", raw)
                .map(Value::Bool)
                .map_err(|e| bad(&e)),
            InputType::Object | InputType::Array => {
                let v: Value = serde_json::from_str(raw).map_err(|e| bad(&e))?;
                if self.matches(&v) {
                    Ok(v)
                } else {
                    Err(bad(&"wrong JSON type"))
                }
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputDef {
    #[serde(rename = "type", default)]
    pub kind: InputType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Allowed values (optional).
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    /// Total attempts including the first one.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry.
    #[serde(default = "default_delay")]
    pub delay_ms: u64,
    /// Multiplier applied to the delay after each retry.
    #[serde(default = "default_backoff")]
    pub backoff: f64,
}

fn default_attempts() -> u32 {
    3
}
fn default_delay() -> u64 {
    500
}
fn default_backoff() -> f64 {
    2.0
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `SERVER.TOOL`, e.g. `native.fs_read`.
    pub tool: String,
    /// Tool arguments; strings may contain `${{ expr }}` templates.
    #[serde(default, rename = "with", alias = "arguments")]
    pub with: IndexMap<String, Value>,
    /// Condition expression; the step is skipped when it is falsy.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    /// Keep going when this step fails (its `error` is then available).
    #[serde(default)]
    pub continue_on_error: bool,
}

impl StepDef {
    /// Splits `tool` into (server, tool).
    pub fn target(&self) -> Option<(&str, &str)> {
        let (s, t) = self.tool.split_once('.')?;
        (!s.is_empty() && !t.is_empty()).then_some((s, t))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub inputs: IndexMap<String, InputDef>,
    pub steps: Vec<Spanned<StepDef>>,
    /// Output template (any YAML value; strings are templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Whole-run timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A successfully parsed workflow file.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub def: WorkflowDef,
    pub file: PathBuf,
    /// Static validation problems (`file:line: message`); a workflow with
    /// problems is listed but refuses to run.
    pub problems: Vec<String>,
}

impl Workflow {
    pub fn name(&self) -> &str {
        &self.def.name
    }
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A workflow file that could not be loaded.
#[derive(Debug, Clone, Serialize)]
pub struct LoadError {
    pub file: PathBuf,
    pub error: String,
}

/// All workflows found in a directory.
#[derive(Debug, Clone, Default)]
pub struct WorkflowSet {
    pub workflows: BTreeMap<String, Workflow>,
    pub errors: Vec<LoadError>,
}

/// Lists `*.yaml` / `*.yml` files in `dir` with their modification times.
pub fn scan_dir(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, (Option<SystemTime>, u64)>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let is_yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !is_yaml || hidden {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            out.insert(path, (meta.modified().ok(), meta.len()));
        }
    }
    Ok(out)
}

/// Parses one workflow document.
pub fn parse_workflow(
    file: &Path,
    text: &str,
    servers: Option<&[String]>,
) -> Result<Workflow, String> {
    let def: WorkflowDef = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
    let problems = crate::validate::check(&def, file, servers);
    Ok(Workflow {
        def,
        file: file.to_path_buf(),
        problems,
    })
}

impl WorkflowSet {
    /// Loads every workflow file in `dir`. A missing directory yields an
    /// empty set with one error; bad files are reported individually.
    pub fn load(dir: &Path, servers: Option<&[String]>) -> WorkflowSet {
        let mut set = WorkflowSet::default();
        let files = match scan_dir(dir) {
            Ok(f) => f,
            Err(e) => {
                set.errors.push(LoadError {
                    file: dir.to_path_buf(),
                    error: format!("cannot read workflows directory: {e}"),
                });
                return set;
            }
        };
        for file in files.keys() {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    set.errors.push(LoadError {
                        file: file.clone(),
                        error: format!("{}: {e}", file.display()),
                    });
                    continue;
                }
            };
            match parse_workflow(file, &text, servers) {
                Ok(wf) => {
                    if let Some(prev) = set.workflows.get(wf.name()) {
                        set.errors.push(LoadError {
                            file: file.clone(),
                            error: format!(
                                "{}: duplicate workflow name {:?} (already defined in {})",
                                file.display(),
                                wf.name(),
                                prev.file.display()
                            ),
                        });
                    } else {
                        set.workflows.insert(wf.name().to_string(), wf);
                    }
                }
                Err(error) => set.errors.push(LoadError {
                    file: file.clone(),
                    error,
                }),
            }
        }
        set
    }

    pub fn get(&self, name: &str) -> Option<&Workflow> {
        self.workflows.get(name)
    }
}

/// JSON summary of a workflow for listings.
pub fn summary(wf: &Workflow) -> Value {
    serde_json::json!({
        "name": wf.def.name,
        "description": wf.def.description,
        "file": wf.file,
        "inputs": wf.def.inputs.keys().collect::<Vec<_>>(),
        "steps": wf.def.steps.len(),
        "valid": wf.is_valid(),
    })
}

/// Full JSON description of a workflow.
pub fn describe(wf: &Workflow) -> Value {
    let steps: Vec<Value> = wf
        .def
        .steps
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s.value).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("line".into(), Value::from(s.referenced.line()));
            }
            v
        })
        .collect();
    serde_json::json!({
        "name": wf.def.name,
        "description": wf.def.description,
        "version": wf.def.version,
        "file": wf.file,
        "inputs": wf.def.inputs,
        "input_schema": input_schema(&wf.def),
        "steps": steps,
        "output": wf.def.output,
        "valid": wf.is_valid(),
        "problems": wf.problems,
    })
}

/// JSON Schema for a workflow's inputs.
pub fn input_schema(def: &WorkflowDef) -> Value {
    let mut props = serde_json::Map::new();
    let mut required = Vec::new();
    for (name, inp) in &def.inputs {
        let mut p = serde_json::Map::new();
        p.insert("type".into(), Value::from(inp.kind.as_str()));
        if !inp.description.is_empty() {
            p.insert("description".into(), Value::from(inp.description.clone()));
        }
        if let Some(d) = &inp.default {
            p.insert("default".into(), d.clone());
        }
        if let Some(a) = &inp.allowed {
            p.insert("enum".into(), Value::Array(a.clone()));
        }
        if inp.required {
            required.push(Value::from(name.clone()));
        }
        props.insert(name.clone(), Value::Object(p));
    }
    serde_json::json!({"type": "object", "properties": props, "required": required})
}
