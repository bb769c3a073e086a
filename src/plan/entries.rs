//! The entries of one layer as they are collected: parent directories
//! added, each path once.

use std::collections::BTreeMap;

use super::model::{Entry, EntryKind, LayerPlan};

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
}

impl<'a> LayerEntries<'a> {
    pub(super) fn new(dirs: &'a BTreeMap<String, DirAttrs>) -> Self {
        Self {
            dirs,
            entries: BTreeMap::new(),
        }
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
            }
        }
    }

    /// Adds an entry; `Err` carries the clashing path.
    pub(super) fn add(&mut self, e: Entry) -> std::result::Result<(), String> {
        self.add_parents(&e.path);
        match self.entries.get(&e.path) {
            Some(old) if old.kind == EntryKind::Dir && e.kind == EntryKind::Dir => {
                // An explicit directory wins over an implied parent.
                self.entries.insert(e.path.clone(), e);
                Ok(())
            }
            Some(_) => Err(e.path),
            None => {
                self.entries.insert(e.path.clone(), e);
                Ok(())
            }
        }
    }

    pub(super) fn finish(self, name: String) -> LayerPlan {
        LayerPlan {
            name,
            entries: self.entries.into_values().collect(),
        }
    }
}
