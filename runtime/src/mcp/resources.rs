//! MCP resources of ael: each workflow definition (`ael://workflows/{name}`,
//! its YAML file as written) and each run's record with its log
//! (`ael://runs/{run_id}`, JSON).

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use serde_json::json;

use crate::app::App;

/// URI prefix of workflow definitions.
pub const WORKFLOW_PREFIX: &str = "ael://workflows/";
/// URI prefix of run records.
pub const RUN_PREFIX: &str = "ael://runs/";
/// Template of workflow definition URIs.
pub const WORKFLOW_TEMPLATE: &str = "ael://workflows/{name}";
/// Template of run record URIs.
pub const RUN_TEMPLATE: &str = "ael://runs/{run_id}";
/// How many recent runs `resources/list` shows (older ones stay readable).
const LISTED_RUNS: usize = 50;

const YAML: &str = "application/yaml";
const JSON: &str = "application/json";

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; None when an escape is malformed or the result
/// is not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// URI of a workflow definition.
pub fn workflow_uri(name: &str) -> String {
    format!("{WORKFLOW_PREFIX}{}", encode(name))
}

/// URI of a run record.
pub fn run_uri(run_id: &str) -> String {
    format!("{RUN_PREFIX}{}", encode(run_id))
}

/// Every workflow definition and the most recent runs.
pub fn list(app: &App) -> Vec<Resource> {
    let set = app.workflows();
    let mut out: Vec<Resource> = set
        .workflows
        .values()
        .map(|wf| {
            let mut r = Resource::new(workflow_uri(wf.name()), wf.name())
                .with_title(format!("Workflow {}", wf.name()))
                .with_mime_type(YAML);
            let desc = if wf.def.description.is_empty() {
                format!(
                    "Definition of workflow {} ({})",
                    wf.name(),
                    wf.file.display()
                )
            } else {
                wf.def.description.clone()
            };
            r = r.with_description(desc);
            if let Ok(m) = std::fs::metadata(&wf.file) {
                r = r.with_size(m.len());
            }
            r
        })
        .collect();
    for run in app.recent_runs(LISTED_RUNS) {
        let Some(id) = run["run_id"].as_str() else {
            continue;
        };
        let wf = run["workflow"].as_str().unwrap_or_default();
        let status = run["status"].as_str().unwrap_or_default();
        out.push(
            Resource::new(run_uri(id), format!("run {id}"))
                .with_title(format!("Run of {wf} ({status})"))
                .with_description(format!(
                    "Record and log of run {id} of workflow {wf}, started {}",
                    run["started_at"].as_str().unwrap_or("?")
                ))
                .with_mime_type(JSON),
        );
    }
    out
}

/// The resource templates.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(WORKFLOW_TEMPLATE, "workflow")
            .with_title("Workflow definition")
            .with_description("The YAML file of a loaded workflow, byte for byte")
            .with_mime_type(YAML),
        ResourceTemplate::new(RUN_TEMPLATE, "run")
            .with_title("Workflow run")
            .with_description(
                "A run's record (status, output, steps) and its log; subscribe to follow a running run",
            )
            .with_mime_type(JSON),
    ]
}

fn not_found(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(format!("no resource {uri:?}"), Some(json!({"uri": uri})))
}

/// Reads one resource.
pub fn read(app: &Arc<App>, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    if let Some(name) = uri.strip_prefix(WORKFLOW_PREFIX) {
        let name = decode(name).ok_or_else(|| not_found(uri))?;
        let set = app.workflows();
        let file = match set.get(&name) {
            Some(wf) => wf.file.clone(),
            // A file that failed to load is still readable by its stem.
            None => set
                .errors
                .iter()
                .find(|e| e.file.file_stem().and_then(|s| s.to_str()) == Some(name.as_str()))
                .map(|e| e.file.clone())
                .ok_or_else(|| not_found(uri))?,
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| ErrorData::internal_error(format!("{}: {e}", file.display()), None))?;
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type(YAML),
        ]));
    }
    if let Some(id) = uri.strip_prefix(RUN_PREFIX) {
        let id = decode(id).ok_or_else(|| not_found(uri))?;
        let mut rec = app.run_get(&id).ok_or_else(|| not_found(uri))?;
        rec["logs"] = json!(app.store.logs(&id));
        let text = serde_json::to_string_pretty(&rec)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type(JSON),
        ]));
    }
    Err(not_found(uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        assert_eq!(
            workflow_uri("fetch-and-save"),
            "ael://workflows/fetch-and-save"
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decode("%FF"), None);
    }
}
