//! Deterministic layer tarballs: tar → gzip or zstd → sha256 in one
//! streaming pass.
//!
//! Entries are written in the order given (the plan sorts them), with the
//! modification time clamped to one value, owners from the spec, no access or
//! change times, and a gzip header with no file name and no time. The
//! uncompressed stream is hashed on its way into the compressor (the diff_id),
//! the compressed stream on its way to disk (the blob digest), so memory stays
//! bounded whatever the size of the files.
//!
//! gzip is block-parallel ([`crate::gzip`]: blocks of a fixed size, each
//! primed with the window before it, one deflate stream in one member);
//! zstd always runs its multi-threaded mode (at least one worker). Neither
//! output depends on the number of threads, so `--jobs` never changes a
//! byte. docs/decisions/0007-compression.md and
//! 0020-block-parallel-gzip.md have the reasons.

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
    /// A hard link to an earlier entry of the same layer (its path, as
    /// written in the tar): another name of that entry's data, stored once.
    HardLink(&'a str),
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

/// A writer that passes everything through unchanged and calls `progress`
/// with the running byte count every [`PROGRESS_STEP`] bytes.
struct CountingWriter<'p, W> {
    inner: W,
    count: u64,
    told: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        if self.count - self.told >= PROGRESS_STEP {
            self.told = self.count;
            (self.progress)(self.count);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The size of the uncompressed tar [`write_layer_with`] writes for
/// `entries`: a 512-byte header per entry, a GNU long-name entry before it
/// when its path (or a link's target) does not fit the header's 100 bytes,
/// the content padded to 512 bytes, and 1024 zero bytes at the end. Files
/// are measured now; one that changes size before it is read makes the
/// estimate wrong (and the layer fails to write if it shrank).
///
/// # Errors
/// When a file cannot be measured.
pub fn tar_size(entries: &[TarEntry<'_>]) -> Result<u64> {
    const BLOCK: u64 = 512;
    let padded = |n: u64| n.div_ceil(BLOCK) * BLOCK;
    // A name of more than 100 bytes goes in its own entry: a header and the
    // name with a NUL.
    let long = |name_len: usize| {
        if name_len > 100 {
            BLOCK + padded(name_len as u64 + 1)
        } else {
            0
        }
    };
    let mut total = 2 * BLOCK;
    for e in entries {
        total += BLOCK;
        total += match e.content {
            Content::Dir => long(e.path.len() + 1),
            Content::Bytes(b) => long(e.path.len()) + padded(b.len() as u64),
            Content::File(p) => {
                let len = std::fs::metadata(p)
                    .ctx(|| format!("cannot stat {}", p.display()))?
                    .len();
                long(e.path.len()) + padded(len)
            }
            Content::Symlink(target) | Content::HardLink(target) => {
                long(e.path.len()) + long(target.len())
            }
        };
    }
    Ok(total)
}

/// The algorithm of the layers aelimg writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// gzip (`…tar+gzip`): every engine reads it.
    Gzip,
    /// zstd (`…tar+zstd`): faster and smaller, read by containerd ≥ 1.5,
    /// Docker ≥ 23 and podman 4 (tested), not by umoci 0.4.
    Zstd,
}

impl Codec {
    /// The name `--compression` takes.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// The levels the algorithm accepts.
    #[must_use]
    pub const fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Self::Gzip => 1..=9,
            // 20–22 ("ultra") need windows of 32–128 MiB per worker: refused
            // to keep memory bounded.
            Self::Zstd => 1..=19,
        }
    }

    /// The level used when none is given.
    #[must_use]
    pub const fn default_level(self) -> i32 {
        match self {
            Self::Gzip => 6,
            Self::Zstd => 3,
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "gzip" => Ok(Self::Gzip),
            "zstd" => Ok(Self::Zstd),
            _ => Err(format!("unknown compression {s:?}: expected gzip or zstd")),
        }
    }
}

/// How aelimg compresses the layers it writes: an algorithm and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerCompression {
    codec: Codec,
    level: i32,
}

impl Default for LayerCompression {
    /// gzip level 6: what every engine reads, and the bytes aelimg has
    /// always written.
    fn default() -> Self {
        Self::GZIP_6
    }
}

impl LayerCompression {
    /// gzip, level 6 (the default).
    pub const GZIP_6: Self = Self {
        codec: Codec::Gzip,
        level: 6,
    };

    /// `codec` at `level` (its default when `None`).
    ///
    /// # Errors
    /// When the level is out of the algorithm's range (a message for the
    /// user, naming the range).
    pub fn new(codec: Codec, level: Option<i32>) -> std::result::Result<Self, String> {
        let level = level.unwrap_or(codec.default_level());
        let range = codec.levels();
        if !range.contains(&level) {
            return Err(format!(
                "--compression-level {level} is out of range for {}: expected {} to {}",
                codec.name(),
                range.start(),
                range.end()
            ));
        }
        Ok(Self { codec, level })
    }

    /// The algorithm.
    #[must_use]
    pub const fn codec(self) -> Codec {
        self.codec
    }

    /// The level.
    #[must_use]
    pub const fn level(self) -> i32 {
        self.level
    }

    /// What the layer cache key names: algorithm and level, for gzip the
    /// block size of its block-parallel stream, and for zstd the library
    /// version (pinned by Cargo.lock, but a bump could change bytes).
    #[must_use]
    pub fn cache_key(self) -> String {
        match self.codec {
            Codec::Gzip => format!("gzip-{}-blocks-{}", self.level, crate::gzip::BLOCK),
            Codec::Zstd => format!(
                "zstd-{}-mt-{}",
                self.level,
                zstd::zstd_safe::version_string()
            ),
        }
    }

    /// The OCI media type of a layer written this way.
    #[must_use]
    pub const fn media_type(self) -> &'static str {
        match self.codec {
            Codec::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Codec::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// The compressing stage of [`write_layer_with`].
enum Compressor<W: Write> {
    Gzip(crate::gzip::ParGzWriter<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    fn new(out: W, compression: LayerCompression, threads: usize) -> io::Result<Self> {
        Ok(match compression.codec {
            Codec::Gzip => Self::Gzip(crate::gzip::ParGzWriter::new(
                out,
                compression.level.unsigned_abs(),
                threads,
            )?),
            Codec::Zstd => {
                let mut z = zstd::stream::write::Encoder::new(out, compression.level)?;
                z.include_checksum(true)?;
                // Never 0 workers: the single-threaded mode cuts blocks
                // differently, and the output would depend on --jobs.
                z.multithread(u32::try_from(threads.max(1)).unwrap_or(u32::MAX))?;
                Self::Zstd(z)
            }
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Self::Gzip(g) => g.finish(),
            Self::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Gzip(g) => g.write(buf),
            Self::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Gzip(g) => g.flush(),
            Self::Zstd(z) => z.flush(),
        }
    }
}

/// Writes a gzip-compressed (level 6) tar of `entries` to `out` and returns
/// its digests.
///
/// `mtime` is the timestamp of every entry (SOURCE_DATE_EPOCH or 0).
pub fn write_layer<W: Write>(
    entries: &[TarEntry<'_>],
    mtime: u64,
    out: W,
) -> Result<(W, LayerDigests)> {
    write_layer_with(entries, mtime, LayerCompression::GZIP_6, 1, out)
}

/// Writes a tar of `entries` compressed as `compression` to `out` and
/// returns its digests. `threads` is how many threads may compress; the
/// bytes are the same whatever it is.
///
/// `mtime` is the timestamp of every entry (SOURCE_DATE_EPOCH or 0).
pub fn write_layer_with<W: Write>(
    entries: &[TarEntry<'_>],
    mtime: u64,
    compression: LayerCompression,
    threads: usize,
    out: W,
) -> Result<(W, LayerDigests)> {
    write_layer_observed(entries, mtime, compression, threads, out, &mut |_| {})
}

/// How much of a source file is read at a time.
const READ_CHUNK: usize = 256 * 1024;

/// The first `left` bytes of `inner`, and an error if it ends before them:
/// a file that shrank while it was read. One that grew is cut at `left`.
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.left).map_or(buf.len(), |left| left.min(buf.len()));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended {} bytes early: it shrank while it was read",
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Bytes between two calls of a [`write_layer_observed`] callback.
pub const PROGRESS_STEP: u64 = 1 << 20;

/// [`write_layer_with`], calling `progress` with the number of uncompressed
/// bytes written so far every [`PROGRESS_STEP`] bytes or so, and once at the
/// end with the whole size. The callback only counts: the bytes written are
/// the same as without it.
pub fn write_layer_observed<W: Write>(
    entries: &[TarEntry<'_>],
    mtime: u64,
    compression: LayerCompression,
    threads: usize,
    out: W,
    progress: &mut dyn FnMut(u64),
) -> Result<(W, LayerDigests)> {
    let compressed = HashingWriter::new(out);
    let what = compression.codec.name();
    let gz = Compressor::new(compressed, compression, threads)
        .ctx(|| format!("cannot start the {what} stream"))?;
    let uncompressed = HashingWriter::new(gz);
    let counted = CountingWriter {
        inner: uncompressed,
        count: 0,
        told: 0,
        progress,
    };
    let mut tar = tar::Builder::new(counted);
    tar.mode(tar::HeaderMode::Deterministic);
    for e in entries {
        append(&mut tar, e, mtime)?;
    }
    let counted = tar
        .into_inner()
        .ctx(|| "cannot finish the layer tar".into())?;
    (counted.progress)(counted.count);
    let (gz, diff_id, uncompressed_size) = counted.inner.finish();
    let compressed = gz
        .finish()
        .ctx(|| format!("cannot finish the {what} stream"))?;
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
            // Exactly the size the header announces: tar would pad a short
            // entry and go on, shifting every entry after it. Read through
            // a buffer: `io::copy` asks for 8 KiB at a time, a system call
            // each otherwise.
            let f = Exactly {
                inner: io::BufReader::with_capacity(READ_CHUNK, f),
                left: len,
            };
            tar.append_data(&mut h, e.path, f).ctx(what)?;
        }
        Content::Symlink(target) => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, e.path, target).ctx(what)?;
        }
        Content::HardLink(target) => {
            h.set_entry_type(tar::EntryType::Link);
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
    /// zstd (`…tar+zstd`).
    Zstd,
    /// None (`…tar`).
    None,
}

impl Compression {
    /// The compression a layer media type names, or `None` for one aelimg
    /// cannot read (not a layer at all, or another algorithm).
    #[must_use]
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Self::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Self::Zstd),
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
/// When reading fails or the blob is not valid gzip or zstd.
pub fn measure_blob<R: Read>(blob: R, compression: Compression) -> io::Result<(Digest, u64)> {
    let mut sink = HashingWriter::new(io::sink());
    match compression {
        // Multi-member: pigz and some registries' tools write several.
        Compression::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(blob), &mut sink)?,
        // Reads every frame (zstd:chunked and pzstd write several) and skips
        // skippable frames; windows up to 128 MiB, zstd's own default limit.
        Compression::Zstd => io::copy(&mut zstd::stream::read::Decoder::new(blob)?, &mut sink)?,
        Compression::None => io::copy(&mut io::BufReader::new(blob), &mut sink)?,
    };
    let (_, diff_id, size) = sink.finish();
    Ok((diff_id, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_to_its_announced_size_and_no_further() {
        let read = |data: &[u8], left: u64| {
            let mut out = Vec::new();
            io::copy(&mut Exactly { inner: data, left }, &mut out).map(|_| out)
        };
        assert_eq!(read(b"abcdef", 6).unwrap(), b"abcdef");
        // Grew after its size was taken: cut there, as the header says.
        assert_eq!(read(b"abcdefgh", 6).unwrap(), b"abcdef");
        // Shrank: an error, not a short entry.
        let err = read(b"abc", 6).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("3 bytes early"), "{err}");
    }

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
    fn tar_size_is_the_size_written_and_progress_only_counts() {
        let long_dir = "d".repeat(120);
        let long_file = format!("{long_dir}/{}", "f".repeat(90));
        let data = vec![7u8; (3 << 20) + 5];
        let dir = tempfile::tempdir().unwrap();
        let on_disk = dir.path().join("file");
        std::fs::write(&on_disk, b"12345").unwrap();
        let mut all = entries();
        all.extend([
            TarEntry {
                path: &long_dir,
                content: Content::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                uname: "",
                gname: "",
            },
            TarEntry {
                path: &long_file,
                content: Content::Bytes(&data),
                mode: 0o644,
                uid: 0,
                gid: 0,
                uname: "",
                gname: "",
            },
            TarEntry {
                path: "from-disk",
                content: Content::File(&on_disk),
                mode: 0o644,
                uid: 0,
                gid: 0,
                uname: "",
                gname: "",
            },
            TarEntry {
                path: "link",
                content: Content::Symlink(&long_file),
                mode: 0o777,
                uid: 0,
                gid: 0,
                uname: "",
                gname: "",
            },
        ]);
        let (plain, d) = write_layer(&all, 0, Vec::new()).unwrap();
        assert_eq!(tar_size(&all).unwrap(), d.uncompressed_size);
        let mut seen = Vec::new();
        let (observed, d2) = write_layer_observed(
            &all,
            0,
            LayerCompression::default(),
            1,
            Vec::new(),
            &mut |n| seen.push(n),
        )
        .unwrap();
        assert!(observed == plain, "progress changed the bytes");
        assert_eq!(d2, d);
        assert_eq!(seen.last(), Some(&d.uncompressed_size));
        assert!(seen.len() >= 4, "every MiB or so: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    }

    #[test]
    fn sizes_over_8_gib_use_the_gnu_binary_size_field() {
        // An octal size field ends at 8 GiB - 1; above it the GNU header
        // holds the size in base-256 (first byte 0x80), which Go's
        // archive/tar (umoci, podman, containerd, Docker) reads. Writing a
        // 9 GiB layer in a test would take minutes: the header is checked.
        let e = TarEntry {
            path: "big",
            content: Content::Bytes(b""),
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: "",
            gname: "",
        };
        let mut h = header_for(&e, 0).unwrap();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_path("big").unwrap();
        h.set_size(9 << 30);
        h.set_cksum();
        assert_eq!(h.as_bytes()[124] & 0x80, 0x80, "base-256 size");
        let bytes = h.as_bytes().to_vec();
        let mut ar = tar::Archive::new(&bytes[..]);
        let first = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(first.header().size().unwrap(), 9 << 30);
        assert_eq!(first.path().unwrap().to_str(), Some("big"));
    }

    #[test]
    fn hard_links_are_link_entries_with_no_data() {
        let data = b"the data".repeat(100);
        let all = [
            TarEntry {
                path: "a",
                content: Content::Bytes(&data),
                mode: 0o644,
                uid: 0,
                gid: 0,
                uname: "",
                gname: "",
            },
            TarEntry {
                path: "b",
                content: Content::HardLink("a"),
                mode: 0o644,
                uid: 0,
                gid: 0,
                uname: "",
                gname: "",
            },
        ];
        let (gz, d) = write_layer(&all, 0, Vec::new()).unwrap();
        assert_eq!(tar_size(&all).unwrap(), d.uncompressed_size);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
        let kinds: Vec<_> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name().unwrap().map(|l| l.into_owned());
                (e.header().entry_type(), e.header().size().unwrap(), link)
            })
            .collect();
        assert_eq!(kinds[1], (tar::EntryType::Link, 0, Some("a".into())));
        assert_eq!(kinds[0].1, data.len() as u64, "the data is stored once");
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
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::of_media_type("application/vnd.oci.image.layer.v1.tar+bzip2"),
            None
        );
    }

    /// Pseudo-random, partly repetitive data, large enough for several
    /// zstd jobs at level 1 (jobs of 4 × 512 KiB windows).
    fn bulky() -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut v = Vec::with_capacity(12 << 20);
        while v.len() < 12 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            // Half noise, half runs: something to compress.
            v.extend_from_slice(&b[..4]);
            v.extend_from_slice(&[b[4]; 12]);
        }
        v
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_the_number_of_workers() {
        let data = bulky();
        let entries = [TarEntry {
            path: "data",
            content: Content::Bytes(&data),
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: "",
            gname: "",
        }];
        let z = LayerCompression::new(Codec::Zstd, Some(1)).unwrap();
        let (one, d1) = write_layer_with(&entries, 0, z, 1, Vec::new()).unwrap();
        for threads in [0, 2, 4, 8] {
            let (n, dn) = write_layer_with(&entries, 0, z, threads, Vec::new()).unwrap();
            assert!(n == one, "{threads} workers wrote other bytes than 1");
            assert_eq!(dn, d1);
        }
        assert_eq!(&one[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
        assert!(one.len() < data.len() / 2, "{} bytes", one.len());
        assert_eq!(d1.digest, Digest::of(&one));
        let m = measure_blob(&one[..], Compression::Zstd).unwrap();
        assert_eq!(m, (d1.diff_id.clone(), d1.uncompressed_size));
        // Frames back to back decode as one stream.
        let mut twice = one.clone();
        twice.extend_from_slice(&one);
        assert_eq!(
            measure_blob(&twice[..], Compression::Zstd).unwrap().1,
            2 * d1.uncompressed_size
        );
        assert!(measure_blob(&b"not zstd"[..], Compression::Zstd).is_err());
    }

    #[test]
    fn gzip_bytes_do_not_depend_on_threads_and_the_default_is_write_layer() {
        let data = bulky();
        let entries = [TarEntry {
            path: "data",
            content: Content::Bytes(&data[..2 << 20]),
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: "",
            gname: "",
        }];
        let (a, _) = write_layer(&entries, 0, Vec::new()).unwrap();
        let gz6 = LayerCompression::default();
        let (b, _) = write_layer_with(&entries, 0, gz6, 8, Vec::new()).unwrap();
        assert!(a == b);
        let gz1 = LayerCompression::new(Codec::Gzip, Some(1)).unwrap();
        let (c, _) = write_layer_with(&entries, 0, gz1, 1, Vec::new()).unwrap();
        assert!(a != c, "the level reaches the compressor");
    }

    #[test]
    fn levels_are_checked_and_named_in_the_cache_key() {
        assert_eq!(
            LayerCompression::default().cache_key(),
            format!("gzip-6-blocks-{}", crate::gzip::BLOCK)
        );
        assert_eq!(
            LayerCompression::default().media_type(),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let z = LayerCompression::new(Codec::Zstd, None).unwrap();
        assert_eq!(z.level(), 3);
        assert!(z.cache_key().starts_with("zstd-3-"), "{}", z.cache_key());
        assert_eq!(
            z.media_type(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let err = LayerCompression::new(Codec::Gzip, Some(12)).unwrap_err();
        assert!(err.contains("1 to 9") && err.contains("gzip"), "{err}");
        let err = LayerCompression::new(Codec::Zstd, Some(22)).unwrap_err();
        assert!(err.contains("1 to 19"), "{err}");
        assert!(LayerCompression::new(Codec::Zstd, Some(0)).is_err());
        assert_eq!("zstd".parse::<Codec>(), Ok(Codec::Zstd));
        assert!("xz".parse::<Codec>().is_err());
    }
}
