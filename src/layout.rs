//! OCI image layouts on disk (`DIR/{oci-layout,index.json,blobs/}`): the
//! one module that reads and writes `index.json`.
//!
//! Writers add blobs first (each renamed into place complete), replace
//! `index.json` atomically last, and only then collect garbage, so a process
//! killed at any point leaves the previous state or the new one. Garbage
//! collection walks typed documents from `index.json` and refuses to delete
//! anything when it meets a document it cannot read or a media type it does
//! not know (as go-containerregistry's `layout/gc.go` does): other tools'
//! artifacts in the same layout are never lost.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use crate::digest::Digest;
use crate::error::{Error, IoContext, LayoutError, Result};
use crate::fsutil::{self, atomic_write};
use crate::oci::{self, Document, Kind};
use crate::store::BlobStore;

/// The annotation that names a tag in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    store: BlobStore,
}

/// What garbage collection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collected {
    /// These unreferenced blobs were removed.
    Removed(Vec<Digest>),
    /// Nothing was removed, because the index reaches something aelimg
    /// cannot read; the reason says what.
    Refused(String),
}

impl Layout {
    /// Opens an existing layout (one with an `index.json`).
    ///
    /// # Errors
    /// When `root` holds no layout.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.join("index.json").is_file() {
            return Err(LayoutError::NotALayout {
                root: root.to_path_buf(),
                detail: "no index.json".into(),
            }
            .into());
        }
        Ok(Self {
            root: root.to_path_buf(),
            store: BlobStore::open(root)?,
        })
    }

    /// Opens a layout, creating it if `root` is missing or empty.
    ///
    /// # Errors
    /// When `root` exists, is not empty and is not a layout (aelimg never
    /// writes into a directory it did not make).
    pub fn create(root: &Path) -> Result<Self> {
        let layout_file = root.join("oci-layout");
        if root.exists() && !layout_file.exists() {
            let empty = std::fs::read_dir(root)
                .ctx(|| format!("cannot read {}", root.display()))?
                .next()
                .is_none();
            if !empty {
                return Err(LayoutError::NotEmpty(root.to_path_buf()).into());
            }
        }
        let store = BlobStore::open(root)?;
        if !layout_file.exists() {
            atomic_write(&layout_file, OCI_LAYOUT)?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            store,
        })
    }

    /// The layout's directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layout's blobs.
    #[must_use]
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The entries of `index.json` (empty when there is none yet).
    ///
    /// # Errors
    /// When `index.json` cannot be read or is not an image index.
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        let path = self.index_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let index: ImageIndex = oci::parse(&bytes, &path.display(), "image index")
            .map_err(|e| LayoutError::Invalid(e.to_string()))?;
        Ok(index.manifests().clone())
    }

    /// The document an entry names, read and checked against its digest.
    ///
    /// # Errors
    /// When the blob is missing or does not match its digest.
    pub fn read(&self, desc: &Descriptor) -> Result<Document> {
        read_verified(&self.store, desc)
    }

    /// The document tagged `tag` (or the only entry when `tag` is `None`),
    /// with its ref name.
    ///
    /// # Errors
    /// When no entry (or more than one, without a tag) matches.
    pub fn find(&self, tag: Option<&str>) -> Result<(Document, Option<String>)> {
        let entries = self.entries()?;
        let pick = match tag {
            Some(t) => entries.iter().find(|d| ref_name(d) == Some(t)),
            None if entries.len() == 1 => entries.first(),
            None => None,
        };
        let Some(d) = pick else {
            let holds = entries
                .iter()
                .map(|d| ref_name(d).unwrap_or("(untagged)").to_string())
                .collect();
            return Err(LayoutError::NoSuchImage {
                root: self.root.clone(),
                tag: tag.map(str::to_string),
                holds,
            }
            .into());
        };
        Ok((self.read(d)?, ref_name(d).map(str::to_string)))
    }

    /// Names `desc` as `tag`, replacing an entry of the same name and keeping
    /// every other entry; `index.json` is replaced atomically. The blobs
    /// `desc` reaches must already be in the layout.
    ///
    /// # Errors
    /// When the current index cannot be read or the new one cannot be written.
    pub fn tag(&self, mut desc: Descriptor, tag: &str) -> Result<()> {
        let mut manifests = self.entries()?;
        manifests.retain(|d| ref_name(d) != Some(tag));
        let mut annotations = desc.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), tag.to_string());
        desc.set_annotations(Some(annotations));
        manifests.push(desc);
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| LayoutError::Invalid(e.to_string()))?;
        let doc = Document::from_typed(oci::INDEX, &index).map_err(|e| Error::Json {
            context: "index.json".into(),
            source: e,
        })?;
        atomic_write(&self.index_path(), &doc.bytes)
    }

    /// Every blob the index reaches, or why that cannot be known.
    fn live(&self) -> Result<std::result::Result<BTreeSet<Digest>, String>> {
        let roots = self.entries()?;
        Ok(walk(&self.store, roots))
    }

    /// Removes blobs that no entry of the index reaches — unless the index
    /// reaches a document aelimg cannot read, then nothing.
    ///
    /// # Errors
    /// When the index or the blob directory cannot be read, or a removal fails.
    pub fn collect_garbage(&self) -> Result<Collected> {
        let live = match self.live()? {
            Ok(l) => l,
            Err(why) => return Ok(Collected::Refused(why)),
        };
        let mut removed = Vec::new();
        for digest in self.store.list()? {
            if !live.contains(&digest) {
                self.store.remove(&digest)?;
                removed.push(digest);
            }
        }
        fsutil::sync_dir(&self.store.blob_dir());
        Ok(Collected::Removed(removed))
    }
}

/// The document `desc` names in `store`, checked against its digest.
fn read_verified(store: &BlobStore, desc: &Descriptor) -> Result<Document> {
    let digest = Digest::from_oci(desc.digest())?;
    let bytes = store.read(&digest)?;
    if Digest::of(&bytes) != digest {
        return Err(LayoutError::Corrupt {
            root: store.root().to_path_buf(),
            digest,
        }
        .into());
    }
    Ok(Document {
        media_type: desc.media_type().to_string(),
        bytes,
        digest,
    })
}

/// Every blob reachable from `roots` through typed documents in `store`, or
/// why that cannot be known (a media type aelimg does not know, a document
/// missing or unreadable).
fn walk(
    store: &BlobStore,
    roots: Vec<Descriptor>,
) -> std::result::Result<BTreeSet<Digest>, String> {
    let mut live = BTreeSet::new();
    let mut todo = roots;
    while let Some(desc) = todo.pop() {
        let digest = Digest::from_oci(desc.digest()).map_err(|e| e.to_string())?;
        if !live.insert(digest.clone()) {
            continue;
        }
        let media = desc.media_type().to_string();
        let kind = Kind::of(&media);
        if kind == Kind::Unknown {
            return Err(format!("{digest} has media type {media}"));
        }
        let doc =
            read_verified(store, &desc).map_err(|e| format!("{digest} cannot be read ({e})"))?;
        match kind {
            Kind::Index => todo.extend(
                doc.index()
                    .map_err(|e| e.to_string())?
                    .manifests()
                    .iter()
                    .cloned(),
            ),
            Kind::Manifest => {
                let m = doc.manifest().map_err(|e| e.to_string())?;
                // Config and layers are leaves: their blobs live, their media
                // types need no understanding.
                for d in std::iter::once(m.config()).chain(m.layers()) {
                    live.insert(Digest::from_oci(d.digest()).map_err(|e| e.to_string())?);
                }
            }
            Kind::Unknown => unreachable!("refused above"),
        }
    }
    Ok(live)
}

/// Every blob an image needs, `top` included, as found in `store`.
///
/// # Errors
/// When `top` reaches a document that is missing, unreadable or of a media
/// type aelimg does not know.
pub fn reachable(store: &BlobStore, top: &Document) -> Result<Vec<Digest>> {
    walk(store, vec![top.descriptor()])
        .map(|s| s.into_iter().collect())
        .map_err(|why| LayoutError::Invalid(format!("{}: {why}", store.root().display())).into())
}

/// The tag an index entry carries, if any.
#[must_use]
pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a: &HashMap<String, String>| a.get(REF_NAME))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(l: &Layout, media: &str, bytes: &[u8]) -> Descriptor {
        let doc = Document::from_bytes(media, bytes.to_vec());
        l.store.put_bytes(&doc.bytes, &doc.digest).unwrap();
        doc.descriptor()
    }

    #[test]
    fn tags_replace_and_keep_others_and_gc_removes_only_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(&dir.path().join("x")).unwrap();
        let layer = put(&l, "application/vnd.oci.image.layer.v1.tar", b"layer");
        let config = put(&l, oci::CONFIG, b"{}");
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": oci::MANIFEST,
            "config": serde_json::to_value(&config).unwrap(),
            "layers": [serde_json::to_value(&layer).unwrap()],
        });
        let m = put(&l, oci::MANIFEST, &oci::canonical_json(&manifest));
        let orphan = put(&l, "application/octet-stream", b"orphan");
        l.tag(m.clone(), "a").unwrap();
        l.tag(m.clone(), "b").unwrap();
        l.tag(m.clone(), "a").unwrap();
        let tags: Vec<_> = l
            .entries()
            .unwrap()
            .iter()
            .map(|d| ref_name(d).unwrap().to_string())
            .collect();
        assert_eq!(tags, ["b", "a"]);
        let removed = l.collect_garbage().unwrap();
        assert_eq!(
            removed,
            Collected::Removed(vec![Digest::from_oci(orphan.digest()).unwrap()])
        );
        assert_eq!(l.store.list().unwrap().len(), 3);
        let (doc, name) = l.find(Some("b")).unwrap();
        assert_eq!((doc.kind(), name.as_deref()), (Kind::Manifest, Some("b")));
    }

    #[test]
    fn gc_refuses_when_it_meets_an_unknown_media_type_or_an_unreadable_document() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(&dir.path().join("x")).unwrap();
        let art = put(&l, "application/vnd.acme.thing.v1+json", b"{\"x\":1}");
        let orphan = put(&l, "application/octet-stream", b"orphan");
        l.tag(art, "thing").unwrap();
        assert!(
            matches!(l.collect_garbage().unwrap(), Collected::Refused(w) if w.contains("vnd.acme.thing"))
        );
        assert!(l.store.has(&Digest::from_oci(orphan.digest()).unwrap()));

        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(&dir.path().join("y")).unwrap();
        let bad = put(&l, oci::MANIFEST, b"not json");
        let orphan = put(&l, "application/octet-stream", b"orphan");
        l.tag(bad, "bad").unwrap();
        assert!(matches!(
            l.collect_garbage().unwrap(),
            Collected::Refused(_)
        ));
        assert!(l.store.has(&Digest::from_oci(orphan.digest()).unwrap()));
    }

    #[test]
    fn refuses_a_directory_that_is_not_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious.txt"), b"x").unwrap();
        let e = Layout::create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not an OCI layout"), "{e}");
        assert!(Layout::open(dir.path()).is_err());
    }
}
