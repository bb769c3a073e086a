//! The build pipeline in-process, through the library's entry points, with
//! the payload swapped for prebuilt binaries (no release compile): the order
//! of the stages (a wrong base fails before the payload is built), what the
//! payload builder is asked for, sinks joined by a tee, and a layout that
//! holds another tool's artifact keeping it through a build (judged by
//! skopeo).

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aelimg::cargo::{BinId, Binaries, PayloadBuilder, PrebuiltBinaries};
use aelimg::pipeline::{self, BuildSettings, Observer, Quiet};
use aelimg::plan::PlanOptions;
use aelimg::platform::Platform;
use aelimg::progress::Progress;
use aelimg::registry::Options;
use aelimg::report::PlatformSize;
use aelimg::sink::archive::ArchiveSink;
use aelimg::sink::layout::LayoutSink;
use aelimg::sink::{Sink, Tee};
use common::{json, ok, repo, scratch};

/// A payload builder that records what it is asked for, then hands out
/// the prebuilt fixtures.
struct Recording {
    calls: RefCell<Vec<BTreeMap<Platform, BTreeSet<BinId>>>>,
    inner: PrebuiltBinaries,
}

impl Recording {
    fn new() -> Self {
        Self {
            calls: RefCell::new(Vec::new()),
            inner: PrebuiltBinaries {
                dir: repo().join("fixtures/prebuilt"),
            },
        }
    }
}

impl PayloadBuilder for Recording {
    fn build(
        &self,
        wanted: &BTreeMap<Platform, BTreeSet<BinId>>,
        progress: &dyn Progress,
    ) -> aelimg::Result<Binaries> {
        self.calls.borrow_mut().push(wanted.clone());
        self.inner.build(wanted, progress)
    }
}

fn settings<'a>(store: &Path, payload: &'a dyn PayloadBuilder) -> BuildSettings<'a> {
    BuildSettings {
        store_dir: Some(store.to_path_buf()),
        payload: Some(payload),
        profile: "release".into(),
        locked: false,
        cargo_color: false,
        no_cache: false,
        embed_dependencies: Some(env!("CARGO_BIN_EXE_aelimg").into()),
        registry: Options {
            retries: 0,
            backoff: Duration::from_millis(10),
            ..Options::default()
        },
        compression: aelimg::layer::LayerCompression::default(),
        jobs: 0,
        attach: aelimg::attest::AttachSettings::default(),
    }
}

fn default_plan() -> pipeline::Planned {
    pipeline::plan(&repo().join("images/images.yaml"), &PlanOptions::default()).unwrap()
}

fn bin(package: &str) -> BinId {
    BinId {
        package: package.into(),
        bin: package.into(),
    }
}

#[test]
fn the_payload_builder_is_asked_once_for_exactly_the_binaries_of_the_plan() {
    let dir = scratch("pipeline-asked");
    let payload = Recording::new();
    let mut tee = Tee::new(vec![Box::new(LayoutSink::new(dir.join("out")))]);
    let outcome = pipeline::build_planned(
        &default_plan(),
        &settings(&dir.join("store"), &payload),
        &mut tee,
        &mut Quiet,
    )
    .unwrap();
    let calls = payload.calls.borrow();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let both: BTreeSet<BinId> = [bin("ael"), bin("native-tools")].into();
    assert_eq!(
        calls[0],
        BTreeMap::from([
            (Platform::LinuxAmd64, both.clone()),
            (Platform::LinuxArm64, both)
        ])
    );
    assert_eq!(outcome.images.len(), 2);
    assert_eq!(outcome.records.len(), 2);
    for name in ["ael", "native-tools"] {
        assert!(dir.join("out").join(name).join("index.json").is_file());
    }
}

#[test]
fn a_base_that_cannot_be_resolved_fails_before_the_payload_is_built() {
    let dir = scratch("pipeline-bad-base");
    std::fs::write(dir.join("hello.txt"), "hi\n").unwrap();
    // Port 1 on loopback: nothing listens, so the connection is refused at once.
    std::fs::write(
        dir.join("images.yaml"),
        "version: 1\nimages:\n  - name: onbase\n    base: 127.0.0.1:1/acme/base:1\n    platforms: [linux/amd64]\n    user: {name: app, uid: 1000}\n    layers:\n      - name: files\n        contents:\n          - path: hello.txt\n            dest: /hello.txt\n          - cargo: ael\n            dest: /usr/local/bin/ael\n",
    )
    .unwrap();
    let planned = pipeline::plan(&dir.join("images.yaml"), &PlanOptions::default()).unwrap();
    let payload = Recording::new();
    let out = dir.join("out");
    let mut tee = Tee::new(vec![Box::new(LayoutSink::new(out.clone()))]);
    let err = pipeline::build_planned(
        &planned,
        &settings(&dir.join("store"), &payload),
        &mut tee,
        &mut Quiet,
    )
    .err()
    .expect("an unreachable base fails the build");
    let msg = aelimg::error::chain(&err);
    assert!(
        msg.contains("cannot reach") && msg.contains("127.0.0.1:1"),
        "{msg}"
    );
    assert!(
        payload.calls.borrow().is_empty(),
        "the payload builder was called before the base was resolved"
    );
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn the_command_line_never_starts_cargo_build_for_an_unresolvable_base() {
    let dir = scratch("pipeline-bad-base-cli");
    std::fs::write(dir.join("hello.txt"), "hi\n").unwrap();
    let spec = dir.join("images.yaml");
    std::fs::write(
        &spec,
        "version: 1\nimages:\n  - name: onbase\n    base: 127.0.0.1:1/acme/base:1\n    platforms: [linux/amd64]\n    user: {name: app, uid: 1000}\n    layers:\n      - name: bin\n        contents:\n          - cargo: ael\n            dest: /usr/local/bin/ael\n",
    )
    .unwrap();
    // A `cargo` first on PATH that logs its arguments and runs the real one
    // (the plan asks `cargo metadata` about the workspace).
    let (bin, log) = common::cargo_spy(&dir);
    let path = common::path_with(&bin);
    let out = common::run(
        common::aelimg()
            .env("PATH", path)
            .env_remove("CARGO")
            .args(["build", "--retries", "0", "-f"])
            .arg(&spec)
            .arg("--cache-dir")
            .arg(dir.join("store"))
            .arg("--output")
            .arg(format!("oci:{}", dir.join("out").display())),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        calls.contains("metadata"),
        "the plan asked cargo about the workspace: {calls}"
    );
    assert!(
        !calls
            .lines()
            .any(|l| l.starts_with("build") || l.starts_with("rustc")),
        "cargo build or rustc ran although the base could not be resolved: {calls}"
    );
    assert!(!dir.join("out").exists(), "nothing is written");
}

struct Reports(Vec<PlatformSize>);

impl Observer for Reports {
    fn built(&mut self, report: &[PlatformSize]) {
        self.0.extend(report.iter().cloned());
    }
}

#[test]
fn a_tee_writes_every_sink_and_an_image_over_its_limit_writes_none() {
    let dir = scratch("pipeline-tee");
    let spec = repo().join("fixtures/minimal/images.yaml");
    let planned = pipeline::plan(&spec, &PlanOptions::default()).unwrap();
    let payload = Recording::new();
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(LayoutSink::new(dir.join("oci"))),
        Box::new(ArchiveSink::new(dir.join("archives"))),
    ];
    let mut tee = Tee::new(sinks);
    let mut seen = Reports(Vec::new());
    let outcome = pipeline::build_planned(
        &planned,
        &settings(&dir.join("store"), &payload),
        &mut tee,
        &mut seen,
    )
    .unwrap();
    assert!(payload.calls.borrow().is_empty() || payload.calls.borrow()[0].is_empty());
    assert_eq!(outcome.records.len(), 2, "{:?}", outcome.records);
    assert_eq!(seen.0.len(), 1);
    assert!(dir.join("oci/mini/index.json").is_file());
    assert!(dir.join("archives/mini.tar").is_file());
    // skopeo reads both as the same image.
    let a = json(&ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{}:1.0", dir.join("oci/mini").display()),
    ])));
    let b = json(&ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("docker-archive:{}", dir.join("archives/mini.tar").display()),
    ])));
    assert_eq!(a["rootfs"], b["rootfs"]);

    // The same image against a 100-byte limit: the report is seen, nothing written.
    let small = dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("size_limit: 1MB", "size_limit: 100");
    std::fs::write(small.join("images.yaml"), text).unwrap();
    copy_dir(&repo().join("fixtures/minimal/files"), &small.join("files"));
    let planned = pipeline::plan(&small.join("images.yaml"), &PlanOptions::default()).unwrap();
    let mut tee = Tee::new(vec![Box::new(LayoutSink::new(small.join("oci")))]);
    let mut seen = Reports(Vec::new());
    let err = pipeline::build_planned(
        &planned,
        &settings(&dir.join("store"), &payload),
        &mut tee,
        &mut seen,
    )
    .err()
    .expect("over its limit");
    assert!(err.to_string().contains("over its limit"), "{err}");
    assert!(!seen.0[0].within_limit);
    assert!(!small.join("oci").exists(), "nothing is written");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Adds a blob of another tool's artifact type to a layout's index, as an
/// SBOM generator or signer might; returns its path.
fn add_foreign_artifact(layout: &Path) -> PathBuf {
    let bytes = br#"{"spdxVersion":"SPDX-2.3","name":"not ours"}"#;
    let digest = aelimg::digest::Digest::of(bytes);
    let path = layout.join("blobs/sha256").join(digest.hex());
    std::fs::write(&path, bytes).unwrap();
    let index_path = layout.join("index.json");
    let mut index = json(&std::fs::read_to_string(&index_path).unwrap());
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/spdx+json",
            "digest": digest.as_str(),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "sbom"},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    path
}

#[test]
fn a_layout_holding_an_unknown_artifact_keeps_it_through_a_build() {
    let dir = scratch("pipeline-foreign");
    let out = dir.join("out");
    let build = |tag_env: &str| {
        let text = std::fs::read_to_string(repo().join("fixtures/minimal/images.yaml"))
            .unwrap()
            .replace("GREETING: hello", &format!("GREETING: {tag_env}"));
        let spec_dir = dir.join(format!("spec-{tag_env}"));
        copy_dir(
            &repo().join("fixtures/minimal/files"),
            &spec_dir.join("files"),
        );
        std::fs::write(spec_dir.join("images.yaml"), text).unwrap();
        common::run(
            common::aelimg()
                .args(["build", "-f"])
                .arg(spec_dir.join("images.yaml"))
                .arg("--cache-dir")
                .arg(dir.join("store"))
                .arg("--output")
                .arg(format!("oci:{}", out.display())),
        )
    };
    let first = build("one");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let layout = out.join("mini");
    let foreign = add_foreign_artifact(&layout);
    let second = build("two");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(foreign.is_file(), "the foreign artifact's blob was deleted");
    assert!(
        stderr.contains("warning:") && stderr.contains("application/spdx+json"),
        "the user is told why nothing was collected: {stderr}"
    );
    let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert_eq!(names, ["sbom", "1.0"], "{index}");
    // skopeo still reads the rebuilt image, with the new config.
    let cfg = json(&ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{}:1.0", layout.display()),
    ])));
    assert!(
        cfg["config"]["Env"].to_string().contains("GREETING=two"),
        "{cfg}"
    );

    // Without the foreign entry, the next build collects the first build's orphans.
    let before = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
        }))
        .unwrap(),
    )
    .unwrap();
    let third = build("three");
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let after = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count();
    assert!(after < before, "{after} blobs after, {before} before");
    assert!(!foreign.exists(), "an unreferenced blob is collected");
}
