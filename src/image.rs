//! Image config, manifest and index documents, as canonical JSON.
//!
//! The documents are built with oci-spec's types, then turned into JSON with
//! every object's keys sorted, whatever map type a dependency chose, so the
//! same plan always gives the same bytes and the same digests.

use std::collections::HashMap;
use std::str::FromStr;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::layer::LayerDigests;
use crate::plan::ImagePlan;
use crate::platform::Platform;

/// A JSON document and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Media type of the document.
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// `sha256:…` of the bytes.
    pub digest: String,
}

impl Document {
    fn new(media_type: &str, value: &Value) -> Self {
        let bytes = canonical_json(value);
        let digest = sha256_digest(&bytes);
        Self {
            media_type: media_type.to_string(),
            bytes,
            digest,
        }
    }

    /// A descriptor of this document.
    pub fn descriptor(&self) -> Result<Descriptor> {
        Ok(Descriptor::new(
            MediaType::from(self.media_type.as_str()),
            self.bytes.len() as u64,
            parse_digest(&self.digest)?,
        ))
    }
}

/// `sha256:<hex>` of some bytes.
#[must_use]
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn parse_digest(d: &str) -> Result<Digest> {
    Digest::from_str(d).map_err(|e| Error::Layout(format!("invalid digest {d}: {e}")))
}

fn oci(e: impl std::fmt::Display) -> Error {
    Error::Layout(format!("cannot build OCI document: {e}"))
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
    /// Layers, bottom first.
    pub layers: Vec<LayerDigests>,
}

/// Formats a Unix time as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
#[must_use]
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Builds the config and manifest of one platform of an image.
pub fn build_platform_image(
    plan: &ImagePlan,
    platform: Platform,
    layers: Vec<LayerDigests>,
    source_date_epoch: u64,
) -> Result<PlatformImage> {
    let config = config_document(plan, platform, &layers, source_date_epoch)?;
    let mut layer_descs = Vec::new();
    for l in &layers {
        layer_descs.push(Descriptor::new(
            MediaType::ImageLayerGzip,
            l.size,
            parse_digest(&l.digest)?,
        ));
    }
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.descriptor()?)
        .layers(layer_descs);
    if !plan.annotations.is_empty() {
        builder = builder.annotations(
            plan.annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    }
    let manifest = builder.build().map_err(oci)?;
    let value = serde_json::to_value(&manifest).map_err(|e| Error::Json {
        context: "manifest".into(),
        source: e,
    })?;
    Ok(PlatformImage {
        platform,
        config,
        manifest: Document::new("application/vnd.oci.image.manifest.v1+json", &value),
        layers,
    })
}

fn config_document(
    plan: &ImagePlan,
    platform: Platform,
    layers: &[LayerDigests],
    epoch: u64,
) -> Result<Document> {
    let c = &plan.config;
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
    let runtime = cb.build().map_err(oci)?;
    let created = rfc3339(epoch);
    let history = plan
        .layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(format!("aelimg: {}", l.name))
                .comment("aelimg")
                .build()
                .map_err(oci)
        })
        .collect::<Result<Vec<_>>>()?;
    let arch = match platform {
        Platform::LinuxAmd64 => Arch::Amd64,
        Platform::LinuxArm64 => Arch::ARM64,
    };
    let mut ib = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(arch)
        .os(Os::Linux)
        .config(runtime)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>())
                .build()
                .map_err(oci)?,
        )
        .history(history);
    if let Some(v) = platform.variant() {
        ib = ib.variant(v.to_string());
    }
    let cfg = ib.build().map_err(oci)?;
    let mut value = serde_json::to_value(&cfg).map_err(|e| Error::Json {
        context: "image config".into(),
        source: e,
    })?;
    // Docker's Healthcheck is not part of the OCI config: add it as Docker writes it.
    if let (Some(h), Some(Value::Object(cfg))) = (&c.healthcheck, value.get_mut("config")) {
        cfg.insert(
            "Healthcheck".into(),
            serde_json::json!({
                "Test": h.test,
                "Interval": h.interval,
                "Timeout": h.timeout,
                "StartPeriod": h.start_period,
                "Retries": h.retries,
            }),
        );
    }
    Ok(Document::new(
        "application/vnd.oci.image.config.v1+json",
        &value,
    ))
}

/// Builds the image index of a multi-platform image.
pub fn build_index(
    images: &[PlatformImage],
    annotations: &HashMap<String, String>,
) -> Result<Document> {
    let mut manifests = Vec::new();
    for img in images {
        let mut pb = PlatformBuilder::default()
            .architecture(match img.platform {
                Platform::LinuxAmd64 => Arch::Amd64,
                Platform::LinuxArm64 => Arch::ARM64,
            })
            .os(Os::Linux);
        if let Some(v) = img.platform.variant() {
            pb = pb.variant(v.to_string());
        }
        let mut d = img.manifest.descriptor()?;
        d.set_platform(Some(pb.build().map_err(oci)?));
        manifests.push(d);
    }
    let mut ib = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests);
    if !annotations.is_empty() {
        ib = ib.annotations(annotations.clone());
    }
    let index = ib.build().map_err(oci)?;
    let value = serde_json::to_value(&index).map_err(|e| Error::Json {
        context: "image index".into(),
        source: e,
    })?;
    Ok(Document::new(
        "application/vnd.oci.image.index.v1+json",
        &value,
    ))
}

/// Serializes JSON compactly with the keys of every object sorted.
#[must_use]
pub fn canonical_json(v: &Value) -> Vec<u8> {
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(map) => {
                out.push(b'{');
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).unwrap_or_default());
                    out.push(b':');
                    write(&map[k], out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend(serde_json::to_vec(scalar).unwrap_or_default()),
        }
    }
    let mut out = Vec::new();
    write(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_epochs() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, "x"], "c": null}});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#
        );
    }
}
