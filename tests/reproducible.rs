//! The same inputs give the same digests from checkouts at different paths,
//! each with its own cargo target directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{aelimg, json, ok, repo, scratch};

/// The digest `index.json` of a layout gives its tag.
fn top_digest(layout: &Path) -> String {
    let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    manifests[0]["digest"].as_str().unwrap().to_string()
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

#[test]
fn a_checkout_at_another_path_builds_identical_images() {
    // Both platforms: the arm64 binaries are cross-compiled (with a C
    // cross-compiler for ring) and must not carry the checkout's path either.
    let here = scratch("reproducible-here");
    ok(aelimg()
        .args(["build", "--locked", "--output"])
        .arg(format!("oci:{}", here.display())));
    let root = std::env::temp_dir().join(format!("aelimg-repro-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(root.clone());
    let clone = root.join("a/longer/path/to/another-checkout");
    checkout_copy(&clone);
    let out = clone.join("out");
    ok(aelimg()
        .current_dir(&clone)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "--locked", "--output"])
        .arg(format!("oci:{}", out.display())));
    assert!(
        clone.join("target/aelimg").is_dir(),
        "the copy must build in its own target directory"
    );
    for image in ["ael", "native-tools"] {
        let a = top_digest(&here.join(image));
        let b = top_digest(&out.join(image));
        assert_eq!(a, b, "{image}: {} vs {}", here.display(), clone.display());
    }
}
