//! Pulling an image (every platform of an index, or one manifest) into a
//! [`BlobStore`], verifying every digest.

use std::io::{Read as _, Write as _};

use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use sha2::{Digest as _, Sha256};

use oci_spec::image::{Descriptor, ImageIndex};

use super::client::{Registry, describe, pull_scopes};
use super::error::{Checked, RegistryError};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{Document, Kind, MANIFEST_ACCEPT};
use crate::reference::Reference;
use crate::store::BlobStore;

/// Fetches a manifest or index by tag or digest; checks it against the
/// digest when one was asked for.
pub fn fetch_manifest(reg: &Registry, repo: &str, reference: &str) -> Result<Document> {
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
            Error::from(RegistryError::Transfer(format!(
                "{}: cannot read manifest: {}",
                reg.name,
                describe(&e)
            )))
        })?
        .to_vec();
    let digest = Digest::of(&bytes);
    if reference.starts_with("sha256:") && digest.as_str() != reference {
        return Err(RegistryError::Verification {
            registry: reg.name.clone(),
            what: Checked::Manifest {
                reference: reference.to_string(),
            },
            expected: reference.to_string(),
            got: digest.to_string(),
        }
        .into());
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let probe: Probe =
        crate::oci::parse(&bytes, &format!("manifest {repo}:{reference}"), "manifest")?;
    let media_type = probe
        .media_type
        .or(header_type)
        .unwrap_or_else(|| crate::oci::MANIFEST.into());
    Ok(Document {
        media_type,
        digest,
        bytes,
    })
}

/// Fetches a blob into the store unless it is there, verifying its digest.
pub fn fetch_blob(reg: &Registry, repo: &str, digest: &Digest, store: &BlobStore) -> Result<()> {
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
                let got = Digest::from_hasher(hasher);
                if got != *digest {
                    return Err(RegistryError::Verification {
                        registry: reg.name.clone(),
                        what: Checked::Blob,
                        expected: digest.to_string(),
                        got: got.to_string(),
                    }
                    .into());
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
    Err(Error::from(RegistryError::Transfer(format!(
        "{}: cannot download blob {digest}: {}",
        reg.name,
        last.unwrap_or_default()
    ))))
}

/// Pulls an image and everything it references into `store`; returns the
/// top manifest or index. `platform` (`os/arch`) keeps only that platform's
/// manifest of an index.
pub fn pull_image(
    reg: &Registry,
    src: &Reference,
    store: &BlobStore,
    platform: Option<(&str, &str)>,
) -> Result<Document> {
    let repo = &src.repository;
    let top = fetch_manifest(reg, repo, src.object())?;
    let mut manifests = Vec::new();
    let result = match top.kind() {
        Kind::Index => {
            let index = top.index()?;
            let wanted: Vec<&Descriptor> = match platform {
                Some((os, arch)) => {
                    let d = select_platform(&index, os, arch, None).ok_or_else(|| {
                        RegistryError::Unusable(format!("{src} has no {os}/{arch} image"))
                    })?;
                    vec![d]
                }
                None => index.manifests().iter().collect(),
            };
            for d in wanted {
                manifests.push(fetch_manifest(reg, repo, d.digest().as_ref())?);
            }
            match platform {
                Some(_) => manifests[0].clone(),
                None => top.clone(),
            }
        }
        Kind::Manifest => {
            manifests.push(top.clone());
            top.clone()
        }
        Kind::Unknown => {
            return Err(RegistryError::Unusable(format!(
                "{src} has media type {}: aelimg pulls image manifests and indexes",
                top.media_type
            ))
            .into());
        }
    };
    for m in &manifests {
        let man = m.manifest()?;
        for d in std::iter::once(man.config()).chain(man.layers()) {
            fetch_blob(reg, repo, &Digest::from_oci(d.digest())?, store)?;
        }
        store.put_bytes(&m.bytes, &m.digest)?;
    }
    store.put_bytes(&result.bytes, &result.digest)?;
    Ok(result)
}

/// The entry of an index for `os/arch` (and `variant`, when given and the
/// index says; an entry without a variant matches any).
#[must_use]
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    os: &str,
    arch: &str,
    variant: Option<&str>,
) -> Option<&'a Descriptor> {
    index.manifests().iter().find(|d| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == os
                && p.architecture().to_string() == arch
                && match (variant, p.variant()) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        })
    })
}
