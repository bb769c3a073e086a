//! Workflow definitions: the types a workflow YAML file deserializes into.
//!
//! Both static validation (`validate`) and loading (`workflow`) depend on
//! these types; this module depends on neither.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_saphyr::Spanned;

/// A `--input` (or string-valued) input that does not convert to its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {raw:?} ({reason})")]
pub struct InputParseError {
    /// The declared type's name.
    pub expected: &'static str,
    /// The raw text given.
    pub raw: String,
    /// Why it does not convert.
    pub reason: String,
}

/// Type of a workflow input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Any string (the default).
    #[default]
    String,
    /// A JSON integer.
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl InputType {
    /// The type's name as written in workflow files.
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
    pub fn parse_cli(self, raw: &str) -> Result<Value, InputParseError> {
        let bad = |e: &dyn std::fmt::Display| InputParseError {
            expected: self.as_str(),
            raw: raw.to_string(),
            reason: e.to_string(),
        };
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

/// One entry of a workflow's `inputs:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputDef {
    /// Declared type (`type:`).
    #[serde(rename = "type", default)]
    pub kind: InputType,
    /// Human description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Whether a value must be given (when there is no default).
    #[serde(default)]
    pub required: bool,
    /// Value used when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Allowed values (optional).
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
}

/// A step's `retry:` policy.
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

/// One entry of a workflow's `steps:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Step id, unique within the workflow.
    pub id: String,
    /// Human description.
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
    /// Timeout of one tool call (overrides the server's `call_timeout_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retry policy for failed calls.
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

/// A workflow document as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// Workflow name (unique within the directory).
    pub name: String,
    /// Human description.
    #[serde(default)]
    pub description: String,
    /// Free-form version string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Declared inputs, in file order.
    #[serde(default)]
    pub inputs: IndexMap<String, InputDef>,
    /// Steps with their source location.
    pub steps: Vec<Spanned<StepDef>>,
    /// Output template (any YAML value; strings are templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Whole-run timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}
