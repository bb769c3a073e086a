//! A content-addressed blob store on disk (`<root>/blobs/sha256/<hex>`), the
//! same shape as an OCI layout's blob directory.
//!
//! Blobs are written to a temporary file in the store's root (never in
//! `blobs/sha256`, where `umoci gc` fails on any name that is not a
//! digest) and renamed into place once complete, so a reader never sees a
//! partial blob under a digest. Temporary names start with [`TEMP_PREFIX`];
//! one left by a killed process is never taken for a blob, and a layout's
//! garbage collection removes it under the layout's lock.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;

/// How the names of aelimg's temporary files begin (`.aelimg-tmp-…` for a
/// blob or document being written, `.aelimg-link-…` for a blob being linked
/// or copied in).
pub const TEMP_PREFIX: &str = ".aelimg-";

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
        let dir = &self.root;
        let f = crate::fsutil::readable_temp_in(dir, ".aelimg-tmp-")
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

    /// Stores bytes under their digest (computed by the caller). The blob is
    /// synced; its name is durable once [`BlobStore::sync`] has run (as for
    /// [`BlobStore::commit`]).
    pub fn put_bytes(&self, bytes: &[u8], digest: &Digest) -> Result<()> {
        if self.has(digest) {
            return Ok(());
        }
        fsutil::atomic_write_file_synced(&self.root, &self.path(digest), bytes)
    }

    /// Makes `digest` present in `other`, by hard link when possible (the
    /// source was synced when it was stored), else by a synced copy; the
    /// blob appears under its name complete, by rename. Returns whether it
    /// was added (`false`: `other` had it). The rename is durable once
    /// [`BlobStore::sync`] has run.
    pub fn copy_to(&self, other: &BlobStore, digest: &Digest) -> Result<bool> {
        if other.has(digest) {
            return Ok(false);
        }
        let src = self.path(digest);
        let dest = other.path(digest);
        let tmp = other.root.join(format!(
            "{TEMP_PREFIX}link-{}-{}",
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
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(
                format!("cannot rename into {}", dest.display()),
                e,
            ));
        }
        Ok(true)
    }

    /// Makes the blobs renamed into the store durable: fsync of
    /// `blobs/sha256`, `blobs` and the root.
    pub fn sync(&self) {
        fsutil::sync_dir(&self.dir());
        fsutil::sync_dir(&self.root.join("blobs"));
        fsutil::sync_dir(&self.root);
    }

    /// Removes aelimg's temporary files (names starting with
    /// [`TEMP_PREFIX`]) from the root and from `blobs/sha256` (where aelimg
    /// 0.1 wrote them); returns how many. Only for a store no other process
    /// writes at the same time: a layout under its exclusive lock.
    ///
    /// # Errors
    /// When a directory cannot be listed or a removal fails.
    pub fn remove_temporaries(&self) -> Result<usize> {
        let mut n = 0;
        for dir in [self.root.clone(), self.dir()] {
            for e in fs::read_dir(&dir).ctx(|| format!("cannot list {}", dir.display()))? {
                let e = e.ctx(|| format!("cannot list {}", dir.display()))?;
                let temporary = e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                    && e.file_type().is_ok_and(|t| t.is_file());
                if temporary {
                    match fs::remove_file(e.path()) {
                        Ok(()) => n += 1,
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => {
                            return Err(Error::io(
                                format!("cannot remove {}", e.path().display()),
                                err,
                            ));
                        }
                    }
                }
            }
        }
        Ok(n)
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
