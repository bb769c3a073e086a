//! Plain HTTP: only for loopback or registries named --insecure-registry.

use crate::common::registry::{Auth, Registry, aelimg_in};
use crate::common::{run, scratch};
use crate::{assert_success, build_fixture, layout_digest};

#[test]
fn plain_http_only_for_loopback_or_insecure_registries() {
    let dir = scratch("registry-http");
    let reg = Registry::start(&dir.join("reg"), false, Auth::Anonymous);
    let images = build_fixture(&dir, 1024);
    let docker = dir.join("docker-none");
    let push = |target: String, extra: &[&str]| {
        run(aelimg_in(&dir, &docker)
            .args(["push", &target, "--image", "alpha", "--retries", "1"])
            .args(["--resolve", "registry.test=127.0.0.1"])
            .args(extra)
            .arg("--from")
            .arg(format!("oci:{}", images.display())))
    };
    let name = format!("registry.test:{}", reg.port());
    let before = reg.log_lines().len();
    let out = push(format!("{name}/x/alpha"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--insecure-registry"), "{stderr}");
    assert_eq!(reg.log_lines().len(), before, "no HTTP request may be made");

    assert_success(&push(
        format!("{name}/x/alpha"),
        &["--insecure-registry", &name],
    ));
    // Loopback by name needs no flag.
    let loopback = push(format!("{}/y/alpha", reg.host()), &[]);
    assert_success(&loopback);
    // Not a terminal: one line per blob (its config and its layers, for
    // two platforms), then the summary.
    let stderr = String::from_utf8_lossy(&loopback.stderr);
    let blob_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            (l.starts_with("pushed blob sha256:") && l.ends_with(" to y/alpha"))
                || (l.starts_with("mounted blob sha256:") && l.contains(" into y/alpha "))
        })
        .collect();
    assert!(blob_lines.len() >= 4, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    for repo in ["x", "y"] {
        assert_eq!(
            reg.skopeo_digest(&format!("{repo}/alpha:1.0")),
            layout_digest(&images.join("alpha"))
        );
    }
}
