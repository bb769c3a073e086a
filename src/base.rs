//! Base images from a registry (`base: REGISTRY/REPO:TAG[@sha256:…]`),
//! resolved and fetched before anything is compiled, so a wrong reference
//! fails in seconds rather than after the payload build.
//!
//! Each base is pulled for the platforms the plan builds, with the same
//! credentials and TLS as a push; its blobs land in the build's blob store
//! (verified, and reused by the next build). Its layers go under ours exactly
//! as they are, no recompression; its config is the starting point that
//! images.yaml's settings are merged over ([`crate::image`] does that).

use std::collections::BTreeMap;

use oci_spec::image::ImageManifest;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::image::{BaseImage, PlatformBase};
use crate::layer::{Compression, LayerDigests, measure_blob};
use crate::oci::{self, Document, Kind};
use crate::plan::{Base, Plan};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::error::RegistryError;
use crate::registry::pull::{fetch_blob, fetch_manifest, select_platform};
use crate::registry::{Options, Registry};
use crate::store::BlobStore;

fn failed(msg: String) -> Error {
    RegistryError::Unusable(msg).into()
}

/// The diff_id and uncompressed size of a base layer blob in `store`,
/// computed once by decompressing it and remembered in
/// `<store>/diff_ids/<hex>` for later builds.
fn layer_diff(store: &BlobStore, digest: &Digest, media_type: &str) -> Result<(Digest, u64)> {
    let memo = store.root().join("diff_ids").join(digest.hex());
    if let Ok(text) = std::fs::read_to_string(&memo)
        && let Some((d, n)) = text.trim().split_once(' ')
        && let Ok(d) = Digest::parse(d)
        && let Ok(n) = n.parse()
    {
        return Ok((d, n));
    }
    let compression = Compression::of_media_type(media_type).ok_or_else(|| {
        failed(format!(
            "base layer {digest} has media type {media_type:?}: aelimg reads gzip, zstd and uncompressed tar layers"
        ))
    })?;
    let path = store.path(digest);
    let measured = std::fs::File::open(&path).and_then(|f| measure_blob(f, compression));
    let (diff_id, size) = measured.map_err(|e| {
        failed(format!(
            "base layer {digest} ({}) cannot be unpacked: {e}",
            path.display()
        ))
    })?;
    fsutil::atomic_write(&memo, format!("{diff_id} {size}\n").as_bytes())?;
    Ok((diff_id, size))
}

/// The base's manifest for one platform: the index entry for it, or the
/// manifest itself.
fn platform_manifest(
    reg: &Registry,
    r: &Reference,
    top: &Document,
    platform: Platform,
) -> Result<ImageManifest> {
    match top.kind() {
        Kind::Index => {
            let index = top.index()?;
            let d = select_platform(
                &index,
                platform.os(),
                platform.architecture(),
                platform.variant(),
            )
            .ok_or_else(|| failed(format!("base {r} has no {platform} image")))?;
            let m = fetch_manifest(reg, &r.repository, d.digest().as_ref())?;
            Ok(m.manifest()?)
        }
        Kind::Manifest => Ok(top.manifest()?),
        Kind::Unknown => Err(failed(format!(
            "base {r} has media type {}: expected an image manifest or index",
            top.media_type
        ))),
    }
}

fn pull_platform(
    reg: &Registry,
    r: &Reference,
    top: &Document,
    platform: Platform,
    store: &BlobStore,
) -> Result<PlatformBase> {
    let repo = &r.repository;
    let manifest = platform_manifest(reg, r, top, platform)?;
    let cfg_digest = Digest::from_oci(manifest.config().digest())?;
    fetch_blob(reg, repo, &cfg_digest, store)?;
    let cfg_bytes = store.read(&cfg_digest)?;
    let config = oci::parse_config(&cfg_bytes, &format!("base {r}: its config"))?;
    let healthcheck = oci::docker_healthcheck(&cfg_bytes, &format!("base {r}: its config"))?;
    if config.architecture().to_string() != platform.architecture() {
        return Err(failed(format!(
            "base {r} is for {}/{}, not {platform}",
            config.os(),
            config.architecture()
        )));
    }
    let layers = manifest.layers().clone();
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != layers.len() {
        return Err(failed(format!(
            "base {r}: {} layers but {} diff_ids in its config",
            layers.len(),
            diff_ids.len()
        )));
    }
    // Each layer must unpack to what the config says it does: that is what a
    // runtime checks when it unpacks the image, so a mismatch fails here.
    let mut digests = Vec::with_capacity(layers.len());
    for (l, want) in layers.iter().zip(diff_ids) {
        let digest = Digest::from_oci(l.digest())?;
        fetch_blob(reg, repo, &digest, store)?;
        let (got, uncompressed_size) = layer_diff(store, &digest, l.media_type().as_ref())?;
        if got.as_str() != want {
            return Err(failed(format!(
                "base {r}: layer {digest} unpacks to {got}, but its config says {want}: refusing it"
            )));
        }
        digests.push(LayerDigests {
            digest,
            size: l.size(),
            diff_id: got,
            uncompressed_size,
        });
    }
    Ok(PlatformBase {
        config,
        healthcheck,
        layers,
        digests,
    })
}

/// Whether any image of the plan starts from a registry image.
#[must_use]
pub fn needs_registry(plan: &Plan) -> bool {
    plan.images.iter().any(|i| matches!(i.base, Base::Image(_)))
}

/// Resolves and fetches the registry base of every image that has one, for
/// the platforms it is built for; keyed by image name.
///
/// # Errors
/// When a registry cannot be reached, a reference does not resolve, or a
/// base fails verification.
pub fn resolve(
    plan: &Plan,
    store: &BlobStore,
    opts: &Options,
) -> Result<BTreeMap<String, BaseImage>> {
    let mut connections: Vec<Registry> = Vec::new();
    let mut tops: BTreeMap<String, Document> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for img in &plan.images {
        let Base::Image(r) = &img.base else { continue };
        let i = match connections.iter().position(|c| c.name == r.registry) {
            Some(i) => i,
            None => {
                connections.push(Registry::connect(&r.registry, r.api_host(), opts.clone())?);
                connections.len() - 1
            }
        };
        let reg = &connections[i];
        let key = r.to_string();
        if !tops.contains_key(&key) {
            let top = fetch_manifest(reg, &r.repository, r.object())?;
            tops.insert(key.clone(), top);
        }
        let top = &tops[&key];
        let mut platforms = BTreeMap::new();
        for &p in &img.platforms {
            platforms.insert(p, pull_platform(reg, r, top, p, store)?);
        }
        out.insert(
            img.name.clone(),
            BaseImage {
                reference: r.clone(),
                digest: top.digest.clone(),
                platforms,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_layer_diff_is_measured_once_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &[7u8; 5000]).unwrap();
        let blob = gz.finish().unwrap();
        let digest = Digest::of(&blob);
        store.put_bytes(&blob, &digest).unwrap();
        let gzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        let (diff_id, size) = layer_diff(&store, &digest, gzip).unwrap();
        assert_eq!((diff_id.clone(), size), (Digest::of(&[7u8; 5000]), 5000));
        // The second time it comes from the memo, not the blob.
        store.remove(&digest).unwrap();
        assert_eq!(layer_diff(&store, &digest, gzip).unwrap(), (diff_id, 5000));
        let err = layer_diff(
            &store,
            &Digest::of(b"other"),
            "application/vnd.oci.image.layer.v1.tar+bzip2",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tar+bzip2") && err.contains("zstd"), "{err}");
    }

    #[test]
    fn zstd_base_layer_is_accepted_and_measured() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let raw = [7u8; 5000];
        // Two frames, as zstd:chunked and pzstd write them.
        let mut blob = zstd::encode_all(&raw[..2000], 3).unwrap();
        blob.extend(zstd::encode_all(&raw[2000..], 19).unwrap());
        let digest = Digest::of(&blob);
        store.put_bytes(&blob, &digest).unwrap();
        let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
        let (diff_id, size) = layer_diff(&store, &digest, zstd).unwrap();
        assert_eq!((diff_id, size), (Digest::of(&raw), 5000));
        // A gzip blob under a zstd media type is refused, not misread.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let gz = gz.finish().unwrap();
        let gz_digest = Digest::of(&gz);
        store.put_bytes(&gz, &gz_digest).unwrap();
        let err = layer_diff(&store, &gz_digest, zstd)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be unpacked"), "{err}");
    }
}
