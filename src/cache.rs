//! The input-keyed layer cache, beside the working blob store.
//!
//! A layer's key is the sha256 of everything that decides its bytes: the
//! layer format version, the compression and its level, the timestamp every
//! entry gets, and for each entry in order its path, kind, mode, owner ids
//! and names, and content (a file by the sha256 of its bytes, generated
//! content by the sha256 of its bytes, a link by its target). A hit names a
//! blob already in the store, so the layer is neither read nor compressed
//! again.
//!
//! File digests are remembered by their stat (device, inode, size,
//! modification and change times, as git's index does), so an unchanged
//! file is not read to find its digest either.
//!
//! Every record is written with a temporary file and a rename, so two builds
//! sharing the cache at once both succeed: they compute the same records,
//! and the last rename wins with the same content. Records name blobs; a
//! record whose blob is gone is a miss. `prune` removes the least recently
//! used blobs and records.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_cache_record;
use crate::layer::{Content, LayerDigests, TarEntry};
use crate::store::BlobStore;

/// Bumped whenever the bytes aelimg writes for the same entries change.
pub const LAYER_FORMAT: u32 = 1;

/// The layer cache of a blob store.
#[derive(Debug, Clone)]
pub struct LayerCache {
    store: BlobStore,
    /// `false` for `--no-cache`: nothing is looked up (results are still
    /// recorded, so the next build can use them).
    pub read: bool,
}

#[derive(Serialize, Deserialize)]
struct Record {
    digest: Digest,
    size: u64,
    diff_id: Digest,
    uncompressed_size: u64,
}

/// What `aelimg cache info` shows.
#[derive(Debug, Clone, Serialize)]
pub struct CacheInfo {
    /// The store's directory.
    pub dir: PathBuf,
    /// Blobs and their total size.
    pub blobs: u64,
    /// Bytes of blobs.
    pub blob_bytes: u64,
    /// Layer records.
    pub layers: u64,
    /// Remembered file digests.
    pub files: u64,
}

/// What `aelimg cache prune` removed.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    /// Blobs removed.
    pub blobs: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Layer records removed (their blob was removed or was missing).
    pub layers: u64,
    /// Other records removed: SBOMs made before whose blob is gone, file
    /// lists of layers no layer record names any more.
    pub records: u64,
}

impl LayerCache {
    /// The cache of `store`.
    #[must_use]
    pub fn new(store: &BlobStore, read: bool) -> Self {
        Self {
            store: store.clone(),
            read,
        }
    }

    /// The blob store the cache's records name blobs of.
    #[must_use]
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    fn layers_dir(&self) -> PathBuf {
        self.store.root().join("layers")
    }

    fn files_dir(&self) -> PathBuf {
        self.store.root().join("files")
    }

    /// The key of a layer made of `entries`, stamped `mtime`, compressed as
    /// `compression` (e.g. `gzip-6`).
    ///
    /// # Errors
    /// When a source file cannot be read.
    pub fn key(&self, entries: &[TarEntry<'_>], mtime: u64, compression: &str) -> Result<Digest> {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(format!("aelimg-layer-v{LAYER_FORMAT}").as_bytes());
        field(compression.as_bytes());
        field(&mtime.to_le_bytes());
        for e in entries {
            field(e.path.as_bytes());
            field(&e.mode.to_le_bytes());
            field(&e.uid.to_le_bytes());
            field(&e.gid.to_le_bytes());
            field(e.uname.as_bytes());
            field(e.gname.as_bytes());
            match e.content {
                Content::Dir => field(b"dir"),
                Content::Symlink(t) => {
                    field(b"symlink");
                    field(t.as_bytes());
                }
                Content::HardLink(t) => {
                    field(b"hardlink");
                    field(t.as_bytes());
                }
                Content::Bytes(b) => {
                    field(b"bytes");
                    field(Digest::of(b).as_str().as_bytes());
                }
                Content::File(p) => {
                    field(b"file");
                    field(self.file_digest(p)?.as_str().as_bytes());
                }
            }
        }
        Ok(Digest::from_hasher(h))
    }

    /// The digests of the layer recorded under `key`, if its blob is in the
    /// store (and reading is on). A hit marks the blob as used.
    #[must_use]
    pub fn get(&self, key: &Digest) -> Option<LayerDigests> {
        if !self.read {
            return None;
        }
        let path = self.layers_dir().join(key.hex());
        let r: Record = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
        if !self.store.has(&r.digest) {
            return None;
        }
        touch(&path);
        touch(&self.store.path(&r.digest));
        Some(LayerDigests {
            digest: r.digest,
            size: r.size,
            diff_id: r.diff_id,
            uncompressed_size: r.uncompressed_size,
        })
    }

    /// Records the layer built for `key`.
    ///
    /// # Errors
    /// When the record cannot be written.
    pub fn put(&self, key: &Digest, d: &LayerDigests) -> Result<()> {
        let r = Record {
            digest: d.digest.clone(),
            size: d.size,
            diff_id: d.diff_id.clone(),
            uncompressed_size: d.uncompressed_size,
        };
        let bytes = serde_json::to_vec(&r).map_err(|e| Error::json("layer record", e))?;
        write_cache_record(&self.layers_dir().join(key.hex()), &bytes)
    }

    /// The sha256 of a file's bytes, remembered by its stat.
    fn file_digest(&self, path: &Path) -> Result<Digest> {
        let meta = fs::metadata(path).ctx(|| format!("cannot stat {}", path.display()))?;
        let stamp = crate::file_digest::stat_stamp(&meta);
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let memo = self
            .files_dir()
            .join(Digest::of(abs.as_os_str().as_encoded_bytes()).hex());
        if let Ok(text) = fs::read_to_string(&memo)
            && let Some((s, d)) = text.trim().rsplit_once(' ')
            && s == stamp
            && let Ok(d) = Digest::parse(d)
        {
            return Ok(d);
        }
        // Read once per process: the SBOM lists the same files.
        let d = crate::file_digest::of_file(path)
            .ctx(|| format!("cannot read {}", path.display()))?
            .sha256;
        // A file changed while it was read, or within the clock's
        // granularity of now, is not remembered (git's "racy" entries).
        let after = fs::metadata(path)
            .map(|m| crate::file_digest::stat_stamp(&m))
            .unwrap_or_default();
        let fresh = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > Duration::from_secs(2));
        if after == stamp && fresh {
            write_cache_record(&memo, format!("{stamp} {d}\n").as_bytes())?;
        }
        Ok(d)
    }

    /// Counts what the cache holds.
    ///
    /// # Errors
    /// When the store cannot be listed.
    pub fn info(&self) -> Result<CacheInfo> {
        let mut blob_bytes = 0;
        let blobs = self.store.list()?;
        for d in &blobs {
            blob_bytes += fs::metadata(self.store.path(d)).map_or(0, |m| m.len());
        }
        Ok(CacheInfo {
            dir: self.store.root().to_path_buf(),
            blobs: blobs.len() as u64,
            blob_bytes,
            layers: count(&self.layers_dir()),
            files: count(&self.files_dir()),
        })
    }

    /// Removes blobs last used longer than `max_age` ago, then the least
    /// recently used ones until the blobs take at most `max_size` bytes,
    /// then the layer records whose blob is gone, the SBOM records
    /// (`sbom-cache/`) whose blob is gone, and the layer file lists
    /// (`inspect-v1/`, by diff_id) of layers no layer record names.
    ///
    /// # Errors
    /// When the store cannot be listed or a removal fails.
    pub fn prune(&self, max_age: Option<Duration>, max_size: Option<u64>) -> Result<Pruned> {
        let now = SystemTime::now();
        let mut blobs: Vec<(SystemTime, u64, Digest)> = Vec::new();
        for d in self.store.list()? {
            if let Ok(m) = fs::metadata(self.store.path(&d)) {
                blobs.push((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), d));
            }
        }
        blobs.sort();
        let mut total: u64 = blobs.iter().map(|b| b.1).sum();
        let mut pruned = Pruned {
            blobs: 0,
            bytes: 0,
            layers: 0,
            records: 0,
        };
        for (used, len, d) in &blobs {
            let old = max_age.is_some_and(|a| now.duration_since(*used).unwrap_or_default() > a);
            let big = max_size.is_some_and(|m| total > m);
            if old || big {
                self.store.remove(d)?;
                total -= len;
                pruned.blobs += 1;
                pruned.bytes += len;
            }
        }
        // A layer record whose blob is gone goes; the diff_ids of those
        // kept name the layer file lists to keep.
        let mut diff_ids = std::collections::BTreeSet::new();
        pruned.layers += remove_where(&self.layers_dir(), |path, _| {
            match fs::read(path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            {
                Some(r) if self.store.has(&r.digest) => {
                    diff_ids.insert(format!("{}.json", r.diff_id.hex()));
                    false
                }
                _ => true,
            }
        })?;
        // An SBOM record holds the digest of the SBOM it made.
        pruned.records += remove_where(&self.store.root().join("sbom-cache"), |path, _| {
            !fs::read_to_string(path)
                .ok()
                .and_then(|t| Digest::parse(t.trim()).ok())
                .is_some_and(|d| self.store.has(&d))
        })?;
        pruned.records += remove_where(&self.store.root().join("inspect-v1"), |_, name| {
            !diff_ids.contains(name)
        })?;
        Ok(pruned)
    }
}

/// Removes the files of `dir` (absent: none) for which `remove(path, name)`
/// holds; returns how many.
fn remove_where(dir: &Path, mut remove: impl FnMut(&Path, &str) -> bool) -> Result<u64> {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let path = e.path();
            if remove(&path, &e.file_name().to_string_lossy()) {
                fs::remove_file(&path).ctx(|| format!("cannot remove {}", path.display()))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn count(dir: &Path) -> u64 {
    fs::read_dir(dir).map_or(0, |rd| rd.flatten().count() as u64)
}

/// Marks a file as just used (its modification time), for LRU pruning.
fn touch(path: &Path) {
    if let Ok(f) = fs::File::open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::write_layer;

    fn entries<'a>(file: &'a Path, mode: u32) -> Vec<TarEntry<'a>> {
        vec![TarEntry {
            path: "a",
            content: Content::File(file),
            mode,
            uid: 0,
            gid: 0,
            uname: "root",
            gname: "root",
        }]
    }

    #[test]
    fn keys_follow_every_input_and_hits_need_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        let cache = LayerCache::new(&store, true);
        let file = dir.path().join("f");
        fs::write(&file, b"one").unwrap();
        let k1 = cache.key(&entries(&file, 0o644), 0, "gzip-6").unwrap();
        assert_eq!(k1, cache.key(&entries(&file, 0o644), 0, "gzip-6").unwrap());
        for other in [
            cache.key(&entries(&file, 0o600), 0, "gzip-6").unwrap(),
            cache.key(&entries(&file, 0o644), 1, "gzip-6").unwrap(),
            cache.key(&entries(&file, 0o644), 0, "zstd-3").unwrap(),
        ] {
            assert_ne!(k1, other);
        }
        fs::write(&file, b"two").unwrap();
        assert_ne!(k1, cache.key(&entries(&file, 0o644), 0, "gzip-6").unwrap());

        assert!(cache.get(&k1).is_none());
        let (bytes, d) = write_layer(&entries(&file, 0o644), 0, Vec::new()).unwrap();
        cache.put(&k1, &d).unwrap();
        assert!(cache.get(&k1).is_none(), "no blob, no hit");
        store.put_bytes(&bytes, &d.digest).unwrap();
        assert_eq!(cache.get(&k1), Some(d.clone()));
        assert!(
            LayerCache::new(&store, false).get(&k1).is_none(),
            "--no-cache"
        );

        let info = cache.info().unwrap();
        assert_eq!((info.blobs, info.layers), (1, 1));
        let p = cache.prune(None, Some(0)).unwrap();
        assert_eq!((p.blobs, p.layers), (1, 1));
        assert!(cache.get(&k1).is_none());
    }

    #[test]
    fn a_file_digest_is_remembered_by_its_stat() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("store")).unwrap();
        let cache = LayerCache::new(&store, true);
        let file = dir.path().join("f");
        fs::write(&file, b"content").unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let d = cache.file_digest(&file).unwrap();
        assert_eq!(d, Digest::of(b"content"));
        assert_eq!(count(&cache.files_dir()), 1);
        // Same stat: the memo answers (proved by a memo we tamper with).
        let memo = fs::read_dir(cache.files_dir())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = fs::read_to_string(&memo).unwrap();
        let fake = Digest::of(b"memo");
        fs::write(&memo, text.replace(d.as_str(), fake.as_str())).unwrap();
        assert_eq!(cache.file_digest(&file).unwrap(), fake);
        // A changed file changes its stat: read again.
        fs::write(&file, b"changed").unwrap();
        assert_eq!(cache.file_digest(&file).unwrap(), Digest::of(b"changed"));
    }
}
