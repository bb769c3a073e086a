//! Path confinement: every filesystem tool resolves its paths through [`Roots`].
//!
//! Rules:
//! * a relative path is taken relative to the first root;
//! * an absolute path must lie (lexically) inside one of the roots;
//! * `..` components are refused outright (no lexical games);
//! * the longest existing prefix of the path is canonicalized (resolving
//!   symlinks) and must still be inside the same root, so symlinks that
//!   leave a root are refused, also for paths that do not exist yet.

use std::path::{Component, Path, PathBuf};

/// A filesystem root that cannot be used, or a path refused by confinement.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// No roots were given.
    #[error("no filesystem roots configured")]
    NoRoots,
    /// Relative roots need the current directory.
    #[error("cannot read current directory: {0}")]
    CurrentDir(std::io::Error),
    /// A root cannot be canonicalized.
    #[error("filesystem root {} is not usable: {error}", root.display())]
    RootUnusable {
        /// The root as given (made absolute).
        root: PathBuf,
        /// The I/O error (part of the message).
        error: std::io::Error,
    },
    /// A root is not a directory.
    #[error("filesystem root {} is not a directory", .0.display())]
    RootNotDir(PathBuf),
    /// An empty path.
    #[error("path must not be empty")]
    Empty,
    /// A path with a NUL byte.
    #[error("path must not contain NUL bytes")]
    Nul,
    /// A path with a `..` component.
    #[error(
        "access denied: path {0:?} contains '..' (parent directory components are not allowed)"
    )]
    ParentDir(String),
    /// An absolute path that does not normalize.
    #[error("invalid path {0:?}")]
    Invalid(String),
    /// An absolute path under none of the roots.
    #[error("access denied: {input:?} is outside the allowed roots ({roots})")]
    Outside {
        /// The path given.
        input: String,
        /// The roots, comma-separated.
        roots: String,
    },
    /// The existing part of the path cannot be canonicalized.
    #[error("access denied: cannot resolve {input:?} ({error}); it may be a dangling symlink")]
    Unresolvable {
        /// The path given.
        input: String,
        /// The I/O error (part of the message).
        error: std::io::Error,
    },
    /// The path leaves its root through a symlink.
    #[error(
        "access denied: {input:?} resolves through a symlink to {} which is outside the allowed roots ({roots})",
        target.display()
    )]
    SymlinkEscape {
        /// The path given.
        input: String,
        /// Where it resolves to.
        target: PathBuf,
        /// The roots, comma-separated.
        roots: String,
    },
}

/// One configured root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The root as configured (made absolute).
    pub given: PathBuf,
    /// The canonical root (symlinks resolved).
    pub canonical: PathBuf,
}

/// The roots the filesystem tools are confined to.
#[derive(Debug, Clone)]
pub struct Roots {
    roots: Vec<Root>,
}

/// A path that passed confinement checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Absolute, symlink-resolved (for the existing prefix) path to operate on.
    pub path: PathBuf,
    /// Canonical root containing `path`.
    pub root: PathBuf,
}

impl Resolved {
    /// Path relative to its root, for display.
    pub fn relative(&self) -> String {
        match self.path.strip_prefix(&self.root) {
            Ok(p) if p.as_os_str().is_empty() => ".".to_string(),
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(_) => self.path.to_string_lossy().into_owned(),
        }
    }
}

impl Roots {
    /// Build from configured directories. Each must exist and be a directory.
    pub fn new(dirs: &[PathBuf]) -> Result<Self, PathError> {
        if dirs.is_empty() {
            return Err(PathError::NoRoots);
        }
        let cwd = std::env::current_dir().map_err(PathError::CurrentDir)?;
        let mut roots = Vec::new();
        for d in dirs {
            let given = if d.is_absolute() {
                d.clone()
            } else {
                cwd.join(d)
            };
            let canonical = match std::fs::canonicalize(&given) {
                Ok(c) => c,
                Err(error) => return Err(PathError::RootUnusable { root: given, error }),
            };
            if !canonical.is_dir() {
                return Err(PathError::RootNotDir(given));
            }
            let given = normalize_lexically(&given).unwrap_or(given);
            roots.push(Root { given, canonical });
        }
        Ok(Self { roots })
    }

    /// The configured roots.
    pub fn list(&self) -> &[Root] {
        &self.roots
    }

    /// Like [`Roots::resolve`], but when the final component is a symlink
    /// (whose target is inside the roots) the result names the link itself, so
    /// fs_delete / fs_move / fs_stat act on the link rather than its target.
    pub fn resolve_entry(&self, input: &str) -> Result<Resolved, PathError> {
        let full = self.resolve(input)?;
        let (root, rel) = self.locate(input)?;
        let lexical = root.canonical.join(&rel);
        let is_link = std::fs::symlink_metadata(&lexical)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if let (true, Some(parent), Some(name)) = (is_link, lexical.parent(), lexical.file_name()) {
            let parent = self.resolve(&parent.to_string_lossy())?;
            return Ok(Resolved {
                path: parent.path.join(name),
                root: parent.root,
            });
        }
        Ok(full)
    }

    /// Resolve a user-supplied path, refusing anything that escapes the roots.
    pub fn resolve(&self, input: &str) -> Result<Resolved, PathError> {
        let (root, rel) = self.locate(input)?;
        self.confine(input, root, &rel)
    }

    /// Validate the input lexically and pick the root and root-relative path.
    fn locate(&self, input: &str) -> Result<(&Root, PathBuf), PathError> {
        if input.is_empty() {
            return Err(PathError::Empty);
        }
        if input.contains('\0') {
            return Err(PathError::Nul);
        }
        let p = Path::new(input);
        for c in p.components() {
            if matches!(c, Component::ParentDir) {
                return Err(PathError::ParentDir(input.to_string()));
            }
        }
        // Pick the root and the path relative to it.
        let (root, rel): (&Root, PathBuf) = if p.is_absolute() {
            let abs =
                normalize_lexically(p).ok_or_else(|| PathError::Invalid(input.to_string()))?;
            let mut found = None;
            // Prefer the longest matching root.
            for r in &self.roots {
                for base in [&r.given, &r.canonical] {
                    if let Ok(rest) = abs.strip_prefix(base) {
                        let better = match &found {
                            None => true,
                            Some((_, _, len)) => base.as_os_str().len() > *len,
                        };
                        if better {
                            found = Some((r, rest.to_path_buf(), base.as_os_str().len()));
                        }
                    }
                }
            }
            match found {
                Some((r, rest, _)) => (r, rest),
                None => {
                    return Err(PathError::Outside {
                        input: input.to_string(),
                        roots: self.describe(),
                    });
                }
            }
        } else {
            let rel: PathBuf = p
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            (&self.roots[0], rel)
        };
        Ok((root, rel))
    }

    /// Check the symlink-resolved location of `root/rel` stays inside `root`.
    fn confine(&self, input: &str, root: &Root, rel: &Path) -> Result<Resolved, PathError> {
        let target = root.canonical.join(rel);
        // Find the longest existing prefix (using symlink_metadata so a dangling
        // symlink counts as existing and gets rejected by canonicalize below).
        let mut existing = target.clone();
        let mut tail: Vec<std::ffi::OsString> = Vec::new();
        loop {
            if std::fs::symlink_metadata(&existing).is_ok() {
                break;
            }
            match (
                existing.file_name().map(|s| s.to_os_string()),
                existing.parent(),
            ) {
                (Some(name), Some(parent)) => {
                    tail.push(name);
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let canon = std::fs::canonicalize(&existing).map_err(|error| PathError::Unresolvable {
            input: input.to_string(),
            error,
        })?;
        if !canon.starts_with(&root.canonical) {
            return Err(PathError::SymlinkEscape {
                input: input.to_string(),
                target: canon,
                roots: self.describe(),
            });
        }
        let mut path = canon;
        for name in tail.iter().rev() {
            path.push(name);
        }
        Ok(Resolved {
            path,
            root: root.canonical.clone(),
        })
    }

    fn describe(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.given.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Remove `.` components and redundant separators; refuse `..`.
fn normalize_lexically(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Prefix(x) => out.push(x.as_os_str()),
            Component::RootDir => out.push(Component::RootDir.as_os_str()),
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// Parse a colon-separated list of roots (NATIVE_TOOLS_ROOTS).
pub fn split_roots(s: &str) -> Vec<PathBuf> {
    s.split(':')
        .filter(|x| !x.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Roots) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("sub/a.txt"), "a").unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        std::os::unix::fs::symlink(root.path().join("sub"), root.path().join("inner")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/zzz", root.path().join("dangling")).unwrap();
        let roots = Roots::new(&[root.path().to_path_buf()]).unwrap();
        (root, outside, roots)
    }

    #[test]
    fn relative_paths_resolve_inside_first_root() {
        let (root, _o, roots) = setup();
        let r = roots.resolve("sub/a.txt").unwrap();
        assert_eq!(
            r.path,
            root.path().canonicalize().unwrap().join("sub/a.txt")
        );
        assert_eq!(r.relative(), "sub/a.txt");
        assert_eq!(roots.resolve(".").unwrap().relative(), ".");
        assert_eq!(
            roots.resolve("./sub/./a.txt").unwrap().relative(),
            "sub/a.txt"
        );
    }

    #[test]
    fn parent_components_are_refused() {
        let (_r, _o, roots) = setup();
        for p in ["../x", "sub/../../x", "sub/..", ".."] {
            let e = roots.resolve(p).unwrap_err().to_string();
            assert!(e.contains("'..'"), "{p}: {e}");
        }
    }

    #[test]
    fn absolute_outside_refused_inside_accepted() {
        let (root, outside, roots) = setup();
        let e = roots.resolve("/etc/passwd").unwrap_err().to_string();
        assert!(e.contains("outside the allowed roots"), "{e}");
        let e = roots
            .resolve(outside.path().join("secret.txt").to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the allowed roots"), "{e}");
        let inside = root.path().join("sub/a.txt");
        let r = roots.resolve(inside.to_str().unwrap()).unwrap();
        assert_eq!(r.relative(), "sub/a.txt");
        // A sibling directory sharing the root's name prefix is outside.
        let sibling = format!("{}-evil/x", root.path().display());
        assert!(roots.resolve(&sibling).is_err());
    }

    #[test]
    fn symlink_escapes_refused_even_for_new_paths() {
        let (_r, _o, roots) = setup();
        let e = roots.resolve("escape/secret.txt").unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        let e = roots
            .resolve("escape/new/file.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("symlink"), "{e}");
        let e = roots.resolve("escape").unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        assert!(roots.resolve("dangling").is_err());
        assert!(roots.resolve("dangling/x").is_err());
    }

    #[test]
    fn symlinks_within_root_are_allowed() {
        let (_r, _o, roots) = setup();
        let r = roots.resolve("inner/a.txt").unwrap();
        assert_eq!(r.relative(), "sub/a.txt");
    }

    #[test]
    fn resolve_entry_names_the_link_itself() {
        let (root, _o, roots) = setup();
        let r = roots.resolve_entry("inner").unwrap();
        assert_eq!(r.path, root.path().canonicalize().unwrap().join("inner"));
        assert_eq!(roots.resolve("inner").unwrap().relative(), "sub");
        assert_eq!(
            roots.resolve_entry("sub/a.txt").unwrap().relative(),
            "sub/a.txt"
        );
        assert!(roots.resolve_entry("escape").is_err());
        assert!(roots.resolve_entry("dangling").is_err());
    }

    #[test]
    fn nonexistent_paths_inside_root_are_allowed() {
        let (_r, _o, roots) = setup();
        let r = roots.resolve("new/dir/file.txt").unwrap();
        assert_eq!(r.relative(), "new/dir/file.txt");
    }

    #[test]
    fn multiple_roots_and_split() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let spec = format!("{}::{}", a.path().display(), b.path().display());
        let dirs = split_roots(&spec);
        assert_eq!(dirs.len(), 2);
        let roots = Roots::new(&dirs).unwrap();
        let inb = b.path().join("f");
        let r = roots.resolve(inb.to_str().unwrap()).unwrap();
        assert_eq!(r.root, b.path().canonicalize().unwrap());
        assert!(Roots::new(&[PathBuf::from("/definitely/not/here")]).is_err());
        assert!(Roots::new(&[]).is_err());
    }
}
