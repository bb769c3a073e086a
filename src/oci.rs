//! OCI documents as bytes and as types: a [`Document`] is the exact bytes of
//! a manifest, index or config with its media type and digest; the typed views
//! are oci-spec's `ImageManifest`, `ImageIndex` and `ImageConfiguration`, plus
//! Docker's `Healthcheck`, which oci-spec does not model ([`docker_healthcheck`]).
//!
//! What aelimg writes is canonical JSON (every object's keys sorted, compact),
//! so the same values always give the same bytes and digests.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;

/// OCI image manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The `Accept` header of a manifest request: every kind aelimg reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// What a document in an index or layout is, judged by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image index or Docker manifest list.
    Index,
    /// An image manifest (OCI or Docker), including OCI 1.1 artifact
    /// manifests, which share the image manifest's media type.
    Manifest,
    /// A media type aelimg does not know: never guessed at.
    Unknown,
}

impl Kind {
    /// The kind a media type names.
    #[must_use]
    pub fn of(media_type: &str) -> Self {
        match media_type {
            INDEX | DOCKER_MANIFEST_LIST => Self::Index,
            MANIFEST | DOCKER_MANIFEST => Self::Manifest,
            _ => Self::Unknown,
        }
    }
}

/// A document that is not what it claims to be.
#[derive(Debug, thiserror::Error)]
#[error("{what} is not a valid {kind}: {source}")]
pub struct DocumentError {
    /// Which document (a digest or a file).
    pub what: String,
    /// What it should have been.
    pub kind: &'static str,
    /// Why it is not.
    #[source]
    pub source: serde_json::Error,
}

/// A JSON document: its exact bytes, media type and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Media type of the document.
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// The digest of the bytes.
    pub digest: Digest,
}

impl Document {
    /// A document of these exact bytes.
    #[must_use]
    pub fn from_bytes(media_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: Digest::of(&bytes),
            bytes,
        }
    }

    /// A document of `value` as canonical JSON.
    #[must_use]
    pub fn from_value(media_type: &str, value: &Value) -> Self {
        Self::from_bytes(media_type, canonical_json(value))
    }

    /// A document of anything serializable, as canonical JSON.
    ///
    /// # Errors
    /// When the value cannot be represented as JSON.
    pub fn from_typed<T: Serialize>(media_type: &str, v: &T) -> Result<Self, serde_json::Error> {
        Ok(Self::from_value(media_type, &serde_json::to_value(v)?))
    }

    /// A descriptor of this document.
    #[must_use]
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            MediaType::from(self.media_type.as_str()),
            self.bytes.len() as u64,
            self.digest.to_oci(),
        )
    }

    /// What kind of document this is.
    #[must_use]
    pub fn kind(&self) -> Kind {
        Kind::of(&self.media_type)
    }

    /// The document as an image manifest.
    ///
    /// # Errors
    /// When it is not one.
    pub fn manifest(&self) -> Result<ImageManifest, DocumentError> {
        parse(&self.bytes, &self.digest, "image manifest")
    }

    /// The document as an image index.
    ///
    /// # Errors
    /// When it is not one.
    pub fn index(&self) -> Result<ImageIndex, DocumentError> {
        parse(&self.bytes, &self.digest, "image index")
    }
}

/// Parses JSON bytes into a typed document; `what` names it in errors.
///
/// # Errors
/// When the bytes are not a valid `kind`.
pub fn parse<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &dyn std::fmt::Display,
    kind: &'static str,
) -> Result<T, DocumentError> {
    serde_json::from_slice(bytes).map_err(|source| DocumentError {
        what: what.to_string(),
        kind,
        source,
    })
}

/// Parses an image config.
///
/// # Errors
/// When the bytes are not a valid image config.
pub fn parse_config(
    bytes: &[u8],
    what: &dyn std::fmt::Display,
) -> Result<ImageConfiguration, DocumentError> {
    parse(bytes, what, "image config")
}

/// Docker's health check, which lives in the config's `config` object
/// beside the OCI fields (as `docker build` writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    #[serde(rename = "Test", default)]
    pub test: Vec<String>,
    /// Nanoseconds between checks.
    #[serde(rename = "Interval", default)]
    pub interval: u64,
    /// Nanoseconds before a check counts as failed.
    #[serde(rename = "Timeout", default)]
    pub timeout: u64,
    /// Nanoseconds of grace after start.
    #[serde(rename = "StartPeriod", default)]
    pub start_period: u64,
    /// Failures in a row before unhealthy.
    #[serde(rename = "Retries", default)]
    pub retries: u32,
}

/// The Docker health check of a config, if it has one.
///
/// # Errors
/// When the config is not JSON or its health check is malformed.
pub fn docker_healthcheck(
    config_bytes: &[u8],
    what: &dyn std::fmt::Display,
) -> Result<Option<Healthcheck>, DocumentError> {
    #[derive(Deserialize)]
    struct Outer {
        #[serde(default)]
        config: Option<Inner>,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(rename = "Healthcheck", default)]
        healthcheck: Option<Healthcheck>,
    }
    let o: Outer = parse(config_bytes, what, "image config")?;
    Ok(o.config.and_then(|c| c.healthcheck))
}

/// An image config as aelimg writes it: oci-spec's configuration, with
/// Docker's health check added to its `config` object.
///
/// # Errors
/// When the configuration cannot be represented as JSON.
pub fn config_document(
    config: &ImageConfiguration,
    healthcheck: Option<&Healthcheck>,
) -> Result<Document, serde_json::Error> {
    let mut value = serde_json::to_value(config)?;
    if let (Some(h), Some(Value::Object(cfg))) = (healthcheck, value.get_mut("config")) {
        cfg.insert("Healthcheck".into(), serde_json::to_value(h)?);
    }
    Ok(Document::from_value(CONFIG, &value))
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
                    // Into the buffer itself: no allocation per key or
                    // value (writing to a Vec cannot fail).
                    let _ = serde_json::to_writer(&mut *out, k);
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
            scalar => {
                let _ = serde_json::to_writer(&mut *out, scalar);
            }
        }
    }
    let mut out = Vec::new();
    write(v, &mut out);
    out
}

/// The descriptor an index gives an artifact manifest: with its
/// `artifactType`, so a reader finds referrers without opening them.
#[must_use]
pub fn referrer_descriptor(manifest: &Document, artifact_type: &str) -> Descriptor {
    let mut d = manifest.descriptor();
    d.set_artifact_type(Some(MediaType::from(artifact_type)));
    d
}

/// An artifact attached to one of an image's manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Its artifact manifest (stored).
    pub manifest: Document,
    /// Its artifact type.
    pub artifact_type: String,
    /// The digest of the manifest it is about.
    pub subject: Digest,
}

impl Referrer {
    /// Its descriptor in an index.
    #[must_use]
    pub fn descriptor(&self) -> Descriptor {
        referrer_descriptor(&self.manifest, &self.artifact_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, "x"], "c": null}});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::of(INDEX), Kind::Index);
        assert_eq!(Kind::of(DOCKER_MANIFEST_LIST), Kind::Index);
        assert_eq!(Kind::of(MANIFEST), Kind::Manifest);
        assert_eq!(Kind::of(DOCKER_MANIFEST), Kind::Manifest);
        assert_eq!(Kind::of("application/vnd.acme.thing+json"), Kind::Unknown);
        assert_eq!(Kind::of(CONFIG), Kind::Unknown);
    }

    #[test]
    fn healthcheck_round_trip() {
        let cfg = serde_json::from_str::<ImageConfiguration>(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"User":"1"}}"#,
        )
        .unwrap();
        let h = Healthcheck {
            test: vec!["CMD".into(), "ael".into(), "health".into()],
            interval: 30_000_000_000,
            timeout: 10_000_000_000,
            start_period: 0,
            retries: 3,
        };
        let doc = config_document(&cfg, Some(&h)).unwrap();
        assert_eq!(
            docker_healthcheck(&doc.bytes, &doc.digest).unwrap(),
            Some(h)
        );
        assert!(doc.bytes.windows(13).any(|w| w == b"\"Healthcheck\""));
    }
}
