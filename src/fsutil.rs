//! Atomic file writes: temp file in the same directory, fsync, rename, fsync
//! of the directory. A killed process leaves the old file or the new one,
//! never a torn one.
//!
//! Cache records ([`write_cache_record`]) are renamed into place without an
//! fsync: readers treat a record they cannot parse or verify as absent, so
//! a crash costs at most a miss, and a build does not wait on the disk for
//! a dozen records it could recompute (decision 0020).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Writes `bytes` to `path` atomically.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_via(parent(path), path, bytes)
}

/// A temporary file in `dir` created `0644` less the umask, as `fs::write`
/// would create the file it replaces (tempfile's default is `0600`, which
/// left layouts and archives unreadable to other users).
///
/// # Errors
/// When the file cannot be created.
pub fn readable_temp_in(dir: &Path, prefix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    temp_in(dir, prefix, 0o644)
}

/// A temporary file in `dir` created with `mode` (less the umask).
fn temp_in(dir: &Path, prefix: &str, mode: u32) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
}

/// [`atomic_write`] of a program: the file is executable (`0755` less the
/// umask) before it is renamed into place, so nobody finds it unrunnable.
///
/// # Errors
/// When the file cannot be written, synced or renamed.
pub fn atomic_write_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    write_through_temp(parent(path), path, bytes, true, 0o755)?;
    sync_dir(parent(path));
    Ok(())
}

/// Writes `bytes` to `path` atomically, through a temporary file in
/// `tmp_dir` (which must be on the same file system): a blob store keeps
/// its temporary files out of `blobs/sha256`.
pub fn atomic_write_via(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_file_synced(tmp_dir, path, bytes)?;
    sync_dir(parent(path));
    Ok(())
}

/// Writes a cache record: `bytes` to `path` through a temporary file and a
/// rename, so a reader sees the old record or the new one, but without an
/// fsync: after a power loss the record may be gone or empty. Only for
/// files whose reader checks them and recomputes what they hold (the layer
/// cache's records, file digests, crate lists, SBOM and payload stamps).
///
/// # Errors
/// When the directory, the temporary file or the rename fails.
pub fn write_cache_record(path: &Path, bytes: &[u8]) -> Result<()> {
    write_through_temp(parent(path), path, bytes, false, 0o644)
}

/// Writes `bytes` to `path` atomically and syncs the file, but not the
/// directory: for a blob store, whose directories are synced once, after
/// all its blobs ([`crate::store::BlobStore::sync`]).
///
/// # Errors
/// When the file cannot be written, synced or renamed.
pub fn atomic_write_file_synced(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    write_through_temp(tmp_dir, path, bytes, true, 0o644)
}

/// `bytes` into a temporary file in `tmp_dir` created with `mode`, synced
/// when `sync`, then renamed to `path` (whose directory is created first).
fn write_through_temp(
    tmp_dir: &Path,
    path: &Path,
    bytes: &[u8],
    sync: bool,
    mode: u32,
) -> Result<()> {
    let dir = parent(path);
    fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = temp_in(tmp_dir, ".aelimg-tmp-", mode)
        .ctx(|| format!("cannot create a temporary file in {}", tmp_dir.display()))?;
    tmp.write_all(bytes)
        .ctx(|| format!("cannot write {}", path.display()))?;
    if sync {
        tmp.as_file()
            .sync_all()
            .ctx(|| format!("cannot sync {}", path.display()))?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .ctx(|| format!("cannot rename into {}", path.display()))?;
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn atomic_writes_are_as_readable_as_plain_writes() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, b"x").unwrap();
        let atomic = dir.path().join("sub/atomic");
        atomic_write(&atomic, b"x").unwrap();
        // 0644 less the same umask `fs::write` was given.
        assert_eq!(mode(&atomic), mode(&plain) & 0o644);
    }
}
