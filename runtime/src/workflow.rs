//! Workflow file format and loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::definition::WorkflowDef;
use crate::yaml::YamlError;

/// Why a workflow file (or the directory) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The workflows directory cannot be listed.
    #[error("cannot read workflows directory: {0}")]
    ReadDir(std::io::Error),
    /// A workflow file cannot be read.
    #[error("{}: {error}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error (part of the message).
        error: std::io::Error,
    },
    /// A workflow file is not valid YAML or does not match the schema.
    #[error(transparent)]
    Syntax(#[from] YamlError),
    /// Two files define the same workflow name.
    #[error("{}: duplicate workflow name {name:?} (already defined in {})", file.display(), first.display())]
    DuplicateName {
        /// The file loaded second.
        file: PathBuf,
        /// The workflow name.
        name: String,
        /// The file that defined the name first.
        first: PathBuf,
    },
}

fn serialize_display<T: std::fmt::Display, S: serde::Serializer>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// A successfully parsed workflow file.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The parsed document.
    pub def: WorkflowDef,
    /// The file it came from.
    pub file: PathBuf,
    /// Static validation problems (`file:line: message`); a workflow with
    /// problems is listed but refuses to run.
    pub problems: Vec<String>,
}

impl Workflow {
    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }
    /// True when static validation found no problems.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A workflow file that could not be loaded; serialized as
/// `{"file": ..., "error": "<message>"}`.
#[derive(Debug, Serialize)]
pub struct LoadError {
    /// The file (or the directory, when it cannot be read).
    pub file: PathBuf,
    /// What went wrong.
    #[serde(serialize_with = "serialize_display")]
    pub error: WorkflowError,
}

/// All workflows found in a directory.
#[derive(Debug, Default)]
pub struct WorkflowSet {
    /// Loaded workflows by name (valid or not).
    pub workflows: BTreeMap<String, Workflow>,
    /// Files that could not be loaded.
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
) -> Result<Workflow, YamlError> {
    let def: WorkflowDef = serde_saphyr::from_str(text).map_err(|e| YamlError::new(file, &e))?;
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
                    error: WorkflowError::ReadDir(e),
                });
                return set;
            }
        };
        for file in files.keys() {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(error) => {
                    set.errors.push(LoadError {
                        file: file.clone(),
                        error: WorkflowError::Read {
                            file: file.clone(),
                            error,
                        },
                    });
                    continue;
                }
            };
            match parse_workflow(file, &text, servers) {
                Ok(wf) => {
                    if let Some(prev) = set.workflows.get(wf.name()) {
                        set.errors.push(LoadError {
                            file: file.clone(),
                            error: WorkflowError::DuplicateName {
                                file: file.clone(),
                                name: wf.name().to_string(),
                                first: prev.file.clone(),
                            },
                        });
                    } else {
                        set.workflows.insert(wf.name().to_string(), wf);
                    }
                }
                Err(e) => set.errors.push(LoadError {
                    file: file.clone(),
                    error: e.into(),
                }),
            }
        }
        set
    }

    /// The workflow named `name`.
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

#[cfg(test)]
mod tests {
    use super::parse_workflow;
    use std::path::Path;

    fn problems(yaml: &str) -> Vec<String> {
        parse_workflow(Path::new("w.yaml"), yaml, Some(&["native".to_string()]))
            .unwrap()
            .problems
    }

    #[test]
    fn valid_workflow_has_no_problems() {
        let p = problems(
            "name: ok\ninputs:\n  p: {type: string, required: true}\nsteps:\n  - id: a\n    tool: native.fs_read\n    with: {path: '${{ inputs.p }}'}\n  - id: b\n    tool: native.fs_stat\n    if: steps.a.status == 'succeeded'\n    with: {path: '${{ steps.a.output.path }}'}\noutput: '${{ steps.b.output }}'\n",
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn reports_semantic_problems_with_lines() {
        let p = problems(
            "name: bad\ninputs:\n  n: {type: integer, default: 'x'}\nsteps:\n  - id: a\n    tool: other.fs_read\n  - id: a\n    tool: nodot\n  - id: c\n    tool: native.fs_read\n    if: steps.later.status\n    with: {x: '${{ inputs.missing }}'}\n    retry: {max_attempts: 0}\n  - id: later\n    tool: native.fs_read\n",
        );
        let all = p.join("\n");
        assert!(
            all.contains("input `n`: default \"x\" is not of type integer"),
            "{all}"
        );
        assert!(
            all.contains("w.yaml:5: step `a`: tool server `other` is not configured"),
            "{all}"
        );
        assert!(
            all.contains("w.yaml:7: step `a`: duplicate step id"),
            "{all}"
        );
        assert!(
            all.contains("w.yaml:7: step `a`: tool \"nodot\" must be SERVER.TOOL"),
            "{all}"
        );
        assert!(
            all.contains("w.yaml:9: step `c`: if: step `later` is not defined before this point"),
            "{all}"
        );
        assert!(
            all.contains("w.yaml:9: step `c`: with.x: unknown input `missing`"),
            "{all}"
        );
        assert!(
            all.contains("retry.max_attempts must be at least 1"),
            "{all}"
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = parse_workflow(
            Path::new("w.yaml"),
            "name: x\nsteps:\n  - id: a\n    tool: a.b\n    unknown: 1\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("w.yaml:5:5: unknown field `unknown`"), "{e}");
        let e = parse_workflow(
            Path::new("w.yaml"),
            "name: x\ninputs:\n  a: {type: text}\nsteps: []\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("w.yaml:3:"), "{e}");
        assert!(e.contains("string"), "{e}");
    }
}
