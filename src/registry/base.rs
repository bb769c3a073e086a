//! Images built on a base from a registry (`base: REGISTRY/REPO:TAG[@sha256:…]`).
//!
//! The base is pulled for each platform with the same credentials and TLS as
//! a push; its blobs land in the build's blob store (verified, and reused on
//! the next build). Its layers go under ours exactly as they are, no
//! recompression; its config is the starting point that images.yaml's
//! settings are merged over.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::client::{Options, Registry};
use super::pull::{fetch_blob, fetch_manifest};
use super::reference::Reference;
use crate::build::BuiltImage;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::image::{Document, PlatformImage, canonical_json, sha256_digest};
use crate::layer::{Compression, LayerDigests, measure_blob};
use crate::plan::Plan;
use crate::platform::Platform;
use crate::store::BlobStore;

/// Whether a plan's base names a registry image (anything but `scratch`).
#[must_use]
pub fn is_registry_base(base: &str) -> bool {
    base != "scratch"
}

fn doc(media_type: &str, v: &Value) -> Document {
    let bytes = canonical_json(v);
    let digest = sha256_digest(&bytes);
    Document {
        media_type: media_type.to_string(),
        bytes,
        digest,
    }
}

fn parse(bytes: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::Json {
        context: format!("{what} is not valid JSON"),
        source: e,
    })
}

/// The base's manifest and config for one platform, all its blobs in `store`.
struct PlatformBase {
    layers: Vec<Value>,
    config: Value,
    /// Digests and sizes of each layer, in order, as our manifest lists them.
    digests: Vec<LayerDigests>,
}

/// The diff_id and uncompressed size of a base layer blob in `store`,
/// computed once by decompressing it and remembered in
/// `<store>/diff_ids/<hex>` for later builds.
fn layer_diff(store: &BlobStore, digest: &str, media_type: &str) -> Result<(String, u64)> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let memo = store.root().join("diff_ids").join(hex);
    if let Ok(text) = std::fs::read_to_string(&memo)
        && let Some((d, n)) = text.trim().split_once(' ')
        && let Ok(n) = n.parse()
    {
        return Ok((d.to_string(), n));
    }
    let compression = Compression::of_media_type(media_type).ok_or_else(|| {
        Error::Registry(format!(
            "base layer {digest} has media type {media_type:?}: aelimg reads gzip and uncompressed tar layers"
        ))
    })?;
    let path = store.path(digest)?;
    let measured = std::fs::File::open(&path).and_then(|f| measure_blob(f, compression));
    let (diff_id, size) = measured.map_err(|e| {
        Error::Registry(format!(
            "base layer {digest} ({}) cannot be unpacked: {e}",
            path.display()
        ))
    })?;
    fsutil::atomic_write(&memo, format!("{diff_id} {size}\n").as_bytes())?;
    Ok((diff_id, size))
}

fn pull_platform(
    reg: &Registry,
    r: &Reference,
    top: &super::push::RawManifest,
    platform: Platform,
    store: &BlobStore,
) -> Result<PlatformBase> {
    let repo = &r.repository;
    let top_v = parse(&top.bytes, "the base's manifest")?;
    let manifest = if let Some(list) = top_v.get("manifests").and_then(Value::as_array) {
        let d = list
            .iter()
            .find(|d| {
                d.pointer("/platform/os").and_then(Value::as_str) == Some(platform.os())
                    && d.pointer("/platform/architecture").and_then(Value::as_str)
                        == Some(platform.architecture())
            })
            .ok_or_else(|| Error::Registry(format!("base {r} has no {platform} image")))?;
        let digest = d.get("digest").and_then(Value::as_str).unwrap_or("");
        let m = fetch_manifest(reg, repo, digest)?;
        parse(&m.bytes, "the base's platform manifest")?
    } else {
        top_v
    };
    let cfg_digest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Registry(format!("base {r}: its manifest has no config")))?;
    store.path(cfg_digest)?;
    fetch_blob(reg, repo, cfg_digest, store)?;
    let config = parse(&store.read(cfg_digest)?, "the base's config")?;
    if config.get("architecture").and_then(Value::as_str) != Some(platform.architecture()) {
        return Err(Error::Registry(format!(
            "base {r} is for {}/{}, not {platform}",
            config.get("os").and_then(Value::as_str).unwrap_or("?"),
            config
                .get("architecture")
                .and_then(Value::as_str)
                .unwrap_or("?")
        )));
    }
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let diff_ids: Vec<&str> = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|d| d.as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(Error::Registry(format!(
            "base {r}: {} layers but {} diff_ids in its config",
            layers.len(),
            diff_ids.len()
        )));
    }
    // Each layer must unpack to what the config says it does: that is what a
    // runtime checks when it unpacks the image, so a mismatch fails here.
    let mut digests = Vec::with_capacity(layers.len());
    for (l, want) in layers.iter().zip(&diff_ids) {
        let digest = l
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Registry(format!("base {r}: a layer has no digest")))?;
        store.path(digest)?;
        fetch_blob(reg, repo, digest, store)?;
        let media_type = l.get("mediaType").and_then(Value::as_str).unwrap_or("");
        let (got, uncompressed_size) = layer_diff(store, digest, media_type)?;
        if got != *want {
            return Err(Error::Registry(format!(
                "base {r}: layer {digest} unpacks to {got}, but its config says {want}: refusing it"
            )));
        }
        digests.push(LayerDigests {
            digest: digest.to_string(),
            size: l.get("size").and_then(Value::as_u64).unwrap_or(0),
            diff_id: got,
            uncompressed_size,
        });
    }
    Ok(PlatformBase {
        layers,
        config,
        digests,
    })
}

/// Env lists merged by key, ours winning.
fn merge_env(base: Option<&Value>, ours: Option<&Value>) -> Value {
    let mut out: Vec<String> = Vec::new();
    let key = |s: &str| s.split('=').next().unwrap_or("").to_string();
    for e in base.and_then(Value::as_array).into_iter().flatten() {
        if let Some(s) = e.as_str() {
            out.push(s.to_string());
        }
    }
    for e in ours.and_then(Value::as_array).into_iter().flatten() {
        if let Some(s) = e.as_str() {
            let k = key(s);
            out.retain(|o| key(o) != k);
            out.push(s.to_string());
        }
    }
    json!(out)
}

fn merge_maps(base: Option<&Value>, ours: Option<&Value>) -> Option<Value> {
    let mut m = base.and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(o) = ours.and_then(Value::as_object) {
        for (k, v) in o {
            m.insert(k.clone(), v.clone());
        }
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// The runtime config: the base's, with ours over it.
fn merge_runtime(base: Option<&Value>, ours: Option<&Value>) -> Value {
    let empty = Map::new();
    let b = base.and_then(Value::as_object).unwrap_or(&empty);
    let o = ours.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = b.clone();
    let set = |out: &mut Map<String, Value>, k: &str, v: Option<Value>| match v {
        Some(v) => {
            out.insert(k.to_string(), v);
        }
        None => {
            out.remove(k);
        }
    };
    let given = |k: &str| {
        o.get(k)
            .filter(|v| !v.is_null() && *v != &json!("") && *v != &json!([]))
            .cloned()
    };
    for k in ["User", "WorkingDir", "StopSignal", "Healthcheck"] {
        if let Some(v) = given(k) {
            out.insert(k.to_string(), v);
        }
    }
    // As in a Dockerfile: a new entrypoint resets the base's cmd.
    if let Some(ep) = given("Entrypoint") {
        out.insert("Entrypoint".into(), ep);
        set(&mut out, "Cmd", given("Cmd"));
    } else if let Some(cmd) = given("Cmd") {
        out.insert("Cmd".into(), cmd);
    }
    out.insert("Env".into(), merge_env(b.get("Env"), o.get("Env")));
    for k in ["ExposedPorts", "Volumes", "Labels"] {
        set(&mut out, k, merge_maps(b.get(k), o.get(k)));
    }
    Value::Object(out)
}

/// Puts the base's layers under ours and merges the configs, for every
/// image of the plan whose base is a registry image.
pub fn rebase(
    images: Vec<BuiltImage>,
    plan: &Plan,
    store: &BlobStore,
    opts: &Options,
) -> Result<Vec<BuiltImage>> {
    let mut connections: Vec<Registry> = Vec::new();
    let mut resolved: HashMap<String, (Reference, super::push::RawManifest)> = HashMap::new();
    let mut out = Vec::with_capacity(images.len());
    for img in images {
        let Some(ip) = plan.images.iter().find(|p| p.name == img.name) else {
            out.push(img);
            continue;
        };
        if !is_registry_base(&ip.base) {
            out.push(img);
            continue;
        }
        let r = Reference::parse(&ip.base)?;
        let i = match connections.iter().position(|c| c.name == r.registry) {
            Some(i) => i,
            None => {
                connections.push(Registry::connect(&r.registry, r.api_host(), opts.clone())?);
                connections.len() - 1
            }
        };
        let reg = &connections[i];
        if !resolved.contains_key(&ip.base) {
            let top = fetch_manifest(reg, &r.repository, r.object())?;
            eprintln!("base {} is {}@{}", ip.base, r.name(), top.digest);
            resolved.insert(ip.base.clone(), (r.clone(), top));
        }
        let (r, top) = &resolved[&ip.base];
        let mut platforms = Vec::new();
        let mut base_layer_count = 0;
        for p in &img.platforms {
            let b = pull_platform(reg, r, top, p.platform, store)?;
            base_layer_count = b.layers.len();
            let ours_cfg = parse(&p.config.bytes, "our config")?;
            let ours_man = parse(&p.manifest.bytes, "our manifest")?;
            let mut cfg = b.config.clone();
            let obj = cfg
                .as_object_mut()
                .ok_or_else(|| Error::Registry(format!("base {r}: its config is not an object")))?;
            for k in ["architecture", "os", "variant", "created"] {
                match ours_cfg.get(k) {
                    Some(v) => {
                        obj.insert(k.into(), v.clone());
                    }
                    None => {
                        obj.remove(k);
                    }
                }
            }
            obj.insert(
                "config".into(),
                merge_runtime(b.config.get("config"), ours_cfg.get("config")),
            );
            let mut diff_ids: Vec<Value> = b
                .config
                .pointer("/rootfs/diff_ids")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            diff_ids.extend(
                ours_cfg
                    .pointer("/rootfs/diff_ids")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            obj.insert(
                "rootfs".into(),
                json!({"type": "layers", "diff_ids": diff_ids}),
            );
            let mut history: Vec<Value> = b
                .config
                .get("history")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            history.extend(
                ours_cfg
                    .get("history")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            obj.insert("history".into(), json!(history));
            obj.remove("container_config");
            obj.remove("container");
            let config = doc("application/vnd.oci.image.config.v1+json", &cfg);
            store.put_bytes(&config.bytes, &config.digest)?;
            let mut man = ours_man.clone();
            man["config"] = json!({
                "mediaType": config.media_type,
                "digest": config.digest,
                "size": config.bytes.len(),
            });
            let mut layers = b.layers.clone();
            layers.extend(
                ours_man
                    .get("layers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            man["layers"] = json!(layers);
            let manifest = doc("application/vnd.oci.image.manifest.v1+json", &man);
            store.put_bytes(&manifest.bytes, &manifest.digest)?;
            let mut digests = b.digests;
            digests.extend(p.layers.iter().cloned());
            platforms.push(PlatformImage {
                platform: p.platform,
                config,
                manifest,
                layers: digests,
            });
        }
        let index = crate::build::store_index(&platforms, store)?;
        let mut layer_names: Vec<String> = (1..=base_layer_count)
            .map(|i| format!("base {}@{} layer {i}", r.name(), &top.digest[..19]))
            .collect();
        layer_names.extend(img.layer_names.iter().cloned());
        out.push(BuiltImage {
            platforms,
            index,
            layer_names,
            ..img
        });
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
        let digest = sha256_digest(&blob);
        store.put_bytes(&blob, &digest).unwrap();
        let gzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        let (diff_id, size) = layer_diff(&store, &digest, gzip).unwrap();
        assert_eq!(
            (diff_id.as_str(), size),
            (sha256_digest(&[7u8; 5000]).as_str(), 5000)
        );
        // The second time it comes from the memo, not the blob.
        store.remove(&digest).unwrap();
        assert_eq!(layer_diff(&store, &digest, gzip).unwrap(), (diff_id, 5000));
        let err = layer_diff(
            &store,
            "sha256:00",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tar+zstd") && err.contains("gzip"), "{err}");
    }

    #[test]
    fn ours_over_the_base() {
        let base = json!({
            "Env": ["PATH=/bin", "LANG=C"],
            "Cmd": ["sh"],
            "User": "0",
            "ExposedPorts": {"80/tcp": {}},
            "Labels": {"a": "base", "b": "base"}
        });
        let ours = json!({
            "Env": ["PATH=/usr/bin", "X=1"],
            "Entrypoint": ["/app"],
            "User": "10001:10001",
            "ExposedPorts": {"8082/tcp": {}},
            "Labels": {"b": "ours"}
        });
        let m = merge_runtime(Some(&base), Some(&ours));
        assert_eq!(m["Env"], json!(["LANG=C", "PATH=/usr/bin", "X=1"]));
        assert_eq!(m["Entrypoint"], json!(["/app"]));
        assert!(m.get("Cmd").is_none(), "a new entrypoint resets the cmd");
        assert_eq!(m["User"], "10001:10001");
        assert_eq!(m["ExposedPorts"], json!({"80/tcp": {}, "8082/tcp": {}}));
        assert_eq!(m["Labels"], json!({"a": "base", "b": "ours"}));
        let m = merge_runtime(Some(&base), Some(&json!({})));
        assert_eq!(m["Cmd"], json!(["sh"]));
    }
}
