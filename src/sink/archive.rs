//! The docker-archive sink: `DIR/<name>.tar`, what `docker save` writes and
//! `docker load` / `podman load` read: `manifest.json` naming the config, the
//! repo:tag and the layers, with every blob under `blobs/sha256/` as docker
//! 25 and later write them. Layers stay gzip-compressed (both loaders
//! decompress them); an archive holds one platform.

use std::io::Write as _;
use std::path::PathBuf;

use serde_json::json;

use super::Sink;
use crate::build::BuiltImage;
use crate::error::{Error, IoContext, Result};
use crate::image::canonical_json;
use crate::store::BlobStore;

/// Writes each image to `DIR/<name>.tar`.
pub struct ArchiveSink {
    dir: PathBuf,
}

impl ArchiveSink {
    /// A sink writing below `dir`.
    #[must_use]
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

fn header(path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

fn dir_header(path: &str) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

impl Sink for ArchiveSink {
    fn write(&mut self, store: &BlobStore, image: &BuiltImage) -> Result<String> {
        let [p] = image.platforms.as_slice() else {
            let names: Vec<String> = image
                .platforms
                .iter()
                .map(|p| p.platform.to_string())
                .collect();
            return Err(Error::Usage(format!(
                "image {} has {} platforms ({}), and a docker archive holds one: pick it with --platform {}",
                image.name,
                names.len(),
                names.join(", "),
                names.first().map_or("linux/amd64", String::as_str)
            )));
        };
        std::fs::create_dir_all(&self.dir)
            .ctx(|| format!("cannot create {}", self.dir.display()))?;
        let dest = self.dir.join(format!("{}.tar", image.name));
        let tmp = tempfile::Builder::new()
            .prefix(".aelimg-archive-")
            .tempfile_in(&self.dir)
            .ctx(|| format!("cannot create a temporary file in {}", self.dir.display()))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(tmp));
        let manifest = json!([{
            "Config": blob_path(&p.config.digest),
            "RepoTags": [format!("{}:{}", image.name, image.tag)],
            "Layers": p.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
        }]);
        let ctx = || format!("cannot write {}", dest.display());
        for d in ["blobs/", "blobs/sha256/"] {
            tar.append(&dir_header(d), std::io::empty()).ctx(ctx)?;
        }
        let mut digests: Vec<&str> = p.layers.iter().map(|l| l.digest.as_str()).collect();
        digests.push(&p.config.digest);
        digests.sort_unstable();
        digests.dedup();
        for d in digests {
            let path = store.path(d)?;
            let f = std::fs::File::open(&path).ctx(|| format!("cannot open {}", path.display()))?;
            let len = f
                .metadata()
                .ctx(|| format!("cannot stat {}", path.display()))?
                .len();
            tar.append(&header(&blob_path(d), len), f).ctx(ctx)?;
        }
        let mbytes = canonical_json(&manifest);
        tar.append(
            &header("manifest.json", mbytes.len() as u64),
            mbytes.as_slice(),
        )
        .ctx(ctx)?;
        let mut w = tar.into_inner().ctx(ctx)?;
        w.flush().ctx(ctx)?;
        let tmp = w
            .into_inner()
            .map_err(|e| Error::io(ctx(), e.into_error()))?;
        tmp.as_file().sync_all().ctx(ctx)?;
        tmp.persist(&dest)
            .map_err(|e| e.error)
            .ctx(|| format!("cannot rename into {}", dest.display()))?;
        Ok(format!(
            "docker-archive:{}:{}:{}",
            dest.display(),
            image.name,
            image.tag
        ))
    }
}
