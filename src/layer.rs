//! Deterministic layer tarballs: tar → gzip → sha256 in one streaming pass.
//!
//! Entries are written in the order given (the plan sorts them), with the
//! modification time clamped to one value, owners from the spec, no access or
//! change times, and a gzip header with no file name and no time. The
//! uncompressed stream is hashed on its way into the compressor (the diff_id),
//! the compressed stream on its way to disk (the blob digest), so memory stays
//! bounded whatever the size of the files.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

/// What one tar entry holds.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// A directory.
    Dir,
    /// A regular file, streamed from disk.
    File(&'a Path),
    /// A regular file from memory.
    Bytes(&'a [u8]),
    /// A symbolic link to the given target.
    Symlink(&'a str),
}

/// One tar entry, ready to write.
#[derive(Debug, Clone)]
pub struct TarEntry<'a> {
    /// Relative path without leading `/` or trailing `/`.
    pub path: &'a str,
    /// What it holds.
    pub content: Content<'a>,
    /// Permission bits (including setuid/sticky bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Owner name written to the header (may be empty).
    pub uname: &'a str,
    /// Group name written to the header (may be empty).
    pub gname: &'a str,
}

/// Digests and sizes of a written layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// The digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// The digest of the uncompressed tar (the diff_id).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps a writer.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a gzip-compressed tar of `entries` to `out` and returns its digests.
///
/// `mtime` is the timestamp of every entry (SOURCE_DATE_EPOCH or 0).
pub fn write_layer<W: Write>(
    entries: &[TarEntry<'_>],
    mtime: u64,
    out: W,
) -> Result<(W, LayerDigests)> {
    let compressed = HashingWriter::new(out);
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(compressed, flate2::Compression::new(6));
    let uncompressed = HashingWriter::new(gz);
    let mut tar = tar::Builder::new(uncompressed);
    tar.mode(tar::HeaderMode::Deterministic);
    for e in entries {
        append(&mut tar, e, mtime)?;
    }
    let uncompressed = tar
        .into_inner()
        .ctx(|| "cannot finish the layer tar".into())?;
    let (gz, diff_id, uncompressed_size) = uncompressed.finish();
    let compressed = gz.finish().ctx(|| "cannot finish gzip stream".into())?;
    let (out, digest, size) = compressed.finish();
    Ok((
        out,
        LayerDigests {
            digest,
            size,
            diff_id,
            uncompressed_size,
        },
    ))
}

fn header_for(e: &TarEntry<'_>, mtime: u64) -> Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_mtime(mtime);
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    h.set_mode(e.mode);
    h.set_username(e.uname)
        .map_err(|err| Error::io(format!("user name for {}", e.path), err))?;
    h.set_groupname(e.gname)
        .map_err(|err| Error::io(format!("group name for {}", e.path), err))?;
    Ok(h)
}

fn append<W: Write>(tar: &mut tar::Builder<W>, e: &TarEntry<'_>, mtime: u64) -> Result<()> {
    let mut h = header_for(e, mtime)?;
    let what = || format!("cannot add {} to the layer", e.path);
    match e.content {
        Content::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, format!("{}/", e.path), io::empty())
                .ctx(what)?;
        }
        Content::Bytes(b) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(b.len() as u64);
            tar.append_data(&mut h, e.path, b).ctx(what)?;
        }
        Content::File(p) => {
            let f = File::open(p).ctx(|| format!("cannot open {}", p.display()))?;
            let len = f
                .metadata()
                .ctx(|| format!("cannot stat {}", p.display()))?
                .len();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(len);
            // `take` guards against a file that grows while it is read; a file
            // that shrinks makes tar fail with an I/O error.
            tar.append_data(&mut h, e.path, f.take(len)).ctx(what)?;
        }
        Content::Symlink(target) => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, e.path, target).ctx(what)?;
        }
    }
    Ok(())
}

/// How an existing layer blob (a base image's) is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`…tar+gzip`, Docker's `…diff.tar.gzip`).
    Gzip,
    /// None (`…tar`).
    None,
}

impl Compression {
    /// The compression a layer media type names, or `None` for one aelimg
    /// cannot read (zstd, or not a layer at all).
    #[must_use]
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Self::Gzip),
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Self::None),
            _ => None,
        }
    }
}

/// The diff_id (`sha256:…` of the uncompressed tar) and uncompressed size of
/// a layer blob, streamed from `blob` with bounded memory.
///
/// # Errors
/// When reading fails or the blob is not valid gzip.
pub fn measure_blob<R: Read>(blob: R, compression: Compression) -> io::Result<(Digest, u64)> {
    let mut sink = HashingWriter::new(io::sink());
    match compression {
        // Multi-member: pigz and some registries' tools write several.
        Compression::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(blob), &mut sink)?,
        Compression::None => io::copy(&mut io::BufReader::new(blob), &mut sink)?,
    };
    let (_, diff_id, size) = sink.finish();
    Ok((diff_id, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<TarEntry<'static>> {
        vec![
            TarEntry {
                path: "etc",
                content: Content::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                uname: "root",
                gname: "root",
            },
            TarEntry {
                path: "etc/passwd",
                content: Content::Bytes(b"root:x:0:0::/:/sbin/nologin\n"),
                mode: 0o644,
                uid: 0,
                gid: 0,
                uname: "root",
                gname: "root",
            },
        ]
    }

    #[test]
    fn same_input_same_digest_and_digests_are_true() {
        let (a, da) = write_layer(&entries(), 0, Vec::new()).unwrap();
        let (b, db) = write_layer(&entries(), 0, Vec::new()).unwrap();
        assert_eq!(a, b);
        assert_eq!(da, db);
        assert_eq!(da.digest, Digest::of(&a));
        // gzip header: no name flag, mtime 0.
        assert_eq!(&a[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(a[3] & 0x08, 0, "FNAME must not be set");
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(da.diff_id, Digest::of(&raw));
        assert_eq!(da.uncompressed_size, raw.len() as u64);
    }

    #[test]
    fn mtime_is_clamped() {
        let (a, _) = write_layer(&entries(), 1_700_000_000, Vec::new()).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&a[..]));
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 1_700_000_000);
        }
    }

    #[test]
    fn measure_blob_matches_what_write_layer_recorded() {
        let data = b"payload".repeat(1000);
        let entries = [TarEntry {
            path: "a",
            content: Content::Bytes(&data),
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: "",
            gname: "",
        }];
        let (gz, d) = write_layer(&entries, 0, Vec::new()).unwrap();
        let m = measure_blob(&gz[..], Compression::Gzip).unwrap();
        assert_eq!(m, (d.diff_id.clone(), d.uncompressed_size));
        // Two gzip members back to back decode as one stream.
        let mut twice = gz.clone();
        twice.extend_from_slice(&gz);
        assert_eq!(
            measure_blob(&twice[..], Compression::Gzip).unwrap().1,
            2 * d.uncompressed_size
        );
        assert!(measure_blob(&b"not gzip"[..], Compression::Gzip).is_err());
        assert_eq!(
            Compression::of_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            None
        );
    }
}
