//! The OCI image layout sink: `DIR/<name>/{oci-layout,index.json,blobs/}`.
//!
//! Blobs are added first (each renamed into place complete), `index.json` is
//! replaced atomically last, and only then are blobs that nothing references
//! any more removed. A build killed at any point leaves the previous image or
//! the new one, never a layout whose index names a missing blob.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Sink;
use crate::build::BuiltImage;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::atomic_write;
use crate::image::canonical_json;
use crate::store::BlobStore;

/// The annotation that names a tag in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

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
    fn write(&mut self, store: &BlobStore, image: &BuiltImage) -> Result<String> {
        let root = self.dir.join(&image.name);
        write_layout(&root, store, image)?;
        Ok(format!("oci:{}:{}", root.display(), image.tag))
    }
}

fn write_layout(root: &Path, store: &BlobStore, image: &BuiltImage) -> Result<()> {
    let layout_file = root.join("oci-layout");
    if root.exists() && !layout_file.exists() {
        let empty = std::fs::read_dir(root)
            .ctx(|| format!("cannot read {}", root.display()))?
            .next()
            .is_none();
        if !empty {
            return Err(Error::Layout(format!(
                "{} exists and is not an OCI layout: refusing to write into it",
                root.display()
            )));
        }
    }
    let dest = BlobStore::open(root)?;
    for digest in image.blobs() {
        store.copy_to(&dest, &digest)?;
    }
    if !layout_file.exists() {
        atomic_write(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let index_path = root.join("index.json");
    let mut manifests: Vec<Value> = match std::fs::read(&index_path) {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Layout(format!("{} is not valid JSON: {e}", index_path.display()))
            })?;
            v.get("manifests")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
    manifests.retain(|m| {
        m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
            != Some(&json!(image.tag))
    });
    let top = image.top();
    let mut desc = json!({
        "mediaType": top.media_type,
        "digest": top.digest,
        "size": top.bytes.len(),
        "annotations": { REF_NAME: image.tag },
    });
    if image.index.is_none() {
        let p = image.platforms[0].platform;
        let mut plat = json!({"os": p.os(), "architecture": p.architecture()});
        if let Some(v) = p.variant() {
            plat["variant"] = json!(v);
        }
        desc["platform"] = plat;
    }
    manifests.push(desc);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    atomic_write(&index_path, &canonical_json(&index))?;
    collect_garbage(&dest, &index)
}

/// Removes blobs that no entry of the index reaches.
fn collect_garbage(store: &BlobStore, index: &Value) -> Result<()> {
    let mut live = BTreeSet::new();
    let mut todo: Vec<Value> = index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    while let Some(desc) = todo.pop() {
        let Some(digest) = desc.get("digest").and_then(Value::as_str) else {
            continue;
        };
        if !live.insert(digest.to_string()) {
            continue;
        }
        let media = desc.get("mediaType").and_then(Value::as_str).unwrap_or("");
        if media.contains("manifest") || media.contains("index") {
            let Ok(bytes) = store.read(digest) else {
                continue;
            };
            let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            for key in ["manifests", "layers"] {
                if let Some(items) = doc.get(key).and_then(Value::as_array) {
                    todo.extend(items.iter().cloned());
                }
            }
            if let Some(c) = doc.get("config") {
                todo.push(c.clone());
            }
        }
    }
    for digest in store.list()? {
        if !live.contains(&digest) {
            store.remove(&digest)?;
        }
    }
    Ok(())
}
