//! OCI image layouts on disk (`DIR/{oci-layout,index.json,blobs/}`): the
//! one module that reads and writes `index.json`, and the one that locks a
//! layout.
//!
//! Writers hold the layout's exclusive lock ([`LayoutLock`], an advisory
//! `flock(2)` on `DIR/.aelimg.lock`) from before they read `index.json`
//! until after garbage collection; readers that must see the blobs stay
//! (`aelimg push`) hold it shared. Under the lock a writer adds blobs first
//! (each renamed into place complete, then the blob directory synced),
//! replaces `index.json` atomically (temporary file, fsync, rename, fsync of
//! the directory) and only then collects garbage, so a process killed at
//! any point leaves the previous state or the new one, and concurrent
//! writers never lose each other's tags. Garbage collection walks typed
//! documents from `index.json` and refuses to delete anything when it meets
//! a document it cannot read or a media type it does not know (as
//! go-containerregistry's `layout/gc.go` does): other tools' artifacts in
//! the same layout are never lost. See
//! docs/decisions/0014-layout-locking-and-crash-safety.md.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use crate::digest::Digest;
use crate::error::{Error, IoContext, LayoutError, Result};
use crate::fsutil::{self, atomic_write};
use crate::oci::{self, Document, Kind};
use crate::progress::{Event, Progress};
use crate::store::{BlobStore, TEMP_PREFIX};

/// The annotation that names a tag in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The lock file inside a layout. skopeo, umoci and oci-image-tool ignore
/// it (and `umoci gc` keeps it); it is never removed once a layout holds
/// an image.
pub const LOCK_FILE: &str = ".aelimg.lock";

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// How many times taking a lock starts over because the lock file was
/// removed or replaced meanwhile (a failed first write of the layout
/// removes what it made) before giving up.
const LOCK_ATTEMPTS: usize = 100;

/// An advisory lock on a layout: `flock(2)` on its [`LOCK_FILE`], held
/// until dropped (and released by the kernel when the process dies, even by
/// `kill -9`). Exclusive for writers (`aelimg build`, `aelimg pull`), shared
/// for readers that need the blobs to stay (`aelimg push`).
///
/// Taking it reports [`Event::LockWaiting`] when another process holds it,
/// then blocks until it is free. After locking, the lock file is checked to
/// be still the one at the path (same device and inode): a writer whose
/// first write of a layout failed removes the directory it made, lock file
/// included, and whoever was waiting on that file starts over.
#[derive(Debug)]
pub struct LayoutLock {
    file: File,
    root: PathBuf,
    created_dir: bool,
    created_file: bool,
}

impl LayoutLock {
    /// Takes the exclusive lock of the layout `root`, making `root` (and
    /// the lock file) when missing.
    ///
    /// # Errors
    /// When the directory or the lock file cannot be made or locked.
    pub fn exclusive(root: &Path, progress: &dyn Progress) -> Result<Self> {
        let path = root.join(LOCK_FILE);
        let mut created_dir = false;
        for _ in 0..LOCK_ATTEMPTS {
            let parent = fsutil::parent(root);
            fs::create_dir_all(parent).ctx(|| format!("cannot create {}", parent.display()))?;
            match fs::create_dir(root) {
                Ok(()) => created_dir = true,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                // The parent was removed meanwhile (a failed write removing
                // the output directory it made, empty): make it again.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("cannot create {}", root.display()), e)),
            }
            let rw = || OpenOptions::new().read(true).write(true).clone();
            let (file, created_file) = match rw().create_new(true).open(&path) {
                Ok(f) => (f, true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => match rw().open(&path) {
                    Ok(f) => (f, false),
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(lock_error(&path, e)),
                },
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(lock_error(&path, e)),
            };
            wait_for(&file, root, &path, false, progress)?;
            if still_at(&file, &path) {
                return Ok(Self {
                    file,
                    root: root.to_path_buf(),
                    created_dir,
                    created_file,
                });
            }
        }
        Err(gave_up(&path))
    }

    /// Takes the shared lock of the layout `root`, making its lock file
    /// when missing. `None` when there is nothing to lock: `root` is not a
    /// directory, or it holds no lock file and none can be made (a
    /// read-only layout no aelimg writes to).
    ///
    /// # Errors
    /// When the lock file exists and cannot be locked.
    pub fn shared(root: &Path, progress: &dyn Progress) -> Result<Option<Self>> {
        let path = root.join(LOCK_FILE);
        for _ in 0..LOCK_ATTEMPTS {
            if !root.is_dir() {
                return Ok(None);
            }
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(_) => match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(lock_error(&path, e)),
                },
            };
            wait_for(&file, root, &path, true, progress)?;
            if still_at(&file, &path) {
                return Ok(Some(Self {
                    file,
                    root: root.to_path_buf(),
                    created_dir: false,
                    created_file: false,
                }));
            }
        }
        Err(gave_up(&path))
    }

    /// The layout's directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether taking this lock made the layout's directory.
    #[must_use]
    pub fn created_dir(&self) -> bool {
        self.created_dir
    }

    /// Undoes what taking the lock made, then releases it: removes the
    /// directory when the lock made it (with whatever the holder wrote in
    /// it), else the lock file when the lock made that. For a write that
    /// failed, so the output is left as it was. Best effort.
    pub fn undo(self) {
        if self.created_dir {
            let _ = fs::remove_dir_all(&self.root);
            fsutil::sync_dir(fsutil::parent(&self.root));
        } else if self.created_file {
            let _ = fs::remove_file(self.root.join(LOCK_FILE));
            fsutil::sync_dir(&self.root);
        }
        drop(self.file);
    }
}

fn lock_error(path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("cannot open the lock file {}", path.display()), e)
}

fn gave_up(path: &Path) -> Error {
    Error::io(
        format!("cannot lock {}", path.display()),
        std::io::Error::other(format!(
            "it was removed or replaced {LOCK_ATTEMPTS} times while aelimg waited for it"
        )),
    )
}

/// Locks `file`, telling `progress` when that means waiting for another
/// process.
fn wait_for(
    file: &File,
    root: &Path,
    path: &Path,
    shared: bool,
    progress: &dyn Progress,
) -> Result<()> {
    let attempt = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match attempt {
        Ok(()) => return Ok(()),
        Err(fs::TryLockError::WouldBlock) => {}
        Err(fs::TryLockError::Error(e)) => {
            return Err(Error::io(format!("cannot lock {}", path.display()), e));
        }
    }
    progress.event(&Event::LockWaiting {
        layout: root,
        lock_file: path,
        shared,
    });
    let start = Instant::now();
    if shared {
        file.lock_shared()
    } else {
        file.lock()
    }
    .ctx(|| format!("cannot lock {}", path.display()))?;
    progress.event(&Event::LockAcquired {
        layout: root,
        waited: start.elapsed(),
    });
    Ok(())
}

/// Whether the open `file` is still the file at `path`.
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// Whether `root` (a directory without `oci-layout`) holds only what an
/// interrupted aelimg leaves while it makes a layout: its lock file,
/// temporary files, and `blobs/` next to the lock file.
fn only_aelimg_files(root: &Path) -> Result<bool> {
    let has_lock = root.join(LOCK_FILE).is_file();
    for e in fs::read_dir(root).ctx(|| format!("cannot read {}", root.display()))? {
        let e = e.ctx(|| format!("cannot read {}", root.display()))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name == LOCK_FILE
            || name.starts_with(TEMP_PREFIX)
            || (name == "blobs" && has_lock && e.path().is_dir());
        if !ours {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The entries of the `index.json` at `path` (empty when there is none).
fn read_entries(path: &Path) -> Result<Vec<Descriptor>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    let index: ImageIndex = oci::parse(&bytes, &path.display(), "image index").map_err(|e| {
        LayoutError::Invalid(format!(
            "{e}: repair or remove it (aelimg leaves a layout it cannot read untouched)"
        ))
    })?;
    Ok(index.manifests().clone())
}

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

    /// Opens a layout, creating it if `root` is missing, empty, or holds
    /// only what an interrupted aelimg left there (its lock file, temporary
    /// files, `blobs/`). The caller holds the layout's exclusive lock.
    ///
    /// # Errors
    /// When `root` exists, is not empty and is not a layout (aelimg never
    /// writes into a directory it did not make).
    pub fn create(root: &Path) -> Result<Self> {
        let layout_file = root.join("oci-layout");
        if root.exists() && !layout_file.exists() && !only_aelimg_files(root)? {
            return Err(LayoutError::NotEmpty(root.to_path_buf()).into());
        }
        if !layout_file.exists() {
            atomic_write(&layout_file, OCI_LAYOUT)?;
        }
        let store = BlobStore::open(root)?;
        Ok(Self {
            root: root.to_path_buf(),
            store,
        })
    }

    /// Checks, changing nothing, that a build may write into `root`: it is
    /// missing, or a directory aelimg may make a layout in (see
    /// [`Layout::create`]), whose `index.json`, if any, is a readable image
    /// index and whose lock file, if any, can be opened. Run before the
    /// build, so a layout aelimg would refuse fails the command before
    /// anything is built or written.
    ///
    /// # Errors
    /// When it may not.
    pub fn check_writable(root: &Path) -> Result<()> {
        let meta = match fs::metadata(root) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("cannot read {}", root.display()), e)),
        };
        if !meta.is_dir()
            || !(root.join("oci-layout").exists()
                || root.join("index.json").exists()
                || only_aelimg_files(root)?)
        {
            return Err(LayoutError::NotEmpty(root.to_path_buf()).into());
        }
        read_entries(&root.join("index.json"))?;
        let lock = root.join(LOCK_FILE);
        if lock.exists() {
            File::open(&lock).map_err(|e| lock_error(&lock, e))?;
        }
        Ok(())
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
        read_entries(&self.index_path())
    }

    /// The bytes of `index.json`, `None` when there is none.
    ///
    /// # Errors
    /// When it exists and cannot be read.
    pub fn index_bytes(&self) -> Result<Option<Vec<u8>>> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
        }
    }

    /// Puts `index.json` back as it was (`None`: removes it), atomically.
    ///
    /// # Errors
    /// When it cannot be written or removed.
    pub fn restore_index(&self, bytes: Option<&[u8]>) -> Result<()> {
        let path = self.index_path();
        match bytes {
            Some(b) => atomic_write(&path, b),
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    Err(Error::io(format!("cannot remove {}", path.display()), e))
                }
                _ => {
                    fsutil::sync_dir(&self.root);
                    Ok(())
                }
            },
        }
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
        let mut entries = self.entries()?;
        // Referrers (SBOMs) listed beside the images are not images.
        entries.retain(|d| !is_referrer(d));
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

    /// The artifacts listed in the index whose subject is `top` or one of
    /// its platform manifests (the SBOMs a build attached), in index order.
    ///
    /// # Errors
    /// When the index or a listed document cannot be read.
    pub fn referrers_of(&self, top: &Document) -> Result<Vec<crate::oci::Referrer>> {
        let mut subjects = vec![top.digest.clone()];
        if top.kind() == Kind::Index {
            for d in top.index()?.manifests() {
                subjects.push(Digest::from_oci(d.digest())?);
            }
        }
        let mut out = Vec::new();
        for d in self.entries()?.into_iter().filter(is_referrer) {
            let doc = self.read(&d)?;
            let Some(subject) = doc.manifest()?.subject().clone() else {
                continue;
            };
            let subject = Digest::from_oci(subject.digest())?;
            if subjects.contains(&subject) {
                out.push(crate::oci::Referrer {
                    artifact_type: d
                        .artifact_type()
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    manifest: doc,
                    subject,
                });
            }
        }
        Ok(out)
    }

    /// Names `desc` as `tag`, replacing an entry of the same name and keeping
    /// every other entry; `index.json` is replaced atomically. The blobs
    /// `desc` reaches must already be in the layout.
    ///
    /// # Errors
    /// When the current index cannot be read or the new one cannot be written.
    pub fn tag(&self, desc: Descriptor, tag: &str) -> Result<()> {
        let mut manifests = self.entries()?;
        with_tag(&mut manifests, desc, tag);
        self.write_index(manifests)
    }

    /// Replaces `index.json` with an index of `manifests`, atomically:
    /// temporary file, fsync, rename, fsync of the directory. The blobs the
    /// entries reach must already be in the layout (and synced).
    ///
    /// # Errors
    /// When it cannot be written.
    pub fn write_index(&self, manifests: Vec<Descriptor>) -> Result<()> {
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
    /// reaches a document aelimg cannot read, then nothing — and aelimg's
    /// temporary files left by a killed process. The caller holds the
    /// layout's exclusive lock.
    ///
    /// # Errors
    /// When the index or the blob directory cannot be read, or a removal fails.
    pub fn collect_garbage(&self) -> Result<Collected> {
        self.store.remove_temporaries()?;
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

/// Names `desc` as `tag` among `manifests`, replacing an entry of the same
/// name and keeping every other entry.
pub fn with_tag(manifests: &mut Vec<Descriptor>, mut desc: Descriptor, tag: &str) {
    manifests.retain(|d| ref_name(d) != Some(tag));
    let mut annotations = desc.annotations().clone().unwrap_or_default();
    annotations.insert(REF_NAME.to_string(), tag.to_string());
    desc.set_annotations(Some(annotations));
    manifests.push(desc);
}

/// Whether an index entry is an artifact attached to an image (an untagged
/// entry with an `artifactType`), rather than an image.
#[must_use]
pub fn is_referrer(d: &Descriptor) -> bool {
    d.artifact_type().is_some() && ref_name(d).is_none()
}

/// Adds `referrer` to `manifests` unless an entry of the same digest is
/// there.
pub fn with_referrer(manifests: &mut Vec<Descriptor>, referrer: Descriptor) {
    if !manifests.iter().any(|d| d.digest() == referrer.digest()) {
        manifests.push(referrer);
    }
}

/// Drops the referrers among `manifests` whose subject no image entry
/// reaches any more (the SBOM of a manifest a tag moved away from), so that
/// garbage collection can remove them. A referrer that cannot be read, or
/// when the images' blobs cannot all be known, is kept.
pub fn drop_orphan_referrers(store: &BlobStore, manifests: &mut Vec<Descriptor>) {
    let images: Vec<Descriptor> = manifests
        .iter()
        .filter(|d| !is_referrer(d))
        .cloned()
        .collect();
    let Ok(live) = walk(store, images) else {
        return;
    };
    manifests.retain(|d| {
        if !is_referrer(d) {
            return true;
        }
        let subject = read_verified(store, d)
            .ok()
            .and_then(|doc| doc.manifest().ok())
            .and_then(|m| m.subject().clone());
        match subject.map(|s| Digest::from_oci(s.digest())) {
            Some(Ok(s)) => live.contains(&s),
            _ => true,
        }
    });
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

    /// Tells a channel when a lock is waited for.
    struct Tell(std::sync::mpsc::Sender<bool>);

    impl Progress for Tell {
        fn event(&self, e: &Event<'_>) {
            if let Event::LockWaiting { shared, .. } = e {
                let _ = self.0.send(*shared);
            }
        }
    }

    fn locked_elsewhere(path: &Path) -> bool {
        let f = File::open(path.join(LOCK_FILE)).unwrap();
        matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock))
    }

    #[test]
    fn locks_exclude_writers_share_readers_and_survive_an_undo() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out/img");
        let silent = crate::progress::Silent;
        let a = LayoutLock::exclusive(&root, &silent).unwrap();
        assert!(a.created_dir() && locked_elsewhere(&root));
        // A writer that finds the layout locked says so and waits; the
        // first undoes its write (removing the directory it made, lock file
        // included): the waiter starts over on a new lock file.
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let root = root.clone();
            std::thread::spawn(move || LayoutLock::exclusive(&root, &Tell(tx)).unwrap())
        };
        assert!(!rx.recv().unwrap(), "an exclusive wait");
        a.undo();
        let b = waiter.join().unwrap();
        assert!(b.created_dir(), "the waiter made the directory again");
        assert!(locked_elsewhere(&root), "and holds the new lock file");
        drop(b);
        assert!(!locked_elsewhere(&root));
        // Readers share; a writer waits for them.
        let r1 = LayoutLock::shared(&root, &silent).unwrap().unwrap();
        let r2 = LayoutLock::shared(&root, &silent).unwrap().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let root = root.clone();
            std::thread::spawn(move || LayoutLock::exclusive(&root, &Tell(tx)).unwrap())
        };
        assert!(!rx.recv().unwrap(), "an exclusive wait");
        drop((r1, r2));
        let w = writer.join().unwrap();
        assert!(!w.created_dir());
        drop(w);
        assert!(
            LayoutLock::shared(&dir.path().join("none"), &silent)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_layout_an_interrupted_aelimg_began_is_taken_up_and_a_foreign_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("x");
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(root.join(LOCK_FILE), b"").unwrap();
        std::fs::write(root.join(".aelimg-tmp-abc"), b"half").unwrap();
        Layout::check_writable(&root).unwrap();
        let l = Layout::create(&root).unwrap();
        assert!(l.entries().unwrap().is_empty());
        l.collect_garbage().unwrap();
        assert!(
            !root.join(".aelimg-tmp-abc").exists(),
            "temporaries removed"
        );
        assert!(root.join(LOCK_FILE).exists(), "the lock file stays");

        // `blobs/` without aelimg's lock file is someone else's.
        let other = dir.path().join("y");
        std::fs::create_dir_all(other.join("blobs/sha256")).unwrap();
        assert!(Layout::check_writable(&other).is_err());
        assert!(Layout::create(&other).is_err());
        // A corrupt index.json fails the check, with its path.
        std::fs::write(root.join("index.json"), b"{").unwrap();
        let e = Layout::check_writable(&root).unwrap_err().to_string();
        assert!(e.contains("index.json"), "{e}");
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
