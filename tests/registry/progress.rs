//! Push progress at the library level: `pipeline::push` to a real registry
//! reports every blob to the caller's `Observer`: started with its size,
//! the bytes the registry accepted (chunk by chunk) up to exactly that size,
//! and how it got there (pushed, already there, mounted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use aelimg::pipeline::{self, Observer};
use aelimg::progress::{BlobOutcome, Event};
use aelimg::registry::Options;
use aelimg::sink::registry::RegistrySink;

use crate::build_fixture;
use crate::common::registry::{Auth, Registry};
use crate::common::{json, scratch};

/// What happened to one blob in one repository.
#[derive(Debug, Default)]
struct Blob {
    started: Vec<u64>,
    progress: Vec<u64>,
    done: Vec<String>,
}

/// Records every blob event, by repository and digest.
#[derive(Default)]
struct Recorder(BTreeMap<(String, String), Blob>);

impl Observer for Recorder {
    fn progress(&mut self, e: &Event<'_>) {
        let (blob, what) = match e {
            Event::BlobStarted { blob } => (blob, None),
            Event::BlobProgress { blob, bytes } => (blob, Some(Ok(*bytes))),
            Event::BlobDone { blob, outcome } => (
                blob,
                Some(Err(match outcome {
                    BlobOutcome::Pushed => "pushed".to_string(),
                    BlobOutcome::Exists => "exists".to_string(),
                    BlobOutcome::Mounted { from } => format!("mounted from {from}"),
                })),
            ),
            _ => return,
        };
        let b = self
            .0
            .entry((blob.repository.to_string(), blob.digest.to_string()))
            .or_default();
        match what {
            None => b.started.push(blob.size),
            Some(Ok(bytes)) => b.progress.push(bytes),
            Some(Err(outcome)) => b.done.push(outcome),
        }
    }
}

/// The blobs (config and layers) of every platform of a layout, and of the
/// SBOMs listed beside it (a push sends them too): digest → size.
fn layout_blobs(layout: &Path) -> BTreeMap<String, u64> {
    let read = |d: &str| {
        json(&std::fs::read_to_string(layout.join("blobs/sha256").join(&d[7..])).unwrap())
    };
    let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    let top = read(index["manifests"][0]["digest"].as_str().unwrap());
    let referrers = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d.get("artifactType").is_some());
    let mut out = BTreeMap::new();
    for m in top["manifests"].as_array().unwrap().iter().chain(referrers) {
        let m = read(m["digest"].as_str().unwrap());
        let descriptors = std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap());
        for d in descriptors {
            out.insert(
                d["digest"].as_str().unwrap().to_string(),
                d["size"].as_u64().unwrap(),
            );
        }
    }
    out
}

fn push(images: &Path, target: &str) -> (Recorder, u64) {
    let layouts = pipeline::find_layouts(images, None, &[]).unwrap();
    let opts = Options {
        chunk_size: 1 << 20,
        ..Options::default()
    };
    let mut sink = RegistrySink::new(target.to_string(), Vec::new(), opts).unwrap();
    let mut seen = Recorder::default();
    let records = pipeline::push(&layouts, &mut sink, &mut seen).unwrap();
    let uploaded = records
        .iter()
        .map(|r| r.push.as_ref().unwrap().uploaded_bytes)
        .sum();
    (seen, uploaded)
}

const CHILD: &str = "AELIMG_TEST_PUSH_PROGRESS_DIR";

/// Runs in a child process of this test binary (see the test below), with
/// HOME, XDG_CACHE_HOME and DOCKER_CONFIG of its own: a push remembers its
/// blobs under XDG_CACHE_HOME, which a test must not write in the user's.
fn in_child(dir: &Path) {
    let reg = Registry::start(&dir.join("reg"), false, Auth::Anonymous);
    let images = build_fixture(dir, 3 << 20);
    let target = format!("{}/acme/{{name}}:1.0", reg.host());
    let (seen, uploaded) = push(&images, &target);
    let mut pushed_bytes = 0;
    for name in ["alpha", "beta"] {
        let repo = format!("acme/{name}");
        let blobs = layout_blobs(&images.join(name));
        for (digest, size) in &blobs {
            let b = seen
                .0
                .get(&(repo.clone(), digest.clone()))
                .unwrap_or_else(|| panic!("no event for {repo} {digest}"));
            assert_eq!(
                b.started,
                [*size],
                "{repo} {digest}: started once, with its size"
            );
            assert_eq!(b.done.len(), 1, "{repo} {digest}: {b:?}");
            if b.done[0] == "pushed" {
                assert_eq!(b.progress.last(), Some(size), "{repo} {digest}: {b:?}");
                assert!(b.progress.windows(2).all(|w| w[0] < w[1]), "{b:?}");
                // 1 MiB chunks: one event per chunk.
                assert_eq!(
                    b.progress.len() as u64,
                    size.div_ceil(1 << 20).max(1),
                    "{repo} {digest}: {b:?}"
                );
                pushed_bytes += size;
            } else {
                // beta's root layer is alpha's: mounted from there.
                assert!(b.done[0].starts_with("mounted from acme/"), "{b:?}");
                assert!(b.progress.is_empty(), "{b:?}");
            }
        }
        assert_eq!(
            seen.0.keys().filter(|(r, _)| *r == repo).count(),
            blobs.len(),
            "events for exactly the image's blobs"
        );
    }
    assert!(
        seen.0.values().any(|b| b.progress.len() >= 3),
        "the 3 MiB layer went in chunks"
    );
    assert_eq!(
        pushed_bytes, uploaded,
        "the events add up to the push report"
    );

    // Again: every blob is there already; nothing is sent.
    let (again, uploaded) = push(&images, &target);
    assert_eq!(uploaded, 0);
    assert_eq!(again.0.len(), seen.0.len());
    for (key, b) in &again.0 {
        assert_eq!(b.done, ["exists"], "{key:?}");
        assert!(b.progress.is_empty(), "{key:?}");
    }
}

#[test]
fn a_push_reports_every_blob_with_the_bytes_the_registry_accepted() {
    if let Some(dir) = std::env::var_os(CHILD) {
        in_child(Path::new(&dir));
        return;
    }
    let dir: PathBuf = scratch("registry-push-progress");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "progress::a_push_reports_every_blob_with_the_bytes_the_registry_accepted",
            "--nocapture",
        ])
        .env(CHILD, &dir)
        .env("HOME", dir.join("home"))
        .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
        .env("DOCKER_CONFIG", dir.join("docker-none"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "the push ran in a child process and failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.join("xdg-cache/aelimg/pushed.json").is_file(),
        "the child pushed, and remembered it in its own cache"
    );
}
