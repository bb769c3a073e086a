//! MCP prompts of ael: one per valid workflow. Its arguments are the
//! workflow's inputs (so a client can offer them in a form, with
//! completion of enum inputs); getting it checks the values and returns an
//! instruction to run the workflow with them.

use rmcp::ErrorData;
use rmcp::model::{GetPromptResult, Prompt, PromptArgument, PromptMessage, Role};
use serde_json::{Map, Value};

use crate::app::App;
use crate::definition::InputDef;
use crate::engine;
use crate::mcp::workflow_tool_name;
use crate::workflow::Workflow;

/// Human description of one input: type, allowed values, default.
fn describe_input(def: &InputDef) -> String {
    let mut parts = vec![def.kind.as_str().to_string()];
    if let Some(a) = &def.allowed {
        let list: Vec<String> = a.iter().map(Value::to_string).collect();
        parts.push(format!("one of {}", list.join(", ")));
    }
    if let Some(d) = &def.default {
        parts.push(format!("default {d}"));
    }
    let kind = parts.join("; ");
    if def.description.is_empty() {
        kind
    } else {
        format!("{} ({kind})", def.description)
    }
}

fn prompt_of(wf: &Workflow) -> Prompt {
    let args: Vec<PromptArgument> = wf
        .def
        .inputs
        .iter()
        .map(|(name, def)| {
            PromptArgument::new(name)
                .with_description(describe_input(def))
                .with_required(def.required && def.default.is_none())
        })
        .collect();
    let desc = if wf.def.description.is_empty() {
        format!("Run workflow {}", wf.name())
    } else {
        format!("Run workflow {}: {}", wf.name(), wf.def.description)
    };
    Prompt::new(wf.name(), Some(desc), (!args.is_empty()).then_some(args))
        .with_title(format!("Run {}", wf.name()))
}

/// One prompt per valid workflow.
pub fn list(app: &App) -> Vec<Prompt> {
    app.workflows()
        .workflows
        .values()
        .filter(|wf| wf.is_valid())
        .map(prompt_of)
        .collect()
}

/// The prompt of workflow `name` with the given input values (strings, as
/// prompt arguments are; converted to the inputs' types).
pub fn get(
    app: &App,
    name: &str,
    arguments: Option<&Map<String, Value>>,
) -> Result<GetPromptResult, ErrorData> {
    let set = app.workflows();
    let wf = set
        .get(name)
        .filter(|wf| wf.is_valid())
        .ok_or_else(|| ErrorData::invalid_params(format!("no prompt named {name:?}"), None))?;
    let given = arguments.cloned().unwrap_or_default();
    let inputs = engine::resolve_inputs(wf, &given)
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
    let mut text = format!(
        "Run the AEL workflow `{}` by calling the tool `{}` with these arguments:\n\n{}\n",
        wf.name(),
        workflow_tool_name(wf.name()),
        serde_json::to_string_pretty(&Value::Object(inputs)).unwrap_or_default()
    );
    if !wf.def.description.is_empty() {
        text.push_str(&format!("\nWhat it does: {}\n", wf.def.description));
    }
    let steps: Vec<String> = wf
        .def
        .steps
        .iter()
        .map(|s| format!("- {} ({})", s.value.id, s.value.tool))
        .collect();
    text.push_str(&format!("\nSteps:\n{}\n", steps.join("\n")));
    text.push_str("\nThen report the run's status and output.");
    let r = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
    Ok(match prompt_of(wf).description {
        Some(d) => r.with_description(d),
        None => r,
    })
}
