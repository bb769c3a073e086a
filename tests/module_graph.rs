//! No module cycle in the library (issue 9).
//!
//! The checker reads the sources, not the compiler's output: from `src/lib.rs`
//! it follows `mod x;` declarations to find every file of the library crate
//! (so `src/main.rs` and what only it declares, such as `src/cli/`, are left
//! out), maps each file to its module path (`src/registry/client.rs` is
//! `registry::client`, `src/plan/mod.rs` is `plan`), and collects the paths
//! each file names once comments and string literals are gone:
//!
//! - `crate::…`, `self::…` and `super::…` paths, in `use` items (grouped and
//!   nested braces included) and inline (`crate::elf::check(…)`);
//! - paths through a child module (`pub use child::X` in a parent) or through
//!   a name a `use` item brought in (`use crate::registry; registry::client::…`).
//!
//! A path depends on the longest known module that is its prefix
//! (`crate::registry::client::Registry` → `registry::client`,
//! `crate::plan::Plan` → `plan`). The crate root is a facade, so its imports
//! are looked through: `crate::Result` is `error`, given `pub use
//! error::Result` in lib.rs. `mod child;` on its own is a declaration, not a
//! dependency; `pub(in crate::x)` is a visibility, not a dependency; a file's
//! references to itself (its inline `mod tests` included) don't count. Test
//! modules are code like any other: their references count. Not seen: paths
//! in string literals (`#[serde(with = "crate::x")]`) and paths a macro
//! builds; `#[path = …]` is refused rather than guessed.
//!
//! Every strongly connected component of more than one module (Tarjan) is a
//! failure, reported as chains `a → b → c → a` covering each edge inside it,
//! with the file:line of one reference per edge: that is where to cut.
//!
//! `cargo test --test module_graph -- --nocapture` also prints the modules
//! bottom first, by layer (a module only depends on modules of lower layers).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// A module path without the leading `crate` (the root is empty).
type ModPath = Vec<String>;

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

// ---------------------------------------------------------------------------
// Lexing: identifiers, `::` and punctuation; comments and literals dropped.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
    /// A number, string or char literal: nothing to read in it.
    Literal,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.i).copied()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn block_comment(&mut self) -> Result<(), String> {
        let start = self.line;
        self.i += 2;
        let mut depth = 1;
        while depth > 0 {
            match (self.peek(0), self.peek(1)) {
                (Some('/'), Some('*')) => {
                    self.i += 2;
                    depth += 1;
                }
                (Some('*'), Some('/')) => {
                    self.i += 2;
                    depth -= 1;
                }
                (Some(_), _) => {
                    self.bump();
                }
                (None, _) => return Err(format!("block comment of line {start} never ends")),
            }
        }
        Ok(())
    }

    /// A quoted string with escapes; `self.i` is at the opening quote.
    fn string(&mut self) -> Result<(), String> {
        let start = self.line;
        self.i += 1;
        loop {
            match self.bump() {
                Some('\\') => {
                    self.bump();
                }
                Some('"') => return Ok(()),
                Some(_) => {}
                None => return Err(format!("string of line {start} never ends")),
            }
        }
    }

    /// A raw string; `self.i` is at the first `#` or at the opening quote.
    fn raw_string(&mut self) -> Result<(), String> {
        let start = self.line;
        let mut hashes = 0;
        while self.peek(0) == Some('#') {
            hashes += 1;
            self.i += 1;
        }
        if self.peek(0) != Some('"') {
            return Err(format!("line {start}: raw string without a quote"));
        }
        self.i += 1;
        loop {
            match self.bump() {
                Some('"') if (0..hashes).all(|k| self.peek(k) == Some('#')) => {
                    self.i += hashes;
                    return Ok(());
                }
                Some(_) => {}
                None => return Err(format!("raw string of line {start} never ends")),
            }
        }
    }

    /// A char literal or a lifetime (or label); `self.i` is at the quote.
    fn quote(&mut self) -> Tok {
        match (self.peek(1), self.peek(2)) {
            (Some('\\'), _) => {
                self.i += 2;
                self.bump();
                while let Some(c) = self.bump() {
                    if c == '\'' {
                        break;
                    }
                }
                Tok::Literal
            }
            (Some(_), Some('\'')) => {
                self.i += 1;
                self.bump();
                self.i += 1;
                Tok::Literal
            }
            _ => {
                // A lifetime: the quote goes, its name stays an identifier
                // that no `::` follows.
                self.i += 1;
                Tok::Punct('\'')
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while self
            .peek(0)
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.i += 1;
        }
        self.chars[start..self.i].iter().collect()
    }
}

fn lex(source: &str) -> Result<Vec<Token>, String> {
    let mut lx = Lexer {
        chars: source.chars().collect(),
        i: 0,
        line: 1,
    };
    let mut out = Vec::new();
    while let Some(c) = lx.peek(0) {
        let line = lx.line;
        let tok = match c {
            c if c.is_whitespace() => {
                lx.bump();
                continue;
            }
            '/' if lx.peek(1) == Some('/') => {
                while lx.peek(0).is_some_and(|c| c != '\n') {
                    lx.i += 1;
                }
                continue;
            }
            '/' if lx.peek(1) == Some('*') => {
                lx.block_comment()?;
                continue;
            }
            '"' => {
                lx.string()?;
                Tok::Literal
            }
            '\'' => lx.quote(),
            c if c.is_ascii_digit() => {
                lx.ident();
                Tok::Literal
            }
            c if c.is_alphabetic() || c == '_' => {
                let word = lx.ident();
                match (word.as_str(), lx.peek(0), lx.peek(1)) {
                    ("b" | "c", Some('"'), _) => {
                        lx.string()?;
                        Tok::Literal
                    }
                    ("b", Some('\''), _) => {
                        lx.quote();
                        Tok::Literal
                    }
                    ("r" | "br" | "cr", Some('"'), _)
                    | ("r" | "br" | "cr", Some('#'), Some('#' | '"')) => {
                        lx.raw_string()?;
                        Tok::Literal
                    }
                    ("r", Some('#'), Some(_)) => {
                        lx.i += 1;
                        Tok::Ident(lx.ident())
                    }
                    _ => Tok::Ident(word),
                }
            }
            ':' if lx.peek(1) == Some(':') => {
                lx.i += 2;
                Tok::PathSep
            }
            c => {
                lx.bump();
                Tok::Punct(c)
            }
        };
        out.push(Token { tok, line });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Parsing: `mod` declarations, `use` trees and paths, per file.

/// A path as written, in the module `scope` (the file's inline modules, from
/// the file's own module down).
#[derive(Debug, Clone)]
struct RawPath {
    scope: Vec<String>,
    segments: Vec<String>,
    line: usize,
}

#[derive(Debug, Default)]
struct Parsed {
    /// `mod name;`, with the inline modules it sits in.
    declarations: Vec<(Vec<String>, String, usize)>,
    /// Every path that may name a module of the crate.
    paths: Vec<RawPath>,
    /// Names `use` items bring in: the name and the path it stands for.
    bindings: Vec<(String, RawPath)>,
}

fn is_ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn is_punct(tokens: &[Token], i: usize, c: char) -> bool {
    tokens.get(i).map(|t| &t.tok) == Some(&Tok::Punct(c))
}

fn is_sep(tokens: &[Token], i: usize) -> bool {
    tokens.get(i).map(|t| &t.tok) == Some(&Tok::PathSep)
}

fn parse(tokens: &[Token]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    // One entry per open brace: the inline module it opens, if any.
    let mut braces: Vec<Option<String>> = Vec::new();
    let scope =
        |braces: &[Option<String>]| -> Vec<String> { braces.iter().flatten().cloned().collect() };
    let mut i = 0;
    while i < tokens.len() {
        let line = tokens[i].line;
        match &tokens[i].tok {
            Tok::Punct('#')
                if is_punct(tokens, i + 1, '[')
                    && is_ident(tokens, i + 2) == Some("path")
                    && is_punct(tokens, i + 3, '=') =>
            {
                return Err(format!("line {line}: #[path] is not supported"));
            }
            Tok::Ident(kw) if kw == "mod" && is_ident(tokens, i + 1).is_some() => {
                let name = is_ident(tokens, i + 1).unwrap().to_string();
                if is_punct(tokens, i + 2, ';') {
                    parsed.declarations.push((scope(&braces), name, line));
                    i += 3;
                } else if is_punct(tokens, i + 2, '{') {
                    braces.push(Some(name));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            // `use<'a>` is precise capturing, not an import.
            Tok::Ident(kw) if kw == "use" && !is_punct(tokens, i + 1, '<') => {
                i += 1;
                let here = scope(&braces);
                use_tree(tokens, &mut i, &here, Vec::new(), &mut parsed)?;
                while i < tokens.len() && !is_punct(tokens, i, ';') {
                    i += 1;
                }
            }
            Tok::Punct('{') => {
                braces.push(None);
                i += 1;
            }
            Tok::Punct('}') => {
                if braces.pop().is_none() {
                    return Err(format!("line {line}: unbalanced '}}'"));
                }
                i += 1;
            }
            Tok::Ident(first) if is_sep(tokens, i + 1) => {
                let after_sep_or_dot =
                    i > 0 && (is_sep(tokens, i - 1) || is_punct(tokens, i - 1, '.'));
                // `pub(in crate::x)` restricts visibility; it depends on nothing.
                let visibility = i >= 3
                    && is_ident(tokens, i - 1) == Some("in")
                    && is_punct(tokens, i - 2, '(')
                    && is_ident(tokens, i - 3) == Some("pub");
                let mut segments = vec![first.clone()];
                i += 1;
                while is_sep(tokens, i) {
                    match is_ident(tokens, i + 1) {
                        Some(s) => {
                            segments.push(s.to_string());
                            i += 2;
                        }
                        None => break, // `::<T>` or `::{` (a macro's)
                    }
                }
                if !after_sep_or_dot && !visibility {
                    parsed.paths.push(RawPath {
                        scope: scope(&braces),
                        segments,
                        line,
                    });
                }
            }
            _ => i += 1,
        }
    }
    if !braces.is_empty() {
        return Err("unbalanced '{'".to_string());
    }
    Ok(parsed)
}

/// One `use` tree at `*i` under `prefix`; records each leaf as a path and,
/// unless it is a glob or `as _`, as a binding. What it cannot read (a
/// macro's `use $x;`) it leaves, recording nothing.
fn use_tree(
    tokens: &[Token],
    i: &mut usize,
    scope: &[String],
    prefix: Vec<String>,
    parsed: &mut Parsed,
) -> Result<(), String> {
    let mut segments = prefix;
    let mut line = tokens.get(*i).map_or(0, |t| t.line);
    if is_sep(tokens, *i) {
        // `use ::name` names an extern crate: a segment nothing resolves.
        segments.push("::".to_string());
        *i += 1;
    }
    loop {
        match tokens.get(*i).map(|t| &t.tok) {
            // `$crate` in a macro is this crate.
            Some(Tok::Punct('$')) if is_ident(tokens, *i + 1) == Some("crate") => *i += 1,
            Some(Tok::Ident(s)) => {
                segments.push(s.clone());
                line = tokens[*i].line;
                *i += 1;
                if is_sep(tokens, *i) {
                    *i += 1;
                } else {
                    break;
                }
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                parsed.paths.push(RawPath {
                    scope: scope.to_vec(),
                    segments,
                    line: tokens[*i - 1].line,
                });
                return Ok(());
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                while !is_punct(tokens, *i, '}') {
                    if *i >= tokens.len() {
                        return Err(format!("line {line}: use group never ends"));
                    }
                    let before = *i;
                    use_tree(tokens, i, scope, segments.clone(), parsed)?;
                    if is_punct(tokens, *i, ',') || *i == before {
                        *i += 1;
                    }
                }
                *i += 1;
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
    if segments.last().is_some_and(|s| s == "self") && segments.len() > 1 {
        segments.pop();
    }
    let mut name = segments.last().cloned();
    if is_ident(tokens, *i) == Some("as") {
        name = is_ident(tokens, *i + 1).map(str::to_string);
        *i += 2;
    }
    let path = RawPath {
        scope: scope.to_vec(),
        segments,
        line,
    };
    if let Some(name) = name.filter(|n| n != "_") {
        parsed.bindings.push((name, path.clone()));
    }
    parsed.paths.push(path);
    Ok(())
}

// ---------------------------------------------------------------------------
// The crate: files, modules, edges.

struct SourceFile {
    module: ModPath,
    path: PathBuf,
    text: String,
    parsed: Parsed,
}

/// Where one dependency is written.
#[derive(Debug, Clone, PartialEq)]
struct Site {
    file: String,
    line: usize,
    text: String,
}

struct Graph {
    /// Sorted module paths, one per library file.
    modules: Vec<ModPath>,
    /// The file of each module, relative to the crate directory.
    files: Vec<String>,
    /// from → to → the first reference that makes the edge.
    edges: BTreeMap<usize, BTreeMap<usize, Site>>,
    /// `.rs` files under src/ that are not in the library, and why.
    elsewhere: Vec<(String, &'static str)>,
}

/// Reads a crate from the `mod` declarations of `root_file`; returns its
/// files by module path.
fn read_crate(root_file: &Path) -> Result<Vec<SourceFile>, String> {
    let mut files = Vec::new();
    let mut queue = VecDeque::from([(Vec::new(), root_file.to_path_buf())]);
    while let Some((module, path)) = queue.pop_front() {
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let parsed = lex(&text)
            .and_then(|tokens| parse(&tokens))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // The directory of the children of this file's module.
        let dir = path.parent().unwrap();
        let owns_dir = path == root_file || path.file_name().is_some_and(|n| n == "mod.rs");
        let base = if owns_dir {
            dir.to_path_buf()
        } else {
            dir.join(path.file_stem().unwrap())
        };
        for (scope, name, line) in &parsed.declarations {
            let mut dir = base.clone();
            dir.extend(scope);
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(name).join("mod.rs");
            let child = match (flat.is_file(), nested.is_file()) {
                (true, false) => flat,
                (false, true) => nested,
                (true, true) => {
                    return Err(format!(
                        "{}:{line}: both {} and {} exist",
                        path.display(),
                        flat.display(),
                        nested.display()
                    ));
                }
                (false, false) => {
                    return Err(format!(
                        "{}:{line}: mod {name}: neither {} nor {}",
                        path.display(),
                        flat.display(),
                        nested.display()
                    ));
                }
            };
            let mut child_module = module.clone();
            child_module.extend(scope.iter().cloned());
            child_module.push(name.clone());
            queue.push_back((child_module, child));
        }
        files.push(SourceFile {
            module,
            path,
            text,
            parsed,
        });
    }
    Ok(files)
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            rs_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module graph of the library crate whose sources are in `src`
/// (`src/lib.rs` and what it declares).
fn module_graph(src: &Path) -> Result<Graph, String> {
    let crate_dir = src.parent().unwrap_or(src);
    let relative = |p: &Path| p.strip_prefix(crate_dir).unwrap_or(p).display().to_string();

    let mut library = read_crate(&src.join("lib.rs"))?;
    library.sort_by(|a, b| a.module.cmp(&b.module));
    let modules: Vec<ModPath> = library.iter().map(|f| f.module.clone()).collect();
    let index = |m: &[String]| modules.binary_search_by(|x| x.as_slice().cmp(m)).ok();

    // The other .rs files under src/: the binaries', or nobody's.
    let mut binary = BTreeSet::new();
    let mut bin_roots = vec![src.join("main.rs")];
    if let Ok(entries) = fs::read_dir(src.join("bin")) {
        for entry in entries.flatten() {
            let p = entry.path();
            bin_roots.push(if p.is_dir() { p.join("main.rs") } else { p });
        }
    }
    for root in bin_roots.iter().filter(|p| p.is_file()) {
        for file in read_crate(root)? {
            binary.insert(file.path);
        }
    }
    let mut all = Vec::new();
    rs_files(src, &mut all)?;
    all.sort();
    let in_library: BTreeSet<&PathBuf> = library.iter().map(|f| &f.path).collect();
    let elsewhere = all
        .iter()
        .filter(|p| !in_library.contains(p))
        .map(|p| {
            let why = if binary.contains(p) {
                "binary"
            } else {
                "in no crate"
            };
            (relative(p), why)
        })
        .collect();

    let mut edges: BTreeMap<usize, BTreeMap<usize, Site>> = BTreeMap::new();
    let root_file = &library[index(&[]).unwrap()];
    let no_imports = BTreeMap::new();
    let at_root = Resolver {
        file: root_file,
        modules: &modules,
        root_imports: &no_imports,
    };
    let root_imports: BTreeMap<String, ModPath> = root_file
        .parsed
        .bindings
        .iter()
        .filter_map(|(name, raw)| Some((name.clone(), at_root.absolute(raw, 8)?)))
        .collect();
    for (from, file) in library.iter().enumerate() {
        let lines: Vec<&str> = file.text.lines().collect();
        let resolver = Resolver {
            file,
            modules: &modules,
            root_imports: &root_imports,
        };
        for raw in &file.parsed.paths {
            let Some(target) = resolver.target(raw) else {
                continue;
            };
            let to = index(&target).unwrap();
            if to == from {
                continue;
            }
            edges
                .entry(from)
                .or_default()
                .entry(to)
                .or_insert_with(|| Site {
                    file: relative(&file.path),
                    line: raw.line,
                    text: lines.get(raw.line - 1).map_or("", |l| l.trim()).to_string(),
                });
        }
    }
    Ok(Graph {
        files: library.iter().map(|f| relative(&f.path)).collect(),
        modules,
        edges,
        elsewhere,
    })
}

struct Resolver<'a> {
    file: &'a SourceFile,
    modules: &'a [ModPath],
    /// What the names the crate root imports stand for (`Result` →
    /// `error::Result`).
    root_imports: &'a BTreeMap<String, ModPath>,
}

impl Resolver<'_> {
    fn known(&self, m: &[String]) -> bool {
        self.modules
            .binary_search_by(|x| x.as_slice().cmp(m))
            .is_ok()
    }

    /// The absolute path (without `crate`) that `raw` names, if it is in
    /// this crate; `depth` bounds chains of `use` bindings.
    fn absolute(&self, raw: &RawPath, depth: usize) -> Option<ModPath> {
        let (first, rest) = raw.segments.split_first()?;
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" | "super" => {
                let mut at: ModPath = self.file.module.iter().chain(&raw.scope).cloned().collect();
                let mut segments = raw.segments.iter().peekable();
                segments.next_if(|s| *s == "self");
                while segments.next_if(|s| *s == "super").is_some() {
                    at.pop()?;
                }
                at.extend(segments.cloned());
                Some(at)
            }
            name => {
                // A child module of this scope or of an enclosing one in the
                // same file (`use super::*` in `mod tests`), else a name a
                // `use` item of this file brought in.
                for k in (0..=raw.scope.len()).rev() {
                    let mut child: ModPath = self
                        .file
                        .module
                        .iter()
                        .chain(&raw.scope[..k])
                        .cloned()
                        .collect();
                    child.push(name.to_string());
                    if self.known(&child) {
                        child.extend(rest.iter().cloned());
                        return Some(child);
                    }
                }
                let (_, bound) = self.file.parsed.bindings.iter().find(|(n, _)| n == name)?;
                let mut target = self.absolute(bound, depth.checked_sub(1)?)?;
                target.extend(rest.iter().cloned());
                Some(target)
            }
        }
    }

    /// The module `raw` depends on: the longest known prefix of its
    /// absolute path, looking through the crate root's imports.
    fn target(&self, raw: &RawPath) -> Option<ModPath> {
        let mut path = self.absolute(raw, 8)?;
        for _ in 0..8 {
            let len = (0..=path.len()).rev().find(|&k| self.known(&path[..k]))?;
            match self.root_imports.get(path.first()?) {
                Some(import) if len == 0 => {
                    path = import.iter().chain(&path[1..]).cloned().collect();
                }
                _ => return Some(path[..len].to_vec()),
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Cycles and layers.

/// Strongly connected components (Tarjan), each sorted; the components come
/// out bottom first: a component only depends on those before it.
fn components(n: usize, edges: &BTreeMap<usize, BTreeMap<usize, Site>>) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<usize, BTreeMap<usize, Site>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            let successors: Vec<usize> = self
                .edges
                .get(&v)
                .into_iter()
                .flat_map(|m| m.keys().copied())
                .collect();
            for w in successors {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                self.out.push(component);
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.out
}

/// Cycles through a component, as module sequences (the first module
/// repeated at the end), until every edge inside it is in one: for each edge
/// not yet covered, the edge then the shortest way back.
fn cycles(component: &[usize], edges: &BTreeMap<usize, BTreeMap<usize, Site>>) -> Vec<Vec<usize>> {
    let inside = |v: usize| component.binary_search(&v).is_ok();
    let successors = |v: usize| {
        edges
            .get(&v)
            .into_iter()
            .flat_map(|m| m.keys().copied())
            .filter(move |&w| inside(w))
    };
    let mut covered = BTreeSet::new();
    let mut out = Vec::new();
    for &u in component {
        for v in successors(u).collect::<Vec<_>>() {
            if covered.contains(&(u, v)) {
                continue;
            }
            // Shortest path v → u (breadth first); there is one, u and v
            // being strongly connected.
            let mut parent = BTreeMap::from([(v, v)]);
            let mut queue = VecDeque::from([v]);
            while let Some(x) = queue.pop_front() {
                if x == u {
                    break;
                }
                for y in successors(x) {
                    if let std::collections::btree_map::Entry::Vacant(e) = parent.entry(y) {
                        e.insert(x);
                        queue.push_back(y);
                    }
                }
            }
            // u, v, …, u: the edge, then v's way back walked from u.
            let mut cycle = vec![u];
            let mut x = u;
            while x != v {
                x = parent[&x];
                cycle.push(x);
            }
            cycle.push(u);
            cycle.reverse();
            for pair in cycle.windows(2) {
                covered.insert((pair[0], pair[1]));
            }
            out.push(cycle);
        }
    }
    out
}

impl Graph {
    fn name(&self, v: usize) -> String {
        show(&self.modules[v])
    }

    fn components(&self) -> Vec<Vec<usize>> {
        components(self.modules.len(), &self.edges)
    }

    /// The components of more than one module, by name.
    fn cyclic(&self) -> Vec<Vec<String>> {
        self.components()
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| c.into_iter().map(|v| self.name(v)).collect())
            .collect()
    }

    /// Every edge as `from → to`, sorted.
    fn edge_list(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .edges
            .iter()
            .flat_map(|(&u, to)| to.keys().map(move |&v| (u, v)))
            .map(|(u, v)| format!("{} → {}", self.name(u), self.name(v)))
            .collect();
        out.sort();
        out
    }

    /// What is wrong, for a maintainer: each cycle with where to cut it.
    fn cycle_report(&self) -> Option<String> {
        let cyclic: Vec<Vec<usize>> = self
            .components()
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        if cyclic.is_empty() {
            return None;
        }
        let mut out = format!(
            "{} module cycle(s) in the library; cut one edge of each chain \
             (each edge: one reference that makes it):\n",
            cyclic.len()
        );
        for (k, component) in cyclic.iter().enumerate() {
            let names: Vec<String> = component.iter().map(|&v| self.name(v)).collect();
            let _ = writeln!(
                out,
                "\ncycle {}: {} modules: {}",
                k + 1,
                names.len(),
                names.join(", ")
            );
            let mut used = BTreeSet::new();
            for cycle in cycles(component, &self.edges) {
                let chain: Vec<String> = cycle.iter().map(|&v| self.name(v)).collect();
                let _ = writeln!(out, "  {}", chain.join(" → "));
                used.extend(cycle.windows(2).map(|pair| (pair[0], pair[1])));
            }
            let _ = writeln!(out, "  where:");
            for (u, v) in used {
                let site = &self.edges[&u][&v];
                let _ = writeln!(
                    out,
                    "    {} → {}  {}:{}  {}",
                    self.name(u),
                    self.name(v),
                    site.file,
                    site.line,
                    site.text
                );
            }
        }
        Some(out)
    }

    /// The modules bottom first, by layer: layer 0 depends on no module,
    /// layer n on modules of layers below n only (a cycle shares a line).
    fn layers(&self) -> String {
        let components = self.components();
        let mut of = vec![0; self.modules.len()];
        for (c, members) in components.iter().enumerate() {
            for &v in members {
                of[v] = c;
            }
        }
        let mut layer = vec![0usize; components.len()];
        for (c, members) in components.iter().enumerate() {
            // Components come bottom first, so their dependencies' layers
            // are known already.
            layer[c] = members
                .iter()
                .flat_map(|v| self.edges.get(v).into_iter().flat_map(|m| m.keys()))
                .map(|&w| of[w])
                .filter(|&d| d != c)
                .map(|d| layer[d] + 1)
                .max()
                .unwrap_or(0);
        }
        let mut by_layer: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (c, members) in components.iter().enumerate() {
            let names: Vec<String> = members.iter().map(|&v| self.name(v)).collect();
            let entry = if names.len() > 1 {
                format!("{{{}}}", names.join(" ↔ "))
            } else {
                names[0].clone()
            };
            by_layer.entry(layer[c]).or_default().push(entry);
        }
        let mut out = String::new();
        for (n, mut names) in by_layer {
            names.sort();
            let _ = writeln!(out, "  {n}: {}", names.join(", "));
        }
        out
    }

    fn print(&self, title: &str) {
        println!(
            "{title}: {} modules, {} edges",
            self.modules.len(),
            self.edge_list().len()
        );
        println!("modules bottom first (layer: modules):\n{}", self.layers());
        for (file, why) in &self.elsewhere {
            println!("  not in the library ({why}): {file}");
        }
    }
}

// ---------------------------------------------------------------------------
// The tests.

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_module_cycle_in_src() {
    let graph = module_graph(&manifest_dir().join("src")).unwrap();
    graph.print("src/");
    for (module, file) in graph.modules.iter().zip(&graph.files) {
        println!("  {} = {file}", show(module));
    }
    if let Some(report) = graph.cycle_report() {
        panic!("{report}");
    }
}

fn fixture(name: &str) -> Graph {
    module_graph(
        &manifest_dir()
            .join("fixtures/module_graph")
            .join(name)
            .join("src"),
    )
    .unwrap()
}

/// A checker that cannot fail is worthless: a known three-module cycle is
/// found, with a chain and the line of each edge.
#[test]
fn finds_the_cycle_of_the_cyclic_fixture() {
    let graph = fixture("cyclic");
    graph.print("fixtures/module_graph/cyclic/src");
    assert_eq!(
        graph.edge_list(),
        [
            "alpha → beta::gamma",
            "alpha → util",
            "beta → beta::gamma",
            "beta::delta → alpha",
            "beta::gamma → beta::delta",
        ]
    );
    assert_eq!(graph.cyclic(), [["alpha", "beta::delta", "beta::gamma"]]);
    let report = graph.cycle_report().expect("the cycle is reported");
    println!("{report}");
    for expected in [
        "cycle 1: 3 modules: alpha, beta::delta, beta::gamma",
        "  alpha → beta::gamma → beta::delta → alpha\n",
        "    alpha → beta::gamma  src/alpha.rs:4  beta::gamma::{self, Thing},",
        "    beta::gamma → beta::delta  src/beta/gamma.rs:9  super::delta::deliver(thing)",
        "    beta::delta → alpha  src/beta/delta.rs:6  crate::alpha::accept(thing);",
    ] {
        assert!(report.contains(expected), "{expected:?} not in\n{report}");
    }
}

/// The acyclic fixture passes, with exactly its real edges: none from doc
/// comments, strings, `mod x;` alone, `pub(in …)`, `use super::*` in a test
/// module, or the binary's modules.
#[test]
fn accepts_the_acyclic_fixture() {
    let graph = fixture("acyclic");
    graph.print("fixtures/module_graph/acyclic/src");
    assert_eq!(graph.cycle_report(), None);
    assert_eq!(
        graph.modules.iter().map(|m| show(m)).collect::<Vec<_>>(),
        [
            "crate",
            "app",
            "base",
            "net",
            "store",
            "store::cache",
            "store::disk"
        ]
    );
    assert_eq!(
        graph.edge_list(),
        [
            "app → base",
            "app → net",
            "app → store",
            "app → store::disk",
            "crate → base",
            "net → base",
            "store → store::disk",
            "store::cache → store",
            "store::disk → base",
        ]
    );
    assert_eq!(
        graph.elsewhere,
        [
            ("src/cli/mod.rs".to_string(), "binary"),
            ("src/main.rs".to_string(), "binary"),
            ("src/stale.rs".to_string(), "in no crate"),
        ]
    );
    assert_eq!(
        graph.layers(),
        "  0: base\n  1: crate, net, store::disk\n  2: store\n  3: app, store::cache\n"
    );
}
