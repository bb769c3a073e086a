//! From a plan to images in a blob store: payload, layers, config, manifest,
//! index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;

use crate::cargo::{BinId, Binaries, PayloadBuilder};
use crate::error::{Error, Result};
use crate::image::{Document, PlatformImage, build_index, build_platform_image};
use crate::layer::{Content, LayerDigests, TarEntry, write_layer};
use crate::plan::{EntryKind, ImagePlan, LayerPlan, Plan};
use crate::platform::Platform;
use crate::store::BlobStore;

/// An image whose blobs are all in the store.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Name.
    pub name: String,
    /// Tag.
    pub tag: String,
    /// One image per platform.
    pub platforms: Vec<PlatformImage>,
    /// The index, when there is more than one platform.
    pub index: Option<Document>,
    /// Layer names, bottom first (same on every platform).
    pub layer_names: Vec<String>,
    /// The size limit, bytes.
    pub size_limit: Option<u64>,
}

impl BuiltImage {
    /// The document a tag points at: the index, or the only manifest.
    #[must_use]
    pub fn top(&self) -> &Document {
        self.index
            .as_ref()
            .unwrap_or_else(|| &self.platforms[0].manifest)
    }

    /// Every blob digest the image needs, each once.
    #[must_use]
    pub fn blobs(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        for p in &self.platforms {
            out.insert(p.config.digest.clone());
            out.insert(p.manifest.digest.clone());
            for l in &p.layers {
                out.insert(l.digest.clone());
            }
        }
        if let Some(i) = &self.index {
            out.insert(i.digest.clone());
        }
        out.into_iter().collect()
    }
}

/// Builds every image of the plan into `store`.
pub fn build(
    plan: &Plan,
    store: &BlobStore,
    payload: &dyn PayloadBuilder,
) -> Result<Vec<BuiltImage>> {
    let mut wanted: BTreeMap<Platform, BTreeSet<BinId>> = BTreeMap::new();
    for img in &plan.images {
        for p in &img.platforms {
            wanted.entry(*p).or_default().extend(img.cargo_binaries());
        }
    }
    wanted.retain(|_, v| !v.is_empty());
    let binaries = payload.build(&wanted)?;
    let mut cache: HashMap<String, LayerDigests> = HashMap::new();
    plan.images
        .iter()
        .map(|img| build_image(plan, img, store, &binaries, &mut cache))
        .collect()
}

fn build_image(
    plan: &Plan,
    img: &ImagePlan,
    store: &BlobStore,
    binaries: &Binaries,
    cache: &mut HashMap<String, LayerDigests>,
) -> Result<BuiltImage> {
    let mut platforms = Vec::new();
    for &platform in &img.platforms {
        let mut layers = Vec::new();
        for (i, layer) in img.layers.iter().enumerate() {
            // A layer with no per-platform binary is the same blob on every platform.
            let key = if layer_is_portable(layer, platform)? {
                format!("{}/{i}", img.name)
            } else {
                format!("{}/{i}/{platform}", img.name)
            };
            if let Some(d) = cache.get(&key) {
                layers.push(d.clone());
                continue;
            }
            let d = build_layer(plan, img, layer, platform, store, binaries)?;
            cache.insert(key, d.clone());
            layers.push(d);
        }
        let pi = build_platform_image(img, platform, layers, plan.source_date_epoch)?;
        store.put_bytes(&pi.config.bytes, &pi.config.digest)?;
        store.put_bytes(&pi.manifest.bytes, &pi.manifest.digest)?;
        platforms.push(pi);
    }
    let index = store_index(&platforms, store)?;
    Ok(BuiltImage {
        name: img.name.clone(),
        tag: img.tag.clone(),
        platforms,
        index,
        layer_names: img.layers.iter().map(|l| l.name.clone()).collect(),
        size_limit: img.size_limit,
    })
}

/// The index of a multi-platform image, stored; `None` for one platform.
pub fn store_index(platforms: &[PlatformImage], store: &BlobStore) -> Result<Option<Document>> {
    if platforms.len() < 2 {
        return Ok(None);
    }
    let idx = build_index(platforms, &HashMap::new())?;
    store.put_bytes(&idx.bytes, &idx.digest)?;
    Ok(Some(idx))
}

/// True when no entry depends on the platform (no cargo binary, no ELF file).
fn layer_is_portable(layer: &LayerPlan, _platform: Platform) -> Result<bool> {
    for e in &layer.entries {
        match &e.kind {
            EntryKind::Cargo { .. } => return Ok(false),
            EntryKind::File { source } if crate::elf::is_elf(source)? => return Ok(false),
            _ => {}
        }
    }
    Ok(true)
}

fn build_layer(
    plan: &Plan,
    img: &ImagePlan,
    layer: &LayerPlan,
    platform: Platform,
    store: &BlobStore,
    binaries: &Binaries,
) -> Result<LayerDigests> {
    let name_of = |id: u32| -> &str {
        if id == 0 {
            "root"
        } else if id == img.user.uid {
            &img.user.name
        } else {
            ""
        }
    };
    let group_of = |id: u32| -> &str {
        if id == 0 {
            "root"
        } else if id == img.user.gid {
            &img.user.group
        } else {
            ""
        }
    };
    let mut entries = Vec::with_capacity(layer.entries.len());
    for e in &layer.entries {
        let content = match &e.kind {
            EntryKind::Dir => Content::Dir,
            EntryKind::Generated { bytes, .. } => Content::Bytes(bytes),
            EntryKind::Symlink { target } => Content::Symlink(target),
            EntryKind::File { source } => {
                check_binary(source, &e.path, platform)?;
                Content::File(source)
            }
            EntryKind::Cargo { package, bin } => {
                let p = binaries
                    .get(&(platform, (package.clone(), bin.clone())))
                    .ok_or_else(|| {
                        Error::Cargo(format!("no {bin} binary of {package} for {platform}"))
                    })?;
                crate::elf::check(p, &format!("/{}", e.path), platform)?;
                Content::File(p)
            }
        };
        entries.push(TarEntry {
            path: &e.path,
            content,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            uname: name_of(e.uid),
            gname: group_of(e.gid),
        });
    }
    let pending = store.begin()?;
    let (pending, digests) = write_layer(&entries, plan.source_date_epoch, pending)?;
    store.commit(pending, &digests.digest)?;
    Ok(digests)
}

fn check_binary(source: &Path, dest: &str, platform: Platform) -> Result<()> {
    if crate::elf::is_elf(source)? {
        crate::elf::check(source, &format!("/{dest}"), platform)?;
    }
    Ok(())
}

/// Sizes of one layer on one platform.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSize {
    /// Layer name.
    pub name: String,
    /// Blob digest.
    pub digest: String,
    /// Compressed bytes.
    pub compressed: u64,
    /// Uncompressed bytes.
    pub uncompressed: u64,
}

/// Sizes of one image on one platform.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformSize {
    /// Image name.
    pub image: String,
    /// Platform.
    pub platform: String,
    /// Manifest digest.
    pub manifest: String,
    /// Compressed bytes (layers + config).
    pub compressed: u64,
    /// Uncompressed bytes (layers).
    pub uncompressed: u64,
    /// Limit, when set.
    pub limit: Option<u64>,
    /// Whether the uncompressed size (what `docker images` shows) is within
    /// the limit.
    pub within_limit: bool,
    /// Per layer.
    pub layers: Vec<LayerSize>,
}

/// The size report of a build.
#[must_use]
pub fn size_report(images: &[BuiltImage]) -> Vec<PlatformSize> {
    let mut out = Vec::new();
    for img in images {
        for p in &img.platforms {
            let layers: Vec<LayerSize> = p
                .layers
                .iter()
                .zip(&img.layer_names)
                .map(|(l, n)| LayerSize {
                    name: n.clone(),
                    digest: l.digest.clone(),
                    compressed: l.size,
                    uncompressed: l.uncompressed_size,
                })
                .collect();
            let compressed =
                layers.iter().map(|l| l.compressed).sum::<u64>() + p.config.bytes.len() as u64;
            let uncompressed = layers.iter().map(|l| l.uncompressed).sum();
            out.push(PlatformSize {
                image: format!("{}:{}", img.name, img.tag),
                platform: p.platform.to_string(),
                manifest: p.manifest.digest.clone(),
                compressed,
                uncompressed,
                limit: img.size_limit,
                within_limit: img.size_limit.is_none_or(|l| uncompressed <= l),
                layers,
            });
        }
    }
    out
}

/// Renders a byte count for people (`12.3 MB`).
#[must_use]
pub fn human(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if bytes >= 1_000_000 {
        format!("{:.1} MB", b / 1e6)
    } else if bytes >= 1_000 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Renders the size report as a table.
#[must_use]
pub fn render_report(report: &[PlatformSize]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for p in report {
        let limit = p
            .limit
            .map_or_else(|| "no limit".to_string(), |l| format!("limit {}", human(l)));
        let verdict = if p.within_limit { "ok" } else { "OVER LIMIT" };
        let _ = writeln!(
            s,
            "{} {}: {} compressed, {} uncompressed ({limit}: {verdict})",
            p.image,
            p.platform,
            human(p.compressed),
            human(p.uncompressed)
        );
        for l in &p.layers {
            let _ = writeln!(
                s,
                "  {:>10} {:>10}  {}  {}",
                human(l.compressed),
                human(l.uncompressed),
                &l.digest[..19],
                l.name
            );
        }
    }
    s
}
