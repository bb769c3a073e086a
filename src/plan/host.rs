//! Files and directory trees of the build host that go into a layer.
//!
//! A source is checked before anything of it is read: its `path:` must
//! stay inside the context, by its words and through every symlink; the
//! ignore files leave parts of a directory out; the built-in deny-list
//! refuses secrets the entry does not allow; only regular files,
//! directories and symlinks that stay inside the source may enter, each
//! with a UTF-8 name. Only metadata is read here.

use std::ffi::OsString;
use std::fs::FileType;
use std::path::Path;

use super::context::{
    Allowed, Context, IGNORE_FILE_RULE, IGNORE_FILES, escape_bytes, link_stays_inside, source_rel,
};
use super::entries::{DirAttrs, LayerEntries, dir_entry};
use super::model::{Entry, EntryKind, Excluded};
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
    ctx: &Context,
    c: &ContentSpec,
    path: &Spanned<String>,
    dest: &str,
    (uid, gid): (u32, u32),
    l: &mut LayerEntries<'_>,
) -> std::result::Result<(), HostError> {
    let fail = |m: String| HostError::Other(spec.error_at(path, m));
    let rel = source_rel(&path.value).ok_or_else(|| {
        let why = if path.value.starts_with('/') {
            "is an absolute path"
        } else if path.value.is_empty() || path.value.contains('\0') {
            "is empty or holds NUL"
        } else {
            "climbs with `..`"
        };
        fail(format!(
            "source `{}` {why}: expected a path relative to the context {} that stays inside it (name another root with `context:`)",
            path.value,
            ctx.real.display()
        ))
    })?;
    let source = if rel.as_os_str().is_empty() {
        ctx.dir.clone()
    } else {
        ctx.dir.join(&rel)
    };
    // Resolving every symlink before anything else is looked at: a source
    // that leads outside is refused before one of its bytes is read.
    let real = std::fs::canonicalize(&source).map_err(|e| {
        fail(format!(
            "cannot read source `{}` ({}): {e}; expected an existing file or directory relative to {}",
            path.value,
            source.display(),
            ctx.dir.display()
        ))
    })?;
    let Ok(real_rel) = real.strip_prefix(&ctx.real) else {
        return Err(fail(format!(
            "source `{}` resolves to {}, outside the context {}: expected a path that stays inside it through every symlink (name another root with `context:`)",
            path.value,
            real.display(),
            ctx.real.display()
        )));
    };
    let meta = std::fs::metadata(&real).map_err(|e| {
        fail(format!(
            "cannot read source `{}` ({}): {e}",
            path.value,
            source.display()
        ))
    })?;
    let is_dir = meta.is_dir();
    if !is_dir && !meta.is_file() {
        return Err(fail(format!(
            "source `{}` is {}: expected a file or a directory",
            path.value,
            special_kind(&meta.file_type())
        )));
    }
    let allowed = Allowed::new(spec, &c.allow_secrets)?;
    if let Some(rule) = ctx.excluded_or_parents(&rel, is_dir).map_err(fail)? {
        return Err(fail(format!(
            "source `{}` is excluded by {rule}: expected a source the ignore files keep (change the rule or drop the entry)",
            display_rel(&rel, is_dir)
        )));
    }
    for named in [rel.as_path(), real_rel] {
        if let Some((p, dir, pattern)) = ctx.secret_or_parents(named, is_dir)
            && !allowed.allows(named, is_dir)
        {
            return Err(fail(secret_message(&display_rel(&p, dir), pattern)));
        }
    }
    let file_mode = |m: &std::fs::Metadata| {
        c.mode.as_ref().map_or_else(
            || if is_executable(m) { 0o755 } else { 0o644 },
            |m| m.value.0,
        )
    };
    if !is_dir {
        l.add(Entry {
            path: dest.to_string(),
            kind: EntryKind::File { source },
            mode: file_mode(&meta),
            uid,
            gid,
        })
        .map_err(HostError::Clash)?;
    } else {
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
        let mut walk = Walk {
            spec,
            ctx,
            path,
            allowed: &allowed,
            root: &rel,
            real_root: &real,
            dest,
            owner: (uid, gid),
            file_mode: &file_mode,
        };
        walk.dir(&source, Path::new(""), l)?;
    }
    if let Some(p) = allowed.unused() {
        return Err(spec
            .error_at(
                p,
                format!(
                    "allow_secrets pattern `{}` allows nothing: expected a pattern naming a file of this source that the deny-list refuses (drop it if the file is gone)",
                    p.value
                ),
            )
            .into());
    }
    Ok(())
}

/// The walk of one directory source.
struct Walk<'w> {
    spec: &'w LoadedSpec,
    ctx: &'w Context,
    path: &'w Spanned<String>,
    allowed: &'w Allowed<'w>,
    /// The source, relative to the context.
    root: &'w Path,
    /// The source with every symlink resolved.
    real_root: &'w Path,
    dest: &'w str,
    owner: (u32, u32),
    file_mode: &'w dyn Fn(&std::fs::Metadata) -> u32,
}

impl Walk<'_> {
    fn fail(&self, m: String) -> HostError {
        HostError::Other(self.spec.error_at(self.path, m))
    }

    /// Adds the entries of `dir` (on the host), which is `inner` below the
    /// source, in byte order of their names, not following symlinks.
    fn dir(
        &mut self,
        dir: &Path,
        inner: &Path,
        l: &mut LayerEntries<'_>,
    ) -> std::result::Result<(), HostError> {
        let mut names: Vec<OsString> = std::fs::read_dir(dir)
            .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(|e| self.fail(format!("cannot read directory {}: {e}", dir.display())))?;
        names.sort();
        for name in names {
            let full = dir.join(&name);
            let inner_p = inner.join(&name);
            let rel = self.root.join(&inner_p);
            let meta = std::fs::symlink_metadata(&full)
                .map_err(|e| self.fail(format!("cannot read {}: {e}", full.display())))?;
            let ft = meta.file_type();
            let is_dir = ft.is_dir();
            if IGNORE_FILES.iter().any(|f| name == *f) {
                l.exclude(Excluded {
                    path: display_rel(&rel, is_dir),
                    rule: IGNORE_FILE_RULE.into(),
                });
                continue;
            }
            // Ignore rules first: a name that is left out need not be UTF-8.
            if let Some(rule) = self.ctx.excluded(&rel, is_dir).map_err(|m| self.fail(m))? {
                l.exclude(Excluded {
                    path: display_rel(&rel, is_dir),
                    rule,
                });
                continue;
            }
            if name.to_str().is_none() {
                return Err(self.fail(format!(
                    "the name of `{}` is not UTF-8: expected UTF-8 file names in a layer (rename it, or leave it out in .aelimgignore)",
                    display_rel(&rel, false)
                )));
            }
            if let Some(pattern) = self.ctx.secret(&rel, is_dir)
                && !self.allowed.allows(&rel, is_dir)
            {
                return Err(self.fail(secret_message(&display_rel(&rel, is_dir), pattern)));
            }
            let target = format!("{}/{}", self.dest, slashed(&inner_p));
            let (uid, gid) = self.owner;
            let entry = if is_dir {
                Entry {
                    path: target,
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                }
            } else if ft.is_symlink() {
                Entry {
                    path: target,
                    kind: EntryKind::Symlink {
                        target: self.link_target(&full, &inner_p, &rel)?,
                    },
                    mode: 0o777,
                    uid,
                    gid,
                }
            } else if ft.is_file() {
                Entry {
                    path: target,
                    kind: EntryKind::File {
                        source: full.clone(),
                    },
                    mode: (self.file_mode)(&meta),
                    uid,
                    gid,
                }
            } else {
                return Err(self.fail(format!(
                    "`{}` is {}: expected only files, directories and symlinks in a layer",
                    display_rel(&rel, false),
                    special_kind(&ft)
                )));
            };
            l.add(entry).map_err(HostError::Clash)?;
            if is_dir {
                self.dir(&full, &inner_p, l)?;
            }
        }
        Ok(())
    }

    /// The target of the symlink `full` (`inner` below the source, `rel`
    /// in the context), when it stays inside the source: relative, not
    /// climbing above the source by its words, and resolving (through any
    /// other links) to an existing file or directory inside it. Then it
    /// means the same in the image as here.
    fn link_target(
        &self,
        full: &Path,
        inner: &Path,
        rel: &Path,
    ) -> std::result::Result<String, HostError> {
        let shown = display_rel(rel, false);
        let target = std::fs::read_link(full)
            .map_err(|e| self.fail(format!("cannot read link {}: {e}", full.display())))?;
        let Some(text) = target.to_str() else {
            return Err(self.fail(format!(
                "the target of link `{shown}` is not UTF-8 (`{}`): expected UTF-8 names in a layer",
                escape_bytes(target.as_os_str().as_encoded_bytes())
            )));
        };
        let outside = |why: &str| {
            self.fail(format!(
                "link `{shown}` -> `{text}` {why}: expected a relative link to a file or directory inside the source `{}` (copy the file instead of linking it)",
                self.path.value
            ))
        };
        if target.is_absolute() {
            return Err(outside(
                "is absolute (in the image it would name another file)",
            ));
        }
        if !link_stays_inside(inner, &target) {
            return Err(outside("climbs out of the source"));
        }
        match std::fs::canonicalize(full) {
            Ok(r) if r.starts_with(self.real_root) => Ok(text.to_string()),
            Ok(_) => Err(outside("resolves outside the source through another link")),
            Err(_) => Err(outside("points to nothing here (dangling or a loop)")),
        }
    }
}

fn secret_message(path: &str, pattern: &str) -> String {
    format!(
        "`{path}` may hold a secret (built-in deny-list: `{pattern}`): expected it out of the layer: leave it out in .aelimgignore, or name it in this entry's `allow_secrets` if it belongs in the image"
    )
}

/// `a/b` (with `/` at the end for a directory), relative to the context;
/// `.` for the root.
fn display_rel(p: &Path, dir: bool) -> String {
    let s = slashed(p);
    match (s.is_empty(), dir) {
        (true, _) => ".".into(),
        (false, true) => format!("{s}/"),
        (false, false) => s,
    }
}

/// A relative path's components joined with `/`, bytes that are not UTF-8
/// as `\xNN`.
fn slashed(p: &Path) -> String {
    p.components()
        .map(|c| escape_bytes(c.as_os_str().as_encoded_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// What a file that is neither a regular file, a directory nor a symlink
/// is.
fn special_kind(ft: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_char_device() {
            return "a character device";
        }
    }
    if ft.is_symlink() {
        return "a symlink";
    }
    "a special file"
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
