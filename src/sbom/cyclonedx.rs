//! CycloneDX 1.6 JSON: the image as the metadata's `container` component;
//! crates as `library` components (payload packages as `application`),
//! files as `file` components, the base as a `container` component; the
//! dependency graph from the image to its files and base, and from each
//! payload package to its crates. Validated against the CycloneDX 1.6 JSON
//! schema in tests/sbom.rs.

use serde_json::{Value, json};

use super::model::{CrateInfo, SbomInput, stable_uuid};

fn crate_component(c: &CrateInfo, kind: &str) -> Value {
    let mut v = json!({
        "type": kind,
        "bom-ref": c.purl(),
        "name": c.name,
        "version": c.version,
        "purl": c.purl(),
    });
    if let Some(sum) = &c.checksum {
        v["hashes"] = json!([{"alg": "SHA-256", "content": sum}]);
    }
    if let Some(l) = &c.license {
        v["licenses"] = json!([{"expression": l}]);
    }
    if let Some(url) = c.download_location() {
        v["externalReferences"] = json!([{"type": "distribution", "url": url}]);
    }
    v
}

/// The CycloneDX document of `input`.
#[must_use]
pub fn document(input: &SbomInput<'_>) -> Value {
    let (tool, version) = SbomInput::tool();
    let image_ref = input.image_purl();
    let roots: Vec<&CrateInfo> = input.packages.iter().map(|p| &p.root).collect();
    let mut components: Vec<Value> = input
        .all_crates()
        .into_iter()
        .map(|c| {
            let kind = if roots.contains(&c) {
                "application"
            } else {
                "library"
            };
            crate_component(c, kind)
        })
        .collect();
    let mut image_deps = Vec::new();
    for f in &input.files {
        let r = format!("file:{}", f.path);
        components.push(json!({
            "type": "file",
            "bom-ref": r,
            "name": f.path,
            "hashes": [
                {"alg": "SHA-1", "content": f.sha1},
                {"alg": "SHA-256", "content": f.sha256.hex()},
            ],
        }));
        image_deps.push(r);
    }
    let mut dependencies = Vec::new();
    for f in &input.files {
        if let Some(pkg) = &f.package
            && let Some(p) = input.packages.iter().find(|p| &p.root.name == pkg)
        {
            dependencies
                .push(json!({"ref": format!("file:{}", f.path), "dependsOn": [p.root.purl()]}));
        }
    }
    for p in &input.packages {
        let mut on: Vec<String> = p.dependencies.iter().map(CrateInfo::purl).collect();
        on.dedup();
        dependencies.push(json!({"ref": p.root.purl(), "dependsOn": on}));
    }
    if let Some(b) = &input.base {
        let r = format!("base:{}", b.digest);
        components.push(json!({
            "type": "container",
            "bom-ref": r,
            "name": b.reference.split('@').next().unwrap_or(&b.reference),
            "hashes": [{"alg": "SHA-256", "content": b.digest.hex()}],
        }));
        image_deps.push(r);
    }
    dependencies.insert(0, json!({"ref": image_ref, "dependsOn": image_deps}));
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", stable_uuid(input.manifest.as_str())),
        "version": 1,
        "metadata": {
            "timestamp": crate::image::rfc3339(input.created),
            "tools": {"components": [{"type": "application", "name": tool, "version": version}]},
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": input.name,
                "version": input.tag,
                "purl": input.image_purl(),
                "hashes": [{"alg": "SHA-256", "content": input.manifest.hex()}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    })
}
