//! The digests of a source file (SHA-256, SHA-1, size), read once per
//! process: the layer cache keys layers by the SHA-256 of their files, and
//! the SBOM lists the same files with SHA-256 and SHA-1 (SPDX asks for
//! SHA-1). One pass computes both; a second request for a file whose
//! metadata has not changed is answered from memory, so a binary in two
//! images, or in a layer and an SBOM, is read once.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sha1::Digest as _;

use crate::digest::Digest;

/// What a file holds, by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigests {
    /// SHA-256 of its bytes.
    pub sha256: Digest,
    /// SHA-1 of its bytes, hex.
    pub sha1: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Enough of a file's metadata that any write to it changes one field.
pub fn stat_stamp(m: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{}:{}:{}:{}.{}:{}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

type Memo = HashMap<PathBuf, (String, FileDigests)>;

static MEMO: Mutex<Option<Memo>> = Mutex::new(None);

/// The digests of the file at `path`, streamed (memory does not grow with
/// the file). Answered from memory when this process has read the file
/// before and its metadata is the same; a file that changed while it was
/// read is not remembered.
///
/// # Errors
/// When it cannot be read.
pub fn of_file(path: &Path) -> io::Result<FileDigests> {
    let before = stat_stamp(&fs::metadata(path)?);
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some((stamp, d)) = MEMO
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|m| m.get(&key))
        && *stamp == before
    {
        return Ok(d.clone());
    }
    let mut f = fs::File::open(path)?;
    let mut sha256 = sha2::Sha256::new();
    let mut sha1 = sha1::Sha1::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        sha1.update(&buf[..n]);
        size += n as u64;
    }
    let d = FileDigests {
        sha256: Digest::from_hasher(sha256),
        sha1: hex::encode(sha1.finalize()),
        size,
    };
    if stat_stamp(&f.metadata()?) == before {
        MEMO.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .insert(key, (before, d.clone()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_true_and_a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"abc").unwrap();
        let d = of_file(&p).unwrap();
        assert_eq!(
            d.sha256.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(d.size, 3);
        assert_eq!(of_file(&p).unwrap(), d);
        fs::write(&p, b"abcd").unwrap();
        let e = of_file(&p).unwrap();
        assert_eq!(e.size, 4);
        assert_ne!(e.sha256, d.sha256);
    }
}
