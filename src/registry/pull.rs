//! Pulling an image (every platform of an index, or one manifest) into a
//! [`BlobStore`], verifying every digest.

use std::io::{Read as _, Write as _};

use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::client::{Registry, describe, pull_scopes};
use super::push::{MANIFEST_ACCEPT, RawManifest};
use super::reference::Reference;
use crate::error::{Error, Result};
use crate::image::sha256_digest;
use crate::store::BlobStore;

/// Fetches a manifest or index by tag or digest; checks it against the
/// digest when one was asked for.
pub fn fetch_manifest(reg: &Registry, repo: &str, reference: &str) -> Result<RawManifest> {
    let url = reg.url(&format!("/v2/{repo}/manifests/{reference}"))?;
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    let resp = reg.send(Method::GET, &url, &pull_scopes(repo), &h, None)?;
    if !resp.status().is_success() {
        return Err(reg.status_error(resp, &format!("get manifest {repo}:{reference}")));
    }
    let header_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
    let bytes = resp
        .bytes()
        .map_err(|e| {
            Error::Registry(format!(
                "{}: cannot read manifest: {}",
                reg.name,
                describe(&e)
            ))
        })?
        .to_vec();
    let digest = sha256_digest(&bytes);
    if reference.starts_with("sha256:") && digest != reference {
        return Err(Error::Registry(format!(
            "{}: manifest {reference} arrived as {digest}: refusing it",
            reg.name
        )));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        context: format!("manifest {repo}:{reference}"),
        source: e,
    })?;
    let media_type = v
        .get("mediaType")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(header_type)
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
    Ok(RawManifest {
        media_type,
        digest,
        bytes,
    })
}

/// Fetches a blob into the store unless it is there, verifying its digest.
pub fn fetch_blob(reg: &Registry, repo: &str, digest: &str, store: &BlobStore) -> Result<()> {
    if store.has(digest) {
        return Ok(());
    }
    let url = reg.url(&format!("/v2/{repo}/blobs/{digest}"))?;
    let mut last = None;
    for attempt in 0..=reg.opts.retries {
        let resp = reg.send(
            Method::GET,
            &url,
            &pull_scopes(repo),
            &HeaderMap::new(),
            None,
        )?;
        if !resp.status().is_success() {
            return Err(reg.status_error(resp, &format!("get blob {digest}")));
        }
        let mut pending = store.begin()?;
        let mut hasher = Sha256::new();
        let mut resp = resp;
        let mut buf = vec![0u8; 1 << 16];
        let copied: std::io::Result<()> = (|| loop {
            let n = resp.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            pending.write_all(&buf[..n])?;
        })();
        match copied {
            Ok(()) => {
                let got = format!("sha256:{}", hex::encode(hasher.finalize()));
                if got != digest {
                    return Err(Error::Registry(format!(
                        "{}: blob {digest} arrived as {got}: refusing it",
                        reg.name
                    )));
                }
                return store.commit(pending, digest);
            }
            Err(e) => {
                last = Some(e.to_string());
                if attempt < reg.opts.retries {
                    std::thread::sleep(reg.opts.backoff);
                }
            }
        }
    }
    Err(Error::Registry(format!(
        "{}: cannot download blob {digest}: {}",
        reg.name,
        last.unwrap_or_default()
    )))
}

/// Pulls an image and everything it references into `store`; returns the
/// top manifest or index. `platform` (`os/arch`) keeps only that platform's
/// manifest of an index.
pub fn pull_image(
    reg: &Registry,
    src: &Reference,
    store: &BlobStore,
    platform: Option<(&str, &str)>,
) -> Result<RawManifest> {
    let repo = &src.repository;
    let top = fetch_manifest(reg, repo, src.object())?;
    let v: Value = serde_json::from_slice(&top.bytes).map_err(|e| Error::Json {
        context: "manifest".into(),
        source: e,
    })?;
    let mut manifests = Vec::new();
    let result = if let Some(list) = v.get("manifests").and_then(Value::as_array) {
        let mut chosen = None;
        for d in list {
            let digest = d.get("digest").and_then(Value::as_str).unwrap_or("");
            if let Some((os, arch)) = platform {
                let p = d.get("platform");
                let m = p.and_then(|p| p.get("os")).and_then(Value::as_str) == Some(os)
                    && p.and_then(|p| p.get("architecture"))
                        .and_then(Value::as_str)
                        == Some(arch);
                if !m {
                    continue;
                }
            }
            let m = fetch_manifest(reg, repo, digest)?;
            if chosen.is_none() {
                chosen = Some(m.clone());
            }
            manifests.push(m);
        }
        match platform {
            Some((os, arch)) => {
                chosen.ok_or_else(|| Error::Registry(format!("{src} has no {os}/{arch} image")))?
            }
            None => top.clone(),
        }
    } else {
        manifests.push(top.clone());
        top.clone()
    };
    for m in &manifests {
        let v: Value = serde_json::from_slice(&m.bytes).map_err(|e| Error::Json {
            context: "manifest".into(),
            source: e,
        })?;
        let mut digests = Vec::new();
        if let Some(c) = v.pointer("/config/digest").and_then(Value::as_str) {
            digests.push(c.to_string());
        }
        if let Some(ls) = v.get("layers").and_then(Value::as_array) {
            for l in ls {
                if let Some(d) = l.get("digest").and_then(Value::as_str) {
                    digests.push(d.to_string());
                }
            }
        }
        for d in digests {
            store.path(&d)?;
            fetch_blob(reg, repo, &d, store)?;
        }
        store.put_bytes(&m.bytes, &m.digest)?;
    }
    store.put_bytes(&result.bytes, &result.digest)?;
    Ok(result)
}
