//! Pushing an image whose blobs are in a [`BlobStore`]: blobs (HEAD first,
//! mount, monolithic or chunked upload, resumed or restarted after faults),
//! then per-platform manifests, then the index, then tags, then a check of
//! the registry's digest.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use reqwest::Method;
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use oci_spec::image::Descriptor;

use super::client::{Registry, push_scopes};
use super::error::{Checked, RegistryError};
use crate::digest::Digest;
use crate::error::{Error, LayoutError, Result};
use crate::oci::{Document, Kind, MANIFEST_ACCEPT};
use crate::progress::{BlobOutcome, BlobRef as BlobAt, Event, Progress};
use crate::reference::Reference;
use crate::store::BlobStore;

/// A blob to push.
#[derive(Debug, Clone)]
struct BlobRef {
    digest: Digest,
    size: u64,
}

impl BlobRef {
    fn of(d: &Descriptor) -> Result<Self> {
        Ok(Self {
            digest: Digest::from_oci(d.digest())?,
            size: d.size(),
        })
    }
}

/// What one push did.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// The image's name (as images.yaml and the layout give it).
    pub image: String,
    /// `REGISTRY/REPO@sha256:…`.
    pub reference: String,
    /// The digest of the top manifest or index.
    pub digest: Digest,
    /// The tags pushed.
    pub tags: Vec<String>,
    /// Blobs the image and its referrers need.
    pub blobs: usize,
    /// Blobs uploaded by this push.
    pub uploaded: u64,
    /// Blob bytes uploaded by this push.
    pub uploaded_bytes: u64,
    /// Blobs the registry already had.
    pub skipped: u64,
    /// Blobs mounted from another repository.
    pub mounted: u64,
    /// Requests retried.
    pub retried: u64,
    /// Artifacts attached to the image (SBOMs) pushed after it.
    pub referrers: usize,
}

/// Where blobs that were pushed before are remembered, for automatic mounts
/// across runs: `$XDG_CACHE_HOME/aelimg/pushed.json` (or `~/.cache/…`).
fn memory_path() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("aelimg").join("pushed.json"))
}

fn load_memory(reg: &Registry) {
    let Some(p) = memory_path() else { return };
    let Ok(bytes) = std::fs::read(&p) else { return };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return;
    };
    if let Some(m) = v.get(&reg.name).and_then(Value::as_object) {
        let mut known = reg.known.lock().expect("known");
        for (d, r) in m {
            if let Some(r) = r.as_str() {
                known.entry(d.clone()).or_insert_with(|| r.to_string());
            }
        }
    }
}

fn save_memory(reg: &Registry) {
    let Some(p) = memory_path() else { return };
    let mut v = std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    let known = reg.known.lock().expect("known");
    let mut m = serde_json::Map::new();
    // Bounded: the newest few thousand entries are plenty for mounts.
    for (d, r) in known.iter().take(4096) {
        m.insert(d.clone(), Value::String(r.clone()));
    }
    v[&reg.name] = Value::Object(m);
    if let Some(dir) = p.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = crate::fsutil::atomic_write(&p, &serde_json::to_vec(&v).unwrap_or_default());
    }
}

/// Pushes one image: `top` and everything it references, from `store`, to
/// `target`'s repository, tagged with every one of `tags`, then the
/// artifacts attached to it (`referrers`, see [`push_referrers`]). Each
/// blob is reported to `progress` (started, bytes accepted, done), from the
/// threads that upload them; the report counts the referrers' blobs too.
pub fn push_image(
    reg: &Registry,
    store: &BlobStore,
    top: &Document,
    referrers: &[crate::oci::Referrer],
    target: &Reference,
    tags: &[String],
    progress: &dyn Progress,
) -> Result<PushReport> {
    load_memory(reg);
    let before = snapshot(reg);
    let repo = &target.repository;
    let mut children = Vec::new();
    let mut manifests = Vec::new();
    match top.kind() {
        Kind::Index => {
            for d in top.index()?.manifests() {
                let digest = Digest::from_oci(d.digest())?;
                let m = Document {
                    media_type: d.media_type().to_string(),
                    bytes: store.read(&digest)?,
                    digest,
                };
                manifests.push(m.manifest()?);
                children.push(m);
            }
        }
        Kind::Manifest => manifests.push(top.manifest()?),
        Kind::Unknown => {
            return Err(Error::Request(format!(
                "{} has media type {}: aelimg pushes image manifests and indexes",
                top.digest, top.media_type
            )));
        }
    }
    let mut blobs: Vec<BlobRef> = Vec::new();
    for m in &manifests {
        blobs.push(BlobRef::of(m.config())?);
        for l in m.layers() {
            blobs.push(BlobRef::of(l)?);
        }
    }
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    blobs.dedup_by(|a, b| a.digest == b.digest);
    for b in &blobs {
        if !store.has(&b.digest) {
            return Err(LayoutError::Invalid(format!(
                "blob {} is missing from {}: build again",
                b.digest,
                store.root().display()
            ))
            .into());
        }
    }
    upload_all(reg, store, repo, &blobs, progress)?;
    for m in &children {
        put_manifest(reg, repo, m, m.digest.as_str())?;
    }
    for t in tags {
        put_manifest(reg, repo, top, t)?;
    }
    verify(reg, repo, &tags[0], &top.digest)?;
    {
        let mut known = reg.known.lock().expect("known");
        for b in &blobs {
            known.insert(b.digest.to_string(), repo.clone());
        }
    }
    save_memory(reg);
    let referrer_blobs = push_referrers(reg, store, repo, referrers, progress)?;
    let after = snapshot(reg);
    Ok(PushReport {
        image: String::new(),
        reference: format!("{}@{}", target.name(), top.digest),
        digest: top.digest.clone(),
        tags: tags.to_vec(),
        blobs: blobs.len() + referrer_blobs,
        uploaded: after.0 - before.0,
        uploaded_bytes: after.1 - before.1,
        skipped: after.2 - before.2,
        mounted: after.3 - before.3,
        retried: after.4 - before.4,
        referrers: referrers.len(),
    })
}

fn snapshot(reg: &Registry) -> (u64, u64, u64, u64, u64) {
    let s = &reg.stats;
    (
        s.uploaded.load(Ordering::Relaxed),
        s.uploaded_bytes.load(Ordering::Relaxed),
        s.skipped.load(Ordering::Relaxed),
        s.mounted.load(Ordering::Relaxed),
        s.retried.load(Ordering::Relaxed),
    )
}

/// Uploads blobs, a bounded number at once.
fn upload_all(
    reg: &Registry,
    store: &BlobStore,
    repo: &str,
    blobs: &[BlobRef],
    progress: &dyn Progress,
) -> Result<()> {
    let queue = Mutex::new(blobs.iter().collect::<Vec<_>>());
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let workers = reg.opts.jobs.clamp(1, 16).min(blobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if failure.lock().expect("failure").is_some() {
                        return;
                    }
                    let Some(b) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    if let Err(e) = push_blob(reg, store, repo, b, progress) {
                        failure.lock().expect("failure").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match failure.into_inner().expect("failure") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn blob_url(reg: &Registry, repo: &str, digest: &str) -> Result<Url> {
    reg.url(&format!("/v2/{repo}/blobs/{digest}"))
}

/// Whether the repository has the blob.
fn has_blob(reg: &Registry, repo: &str, b: &BlobRef) -> Result<bool> {
    let resp = reg.send(
        Method::HEAD,
        &blob_url(reg, repo, b.digest.as_str())?,
        &push_scopes(repo, None),
        &HeaderMap::new(),
        None,
    )?;
    match resp.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(reg.status_error(resp, &format!("check for blob {}", b.digest))),
    }
}

fn location(reg: &Registry, resp: &reqwest::blocking::Response) -> Result<Url> {
    reg.location(resp, "upload answer")
}

/// Pushes one blob unless the registry has it.
fn push_blob(
    reg: &Registry,
    store: &BlobStore,
    repo: &str,
    b: &BlobRef,
    progress: &dyn Progress,
) -> Result<()> {
    let at = BlobAt {
        registry: &reg.name,
        repository: repo,
        digest: &b.digest,
        size: b.size,
    };
    progress.event(&Event::BlobStarted { blob: at });
    let done = |outcome| progress.event(&Event::BlobDone { blob: at, outcome });
    if has_blob(reg, repo, b)? {
        reg.stats.skipped.fetch_add(1, Ordering::Relaxed);
        done(BlobOutcome::Exists);
        return Ok(());
    }
    let mut sources: Vec<String> = reg.opts.mount_from.clone();
    if let Some(r) = reg.known.lock().expect("known").get(b.digest.as_str()) {
        sources.push(r.clone());
    }
    sources.retain(|s| s != repo);
    sources.dedup();
    let mut session = None;
    for from in &sources {
        let url = reg.url(&format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={from}",
            b.digest
        ))?;
        let resp = reg.send(
            Method::POST,
            &url,
            &push_scopes(repo, Some(from)),
            &HeaderMap::new(),
            None,
        );
        match resp {
            Ok(r) if r.status().as_u16() == 201 => {
                reg.stats.mounted.fetch_add(1, Ordering::Relaxed);
                done(BlobOutcome::Mounted { from });
                return Ok(());
            }
            // Declined: the registry opened an upload session instead.
            Ok(r) if r.status().as_u16() == 202 => {
                session = Some(location(reg, &r)?);
                break;
            }
            // Any other refusal (no pull right on the source, ...): upload.
            Ok(_) | Err(_) => {}
        }
    }
    upload(reg, store, repo, b, session, progress)?;
    done(BlobOutcome::Pushed);
    Ok(())
}

/// An upload step's failure, and whether trying again can help.
type StepError = (bool, Error);

fn fatal(e: Error) -> StepError {
    (false, e)
}

/// Transport failures are worth another try; refused credentials are not.
fn sent(r: Result<reqwest::blocking::Response>) -> Result<reqwest::blocking::Response, StepError> {
    r.map_err(|e| {
        let transient = matches!(e.registry(), Some(RegistryError::Unreachable { .. }));
        (transient, e)
    })
}

/// An unexpected status: a lost or confused upload session (404, 416,
/// BLOB_UPLOAD_*), throttling and server errors are worth another try (a new
/// or resumed session); anything else (a digest the registry computed
/// differently, a denied push) is final.
fn status_fail(reg: &Registry, resp: reqwest::blocking::Response, what: &str) -> StepError {
    let code = resp.status().as_u16();
    let e = reg.status_error(resp, what);
    let session = matches!(e.registry(), Some(RegistryError::Status { codes, .. })
        if codes.iter().any(|c| c.starts_with("BLOB_UPLOAD_")));
    let transient = matches!(code, 404 | 408 | 416 | 429) || code >= 500 || session;
    (transient, e)
}

/// Starts an upload session.
fn start_upload(reg: &Registry, repo: &str) -> Result<Url, StepError> {
    let url = reg
        .url(&format!("/v2/{repo}/blobs/uploads/"))
        .map_err(fatal)?;
    let resp = sent(reg.send(
        Method::POST,
        &url,
        &push_scopes(repo, None),
        &HeaderMap::new(),
        None,
    ))?;
    if resp.status().as_u16() != 202 {
        let code = resp.status().as_u16();
        let e = reg.status_error(resp, &format!("start an upload to {repo}"));
        return Err((code >= 500 || code == 429, e));
    }
    location(reg, &resp).map_err(fatal)
}

fn with_digest(mut url: Url, digest: &str) -> Url {
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

fn octet_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h
}

/// Asks an upload session how much it holds; None when the session is gone.
fn upload_offset(reg: &Registry, repo: &str, url: &Url) -> Option<u64> {
    let resp = reg
        .send_with(
            Method::GET,
            url,
            &push_scopes(repo, None),
            &HeaderMap::new(),
            None,
            0,
        )
        .ok()?;
    if resp.status().as_u16() != 204 {
        return None;
    }
    let range = resp.headers().get("range")?.to_str().ok()?;
    let end: u64 = range.rsplit('-').next()?.parse().ok()?;
    // distribution answers `0-0` both for an empty session and for one
    // byte: start a new session rather than guess.
    (end > 0).then_some(end + 1)
}

/// Uploads a blob: one PUT when small, PATCH chunks then PUT when large.
/// A fault resumes the session where the registry says it stands, or starts
/// a new session when the old one is gone; each try that makes no progress
/// uses up one retry.
fn upload(
    reg: &Registry,
    store: &BlobStore,
    repo: &str,
    b: &BlobRef,
    session: Option<Url>,
    progress: &dyn Progress,
) -> Result<()> {
    let at = BlobAt {
        registry: &reg.name,
        repository: repo,
        digest: &b.digest,
        size: b.size,
    };
    let accepted = |bytes| progress.event(&Event::BlobProgress { blob: at, bytes });
    let path = store.path(&b.digest);
    let mut file =
        File::open(&path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let chunk = reg.opts.chunk_size.max(1);
    let scopes = push_scopes(repo, None);
    let mut session = session;
    let mut offset = 0u64;
    let mut failures = 0u32;
    loop {
        let result = (|| -> Result<(), StepError> {
            let mut url = match session.take() {
                Some(u) => u,
                None => {
                    offset = 0;
                    start_upload(reg, repo)?
                }
            };
            session = Some(url.clone());
            if b.size <= chunk && offset == 0 {
                let mut buf = Vec::with_capacity(usize::try_from(b.size).unwrap_or(0));
                file.seek(SeekFrom::Start(0))
                    .and_then(|_| (&mut file).take(b.size).read_to_end(&mut buf))
                    .map_err(|e| fatal(Error::io(format!("cannot read {}", path.display()), e)))?;
                let resp = sent(reg.send_with(
                    Method::PUT,
                    &with_digest(url, b.digest.as_str()),
                    &scopes,
                    &octet_headers(),
                    Some(&buf),
                    0,
                ))?;
                if resp.status().as_u16() != 201 {
                    return Err(status_fail(reg, resp, &format!("upload blob {}", b.digest)));
                }
                reg.stats
                    .uploaded_bytes
                    .fetch_add(b.size, Ordering::Relaxed);
                accepted(b.size);
                return Ok(());
            }
            while offset < b.size {
                let n = chunk.min(b.size - offset);
                let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
                file.seek(SeekFrom::Start(offset))
                    .and_then(|_| (&mut file).take(n).read_to_end(&mut buf))
                    .map_err(|e| fatal(Error::io(format!("cannot read {}", path.display()), e)))?;
                let mut h = octet_headers();
                h.insert(
                    "content-range",
                    HeaderValue::from_str(&format!("{offset}-{}", offset + n - 1)).expect("ascii"),
                );
                let resp = sent(reg.send_with(Method::PATCH, &url, &scopes, &h, Some(&buf), 0))?;
                if resp.status().as_u16() != 202 {
                    return Err(status_fail(
                        reg,
                        resp,
                        &format!("upload a chunk of {}", b.digest),
                    ));
                }
                reg.stats.uploaded_bytes.fetch_add(n, Ordering::Relaxed);
                url = location(reg, &resp).map_err(fatal)?;
                session = Some(url.clone());
                offset += n;
                accepted(offset);
                failures = 0;
            }
            let resp = sent(reg.send_with(
                Method::PUT,
                &with_digest(url, b.digest.as_str()),
                &scopes,
                &octet_headers(),
                None,
                0,
            ))?;
            if resp.status().as_u16() != 201 {
                return Err(status_fail(reg, resp, &format!("finish blob {}", b.digest)));
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                reg.stats.uploaded.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err((transient, e)) => {
                if !transient || failures >= reg.opts.retries {
                    return Err(e);
                }
                failures += 1;
                progress.event(&Event::BlobRetry {
                    blob: at,
                    error: &crate::error::chain(&e),
                });
                std::thread::sleep(
                    reg.opts
                        .backoff
                        .saturating_mul(1 << failures.min(6))
                        .min(reg.opts.max_backoff),
                );
                // Resume where the session stands, or start over.
                match session.as_ref().and_then(|u| upload_offset(reg, repo, u)) {
                    Some(o) if o <= b.size => offset = o,
                    _ => {
                        session = None;
                        offset = 0;
                    }
                }
                accepted(offset);
            }
        }
    }
}

/// PUTs a manifest under a tag or digest, checking the digest the registry
/// reports; true when the registry answers `OCI-Subject` (it keeps the
/// referrers of the manifest's subject itself).
fn put_manifest(reg: &Registry, repo: &str, m: &Document, reference: &str) -> Result<bool> {
    let url = reg.url(&format!("/v2/{repo}/manifests/{reference}"))?;
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&m.media_type)
            .map_err(|_| LayoutError::Invalid(format!("bad media type `{}`", m.media_type)))?,
    );
    let resp = reg.send(
        Method::PUT,
        &url,
        &push_scopes(repo, None),
        &h,
        Some(&m.bytes),
    )?;
    if resp.status().as_u16() != 201 {
        return Err(reg.status_error(resp, &format!("push manifest {reference} to {repo}")));
    }
    if let Some(d) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|d| d.to_str().ok())
        && d != m.digest.as_str()
    {
        return Err(RegistryError::Verification {
            registry: reg.name.clone(),
            what: Checked::Stored {
                reference: reference.to_string(),
            },
            expected: m.digest.to_string(),
            got: d.to_string(),
        }
        .into());
    }
    // A registry that keeps a manifest's subject's referrers itself says so.
    Ok(resp.headers().get("oci-subject").is_some())
}

/// Pushes artifacts attached to an image's manifests (SBOMs) to `repo`,
/// after the image: their blobs, then each artifact manifest by digest. A
/// registry that keeps referrers itself says so with an `OCI-Subject`
/// header on the manifest PUT; for one that does not (docker-registry 2.8
/// here), each subject's referrers are also listed in an image index tagged
/// `sha256-<subject hex>`, merged with what that tag already lists: the
/// image-spec's referrers tag schema, which clients fall back to when the
/// referrers API answers 404. Returns how many blobs they needed (each
/// uploaded, mounted or found in the repository).
///
/// # Errors
/// When a blob or manifest cannot be pushed, or the tag's index cannot be
/// read or written.
fn push_referrers(
    reg: &Registry,
    store: &BlobStore,
    repo: &str,
    referrers: &[crate::oci::Referrer],
    progress: &dyn Progress,
) -> Result<usize> {
    if referrers.is_empty() {
        return Ok(0);
    }
    let mut blobs: Vec<BlobRef> = Vec::new();
    for r in referrers {
        let m = r.manifest.manifest()?;
        blobs.push(BlobRef::of(m.config())?);
        for l in m.layers() {
            blobs.push(BlobRef::of(l)?);
        }
    }
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    blobs.dedup_by(|a, b| a.digest == b.digest);
    upload_all(reg, store, repo, &blobs, progress)?;
    {
        // Known to be in `repo` from now: another repository mounts them.
        let mut known = reg.known.lock().expect("known");
        for b in &blobs {
            known.insert(b.digest.to_string(), repo.to_string());
        }
    }
    save_memory(reg);
    let mut fallback: std::collections::BTreeMap<&Digest, Vec<Descriptor>> =
        std::collections::BTreeMap::new();
    for r in referrers {
        let kept = put_manifest(reg, repo, &r.manifest, r.manifest.digest.as_str())?;
        if !kept {
            fallback.entry(&r.subject).or_default().push(r.descriptor());
        }
    }
    for (subject, descs) in fallback {
        let tag = format!("sha256-{}", subject.hex());
        let mut listed: Vec<Descriptor> = match get_index(reg, repo, &tag)? {
            Some(doc) => doc.index()?.manifests().clone(),
            None => Vec::new(),
        };
        for d in descs {
            if !listed.iter().any(|l| l.digest() == d.digest()) {
                listed.push(d);
            }
        }
        let index = oci_spec::image::ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(oci_spec::image::MediaType::ImageIndex)
            .manifests(listed)
            .build()
            .map_err(|e| LayoutError::Invalid(format!("referrers index: {e}")))?;
        let doc = Document::from_typed(crate::oci::INDEX, &index)
            .map_err(|e| Error::json("referrers index", e))?;
        put_manifest(reg, repo, &doc, &tag)?;
    }
    Ok(blobs.len())
}

/// The index tagged `tag`, or `None` when the tag does not exist.
fn get_index(reg: &Registry, repo: &str, tag: &str) -> Result<Option<Document>> {
    let url = reg.url(&format!("/v2/{repo}/manifests/{tag}"))?;
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static(crate::oci::INDEX));
    let resp = reg.send(
        Method::GET,
        &url,
        &super::client::pull_scopes(repo),
        &h,
        None,
    )?;
    match resp.status().as_u16() {
        404 => return Ok(None),
        200 => {}
        _ => return Err(reg.status_error(resp, &format!("get referrers index {repo}:{tag}"))),
    }
    let bytes = resp
        .bytes()
        .map_err(|e| {
            Error::from(RegistryError::Transfer(format!(
                "{}: cannot read {repo}:{tag}: {e}",
                reg.name
            )))
        })?
        .to_vec();
    Ok(Some(Document::from_bytes(crate::oci::INDEX, bytes)))
}

/// Checks that the tag now resolves to our digest.
fn verify(reg: &Registry, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
    let url = reg.url(&format!("/v2/{repo}/manifests/{tag}"))?;
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    let resp = reg.send(
        Method::GET,
        &url,
        &super::client::pull_scopes(repo),
        &h,
        None,
    )?;
    if !resp.status().is_success() {
        return Err(reg.status_error(resp, &format!("read back {repo}:{tag}")));
    }
    let bytes = resp.bytes().map_err(|e| {
        Error::from(RegistryError::Transfer(format!(
            "{}: cannot read back {repo}:{tag}: {e}",
            reg.name
        )))
    })?;
    let got = Digest::of(&bytes);
    if got != *digest {
        return Err(RegistryError::Verification {
            registry: reg.name.clone(),
            what: Checked::ReadBack {
                tag: format!("{repo}:{tag}"),
            },
            expected: digest.to_string(),
            got: got.to_string(),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::client::Options;
    use super::super::testserver::{Reply, Request, Server};
    use super::*;

    fn options(srv: &Server) -> Options {
        Options {
            jobs: 1,
            ..super::super::client::test_options(srv)
        }
    }

    /// A connection to the server (its `/v2/` answers 200), with no
    /// requests recorded yet.
    fn connect(srv: &Server, opts: Options) -> Registry {
        srv.script([Reply::status(200)]);
        let reg = Registry::connect_with(&srv.name(), &srv.name(), opts, None).unwrap();
        srv.take_requests();
        reg
    }

    fn store_with(bytes: &[u8]) -> (tempfile::TempDir, BlobStore, BlobRef) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let digest = Digest::of(bytes);
        store.put_bytes(bytes, &digest).unwrap();
        let b = BlobRef {
            digest,
            size: bytes.len() as u64,
        };
        (dir, store, b)
    }

    /// `METHOD target [content-range]`, with the blob's digest as `{d}`.
    fn summary(reqs: &[Request], d: &Digest) -> Vec<String> {
        reqs.iter()
            .map(|r| {
                let line = r
                    .line()
                    .replace(&d.to_string(), "{d}")
                    .replace(&d.to_string().replace(':', "%3A"), "{d}");
                match r.header("content-range") {
                    Some(range) => format!("{line} [{range}]"),
                    None => line,
                }
            })
            .collect()
    }

    fn at(loc: &str) -> Reply {
        Reply::status(202).header("location", loc)
    }

    fn unknown_upload() -> Reply {
        Reply::status(404).body(r#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"gone"}]}"#)
    }

    #[test]
    fn blob_upload_state_machine() {
        const B: &str = "/v2/a/b/blobs";
        struct Case {
            name: &'static str,
            chunk: u64,
            mount_from: &'static [&'static str],
            script: Vec<Reply>,
            want: Vec<&'static str>,
            /// uploaded, skipped, mounted, retried
            stats: (u64, u64, u64, u64),
        }
        let blob = b"0123456789";
        let cases = vec![
            Case {
                name: "the registry has it: no upload",
                chunk: 1 << 20,
                mount_from: &[],
                script: vec![Reply::status(200)],
                want: vec!["HEAD /v2/a/b/blobs/{d}"],
                stats: (0, 1, 0, 0),
            },
            Case {
                name: "monolithic PUT with ?digest=",
                chunk: 1 << 20,
                mount_from: &[],
                script: vec![
                    Reply::status(404),
                    at(&format!("{B}/uploads/u1")),
                    Reply::status(201),
                ],
                want: vec![
                    "HEAD /v2/a/b/blobs/{d}",
                    "POST /v2/a/b/blobs/uploads/",
                    "PUT /v2/a/b/blobs/uploads/u1?digest={d}",
                ],
                stats: (1, 0, 0, 0),
            },
            Case {
                name: "mounted from another repository",
                chunk: 1 << 20,
                mount_from: &["c/d"],
                script: vec![Reply::status(404), Reply::status(201)],
                want: vec![
                    "HEAD /v2/a/b/blobs/{d}",
                    "POST /v2/a/b/blobs/uploads/?mount={d}&from=c/d",
                ],
                stats: (0, 0, 1, 0),
            },
            Case {
                name: "mount declined: upload into the session it opened",
                chunk: 1 << 20,
                mount_from: &["c/d"],
                script: vec![
                    Reply::status(404),
                    at(&format!("{B}/uploads/m1")),
                    Reply::status(201),
                ],
                want: vec![
                    "HEAD /v2/a/b/blobs/{d}",
                    "POST /v2/a/b/blobs/uploads/?mount={d}&from=c/d",
                    "PUT /v2/a/b/blobs/uploads/m1?digest={d}",
                ],
                stats: (1, 0, 0, 0),
            },
            Case {
                name: "chunked: PATCHes with Content-Range, then PUT",
                chunk: 4,
                mount_from: &[],
                script: vec![
                    Reply::status(404),
                    at(&format!("{B}/uploads/u1")),
                    at(&format!("{B}/uploads/u2")),
                    at(&format!("{B}/uploads/u3")),
                    at(&format!("{B}/uploads/u4")),
                    Reply::status(201),
                ],
                want: vec![
                    "HEAD /v2/a/b/blobs/{d}",
                    "POST /v2/a/b/blobs/uploads/",
                    "PATCH /v2/a/b/blobs/uploads/u1 [0-3]",
                    "PATCH /v2/a/b/blobs/uploads/u2 [4-7]",
                    "PATCH /v2/a/b/blobs/uploads/u3 [8-9]",
                    "PUT /v2/a/b/blobs/uploads/u4?digest={d}",
                ],
                stats: (1, 0, 0, 0),
            },
            Case {
                name: "dropped connection: resumed where the session stands",
                chunk: 4,
                mount_from: &[],
                script: vec![
                    Reply::status(404),
                    at(&format!("{B}/uploads/u1")),
                    at(&format!("{B}/uploads/u2")),
                    Reply::hang_up(),
                    Reply::status(204).header("range", "0-3"),
                    at(&format!("{B}/uploads/u3")),
                    at(&format!("{B}/uploads/u4")),
                    Reply::status(201),
                ],
                want: vec![
                    "HEAD /v2/a/b/blobs/{d}",
                    "POST /v2/a/b/blobs/uploads/",
                    "PATCH /v2/a/b/blobs/uploads/u1 [0-3]",
                    "PATCH /v2/a/b/blobs/uploads/u2 [4-7]",
                    "GET /v2/a/b/blobs/uploads/u2",
                    "PATCH /v2/a/b/blobs/uploads/u2 [4-7]",
                    "PATCH /v2/a/b/blobs/uploads/u3 [8-9]",
                    "PUT /v2/a/b/blobs/uploads/u4?digest={d}",
                ],
                stats: (1, 0, 0, 0),
            },
            Case {
                name: "session gone (404): restarted from the first byte",
                chunk: 4,
                mount_from: &[],
                script: vec![
                    Reply::status(404),
                    at(&format!("{B}/uploads/u1")),
                    at(&format!("{B}/uploads/u2")),
                    unknown_upload(),
                    unknown_upload(),
                    at(&format!("{B}/uploads/v1")),
                    at(&format!("{B}/uploads/v2")),
                    at(&format!("{B}/uploads/v3")),
                    at(&format!("{B}/uploads/v4")),
                    Reply::status(201),
                ],
                want: vec![
                    "HEAD /v2/a/b/blobs/{d}",
                    "POST /v2/a/b/blobs/uploads/",
                    "PATCH /v2/a/b/blobs/uploads/u1 [0-3]",
                    "PATCH /v2/a/b/blobs/uploads/u2 [4-7]",
                    "GET /v2/a/b/blobs/uploads/u2",
                    "POST /v2/a/b/blobs/uploads/",
                    "PATCH /v2/a/b/blobs/uploads/v1 [0-3]",
                    "PATCH /v2/a/b/blobs/uploads/v2 [4-7]",
                    "PATCH /v2/a/b/blobs/uploads/v3 [8-9]",
                    "PUT /v2/a/b/blobs/uploads/v4?digest={d}",
                ],
                stats: (1, 0, 0, 0),
            },
            Case {
                name: "429 with Retry-After, twice, then the answer",
                chunk: 1 << 20,
                mount_from: &[],
                script: vec![
                    Reply::status(429).header("retry-after", "1"),
                    Reply::status(429).header("retry-after", "1"),
                    Reply::status(200),
                ],
                want: vec![
                    "HEAD /v2/a/b/blobs/{d}",
                    "HEAD /v2/a/b/blobs/{d}",
                    "HEAD /v2/a/b/blobs/{d}",
                ],
                stats: (0, 1, 0, 2),
            },
        ];
        for c in cases {
            let srv = Server::start();
            let reg = connect(
                &srv,
                Options {
                    chunk_size: c.chunk,
                    mount_from: c.mount_from.iter().map(|s| (*s).to_string()).collect(),
                    ..options(&srv)
                },
            );
            let (_dir, store, b) = store_with(blob);
            srv.script(c.script);
            push_blob(&reg, &store, "a/b", &b, &crate::progress::Silent)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
            let reqs = srv.take_requests();
            assert_eq!(summary(&reqs, &b.digest), c.want, "{}", c.name);
            assert_eq!(srv.unused(), 0, "{}", c.name);
            // Every PATCH carries the bytes its Content-Range names; a PUT
            // with a body carries the whole blob.
            for r in &reqs {
                if let Some((from, to)) = r.header("content-range").and_then(|v| v.split_once('-'))
                {
                    let (from, to): (usize, usize) = (from.parse().unwrap(), to.parse().unwrap());
                    assert_eq!(r.body, &blob[from..=to], "{}: {}", c.name, r.line());
                }
                if r.method == "PUT" && !r.body.is_empty() {
                    assert_eq!(r.body, blob, "{}", c.name);
                }
            }
            let s = &reg.stats;
            let got = (
                s.uploaded.load(Ordering::Relaxed),
                s.skipped.load(Ordering::Relaxed),
                s.mounted.load(Ordering::Relaxed),
                s.retried.load(Ordering::Relaxed),
            );
            assert_eq!(got, c.stats, "{}", c.name);
        }
    }

    /// Records blob events as `started SIZE`, `at BYTES`, `retry`, `done OUTCOME`.
    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl Progress for Seen {
        fn event(&self, e: &Event<'_>) {
            let line = match e {
                Event::BlobStarted { blob } => format!("started {}", blob.size),
                Event::BlobProgress { bytes, .. } => format!("at {bytes}"),
                Event::BlobRetry { .. } => "retry".to_string(),
                Event::BlobDone { outcome, .. } => format!("done {outcome:?}"),
                _ => return,
            };
            self.0.lock().unwrap().push(line);
        }
    }

    #[test]
    fn blob_progress_events_follow_the_bytes_the_registry_accepted() {
        const B: &str = "/v2/a/b/blobs";
        let blob = b"0123456789";
        /// Chunk size, repositories to mount from, the script, the events.
        type Case = (
            u64,
            &'static [&'static str],
            Vec<Reply>,
            &'static [&'static str],
        );
        let cases: Vec<Case> = vec![
            (
                1 << 20,
                &[],
                vec![Reply::status(200)],
                &["started 10", "done Exists"],
            ),
            (
                1 << 20,
                &["c/d"],
                vec![Reply::status(404), Reply::status(201)],
                &["started 10", "done Mounted { from: \"c/d\" }"],
            ),
            (
                1 << 20,
                &[],
                vec![
                    Reply::status(404),
                    at(&format!("{B}/uploads/u1")),
                    Reply::status(201),
                ],
                &["started 10", "at 10", "done Pushed"],
            ),
            // Chunks, a dropped connection, resumed where the session stands.
            (
                4,
                &[],
                vec![
                    Reply::status(404),
                    at(&format!("{B}/uploads/u1")),
                    at(&format!("{B}/uploads/u2")),
                    Reply::hang_up(),
                    Reply::status(204).header("range", "0-3"),
                    at(&format!("{B}/uploads/u3")),
                    at(&format!("{B}/uploads/u4")),
                    Reply::status(201),
                ],
                &[
                    "started 10",
                    "at 4",
                    "retry",
                    "at 4",
                    "at 8",
                    "at 10",
                    "done Pushed",
                ],
            ),
        ];
        for (chunk, mount_from, script, want) in cases {
            let srv = Server::start();
            let reg = connect(
                &srv,
                Options {
                    chunk_size: chunk,
                    mount_from: mount_from.iter().map(|s| (*s).to_string()).collect(),
                    ..options(&srv)
                },
            );
            let (_dir, store, b) = store_with(blob);
            srv.script(script);
            let seen = Seen::default();
            push_blob(&reg, &store, "a/b", &b, &seen).unwrap();
            assert_eq!(*seen.0.lock().unwrap(), want, "chunk {chunk}");
        }
    }

    fn manifest() -> Document {
        Document::from_bytes(crate::oci::MANIFEST, br#"{"schemaVersion":2}"#.to_vec())
    }

    #[test]
    fn manifest_put_checks_the_digest_the_registry_reports() {
        let m = manifest();
        let other = Digest::of(b"rewritten");
        // (Docker-Content-Digest answered, refused?)
        for (answered, refused) in [
            (None, false),
            (Some(m.digest.to_string()), false),
            (Some(other.to_string()), true),
        ] {
            let srv = Server::start();
            let reg = connect(&srv, options(&srv));
            let mut reply = Reply::status(201);
            if let Some(d) = &answered {
                reply = reply.header("docker-content-digest", d);
            }
            srv.script([reply]);
            let result = put_manifest(&reg, "a/b", &m, "1.0");
            let reqs = srv.take_requests();
            assert_eq!(reqs.len(), 1);
            assert_eq!(reqs[0].line(), "PUT /v2/a/b/manifests/1.0");
            assert_eq!(reqs[0].header("content-type"), Some(crate::oci::MANIFEST));
            assert_eq!(reqs[0].body, m.bytes);
            match result {
                Ok(_) => assert!(!refused, "{answered:?} accepted"),
                Err(e) => {
                    assert!(refused, "{answered:?}: {e}");
                    assert!(matches!(
                        e.registry(),
                        Some(RegistryError::Verification { what: Checked::Stored { .. }, got, .. })
                            if *got == other.to_string()
                    ));
                    assert!(e.to_string().contains("it rewrote the bytes"), "{e}");
                }
            }
        }
    }

    #[test]
    fn verify_reads_the_tag_back_and_refuses_other_bytes() {
        let m = manifest();
        for (served, refused) in [(m.bytes.clone(), false), (b"{}".to_vec(), true)] {
            let srv = Server::start();
            let reg = connect(&srv, options(&srv));
            srv.script([Reply::status(200)
                .header("content-type", crate::oci::MANIFEST)
                .body(served)]);
            let result = verify(&reg, "a/b", "1.0", &m.digest);
            let reqs = srv.take_requests();
            assert_eq!(reqs.len(), 1);
            assert_eq!(reqs[0].line(), "GET /v2/a/b/manifests/1.0");
            assert_eq!(reqs[0].header("accept"), Some(MANIFEST_ACCEPT));
            match result {
                Ok(()) => assert!(!refused),
                Err(e) => {
                    assert!(refused, "{e}");
                    assert!(matches!(
                        e.registry(),
                        Some(RegistryError::Verification {
                            what: Checked::ReadBack { .. },
                            ..
                        })
                    ));
                    let msg = e.to_string();
                    assert!(msg.contains("a/b:1.0 is sha256:"), "{msg}");
                    assert!(
                        msg.contains(&format!("after the push, not {}", m.digest)),
                        "{msg}"
                    );
                }
            }
        }
    }
}
