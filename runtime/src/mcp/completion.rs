//! `completion/complete` for ael: workflow names and run ids in the
//! resource templates, and the values of enum (and boolean) inputs in the
//! per-workflow prompts.

use rmcp::model::{CompleteRequestParams, CompletionInfo, Reference};
use serde_json::Value;

use crate::app::App;
use crate::mcp::resources::{RUN_TEMPLATE, WORKFLOW_TEMPLATE};

/// How many run ids are offered for a run URI.
const RUN_CANDIDATES: usize = 200;

/// Candidates starting with `prefix` (case-insensitively), at most
/// [`CompletionInfo::MAX_VALUES`], with the total count.
fn matching(candidates: impl IntoIterator<Item = String>, prefix: &str) -> CompletionInfo {
    let p = prefix.to_lowercase();
    let all: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&p))
        .collect();
    let total = all.len();
    let values: Vec<String> = all.into_iter().take(CompletionInfo::MAX_VALUES).collect();
    let more = total > values.len();
    let total = u32::try_from(total).unwrap_or(u32::MAX);
    // At most MAX_VALUES values, so this cannot fail.
    CompletionInfo::with_pagination(values, Some(total), more).unwrap_or_default()
}

/// The completion of one request; unknown references and arguments have no
/// candidates (an empty list, not an error).
pub fn complete(app: &App, req: &CompleteRequestParams) -> CompletionInfo {
    let arg = &req.argument;
    let none = || matching(Vec::new(), "");
    match &req.r#ref {
        Reference::Resource(r) if r.uri == WORKFLOW_TEMPLATE && arg.name == "name" => {
            matching(app.workflows().workflows.keys().cloned(), &arg.value)
        }
        Reference::Resource(r) if r.uri == RUN_TEMPLATE && arg.name == "run_id" => matching(
            app.recent_runs(RUN_CANDIDATES)
                .iter()
                .filter_map(|r| r["run_id"].as_str().map(str::to_string)),
            &arg.value,
        ),
        Reference::Prompt(p) => {
            let set = app.workflows();
            let Some(def) = set.get(&p.name).and_then(|wf| wf.def.inputs.get(&arg.name)) else {
                return none();
            };
            let values: Vec<String> = match (&def.allowed, def.kind) {
                (Some(allowed), _) => allowed
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .collect(),
                (None, crate::definition::InputType::Boolean) => {
                    vec!["true".into(), "false".into()]
                }
                _ => Vec::new(),
            };
            matching(values, &arg.value)
        }
        _ => none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_match_counts_all_but_returns_at_most_100() {
        let c = matching((0..150).map(|i| format!("w{i}")), "W1");
        assert_eq!(c.total, Some(61)); // w1, w10..w19, w100..w149
        assert_eq!(c.values.len(), 61);
        assert_eq!(c.has_more, Some(false));
        let c = matching((0..150).map(|i| format!("w{i}")), "");
        assert_eq!(c.values.len(), 100);
        assert_eq!(c.has_more, Some(true));
    }
}
