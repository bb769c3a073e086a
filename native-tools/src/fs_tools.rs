//! Filesystem tools. All paths go through [`Roots::resolve`].

use std::path::Path;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::OutOfRange;
use crate::paths::{PathError, Resolved, Roots};

/// Why a filesystem tool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path is refused by confinement.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A numeric argument is out of bounds.
    #[error(transparent)]
    Limit(#[from] OutOfRange),
    /// An I/O operation failed: `{op} {path}: {error}`.
    #[error("{op} {path}: {error}")]
    Io {
        /// What was attempted, e.g. "cannot read".
        op: &'static str,
        /// Root-relative path.
        path: String,
        /// The I/O error (part of the message).
        error: std::io::Error,
    },
    /// The client cancelled the call.
    #[error("cancelled by the client")]
    Cancelled,
    /// fs_read on a directory.
    #[error("cannot read {0}: it is a directory (use fs_list)")]
    ReadDirectory(String),
    /// fs_read on a device, socket, ...
    #[error("cannot read {0}: not a regular file")]
    NotRegularFile(String),
    /// fs_write content over the limit.
    #[error("content is {0} bytes; the limit is {WRITE_MAX_BYTES}")]
    ContentTooLarge(usize),
    /// fs_write on a root.
    #[error("cannot write to a root directory")]
    WriteRoot,
    /// fs_write without its parent directory.
    #[error("cannot write {0}: parent directory does not exist (set create_dirs: true)")]
    NoParent(String),
    /// fs_write on a directory.
    #[error("cannot write {0}: it is a directory")]
    WriteDirectory(String),
    /// fs_search with a bad pattern.
    #[error("invalid glob pattern {pattern:?}: {error}")]
    Pattern {
        /// The pattern given.
        pattern: String,
        /// Why (part of the message).
        error: glob::PatternError,
    },
    /// fs_search below a non-directory.
    #[error("cannot search {0}: not a directory")]
    SearchNotDirectory(String),
    /// fs_mkdir where a file is.
    #[error("cannot create directory {0}: a file exists there")]
    FileExists(String),
    /// fs_move of a root.
    #[error("cannot move a root directory")]
    MoveRoot,
    /// fs_move of nothing.
    #[error("cannot move {0}: no such file or directory")]
    MoveMissing(String),
    /// fs_move onto something.
    #[error("cannot move to {0}: destination already exists")]
    DestinationExists(String),
    /// fs_move of a directory below itself.
    #[error("cannot move a directory into itself")]
    MoveIntoItself,
    /// fs_move into a missing directory.
    #[error("cannot move to {0}: destination parent directory does not exist")]
    DestinationNoParent(String),
    /// The rename failed.
    #[error("cannot move {from} to {to}: {error}")]
    Move {
        /// Source, root-relative.
        from: String,
        /// Destination, root-relative.
        to: String,
        /// The I/O error (part of the message).
        error: std::io::Error,
    },
    /// fs_delete of a root.
    #[error("cannot delete a root directory")]
    DeleteRoot,
    /// fs_delete of a directory that is not empty (or not removable).
    #[error("cannot delete {path}: {error} (set recursive: true to delete a non-empty directory)")]
    DeleteDirectory {
        /// Root-relative path.
        path: String,
        /// The I/O error (part of the message).
        error: std::io::Error,
    },
}

/// Default and hard cap for fs_read.
pub const READ_DEFAULT_BYTES: u64 = 1024 * 1024;
/// Hard cap of fs_read `max_bytes`.
pub const READ_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default and hard cap for fs_search results.
pub const SEARCH_DEFAULT_RESULTS: u32 = 100;
/// Hard cap of fs_search `max_results`.
pub const SEARCH_MAX_RESULTS: u32 = 10_000;
/// Hard cap for fs_list entries.
pub const LIST_MAX_ENTRIES: usize = 10_000;
/// Hard cap on content written by fs_write.
pub const WRITE_MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsReadArgs {
    /// File path, relative to the first root or absolute inside a root.
    #[schemars(length(min = 1))]
    pub path: String,
    /// Maximum number of bytes to return (default 1048576, at most 16777216). Longer files are truncated.
    #[schemars(range(min = 0, max = 16777216))]
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FsReadResult {
    /// Path relative to its root.
    pub path: String,
    /// File content (UTF-8; invalid sequences replaced unless encoding is base64).
    pub content: String,
    /// "utf-8" or "base64" (for non-UTF-8 data).
    pub encoding: String,
    /// Total file size in bytes.
    pub size: u64,
    /// Number of bytes returned.
    pub bytes_read: u64,
    /// True when the file is larger than max_bytes.
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsWriteArgs {
    /// File path, relative to the first root or absolute inside a root.
    #[schemars(length(min = 1))]
    pub path: String,
    /// UTF-8 text to write (replaces the file). At most 16 MiB.
    pub content: String,
    /// Create missing parent directories (default false).
    pub create_dirs: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FsWriteResult {
    pub path: String,
    pub bytes_written: u64,
    /// True if the file did not exist before.
    pub created: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// Path, relative to the first root or absolute inside a root.
    #[schemars(length(min = 1))]
    pub path: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DirEntry {
    pub name: String,
    /// "file", "dir", "symlink" or "other".
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FsListResult {
    pub path: String,
    /// Entries sorted by name.
    pub entries: Vec<DirEntry>,
    /// True when the directory has more than 10000 entries.
    pub truncated: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FsStatResult {
    pub path: String,
    pub exists: bool,
    /// "file", "dir", "symlink" or "other" (absent when exists is false).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Unix permission bits, octal string like "644".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly: Option<bool>,
    /// Modification time, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsSearchArgs {
    /// Directory to search (recursively), relative to the first root or absolute inside a root.
    #[schemars(length(min = 1))]
    pub path: String,
    /// Glob pattern matched against paths relative to `path` (e.g. "**/*.rs", "*.txt"). A pattern without '/' is also matched against the file name alone.
    #[schemars(length(min = 1, max = 1024))]
    pub pattern: String,
    /// Maximum number of matches (default 100, at most 10000).
    #[schemars(range(min = 1, max = 10000))]
    pub max_results: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FsSearchResult {
    pub path: String,
    pub pattern: String,
    /// Matching paths relative to the searched directory, in sorted walk order.
    pub matches: Vec<String>,
    /// True when the search stopped at max_results.
    pub truncated: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FsMkdirResult {
    pub path: String,
    /// False if the directory already existed.
    pub created: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsMoveArgs {
    /// Source path (must exist).
    #[schemars(length(min = 1))]
    pub from: String,
    /// Destination path (must not exist; its parent must exist).
    #[schemars(length(min = 1))]
    pub to: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FsMoveResult {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsDeleteArgs {
    /// Path to delete.
    #[schemars(length(min = 1))]
    pub path: String,
    /// Delete directories with their contents (default false: only files and empty directories).
    pub recursive: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FsDeleteResult {
    pub path: String,
    /// "file", "dir" or "symlink".
    #[serde(rename = "type")]
    pub kind: String,
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    }
}

/// An I/O error on `r` while doing `op` (returns a closure for `map_err`).
fn io_err<'a>(op: &'static str, r: &'a Resolved) -> impl FnOnce(std::io::Error) -> FsError + 'a {
    move |error| FsError::Io {
        op,
        path: r.relative(),
        error,
    }
}

fn is_root(r: &Resolved) -> bool {
    r.path == r.root
}

/// The fs_read tool.
pub fn read(roots: &Roots, a: FsReadArgs) -> Result<FsReadResult, FsError> {
    use std::io::Read;
    let r = roots.resolve(&a.path)?;
    let max = crate::limits::arg(
        "max_bytes",
        a.max_bytes,
        READ_DEFAULT_BYTES,
        0,
        READ_MAX_BYTES,
    )?;
    let meta = std::fs::metadata(&r.path).map_err(io_err("cannot read", &r))?;
    if meta.is_dir() {
        return Err(FsError::ReadDirectory(r.relative()));
    }
    if !meta.is_file() {
        return Err(FsError::NotRegularFile(r.relative()));
    }
    let f = std::fs::File::open(&r.path).map_err(io_err("cannot read", &r))?;
    let mut buf = Vec::new();
    f.take(max)
        .read_to_end(&mut buf)
        .map_err(io_err("cannot read", &r))?;
    let size = meta.len();
    let bytes_read = buf.len() as u64;
    let truncated = size > bytes_read;
    let (content, encoding) = crate::text::text_or_base64(buf, truncated);
    Ok(FsReadResult {
        path: r.relative(),
        content,
        encoding: encoding.into(),
        size,
        bytes_read,
        truncated,
    })
}

/// The fs_write tool.
pub fn write(roots: &Roots, a: FsWriteArgs) -> Result<FsWriteResult, FsError> {
    if a.content.len() > WRITE_MAX_BYTES {
        return Err(FsError::ContentTooLarge(a.content.len()));
    }
    let r = roots.resolve(&a.path)?;
    if is_root(&r) {
        return Err(FsError::WriteRoot);
    }
    if let Some(parent) = r.path.parent() {
        if a.create_dirs.unwrap_or(false) {
            std::fs::create_dir_all(parent)
                .map_err(io_err("cannot create parent directories of", &r))?;
            // Re-check: a racing symlink could have been created meanwhile.
            roots.resolve(&r.path.to_string_lossy())?;
        } else if !parent.is_dir() {
            return Err(FsError::NoParent(r.relative()));
        }
    }
    let created = std::fs::symlink_metadata(&r.path).is_err();
    if let Ok(m) = std::fs::metadata(&r.path)
        && m.is_dir()
    {
        return Err(FsError::WriteDirectory(r.relative()));
    }
    std::fs::write(&r.path, a.content.as_bytes()).map_err(io_err("cannot write", &r))?;
    Ok(FsWriteResult {
        path: r.relative(),
        bytes_written: a.content.len() as u64,
        created,
    })
}

/// The fs_list tool.
pub fn list(roots: &Roots, a: PathArgs) -> Result<FsListResult, FsError> {
    let r = roots.resolve(&a.path)?;
    let rd = std::fs::read_dir(&r.path).map_err(io_err("cannot list", &r))?;
    let mut entries = Vec::new();
    let mut truncated = false;
    for ent in rd {
        let ent = ent.map_err(io_err("cannot list", &r))?;
        if entries.len() >= LIST_MAX_ENTRIES {
            truncated = true;
            break;
        }
        let meta = ent.metadata();
        let (kind, size) = match &meta {
            Ok(m) => (
                kind_of(m.file_type()),
                if m.is_file() { m.len() } else { 0 },
            ),
            Err(_) => ("other", 0),
        };
        entries.push(DirEntry {
            name: ent.file_name().to_string_lossy().into_owned(),
            kind: kind.into(),
            size,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FsListResult {
        path: r.relative(),
        entries,
        truncated,
    })
}

/// The fs_stat tool (symlinks are not followed).
pub fn stat(roots: &Roots, a: PathArgs) -> Result<FsStatResult, FsError> {
    use std::os::unix::fs::PermissionsExt;
    let r = roots.resolve_entry(&a.path)?;
    match std::fs::symlink_metadata(&r.path) {
        Ok(m) => Ok(FsStatResult {
            path: r.relative(),
            exists: true,
            kind: Some(kind_of(m.file_type()).into()),
            size: Some(m.len()),
            mode: Some(format!("{:o}", m.permissions().mode() & 0o7777)),
            readonly: Some(m.permissions().readonly()),
            modified: m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FsStatResult {
            path: r.relative(),
            exists: false,
            kind: None,
            size: None,
            mode: None,
            readonly: None,
            modified: None,
        }),
        Err(e) => Err(io_err("cannot stat", &r)(e)),
    }
}

/// The fs_search tool: reports entries scanned to `monitor` and stops with
/// [`FsError::Cancelled`] when the client cancels.
pub fn search(
    roots: &Roots,
    a: FsSearchArgs,
    monitor: &crate::progress::Monitor,
) -> Result<FsSearchResult, FsError> {
    let r = roots.resolve(&a.path)?;
    let pattern = glob::Pattern::new(&a.pattern).map_err(|error| FsError::Pattern {
        pattern: a.pattern.clone(),
        error,
    })?;
    let name_only = !a.pattern.contains('/');
    let max = crate::limits::arg(
        "max_results",
        a.max_results,
        SEARCH_DEFAULT_RESULTS,
        1,
        SEARCH_MAX_RESULTS,
    )? as usize;
    let meta = std::fs::metadata(&r.path).map_err(io_err("cannot search", &r))?;
    if !meta.is_dir() {
        return Err(FsError::SearchNotDirectory(r.relative()));
    }
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut matches = Vec::new();
    let mut truncated = false;
    // Iterative DFS without following symlinks (symlinked dirs are not descended).
    let mut stack = vec![r.path.clone()];
    let mut visited: usize = 0;
    'walk: while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut ents: Vec<_> = rd.filter_map(Result::ok).collect();
        ents.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for ent in ents {
            visited += 1;
            if visited.is_multiple_of(256) {
                if monitor.is_cancelled() {
                    return Err(FsError::Cancelled);
                }
                monitor.report(visited as u64, None, false, || {
                    format!("scanned {visited} entries, {} matches", matches.len())
                });
            }
            if visited > 1_000_000 {
                truncated = true;
                break 'walk;
            }
            let p = ent.path();
            let Ok(rel) = p.strip_prefix(&r.path) else {
                continue;
            };
            let hit = pattern.matches_path_with(rel, opts)
                || (name_only && pattern.matches_with(&ent.file_name().to_string_lossy(), opts));
            if hit {
                if matches.len() >= max {
                    truncated = true;
                    break 'walk;
                }
                matches.push(rel.to_string_lossy().into_owned());
            }
            if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                subdirs.push(p);
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    monitor.report(visited as u64, None, true, || {
        format!("scanned {visited} entries, {} matches", matches.len())
    });
    Ok(FsSearchResult {
        path: r.relative(),
        pattern: a.pattern,
        matches,
        truncated,
    })
}

/// The fs_mkdir tool.
pub fn mkdir(roots: &Roots, a: PathArgs) -> Result<FsMkdirResult, FsError> {
    let r = roots.resolve(&a.path)?;
    if let Ok(m) = std::fs::metadata(&r.path) {
        if m.is_dir() {
            return Ok(FsMkdirResult {
                path: r.relative(),
                created: false,
            });
        }
        return Err(FsError::FileExists(r.relative()));
    }
    std::fs::create_dir_all(&r.path).map_err(io_err("cannot create directory", &r))?;
    Ok(FsMkdirResult {
        path: r.relative(),
        created: true,
    })
}

/// The fs_move tool.
pub fn mv(roots: &Roots, a: FsMoveArgs) -> Result<FsMoveResult, FsError> {
    let from = roots.resolve_entry(&a.from)?;
    let to = roots.resolve(&a.to)?;
    if is_root(&from) {
        return Err(FsError::MoveRoot);
    }
    if std::fs::symlink_metadata(&from.path).is_err() {
        return Err(FsError::MoveMissing(from.relative()));
    }
    if std::fs::symlink_metadata(&to.path).is_ok() {
        return Err(FsError::DestinationExists(to.relative()));
    }
    if to.path.starts_with(&from.path) {
        return Err(FsError::MoveIntoItself);
    }
    match to.path.parent() {
        Some(p) if p.is_dir() => {}
        _ => {
            return Err(FsError::DestinationNoParent(to.relative()));
        }
    }
    std::fs::rename(&from.path, &to.path).map_err(|error| FsError::Move {
        from: from.relative(),
        to: to.relative(),
        error,
    })?;
    Ok(FsMoveResult {
        from: from.relative(),
        to: to.relative(),
    })
}

/// The fs_delete tool.
pub fn delete(roots: &Roots, a: FsDeleteArgs) -> Result<FsDeleteResult, FsError> {
    let r = roots.resolve_entry(&a.path)?;
    if is_root(&r) {
        return Err(FsError::DeleteRoot);
    }
    let m = std::fs::symlink_metadata(&r.path).map_err(io_err("cannot delete", &r))?;
    let kind = kind_of(m.file_type());
    if m.is_dir() {
        if a.recursive.unwrap_or(false) {
            std::fs::remove_dir_all(&r.path).map_err(io_err("cannot delete", &r))?;
        } else {
            std::fs::remove_dir(&r.path).map_err(|error| FsError::DeleteDirectory {
                path: r.relative(),
                error,
            })?;
        }
    } else {
        std::fs::remove_file(&r.path).map_err(io_err("cannot delete", &r))?;
    }
    Ok(FsDeleteResult {
        path: r.relative(),
        kind: kind.into(),
    })
}

#[allow(dead_code)]
fn _assert_path(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> Roots {
        Roots::new(&[dir.to_path_buf()]).unwrap()
    }

    #[test]
    fn write_read_list_stat_search_move_delete() {
        let d = tempfile::tempdir().unwrap();
        let rs = roots(d.path());
        let w = write(
            &rs,
            FsWriteArgs {
                path: "a/b/c.txt".into(),
                content: "hello".into(),
                create_dirs: Some(true),
            },
        )
        .unwrap();
        assert!(w.created);
        assert_eq!(w.bytes_written, 5);
        let e = write(
            &rs,
            FsWriteArgs {
                path: "x/y.txt".into(),
                content: "".into(),
                create_dirs: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("create_dirs"), "{e}");
        let rd = read(
            &rs,
            FsReadArgs {
                path: "a/b/c.txt".into(),
                max_bytes: Some(3),
            },
        )
        .unwrap();
        assert_eq!(rd.content, "hel");
        assert!(rd.truncated);
        assert_eq!(rd.size, 5);
        let l = list(&rs, PathArgs { path: "a".into() }).unwrap();
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].kind, "dir");
        let s = stat(
            &rs,
            PathArgs {
                path: "a/b/c.txt".into(),
            },
        )
        .unwrap();
        assert_eq!(s.kind.as_deref(), Some("file"));
        assert_eq!(s.size, Some(5));
        assert!(
            !stat(
                &rs,
                PathArgs {
                    path: "nope".into()
                }
            )
            .unwrap()
            .exists
        );
        let f = search(
            &rs,
            FsSearchArgs {
                path: ".".into(),
                pattern: "*.txt".into(),
                max_results: None,
            },
            &crate::progress::Monitor::default(),
        )
        .unwrap();
        assert_eq!(f.matches, vec!["a/b/c.txt".to_string()]);
        let f = search(
            &rs,
            FsSearchArgs {
                path: ".".into(),
                pattern: "a/*/c.*".into(),
                max_results: None,
            },
            &crate::progress::Monitor::default(),
        )
        .unwrap();
        assert_eq!(f.matches, vec!["a/b/c.txt".to_string()]);
        let m = mv(
            &rs,
            FsMoveArgs {
                from: "a/b/c.txt".into(),
                to: "a/d.txt".into(),
            },
        )
        .unwrap();
        assert_eq!(m.to, "a/d.txt");
        assert!(
            delete(
                &rs,
                FsDeleteArgs {
                    path: "a".into(),
                    recursive: None
                }
            )
            .is_err()
        );
        delete(
            &rs,
            FsDeleteArgs {
                path: "a".into(),
                recursive: Some(true),
            },
        )
        .unwrap();
        assert!(!d.path().join("a").exists());
        assert!(
            delete(
                &rs,
                FsDeleteArgs {
                    path: ".".into(),
                    recursive: Some(true)
                }
            )
            .is_err()
        );
        assert!(d.path().exists());
    }

    #[test]
    fn delete_symlink_removes_link_not_target() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(d.path().join("sub"), d.path().join("link")).unwrap();
        let rs = roots(d.path());
        let s = stat(
            &rs,
            PathArgs {
                path: "link".into(),
            },
        )
        .unwrap();
        assert_eq!(s.kind.as_deref(), Some("symlink"));
        let r = delete(
            &rs,
            FsDeleteArgs {
                path: "link".into(),
                recursive: Some(true),
            },
        )
        .unwrap();
        assert_eq!(r.kind, "symlink");
        assert!(d.path().join("sub/f").exists());
        assert!(std::fs::symlink_metadata(d.path().join("link")).is_err());
    }

    #[test]
    fn binary_read_is_base64() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("b.bin"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
        let r = read(
            &roots(d.path()),
            FsReadArgs {
                path: "b.bin".into(),
                max_bytes: None,
            },
        )
        .unwrap();
        assert_eq!(r.encoding, "base64");
        assert_eq!(r.content, "//4AQQ==");
    }

    #[test]
    fn move_destination_outside_refused() {
        let d = tempfile::tempdir().unwrap();
        let o = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink(o.path(), d.path().join("out")).unwrap();
        let rs = roots(d.path());
        let dest = o.path().join("f");
        assert!(
            mv(
                &rs,
                FsMoveArgs {
                    from: "f".into(),
                    to: dest.to_string_lossy().into()
                }
            )
            .is_err()
        );
        assert!(
            mv(
                &rs,
                FsMoveArgs {
                    from: "f".into(),
                    to: "out/f".into()
                }
            )
            .is_err()
        );
        assert!(
            mv(
                &rs,
                FsMoveArgs {
                    from: "f".into(),
                    to: "../f".into()
                }
            )
            .is_err()
        );
        assert!(d.path().join("f").exists());
        assert!(!o.path().join("f").exists());
    }

    #[test]
    fn search_stops_when_cancelled() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..300 {
            std::fs::write(d.path().join(format!("f{i}")), "x").unwrap();
        }
        let rs = Roots::new(&[d.path().to_path_buf()]).unwrap();
        let ct = tokio_util::sync::CancellationToken::new();
        ct.cancel();
        let args = || FsSearchArgs {
            path: ".".into(),
            pattern: "*".into(),
            max_results: Some(1000),
        };
        let m = crate::progress::Monitor::new(ct);
        assert!(matches!(search(&rs, args(), &m), Err(FsError::Cancelled)));
        let f = search(&rs, args(), &crate::progress::Monitor::default()).unwrap();
        assert_eq!(f.matches.len(), 300);
    }
}
