//! The merged view of an image's layers, as `umoci unpack` or an overlay
//! mount makes it, and what each layer does to it: files added, files
//! overwritten, paths deleted, and bytes wasted.
//!
//! Layer by layer, bottom first: the layer's whiteouts and opaque markers
//! delete from what the layers below made (never from the layer itself),
//! then its entries are laid over it. An entry whose directory goes
//! through a symbolic link lands where the link points (inside the image).
//! An entry whose parent directories are missing gets them, as extraction
//! makes them (mode 0755, root). A
//! directory laid over a directory keeps what is in it; anything else laid
//! over a path replaces it, a directory's contents included.
//!
//! "Wasted" bytes are regular-file bytes a layer ships that a later layer
//! overwrites or deletes: they are pulled and stored, and nobody sees them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::files::{FileInfo, FileType, LayerFiles, parent};

/// What a layer's entry does to the image below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// A path the layers below do not have.
    Added,
    /// A path the layers below have, replaced (for a directory: its
    /// mode or owner changed).
    Overwritten,
    /// A directory the layers below have, laid over with the same mode
    /// and owner.
    Unchanged,
    /// A path deleted (a whiteout).
    Deleted,
    /// A directory whose contents from the layers below are hidden.
    Opaque,
}

/// One row of a layer's listing.
#[derive(Debug, Clone, Serialize)]
pub struct LayerEntry {
    /// What the entry does.
    pub change: Change,
    /// The file (for a deletion: what was deleted, when it existed).
    #[serde(flatten)]
    pub file: FileInfo,
}

/// What one layer does, in numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LayerStats {
    /// Entries in the layer (whiteouts included).
    pub entries: usize,
    /// Paths added.
    pub added: usize,
    /// Paths overwritten (directories only when their mode or owner changed).
    pub overwritten: usize,
    /// Paths deleted from the layers below, each file in a deleted
    /// directory counted.
    pub deleted: usize,
    /// Regular-file bytes the layer holds.
    pub file_bytes: u64,
    /// Of those, the bytes a later layer overwrites or deletes.
    pub wasted: u64,
}

/// A file of the merged view and the layer it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct MergedFile {
    /// The file.
    #[serde(flatten)]
    pub file: FileInfo,
    /// Index of the layer that put it there (0 is the bottom).
    pub layer: usize,
}

/// The merged view and each layer's part in it.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// Every path of the image but `/`, keyed by path.
    pub files: BTreeMap<String, MergedFile>,
    /// Per layer, bottom first: its listing.
    pub layers: Vec<Vec<LayerEntry>>,
    /// Per layer, bottom first: its numbers.
    pub stats: Vec<LayerStats>,
}

impl Merged {
    /// The files in tree order (a directory, then what is in it).
    #[must_use]
    pub fn tree(&self) -> Vec<&MergedFile> {
        let mut v: Vec<&MergedFile> = self.files.values().collect();
        v.sort_by(|a, b| tree_order(&a.file.path, &b.file.path));
        v
    }

    /// Regular-file bytes a later layer overwrites or deletes, in all.
    #[must_use]
    pub fn wasted(&self) -> u64 {
        self.stats.iter().map(|s| s.wasted).sum()
    }

    /// Lays `layer` over the view.
    pub fn push(&mut self, layer: &LayerFiles) {
        let index = self.layers.len();
        let mut rows = Vec::new();
        let mut stats = LayerStats {
            entries: layer.entries.len() + layer.whiteouts.len() + layer.opaque.len(),
            ..LayerStats::default()
        };
        for dir in &layer.opaque {
            let dir = &self.resolve_parent(dir);
            let removed = self.remove_below(dir, false);
            stats.deleted += removed.len();
            let file = self.files.get(dir).map_or_else(
                || implicit_dir(dir),
                |f| FileInfo {
                    path: dir.clone(),
                    ..f.file.clone()
                },
            );
            rows.push(LayerEntry {
                change: Change::Opaque,
                file,
            });
        }
        for path in &layer.whiteouts {
            let path = &self.resolve_parent(path);
            let existed = self.files.get(path).map(|f| f.file.clone());
            let removed = self.remove_below(path, true);
            stats.deleted += removed.len();
            rows.push(LayerEntry {
                change: Change::Deleted,
                file: existed.unwrap_or_else(|| FileInfo {
                    kind: FileType::File,
                    ..implicit_dir(path)
                }),
            });
        }
        for e in &layer.entries {
            let mut file = e.clone();
            file.path = self.resolve_parent(&file.path);
            if file.kind == FileType::Hardlink {
                file.link = file.link.map(|l| self.resolve_parent(&l));
            }
            if file.kind == FileType::Hardlink && file.digest.is_none() {
                // A link to a lower layer's file.
                if let Some(t) = file.link.as_ref().and_then(|l| self.files.get(l)) {
                    file.size = t.file.size;
                    file.digest.clone_from(&t.file.digest);
                }
            }
            if file.kind == FileType::File {
                stats.file_bytes += file.size;
            }
            self.make_parents(&file.path, index);
            let change = match self.files.get(&file.path) {
                None => Change::Added,
                Some(old) if old.file.kind == FileType::Dir && file.kind == FileType::Dir => {
                    if (old.file.mode, old.file.uid, old.file.gid)
                        == (file.mode, file.uid, file.gid)
                    {
                        Change::Unchanged
                    } else {
                        Change::Overwritten
                    }
                }
                Some(_) => {
                    self.remove_below(&file.path, true);
                    Change::Overwritten
                }
            };
            match change {
                Change::Added => stats.added += 1,
                Change::Overwritten => stats.overwritten += 1,
                _ => {}
            }
            self.files.insert(
                file.path.clone(),
                MergedFile {
                    file: file.clone(),
                    layer: index,
                },
            );
            rows.push(LayerEntry { change, file });
        }
        self.layers.push(rows);
        self.stats.push(stats);
    }

    /// `path` with the symbolic links among its parent directories
    /// followed inside the image (never out of it: `..` stops at `/`), as
    /// extraction does (umoci resolves an entry's directory with
    /// securejoin); the last component is left as it is.
    fn resolve_parent(&self, path: &str) -> String {
        let name = path.rsplit('/').next().unwrap_or_default();
        let dir = self.resolve_dir(parent(path), 0);
        if name.is_empty() {
            dir
        } else {
            super::files::join(&dir, name)
        }
    }

    fn resolve_dir(&self, dir: &str, depth: usize) -> String {
        let comps: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
        let mut cur = "/".to_string();
        for (i, c) in comps.iter().enumerate() {
            let next = super::files::join(&cur, c);
            match self.files.get(&next) {
                // Past 40 links (Linux's limit), stop following.
                Some(f) if f.file.kind == FileType::Symlink && depth < 40 => {
                    let target = f.file.link.as_deref().unwrap_or_default();
                    let base = if target.starts_with('/') { "/" } else { &cur };
                    let mut full = clean(&format!("{base}/{target}"));
                    if i + 1 < comps.len() {
                        full = super::files::join(&full, &comps[i + 1..].join("/"));
                    }
                    return self.resolve_dir(&full, depth + 1);
                }
                _ => cur = next,
            }
        }
        cur
    }

    /// Removes what is below `path` (and `path` itself when `itself`),
    /// charging each removed regular file to the layer it came from.
    fn remove_below(&mut self, path: &str, itself: bool) -> Vec<MergedFile> {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let mut keys: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        if itself && self.files.contains_key(path) {
            keys.push(path.to_string());
        }
        let mut removed = Vec::new();
        for k in keys {
            if let Some(f) = self.files.remove(&k) {
                if f.file.kind == FileType::File
                    && let Some(s) = self.stats.get_mut(f.layer)
                {
                    s.wasted += f.file.size;
                }
                removed.push(f);
            }
        }
        removed
    }

    /// Makes the missing parent directories of `path`.
    fn make_parents(&mut self, path: &str, layer: usize) {
        let dir = parent(path);
        if dir == "/" || self.files.contains_key(dir) {
            return;
        }
        self.make_parents(dir, layer);
        self.files.insert(
            dir.to_string(),
            MergedFile {
                file: implicit_dir(dir),
                layer,
            },
        );
    }
}

/// A directory extraction makes for an entry whose parent is missing.
fn implicit_dir(path: &str) -> FileInfo {
    FileInfo {
        path: path.to_string(),
        kind: FileType::Dir,
        size: 0,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
        link: None,
        digest: None,
    }
}

/// `path` with `.`, `..` and empty components resolved lexically, `..`
/// stopping at `/`.
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// Orders paths as a tree lists them: by component, so `/a/b` comes right
/// after `/a`, before `/a-b`.
#[must_use]
pub fn tree_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> FileInfo {
        FileInfo {
            path: path.into(),
            kind: FileType::File,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            link: None,
            digest: Some(crate::digest::Digest::of(path.as_bytes())),
        }
    }

    fn dir(path: &str) -> FileInfo {
        FileInfo {
            kind: FileType::Dir,
            size: 0,
            digest: None,
            mode: 0o755,
            ..file(path, 0)
        }
    }

    #[test]
    fn whiteouts_opaque_dirs_overwrites_and_wasted_bytes() {
        let mut m = Merged::default();
        m.push(&LayerFiles {
            entries: vec![
                dir("/a"),
                file("/a/one", 10),
                file("/a/two", 20),
                dir("/b"),
                file("/b/x", 5),
                file("/c", 7),
            ],
            ..LayerFiles::default()
        });
        m.push(&LayerFiles {
            entries: vec![file("/a/one", 3), file("/d/e/f", 1)],
            whiteouts: vec!["/c".into(), "/nothing".into()],
            opaque: vec!["/b".into()],
            tar_size: 0,
        });
        let paths: Vec<&str> = m.tree().iter().map(|f| f.file.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/a", "/a/one", "/a/two", "/b", "/d", "/d/e", "/d/e/f"]
        );
        assert_eq!(m.files["/a/one"].layer, 1);
        assert_eq!(m.files["/a/one"].file.size, 3);
        assert_eq!(m.stats[0].wasted, 10 + 5 + 7);
        assert_eq!(m.stats[1].wasted, 0);
        assert_eq!(m.wasted(), 22);
        let s = &m.stats[1];
        assert_eq!((s.added, s.overwritten, s.deleted), (1, 1, 2));
        let changes: Vec<Change> = m.layers[1].iter().map(|r| r.change).collect();
        assert_eq!(
            changes,
            [
                Change::Opaque,
                Change::Deleted,
                Change::Deleted,
                Change::Overwritten,
                Change::Added
            ]
        );
        // A file replacing a directory takes its contents with it.
        m.push(&LayerFiles {
            entries: vec![file("/a", 1)],
            ..LayerFiles::default()
        });
        assert!(!m.files.contains_key("/a/two"));
        assert_eq!(m.stats[0].wasted, 22 + 20);
        assert_eq!(m.stats[1].wasted, 3);
    }

    #[test]
    fn paths_through_symlinked_directories_land_where_extraction_puts_them() {
        let link = |path: &str, target: &str| FileInfo {
            kind: FileType::Symlink,
            link: Some(target.into()),
            size: target.len() as u64,
            digest: None,
            mode: 0o777,
            ..file(path, 0)
        };
        let mut m = Merged::default();
        m.push(&LayerFiles {
            entries: vec![
                dir("/usr"),
                dir("/usr/lib"),
                link("/lib", "usr/lib"),
                link("/abs", "/usr"),
                link("/up", "../../usr/lib"),
                link("/loop", "loop"),
            ],
            ..LayerFiles::default()
        });
        m.push(&LayerFiles {
            entries: vec![
                file("/lib/a.so", 1),
                file("/abs/lib/b.so", 2),
                file("/up/c.so", 3),
                file("/loop/x", 4),
                link("/lib", "elsewhere"),
            ],
            ..LayerFiles::default()
        });
        for p in ["/usr/lib/a.so", "/usr/lib/b.so", "/usr/lib/c.so", "/loop/x"] {
            assert!(m.files.contains_key(p), "{p}: {:?}", m.files.keys());
        }
        // The last component is not followed: /lib itself is replaced.
        assert_eq!(m.files["/lib"].file.link.as_deref(), Some("elsewhere"));
        assert_eq!(clean("/a/./b/../../../c"), "/c");
    }

    #[test]
    fn tree_order_puts_children_after_their_directory() {
        let mut v = vec!["/a-b", "/a/b", "/a"];
        v.sort_by(|a, b| tree_order(a, b));
        assert_eq!(v, ["/a", "/a/b", "/a-b"]);
    }
}
