//! The OCI image layout sink: `DIR/<name>/{oci-layout,index.json,blobs/}`.
//!
//! A build's images are written all or nothing, each layout under its
//! exclusive lock (see [`crate::layout`] and
//! docs/decisions/0014-layout-locking-and-crash-safety.md):
//!
//! 1. lock every layout, in the order of their paths (so two builds that
//!    write the same layouts never wait for each other in a cycle), and read
//!    each `index.json`;
//! 2. add the blobs each image reaches (each renamed into place complete),
//!    then sync the blob directories;
//! 3. replace each `index.json` atomically, the entry of each image's tag
//!    replaced and every other entry kept; the image's referrers (SBOMs)
//!    listed untagged beside it, and referrers of manifests no tag reaches
//!    any more dropped;
//! 4. collect garbage, unlock.
//!
//! When anything fails before the last `index.json` is replaced, what was
//! done is undone (blobs added removed, indexes put back, directories made
//! removed), so a failed build leaves every layout as it was. A process
//! killed at any point leaves each layout old or new: the blobs a new index
//! needs are in place and synced before it is renamed in, and nothing the
//! old one reaches is removed before that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;

use super::{Artifact, Record, Sink};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::{
    Collected, Layout, LayoutLock, drop_orphan_referrers, with_referrer, with_tag,
};
use crate::plan::Plan;
use crate::progress::Progress;

/// Writes each image to its own OCI layout below a directory.
pub struct LayoutSink {
    dir: PathBuf,
}

impl LayoutSink {
    /// A sink writing below `dir`.
    #[must_use]
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

/// One layout being written: its lock, and what was done to it so far (to
/// undo it if the write fails).
struct Txn<'i, 'a> {
    lock: LayoutLock,
    images: Vec<&'i Artifact<'a>>,
    layout: Option<Layout>,
    old_index: Option<Vec<u8>>,
    had_oci_layout: bool,
    manifests: Vec<Descriptor>,
    added: Vec<Digest>,
    index_written: bool,
}

impl Txn<'_, '_> {
    /// Puts the layout back as it was before this write, then unlocks it.
    fn undo(self) {
        if let Some(layout) = &self.layout {
            if self.index_written {
                let _ = layout.restore_index(self.old_index.as_deref());
            }
            for d in &self.added {
                let _ = layout.store().remove(d);
            }
            let _ = layout.store().remove_temporaries();
            if !self.had_oci_layout {
                let _ = std::fs::remove_file(layout.root().join("oci-layout"));
            }
            layout.store().sync();
        }
        self.lock.undo();
    }
}

/// The key two processes sort layouts by before locking them, so they lock
/// in the same order whatever path each was given.
fn lock_order(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| {
        let parent = crate::fsutil::parent(root);
        match (std::fs::canonicalize(parent), root.file_name()) {
            (Ok(p), Some(n)) => p.join(n),
            _ => root.to_path_buf(),
        }
    })
}

impl LayoutSink {
    /// Steps 1 to 3 of the module's protocol, recording in `txns` what was
    /// done so far.
    fn stage_and_commit<'i, 'a>(
        &self,
        images: &'i [Artifact<'a>],
        txns: &mut Vec<Txn<'i, 'a>>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut by_root: BTreeMap<PathBuf, (PathBuf, Vec<&'i Artifact<'a>>)> = BTreeMap::new();
        for image in images {
            let root = self.dir.join(image.name);
            by_root
                .entry(lock_order(&root))
                .or_insert_with(|| (root, Vec::new()))
                .1
                .push(image);
        }
        // 1. Lock, check and read every layout. Nothing is written yet but
        // the lock file, and the directory, `oci-layout` and `blobs/` of a
        // new layout.
        for (root, imgs) in by_root.into_values() {
            let lock = LayoutLock::exclusive(&root, progress)?;
            txns.push(Txn {
                lock,
                images: imgs,
                layout: None,
                old_index: None,
                had_oci_layout: root.join("oci-layout").exists(),
                manifests: Vec::new(),
                added: Vec::new(),
                index_written: false,
            });
            let txn = txns.last_mut().expect("just pushed");
            Layout::check_writable(&root)?;
            let layout = Layout::create(&root)?;
            txn.old_index = layout.index_bytes()?;
            txn.manifests = layout.entries()?;
            txn.layout = Some(layout);
        }
        // 2. Blobs, synced before any index names them.
        for txn in txns.iter_mut() {
            let layout = txn.layout.as_ref().expect("opened in step 1");
            for image in &txn.images {
                for digest in crate::layout::reachable(image.store, image.top)? {
                    if image.store.copy_to(layout.store(), &digest)? {
                        txn.added.push(digest);
                    }
                }
                let mut desc = image.top.descriptor();
                if let Some(p) = image
                    .platform
                    .filter(|_| image.top.kind() == crate::oci::Kind::Manifest)
                {
                    desc.set_platform(Some(p.to_oci()));
                }
                with_tag(&mut txn.manifests, desc, image.tag);
                for r in image.referrers {
                    for digest in crate::layout::reachable(image.store, &r.manifest)? {
                        if image.store.copy_to(layout.store(), &digest)? {
                            txn.added.push(digest);
                        }
                    }
                    with_referrer(&mut txn.manifests, r.descriptor());
                }
            }
            drop_orphan_referrers(layout.store(), &mut txn.manifests);
            layout.store().sync();
        }
        // 3. Each index.json, atomically.
        for txn in txns.iter_mut() {
            let layout = txn.layout.as_ref().expect("opened in step 1");
            txn.index_written = true;
            layout.write_index(std::mem::take(&mut txn.manifests))?;
        }
        Ok(())
    }
}

impl Sink for LayoutSink {
    fn check(&self, plan: &Plan) -> Result<()> {
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(Error::Request(format!(
                "--output oci:{}: not a directory",
                self.dir.display()
            )));
        }
        for image in &plan.images {
            Layout::check_writable(&self.dir.join(&image.name))?;
        }
        Ok(())
    }

    fn write(&mut self, image: &Artifact<'_>, progress: &dyn Progress) -> Result<Vec<Record>> {
        self.write_all(std::slice::from_ref(image), progress)
    }

    fn write_all(
        &mut self,
        images: &[Artifact<'_>],
        progress: &dyn Progress,
    ) -> Result<Vec<Record>> {
        let dir_existed = self.dir.is_dir();
        let mut txns = Vec::new();
        if let Err(e) = self.stage_and_commit(images, &mut txns, progress) {
            for txn in txns.into_iter().rev() {
                txn.undo();
            }
            if !dir_existed {
                let _ = std::fs::remove_dir(&self.dir);
            }
            return Err(e);
        }
        // 4. Every index is in place: garbage collection, then unlock. A
        // collection that fails loses nothing (the blobs stay), so it warns.
        let mut warnings: BTreeMap<PathBuf, String> = BTreeMap::new();
        for txn in txns {
            let layout = txn.layout.as_ref().expect("opened in step 1");
            let root = layout.root();
            let warning = match layout.collect_garbage() {
                Ok(Collected::Removed(_)) => continue,
                Ok(Collected::Refused(why)) => format!(
                    "{}: kept every blob, because the index reaches something aelimg cannot read: {why}",
                    root.display()
                ),
                Err(e) => format!(
                    "{}: kept unreferenced blobs, because garbage collection failed: {e}",
                    root.display()
                ),
            };
            warnings.insert(root.to_path_buf(), warning);
        }
        let mut records = Vec::new();
        for image in images {
            let root = self.dir.join(image.name);
            let mut record = Record::at(
                format!("oci:{}:{}", root.display(), image.tag),
                image.top.digest.clone(),
            );
            record.warnings.extend(warnings.remove(&root));
            records.push(record);
        }
        Ok(records)
    }
}
