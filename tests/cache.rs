//! The layer cache through the command line, with prebuilt binaries: a
//! cached rebuild is byte-identical to a `--no-cache` build, editing one
//! workflow rebuilds exactly one layer per platform, two builds racing on
//! one cache both succeed, and `cache info` / `cache prune` see and remove
//! what is there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{json, ok, repo, run, scratch};

/// A copy of images/ (images.yaml, config, workflows) to edit freely.
fn images_copy(dir: &Path) -> PathBuf {
    let dest = dir.join("images");
    ok(std::process::Command::new("cp")
        .arg("-r")
        .arg(repo().join("images"))
        .arg(&dest));
    dest
}

fn build(spec: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Output {
    run(common::aelimg()
        .args(["build", "--json", "-f"])
        .arg(spec.join("images.yaml"))
        .arg("--prebuilt")
        .arg(repo().join("fixtures/prebuilt"))
        .arg("--cache-dir")
        .arg(cache)
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .args(extra))
}

fn report(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    json(&String::from_utf8_lossy(&o.stdout))
}

/// (image platform layer-name, digest, origin), from a size report.
fn layers(r: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in r.as_array().unwrap() {
        for l in p["layers"].as_array().unwrap() {
            out.push((
                format!("{} {} {}", p["image"], p["platform"], l["name"]),
                l["digest"].as_str().unwrap().to_string(),
                l["origin"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// Every file of a tree with its bytes, sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_cached_rebuild_is_byte_identical_to_a_no_cache_build() {
    let dir = scratch("cache-identical");
    let spec = images_copy(&dir);
    let cache = dir.join("cache");
    let first = report(&build(&spec, &cache, &dir.join("a"), &[]));
    assert!(layers(&first).iter().all(|l| l.2 == "built"), "{first}");
    let second = report(&build(&spec, &cache, &dir.join("b"), &[]));
    assert!(
        layers(&second).iter().all(|l| l.2 == "cached"),
        "an unchanged rebuild takes every layer from the cache: {second}"
    );
    let fresh = report(&build(&spec, &cache, &dir.join("c"), &["--no-cache"]));
    assert!(layers(&fresh).iter().all(|l| l.2 == "built"), "{fresh}");
    let a = tree(&dir.join("a"));
    assert_eq!(a, tree(&dir.join("b")));
    assert_eq!(a, tree(&dir.join("c")));
    // And the cache itself was not needed for correctness: a new cache
    // gives the same bytes too.
    report(&build(&spec, &dir.join("cache2"), &dir.join("d"), &[]));
    assert_eq!(a, tree(&dir.join("d")));
}

#[test]
fn editing_one_workflow_rebuilds_exactly_one_layer_per_platform() {
    let dir = scratch("cache-one-edit");
    let spec = images_copy(&dir);
    let cache = dir.join("cache");
    let before = layers(&report(&build(&spec, &cache, &dir.join("out"), &[])));
    let wf = std::fs::read_dir(spec.join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "yaml"))
        .expect("an example workflow");
    let mut text = std::fs::read_to_string(&wf).unwrap();
    text.push_str("# edited\n");
    std::fs::write(&wf, text).unwrap();
    let after = layers(&report(&build(&spec, &cache, &dir.join("out"), &[])));
    assert_eq!(before.len(), after.len());
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(_, a)| a.0.as_str())
        .collect();
    assert_eq!(changed.len(), 2, "one layer per platform: {changed:?}");
    assert!(
        changed.iter().all(|c| c.contains("config and workflows")),
        "{changed:?}"
    );
    for (b, a) in before.iter().zip(&after) {
        let expected = if b.1 == a.1 { "cached" } else { "built" };
        assert_eq!(a.2, expected, "{}", a.0);
    }
    // The layout holds the new workflow (the image's index changed).
    let index = std::fs::read_to_string(dir.join("out/ael/index.json")).unwrap();
    assert!(!index.is_empty());
}

#[test]
fn two_builds_racing_on_one_cache_both_succeed_with_correct_layouts() {
    let dir = scratch("cache-race");
    let spec = images_copy(&dir);
    let cache = dir.join("cache");
    let reference = dir.join("reference");
    report(&build(&spec, &dir.join("reference-cache"), &reference, &[]));
    for round in 0..3 {
        let outs: Vec<PathBuf> = (0..2)
            .map(|i| dir.join(format!("out-{round}-{i}")))
            .collect();
        let children: Vec<_> = outs
            .iter()
            .map(|out| {
                common::aelimg()
                    .args(["build", "-f"])
                    .arg(spec.join("images.yaml"))
                    .arg("--prebuilt")
                    .arg(repo().join("fixtures/prebuilt"))
                    .arg("--cache-dir")
                    .arg(&cache)
                    .arg("--output")
                    .arg(format!("oci:{}", out.display()))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        for out in &outs {
            assert_eq!(tree(&reference), tree(out), "{}", out.display());
        }
    }
}

#[test]
fn cache_info_and_prune() {
    let dir = scratch("cache-prune");
    let spec = images_copy(&dir);
    let cache = dir.join("cache");
    report(&build(&spec, &cache, &dir.join("out"), &[]));
    let info = |extra: &[&str]| {
        json(&ok(common::aelimg()
            .args(["cache", "info", "--json", "--cache-dir"])
            .arg(&cache)
            .args(extra)))
    };
    let i = info(&[]);
    assert!(i["blobs"].as_u64().unwrap() > 4, "{i}");
    assert!(i["layers"].as_u64().unwrap() >= 4, "{i}");
    let o = run(common::aelimg()
        .args(["cache", "prune", "--cache-dir"])
        .arg(&cache));
    assert_eq!(
        o.status.code(),
        Some(2),
        "prune without a bound is a usage error"
    );
    // Nothing is older than a day.
    let p = json(&ok(common::aelimg()
        .args(["cache", "prune", "--json", "--max-age", "1d", "--cache-dir"])
        .arg(&cache)));
    assert_eq!(p["blobs"], 0, "{p}");
    assert_eq!(p["records"], 0, "{p}");
    let sbom_records = || std::fs::read_dir(cache.join("sbom-cache")).unwrap().count();
    assert!(sbom_records() > 0, "the build made SBOMs");
    let p = json(&ok(common::aelimg()
        .args(["cache", "prune", "--json", "--all", "--cache-dir"])
        .arg(&cache)));
    assert_eq!(p["blobs"], i["blobs"], "{p}");
    assert_eq!(info(&[])["blobs"], 0);
    // The records of SBOMs whose blobs are gone go with them.
    assert_eq!(sbom_records(), 0, "{p}");
    assert!(p["records"].as_u64().unwrap() > 0, "{p}");
    // The next build builds everything again, and the same bytes.
    let r = report(&build(&spec, &cache, &dir.join("again"), &[]));
    assert!(layers(&r).iter().all(|l| l.2 == "built"), "{r}");
    assert_eq!(tree(&dir.join("out")), tree(&dir.join("again")));
}
