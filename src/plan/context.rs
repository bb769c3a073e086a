//! The build context: the directory `path:` sources are read from and must
//! stay inside, the ignore files that leave parts of it out, and the
//! built-in deny-list of secrets that never enter a layer unless allowed.
//!
//! Paths here are relative to the context root and made of UTF-8
//! components (a source's names are checked before they are matched).
//! Nothing in this module reads a file that may enter a layer: only names,
//! metadata and the ignore files themselves.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::Result;
use crate::spec::{LoadedSpec, Spanned};

/// The ignore files, in the order their patterns apply (a later pattern
/// wins, so `.aelimgignore` can re-include with `!` what `.dockerignore`
/// leaves out). Neither ever enters a layer.
pub(super) const IGNORE_FILES: [&str; 2] = [".dockerignore", ".aelimgignore"];

/// Why an ignore file itself is left out of a directory source.
pub(super) const IGNORE_FILE_RULE: &str = "ignore files never enter a layer";

/// The built-in deny-list: gitignore patterns of files that hold secrets
/// more often than not. A match refuses the build unless the content
/// entry's `allow_secrets` names the file.
pub const SECRET_PATTERNS: &[&str] = &[
    ".env*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    ".ssh/",
    // A file too: a worktree's or submodule's `.git` names a host path.
    ".git",
    "**/.docker/config.json",
    ".npmrc",
    ".netrc",
    ".pypirc",
    ".aws/",
    ".kube/",
    "*.kdbx",
];

/// The context of one image's `path:` sources.
pub(super) struct Context {
    /// The root as written: the directory of images.yaml, joined with
    /// `context:` when the spec names one. Sources are joined to it, so
    /// the plan shows them as the user wrote them.
    pub(super) dir: PathBuf,
    /// The root with every symlink resolved: what a source must resolve
    /// inside of.
    pub(super) real: PathBuf,
    /// The matcher of each directory's ignore files, by directory
    /// (relative to the root), read when first needed; `None`: none there.
    ignores: RefCell<BTreeMap<PathBuf, Option<Rc<Gitignore>>>>,
    deny: Gitignore,
}

impl Context {
    /// The context of `spec`: its `context:` or the directory of the file.
    pub(super) fn new(spec: &LoadedSpec) -> Result<Self> {
        let dir = match &spec.file.context {
            None => spec.dir.clone(),
            Some(c) => {
                if c.value.is_empty() || c.value.contains('\0') {
                    return Err(spec.error_at(c, "empty context: expected a directory"));
                }
                spec.dir.join(&c.value)
            }
        };
        let real = std::fs::canonicalize(&dir).map_err(|e| match &spec.file.context {
            Some(c) => spec.error_at(
                c,
                format!(
                    "cannot read context `{}` ({}): {e}; expected a directory relative to {}",
                    c.value,
                    dir.display(),
                    spec.dir.display()
                ),
            ),
            None => crate::error::Error::io(format!("cannot resolve {}", dir.display()), e),
        })?;
        if !real.is_dir() {
            let c = spec.file.context.as_ref();
            return Err(match c {
                Some(c) => spec.error_at(
                    c,
                    format!("context `{}` is not a directory: expected one", c.value),
                ),
                None => {
                    crate::error::Error::Request(format!("{} is not a directory", dir.display()))
                }
            });
        }
        let mut deny = GitignoreBuilder::new(".");
        for p in SECRET_PATTERNS {
            deny.add_line(Some(PathBuf::from("built-in deny-list")), p)
                .expect("the deny-list patterns are valid");
        }
        Ok(Self {
            dir,
            real,
            ignores: RefCell::new(BTreeMap::new()),
            deny: deny.build().expect("the deny-list builds"),
        })
    }

    /// The rule of the ignore files that leaves `rel` out (`FILE:LINE:
    /// PATTERN`), if one does: the deepest directory's files first, from
    /// `rel`'s own directory up to the root, as git reads `.gitignore`.
    /// Its parent directories are not looked at (see
    /// [`Self::excluded_or_parents`]).
    pub(super) fn excluded(
        &self,
        rel: &Path,
        is_dir: bool,
    ) -> std::result::Result<Option<String>, String> {
        let mut dir = rel.parent();
        while let Some(d) = dir {
            if let Some(m) = self.matcher(d)? {
                let under = rel.strip_prefix(d).unwrap_or(rel);
                match m.matched(under, is_dir) {
                    Match::Ignore(g) => return Ok(Some(rule(g))),
                    Match::Whitelist(_) => return Ok(None),
                    Match::None => {}
                }
            }
            dir = d.parent();
        }
        Ok(None)
    }

    /// [`Self::excluded`] of `rel` or of any directory above it.
    pub(super) fn excluded_or_parents(
        &self,
        rel: &Path,
        is_dir: bool,
    ) -> std::result::Result<Option<String>, String> {
        for (p, dir) in with_parents(rel, is_dir) {
            if let Some(r) = self.excluded(&p, dir)? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// The deny-list pattern `rel` matches, if any (its parents are not
    /// looked at).
    pub(super) fn secret(&self, rel: &Path, is_dir: bool) -> Option<&str> {
        match self.deny.matched(rel, is_dir) {
            Match::Ignore(g) => Some(g.original()),
            _ => None,
        }
    }

    /// The first of `rel` and its parents (top first) that the deny-list
    /// refuses, with whether it is a directory and the pattern.
    pub(super) fn secret_or_parents(
        &self,
        rel: &Path,
        is_dir: bool,
    ) -> Option<(PathBuf, bool, &str)> {
        with_parents(rel, is_dir)
            .into_iter()
            .find_map(|(p, dir)| self.secret(&p, dir).map(|s| (p, dir, s)))
    }

    /// The matcher of the ignore files in `dir` (relative to the root).
    fn matcher(&self, dir: &Path) -> std::result::Result<Option<Rc<Gitignore>>, String> {
        if let Some(m) = self.ignores.borrow().get(dir) {
            return Ok(m.clone());
        }
        let mut b = GitignoreBuilder::new(".");
        let mut any = false;
        for name in IGNORE_FILES {
            let rel = dir.join(name);
            let file = self.dir.join(&rel);
            let meta = match std::fs::symlink_metadata(&file) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
            };
            if !meta.is_file() {
                return Err(format!(
                    "ignore file {} is not a regular file (a symlink or a directory): expected a file of patterns",
                    file.display()
                ));
            }
            let text =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let text = String::from_utf8(text).map_err(|_| {
                format!(
                    "ignore file {} is not UTF-8: expected gitignore patterns",
                    file.display()
                )
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = if i == 0 {
                    line.trim_start_matches('\u{feff}')
                } else {
                    line
                };
                // The file and line go where the matcher keeps a glob's
                // origin, to name the rule that excluded a path.
                let from = format!("{}:{}", rel.display(), i + 1);
                b.add_line(Some(PathBuf::from(&from)), line)
                    .map_err(|e| format!("{from}: invalid pattern `{line}`: {e}"))?;
                any = true;
            }
        }
        let m = if any {
            Some(Rc::new(b.build().map_err(|e| {
                format!("ignore files in {}: {e}", self.dir.join(dir).display())
            })?))
        } else {
            None
        };
        self.ignores
            .borrow_mut()
            .insert(dir.to_path_buf(), m.clone());
        Ok(m)
    }
}

/// `FILE:LINE: PATTERN` of an ignore file's glob.
fn rule(g: &ignore::gitignore::Glob) -> String {
    match g.from() {
        Some(f) => format!("{}: {}", f.display(), g.original()),
        None => g.original().to_string(),
    }
}

/// `a`, `a/b`, `a/b/c` for `a/b/c`: each with whether it is a directory.
fn with_parents(rel: &Path, is_dir: bool) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let mut acc = PathBuf::new();
    let n = rel.components().count();
    for (i, c) in rel.components().enumerate() {
        acc.push(c);
        out.push((acc.clone(), i + 1 < n || is_dir));
    }
    out
}

/// The patterns of a content entry's `allow_secrets`, each remembering
/// whether it allowed a file.
pub(super) struct Allowed<'s> {
    patterns: Vec<(Gitignore, &'s Spanned<String>, std::cell::Cell<bool>)>,
}

impl<'s> Allowed<'s> {
    pub(super) fn new(spec: &LoadedSpec, patterns: &'s [Spanned<String>]) -> Result<Self> {
        let mut out = Vec::new();
        for p in patterns {
            let mut b = GitignoreBuilder::new(".");
            let bad = |e: String| {
                spec.error_at(
                    p,
                    format!(
                        "invalid allow_secrets pattern `{}`: {e}; expected a gitignore pattern such as .env.example",
                        p.value
                    ),
                )
            };
            if p.value.trim().is_empty() || p.value.starts_with(['#', '!']) {
                return Err(bad("it matches nothing".into()));
            }
            b.add_line(None, &p.value).map_err(|e| bad(e.to_string()))?;
            out.push((
                b.build().map_err(|e| bad(e.to_string()))?,
                p,
                std::cell::Cell::new(false),
            ));
        }
        Ok(Self { patterns: out })
    }

    /// Whether a pattern names `rel` (or a directory above it).
    pub(super) fn allows(&self, rel: &Path, is_dir: bool) -> bool {
        let mut any = false;
        for (m, _, used) in &self.patterns {
            if m.matched_path_or_any_parents(rel, is_dir).is_ignore() {
                used.set(true);
                any = true;
            }
        }
        any
    }

    /// The first pattern that allowed nothing.
    pub(super) fn unused(&self) -> Option<&'s Spanned<String>> {
        self.patterns
            .iter()
            .find(|(_, _, used)| !used.get())
            .map(|(_, p, _)| *p)
    }
}

/// A `path:` as a relative path inside the context: `None` when it is
/// absolute, empty, holds NUL or a `..`. `.` components and extra or
/// trailing slashes go (`dir/.` is `dir`; `.` is the root, an empty path).
pub(super) fn source_rel(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a symlink's `target`, read from a link at `link` (relative to
/// a directory source), stays inside that directory by its words alone.
pub(super) fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: usize = link.parent().map_or(0, |p| p.components().count());
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Bytes of a name as text: valid UTF-8 as it is, every other byte as
/// `\xNN`.
#[must_use]
pub(super) fn escape_bytes(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_relative_without_dotdot() {
        assert_eq!(source_rel("a/./b/"), Some(PathBuf::from("a/b")));
        assert_eq!(source_rel("."), Some(PathBuf::new()));
        assert_eq!(source_rel("dir/."), Some(PathBuf::from("dir")));
        assert_eq!(source_rel("/etc/passwd"), None);
        assert_eq!(source_rel("a/../b"), None);
        assert_eq!(source_rel(".."), None);
        assert_eq!(source_rel(""), None);
    }

    #[test]
    fn links_are_judged_by_their_words() {
        assert!(link_stays_inside(Path::new("a/l"), Path::new("../b")));
        assert!(link_stays_inside(Path::new("l"), Path::new("./b/../c")));
        assert!(!link_stays_inside(Path::new("a/l"), Path::new("../../b")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("/etc/passwd")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("b/../../c")));
    }

    #[test]
    fn names_are_escaped_byte_by_byte() {
        assert_eq!(escape_bytes(b"caf\xe9.txt"), "caf\\xe9.txt");
        assert_eq!(escape_bytes("café".as_bytes()), "café");
    }

    #[test]
    fn the_readme_lists_the_deny_list() {
        let readme = include_str!("../../README.md");
        for p in SECRET_PATTERNS {
            let shown = p.trim_start_matches("**/");
            assert!(
                readme.contains(&format!("`{shown}`")),
                "README lacks `{shown}`"
            );
        }
    }

    #[test]
    fn the_deny_list_matches_at_any_depth() {
        let mut b = GitignoreBuilder::new(".");
        for p in SECRET_PATTERNS {
            b.add_line(None, p).unwrap();
        }
        let g = b.build().unwrap();
        for (p, dir) in [
            (".env", false),
            ("a/.env.local", false),
            ("a/b/server.pem", false),
            ("id_rsa.pub", false),
            ("x/.ssh", true),
            (".git", true),
            (".git", false),
            ("home/.docker/config.json", false),
            (".docker/config.json", false),
            ("a/.aws", true),
            ("vault.kdbx", false),
        ] {
            assert!(g.matched(p, dir).is_ignore(), "{p}");
        }
        for (p, dir) in [
            ("env", false),
            ("a/config.json", false),
            ("keys.txt", false),
            (".ssh", false),
        ] {
            assert!(!g.matched(p, dir).is_ignore(), "{p}");
        }
    }
}
