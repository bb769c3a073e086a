//! Static validation of workflow definitions.

use std::collections::HashSet;
use std::path::Path;

use crate::definition::WorkflowDef;
use crate::template;

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Returns a list of problems, each `file:line: message`.
pub fn check(def: &WorkflowDef, file: &Path, servers: Option<&[String]>) -> Vec<String> {
    let f = file.display();
    let mut problems = Vec::new();
    if def.name.trim().is_empty() {
        problems.push(format!("{f}:1: workflow `name` must not be empty"));
    }
    for (name, inp) in &def.inputs {
        if !is_ident(name) {
            problems.push(format!("{f}: input name {name:?} must be an identifier"));
        }
        for v in inp.allowed.iter().flatten() {
            if !inp.kind.matches(v) {
                problems.push(format!(
                    "{f}: input `{name}`: enum value {v} is not of type {}",
                    inp.kind.as_str()
                ));
            }
        }
        if let (Some(d), Some(allowed)) = (&inp.default, &inp.allowed)
            && !allowed.contains(d)
        {
            problems.push(format!(
                "{f}: input `{name}`: default {d} is not one of the enum values"
            ));
        }
        if let Some(d) = &inp.default
            && !inp.kind.matches(d)
        {
            problems.push(format!(
                "{f}: input `{name}`: default {d} is not of type {}",
                inp.kind.as_str()
            ));
        }
    }
    if def.steps.is_empty() {
        problems.push(format!("{f}: workflow has no steps"));
    }
    let inputs: HashSet<&str> = def.inputs.keys().map(String::as_str).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    for spanned in &def.steps {
        let step = &spanned.value;
        let line = spanned.referenced.line();
        let at = format!("{f}:{line}: step `{}`", step.id);
        if !is_ident(&step.id) {
            problems.push(format!(
                "{at}: id must be an identifier (letters, digits, '_' or '-')"
            ));
        }
        if seen.contains(step.id.as_str()) {
            problems.push(format!("{at}: duplicate step id"));
        }
        match step.target() {
            None => problems.push(format!("{at}: tool {:?} must be SERVER.TOOL", step.tool)),
            Some((server, _)) => {
                if let Some(servers) = servers
                    && !servers.iter().any(|s| s == server)
                {
                    problems.push(format!(
                        "{at}: tool server `{server}` is not configured (known: {})",
                        if servers.is_empty() {
                            "none".to_string()
                        } else {
                            servers.join(", ")
                        }
                    ));
                }
            }
        }
        if let Some(r) = &step.retry
            && r.max_attempts == 0
        {
            problems.push(format!("{at}: retry.max_attempts must be at least 1"));
        }
        let scope = template::Scope {
            inputs: &inputs,
            steps: &seen,
        };
        if let Some(cond) = &step.condition
            && let Err(e) = template::check_expr_or_template(cond, &scope)
        {
            problems.push(format!("{at}: if: {e}"));
        }
        for (k, v) in &step.with {
            for e in template::check_value(v, &scope) {
                problems.push(format!("{at}: with.{k}: {e}"));
            }
        }
        seen.insert(step.id.as_str());
    }
    if let Some(out) = &def.output {
        let scope = template::Scope {
            inputs: &inputs,
            steps: &seen,
        };
        for e in template::check_value(out, &scope) {
            problems.push(format!("{f}: output: {e}"));
        }
    }
    problems
}
