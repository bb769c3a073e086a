//! MCP resources of native-tools: the regular files under its filesystem
//! roots as `file://` URIs. Reading one goes through the same confinement
//! as the fs_* tools ([`Roots::resolve`]) and is limited in size.

use std::collections::VecDeque;
use std::path::Path;

use rmcp::model::{Resource, ResourceContents, ResourceTemplate};

use crate::fs_tools::FsError;
use crate::paths::{PathError, Roots};

/// Largest file served as a resource (larger ones: fs_read with max_bytes).
pub const RESOURCE_MAX_BYTES: u64 = crate::fs_tools::READ_MAX_BYTES;
/// At most this many files are listed (breadth first, in name order).
pub const LISTED_MAX: usize = 1000;
/// The listing looks at no more directory entries than this (a tree of
/// empty directories stays cheap).
const SCANNED_MAX: usize = 100_000;
/// Template of file resource URIs.
pub const FILE_TEMPLATE: &str = "file:///{path}";

/// Why a resource cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// Not a `file://` URI.
    #[error("unsupported resource URI {0:?}: native-tools serves file:// URIs under its roots")]
    NotFileUri(String),
    /// A `file://` URI that does not name a local absolute path.
    #[error("invalid file URI {0:?}")]
    BadUri(String),
    /// Refused by confinement (outside the roots, `..`, symlink escape).
    #[error(transparent)]
    Path(#[from] PathError),
    /// The file cannot be read (missing, a directory, ...).
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Over [`RESOURCE_MAX_BYTES`].
    #[error(
        "{path} is {size} bytes; resources are limited to {RESOURCE_MAX_BYTES} bytes (use fs_read with max_bytes)"
    )]
    TooLarge {
        /// Root-relative path.
        path: String,
        /// Its size.
        size: u64,
    },
}

impl ResourceError {
    /// True when the resource does not exist (as opposed to being refused).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ResourceError::Fs(FsError::Io { error, .. })
            if error.kind() == std::io::ErrorKind::NotFound)
    }
}

/// MIME type by file extension (text/plain or application/octet-stream
/// when unknown, depending on `text`).
fn mime_type(path: &Path, text: bool) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "gz" => "application/gzip",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        _ if text => "text/plain",
        _ => "application/octet-stream",
    }
}

/// The `file://` URI of an absolute path.
fn file_uri(path: &Path) -> Option<String> {
    url::Url::from_file_path(path).ok().map(String::from)
}

/// Regular files under the roots (symlinks are not followed), breadth
/// first, at most [`LISTED_MAX`] (looking at most at [`SCANNED_MAX`] entries).
pub fn list(roots: &Roots) -> Vec<Resource> {
    let mut out = Vec::new();
    let mut scanned = 0usize;
    for root in roots.list() {
        let mut queue = VecDeque::from([root.canonical.clone()]);
        while let Some(dir) = queue.pop_front() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut ents: Vec<_> = rd.filter_map(Result::ok).collect();
            ents.sort_by_key(|e| e.file_name());
            for ent in ents {
                scanned += 1;
                if scanned > SCANNED_MAX {
                    return out;
                }
                let Ok(ft) = ent.file_type() else { continue };
                let path = ent.path();
                if ft.is_dir() {
                    queue.push_back(path);
                    continue;
                }
                if !ft.is_file() {
                    continue;
                }
                if out.len() >= LISTED_MAX {
                    return out;
                }
                let Some(uri) = file_uri(&path) else { continue };
                let rel = path
                    .strip_prefix(&root.canonical)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                let mut r = Resource::new(uri, rel).with_mime_type(mime_type(&path, true));
                if let Ok(m) = ent.metadata() {
                    r = r.with_size(m.len());
                }
                out.push(r);
            }
        }
    }
    out
}

/// The resource template (any file under the roots).
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(FILE_TEMPLATE, "file")
            .with_title("File under the roots")
            .with_description(format!(
                "A regular file inside native-tools' filesystem roots (absolute path), up to {RESOURCE_MAX_BYTES} bytes; \
                 UTF-8 files as text, others as base64 blobs"
            )),
    ]
}

/// Reads the file `uri` names, if the roots allow it.
pub fn read(roots: &Roots, uri: &str) -> Result<ResourceContents, ResourceError> {
    use std::io::Read;
    let url = url::Url::parse(uri).map_err(|_| ResourceError::BadUri(uri.to_string()))?;
    if url.scheme() != "file" {
        return Err(ResourceError::NotFileUri(uri.to_string()));
    }
    let path = url
        .to_file_path()
        .map_err(|()| ResourceError::BadUri(uri.to_string()))?;
    let input = path
        .to_str()
        .ok_or_else(|| ResourceError::BadUri(uri.to_string()))?;
    let r = roots.resolve(input)?;
    let io = |error: std::io::Error| FsError::Io {
        op: "cannot read",
        path: r.relative(),
        error,
    };
    let meta = std::fs::metadata(&r.path).map_err(io)?;
    if meta.is_dir() {
        return Err(FsError::ReadDirectory(r.relative()).into());
    }
    if !meta.is_file() {
        return Err(FsError::NotRegularFile(r.relative()).into());
    }
    if meta.len() > RESOURCE_MAX_BYTES {
        return Err(ResourceError::TooLarge {
            path: r.relative(),
            size: meta.len(),
        });
    }
    let mut buf = Vec::new();
    std::fs::File::open(&r.path)
        .and_then(|f| f.take(RESOURCE_MAX_BYTES + 1).read_to_end(&mut buf))
        .map_err(io)?;
    if buf.len() as u64 > RESOURCE_MAX_BYTES {
        // Grew while being read.
        return Err(ResourceError::TooLarge {
            path: r.relative(),
            size: buf.len() as u64,
        });
    }
    Ok(match String::from_utf8(buf) {
        Ok(text) => ResourceContents::text(text, uri).with_mime_type(mime_type(&r.path, true)),
        Err(e) => ResourceContents::blob(crate::text::base64(e.as_bytes()), uri)
            .with_mime_type(mime_type(&r.path, false)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Roots) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("a.txt"), "hello").unwrap();
        std::fs::write(root.path().join("sub/b.bin"), [0u8, 159, 146, 150]).unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        let roots = Roots::new(&[root.path().to_path_buf()]).unwrap();
        (root, outside, roots)
    }

    fn uri(p: &Path) -> String {
        file_uri(p).unwrap()
    }

    #[test]
    fn lists_files_and_reads_text_and_blobs() {
        let (root, _o, roots) = setup();
        let names: Vec<String> = list(&roots).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["a.txt", "sub/b.bin"]);
        let canon = std::fs::canonicalize(root.path()).unwrap();
        match read(&roots, &uri(&canon.join("a.txt"))).unwrap() {
            ResourceContents::TextResourceContents { text, .. } => assert_eq!(text, "hello"),
            other => panic!("{other:?}"),
        }
        match read(&roots, &uri(&canon.join("sub/b.bin"))).unwrap() {
            ResourceContents::BlobResourceContents { blob, .. } => assert_eq!(blob, "AJ+Slg=="),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_outside_symlink_escape_and_other_schemes() {
        let (root, outside, roots) = setup();
        let e = read(&roots, &uri(&outside.path().join("secret.txt"))).unwrap_err();
        assert!(e.to_string().contains("outside the allowed roots"), "{e}");
        let e = read(&roots, &uri(&root.path().join("escape/secret.txt"))).unwrap_err();
        assert!(e.to_string().contains("access denied"), "{e}");
        let e = read(&roots, "http://example.com/a.txt").unwrap_err();
        assert!(matches!(e, ResourceError::NotFileUri(_)));
        let e = read(&roots, "file://host/a.txt").unwrap_err();
        assert!(matches!(e, ResourceError::BadUri(_)), "{e}");
        let e = read(&roots, &uri(&root.path().join("missing.txt"))).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let e = read(&roots, &uri(&root.path().join("sub"))).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }
}
