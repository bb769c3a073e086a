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

#[cfg(test)]
mod tests {
    use super::super::client::Options;
    use super::super::testserver::{Reply, Server};
    use super::*;
    use crate::oci::{INDEX, MANIFEST};

    fn connect(srv: &Server) -> Registry {
        srv.script([Reply::status(200)]);
        let opts = Options {
            retries: 1,
            ..super::super::client::test_options(srv)
        };
        let reg = Registry::connect_with(&srv.name(), &srv.name(), opts, None).unwrap();
        srv.take_requests();
        reg
    }

    fn is_verification(e: &Error) -> bool {
        matches!(e.registry(), Some(RegistryError::Verification { .. }))
    }

    #[test]
    fn a_manifest_asked_by_digest_must_have_it() {
        let good =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        let want = Digest::of(good);
        for (served, refused) in [(&good[..], false), (&br#"{"schemaVersion":2}"#[..], true)] {
            let srv = Server::start();
            let reg = connect(&srv);
            srv.script([Reply::status(200).body(served)]);
            let got = fetch_manifest(&reg, "a/b", want.as_str());
            let lines: Vec<String> = srv.take_requests().iter().map(|r| r.line()).collect();
            assert_eq!(lines, [format!("GET /v2/a/b/manifests/{want}")]);
            match got {
                Ok(doc) => {
                    assert!(!refused);
                    assert_eq!(doc.digest, want);
                    assert_eq!(doc.media_type, MANIFEST);
                }
                Err(e) => {
                    assert!(refused && is_verification(&e), "{e}");
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&format!("manifest {want} arrived as sha256:")),
                        "{msg}"
                    );
                    assert!(msg.ends_with(": refusing it"), "{msg}");
                }
            }
        }
    }

    #[test]
    fn a_blob_must_have_its_digest() {
        let want = Digest::of(b"layer bytes");
        for (served, refused) in [(&b"layer bytes"[..], false), (&b"other bytes"[..], true)] {
            let dir = tempfile::tempdir().unwrap();
            let store = BlobStore::open(dir.path()).unwrap();
            let srv = Server::start();
            let reg = connect(&srv);
            srv.script([Reply::status(200).body(served)]);
            let got = fetch_blob(&reg, "a/b", &want, &store);
            let lines: Vec<String> = srv.take_requests().iter().map(|r| r.line()).collect();
            assert_eq!(lines, [format!("GET /v2/a/b/blobs/{want}")]);
            match got {
                Ok(()) => assert!(!refused && store.has(&want)),
                Err(e) => {
                    assert!(refused && is_verification(&e), "{e}");
                    assert!(
                        e.to_string().contains(&format!("blob {want} arrived as")),
                        "{e}"
                    );
                    assert!(!store.has(&want), "a refused blob must not be stored");
                }
            }
            // A blob already in the store is not asked for again.
            if !refused {
                fetch_blob(&reg, "a/b", &want, &store).unwrap();
                assert!(srv.take_requests().is_empty());
            }
        }
    }

    fn entry(m: &Document, platform: &str) -> serde_json::Value {
        let mut p = platform.split('/');
        let mut plat =
            serde_json::json!({"os": p.next().unwrap(), "architecture": p.next().unwrap()});
        if let Some(v) = p.next() {
            plat["variant"] = v.into();
        }
        serde_json::json!({
            "mediaType": MANIFEST,
            "digest": m.digest.to_string(),
            "size": m.bytes.len(),
            "platform": plat,
        })
    }

    fn index(entries: &[serde_json::Value]) -> Document {
        Document::from_value(
            INDEX,
            &serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}),
        )
    }

    fn image(config: &[u8], layer: &[u8]) -> Document {
        let desc = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": Digest::of(b).to_string(), "size": b.len()});
        Document::from_value(
            MANIFEST,
            &serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": desc(crate::oci::CONFIG, config),
                "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
            }),
        )
    }

    #[test]
    fn select_platform_variant_rules() {
        let m = |s: &str| Document::from_bytes(MANIFEST, s.as_bytes().to_vec());
        let (amd, v6, v7, arm) = (m("amd"), m("v6"), m("v7"), m("arm"));
        let idx = index(&[
            entry(&amd, "linux/amd64"),
            entry(&v6, "linux/arm/v6"),
            entry(&v7, "linux/arm/v7"),
        ])
        .index()
        .unwrap();
        let bare = index(&[entry(&arm, "linux/arm")]).index().unwrap();
        // (index, os, arch, variant, picked)
        let cases = [
            (&idx, "linux", "amd64", None, Some(&amd)),
            (&idx, "linux", "arm", Some("v7"), Some(&v7)),
            (&idx, "linux", "arm", Some("v6"), Some(&v6)),
            // No variant asked: the first entry of the architecture.
            (&idx, "linux", "arm", None, Some(&v6)),
            (&idx, "linux", "arm", Some("v8"), None),
            (&idx, "linux", "arm64", None, None),
            (&idx, "windows", "amd64", None, None),
            // An entry without a variant matches any.
            (&bare, "linux", "arm", Some("v7"), Some(&arm)),
        ];
        for (i, os, arch, variant, want) in cases {
            let got = select_platform(i, os, arch, variant).map(|d| d.digest().to_string());
            assert_eq!(
                got,
                want.map(|w| w.digest.to_string()),
                "{os}/{arch} {variant:?}"
            );
        }
    }

    #[test]
    fn pull_with_a_platform_fetches_only_that_child() {
        let amd = image(b"{\"architecture\":\"amd64\"}", b"amd layer");
        let arm = image(b"{\"architecture\":\"arm64\"}", b"arm layer");
        let top = index(&[entry(&amd, "linux/amd64"), entry(&arm, "linux/arm64/v8")]);
        let srv = Server::start();
        let reg = connect(&srv);
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        srv.script([
            Reply::status(200).body(top.bytes.clone()),
            Reply::status(200).body(arm.bytes.clone()),
            Reply::status(200).body(&b"{\"architecture\":\"arm64\"}"[..]),
            Reply::status(200).body(&b"arm layer"[..]),
        ]);
        let src = Reference::parse(&format!("{}/a/b:1.0", srv.name())).unwrap();
        let got = pull_image(&reg, &src, &store, Some(("linux", "arm64"))).unwrap();
        assert_eq!(got.digest, arm.digest);
        let lines: Vec<String> = srv.take_requests().iter().map(|r| r.line()).collect();
        assert_eq!(
            lines,
            [
                "GET /v2/a/b/manifests/1.0".to_string(),
                format!("GET /v2/a/b/manifests/{}", arm.digest),
                format!(
                    "GET /v2/a/b/blobs/{}",
                    Digest::of(b"{\"architecture\":\"arm64\"}")
                ),
                format!("GET /v2/a/b/blobs/{}", Digest::of(b"arm layer")),
            ]
        );
        // With a platform the child is the image: the index is not kept.
        assert!(store.has(&arm.digest));
        assert!(!store.has(&top.digest) && !store.has(&amd.digest));

        // A platform the index lacks is refused before any blob is fetched.
        srv.script([Reply::status(200).body(top.bytes.clone())]);
        let e = pull_image(&reg, &src, &store, Some(("linux", "s390x"))).unwrap_err();
        assert!(
            matches!(e.registry(), Some(RegistryError::Unusable(_))),
            "{e}"
        );
        assert!(e.to_string().ends_with("has no linux/s390x image"), "{e}");
        assert_eq!(srv.take_requests().len(), 1);
    }
}
