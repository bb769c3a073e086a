//! Looking inside an image: where it comes from ([`Source`]: an OCI
//! layout, a docker archive or a registry), its layers read into file lists
//! ([`files`]), and the merged view with what each layer adds, overwrites,
//! deletes and wastes ([`tree`]). `aelimg inspect` prints an
//! [`Inspection`]; [`crate::diff`] compares two images built on the same
//! reading.

pub mod files;
pub mod tree;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, IoContext, LayoutError, Result};
use crate::layout::{Layout, LayoutLock};
use crate::oci::{Document, Kind};
use crate::reference::Reference;
use crate::registry::pull::{fetch_blob, fetch_manifest, select_platform};
use crate::registry::{Options, Registry};
use crate::store::BlobStore;

use files::LayerFiles;
use tree::{LayerStats, Merged, MergedFile};

/// Where an image to inspect is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `oci:DIR[:TAG]`: an OCI layout (the only tag when none is given).
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The tag.
        tag: Option<String>,
    },
    /// `docker-archive:FILE[:NAME:TAG]`: what `docker save` (or aelimg's
    /// docker-archive output) writes (the only image when none is named).
    Archive {
        /// The archive.
        file: PathBuf,
        /// The `RepoTags` entry to pick.
        name: Option<String>,
    },
    /// `[docker://]REGISTRY/REPO[:TAG][@sha256:…]`: an image in a registry.
    Registry(Reference),
}

impl Source {
    /// Parses `oci:DIR[:TAG]`, `docker-archive:FILE[:NAME:TAG]` or a registry
    /// reference (with or without `docker://`). A bare path to a directory
    /// holding an OCI layout is taken as `oci:` that directory.
    ///
    /// # Errors
    /// When `s` is none of these.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("oci:") {
            if rest.is_empty() {
                return Err(Error::Request(format!(
                    "`{s}`: expected oci:DIR or oci:DIR:TAG"
                )));
            }
            return Ok(match rest.rsplit_once(':') {
                Some((d, t)) if !t.contains('/') && !d.is_empty() && !Path::new(rest).is_dir() => {
                    Self::Layout {
                        dir: d.into(),
                        tag: Some(t.to_string()),
                    }
                }
                _ => Self::Layout {
                    dir: rest.into(),
                    tag: None,
                },
            });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            if Path::new(rest).is_file() {
                return Ok(Self::Archive {
                    file: rest.into(),
                    name: None,
                });
            }
            for (i, _) in rest.match_indices(':') {
                if Path::new(&rest[..i]).is_file() {
                    return Ok(Self::Archive {
                        file: rest[..i].into(),
                        name: Some(rest[i + 1..].to_string()).filter(|n| !n.is_empty()),
                    });
                }
            }
            return Err(Error::Request(format!(
                "`{s}`: no such file; expected docker-archive:FILE or docker-archive:FILE:NAME:TAG"
            )));
        }
        if Path::new(s).join("index.json").is_file() {
            return Ok(Self::Layout {
                dir: s.into(),
                tag: None,
            });
        }
        let r = s.strip_prefix("docker://").unwrap_or(s);
        Reference::parse(r).map(Self::Registry).map_err(|e| {
            Error::Request(format!(
                "{e}; or oci:DIR[:TAG] for an OCI layout, docker-archive:FILE[:NAME:TAG] for a docker archive"
            ))
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Layout { dir, tag: None } => write!(f, "oci:{}", dir.display()),
            Self::Layout { dir, tag: Some(t) } => write!(f, "oci:{}:{t}", dir.display()),
            Self::Archive { file, name: None } => write!(f, "docker-archive:{}", file.display()),
            Self::Archive {
                file,
                name: Some(n),
            } => write!(f, "docker-archive:{}:{n}", file.display()),
            Self::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// A layer of an image, as its manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerBlob {
    /// The blob's digest.
    pub digest: Digest,
    /// Its media type (empty in a docker archive, which names none).
    pub media_type: String,
    /// Its size, compressed.
    pub size: u64,
    /// The digest of its uncompressed tar, from the config.
    pub diff_id: Option<Digest>,
}

/// One platform's image, opened for reading: its documents, and the store
/// its layers are read from.
#[derive(Debug)]
pub struct Image {
    /// Where it was read from.
    pub source: String,
    /// The manifest's digest (none in a docker archive).
    pub manifest: Option<Digest>,
    /// `os/arch[/variant]`, from the config.
    pub platform: String,
    /// The config's exact bytes.
    pub config: Vec<u8>,
    /// The config's digest (the image ID engines show).
    pub config_digest: Digest,
    /// The layers, bottom first.
    pub layers: Vec<LayerBlob>,
    store: BlobStore,
    _temp: Option<tempfile::TempDir>,
    /// The registry and repository of a registry image: its layers are
    /// downloaded when first read, so comparing images with the same
    /// layers downloads none.
    remote: Option<(Registry, String)>,
    /// Where the file lists of layers are kept, by diff_id, once read.
    layer_cache: Option<PathBuf>,
    /// A layout's shared lock, held while the image is open: a build
    /// writing the layout meanwhile waits, so its garbage collection
    /// cannot take a blob being read.
    _lock: Option<LayoutLock>,
}

/// `os/arch[/variant]` of a config.
fn config_platform(config: &ImageConfiguration) -> String {
    let mut p = format!("{}/{}", config.os(), config.architecture());
    if let Some(v) = config.variant() {
        p.push('/');
        p.push_str(v);
    }
    p
}

/// The platforms an index lists, `os/arch[/variant]`.
fn index_platforms(index: &oci_spec::image::ImageIndex) -> Vec<String> {
    index
        .manifests()
        .iter()
        .map(|d| {
            d.platform().as_ref().map_or_else(
                || "(no platform)".to_string(),
                |p| {
                    let mut s = format!("{}/{}", p.os(), p.architecture());
                    if let Some(v) = p.variant() {
                        s.push('/');
                        s.push_str(v);
                    }
                    s
                },
            )
        })
        .collect()
}

/// The manifest `top` names for `platform`: `top` itself when it is a
/// manifest, else the index entry for that platform (or the only one).
/// `child` reads an entry's document.
fn pick_manifest(
    top: Document,
    platform: Option<&str>,
    what: &str,
    child: &dyn Fn(&Descriptor) -> Result<Document>,
) -> Result<Document> {
    match top.kind() {
        Kind::Manifest => Ok(top),
        Kind::Index => {
            let index = top.index()?;
            let platforms = index_platforms(&index);
            let desc = match platform {
                Some(p) => {
                    let mut parts = p.split('/');
                    let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
                    let (Some(os), Some(arch)) = (os, arch) else {
                        return Err(Error::Request(format!(
                            "--platform {p}: expected os/arch[/variant], for example linux/amd64"
                        )));
                    };
                    select_platform(&index, os, arch, variant).ok_or_else(|| {
                        Error::Request(format!(
                            "{what} has no {p} image (it has: {})",
                            platforms.join(", ")
                        ))
                    })?
                }
                None => match index.manifests().as_slice() {
                    [only] => only,
                    _ => {
                        return Err(Error::Request(format!(
                            "{what} is a multi-platform image ({}): pick one with --platform {}",
                            platforms.join(", "),
                            platforms.first().map_or("linux/amd64", String::as_str)
                        )));
                    }
                },
            };
            let doc = child(desc)?;
            if doc.kind() != Kind::Manifest {
                return Err(Error::Request(format!(
                    "{what}: the entry for {} is a {}, not an image manifest",
                    platform.unwrap_or("its platform"),
                    doc.media_type
                )));
            }
            Ok(doc)
        }
        Kind::Unknown => Err(Error::Request(format!(
            "{what} has media type {}: expected an image manifest or index",
            top.media_type
        ))),
    }
}

/// Reads a blob of `store` and checks it against its digest.
fn read_checked(store: &BlobStore, digest: &Digest) -> Result<Vec<u8>> {
    let bytes = store.read(digest)?;
    if Digest::of(&bytes) != *digest {
        return Err(LayoutError::Corrupt {
            root: store.root().to_path_buf(),
            digest: digest.clone(),
        }
        .into());
    }
    Ok(bytes)
}

/// The platforms of a multi-platform image (`os/arch[/variant]`, as its
/// index lists them); `None` for a single-manifest image. Reads only the
/// top document.
///
/// # Errors
/// When the image cannot be found or read.
pub fn platforms(source: &Source, registry: &Options) -> Result<Option<Vec<String>>> {
    let top = match source {
        Source::Layout { dir, tag } => open_layout(dir)?.find(tag.as_deref())?.0,
        Source::Registry(r) => {
            let reg = Registry::connect(&r.registry, r.api_host(), registry.clone())?;
            fetch_manifest(&reg, &r.repository, r.object())?
        }
        Source::Archive { .. } => return Ok(None),
    };
    Ok(match top.kind() {
        Kind::Index => Some(index_platforms(&top.index()?)),
        _ => None,
    })
}

impl Image {
    /// Opens the image `source` names, for `platform` (`os/arch[/variant]`;
    /// needed for a multi-platform image). A registry image's config, and
    /// each layer when it is first read, are downloaded (and verified) into
    /// a temporary directory that lives as long as the image.
    ///
    /// # Errors
    /// When the image cannot be found or read, or `platform` is needed and
    /// missing or not in the image.
    pub fn open(source: &Source, platform: Option<&str>, registry: &Options) -> Result<Self> {
        Self::open_locked(source, platform, registry, true)
    }

    /// [`Image::open`], without the layout's shared lock when `lock` is
    /// false: for a reader that must never wait (what `build` compares
    /// with before writing the layout, while another process may hold its
    /// lock), and accepts an error if a writer changes the layout meanwhile.
    ///
    /// # Errors
    /// As [`Image::open`].
    pub fn open_locked(
        source: &Source,
        platform: Option<&str>,
        registry: &Options,
        lock: bool,
    ) -> Result<Self> {
        let what = source.to_string();
        match source {
            Source::Layout { dir, tag } => {
                let layout = open_layout(dir)?;
                let lock = if lock {
                    LayoutLock::shared(layout.root(), &crate::progress::Silent)?
                } else {
                    None
                };
                let (top, _) = layout.find(tag.as_deref())?;
                let manifest = pick_manifest(top, platform, &what, &|d| layout.read(d))?;
                let mut image =
                    Self::from_store(layout.store().clone(), None, &manifest, what, platform)?;
                image._lock = lock;
                Ok(image)
            }
            Source::Registry(r) => {
                let reg = Registry::connect(&r.registry, r.api_host(), registry.clone())?;
                let top = fetch_manifest(&reg, &r.repository, r.object())?;
                let manifest = pick_manifest(top, platform, &what, &|d| {
                    fetch_manifest(&reg, &r.repository, d.digest().as_ref())
                })?;
                let temp =
                    tempfile::tempdir().ctx(|| "cannot make a temporary directory".into())?;
                let store = BlobStore::open(temp.path())?;
                let m = manifest.manifest()?;
                fetch_blob(
                    &reg,
                    &r.repository,
                    &Digest::from_oci(m.config().digest())?,
                    &store,
                )?;
                let mut image = Self::from_store(store, Some(temp), &manifest, what, platform)?;
                image.remote = Some((reg, r.repository.clone()));
                Ok(image)
            }
            Source::Archive { file, name } => open_archive(file, name.as_deref(), what, platform),
        }
    }

    /// The image of `manifest`, whose config and layers are in `store`
    /// (kept alive by `temp`, when given).
    ///
    /// # Errors
    /// When the manifest or config is malformed or missing.
    pub fn from_store(
        store: BlobStore,
        temp: Option<tempfile::TempDir>,
        manifest: &Document,
        source: String,
        platform: Option<&str>,
    ) -> Result<Self> {
        let m = manifest.manifest()?;
        let config_digest = Digest::from_oci(m.config().digest())?;
        let config = read_checked(&store, &config_digest)?;
        let mut layers = Vec::new();
        for l in m.layers() {
            layers.push(LayerBlob {
                digest: Digest::from_oci(l.digest())?,
                media_type: l.media_type().to_string(),
                size: l.size(),
                diff_id: None,
            });
        }
        Self::finish(
            store,
            temp,
            Some(manifest.digest.clone()),
            config,
            config_digest,
            layers,
            source,
            platform,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        store: BlobStore,
        temp: Option<tempfile::TempDir>,
        manifest: Option<Digest>,
        config: Vec<u8>,
        config_digest: Digest,
        mut layers: Vec<LayerBlob>,
        source: String,
        platform: Option<&str>,
    ) -> Result<Self> {
        let parsed = crate::oci::parse_config(&config, &config_digest)?;
        let actual = config_platform(&parsed);
        if let Some(p) = platform {
            let wanted: Vec<&str> = p.split('/').collect();
            let have: Vec<&str> = actual.split('/').collect();
            if wanted.len() < 2 || wanted.iter().zip(&have).any(|(w, h)| w != h) {
                return Err(Error::Request(format!(
                    "{source} is a {actual} image, not {p}"
                )));
            }
        }
        let diff_ids = parsed.rootfs().diff_ids();
        if diff_ids.len() == layers.len() {
            for (l, d) in layers.iter_mut().zip(diff_ids) {
                l.diff_id = Digest::parse(d).ok();
            }
        }
        Ok(Self {
            source,
            manifest,
            platform: actual,
            config,
            config_digest,
            layers,
            store,
            _temp: temp,
            remote: None,
            layer_cache: None,
            _lock: None,
        })
    }

    /// The files of layer `index` (0 is the bottom).
    ///
    /// # Errors
    /// When the blob is missing or not a (compressed) tar.
    pub fn read_layer(&self, index: usize) -> Result<LayerFiles> {
        let l = &self.layers[index];
        let cached = match (&self.layer_cache, &l.diff_id) {
            (Some(dir), Some(id)) => Some(dir.join(format!("{}.json", id.hex()))),
            _ => None,
        };
        if let Some(files) = cached
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            return Ok(files);
        }
        let files = self.read_layer_blob(index)?;
        if let Some(p) = cached
            && let Ok(bytes) = serde_json::to_vec(&files)
        {
            // Best effort: a cache that cannot be written is read around.
            let _ = crate::fsutil::write_cache_record(&p, &bytes);
        }
        Ok(files)
    }

    /// Keeps the file lists of this image's layers in `dir`, by diff_id,
    /// and reads them from there: for images whose configs' diff_ids can
    /// be trusted (aelimg's own builds), read over and over (the size
    /// changes `build` prints).
    #[must_use]
    pub fn with_layer_cache(mut self, dir: PathBuf) -> Self {
        self.layer_cache = Some(dir);
        self
    }

    fn read_layer_blob(&self, index: usize) -> Result<LayerFiles> {
        let l = &self.layers[index];
        if let Some((reg, repo)) = &self.remote {
            fetch_blob(reg, repo, &l.digest, &self.store)?;
        }
        let path = self.store.path(&l.digest);
        let f = File::open(&path).ctx(|| format!("cannot open layer {}", l.digest))?;
        files::read_layer(f).ctx(|| format!("{}: layer {} ({})", self.source, index, l.digest))
    }

    /// Every layer read and merged, bottom first.
    ///
    /// # Errors
    /// When a layer cannot be read.
    pub fn merged(&self) -> Result<(Merged, Vec<LayerFiles>)> {
        let mut merged = Merged::default();
        let mut read = Vec::new();
        for i in 0..self.layers.len() {
            let l = self.read_layer(i)?;
            merged.push(&l);
            read.push(l);
        }
        Ok((merged, read))
    }

    /// Bytes to pull: the layers and the config.
    #[must_use]
    pub fn compressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum::<u64>() + self.config.len() as u64
    }

    /// The config as JSON.
    ///
    /// # Errors
    /// When it is not JSON.
    pub fn config_json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.config)
            .map_err(|e| Error::json(format!("config {}", self.config_digest), e))
    }
}

/// Opens the layout `dir`; a directory of layouts (as `aelimg build`
/// writes them) is refused with their names.
fn open_layout(dir: &Path) -> Result<Layout> {
    if !dir.join("index.json").is_file() && dir.is_dir() {
        let mut inside: Vec<String> = std::fs::read_dir(dir)
            .ctx(|| format!("cannot read {}", dir.display()))?
            .flatten()
            .filter(|e| e.path().join("index.json").is_file())
            .map(|e| format!("oci:{}", e.path().display()))
            .collect();
        inside.sort();
        if let [only] = inside.as_slice() {
            return Layout::open(Path::new(&only["oci:".len()..]));
        }
        if !inside.is_empty() {
            return Err(Error::Request(format!(
                "{} holds several layouts: name one ({})",
                dir.display(),
                inside.join(", ")
            )));
        }
    }
    Layout::open(dir)
}

/// One image of a docker archive's `manifest.json`.
#[derive(Debug, serde::Deserialize)]
struct ArchiveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Opens an image of a docker archive: its config and layers are copied
/// into a temporary store (their digests computed on the way).
fn open_archive(
    file: &Path,
    name: Option<&str>,
    what: String,
    platform: Option<&str>,
) -> Result<Image> {
    use std::io::Read as _;
    let ctx = || format!("cannot read {}", file.display());
    let mut manifest = None;
    {
        let mut a = tar::Archive::new(File::open(file).ctx(ctx)?);
        for e in a.entries_with_seek().ctx(ctx)? {
            let mut e = e.ctx(ctx)?;
            if files::normalize(&String::from_utf8_lossy(&e.path_bytes())) == "/manifest.json" {
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).ctx(ctx)?;
                manifest = Some(bytes);
                break;
            }
        }
    }
    let bytes = manifest.ok_or_else(|| {
        Error::Request(format!(
            "{} is not a docker archive (no manifest.json)",
            file.display()
        ))
    })?;
    let entries: Vec<ArchiveEntry> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::json(format!("{}: manifest.json", file.display()), e))?;
    let tags = |e: &ArchiveEntry| e.repo_tags.clone().unwrap_or_default();
    let entry = match name {
        Some(n) => entries.iter().find(|e| {
            tags(e)
                .iter()
                .any(|t| t == n || t.strip_suffix(":latest") == Some(n))
        }),
        None if entries.len() == 1 => entries.first(),
        None => None,
    };
    let Some(entry) = entry else {
        let all: Vec<String> = entries.iter().flat_map(tags).collect();
        return Err(Error::Request(format!(
            "{}: {} (it holds: {})",
            file.display(),
            name.map_or_else(
                || "several images: say which with docker-archive:FILE:NAME:TAG".to_string(),
                |n| format!("no image tagged `{n}`")
            ),
            if all.is_empty() {
                "untagged images".to_string()
            } else {
                all.join(", ")
            }
        )));
    };
    let temp = tempfile::tempdir().ctx(|| "cannot make a temporary directory".into())?;
    let store = BlobStore::open(temp.path())?;
    let wanted: Vec<String> = std::iter::once(&entry.config)
        .chain(&entry.layers)
        .map(|p| files::normalize(p))
        .collect();
    let mut found: HashMap<String, (Digest, u64)> = HashMap::new();
    {
        let mut a = tar::Archive::new(File::open(file).ctx(ctx)?);
        for e in a.entries_with_seek().ctx(ctx)? {
            let mut e = e.ctx(ctx)?;
            let path = files::normalize(&String::from_utf8_lossy(&e.path_bytes()));
            if !wanted.contains(&path) || found.contains_key(&path) {
                continue;
            }
            let mut pending = store.begin()?;
            let mut w = crate::layer::HashingWriter::new(&mut pending);
            std::io::copy(&mut e, &mut w).ctx(ctx)?;
            let (_, digest, size) = w.finish();
            store.commit(pending, &digest)?;
            found.insert(path, (digest, size));
        }
    }
    let get = |p: &String| {
        found.get(&files::normalize(p)).cloned().ok_or_else(|| {
            Error::Request(format!(
                "{}: manifest.json names {p}, which the archive lacks",
                file.display()
            ))
        })
    };
    let (config_digest, _) = get(&entry.config)?;
    let config = store.read(&config_digest)?;
    let mut layers = Vec::new();
    for l in &entry.layers {
        let (digest, size) = get(l)?;
        layers.push(LayerBlob {
            digest,
            media_type: String::new(),
            size,
            diff_id: None,
        });
    }
    Image::finish(
        store,
        Some(temp),
        None,
        config,
        config_digest,
        layers,
        what,
        platform,
    )
}

/// A layer in an [`Inspection`].
#[derive(Debug, Clone, Serialize)]
pub struct LayerSummary {
    /// 0 is the bottom layer.
    pub index: usize,
    /// The blob.
    #[serde(flatten)]
    pub blob: LayerBlob,
    /// Bytes of its uncompressed tar.
    pub uncompressed: u64,
    /// What it does to the image.
    #[serde(flatten)]
    pub stats: LayerStats,
}

/// What `aelimg inspect` shows of an image.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Where it was read from.
    pub source: String,
    /// The manifest's digest (none in a docker archive).
    pub manifest: Option<Digest>,
    /// The config's digest.
    pub config: Digest,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Bytes to pull: layers and config.
    pub compressed: u64,
    /// Bytes of the uncompressed layers.
    pub uncompressed: u64,
    /// Regular-file bytes of the merged view (what a container sees).
    pub file_bytes: u64,
    /// Regular-file bytes layers ship that later layers overwrite or delete.
    pub wasted: u64,
    /// The layers, bottom first.
    pub layers: Vec<LayerSummary>,
    /// The largest regular files of the merged view, largest first.
    pub largest: Vec<MergedFile>,
    /// The merged view, in tree order (`/` left out).
    pub files: Vec<MergedFile>,
}

/// Reads every layer of `image` and sums it up; `largest` files are listed.
///
/// # Errors
/// When a layer cannot be read.
pub fn inspect(image: &Image, largest: usize) -> Result<(Inspection, Merged)> {
    let (merged, read) = image.merged()?;
    let layers = image
        .layers
        .iter()
        .zip(&read)
        .zip(&merged.stats)
        .enumerate()
        .map(|(index, ((blob, files), stats))| LayerSummary {
            index,
            blob: blob.clone(),
            uncompressed: files.tar_size,
            stats: stats.clone(),
        })
        .collect::<Vec<_>>();
    let files: Vec<MergedFile> = merged.tree().into_iter().cloned().collect();
    let mut big: Vec<MergedFile> = files
        .iter()
        .filter(|f| f.file.kind == files::FileType::File)
        .cloned()
        .collect();
    big.sort_by(|a, b| {
        b.file
            .size
            .cmp(&a.file.size)
            .then_with(|| a.file.path.cmp(&b.file.path))
    });
    big.truncate(largest);
    let inspection = Inspection {
        source: image.source.clone(),
        manifest: image.manifest.clone(),
        config: image.config_digest.clone(),
        platform: image.platform.clone(),
        compressed: image.compressed_size(),
        uncompressed: layers.iter().map(|l| l.uncompressed).sum(),
        file_bytes: files
            .iter()
            .filter(|f| f.file.kind == files::FileType::File)
            .map(|f| f.file.size)
            .sum(),
        wasted: merged.wasted(),
        layers,
        largest: big,
        files,
    };
    Ok((inspection, merged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            Source::parse("oci:out/ael:1.0").unwrap(),
            Source::Layout {
                dir: "out/ael".into(),
                tag: Some("1.0".into())
            }
        );
        assert_eq!(
            Source::parse("oci:out/ael").unwrap(),
            Source::Layout {
                dir: "out/ael".into(),
                tag: None
            }
        );
        assert!(matches!(
            Source::parse("127.0.0.1:5000/acme/ael:1").unwrap(),
            Source::Registry(_)
        ));
        assert!(matches!(
            Source::parse("docker://127.0.0.1:5000/acme/ael:1").unwrap(),
            Source::Registry(_)
        ));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.tar");
        std::fs::write(&f, b"").unwrap();
        assert_eq!(
            Source::parse(&format!("docker-archive:{}:ael:1.0", f.display())).unwrap(),
            Source::Archive {
                file: f.clone(),
                name: Some("ael:1.0".into())
            }
        );
        let e = Source::parse("docker-archive:/nonexistent.tar")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
        assert!(Source::parse("oci:").is_err());
        assert!(Source::parse("Not A Ref").unwrap_err().is_request());
    }
}
