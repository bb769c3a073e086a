//! `${{ expr }}` templates and the small expression language used in
//! workflow arguments, `if:` conditions and outputs.
//!
//! Grammar:
//! ```text
//! expr    := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | cmp
//! cmp     := primary (("=="|"!="|"<"|"<="|">"|">=") primary)?
//! primary := literal | path | "(" expr ")" | func "(" [expr ("," expr)*] ")"
//! path    := ident ("." ident | "[" int "]" | "[" string "]")*
//! literal := number | 'string' | "string" | true | false | null
//! func    := length | contains | json | default | not_empty
//! ```

use std::collections::HashSet;

use serde_json::Value;

/// A syntax error in an expression or template, or a reference to a name
/// that is not in scope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// A numeric literal that does not parse.
    #[error("bad number {0:?}")]
    BadNumber(String),
    /// A quote without its closing quote.
    #[error("unterminated string literal")]
    UnterminatedString,
    /// A character that starts no token.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// A required operator or punctuation is missing.
    #[error("expected `{0}`")]
    Expected(&'static str),
    /// The expression stops where an operand is needed.
    #[error("unexpected end of expression")]
    UnexpectedEnd,
    /// An operator where an operand is needed.
    #[error("unexpected `{0}`")]
    UnexpectedOp(&'static str),
    /// A call of a function that does not exist.
    #[error("unknown function `{name}` (known: {known})")]
    UnknownFunction {
        /// The name called.
        name: String,
        /// Known function names, comma-separated.
        known: String,
    },
    /// A function called with the wrong number of arguments.
    #[error("{name}() takes {arity} argument(s), got {got}")]
    Arity {
        /// Function name.
        name: String,
        /// Arguments it takes.
        arity: usize,
        /// Arguments given.
        got: usize,
    },
    /// `.` not followed by a name or index.
    #[error("expected a name after `.`")]
    ExpectedName,
    /// `[` not followed by an index or quoted key.
    #[error("expected an index or a quoted key inside `[]`")]
    ExpectedIndex,
    /// Nothing inside `${{ }}`.
    #[error("empty expression")]
    Empty,
    /// A complete expression followed by more tokens.
    #[error("unexpected trailing input in {0:?}")]
    Trailing(String),
    /// `${{` without `}}`.
    #[error("unclosed `${{{{` in {0:?}")]
    Unclosed(String),
    /// An error inside one `${{ expr }}` of a template.
    #[error("in `${{{{{expr}}}}}`: {error}")]
    InTemplate {
        /// The expression text between the delimiters.
        expr: String,
        /// The error in it.
        error: Box<TemplateError>,
    },
    /// `inputs.X` where X is not declared.
    #[error("unknown input `{0}`")]
    UnknownInput(String),
    /// `steps.X.Y` where Y is not a step field.
    #[error("steps.{step}.{field}: expected output, status, error or attempts")]
    StepField {
        /// Step id.
        step: String,
        /// The field asked for.
        field: String,
    },
    /// `steps.X` where X is not an earlier step.
    #[error("step `{0}` is not defined before this point")]
    StepNotDefined(String),
    /// A path starting with an unknown name.
    #[error("unknown name `{0}` (expected inputs, steps, workflow or run)")]
    UnknownName(String),
    /// A path starting with an index.
    #[error("a path must start with a name")]
    PathStart,
}

type Result<T, E = TemplateError> = std::result::Result<T, E>;

/// One step of a path: `.key` / `["key"]` or `[index]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    /// Object key.
    Key(String),
    /// Array index.
    Index(usize),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal value.
    Lit(Value),
    /// A path into the context (`inputs.x`, `steps.a.output[0]`).
    Path(Vec<Seg>),
    /// `!a`
    Not(Box<Expr>),
    /// `a && b` (yields the deciding operand).
    And(Box<Expr>, Box<Expr>),
    /// `a || b` (yields the deciding operand).
    Or(Box<Expr>, Box<Expr>),
    /// A comparison.
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(String, Vec<Expr>),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

const FUNCS: &[(&str, usize)] = &[
    ("length", 1),
    ("contains", 2),
    ("json", 1),
    ("default", 2),
    ("not_empty", 1),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64, bool),
    Str(String),
    Op(&'static str),
}

fn tokenize(s: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
            {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || chars[i] == '.'
                    || chars[i] == 'e'
                    || chars[i] == 'E')
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let is_int = !text.contains(['.', 'e', 'E']);
            let n: f64 = text
                .parse()
                .map_err(|_| TemplateError::BadNumber(text.clone()))?;
            out.push(Tok::Num(n, is_int));
            continue;
        }
        if c == '\'' || c == '"' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(TemplateError::UnterminatedString),
                    Some(&ch) if ch == quote => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(&other) => s.push(other),
                            None => return Err(TemplateError::UnterminatedString),
                        }
                        i += 2;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
            continue;
        }
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let op2 = ["==", "!=", "<=", ">=", "&&", "||"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(op) = op2 {
            out.push(Tok::Op(op));
            i += 2;
            continue;
        }
        let op1 = ["!", "<", ">", "(", ")", "[", "]", ".", ","]
            .into_iter()
            .find(|o| o.starts_with(c));
        match op1 {
            Some(op) => {
                out.push(Tok::Op(op));
                i += 1;
            }
            None => return Err(TemplateError::UnexpectedChar(c)),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_op(&mut self, op: &'static str) -> Result<()> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(TemplateError::Expected(op))
        }
    }
    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        while self.eat_op("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        while self.eat_op("&&") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr> {
        if self.eat_op("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr> {
        let left = self.primary()?;
        let op = match self.peek() {
            Some(Tok::Op("==")) => CmpOp::Eq,
            Some(Tok::Op("!=")) => CmpOp::Ne,
            Some(Tok::Op("<")) => CmpOp::Lt,
            Some(Tok::Op("<=")) => CmpOp::Le,
            Some(Tok::Op(">")) => CmpOp::Gt,
            Some(Tok::Op(">=")) => CmpOp::Ge,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.primary()?;
        Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
    }
    fn primary(&mut self) -> Result<Expr> {
        let tok = self.peek().cloned().ok_or(TemplateError::UnexpectedEnd)?;
        self.pos += 1;
        match tok {
            Tok::Num(n, is_int) => Ok(Expr::Lit(if is_int && n.abs() < 9.0e15 {
                Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            })),
            Tok::Str(s) => Ok(Expr::Lit(Value::String(s))),
            Tok::Op("(") => {
                let e = self.or()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Tok::Op(o) => Err(TemplateError::UnexpectedOp(o)),
            Tok::Ident(id) => match id.as_str() {
                "true" => Ok(Expr::Lit(Value::Bool(true))),
                "false" => Ok(Expr::Lit(Value::Bool(false))),
                "null" => Ok(Expr::Lit(Value::Null)),
                _ if self.eat_op("(") => {
                    let Some(&(_, arity)) = FUNCS.iter().find(|(n, _)| *n == id) else {
                        let known: Vec<&str> = FUNCS.iter().map(|(n, _)| *n).collect();
                        return Err(TemplateError::UnknownFunction {
                            name: id,
                            known: known.join(", "),
                        });
                    };
                    let mut args = Vec::new();
                    if !self.eat_op(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat_op(")") {
                                break;
                            }
                            self.expect_op(",")?;
                        }
                    }
                    if args.len() != arity {
                        return Err(TemplateError::Arity {
                            name: id,
                            arity,
                            got: args.len(),
                        });
                    }
                    Ok(Expr::Call(id, args))
                }
                _ => {
                    let mut segs = vec![Seg::Key(id)];
                    loop {
                        if self.eat_op(".") {
                            match self.peek().cloned() {
                                Some(Tok::Ident(k)) => {
                                    self.pos += 1;
                                    segs.push(Seg::Key(k));
                                }
                                Some(Tok::Num(n, true)) if n >= 0.0 => {
                                    self.pos += 1;
                                    segs.push(Seg::Index(n as usize));
                                }
                                _ => return Err(TemplateError::ExpectedName),
                            }
                        } else if self.eat_op("[") {
                            match self.peek().cloned() {
                                Some(Tok::Num(n, true)) if n >= 0.0 => {
                                    segs.push(Seg::Index(n as usize))
                                }
                                Some(Tok::Str(k)) => segs.push(Seg::Key(k)),
                                _ => return Err(TemplateError::ExpectedIndex),
                            }
                            self.pos += 1;
                            self.expect_op("]")?;
                        } else {
                            break;
                        }
                    }
                    Ok(Expr::Path(segs))
                }
            },
        }
    }
}

/// Parses an expression (without the `${{ }}` delimiters).
pub fn parse_expr(s: &str) -> Result<Expr> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(TemplateError::Empty);
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(TemplateError::Trailing(s.to_string()));
    }
    Ok(e)
}

/// A piece of a template string.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// A `${{ expr }}`.
    Expr(Expr),
}

/// Splits a string into literal text and `${{ expr }}` parts.
pub fn parse_template(s: &str) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError::Unclosed(s.to_string()))?;
        let expr = &after[..end];
        parts.push(Part::Expr(parse_expr(expr).map_err(|e| {
            TemplateError::InTemplate {
                expr: expr.to_string(),
                error: Box::new(e),
            }
        })?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

/// Names visible to templates at some point of a workflow.
pub struct Scope<'a> {
    /// Declared input names.
    pub inputs: &'a HashSet<&'a str>,
    /// Ids of the steps before this point.
    pub steps: &'a HashSet<&'a str>,
}

fn check_refs(e: &Expr, scope: &Scope) -> Result<()> {
    match e {
        Expr::Lit(_) => Ok(()),
        Expr::Path(segs) => {
            let key = |i: usize| match segs.get(i) {
                Some(Seg::Key(k)) => Some(k.as_str()),
                _ => None,
            };
            match key(0) {
                Some("inputs") => match key(1) {
                    Some(n) if scope.inputs.contains(n) => Ok(()),
                    Some(n) => Err(TemplateError::UnknownInput(n.to_string())),
                    None => Ok(()),
                },
                Some("steps") => match key(1) {
                    Some(n) if scope.steps.contains(n) => match key(2) {
                        None | Some("output" | "status" | "error" | "attempts") => Ok(()),
                        Some(other) => Err(TemplateError::StepField {
                            step: n.to_string(),
                            field: other.to_string(),
                        }),
                    },
                    Some(n) => Err(TemplateError::StepNotDefined(n.to_string())),
                    None => Ok(()),
                },
                Some("workflow" | "run") => Ok(()),
                Some(other) => Err(TemplateError::UnknownName(other.to_string())),
                None => Err(TemplateError::PathStart),
            }
        }
        Expr::Not(a) => check_refs(a, scope),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) => {
            check_refs(a, scope)?;
            check_refs(b, scope)
        }
        Expr::Call(_, args) => args.iter().try_for_each(|a| check_refs(a, scope)),
    }
}

/// Checks every template in a (nested) value.
pub fn check_value(v: &Value, scope: &Scope) -> Vec<TemplateError> {
    let mut errs = Vec::new();
    walk_strings(v, &mut |s| match parse_template(s) {
        Ok(parts) => {
            for p in parts {
                if let Part::Expr(e) = p
                    && let Err(err) = check_refs(&e, scope)
                {
                    errs.push(err);
                }
            }
        }
        Err(e) => errs.push(e),
    });
    errs
}

/// Checks an `if:` condition, written either as a bare expression or as a template.
pub fn check_expr_or_template(s: &str, scope: &Scope) -> Result<()> {
    let e = condition_expr(s)?;
    check_refs(&e, scope)
}

fn condition_expr(s: &str) -> Result<Expr> {
    let t = s.trim();
    if t.starts_with("${{") && t.ends_with("}}") && t.matches("${{").count() == 1 {
        parse_expr(&t[3..t.len() - 2])
    } else {
        parse_expr(t)
    }
}

fn walk_strings(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| walk_strings(x, f)),
        Value::Object(m) => m.values().for_each(|x| walk_strings(x, f)),
        _ => {}
    }
}

/// Truthiness: null, false, 0, "" and empty collections are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn lookup<'a>(ctx: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    let mut cur = ctx;
    for s in segs {
        cur = match (s, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
            (Seg::Key(k), Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        CmpOp::Eq => ord == Some(Ordering::Equal) || (ord.is_none() && a == b),
        CmpOp::Ne => !(ord == Some(Ordering::Equal) || (ord.is_none() && a == b)),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    }
}

/// Evaluates an expression against the context object
/// `{inputs, steps, workflow, run}`. Missing paths evaluate to null.
pub fn eval(e: &Expr, ctx: &Value) -> Value {
    match e {
        Expr::Lit(v) => v.clone(),
        Expr::Path(segs) => lookup(ctx, segs).cloned().unwrap_or(Value::Null),
        Expr::Not(a) => Value::Bool(!truthy(&eval(a, ctx))),
        Expr::And(a, b) => {
            let l = eval(a, ctx);
            if truthy(&l) { eval(b, ctx) } else { l }
        }
        Expr::Or(a, b) => {
            let l = eval(a, ctx);
            if truthy(&l) { l } else { eval(b, ctx) }
        }
        Expr::Cmp(op, a, b) => Value::Bool(compare(*op, &eval(a, ctx), &eval(b, ctx))),
        Expr::Call(name, args) => {
            let vals: Vec<Value> = args.iter().map(|a| eval(a, ctx)).collect();
            match (name.as_str(), vals.as_slice()) {
                ("length", [v]) => Value::from(match v {
                    Value::String(s) => s.chars().count(),
                    Value::Array(a) => a.len(),
                    Value::Object(m) => m.len(),
                    Value::Null => 0,
                    _ => 1,
                }),
                ("contains", [hay, needle]) => Value::Bool(match hay {
                    Value::String(s) => needle.as_str().is_some_and(|n| s.contains(n)),
                    Value::Array(a) => a.contains(needle),
                    Value::Object(m) => needle.as_str().is_some_and(|n| m.contains_key(n)),
                    _ => false,
                }),
                ("json", [v]) => Value::String(v.to_string()),
                ("default", [v, d]) => {
                    if v.is_null() {
                        d.clone()
                    } else {
                        v.clone()
                    }
                }
                ("not_empty", [v]) => Value::Bool(truthy(v)),
                _ => Value::Null,
            }
        }
    }
}

fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Renders a template string. A string that is exactly one `${{ expr }}`
/// keeps the expression's JSON type; otherwise parts are concatenated as text.
pub fn render_str(s: &str, ctx: &Value) -> Result<Value> {
    let parts = parse_template(s)?;
    if let [Part::Expr(e)] = parts.as_slice() {
        return Ok(eval(e, ctx));
    }
    let mut out = String::new();
    for p in &parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Expr(e) => out.push_str(&to_text(&eval(e, ctx))),
        }
    }
    Ok(Value::String(out))
}

/// Renders every string inside a value.
pub fn render_value(v: &Value, ctx: &Value) -> Result<Value> {
    Ok(match v {
        Value::String(s) => render_str(s, ctx)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| render_value(x, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), render_value(x, ctx)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

/// Evaluates an `if:` condition.
pub fn eval_condition(s: &str, ctx: &Value) -> Result<bool> {
    Ok(truthy(&eval(&condition_expr(s)?, ctx)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "inputs": {"path": "/data/a.txt", "n": 3, "flag": false, "list": [1, 2]},
            "steps": {"read": {"output": {"content": "hello", "size": 5}, "status": "succeeded"}}
        })
    }

    #[test]
    fn whole_expression_keeps_type() {
        assert_eq!(render_str("${{ inputs.n }}", &ctx()).unwrap(), json!(3));
        assert_eq!(
            render_str("${{inputs.list}}", &ctx()).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            render_str("${{ steps.read.output }}", &ctx()).unwrap(),
            json!({"content": "hello", "size": 5})
        );
    }

    #[test]
    fn interpolation_concatenates() {
        assert_eq!(
            render_str(
                "file ${{ inputs.path }} has ${{ steps.read.output.size }} bytes",
                &ctx()
            )
            .unwrap(),
            json!("file /data/a.txt has 5 bytes")
        );
        assert_eq!(
            render_str("no templates", &ctx()).unwrap(),
            json!("no templates")
        );
    }

    #[test]
    fn conditions() {
        let c = ctx();
        assert!(eval_condition("inputs.n > 2", &c).unwrap());
        assert!(eval_condition("${{ inputs.n >= 3 && !inputs.flag }}", &c).unwrap());
        assert!(!eval_condition("inputs.flag", &c).unwrap());
        assert!(eval_condition("steps.read.status == 'succeeded'", &c).unwrap());
        assert!(eval_condition("contains(steps.read.output.content, 'ell')", &c).unwrap());
        assert!(eval_condition("length(inputs.list) == 2", &c).unwrap());
        assert!(eval_condition("inputs.missing == null", &c).unwrap());
        assert!(eval_condition("inputs.list[1] == 2", &c).unwrap());
        assert_eq!(
            render_str("${{ default(inputs.missing, 'x') }}", &c).unwrap(),
            json!("x")
        );
    }

    #[test]
    fn parse_errors() {
        assert!(parse_expr("inputs.").is_err());
        assert!(parse_expr("a ==").is_err());
        assert!(
            parse_expr("nope(1)")
                .unwrap_err()
                .to_string()
                .contains("unknown function")
        );
        assert!(parse_template("${{ inputs.x").is_err());
    }

    #[test]
    fn reference_checks() {
        let inputs: HashSet<&str> = ["path"].into_iter().collect();
        let steps: HashSet<&str> = ["read"].into_iter().collect();
        let scope = Scope {
            inputs: &inputs,
            steps: &steps,
        };
        assert!(check_value(&json!("${{ inputs.path }}"), &scope).is_empty());
        assert_eq!(
            check_value(&json!({"a": "${{ inputs.nope }}"}), &scope),
            vec![TemplateError::UnknownInput("nope".into())]
        );
        assert!(
            check_value(&json!("${{ steps.later.output }}"), &scope)[0]
                .to_string()
                .contains("not defined before")
        );
        assert_eq!(
            parse_template("${{ 1 + }}").unwrap_err().to_string(),
            "in `${{ 1 + }}`: unexpected character '+'"
        );
        assert_eq!(
            parse_template("${{ x").unwrap_err().to_string(),
            "unclosed `${{` in \"${{ x\""
        );
        assert!(check_expr_or_template("steps.read.status == 'succeeded'", &scope).is_ok());
    }
}
