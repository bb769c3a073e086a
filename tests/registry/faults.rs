//! Registries that misbehave: one killed and restarted in the middle of a
//! push, and a scripted one that throttles and redirects blob downloads to
//! another host.

use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::fake_http::{Answer, Seen, fake_server};
use crate::common::proxy::Proxy;
use crate::common::registry::{
    Auth, PASSWORD, Registry, USER, aelimg_in, b64, docker_config, sha256_hex,
};
use crate::common::{Daemon, json, ok, run, scratch, wait_until};
use crate::{blobs, build_fixture, image_blobs, layout_digest};

#[test]
fn registry_killed_mid_push_and_restarted_push_completes_and_verifies() {
    let dir = scratch("registry-kill");
    let reg = Arc::new(Mutex::new(Registry::start(
        &dir.join("reg"),
        true,
        Auth::Htpasswd,
    )));
    let (upstream, ca) = {
        let r = reg.lock().unwrap();
        (r.port(), r.ca().to_path_buf())
    };
    let images = build_fixture(&dir, 8 << 20);
    // Once 2 MiB have gone through the proxy, the registry is killed (the
    // proxy holds no strong reference: the registry dies with the test).
    let weak = Arc::downgrade(&reg);
    let proxy = Proxy::start(upstream, 2 << 20, move || {
        if let Some(r) = weak.upgrade() {
            r.lock().unwrap().kill();
        }
    });
    let host = format!("127.0.0.1:{}", proxy.port);
    let docker = docker_config(&dir, &host, PASSWORD);
    let (out_file, err_file) = (dir.join("push.out"), dir.join("push.err"));
    let mut push = Daemon::spawn(
        aelimg_in(&dir, &docker)
            .args(["push", &format!("{host}/acme/beta"), "--image", "beta"])
            .args([
                "--json",
                "--chunk-size",
                "256KiB",
                "--jobs",
                "1",
                "--retries",
                "6",
            ])
            .arg("--from")
            .arg(format!("oci:{}", images.display()))
            .arg("--ca-file")
            .arg(&ca)
            .stdout(File::create(&out_file).unwrap())
            .stderr(File::create(&err_file).unwrap()),
    );
    // The registry comes back once aelimg has found it down (a connection
    // the proxy could not forward), or the push has ended.
    wait_until(
        Duration::from_secs(120),
        || proxy.refused() > 0 || push.exited(),
        || {
            format!(
                "no retry reached the killed registry (killed: {})",
                proxy.fired()
            )
        },
    );
    if proxy.refused() > 0 {
        reg.lock().unwrap().restart();
    }
    let status = push.wait();
    let stderr = std::fs::read_to_string(&err_file).unwrap();
    assert!(proxy.fired(), "the registry was never killed");
    assert!(
        status.success(),
        "the push did not survive a restart: {stderr}"
    );
    let report = json(&std::fs::read_to_string(&out_file).unwrap());
    assert!(report[0]["retried"].as_u64().unwrap() > 0, "{report}");
    // Judged by skopeo against the registry directly: the same index, and
    // every blob pulls back intact.
    let reg = reg.lock().unwrap();
    let layout = images.join("beta");
    assert_eq!(reg.skopeo_digest("acme/beta:1.0"), layout_digest(&layout));
    let back = dir.join("back");
    reg.skopeo_pull("acme/beta:1.0", &back, "1.0");
    assert_eq!(blobs(&back), image_blobs(&layout));
}

/// A fake registry behind USER:PASSWORD (basic) serving one manifest, whose
/// first manifest request is answered `429` with `Retry-After: 2`, and
/// whose config blob download is redirected to `storage` (`host:port`).
fn throttling_redirecting_registry(
    manifest: Vec<u8>,
    config_digest: String,
    storage: String,
) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let expected_auth = format!("Basic {}", b64(&format!("{USER}:{PASSWORD}")));
    let answer = |status: &str, headers: &[(&str, &str)], body: &[u8]| -> Answer {
        (
            status.into(),
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body.to_vec(),
        )
    };
    fake_server(move |line, seen| {
        let authorized =
            seen.last().unwrap().authorization.as_deref() == Some(expected_auth.as_str());
        if !authorized {
            return answer(
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"fake\"")],
                b"",
            );
        }
        if line.starts_with("GET /v2/ ") {
            return answer("200 OK", &[], b"{}");
        }
        if line.contains("/manifests/") {
            let asked = seen
                .iter()
                .filter(|s| s.line.contains("/manifests/"))
                .count();
            if asked == 1 {
                return answer("429 Too Many Requests", &[("Retry-After", "2")], b"");
            }
            let media_type = "application/vnd.oci.image.manifest.v1+json";
            return answer("200 OK", &[("Content-Type", media_type)], &manifest);
        }
        if line.contains(&format!("/blobs/{config_digest}")) {
            let location = format!("http://{storage}/storage/{config_digest}");
            return answer("307 Temporary Redirect", &[("Location", &location)], b"");
        }
        answer("404 Not Found", &[], b"")
    })
}

#[test]
fn retry_after_is_honoured_and_credentials_do_not_follow_redirects_to_other_hosts() {
    let dir = scratch("registry-fake");
    // The "storage" a registry redirects blob downloads to.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let cfg = config.clone();
    let (storage_port, storage_seen) =
        fake_server(move |_, _| ("200 OK".into(), vec![], cfg.clone()));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": []
    })
    .to_string()
    .into_bytes();
    let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
    let (port, seen) = throttling_redirecting_registry(
        manifest,
        config_digest,
        format!("127.0.0.1:{storage_port}"),
    );
    let host = format!("127.0.0.1:{port}");
    let docker = docker_config(&dir, &host, PASSWORD);
    let out = run(aelimg_in(&dir, &docker)
        .args(["pull", &format!("{host}/fake/img:1")])
        .arg("--output")
        .arg(format!("oci:{}", dir.join("pulled").display())));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&manifest_digest),
        "{stderr}"
    );
    // skopeo reads what was pulled.
    let raw = ok(std::process::Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:1", dir.join("pulled/img").display()),
    ]));
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
        manifest_digest
    );

    let seen = seen.lock().unwrap().clone();
    let manifests: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.line.contains("/manifests/"))
        .collect();
    let gap = manifests[1].at.duration_since(manifests[0].at);
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After: 2 ignored ({gap:?})"
    );
    let storage = storage_seen.lock().unwrap().clone();
    assert_eq!(storage.len(), 1, "{storage:?}");
    assert!(
        storage[0].authorization.is_none(),
        "credentials followed a redirect to another host"
    );
    assert!(
        seen.iter()
            .any(|s| s.line.contains("/blobs/") && s.authorization.is_some())
    );
}
