//! `aelimg push`, `pull` and `login`, and `build` on a registry base, against
//! a real distribution registry (Debian's docker-registry) on 127.0.0.1
//! (tests/common/registry.rs), judged by skopeo and by the registry's own
//! access log; and against scripted fakes where a real registry cannot be
//! made to misbehave. One test binary, so the default images are built once.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod base;
mod faults;
mod mcp;
mod progress;
mod push;
mod transport;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::registry::sha256_hex;
use common::{aelimg, json, ok};

/// Deterministic bytes that gzip cannot shrink.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A spec of two small two-platform images with no cargo binary (`alpha`,
/// and `beta` with a large incompressible file of `big` bytes) in
/// `dir/spec`; built into `dir/images`, which is returned.
fn build_fixture(dir: &Path, big: usize) -> PathBuf {
    let src = dir.join("spec");
    std::fs::create_dir_all(src.join("files")).unwrap();
    std::fs::write(src.join("files/hello.txt"), "hello\n").unwrap();
    std::fs::write(src.join("files/big.bin"), noise(big, 0x9E37_79B9_7F4A_7C15)).unwrap();
    std::fs::write(
        src.join("images.yaml"),
        r#"version: 1
images:
  - name: alpha
    tag: "1.0"
    platforms: [linux/amd64, linux/arm64]
    user: {name: app, uid: 10001}
    env: {GREETING: hello}
    entrypoint: [/bin/hello]
    layers:
      - name: files
        contents:
          - path: files/hello.txt
            dest: /srv/hello.txt
  - name: beta
    tag: "1.0"
    platforms: [linux/amd64, linux/arm64]
    user: {name: app, uid: 10001}
    entrypoint: [/bin/hello]
    layers:
      - name: big
        contents:
          - path: files/big.bin
            dest: /srv/big.bin
"#,
    )
    .unwrap();
    let out = dir.join("images");
    ok(aelimg()
        .args(["build", "-f"])
        .arg(src.join("images.yaml"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--output")
        .arg(format!("oci:{}", out.display())));
    out
}

/// The digest the layout's index.json names for its only tag.
fn layout_digest(layout: &Path) -> String {
    let idx = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    idx["manifests"][0]["digest"].as_str().unwrap().to_string()
}

/// The digests (hex) of the artifacts a layout lists beside its images
/// (SBOM manifests), with the blobs they alone reach (their documents and
/// the empty config).
fn referrer_blobs(layout: &Path) -> Vec<String> {
    let idx = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    let mut out = Vec::new();
    for d in idx["manifests"].as_array().unwrap() {
        if d.get("artifactType").is_none() {
            continue;
        }
        let hex = d["digest"].as_str().unwrap()[7..].to_string();
        let m = json(&std::fs::read_to_string(layout.join("blobs/sha256").join(&hex)).unwrap());
        out.push(hex);
        out.push(m["config"]["digest"].as_str().unwrap()[7..].to_string());
        for l in m["layers"].as_array().unwrap() {
            out.push(l["digest"].as_str().unwrap()[7..].to_string());
        }
    }
    out
}

/// Every blob of a layout's images, without its SBOMs: name → sha256.
fn image_blobs(layout: &Path) -> BTreeMap<String, String> {
    let mut all = blobs(layout);
    for r in referrer_blobs(layout) {
        all.remove(&r);
    }
    all
}

/// Every blob of a layout: name → sha256 of its bytes.
fn blobs(layout: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, sha256_hex(&std::fs::read(e.path()).unwrap()))
        })
        .collect()
}

/// Asserts that a command's output says success, showing its stderr if not.
fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
