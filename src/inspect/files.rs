//! Reading one layer: its tar stream (gzip, zstd or plain, told apart by
//! the first bytes) into the list of what it holds, with the OCI whiteouts
//! (`.wh.NAME` deletes `NAME` of the layers below, `.wh..wh..opq` hides
//! everything the layers below hold in its directory) taken out of the
//! list and recorded as such.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// The kind of a file in a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link: another name of an earlier file's data.
    Hardlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
}

impl FileType {
    /// The letter `ls -l` shows for it.
    #[must_use]
    pub fn letter(self) -> char {
        match self {
            Self::File | Self::Hardlink => '-',
            Self::Dir => 'd',
            Self::Symlink => 'l',
            Self::Char => 'c',
            Self::Block => 'b',
            Self::Fifo => 'p',
        }
    }
}

/// One file as a layer (or the merged view) has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Absolute path in the image (`/srv/hello.txt`).
    pub path: String,
    /// What it is.
    #[serde(rename = "type")]
    pub kind: FileType,
    /// Bytes of content: a regular file's length, a symbolic link's target
    /// length (what `lstat` gives), 0 for a directory; a hard link has the
    /// size of the file it names.
    pub size: u64,
    /// Permission bits with setuid, setgid and sticky (`0o7777` at most),
    /// shown in JSON as four octal digits (`"0644"`).
    #[serde(serialize_with = "octal", deserialize_with = "from_octal")]
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time, seconds since 1970.
    pub mtime: u64,
    /// A symbolic link's target, or the path a hard link names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// sha256 of a regular file's (or hard link's) content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn octal<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{mode:04o}"))
}

fn from_octal<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let s = String::deserialize(d)?;
    u32::from_str_radix(&s, 8).map_err(serde::de::Error::custom)
}

impl FileInfo {
    /// `-rw-r--r--`, as `ls -l` shows the kind and mode.
    #[must_use]
    pub fn mode_string(&self) -> String {
        let mut s = String::with_capacity(10);
        s.push(self.kind.letter());
        let m = self.mode;
        for (shift, special, lower, upper) in [(6, 0o4000, 's', 'S'), (3, 0o2000, 's', 'S')] {
            let bits = (m >> shift) & 7;
            s.push(if bits & 4 != 0 { 'r' } else { '-' });
            s.push(if bits & 2 != 0 { 'w' } else { '-' });
            s.push(match (bits & 1 != 0, m & special != 0) {
                (true, true) => lower,
                (false, true) => upper,
                (true, false) => 'x',
                (false, false) => '-',
            });
        }
        let bits = m & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, m & 0o1000 != 0) {
            (true, true) => 't',
            (false, true) => 'T',
            (true, false) => 'x',
            (false, false) => '-',
        });
        s
    }
}

/// What one layer holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LayerFiles {
    /// Its files, in the order of the tar, whiteouts left out.
    pub entries: Vec<FileInfo>,
    /// Paths this layer deletes from the layers below (`.wh.NAME`).
    pub whiteouts: Vec<String>,
    /// Directories whose contents from the layers below this layer hides
    /// (`.wh..wh..opq`).
    pub opaque: Vec<String>,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
}

/// The prefix of a whiteout's file name.
pub const WHITEOUT: &str = ".wh.";
/// The file name of an opaque-directory marker.
pub const OPAQUE: &str = ".wh..wh..opq";

/// A tar path as an absolute path in the image: `./a/b/` → `/a/b`; the
/// root is `/`.
#[must_use]
pub fn normalize(raw: &str) -> String {
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// The directory holding `path` (`/a/b` → `/a`, `/a` → `/`).
#[must_use]
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// `dir` joined with `name`.
#[must_use]
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// A reader of the uncompressed tar in `blob`, whatever its compression
/// (gzip, zstd or none, told by the first bytes, as container engines do).
///
/// # Errors
/// When the blob cannot be read.
pub fn decompressed<'r, R: Read + 'r>(blob: R) -> io::Result<Box<dyn Read + 'r>> {
    let mut r = BufReader::with_capacity(1 << 16, blob);
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    })
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads a layer blob (compressed or not) into the list of its files,
/// hashing each regular file's content. Memory stays bounded by the number
/// of entries, not their sizes.
///
/// # Errors
/// When the blob is not a valid (compressed) tar.
pub fn read_layer<R: Read>(blob: R) -> io::Result<LayerFiles> {
    let mut counting = Counting {
        inner: decompressed(blob)?,
        count: 0,
    };
    let mut out = LayerFiles::default();
    let mut by_path: HashMap<String, usize> = HashMap::new();
    {
        let mut archive = tar::Archive::new(&mut counting);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = normalize(&raw);
            if path == "/" {
                continue;
            }
            let name = path.rsplit('/').next().unwrap_or_default();
            if name == OPAQUE {
                out.opaque.push(parent(&path).to_string());
                continue;
            }
            if let Some(deleted) = name.strip_prefix(WHITEOUT) {
                out.whiteouts.push(join(parent(&path), deleted));
                continue;
            }
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Directory => FileType::Dir,
                tar::EntryType::Symlink => FileType::Symlink,
                tar::EntryType::Link => FileType::Hardlink,
                tar::EntryType::Char => FileType::Char,
                tar::EntryType::Block => FileType::Block,
                tar::EntryType::Fifo => FileType::Fifo,
                t if t.is_file() || t.is_contiguous() => FileType::File,
                // PAX and GNU extension headers are read by the tar crate;
                // anything else carries no file.
                _ => continue,
            };
            // An empty numeric field is 0, as Go's archive/tar (and so
            // umoci, containerd and docker) reads it.
            let mode = header.mode().unwrap_or(0) & 0o7777;
            let uid = header.uid().unwrap_or(0);
            let gid = header.gid().unwrap_or(0);
            let mtime = header.mtime().unwrap_or(0);
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            let mut info = FileInfo {
                path: path.clone(),
                kind,
                size: 0,
                mode,
                uid,
                gid,
                mtime,
                link: None,
                digest: None,
            };
            match kind {
                FileType::File => {
                    let mut hasher = Sha256::new();
                    let mut buf = vec![0u8; 1 << 16];
                    loop {
                        let n = entry.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buf[..n]);
                        info.size += n as u64;
                    }
                    info.digest = Some(Digest::from_hasher(hasher));
                }
                FileType::Symlink => {
                    let target = link.unwrap_or_default();
                    info.size = target.len() as u64;
                    info.link = Some(target);
                }
                FileType::Hardlink => {
                    let target = normalize(&link.unwrap_or_default());
                    // A link to an earlier file of the same layer shares
                    // its data; one to a lower layer's is resolved in the
                    // merged view.
                    if let Some(t) = by_path.get(&target).map(|&i| &out.entries[i]) {
                        info.size = t.size;
                        info.digest.clone_from(&t.digest);
                    }
                    info.link = Some(target);
                }
                _ => {}
            }
            match by_path.get(&path) {
                // The same path twice in one tar: the later entry wins, as
                // extraction has it.
                Some(&i) => out.entries[i] = info,
                None => {
                    by_path.insert(path, out.entries.len());
                    out.entries.push(info);
                }
            }
        }
    }
    // The end-of-archive blocks and padding count in the tar's size.
    io::copy(&mut counting, &mut io::sink())?;
    out.tar_size = counting.count;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], u32)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_uid(1);
            h.set_gid(2);
            h.set_mtime(7);
            if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
                h.set_size(0);
                b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                    .unwrap();
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn reads_files_links_and_whiteouts_from_gzip_zstd_and_plain_tars() {
        use tar::EntryType as T;
        let tar = tar_of(&[
            ("./etc/", T::Directory, b"", 0o755),
            ("./etc/passwd", T::Regular, b"root\n", 0o644),
            ("etc/shadow", T::Link, b"etc/passwd", 0o600),
            ("bin/sh", T::Symlink, b"busybox", 0o777),
            ("usr/.wh.lib", T::Regular, b"", 0o644),
            ("opt/.wh..wh..opq", T::Regular, b"", 0o644),
            ("bin/tool", T::Regular, b"x", 0o4755),
        ]);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, &tar).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        for blob in [&tar, &gz, &zst] {
            let l = read_layer(&blob[..]).unwrap();
            assert_eq!(l.tar_size, tar.len() as u64);
            let paths: Vec<&str> = l.entries.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(
                paths,
                ["/etc", "/etc/passwd", "/etc/shadow", "/bin/sh", "/bin/tool"]
            );
            assert_eq!(l.whiteouts, ["/usr/lib"]);
            assert_eq!(l.opaque, ["/opt"]);
            let e = &l.entries;
            assert_eq!((e[1].size, e[1].mode, e[1].uid, e[1].gid), (5, 0o644, 1, 2));
            assert_eq!(e[1].digest, Some(Digest::of(b"root\n")));
            assert_eq!(e[2].kind, FileType::Hardlink);
            assert_eq!((e[2].size, e[2].digest.clone()), (5, e[1].digest.clone()));
            assert_eq!(e[3].link.as_deref(), Some("busybox"));
            assert_eq!(e[3].size, 7);
            assert_eq!(e[4].mode_string(), "-rwsr-xr-x");
            assert_eq!(e[0].mode_string(), "drwxr-xr-x");
        }
        let l = read_layer(&tar[..]).unwrap();
        let json = serde_json::to_value(&l.entries[1]).unwrap();
        assert_eq!(json["mode"], "0644");
        assert_eq!(json["type"], "file");
        // The cache of file lists reads back what it wrote.
        let back: LayerFiles = serde_json::from_slice(&serde_json::to_vec(&l).unwrap()).unwrap();
        assert_eq!(back.entries, l.entries);
        assert_eq!((back.whiteouts, back.opaque), (l.whiteouts, l.opaque));
    }

    #[test]
    fn paths() {
        assert_eq!(normalize("./a//b/"), "/a/b");
        assert_eq!(normalize("./"), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
