//! The entries of one layer as they are collected: parent directories
//! added, each path once.

use std::collections::BTreeMap;

use super::model::{Entry, EntryKind, Excluded, LayerPlan};

/// Attributes of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DirAttrs {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

pub(super) const ROOT_DIR: DirAttrs = DirAttrs {
    mode: 0o755,
    uid: 0,
    gid: 0,
};

pub(super) fn dir_entry(
    path: &str,
    dirs: &BTreeMap<String, DirAttrs>,
    fallback: DirAttrs,
) -> Entry {
    let a = dirs.get(path).copied().unwrap_or(fallback);
    Entry {
        path: path.to_string(),
        kind: EntryKind::Dir,
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
    }
}

/// Collects entries of one layer, adding parent directories and refusing clashes.
pub(super) struct LayerEntries<'a> {
    pub(super) dirs: &'a BTreeMap<String, DirAttrs>,
    entries: BTreeMap<String, Entry>,
    /// The content entry (index in the layer) that put each path here,
    /// itself or as a parent directory.
    origin: BTreeMap<String, usize>,
    /// The content entry being added.
    current: usize,
    excluded: Vec<Excluded>,
}

/// What the lower layers of an image hold: path → (layer name, what it
/// is there), the highest layer's.
#[derive(Debug, Default)]
pub(super) struct Lower(BTreeMap<String, (String, &'static str)>);

impl Lower {
    /// Adds a layer above those recorded.
    pub(super) fn record(&mut self, layer: &LayerPlan) {
        for e in &layer.entries {
            self.0
                .insert(e.path.clone(), (layer.name.clone(), what(&e.kind)));
        }
    }
}

/// `a directory`, `a symlink` or `a file`.
pub(super) fn what(kind: &EntryKind) -> &'static str {
    match kind {
        EntryKind::Dir => "a directory",
        EntryKind::Symlink { .. } => "a symlink",
        _ => "a file",
    }
}

const DIR: &str = "a directory";

/// A path of a layer that a lower layer of the image holds too.
pub(super) struct Replaced<'l> {
    /// The path.
    pub(super) path: &'l str,
    /// What it is in this layer.
    pub(super) what: &'static str,
    /// The content entry of this layer that put it here.
    pub(super) origin: usize,
    /// The lower layer's name.
    pub(super) lower: &'l str,
    /// What it is there.
    pub(super) lower_what: &'static str,
}

impl<'a> LayerEntries<'a> {
    pub(super) fn new(dirs: &'a BTreeMap<String, DirAttrs>) -> Self {
        Self {
            dirs,
            entries: BTreeMap::new(),
            origin: BTreeMap::new(),
            current: 0,
            excluded: Vec::new(),
        }
    }

    /// Entries added from now on come from content entry `i` of the layer.
    pub(super) fn content(&mut self, i: usize) {
        self.current = i;
    }

    /// Records a path an ignore rule left out.
    pub(super) fn exclude(&mut self, e: Excluded) {
        if !self.excluded.contains(&e) {
            self.excluded.push(e);
        }
    }

    /// The paths of this layer that replace what `lower` holds: every path
    /// both hold, but a directory over a directory (which only merges).
    pub(super) fn replacing<'l>(&'l self, lower: &'l Lower) -> Vec<Replaced<'l>> {
        let mut out = Vec::new();
        for (path, e) in &self.entries {
            let what = what(&e.kind);
            if let Some((name, lower_what)) = lower.0.get(path)
                && !(what == DIR && *lower_what == DIR)
            {
                out.push(Replaced {
                    path,
                    what,
                    origin: self.origin.get(path).copied().unwrap_or(0),
                    lower: name,
                    lower_what,
                });
            }
        }
        out
    }

    /// Makes every file that is another name of a file earlier in the layer
    /// (a hard link on the build host: same device and inode) with the same
    /// mode and owner a hard-link entry to the first name, so its data is
    /// stored once.
    ///
    /// # Errors
    /// When a file cannot be read (its message).
    pub(super) fn link_hard_links(&mut self) -> std::result::Result<(), String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let mut first: BTreeMap<(u64, u64, u32, u32, u32), String> = BTreeMap::new();
            for e in self.entries.values_mut() {
                let EntryKind::File { source } = &e.kind else {
                    continue;
                };
                let m = std::fs::metadata(source)
                    .map_err(|err| format!("cannot read {}: {err}", source.display()))?;
                if m.nlink() < 2 {
                    continue;
                }
                let key = (m.dev(), m.ino(), e.mode, e.uid, e.gid);
                match first.get(&key) {
                    Some(target) => {
                        e.kind = EntryKind::HardLink {
                            target: target.clone(),
                        };
                    }
                    None => {
                        first.insert(key, e.path.clone());
                    }
                }
            }
        }
        Ok(())
    }

    fn add_parents(&mut self, path: &str) {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            if !self.entries.contains_key(&acc) {
                self.entries
                    .insert(acc.clone(), dir_entry(&acc, self.dirs, ROOT_DIR));
                self.origin.insert(acc.clone(), self.current);
            }
        }
    }

    /// Adds an entry; `Err` carries the clashing path.
    pub(super) fn add(&mut self, e: Entry) -> std::result::Result<(), String> {
        self.add_parents(&e.path);
        match self.entries.get(&e.path) {
            Some(old) if old.kind == EntryKind::Dir && e.kind == EntryKind::Dir => {
                // An explicit directory wins over an implied parent.
                self.origin.insert(e.path.clone(), self.current);
                self.entries.insert(e.path.clone(), e);
                Ok(())
            }
            Some(_) => Err(e.path),
            None => {
                self.origin.insert(e.path.clone(), self.current);
                self.entries.insert(e.path.clone(), e);
                Ok(())
            }
        }
    }

    pub(super) fn finish(self, name: String) -> LayerPlan {
        LayerPlan {
            name,
            entries: self.entries.into_values().collect(),
            excluded: self.excluded,
        }
    }
}
