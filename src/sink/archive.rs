//! The docker-archive sink: `DIR/<name>.tar`, what `docker save` writes and
//! `docker load` / `podman load` read: `manifest.json` naming the config, the
//! repo:tag and the layers, with every blob under `blobs/sha256/` as docker
//! 25 and later write them. Layers go in as they are in the store (both
//! loaders detect the compression from the bytes); an archive holds one
//! platform. Blobs are streamed from the store, never held in memory.
//!
//! zstd layers (`--compression zstd`, or a zstd base) are allowed: podman
//! load reads them, and so does docker load from Docker 23 on. Older
//! Dockers fail with "unexpected EOF" or "invalid tar header", so the write
//! carries a warning naming the version (docs/decisions/0007-compression.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Artifact, Record, Sink};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::oci::{Kind, canonical_json};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::store::BlobStore;
use oci_spec::image::ImageManifest;

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

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
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

/// The message when an image has several platforms and an archive holds one.
fn one_platform_only(name: &str, platforms: &[String]) -> Error {
    Error::Request(format!(
        "image {name} has {} platforms ({}), and a docker archive holds one: pick it with --platform {}",
        platforms.len(),
        platforms.join(", "),
        platforms.first().map_or("linux/amd64", String::as_str)
    ))
}

/// What a docker archive of one platform manifest holds: its config and
/// layers (both engines' image-load endpoints read the same archive).
pub(crate) struct ArchiveContents {
    /// The config blob (the image ID an engine gives the loaded image).
    pub config: Digest,
    /// The layer blobs, bottom first.
    pub layers: Vec<Digest>,
    /// How many layers are zstd-compressed (Docker before 23 cannot load them).
    pub zstd: usize,
}

impl ArchiveContents {
    /// The blobs of an image manifest.
    ///
    /// # Errors
    /// When a digest in it is malformed.
    pub(crate) fn of(manifest: &ImageManifest) -> Result<Self> {
        Ok(Self {
            config: Digest::from_oci(manifest.config().digest())?,
            layers: manifest
                .layers()
                .iter()
                .map(|l| Digest::from_oci(l.digest()))
                .collect::<std::result::Result<Vec<_>, _>>()?,
            zstd: manifest
                .layers()
                .iter()
                .filter(|l| l.media_type().as_ref().ends_with("+zstd"))
                .count(),
        })
    }
}

impl Sink for ArchiveSink {
    fn check(&self, plan: &Plan) -> Result<()> {
        for img in &plan.images {
            if img.platforms.len() > 1 {
                let names: Vec<String> = img.platforms.iter().map(ToString::to_string).collect();
                return Err(one_platform_only(&img.name, &names));
            }
        }
        Ok(())
    }

    fn write(&mut self, image: &Artifact<'_>, progress: &dyn Progress) -> Result<Vec<Record>> {
        self.write_all(std::slice::from_ref(image), progress)
    }

    /// Writes every archive to a temporary file, and renames them into
    /// place only once all are complete: an image that cannot be written
    /// leaves every archive as it was.
    fn write_all(
        &mut self,
        images: &[Artifact<'_>],
        _progress: &dyn Progress,
    ) -> Result<Vec<Record>> {
        let mut staged = Vec::new();
        let mut records = Vec::new();
        for image in images {
            let (tmp, dest, record) = self.stage(image)?;
            staged.push((tmp, dest));
            records.push(record);
        }
        for (tmp, dest) in staged {
            tmp.persist(&dest)
                .map_err(|e| e.error)
                .ctx(|| format!("cannot rename into {}", dest.display()))?;
        }
        crate::fsutil::sync_dir(&self.dir);
        Ok(records)
    }
}

impl ArchiveSink {
    /// Writes one image's archive to a temporary file beside its place;
    /// returns it, its place and the record of writing it.
    fn stage(&self, image: &Artifact<'_>) -> Result<(tempfile::NamedTempFile, PathBuf, Record)> {
        let manifest = match image.top.kind() {
            Kind::Manifest => image.top.manifest()?,
            Kind::Index => {
                let index = image.top.index()?;
                let names: Vec<String> = index
                    .manifests()
                    .iter()
                    .map(|d| {
                        d.platform().as_ref().map_or_else(
                            || "?".into(),
                            |p| format!("{}/{}", p.os(), p.architecture()),
                        )
                    })
                    .collect();
                return Err(one_platform_only(image.name, &names));
            }
            Kind::Unknown => {
                return Err(Error::Request(format!(
                    "{} has media type {}: a docker archive holds an image manifest",
                    image.top.digest, image.top.media_type
                )));
            }
        };
        let contents = ArchiveContents::of(&manifest)?;
        let dest = self.dir.join(format!("{}.tar", image.name));
        let tmp = write_archive_file(&self.dir, &dest, image, &contents)?;
        let mut record = Record::at(
            format!(
                "docker-archive:{}:{}:{}",
                dest.display(),
                image.name,
                image.tag
            ),
            image.top.digest.clone(),
        );
        if contents.zstd > 0 {
            record.warnings.push(format!(
                "{}: {} of its {} layers are zstd-compressed: docker load needs Docker 23 or later (podman load reads them)",
                dest.display(),
                contents.zstd,
                contents.layers.len()
            ));
        }
        Ok((tmp, dest, record))
    }
}

/// Writes the docker archive of `contents`, tagged `repo_tag`, to `w` as a
/// tar stream (blobs read from `store` as they are written, never held in
/// memory), and returns `w`. The bytes depend only on the blobs and the tag.
///
/// # Errors
/// When a blob cannot be read or `w` cannot be written.
pub(crate) fn write_archive<W: Write>(
    w: W,
    store: &BlobStore,
    repo_tag: &str,
    contents: &ArchiveContents,
) -> std::io::Result<W> {
    let mut tar = tar::Builder::new(w);
    let manifest = json!([{
        "Config": blob_path(&contents.config),
        "RepoTags": [repo_tag],
        "Layers": contents.layers.iter().map(blob_path).collect::<Vec<_>>(),
    }]);
    for d in ["blobs/", "blobs/sha256/"] {
        tar.append(&dir_header(d), std::io::empty())?;
    }
    let mut digests: Vec<&Digest> = contents.layers.iter().collect();
    digests.push(&contents.config);
    digests.sort_unstable();
    digests.dedup();
    for d in digests {
        let path = store.path(d);
        let f = std::fs::File::open(&path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
        })?;
        let len = f.metadata()?.len();
        tar.append(&header(&blob_path(d), len), f)?;
    }
    let mbytes = canonical_json(&manifest);
    tar.append(
        &header("manifest.json", mbytes.len() as u64),
        mbytes.as_slice(),
    )?;
    tar.into_inner()
}

/// Writes the archive to a synced temporary file in `dir`, to be renamed
/// to `dest`.
fn write_archive_file(
    dir: &Path,
    dest: &Path,
    image: &Artifact<'_>,
    contents: &ArchiveContents,
) -> Result<tempfile::NamedTempFile> {
    std::fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
    let tmp = crate::fsutil::readable_temp_in(dir, ".aelimg-archive-")
        .ctx(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let ctx = || format!("cannot write {}", dest.display());
    let mut w = write_archive(
        std::io::BufWriter::new(tmp),
        image.store,
        &format!("{}:{}", image.name, image.tag),
        contents,
    )
    .ctx(ctx)?;
    w.flush().ctx(ctx)?;
    let tmp = w
        .into_inner()
        .map_err(|e| Error::io(ctx(), e.into_error()))?;
    tmp.as_file().sync_all().ctx(ctx)?;
    Ok(tmp)
}
