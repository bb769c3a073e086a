//! What an SBOM says, independent of its format: the image, the crates of
//! each payload package, the files, the base.

pub use crate::cargo::crates::{CrateInfo, PackageCrates};
use crate::digest::Digest;
use crate::platform::Platform;

/// Which SBOM format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON (`application/spdx+json`).
    #[default]
    Spdx,
    /// CycloneDX 1.6 JSON (`application/vnd.cyclonedx+json`).
    CycloneDx,
}

impl SbomFormat {
    /// The media type of the document (and the artifact type of the
    /// manifest that attaches it).
    #[must_use]
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Spdx => "application/spdx+json",
            Self::CycloneDx => "application/vnd.cyclonedx+json",
        }
    }

    /// Parses `spdx` or `cyclonedx`.
    ///
    /// # Errors
    /// For any other name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "spdx" => Ok(Self::Spdx),
            "cyclonedx" => Ok(Self::CycloneDx),
            other => Err(format!(
                "unknown SBOM format `{other}`: expected `spdx` or `cyclonedx`"
            )),
        }
    }
}

/// A file aelimg put into the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileInfo {
    /// Its path in the image, absolute (`/usr/local/bin/ael`).
    pub path: String,
    /// SHA-256 of its bytes.
    pub sha256: Digest,
    /// SHA-1 of its bytes (SPDX 2.3 requires it for every file).
    pub sha1: String,
    /// Size in bytes.
    pub size: u64,
    /// The payload package it was built from, for a payload binary.
    pub package: Option<String>,
}

/// The registry base an image was built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseInfo {
    /// The reference images.yaml gives.
    pub reference: String,
    /// The digest it resolved to.
    pub digest: Digest,
}

/// Everything one image and platform's SBOM says.
#[derive(Debug, Clone)]
pub struct SbomInput<'a> {
    /// Image name.
    pub name: &'a str,
    /// Tag.
    pub tag: &'a str,
    /// Platform.
    pub platform: Platform,
    /// Digest of the platform's image manifest (the SBOM's subject).
    pub manifest: &'a Digest,
    /// SOURCE_DATE_EPOCH: the document's creation time.
    pub created: u64,
    /// The crates of each payload package in the image.
    pub packages: Vec<PackageCrates>,
    /// The files aelimg added, sorted by path.
    pub files: Vec<FileInfo>,
    /// The registry base, when there is one.
    pub base: Option<BaseInfo>,
}

impl SbomInput<'_> {
    /// The image's package URL: `pkg:oci/NAME@sha256%3AHEX?arch=…&os=linux&tag=…`.
    #[must_use]
    pub fn image_purl(&self) -> String {
        let mut purl = format!(
            "pkg:oci/{}@sha256%3A{}?arch={}&os={}",
            self.name,
            self.manifest.hex(),
            self.platform.architecture(),
            self.platform.os()
        );
        if let Some(v) = self.platform.variant() {
            purl.push_str(&format!("&variant={v}"));
        }
        purl.push_str(&format!("&tag={}", self.tag));
        purl
    }

    /// Every distinct crate of every package, payload packages first, each
    /// once, in a stable order.
    #[must_use]
    pub fn all_crates(&self) -> Vec<&CrateInfo> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for p in &self.packages {
            if seen.insert(&p.root) {
                out.push(&p.root);
            }
        }
        let mut deps: Vec<&CrateInfo> =
            self.packages.iter().flat_map(|p| &p.dependencies).collect();
        deps.sort();
        for d in deps {
            if seen.insert(d) {
                out.push(d);
            }
        }
        out
    }

    /// The name of the tool that wrote it, with its version.
    #[must_use]
    pub fn tool() -> (&'static str, &'static str) {
        ("aelimg", env!("CARGO_PKG_VERSION"))
    }
}

/// SHA-256 and SHA-1 of a file's bytes, and its size, read as a stream
/// (once per process: the layer cache has usually read it already).
///
/// # Errors
/// When it cannot be read.
pub fn file_digests(path: &std::path::Path) -> std::io::Result<(Digest, String, u64)> {
    let d = crate::file_digest::of_file(path)?;
    Ok((d.sha256, d.sha1, d.size))
}

/// SHA-256 and SHA-1 of bytes aelimg generated (passwd, group, …).
#[must_use]
pub fn bytes_digests(bytes: &[u8]) -> (Digest, String) {
    use sha1::Digest as _;
    (Digest::of(bytes), hex::encode(sha1::Sha1::digest(bytes)))
}

/// A name-based UUID (version 5 layout) of `name`: the same input always
/// gives the same UUID, as a deterministic document needs.
#[must_use]
pub fn stable_uuid(name: &str) -> String {
    use sha1::Digest as _;
    let h = sha1::Sha1::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = stable_uuid("ael");
        assert_eq!(a, stable_uuid("ael"));
        assert_ne!(a, stable_uuid("native-tools"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn formats_parse() {
        assert_eq!(SbomFormat::parse("spdx"), Ok(SbomFormat::Spdx));
        assert_eq!(SbomFormat::parse("cyclonedx"), Ok(SbomFormat::CycloneDx));
        assert!(SbomFormat::parse("swid").unwrap_err().contains("spdx"));
    }
}
