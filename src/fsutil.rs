//! Atomic file writes: temp file in the same directory, fsync, rename, fsync
//! of the directory. A killed process leaves the old file or the new one,
//! never a torn one.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Writes `bytes` to `path` atomically.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_via(parent(path), path, bytes)
}

/// Writes `bytes` to `path` atomically, through a temporary file in
/// `tmp_dir` (which must be on the same file system): a blob store keeps
/// its temporary files out of `blobs/sha256`.
pub fn atomic_write_via(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".aelimg-tmp-")
        .tempfile_in(tmp_dir)
        .ctx(|| format!("cannot create a temporary file in {}", tmp_dir.display()))?;
    tmp.write_all(bytes)
        .ctx(|| format!("cannot write {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .ctx(|| format!("cannot sync {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .ctx(|| format!("cannot rename into {}", path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// The directory a path is in (`.` for a bare file name).
#[must_use]
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Best-effort fsync of a directory, so a rename in it is durable.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
