//! Software bills of materials of the images aelimg builds: for each image
//! and platform, the crates compiled into each payload binary (from cargo,
//! see [`crates`]), the files aelimg put into the image with their
//! digests, and the registry base by digest when there is one; written as
//! SPDX 2.3 JSON ([`spdx`]) or CycloneDX 1.6 JSON ([`cyclonedx`]).
//!
//! An SBOM depends only on what it describes: the same image gives the
//! same bytes (timestamps are SOURCE_DATE_EPOCH, identifiers are derived
//! from the image's manifest digest).

// The crate lists come from cargo (they are also what payload binaries
// carry, see `cargo::auditable`).
pub use crate::cargo::crates;
pub mod cyclonedx;
pub mod model;
pub mod spdx;

pub use model::{
    BaseInfo, CrateInfo, FileInfo, PackageCrates, SbomFormat, SbomInput, bytes_digests,
    file_digests, stable_uuid,
};

/// The SBOM of `input` in `format`, as canonical JSON bytes.
#[must_use]
pub fn document(input: &SbomInput<'_>, format: SbomFormat) -> Vec<u8> {
    let value = match format {
        SbomFormat::Spdx => spdx::document(input),
        SbomFormat::CycloneDx => cyclonedx::document(input),
    };
    crate::oci::canonical_json(&value)
}
