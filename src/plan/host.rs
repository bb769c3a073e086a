//! Files and directory trees of the build host that go into a layer.

use std::path::{Path, PathBuf};

use super::entries::{DirAttrs, LayerEntries, dir_entry};
use super::model::{Entry, EntryKind};
use crate::error::Error;
use crate::spec::{ContentSpec, LoadedSpec, Spanned};

pub(super) enum HostError {
    Clash(String),
    Other(Error),
}

impl From<Error> for HostError {
    fn from(e: Error) -> Self {
        Self::Other(e)
    }
}

/// Adds a file or a directory tree of the build host.
pub(super) fn add_host_path(
    spec: &LoadedSpec,
    c: &ContentSpec,
    path: &Spanned<String>,
    dest: &str,
    uid: u32,
    gid: u32,
    l: &mut LayerEntries<'_>,
) -> std::result::Result<(), HostError> {
    let source = spec.dir.join(&path.value);
    let meta = std::fs::symlink_metadata(&source).map_err(|e| {
        spec.error_at(
            path,
            format!(
                "cannot read source `{}` ({}): {e}; expected an existing file or directory relative to {}",
                path.value,
                source.display(),
                spec.dir.display()
            ),
        )
    })?;
    let file_mode = |m: &std::fs::Metadata| {
        c.mode
            .map_or_else(|| if is_executable(m) { 0o755 } else { 0o644 }, |m| m.0)
    };
    if meta.is_file() {
        l.add(Entry {
            path: dest.to_string(),
            kind: EntryKind::File { source },
            mode: file_mode(&meta),
            uid,
            gid,
        })
        .map_err(HostError::Clash)?;
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(spec
            .error_at(
                path,
                format!(
                    "source `{}` is neither a file nor a directory: expected a file or a directory",
                    path.value
                ),
            )
            .into());
    }
    let dest_dir = dir_entry(
        dest,
        l.dirs,
        DirAttrs {
            mode: 0o755,
            uid,
            gid,
        },
    );
    l.add(dest_dir).map_err(HostError::Clash)?;
    for item in walk(&source).map_err(|e| spec.error_at(path, e))? {
        let (relp, meta) = item;
        let full = source.join(&relp);
        let relstr = relp.to_string_lossy().replace('\\', "/");
        let target = format!("{dest}/{relstr}");
        let entry = if meta.is_dir() {
            Entry {
                path: target,
                kind: EntryKind::Dir,
                mode: 0o755,
                uid,
                gid,
            }
        } else if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&full).map_err(|e| {
                spec.error_at(path, format!("cannot read link {}: {e}", full.display()))
            })?;
            Entry {
                path: target,
                kind: EntryKind::Symlink {
                    target: link.to_string_lossy().into_owned(),
                },
                mode: 0o777,
                uid,
                gid,
            }
        } else if meta.is_file() {
            Entry {
                path: target,
                kind: EntryKind::File { source: full },
                mode: file_mode(&meta),
                uid,
                gid,
            }
        } else {
            return Err(spec
                .error_at(
                    path,
                    format!(
                        "{} is a special file: expected only files, directories and symlinks",
                        full.display()
                    ),
                )
                .into());
        };
        l.add(entry).map_err(HostError::Clash)?;
    }
    Ok(())
}

/// Lists a directory tree (sorted, relative paths), not following symlinks.
fn walk(root: &Path) -> std::result::Result<Vec<(PathBuf, std::fs::Metadata)>, String> {
    let mut out = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .sort_by_file_name(std::cmp::Ord::cmp)
        .build();
    for item in walker {
        let item = item.map_err(|e| format!("cannot walk {}: {e}", root.display()))?;
        if item.depth() == 0 {
            continue;
        }
        let meta = std::fs::symlink_metadata(item.path())
            .map_err(|e| format!("cannot read {}: {e}", item.path().display()))?;
        let relp = item
            .path()
            .strip_prefix(root)
            .map_err(|e| e.to_string())?
            .to_path_buf();
        out.push((relp, meta));
    }
    Ok(out)
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_m: &std::fs::Metadata) -> bool {
    false
}
