//! Attaching documents about an image to it, as OCI 1.1 referrers: for
//! each platform manifest, an artifact manifest whose `subject` is that
//! manifest, whose `artifactType` says what it holds (an SPDX or CycloneDX
//! SBOM, an in-toto SLSA provenance statement), with the empty config and
//! the document as its one layer. The
//! layout sink lists them in `index.json` beside the image (untagged, with
//! their `artifactType`), as the image-layout spec allows and ORAS does.

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;
use serde_json::json;

use crate::cargo::{BinId, Binaries, CargoWorkspace};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{BaseImage, BuiltImage};
use crate::oci::{self, Document, Referrer};
use crate::plan::{EntryKind, ImagePlan, Plan};
use crate::platform::Platform;
use crate::sbom::{self, BaseInfo, FileInfo, PackageCrates, SbomFormat, SbomInput};
use crate::store::BlobStore;

/// The media type of the empty config of an artifact manifest.
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// Its bytes: `{}`.
pub const EMPTY_CONFIG_BYTES: &[u8] = b"{}";

/// What to attach to each image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttachSettings {
    /// The SBOM format, or `None` for no SBOM.
    pub sbom: Option<SbomFormat>,
    /// Attach SLSA v1 provenance (an in-toto statement).
    pub provenance: bool,
}

impl AttachSettings {
    /// Whether nothing is attached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sbom.is_none() && !self.provenance
    }
}

/// An artifact manifest of `artifact_type` holding `blob` (stored with the
/// empty config in `store`), whose subject is `subject`; stored too.
///
/// # Errors
/// When a blob cannot be stored.
pub fn artifact_manifest(
    store: &BlobStore,
    artifact_type: &str,
    blob: &Document,
    subject: &Descriptor,
    created: u64,
    annotations: &[(&str, &str)],
) -> Result<Document> {
    let empty = Document::from_bytes(EMPTY_CONFIG, EMPTY_CONFIG_BYTES.to_vec());
    store.put_bytes(&empty.bytes, &empty.digest)?;
    store.put_bytes(&blob.bytes, &blob.digest)?;
    let desc = |d: &Document| {
        serde_json::to_value(d.descriptor()).map_err(|e| Error::json("artifact manifest", e))
    };
    let subject = serde_json::to_value(subject).map_err(|e| Error::json("artifact manifest", e))?;
    let mut notes = serde_json::Map::new();
    notes.insert(
        crate::annotations::CREATED.into(),
        json!(crate::units::rfc3339(created)),
    );
    for (k, v) in annotations {
        notes.insert((*k).to_string(), json!(v));
    }
    let manifest = Document::from_value(
        oci::MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": oci::MANIFEST,
            "artifactType": artifact_type,
            "config": desc(&empty)?,
            "layers": [desc(blob)?],
            "subject": subject,
            "annotations": notes,
        }),
    );
    store.put_bytes(&manifest.bytes, &manifest.digest)?;
    Ok(manifest)
}

/// What a build knows that the attached documents describe.
pub struct BuildFacts<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The resolved registry bases, by image name.
    pub bases: &'a BTreeMap<String, BaseImage>,
    /// The payload binaries.
    pub binaries: &'a Binaries,
    /// The layers' compression (`gzip-6`).
    pub compression: &'a str,
}

/// What the attached documents need that the layers do not change: where
/// the sources come from (git and rustc: a few processes) and each payload
/// package's crate list. [`prepare`] finds it while the layers are built.
#[derive(Debug, Default)]
pub struct Prepared {
    source: Option<crate::provenance::Source>,
    crates: BTreeMap<(String, Platform), PackageCrates>,
}

/// Finds what [`attach`] will need for the images of `plan`, as `settings`
/// asks: the provenance's source, and the crate list of every payload
/// package for every platform (for the SBOM).
///
/// # Errors
/// When the spec file cannot be read or cargo cannot list a package's
/// crates.
pub fn prepare(
    plan: &Plan,
    workspace: Option<&CargoWorkspace>,
    settings: AttachSettings,
) -> Result<Prepared> {
    let source = if settings.provenance {
        Some(crate::provenance::source(
            &plan.spec_file,
            workspace.map(|w| w.root.as_path()),
        )?)
    } else {
        None
    };
    let mut crates = BTreeMap::new();
    if let (Some(_), Some(ws)) = (settings.sbom, workspace) {
        for img in &plan.images {
            for &platform in &img.platforms {
                for id in img.cargo_binaries() {
                    if let std::collections::btree_map::Entry::Vacant(e) =
                        crates.entry((id.package.clone(), platform))
                    {
                        e.insert(sbom::crates::package_crates(
                            ws,
                            &id.package,
                            platform.rust_target(),
                            true,
                        )?);
                    }
                }
            }
        }
    }
    Ok(Prepared { source, crates })
}

/// Builds what `settings` asks for, for every platform of every image, into
/// `store`, and records it in each image's `referrers` (per image: the
/// provenance of each platform, then the SBOM of each platform); `prepared`
/// is what [`prepare`] found for the same plan and settings.
///
/// The documents of each image and platform are made and stored at once,
/// one thread each: every blob is synced before it is renamed into the
/// store, and the syncs of small files wait on the disk, not the CPU.
///
/// # Errors
/// When a file cannot be read or a blob cannot be stored.
pub fn attach(
    facts: &BuildFacts<'_>,
    prepared: &Prepared,
    images: &mut [BuiltImage],
    store: &BlobStore,
    settings: AttachSettings,
) -> Result<()> {
    if settings.is_empty() {
        return Ok(());
    }
    let jobs: Vec<(usize, usize)> = images
        .iter()
        .enumerate()
        .flat_map(|(i, image)| (0..image.platforms.len()).map(move |p| (i, p)))
        .collect();
    let shared: &[BuiltImage] = images;
    let made: Vec<Result<Attached>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|&(i, p)| {
                let one = One {
                    facts,
                    prepared,
                    img_plan: &facts.plan.images[i],
                    image: &shared[i],
                    platform: p,
                    store,
                };
                s.spawn(move || one.attach(settings))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut by_image: Vec<(Vec<Referrer>, Vec<Referrer>)> =
        images.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for (&(i, _), attached) in jobs.iter().zip(made) {
        let attached = attached?;
        by_image[i].0.extend(attached.provenance);
        by_image[i].1.extend(attached.sbom);
    }
    for (image, (provenance, sboms)) in images.iter_mut().zip(by_image) {
        image.referrers.extend(provenance);
        image.referrers.extend(sboms);
    }
    Ok(())
}

/// The documents attached to one platform of one image.
struct Attached {
    provenance: Option<Referrer>,
    sbom: Option<Referrer>,
}

/// One platform of one image, to attach documents to.
struct One<'a> {
    facts: &'a BuildFacts<'a>,
    prepared: &'a Prepared,
    img_plan: &'a ImagePlan,
    image: &'a BuiltImage,
    /// Index into `image.platforms`.
    platform: usize,
    store: &'a BlobStore,
}

impl One<'_> {
    fn attach(&self, settings: AttachSettings) -> Result<Attached> {
        let provenance = match (settings.provenance, &self.prepared.source) {
            (true, Some(source)) => Some(self.provenance(source)?),
            _ => None,
        };
        let sbom = match settings.sbom {
            Some(format) => Some(self.sbom(format)?),
            None => None,
        };
        Ok(Attached { provenance, sbom })
    }

    fn provenance(&self, source: &crate::provenance::Source) -> Result<Referrer> {
        let (plan, image) = (self.facts.plan, self.image);
        let p = &image.platforms[self.platform];
        let base = self.facts.bases.get(&self.img_plan.name);
        let base_ref = base.map(|b| b.reference.to_string());
        let input = crate::provenance::ProvenanceInput {
            name: &image.name,
            tag: &image.tag,
            platform: p.platform,
            manifest: &p.manifest.digest,
            source,
            base: base.map(|b| (base_ref.as_deref().unwrap_or_default(), &b.digest)),
            source_date_epoch: plan.source_date_epoch,
            compression: self.facts.compression,
        };
        let doc = Document::from_value(
            crate::provenance::MEDIA_TYPE,
            &crate::provenance::statement(&input),
        );
        let manifest = artifact_manifest(
            self.store,
            crate::provenance::MEDIA_TYPE,
            &doc,
            &p.manifest.descriptor(),
            plan.source_date_epoch,
            &[(
                "in-toto.io/predicate-type",
                crate::provenance::PREDICATE_TYPE,
            )],
        )?;
        Ok(Referrer {
            manifest,
            artifact_type: crate::provenance::MEDIA_TYPE.to_string(),
            subject: p.manifest.digest.clone(),
        })
    }

    fn sbom(&self, format: SbomFormat) -> Result<Referrer> {
        let (plan, image, store) = (self.facts.plan, self.image, self.store);
        let p = &image.platforms[self.platform];
        let base = self.facts.bases.get(&self.img_plan.name).map(|b| BaseInfo {
            reference: b.reference.to_string(),
            digest: b.digest.clone(),
        });
        let mut packages = Vec::new();
        for id in self.img_plan.cargo_binaries() {
            let Some(found) = self.prepared.crates.get(&(id.package.clone(), p.platform)) else {
                continue; // no workspace
            };
            if !packages.contains(found) {
                packages.push(found.clone());
            }
        }
        // The manifest's digest fixes every file's bytes: with the same
        // crates, base, names and time, the SBOM is the one made before.
        let key = sbom_key(
            format,
            &image.name,
            &image.tag,
            p.platform,
            &p.manifest.digest,
            &packages,
            base.as_ref(),
            plan.source_date_epoch,
        )?;
        let doc = match cached_sbom(store, &key, format) {
            Some(doc) => doc,
            None => {
                let files = files_of(self.img_plan, p.platform, self.facts.binaries)?;
                let input = SbomInput {
                    name: &image.name,
                    tag: &image.tag,
                    platform: p.platform,
                    manifest: &p.manifest.digest,
                    created: plan.source_date_epoch,
                    packages,
                    files,
                    base,
                };
                let doc = Document::from_bytes(format.media_type(), sbom::document(&input, format));
                store.put_bytes(&doc.bytes, &doc.digest)?;
                remember_sbom(store, &key, &doc.digest);
                doc
            }
        };
        let manifest = artifact_manifest(
            store,
            format.media_type(),
            &doc,
            &p.manifest.descriptor(),
            plan.source_date_epoch,
            &[],
        )?;
        Ok(Referrer {
            manifest,
            artifact_type: format.media_type().to_string(),
            subject: p.manifest.digest.clone(),
        })
    }
}

/// What decides the bytes of one SBOM, hashed (streamed into the hash: the
/// crate lists are the larger part of a build's SBOM work otherwise).
#[allow(clippy::too_many_arguments)]
fn sbom_key(
    format: SbomFormat,
    name: &str,
    tag: &str,
    platform: Platform,
    manifest: &Digest,
    packages: &[PackageCrates],
    base: Option<&BaseInfo>,
    created: u64,
) -> Result<Digest> {
    #[derive(serde::Serialize)]
    struct Key<'a> {
        v: &'static str,
        format: &'a str,
        name: &'a str,
        tag: &'a str,
        platform: String,
        manifest: &'a str,
        packages: &'a [PackageCrates],
        base: Option<(&'a str, &'a str)>,
        created: u64,
    }
    let key = Key {
        v: concat!("aelimg-sbom-doc-2-", env!("CARGO_PKG_VERSION")),
        format: format.media_type(),
        name,
        tag,
        platform: platform.to_string(),
        manifest: manifest.as_str(),
        packages,
        base: base.map(|b| (b.reference.as_str(), b.digest.as_str())),
        created,
    };
    let mut h = crate::layer::HashingWriter::new(std::io::sink());
    serde_json::to_writer(&mut h, &key).map_err(|e| Error::json("SBOM cache key", e))?;
    Ok(h.finish().1)
}

fn sbom_cache_file(store: &BlobStore, key: &Digest) -> std::path::PathBuf {
    store.root().join("sbom-cache").join(key.hex())
}

/// The SBOM made before for `key`, when its blob is still in the store.
fn cached_sbom(store: &BlobStore, key: &Digest, format: SbomFormat) -> Option<Document> {
    let text = std::fs::read_to_string(sbom_cache_file(store, key)).ok()?;
    let digest = Digest::parse(text.trim()).ok()?;
    let bytes = store.read(&digest).ok()?;
    (Digest::of(&bytes) == digest).then(|| Document::from_bytes(format.media_type(), bytes))
}

/// Remembers which SBOM `key` gave (a cache: failing to write it fails
/// nothing).
fn remember_sbom(store: &BlobStore, key: &Digest, sbom: &Digest) {
    let path = sbom_cache_file(store, key);
    if let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = crate::fsutil::write_cache_record(&path, sbom.as_str().as_bytes());
    }
}

/// Every regular file aelimg puts into `img` for `platform`, with digests,
/// sorted by path.
fn files_of(img: &ImagePlan, platform: Platform, binaries: &Binaries) -> Result<Vec<FileInfo>> {
    // By path: a later layer's file of the same path is what the image holds.
    let mut out: BTreeMap<String, FileInfo> = BTreeMap::new();
    for layer in &img.layers {
        for e in &layer.entries {
            let path = format!("/{}", e.path);
            let (sha256, sha1, size, package) = match &e.kind {
                EntryKind::File { source } => {
                    let (a, b, n) = sbom::file_digests(source).map_err(|err| {
                        Error::io(format!("cannot read {}", source.display()), err)
                    })?;
                    (a, b, n, None)
                }
                EntryKind::Cargo { package, bin } => {
                    let id = BinId {
                        package: package.clone(),
                        bin: bin.clone(),
                    };
                    let Some(source) = binaries.get(&(platform, id)) else {
                        return Err(Error::Cargo(format!(
                            "no {bin} binary of {package} for {platform}"
                        )));
                    };
                    let (a, b, n) = sbom::file_digests(source).map_err(|err| {
                        Error::io(format!("cannot read {}", source.display()), err)
                    })?;
                    (a, b, n, Some(package.clone()))
                }
                EntryKind::Generated { bytes, .. } => {
                    let (a, b) = sbom::bytes_digests(bytes);
                    (a, b, bytes.len() as u64, None)
                }
                _ => continue,
            };
            out.insert(
                path.clone(),
                FileInfo {
                    path,
                    sha256,
                    sha1,
                    size,
                    package,
                },
            );
        }
    }
    Ok(out.into_values().collect())
}
