//! A content-addressed blob store on disk (`<root>/blobs/sha256/<hex>`), the
//! same shape as an OCI layout's blob directory.
//!
//! Blobs are written to a temporary file beside their final place and renamed
//! once complete, so a reader never sees a partial blob under a digest.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fsutil;

/// A directory of blobs named by their sha256 digest.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// A blob being written; commit it with [`BlobStore::commit`].
pub struct PendingBlob {
    file: BufWriter<tempfile::NamedTempFile>,
}

impl Write for PendingBlob {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl BlobStore {
    /// Opens (and creates) a store rooted at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        let s = Self {
            root: root.to_path_buf(),
        };
        let dir = s.dir();
        fs::create_dir_all(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
        Ok(s)
    }

    /// The store's root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| Error::Layout(format!("invalid sha256 digest `{digest}`")))?;
        Ok(self.dir().join(hex))
    }

    /// Whether the blob exists.
    #[must_use]
    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Starts writing a blob whose digest is not known yet.
    pub fn begin(&self) -> Result<PendingBlob> {
        let dir = self.dir();
        let f = tempfile::Builder::new()
            .prefix(".aelimg-tmp-")
            .tempfile_in(&dir)
            .ctx(|| format!("cannot create a temporary file in {}", dir.display()))?;
        Ok(PendingBlob {
            file: BufWriter::with_capacity(1 << 20, f),
        })
    }

    /// Makes a pending blob visible under `digest` (computed by the writer).
    pub fn commit(&self, pending: PendingBlob, digest: &str) -> Result<()> {
        let dest = self.path(digest)?;
        let f = pending
            .file
            .into_inner()
            .map_err(|e| Error::io("cannot flush blob", e.into_error()))?;
        f.as_file().sync_all().ctx(|| "cannot sync blob".into())?;
        f.persist(&dest)
            .map_err(|e| e.error)
            .ctx(|| format!("cannot rename blob into {}", dest.display()))?;
        Ok(())
    }

    /// Stores bytes and returns their digest.
    pub fn put_bytes(&self, bytes: &[u8], digest: &str) -> Result<()> {
        if self.has(digest) {
            return Ok(());
        }
        fsutil::atomic_write(&self.path(digest)?, bytes)
    }

    /// Makes `digest` present in `other`, by hard link when possible.
    pub fn copy_to(&self, other: &BlobStore, digest: &str) -> Result<()> {
        if other.has(digest) {
            return Ok(());
        }
        let src = self.path(digest)?;
        let dest = other.path(digest)?;
        let tmp = dest.with_file_name(format!(
            ".aelimg-link-{}-{}",
            std::process::id(),
            &digest[7..19]
        ));
        let _ = fs::remove_file(&tmp);
        if fs::hard_link(&src, &tmp).is_err() {
            let mut r = File::open(&src).ctx(|| format!("cannot open {}", src.display()))?;
            let mut w = File::create(&tmp).ctx(|| format!("cannot create {}", tmp.display()))?;
            std::io::copy(&mut r, &mut w).ctx(|| format!("cannot copy {}", src.display()))?;
            w.sync_all()
                .ctx(|| format!("cannot sync {}", tmp.display()))?;
        }
        fs::rename(&tmp, &dest).ctx(|| format!("cannot rename into {}", dest.display()))
    }

    /// Every digest in the store.
    pub fn list(&self) -> Result<Vec<String>> {
        let dir = self.dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx(|| format!("cannot list {}", dir.display()))? {
            let e = e.ctx(|| format!("cannot list {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(format!("sha256:{name}"));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a blob (no error if absent).
    pub fn remove(&self, digest: &str) -> Result<()> {
        let p = self.path(digest)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("cannot remove {}", p.display()), e))
            }
            _ => Ok(()),
        }
    }

    /// Reads a whole blob (for small JSON documents).
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.path(digest)?;
        fs::read(&p).ctx(|| format!("cannot read {}", p.display()))
    }
}
