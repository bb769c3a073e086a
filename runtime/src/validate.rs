//! Static validation of workflow definitions.

use std::collections::HashSet;
use std::path::Path;

use crate::template;
use crate::workflow::WorkflowDef;

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

#[cfg(test)]
mod tests {
    use crate::workflow::parse_workflow;
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
        .unwrap_err();
        assert!(e.starts_with("w.yaml:5:5: unknown field `unknown`"), "{e}");
        let e = parse_workflow(
            Path::new("w.yaml"),
            "name: x\ninputs:\n  a: {type: text}\nsteps: []\n",
            None,
        )
        .unwrap_err();
        assert!(e.starts_with("w.yaml:3:"), "{e}");
        assert!(e.contains("string"), "{e}");
    }
}
