//! The OCI image layout sink: `DIR/<name>/{oci-layout,index.json,blobs/}`.
//!
//! Blobs first, `index.json` atomically last, then garbage collection that
//! never deletes what it cannot account for (see [`crate::layout`]).

use super::{Artifact, Record, Sink};
use crate::error::Result;
use crate::layout::{Collected, Layout};
use crate::progress::Progress;
use std::path::PathBuf;

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

impl Sink for LayoutSink {
    fn write(&mut self, image: &Artifact<'_>, _progress: &dyn Progress) -> Result<Vec<Record>> {
        let root = self.dir.join(image.name);
        let layout = Layout::create(&root)?;
        for digest in crate::layout::reachable(image.store, image.top)? {
            image.store.copy_to(layout.store(), &digest)?;
        }
        let mut desc = image.top.descriptor();
        if let Some(p) = image
            .platform
            .filter(|_| image.top.kind() == crate::oci::Kind::Manifest)
        {
            desc.set_platform(Some(p.to_oci()));
        }
        layout.tag(desc, image.tag)?;
        let mut record = Record::at(
            format!("oci:{}:{}", root.display(), image.tag),
            image.top.digest.clone(),
        );
        if let Collected::Refused(why) = layout.collect_garbage()? {
            record.warnings.push(format!(
                "{}: kept every blob, because the index reaches something aelimg cannot read: {why}",
                root.display()
            ));
        }
        Ok(vec![record])
    }
}
