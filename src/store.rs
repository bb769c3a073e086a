//! A content-addressed blob store on disk (`<root>/blobs/sha256/<hex>`), the
//! same shape as an OCI layout's blob directory.
//!
//! Blobs are written to a temporary file beside their final place and renamed
//! once complete, so a reader never sees a partial blob under a digest.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
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

    /// The directory holding the blobs (`<root>/blobs/sha256`).
    #[must_use]
    pub fn blob_dir(&self) -> PathBuf {
        self.dir()
    }

    /// Where the blob with this digest lives (whether or not it exists).
    #[must_use]
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir().join(digest.hex())
    }

    /// Whether the blob exists.
    #[must_use]
    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
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
    pub fn commit(&self, pending: PendingBlob, digest: &Digest) -> Result<()> {
        let dest = self.path(digest);
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

    /// Stores bytes under their digest (computed by the caller).
    pub fn put_bytes(&self, bytes: &[u8], digest: &Digest) -> Result<()> {
        if self.has(digest) {
            return Ok(());
        }
        fsutil::atomic_write(&self.path(digest), bytes)
    }

    /// Makes `digest` present in `other`, by hard link when possible.
    pub fn copy_to(&self, other: &BlobStore, digest: &Digest) -> Result<()> {
        if other.has(digest) {
            return Ok(());
        }
        let src = self.path(digest);
        let dest = other.path(digest);
        let tmp = dest.with_file_name(format!(
            ".aelimg-link-{}-{}",
            std::process::id(),
            &digest.hex()[..12]
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
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx(|| format!("cannot list {}", dir.display()))? {
            let e = e.ctx(|| format!("cannot list {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a blob (no error if absent).
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("cannot remove {}", p.display()), e))
            }
            _ => Ok(()),
        }
    }

    /// Reads a whole blob (for small JSON documents).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.path(digest);
        fs::read(&p).ctx(|| format!("cannot read {}", p.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_content_addressed_and_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let a = BlobStore::open(&dir.path().join("a")).unwrap();
        let b = BlobStore::open(&dir.path().join("b")).unwrap();
        let d = Digest::of(b"hello");
        assert!(!a.has(&d));
        a.put_bytes(b"hello", &d).unwrap();
        a.put_bytes(b"hello", &d).unwrap();
        assert_eq!(a.read(&d).unwrap(), b"hello");
        let mut p = a.begin().unwrap();
        p.write_all(b"streamed").unwrap();
        let s = Digest::of(b"streamed");
        a.commit(p, &s).unwrap();
        assert_eq!(a.list().unwrap().len(), 2);
        a.copy_to(&b, &s).unwrap();
        assert_eq!(b.read(&s).unwrap(), b"streamed");
        // No temporary file is left behind, and junk names are not blobs.
        std::fs::write(a.blob_dir().join("not-a-digest"), b"x").unwrap();
        let mut names: Vec<_> = std::fs::read_dir(a.blob_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(a.list().unwrap(), {
            let mut v = vec![d.clone(), s.clone()];
            v.sort();
            v
        });
        a.remove(&d).unwrap();
        a.remove(&d).unwrap();
        assert!(!a.has(&d));
        assert!(a.read(&d).is_err());
    }
}
