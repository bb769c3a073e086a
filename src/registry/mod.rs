//! A registry client: push, pull, credentials and transport.
//!
//! - [`reference`] parses `REGISTRY/REPO[:TAG][@DIGEST]`.
//! - [`credentials`] finds credentials as docker, podman and skopeo keep them
//!   and writes them for `aelimg login`.
//! - [`client`] is the transport: TLS, scheme, auth, redirects, retries.
//! - [`push`] and [`pull`] move images between a [`BlobStore`] and a registry.
//!
//! Why a small client of our own rather than a library: see
//! `docs/decisions/0004-registry-client.md`.

pub mod base;
pub mod client;
pub mod credentials;
pub mod pull;
pub mod push;
pub mod reference;

use std::path::Path;

use serde_json::{Value, json};

pub use client::{Options, Registry};
pub use push::{PushReport, RawManifest};
pub use reference::Reference;

use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use crate::image::canonical_json;
use crate::sink::layout::REF_NAME;
use crate::store::BlobStore;

/// The entries of an OCI layout's index.json: (ref name, descriptor).
pub fn layout_entries(root: &Path) -> Result<Vec<(Option<String>, Value)>> {
    let path = root.join("index.json");
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::Layout(format!(
            "{} is not an OCI layout ({}: {e}): build first, or name a layout with --from oci:DIR",
            root.display(),
            path.display()
        ))
    })?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Layout(format!("{} is not valid JSON: {e}", path.display())))?;
    Ok(v.get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let name = d
                .get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(Value::as_str)
                .map(str::to_string);
            (name, d)
        })
        .collect())
}

/// Reads the manifest or index a layout names `tag` (or its only entry when
/// `tag` is None); returns it and its ref name.
pub fn read_layout(root: &Path, tag: Option<&str>) -> Result<(RawManifest, Option<String>)> {
    let entries = layout_entries(root)?;
    let names: Vec<String> = entries
        .iter()
        .map(|(n, _)| n.clone().unwrap_or_else(|| "(untagged)".into()))
        .collect();
    let pick = match tag {
        Some(t) => entries.iter().find(|(n, _)| n.as_deref() == Some(t)),
        None if entries.len() == 1 => entries.first(),
        None => None,
    };
    let Some((name, d)) = pick else {
        return Err(Error::Usage(format!(
            "{}: {} (it holds: {})",
            root.display(),
            match tag {
                Some(t) => format!("no image tagged `{t}`"),
                None => "several images: say which with oci:DIR:TAG".into(),
            },
            names.join(", ")
        )));
    };
    let digest = d.get("digest").and_then(Value::as_str).ok_or_else(|| {
        Error::Layout(format!("{}: an index entry has no digest", root.display()))
    })?;
    let store = BlobStore::open(root)?;
    let bytes = store.read(digest)?;
    if crate::image::sha256_digest(&bytes) != digest {
        return Err(Error::Layout(format!(
            "{}: blob {digest} does not match its digest",
            root.display()
        )));
    }
    let media_type = d
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    Ok((
        RawManifest {
            media_type,
            digest: digest.to_string(),
            bytes,
        },
        name.clone(),
    ))
}

/// Names `top` as `tag` in the layout at `root` (whose blobs are already in
/// place), replacing an entry of the same name; index.json is replaced
/// atomically.
pub fn tag_layout(root: &Path, top: &RawManifest, tag: &str) -> Result<()> {
    let layout_file = root.join("oci-layout");
    if !layout_file.exists() {
        atomic_write(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let mut manifests: Vec<Value> = match layout_entries(root) {
        Ok(e) => e
            .into_iter()
            .filter(|(n, _)| n.as_deref() != Some(tag))
            .map(|(_, d)| d)
            .collect(),
        Err(_) => Vec::new(),
    };
    manifests.push(json!({
        "mediaType": top.media_type,
        "digest": top.digest,
        "size": top.bytes.len(),
        "annotations": { REF_NAME: tag },
    }));
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    atomic_write(&root.join("index.json"), &canonical_json(&index))
}
