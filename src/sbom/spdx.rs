//! SPDX 2.3 JSON: the image as a `CONTAINER` package that `CONTAINS` each
//! file aelimg added; each payload binary `GENERATED_FROM` its package,
//! which `DEPENDS_ON` every crate compiled into it; the image
//! `DESCENDANT_OF` its registry base. Validated by pyspdxtools in
//! tests/sbom.rs.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::model::{CrateInfo, SbomInput, stable_uuid};

/// `SPDXRef-` followed by `text` with every character SPDX does not allow in
/// an identifier (letters, digits, `.` and `-`) replaced by `-`.
fn spdx_id(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{clean}")
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

fn crate_package(c: &CrateInfo, id: &str, purpose: &str) -> Value {
    let mut p = json!({
        "SPDXID": id,
        "name": c.name,
        "versionInfo": c.version,
        "downloadLocation": c.download_location().unwrap_or_else(|| "NOASSERTION".into()),
        "filesAnalyzed": false,
        "primaryPackagePurpose": purpose,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": c.license.clone().unwrap_or_else(|| "NOASSERTION".into()),
        "copyrightText": "NOASSERTION",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": c.purl(),
        }],
    });
    if let Some(sum) = &c.checksum {
        p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
    }
    if let Some(src) = &c.source {
        p["sourceInfo"] = json!(format!("cargo source {src}"));
    }
    p
}

/// The SPDX document of `input`.
#[must_use]
pub fn document(input: &SbomInput<'_>) -> Value {
    let (tool, version) = SbomInput::tool();
    let image_id = "SPDXRef-Image";
    let mut packages = vec![json!({
        "SPDXID": image_id,
        "name": input.name,
        "versionInfo": input.tag,
        "downloadLocation": "NOASSERTION",
        // It CONTAINS its files, so they are analyzed, and SPDX wants the
        // verification code of their SHA-1s.
        "filesAnalyzed": true,
        "packageVerificationCode": {"packageVerificationCodeValue": verification_code(input)},
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "checksums": [{"algorithm": "SHA256", "checksumValue": input.manifest.hex()}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": input.image_purl(),
        }],
    })];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", image_id)];

    // One SPDX package per distinct crate; its id from name and version,
    // made unique when two sources give the same pair.
    let mut ids: BTreeMap<&CrateInfo, String> = BTreeMap::new();
    let mut used = std::collections::BTreeSet::new();
    let roots: Vec<&CrateInfo> = input.packages.iter().map(|p| &p.root).collect();
    for c in input.all_crates() {
        let base = spdx_id(&format!("Package-cargo-{}-{}", c.name, c.version));
        let mut id = base.clone();
        let mut n = 2;
        while !used.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        let purpose = if roots.contains(&c) {
            "APPLICATION"
        } else {
            "LIBRARY"
        };
        packages.push(crate_package(c, &id, purpose));
        ids.insert(c, id);
    }
    for p in &input.packages {
        let from = &ids[&p.root];
        for d in &p.dependencies {
            relationships.push(relationship(from, "DEPENDS_ON", &ids[d]));
        }
    }

    let mut files = Vec::new();
    for (i, f) in input.files.iter().enumerate() {
        let id = spdx_id(&format!("File-{}", i + 1));
        files.push(json!({
            "SPDXID": id,
            "fileName": format!(".{}", f.path),
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": f.sha1},
                {"algorithm": "SHA256", "checksumValue": f.sha256.hex()},
            ],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }));
        relationships.push(relationship(image_id, "CONTAINS", &id));
        if let Some(pkg) = &f.package
            && let Some(root) = input.packages.iter().find(|p| &p.root.name == pkg)
        {
            relationships.push(relationship(&id, "GENERATED_FROM", &ids[&root.root]));
        }
    }

    if let Some(b) = &input.base {
        let id = "SPDXRef-Base";
        let name = b.reference.split('@').next().unwrap_or(&b.reference);
        packages.push(json!({
            "SPDXID": id,
            "name": name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "checksums": [{"algorithm": "SHA256", "checksumValue": b.digest.hex()}],
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": base_purl(name, &b.digest),
            }],
        }));
        relationships.push(relationship(image_id, "DESCENDANT_OF", id));
    }

    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}:{} {}", input.name, input.tag, input.platform),
        "documentNamespace": format!(
            "https://spdx.aelimg.dev/{}/{}",
            input.name,
            stable_uuid(input.manifest.as_str())
        ),
        "creationInfo": {
            "created": crate::image::rfc3339(input.created),
            "creators": [format!("Tool: {tool}-{version}")],
        },
        "documentDescribes": [image_id],
        "packages": packages,
        "files": files,
        "relationships": relationships,
    })
}

/// SPDX's package verification code: the SHA-1 of the package's files'
/// SHA-1s (lower-case hex), sorted and concatenated.
fn verification_code(input: &SbomInput<'_>) -> String {
    use sha1::Digest as _;
    let mut sums: Vec<&str> = input.files.iter().map(|f| f.sha1.as_str()).collect();
    sums.sort_unstable();
    hex::encode(sha1::Sha1::digest(sums.concat().as_bytes()))
}

/// `pkg:oci/NAME@sha256%3AHEX?repository_url=REGISTRY/REPO` of a base.
fn base_purl(reference: &str, digest: &crate::digest::Digest) -> String {
    let repo =
        reference.rsplit_once(':').map_or(
            reference,
            |(r, tag)| {
                if tag.contains('/') { reference } else { r }
            },
        );
    let name = repo.rsplit('/').next().unwrap_or(repo);
    format!(
        "pkg:oci/{name}@sha256%3A{}?repository_url={repo}",
        digest.hex()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_only_what_spdx_allows() {
        assert_eq!(
            spdx_id("Package-cargo-serde_json-1.0.1"),
            "SPDXRef-Package-cargo-serde-json-1.0.1"
        );
        assert_eq!(spdx_id("File-1"), "SPDXRef-File-1");
    }

    #[test]
    fn base_purls_name_the_repository() {
        let d = crate::digest::Digest::of(b"x");
        assert_eq!(
            base_purl("docker.io/library/debian:12", &d),
            format!(
                "pkg:oci/debian@sha256%3A{}?repository_url=docker.io/library/debian",
                d.hex()
            )
        );
        assert_eq!(
            base_purl("localhost:5000/base", &d),
            format!(
                "pkg:oci/base@sha256%3A{}?repository_url=localhost:5000/base",
                d.hex()
            )
        );
    }
}
