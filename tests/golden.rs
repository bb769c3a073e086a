//! Golden digests: the default images/images.yaml, built from the stand-in
//! binaries of fixtures/prebuilt (no cargo), and fixtures/minimal must give
//! exactly the digests committed in fixtures/golden. They pin today's output
//! bytes, so a refactor that changes any byte of a layer, config, manifest,
//! index or index.json fails here.
//!
//! A change of digest must be deliberate: `AELIMG_UPDATE_GOLDEN=1 cargo test
//! --test golden` rewrites the golden files, to be committed with the reason.

mod common;

use std::path::Path;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use common::{aelimg, check_golden, json, ok, repo, scratch};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const PREBUILT: &str = "fixtures/prebuilt";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A JSON blob of `layout`, checked against its digest.
fn blob(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        sha256(&bytes),
        digest,
        "blob {digest} of {}",
        layout.display()
    );
    serde_json::from_slice(&bytes).unwrap()
}

fn platform_name(p: &Value) -> String {
    let mut s = format!(
        "{}/{}",
        p["os"].as_str().unwrap(),
        p["architecture"].as_str().unwrap()
    );
    if let Some(v) = p["variant"].as_str() {
        s = format!("{s}/{v}");
    }
    s
}

/// The manifest, config and layer digests of one platform manifest.
fn manifest_digests(layout: &Path, digest: &str) -> (String, Value) {
    let m = blob(layout, digest);
    let config_digest = m["config"]["digest"].as_str().unwrap();
    let config = blob(layout, config_digest);
    let platform = platform_name(&config);
    let layers: Vec<&str> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let summary = json!({
        "manifest": digest,
        "config": config_digest,
        "layers": layers,
    });
    (platform, summary)
}

/// Every digest of the image layout at `layout`: the sha256 of index.json,
/// the top descriptor of each tag, and per platform its manifest, config and
/// layers.
fn layout_digests(layout: &Path) -> Value {
    let index_bytes = std::fs::read(layout.join("index.json")).unwrap();
    let index = json(std::str::from_utf8(&index_bytes).unwrap());
    let mut tags = Map::new();
    for top in index["manifests"].as_array().unwrap() {
        let tag = top["annotations"][REF_NAME].as_str().unwrap();
        let digest = top["digest"].as_str().unwrap();
        let media_type = top["mediaType"].as_str().unwrap();
        let mut platforms = Map::new();
        if media_type == INDEX {
            let idx = blob(layout, digest);
            for m in idx["manifests"].as_array().unwrap() {
                let (p, summary) = manifest_digests(layout, m["digest"].as_str().unwrap());
                assert_eq!(p, platform_name(&m["platform"]), "index entry vs config");
                platforms.insert(p, summary);
            }
        } else {
            let (p, summary) = manifest_digests(layout, digest);
            platforms.insert(p, summary);
        }
        tags.insert(
            tag.to_string(),
            json!({
                "mediaType": media_type,
                "digest": digest,
                "platforms": platforms,
            }),
        );
    }
    json!({
        "index.json": sha256(&index_bytes),
        "tags": tags,
    })
}

/// Builds `spec` (relative to the repository root) with extra `args` into a
/// fresh scratch output and blob store, and returns the digests of each image
/// layout it wrote, by image name.
fn build_digests(name: &str, spec: &str, args: &[&str]) -> Map<String, Value> {
    let out = scratch(&format!("golden-{name}"));
    let layouts = out.join("out");
    ok(aelimg()
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("AELIMG_CACHE_DIR")
        // The SBOM follows Cargo.lock and the provenance the git commit
        // (tests/sbom.rs and tests/reproducible.rs pin their bytes): no
        // dependency bump or commit should touch these golden digests.
        .args([
            "build",
            "--sbom",
            "none",
            "--provenance",
            "none",
            "-f",
            spec,
        ])
        .args(args)
        .arg("--cache-dir")
        .arg(out.join("cache"))
        .arg("--output")
        .arg(format!("oci:{}", layouts.display())));
    let mut images = Map::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&layouts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for d in dirs {
        let image = d.file_name().unwrap().to_str().unwrap().to_string();
        images.insert(image, layout_digests(&d));
    }
    images
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

/// The sha256 of every stand-in binary, so a digest change that comes from
/// regenerated fixtures is told apart from one that comes from aelimg.
fn prebuilt_digests() -> Value {
    let mut out = Map::new();
    for target in ["aarch64-unknown-linux-musl", "x86_64-unknown-linux-musl"] {
        for bin in ["ael", "native-tools"] {
            let rel = format!("{PREBUILT}/{target}/{bin}");
            out.insert(
                rel.clone(),
                sha256(&std::fs::read(repo().join(&rel)).unwrap()).into(),
            );
        }
    }
    out.into()
}

#[test]
fn default_images_from_prebuilt_binaries_match_golden_digests() {
    let images = build_digests(
        "default-prebuilt",
        "images/images.yaml",
        &["--prebuilt", PREBUILT],
    );
    assert_eq!(
        images.keys().collect::<Vec<_>>(),
        ["ael", "native-tools"],
        "image layouts written"
    );
    for (name, digests) in &images {
        let platforms = digests["tags"]["latest"]["platforms"].as_object().unwrap();
        assert_eq!(
            platforms.keys().collect::<Vec<_>>(),
            ["linux/amd64", "linux/arm64/v8"],
            "{name}: platforms"
        );
        assert_eq!(digests["tags"]["latest"]["mediaType"], INDEX, "{name}");
    }
    // One root-filesystem blob for both images and both platforms, and one
    // native-tools blob per platform for both images (issue 10, item 2).
    let layers = |image: &str, platform: &str| -> Vec<String> {
        images[image]["tags"]["latest"]["platforms"][platform]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let root = &layers("ael", "linux/amd64")[0];
    for platform in ["linux/amd64", "linux/arm64/v8"] {
        let (ael, tools) = (layers("ael", platform), layers("native-tools", platform));
        assert_eq!((ael.len(), tools.len()), (5, 3), "{platform}: layer counts");
        assert_eq!(&ael[0], root, "ael {platform}: root layer");
        assert_eq!(&tools[0], root, "native-tools {platform}: root layer");
        assert_eq!(ael[2], tools[2], "{platform}: the native-tools layer");
        assert_ne!(
            ael[1], tools[1],
            "{platform}: each image has its own accounts"
        );
    }
    let doc = json!({
        "spec": "images/images.yaml",
        "build": "aelimg build --prebuilt fixtures/prebuilt (SOURCE_DATE_EPOCH unset)",
        "prebuilt": prebuilt_digests(),
        "images": images,
    });
    check_golden("fixtures/golden/default-prebuilt.json", &pretty(&doc));
}

#[test]
fn minimal_fixture_matches_golden_digests() {
    let images = build_digests("minimal", "fixtures/minimal/images.yaml", &[]);
    assert_eq!(images.keys().collect::<Vec<_>>(), ["mini"]);
    let doc = json!({
        "spec": "fixtures/minimal/images.yaml",
        "build": "aelimg build (SOURCE_DATE_EPOCH unset)",
        "images": images,
    });
    check_golden("fixtures/golden/minimal.json", &pretty(&doc));
}

/// The committed stand-in binaries are exactly what their generator writes.
#[test]
fn prebuilt_fixtures_are_what_gen_py_writes() {
    ok(std::process::Command::new("python3")
        .arg(repo().join(PREBUILT).join("gen.py"))
        .arg("--check"));
}
