//! Image config, manifest and index of each built image, as canonical JSON.
//!
//! The documents are built with oci-spec's types (plus Docker's health
//! check), then written as canonical JSON, so the same plan always gives the
//! same bytes and the same digests. An image on a registry base is assembled
//! once: the base's layers, then ours; the base's config with ours over it
//! (go-containerregistry's `mutate.AppendLayers` and `mutate.Config`).

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    Config, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    RootFsBuilder,
};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::{LayerCompression, LayerDigests};
use crate::oci::{self, Document, Healthcheck};
use crate::plan::{ConfigPlan, ImagePlan};
use crate::platform::Platform;
use crate::reference::Reference;

fn oci_err(e: impl std::fmt::Display) -> Error {
    Error::Request(format!("cannot build OCI document: {e}"))
}

fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> Error + '_ {
    move |e| Error::json(what, e)
}

/// One platform of a registry base image, its blobs in the build's store.
#[derive(Debug, Clone)]
pub struct PlatformBase {
    /// Its config.
    pub config: ImageConfiguration,
    /// Its Docker health check, if any.
    pub healthcheck: Option<Healthcheck>,
    /// Its layer descriptors, as its manifest lists them.
    pub layers: Vec<Descriptor>,
    /// Digests and sizes of each layer, checked against the config.
    pub digests: Vec<LayerDigests>,
}

/// A registry base image, resolved.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The reference images.yaml gives.
    pub reference: Reference,
    /// The digest the reference resolved to (its manifest or index).
    pub digest: Digest,
    /// Each platform the plan builds.
    pub platforms: BTreeMap<Platform, PlatformBase>,
}

/// Where a layer of a built image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The base image's, as it is.
    Base,
    /// Taken from the layer cache: nothing read or compressed.
    Cached,
    /// Written by this build.
    Built,
}

/// One platform's image: config, manifest and the layers they name.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// Platform.
    pub platform: Platform,
    /// The config blob.
    pub config: Document,
    /// The manifest.
    pub manifest: Document,
    /// Layers, bottom first (the base's, then ours).
    pub layers: Vec<LayerDigests>,
    /// Where each layer came from, in the same order.
    pub origins: Vec<Origin>,
}

/// An image whose blobs are all in the build's store.
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
    /// Artifacts attached to its platform manifests (SBOMs), in platform
    /// order.
    pub referrers: Vec<crate::oci::Referrer>,
}

impl BuiltImage {
    /// The document a tag points at: the index, or the only manifest.
    #[must_use]
    pub fn top(&self) -> &Document {
        self.index
            .as_ref()
            .unwrap_or_else(|| &self.platforms[0].manifest)
    }

    /// The descriptor a layout's index gives the image: the top document,
    /// with its platform when it is a single manifest.
    #[must_use]
    pub fn top_descriptor(&self) -> Descriptor {
        let mut d = self.top().descriptor();
        if self.index.is_none() {
            d.set_platform(Some(self.platforms[0].platform.to_oci()));
        }
        d
    }

    /// Every blob digest the image needs, each once, sorted.
    #[must_use]
    pub fn blobs(&self) -> Vec<Digest> {
        let mut out = std::collections::BTreeSet::new();
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

pub use crate::units::rfc3339;

/// Builds the config and manifest of one platform of an image: the base's
/// layers (if any, with their own media types) and then `ours`, compressed
/// as `compression` says.
///
/// # Errors
/// When a document cannot be built.
pub fn build_platform_image(
    plan: &ImagePlan,
    platform: Platform,
    base: Option<&PlatformBase>,
    ours: Vec<(LayerDigests, Origin)>,
    compression: LayerCompression,
    source_date_epoch: u64,
    annotations: &BTreeMap<String, String>,
) -> Result<PlatformImage> {
    let (ours, our_origins): (Vec<LayerDigests>, Vec<Origin>) = ours.into_iter().unzip();
    let (config, healthcheck) = image_config(plan, platform, base, &ours, source_date_epoch)?;
    let config =
        oci::config_document(&config, healthcheck.as_ref()).map_err(json_err("image config"))?;
    let mut layer_descs: Vec<Descriptor> = base.map(|b| b.layers.clone()).unwrap_or_default();
    let layer_type = MediaType::from(compression.media_type());
    layer_descs.extend(
        ours.iter()
            .map(|l| Descriptor::new(layer_type.clone(), l.size, l.digest.to_oci())),
    );
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.descriptor())
        .layers(layer_descs);
    if !annotations.is_empty() {
        builder = builder.annotations(
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    }
    let manifest = builder.build().map_err(oci_err)?;
    let mut layers = base.map(|b| b.digests.clone()).unwrap_or_default();
    let mut origins = vec![Origin::Base; layers.len()];
    layers.extend(ours);
    origins.extend(our_origins);
    Ok(PlatformImage {
        platform,
        config,
        manifest: Document::from_typed(oci::MANIFEST, &manifest).map_err(json_err("manifest"))?,
        layers,
        origins,
    })
}

/// Our runtime config as images.yaml gives it.
fn our_runtime(c: &ConfigPlan) -> Result<Config> {
    let mut cb = ConfigBuilder::default()
        .user(c.user.clone())
        .env(c.env.clone())
        .exposed_ports(c.exposed_ports.clone())
        .volumes(c.volumes.clone())
        .labels(
            c.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    if let Some(w) = &c.workdir {
        cb = cb.working_dir(w.clone());
    }
    if !c.entrypoint.is_empty() {
        cb = cb.entrypoint(c.entrypoint.clone());
    }
    if !c.cmd.is_empty() {
        cb = cb.cmd(c.cmd.clone());
    }
    if let Some(s) = &c.stop_signal {
        cb = cb.stop_signal(s.clone());
    }
    cb.build().map_err(oci_err)
}

fn our_healthcheck(c: &ConfigPlan) -> Option<Healthcheck> {
    c.healthcheck.as_ref().map(|h| Healthcheck {
        test: h.test.clone(),
        interval: h.interval,
        timeout: h.timeout,
        start_period: h.start_period,
        retries: h.retries,
    })
}

fn image_config(
    plan: &ImagePlan,
    platform: Platform,
    base: Option<&PlatformBase>,
    ours: &[LayerDigests],
    epoch: u64,
) -> Result<(ImageConfiguration, Option<Healthcheck>)> {
    let created = rfc3339(epoch);
    let mut history = base
        .and_then(|b| b.config.history().clone())
        .unwrap_or_default();
    for l in &plan.layers {
        history.push(
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(format!("aelimg: {}", l.name))
                .comment("aelimg")
                .build()
                .map_err(oci_err)?,
        );
    }
    let mut diff_ids: Vec<String> = base
        .map(|b| b.config.rootfs().diff_ids().clone())
        .unwrap_or_default();
    diff_ids.extend(ours.iter().map(|l| l.diff_id.to_string()));
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(diff_ids)
        .build()
        .map_err(oci_err)?;
    let ours_rt = our_runtime(&plan.config)?;
    let mut healthcheck = our_healthcheck(&plan.config);
    let cfg = match base {
        None => {
            let mut ib = ImageConfigurationBuilder::default()
                .created(created)
                .architecture(platform.oci_arch())
                .os(Os::Linux)
                .config(ours_rt)
                .rootfs(rootfs)
                .history(history);
            if let Some(v) = platform.variant() {
                ib = ib.variant(v.to_string());
            }
            ib.build().map_err(oci_err)?
        }
        Some(b) => {
            let mut cfg = b.config.clone();
            cfg.set_created(Some(created));
            cfg.set_architecture(platform.oci_arch());
            cfg.set_os(Os::Linux);
            cfg.set_variant(platform.variant().map(str::to_string));
            cfg.set_config(Some(merge_runtime(b.config.config().as_ref(), &ours_rt)));
            cfg.set_rootfs(rootfs);
            cfg.set_history(Some(history));
            if healthcheck.is_none() {
                healthcheck.clone_from(&b.healthcheck);
            }
            cfg
        }
    };
    Ok((cfg, healthcheck))
}

fn given(v: Option<&Vec<String>>) -> Option<Vec<String>> {
    v.filter(|v| !v.is_empty()).cloned()
}

fn given_str(v: Option<&String>) -> Option<String> {
    v.filter(|v| !v.is_empty()).cloned()
}

/// The base's runtime config with ours over it, as a Dockerfile's `FROM`
/// followed by our settings would give: env by key, ports, volumes and labels
/// merged, a new entrypoint resetting the base's cmd.
fn merge_runtime(base: Option<&Config>, ours: &Config) -> Config {
    let mut out = base.cloned().unwrap_or_default();
    if let Some(u) = given_str(ours.user().as_ref()) {
        out.set_user(Some(u));
    }
    if let Some(w) = given_str(ours.working_dir().as_ref()) {
        out.set_working_dir(Some(w));
    }
    if let Some(s) = given_str(ours.stop_signal().as_ref()) {
        out.set_stop_signal(Some(s));
    }
    if let Some(ep) = given(ours.entrypoint().as_ref()) {
        out.set_entrypoint(Some(ep));
        out.set_cmd(given(ours.cmd().as_ref()));
    } else if let Some(cmd) = given(ours.cmd().as_ref()) {
        out.set_cmd(Some(cmd));
    }
    let key = |s: &str| s.split('=').next().unwrap_or("").to_string();
    let mut env = out.env().clone().unwrap_or_default();
    for e in ours.env().iter().flatten() {
        env.retain(|o| key(o) != key(e));
        env.push(e.clone());
    }
    out.set_env(Some(env));
    let union = |a: &Option<Vec<String>>, b: &Option<Vec<String>>| {
        let mut v: Vec<String> = a.iter().chain(b).flatten().cloned().collect();
        v.sort();
        v.dedup();
        (!v.is_empty()).then_some(v)
    };
    out.set_exposed_ports(union(out.exposed_ports(), ours.exposed_ports()));
    out.set_volumes(union(out.volumes(), ours.volumes()));
    let mut labels = out.labels().clone().unwrap_or_default();
    labels.extend(ours.labels().clone().unwrap_or_default());
    out.set_labels((!labels.is_empty()).then_some(labels));
    out
}

/// The annotations of an image's manifests and index: the plan's, with
/// `org.opencontainers.image.base.name` and `base.digest` of a registry
/// base unless the plan sets them.
#[must_use]
pub fn annotations(plan: &ImagePlan, base: Option<&BaseImage>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(b) = base {
        out.insert(
            crate::annotations::BASE_NAME.to_string(),
            b.reference.to_string(),
        );
        out.insert(
            crate::annotations::BASE_DIGEST.to_string(),
            b.digest.to_string(),
        );
    }
    out.extend(plan.annotations.clone());
    out
}

/// Builds the image index of a multi-platform image.
///
/// # Errors
/// When the index cannot be built.
pub fn build_index(
    images: &[PlatformImage],
    annotations: &BTreeMap<String, String>,
) -> Result<Document> {
    let manifests = images
        .iter()
        .map(|img| {
            let mut d = img.manifest.descriptor();
            d.set_platform(Some(img.platform.to_oci()));
            d
        })
        .collect::<Vec<_>>();
    let mut ib = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests);
    if !annotations.is_empty() {
        ib = ib.annotations(
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    }
    let index = ib.build().map_err(oci_err)?;
    Document::from_typed(oci::INDEX, &index).map_err(json_err("image index"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: serde_json::Value) -> Config {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn ours_over_the_base() {
        let base = cfg(serde_json::json!({
            "Env": ["PATH=/bin", "LANG=C"],
            "Cmd": ["sh"],
            "User": "0",
            "ExposedPorts": {"80/tcp": {}},
            "Labels": {"a": "base", "b": "base"}
        }));
        let ours = cfg(serde_json::json!({
            "Env": ["PATH=/usr/bin", "X=1"],
            "Entrypoint": ["/app"],
            "User": "10001:10001",
            "ExposedPorts": {"8082/tcp": {}},
            "Labels": {"b": "ours"}
        }));
        let m = serde_json::to_value(merge_runtime(Some(&base), &ours)).unwrap();
        assert_eq!(
            m["Env"],
            serde_json::json!(["LANG=C", "PATH=/usr/bin", "X=1"])
        );
        assert_eq!(m["Entrypoint"], serde_json::json!(["/app"]));
        assert!(m.get("Cmd").is_none(), "a new entrypoint resets the cmd");
        assert_eq!(m["User"], "10001:10001");
        assert_eq!(
            m["ExposedPorts"],
            serde_json::json!({"80/tcp": {}, "8082/tcp": {}})
        );
        assert_eq!(m["Labels"], serde_json::json!({"a": "base", "b": "ours"}));
        let m =
            serde_json::to_value(merge_runtime(Some(&base), &cfg(serde_json::json!({})))).unwrap();
        assert_eq!(m["Cmd"], serde_json::json!(["sh"]));
    }
}
