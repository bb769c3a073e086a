//! From a plan (and its resolved bases) to images in a blob store: payload,
//! layers, config, manifest, index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use crate::cache::LayerCache;
use crate::cargo::{BinId, Binaries, PayloadBuilder};
use crate::error::{Error, Result};
use crate::image::{
    BaseImage, BuiltImage, Origin, PlatformImage, build_index, build_platform_image,
};
use crate::layer::{Content, LayerDigests, TarEntry, write_layer};
use crate::oci::Document;
use crate::plan::{EntryKind, ImagePlan, LayerPlan, Plan};
use crate::platform::Platform;
use crate::store::BlobStore;

/// The compression of the layers aelimg writes, as the cache key names it.
const COMPRESSION: &str = "gzip-6";

/// Builds every image of the plan into the cache's store, on the bases `bases` holds
/// for the images that have one (keyed by image name, as
/// [`crate::base::resolve`] returns them).
///
/// # Errors
/// When the payload build fails, a binary does not fit its platform, or a
/// blob cannot be written.
pub fn build(
    plan: &Plan,
    bases: &BTreeMap<String, BaseImage>,
    cache: &LayerCache,
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
    let mut seen: HashMap<String, (LayerDigests, Origin)> = HashMap::new();
    plan.images
        .iter()
        .map(|img| build_image(plan, img, bases.get(&img.name), cache, &binaries, &mut seen))
        .collect()
}

fn build_image(
    plan: &Plan,
    img: &ImagePlan,
    base: Option<&BaseImage>,
    cache: &LayerCache,
    binaries: &Binaries,
    seen: &mut HashMap<String, (LayerDigests, Origin)>,
) -> Result<BuiltImage> {
    let store = cache.store();
    let mut platforms = Vec::new();
    for &platform in &img.platforms {
        let mut layers = Vec::new();
        for (i, layer) in img.layers.iter().enumerate() {
            // A layer with no per-platform binary is the same blob on every platform.
            let key = if layer_is_portable(layer)? {
                format!("{}/{i}", img.name)
            } else {
                format!("{}/{i}/{platform}", img.name)
            };
            if let Some(d) = seen.get(&key) {
                layers.push(d.clone());
                continue;
            }
            let d = build_layer(plan, img, layer, platform, cache, binaries)?;
            seen.insert(key, d.clone());
            layers.push(d);
        }
        let platform_base = match base {
            Some(b) => Some(b.platforms.get(&platform).ok_or_else(|| {
                Error::Request(format!(
                    "base {} was not resolved for {platform}",
                    b.reference
                ))
            })?),
            None => None,
        };
        let pi =
            build_platform_image(img, platform, platform_base, layers, plan.source_date_epoch)?;
        store.put_bytes(&pi.config.bytes, &pi.config.digest)?;
        store.put_bytes(&pi.manifest.bytes, &pi.manifest.digest)?;
        platforms.push(pi);
    }
    let index = store_index(&platforms, store)?;
    let mut layer_names: Vec<String> = match base {
        Some(b) => {
            let n = b.platforms.values().next().map_or(0, |p| p.layers.len());
            (1..=n)
                .map(|i| format!("base {}@{} layer {i}", b.reference.name(), b.digest.short()))
                .collect()
        }
        None => Vec::new(),
    };
    layer_names.extend(img.layers.iter().map(|l| l.name.clone()));
    Ok(BuiltImage {
        name: img.name.clone(),
        tag: img.tag.clone(),
        platforms,
        index,
        layer_names,
        size_limit: img.size_limit,
    })
}

/// The index of a multi-platform image, stored; `None` for one platform.
fn store_index(platforms: &[PlatformImage], store: &BlobStore) -> Result<Option<Document>> {
    if platforms.len() < 2 {
        return Ok(None);
    }
    let idx = build_index(platforms, &HashMap::new())?;
    store.put_bytes(&idx.bytes, &idx.digest)?;
    Ok(Some(idx))
}

/// True when no entry depends on the platform (no cargo binary, no ELF file).
fn layer_is_portable(layer: &LayerPlan) -> Result<bool> {
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
    cache: &LayerCache,
    binaries: &Binaries,
) -> Result<(LayerDigests, Origin)> {
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
                let id = BinId {
                    package: package.clone(),
                    bin: bin.clone(),
                };
                let p = binaries.get(&(platform, id)).ok_or_else(|| {
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
    let key = cache.key(&entries, plan.source_date_epoch, COMPRESSION)?;
    if let Some(d) = cache.get(&key) {
        return Ok((d, Origin::Cached));
    }
    let store = cache.store();
    let pending = store.begin()?;
    let (pending, digests) = write_layer(&entries, plan.source_date_epoch, pending)?;
    store.commit(pending, &digests.digest)?;
    cache.put(&key, &digests)?;
    Ok((digests, Origin::Built))
}

fn check_binary(source: &Path, dest: &str, platform: Platform) -> Result<()> {
    if crate::elf::is_elf(source)? {
        crate::elf::check(source, &format!("/{dest}"), platform)?;
    }
    Ok(())
}
