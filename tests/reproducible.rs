//! The same inputs give the same digests from checkouts at different paths,
//! whether they share a cargo target directory (and then the second takes
//! the binaries built from the same files, and reuses every compiled
//! dependency when a file differs, and neither takes the other's binary
//! built from other files) or each has its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{aelimg, json, ok, repo, scratch};

/// The digest `index.json` of a layout gives its tag, and those of the
/// SBOMs listed beside it (so they are compared across checkouts too).
fn top_digest(layout: &Path) -> String {
    let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    let manifests = index["manifests"].as_array().unwrap();
    let tagged = manifests
        .iter()
        .filter(|m| m.get("artifactType").is_none())
        .count();
    assert_eq!(tagged, 1, "{index}");
    let referrers = manifests.len() - 1;
    assert!(referrers > 0, "no SBOM: {index}");
    assert!(
        manifests
            .iter()
            .all(|m| m["artifactType"] != "application/vnd.in-toto+json"),
        "provenance was asked not to be attached: {index}"
    );
    manifests
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Copies the files git would check out (tracked, plus untracked files that
/// are not ignored) to `dest`.
fn checkout_copy(dest: &Path) {
    let list = ok(Command::new("git").current_dir(repo()).args([
        "ls-files",
        "-co",
        "--exclude-standard",
        "-z",
    ]));
    for rel in list.split('\0').filter(|s| !s.is_empty()) {
        let src = repo().join(rel);
        if !src.is_file() {
            continue; // deleted in the work tree
        }
        let to = dest.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&src, &to).unwrap();
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds the default images in `dir` (the checkout) into `out`, with the
/// given cargo target directory (`None`: the checkout's own); returns its
/// stderr.
fn build_in(dir: &Path, target: Option<&Path>, out: &Path, extra: &[&str]) -> String {
    let mut cmd = aelimg();
    cmd.current_dir(dir)
        .env_remove("SOURCE_DATE_EPOCH")
        // The provenance says where the sources came from (a git commit
        // here, a copy without git there), so it differs by design; the
        // SBOMs are compared with the images.
        .args(["build", "--locked", "--provenance", "none"])
        .args(extra)
        .arg("--output")
        .arg(format!("oci:{}", out.display()));
    match target {
        Some(t) => cmd.env("CARGO_TARGET_DIR", t),
        None => cmd.env_remove("CARGO_TARGET_DIR"),
    };
    let o = common::run(&mut cmd);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    stderr
}

/// Cargo's `Compiling …` lines in a build's stderr, trimmed.
fn compiling_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Compiling "))
        .collect()
}

fn same_images(a: &Path, b: &Path, images: &[&str]) {
    for image in images {
        assert_eq!(
            top_digest(&a.join(image)),
            top_digest(&b.join(image)),
            "{image}: {} vs {}",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn a_checkout_at_another_path_sharing_the_target_dir_reuses_every_dependency() {
    // One platform: the second checkout recompiles one of its own crates,
    // which is what this test pays for; the remapping is the same for
    // every target.
    let here = scratch("reproducible-here");
    let target = repo().join("target");
    let platform = ["--platform", "linux/amd64"];
    build_in(&repo(), Some(&target), &here, &platform);
    let root = std::env::temp_dir().join(format!("aelimg-repro-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(root.clone());
    let clone = root.join("a/longer/path/to/another-checkout");
    checkout_copy(&clone);

    // The same files at another path: the binaries cargo built from them
    // are taken as they are (cargo::reuse), nothing is compiled.
    let same = clone.join("out-same");
    let stderr = build_in(&clone, Some(&target), &same, &platform);
    for package in ["ael", "native-tools"] {
        assert!(
            stderr.contains(&format!("{package}: 1 binaries for linux/amd64 reused")),
            "{package} was not reused: {stderr}"
        );
    }
    assert!(!stderr.contains("Compiling "), "{stderr}");
    same_images(&here, &same, &["ael", "native-tools"]);

    // One file of ael's edited (a comment, so the binary stays the same):
    // cargo compiles the workspace's own crates at the new path and no
    // dependency; native-tools, whose files are the same, is reused.
    let main_rs = clone.join("runtime/src/main.rs");
    let mut text = std::fs::read_to_string(&main_rs).unwrap();
    text.push_str("// edited in another checkout\n");
    std::fs::write(&main_rs, text).unwrap();
    // A source written within a second of a build's start may have changed
    // while cargo read it, so that build leaves no content record (and a
    // binary no record describes cannot be told foreign below): edit, then
    // build, as a person does.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = clone.join("out");
    let stderr = build_in(&clone, Some(&target), &out, &platform);
    let compiled = compiling_lines(&stderr);
    assert!(
        compiled.iter().any(|l| l.starts_with("Compiling ael ")),
        "ael was not compiled again: {stderr}"
    );
    let clone_path = clone.display().to_string();
    let foreign: Vec<&&str> = compiled
        .iter()
        .filter(|l| !l.contains(&clone_path))
        .collect();
    assert!(
        foreign.is_empty(),
        "dependencies were compiled again for the second checkout: {foreign:?}"
    );
    assert!(
        stderr.contains("native-tools: 1 binaries for linux/amd64 reused"),
        "{stderr}"
    );
    same_images(&here, &out, &["ael", "native-tools"]);

    // Back in the first checkout, whose ael file is older than the
    // artifacts the second just built from its edited one: cargo finds
    // them fresh by mtime and would hand them over. aelimg tells by
    // content, cleans ael and builds it from this checkout's files.
    let back = scratch("reproducible-back");
    let stderr = build_in(&repo(), Some(&target), &back, &platform);
    assert!(
        stderr.contains(
            "ael: cargo took ael from another checkout sharing the target directory, built from other files"
        ),
        "the foreign binary was not caught: {stderr}"
    );
    let compiled = compiling_lines(&stderr);
    assert!(
        compiled.iter().any(|l| l.starts_with("Compiling ael ")),
        "ael was not compiled again: {stderr}"
    );
    assert!(
        compiled.iter().all(|l| l.starts_with("Compiling ael ")),
        "more than ael was compiled again: {compiled:?}"
    );
    assert!(
        stderr.contains("native-tools: 1 binaries for linux/amd64 up to date"),
        "{stderr}"
    );
    same_images(&here, &back, &["ael", "native-tools"]);
}

#[test]
fn a_checkout_at_another_path_with_its_own_target_dir_builds_identical_images() {
    // A cold build in another target directory: build-script output (ring's
    // C objects) and dependencies are remapped, so neither path reaches a
    // binary. One platform and one image (native-tools: ring, rustls,
    // tokio, hyper) keep the cold build affordable; a package's binary is
    // the same whatever else a build holds (decision 0002).
    let here = scratch("reproducible-here-amd64");
    let platform = ["--platform", "linux/amd64", "--image", "native-tools"];
    build_in(&repo(), Some(&repo().join("target")), &here, &platform);
    let root = std::env::temp_dir().join(format!("aelimg-repro-own-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(root.clone());
    let clone = root.join("elsewhere/checkout");
    checkout_copy(&clone);
    let out = clone.join("out");
    build_in(&clone, None, &out, &platform);
    assert!(
        clone.join("target/aelimg").is_dir(),
        "the copy must build in its own target directory"
    );
    same_images(&here, &out, &["native-tools"]);
}
