//! Standard OCI annotations and labels (decision 0018), judged by skopeo:
//! `created`, `title`, `version` on each manifest, the index and as config
//! labels by default, with no git keys; `--annotate-git` in a git work tree
//! names `git rev-parse HEAD` and the origin URL without its credentials;
//! `--annotation`/`--label` win; bad flags and bad `mcp:` sections are
//! clear errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{aelimg, json, ok, run, scratch};

const EPOCH: &str = "1700000000";
const CREATED: &str = "2023-11-14T22:13:20Z";

/// fixtures/minimal copied into `dir/spec`, with `version: "1.0.0"`.
fn minimal_copy(dir: &Path) -> PathBuf {
    let spec = dir.join("spec");
    std::fs::create_dir_all(&spec).unwrap();
    let src = common::repo().join("fixtures/minimal");
    ok(Command::new("cp")
        .arg("-a")
        .arg(src.join("files"))
        .arg(&spec));
    let text = std::fs::read_to_string(src.join("images.yaml"))
        .unwrap()
        .replace(
            "    tag: \"1.0\"\n",
            "    tag: \"1.0\"\n    version: \"1.0.0\"\n",
        );
    std::fs::write(spec.join("images.yaml"), text).unwrap();
    spec
}

/// Builds `spec/images.yaml` for two platforms into `dir/images` with
/// `extra` flags; returns the layout of `mini`.
fn build(dir: &Path, spec: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("images");
    ok(aelimg()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .arg("build")
        .arg("-f")
        .arg(spec.join("images.yaml"))
        .args(["--platform", "linux/amd64,linux/arm64", "--sbom", "none"])
        .args(["--provenance", "none"])
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .args(extra));
    out.join("mini")
}

fn skopeo(args: &[&str], layout: &Path) -> Value {
    json(&ok(Command::new("skopeo")
        .arg("inspect")
        .args(args)
        .arg(format!("oci:{}:1.0", layout.display()))))
}

/// The index's annotations, each platform manifest's, and the labels of
/// the config skopeo reads (the host's platform).
fn read(layout: &Path) -> (Value, Vec<Value>, Value) {
    let index = skopeo(&["--raw"], layout);
    let manifests = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let hex = d["digest"]
                .as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .unwrap();
            json(&std::fs::read_to_string(layout.join("blobs/sha256").join(hex)).unwrap())
                ["annotations"]
                .clone()
        })
        .collect();
    let config = skopeo(&["--config"], layout);
    (
        index["annotations"].clone(),
        manifests,
        config["config"]["Labels"].clone(),
    )
}

#[test]
fn standard_keys_by_default_and_no_git() {
    let dir = scratch("annotations-default");
    let spec = minimal_copy(&dir);
    let layout = build(&dir, &spec, &[]);
    let (index, manifests, labels) = read(&layout);
    assert_eq!(manifests.len(), 2);
    for a in manifests.iter().chain([&index, &labels]) {
        assert_eq!(a["org.opencontainers.image.created"], CREATED, "{a}");
        assert_eq!(a["org.opencontainers.image.title"], "mini", "{a}");
        assert_eq!(a["org.opencontainers.image.version"], "1.0.0", "{a}");
        assert!(a["org.opencontainers.image.revision"].is_null(), "{a}");
        assert!(a["org.opencontainers.image.source"].is_null(), "{a}");
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    ok(Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args))
    .trim()
    .to_string()
}

#[test]
fn annotate_git_names_the_commit_and_overrides_win() {
    let dir = scratch("annotations-git");
    let spec = minimal_copy(&dir);
    git(&spec, &["init", "-q"]);
    git(
        &spec,
        &[
            "remote",
            "add",
            "origin",
            "https://user:secret@example.com/acme/mini.git",
        ],
    );
    git(&spec, &["add", "."]);
    git(&spec, &["commit", "-q", "-m", "mini"]);
    let head = git(&spec, &["rev-parse", "HEAD"]);
    let layout = build(
        &dir,
        &spec,
        &[
            "--annotate-git",
            "--annotation",
            "org.opencontainers.image.version=9.9.9",
            "--label",
            "org.opencontainers.image.title=other",
            "--label",
            "com.example.ci=yes",
        ],
    );
    let (index, manifests, labels) = read(&layout);
    for a in manifests.iter().chain([&index, &labels]) {
        assert_eq!(a["org.opencontainers.image.revision"], head.as_str(), "{a}");
        assert_eq!(
            a["org.opencontainers.image.source"], "https://example.com/acme/mini.git",
            "{a}"
        );
        assert!(!a.to_string().contains("secret"), "{a}");
    }
    for a in manifests.iter().chain([&index]) {
        assert_eq!(a["org.opencontainers.image.version"], "9.9.9", "{a}");
        assert_eq!(a["org.opencontainers.image.title"], "mini", "{a}");
    }
    assert_eq!(labels["org.opencontainers.image.version"], "1.0.0");
    assert_eq!(labels["org.opencontainers.image.title"], "other");
    assert_eq!(labels["com.example.ci"], "yes");
}

#[test]
fn bad_flags_and_mcp_sections_are_clear_errors() {
    let spec = common::repo().join("fixtures/minimal/images.yaml");
    for (flag, value, says) in [
        (
            "--annotation",
            "novalue",
            "--annotation novalue: expected KEY=VALUE",
        ),
        ("--label", "a b=c", "--label a b=c: invalid key"),
        ("--annotation", "=x", "--annotation =x: empty key"),
    ] {
        let out = run(aelimg()
            .arg("plan")
            .arg("-f")
            .arg(&spec)
            .args([flag, value]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    // --annotate-git needs a spec git tracks.
    let dir = scratch("annotations-bad");
    let copy = minimal_copy(&dir);
    let out = run(aelimg()
        .arg("plan")
        .arg("-f")
        .arg(copy.join("images.yaml"))
        .arg("--annotate-git")
        .env("GIT_CEILING_DIRECTORIES", &dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--annotate-git"), "{stderr}");
    // An MCP name the registry's schema refuses, and mcp: without version.
    let text = std::fs::read_to_string(copy.join("images.yaml")).unwrap();
    for (mcp, says) in [
        (
            "    mcp: {name: no-slash, description: x}\n",
            "invalid MCP server name `no-slash`",
        ),
        (
            "    mcp: {name: io.github.a/b, description: x, transport: sse}\n",
            "unknown MCP transport",
        ),
    ] {
        let bad = text.replace("    user:", &format!("{mcp}    user:"));
        std::fs::write(copy.join("bad.yaml"), &bad).unwrap();
        let line = bad.lines().position(|l| l.starts_with("    mcp:")).unwrap() + 1;
        let out = run(aelimg().arg("plan").arg("-f").arg(copy.join("bad.yaml")));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(&format!("bad.yaml:{line}:")), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}
