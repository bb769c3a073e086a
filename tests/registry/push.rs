//! Pushing over TLS with basic auth: chunked uploads, skipped and mounted
//! blobs, pulls back, `build --push`, and the default images.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::registry::{
    Auth, PASSWORD, Registry, aelimg_in, docker_config, sha256_hex, uploads,
};
use crate::common::{self, json, ok, run, scratch};
use crate::{blobs, build_fixture, image_blobs, layout_digest};

/// A registry with TLS and htpasswd, the fixture images, and a docker config
/// holding the right password.
struct Setup {
    dir: PathBuf,
    reg: Registry,
    images: PathBuf,
    docker: PathBuf,
}

impl Setup {
    /// `aelimg push TARGET --tag extra --json` of every fixture image, in 1 MiB
    /// chunks, writing `digests.txt`; checks the password is nowhere in the
    /// output and returns the JSON report.
    fn push(&self, target: &str) -> Value {
        let out = run(aelimg_in(&self.dir, &self.docker)
            .args(["push", target, "--json", "--chunk-size", "1MiB"])
            .args(["--tag", "extra"])
            .arg("--from")
            .arg(format!("oci:{}", self.images.display()))
            .arg("--ca-file")
            .arg(self.reg.ca())
            .arg("--digest-file")
            .arg(self.dir.join("digests.txt")));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "push {target} failed: {stderr}");
        assert!(!stderr.contains(PASSWORD), "the password leaked: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!stdout.contains(PASSWORD));
        json(&stdout)
    }
}

#[test]
fn push_with_tls_and_basic_auth_round_trips_skips_and_mounts() {
    let dir = scratch("registry-push");
    let reg = Registry::start(&dir.join("reg"), true, Auth::Htpasswd);
    let images = build_fixture(&dir, 3 << 20);
    let docker = docker_config(&dir, &reg.host(), PASSWORD);
    let t = Setup {
        dir,
        reg,
        images,
        docker,
    };
    first_push_uploads_everything_and_round_trips(&t);
    sboms_go_with_the_image_under_the_referrers_tag(&t);
    second_push_uploads_nothing(&t);
    a_second_repository_gets_mounts(&t);
    pull_gives_back_the_same_index(&t);
    build_push_pushes_what_it_builds(&t);
}

/// First push: every blob is uploaded, the large layer in chunks; skopeo
/// reads back our exact index under both tags and pulls identical blobs.
fn first_push_uploads_everything_and_round_trips(t: &Setup) {
    let host = t.reg.host();
    let first = t.push(&format!("{host}/acme/{{name}}:1.2"));
    let lines = t.reg.log_lines();
    let up = uploads(&lines);
    assert!(
        up.iter().any(|l| l.contains("\"PATCH ")),
        "the 3 MiB layer should go in chunks: {up:#?}"
    );
    let total: u64 = first
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uploaded_bytes"].as_u64().unwrap())
        .sum();
    assert!(total > 3 << 20, "{first}");
    let digests = std::fs::read_to_string(t.dir.join("digests.txt")).unwrap();
    for name in ["alpha", "beta"] {
        let layout = t.images.join(name);
        let ours = layout_digest(&layout);
        for tag in ["1.2", "extra"] {
            let raw = t.reg.skopeo_raw(&format!("acme/{name}:{tag}"));
            assert_eq!(format!("sha256:{}", sha256_hex(&raw)), ours, "{name}:{tag}");
            let v = json(&String::from_utf8_lossy(&raw));
            assert_eq!(v["manifests"].as_array().unwrap().len(), 2, "two platforms");
        }
        assert!(
            digests.contains(&format!("{host}/acme/{name}@{ours}")),
            "{digests}"
        );
        let back = t.dir.join(format!("back-{name}"));
        t.reg.skopeo_pull(&format!("acme/{name}:1.2"), &back, "1.2");
        assert_eq!(
            blobs(&back),
            image_blobs(&layout),
            "{name}: blobs differ after a round trip"
        );
    }
}

/// The SBOMs and provenance went with the images: docker-registry 2.8 has no referrers
/// API, so each platform manifest's referrers are listed in the index
/// tagged `sha256-<hex>` (the image-spec's fallback), which skopeo reads;
/// each artifact manifest reads back with the layout's exact bytes, and so
/// does the SBOM blob, fetched over the registry's HTTP API.
fn sboms_go_with_the_image_under_the_referrers_tag(t: &Setup) {
    for name in ["alpha", "beta"] {
        let layout = t.images.join(name);
        let idx = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
        let referrers: Vec<&Value> = idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d.get("artifactType").is_some())
            .collect();
        assert_eq!(
            referrers.len(),
            4,
            "{name}: an SBOM and a provenance per platform: {idx}"
        );
        for r in referrers {
            let digest = r["digest"].as_str().unwrap();
            let ours = std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap();
            let manifest = json(std::str::from_utf8(&ours).unwrap());
            let subject = manifest["subject"]["digest"].as_str().unwrap();
            let listed = json(&String::from_utf8_lossy(
                &t.reg
                    .skopeo_raw(&format!("acme/{name}:sha256-{}", &subject[7..])),
            ));
            let entry = listed["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["digest"] == digest)
                .unwrap_or_else(|| {
                    panic!("{name}: {digest} not under the referrers tag: {listed}")
                });
            assert_eq!(entry["artifactType"], r["artifactType"]);
            assert_eq!(
                t.reg.skopeo_raw(&format!("acme/{name}@{digest}")),
                ours,
                "{name}: the artifact manifest read back differs"
            );
            let sbom = manifest["layers"][0]["digest"].as_str().unwrap();
            let out = run(std::process::Command::new("curl")
                .args(["-sf", "--max-time", "20", "--cacert"])
                .arg(t.reg.ca())
                .args([
                    "-u",
                    &format!("{}:{PASSWORD}", crate::common::registry::USER),
                ])
                .arg(format!(
                    "https://{}/v2/acme/{name}/blobs/{sbom}",
                    t.reg.host()
                )));
            assert!(out.status.success(), "curl: {out:?}");
            assert_eq!(
                out.stdout,
                std::fs::read(layout.join("blobs/sha256").join(&sbom[7..])).unwrap(),
                "{name}: the SBOM read back differs"
            );
        }
    }
}

/// Second push of the same images: no blob bytes, no upload at all.
fn second_push_uploads_nothing(t: &Setup) {
    let before = t.reg.log_lines().len();
    let second = t.push(&format!("{}/acme/{{name}}:1.2", t.reg.host()));
    let lines = t.reg.log_lines();
    let up = uploads(&lines[before..]);
    assert!(up.is_empty(), "the second push uploaded: {up:#?}");
    for r in second.as_array().unwrap() {
        assert_eq!(r["uploaded_bytes"], 0, "{second}");
        assert_eq!(r["skipped"], r["blobs"], "{second}");
    }
}

/// A second repository of the same registry: blobs are mounted, not uploaded.
fn a_second_repository_gets_mounts(t: &Setup) {
    let before = t.reg.log_lines().len();
    let third = t.push(&format!("{}/other/{{name}}:1.2", t.reg.host()));
    let lines = t.reg.log_lines();
    let new = &lines[before..];
    let up = uploads(new);
    assert!(
        up.is_empty(),
        "the push to a second repository uploaded: {up:#?}"
    );
    let mounts = new
        .iter()
        .filter(|l| l.contains("\"POST ") && l.contains("mount=") && l.contains("\" 201 "))
        .count();
    let blob_count: u64 = third
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["mounted"].as_u64().unwrap())
        .sum();
    assert!(mounts >= 3, "expected mounts in the registry log: {new:#?}");
    assert_eq!(mounts as u64, blob_count, "{third}");
    for name in ["alpha", "beta"] {
        assert_eq!(
            t.reg.skopeo_digest(&format!("other/{name}:1.2")),
            layout_digest(&t.images.join(name))
        );
    }
}

/// aelimg pull gives back the same index, which skopeo reads.
fn pull_gives_back_the_same_index(t: &Setup) {
    let pulled = t.dir.join("pulled");
    ok(aelimg_in(&t.dir, &t.docker)
        .args(["pull", &format!("{}/acme/alpha:1.2", t.reg.host())])
        .arg("--output")
        .arg(format!("oci:{}", pulled.display()))
        .arg("--ca-file")
        .arg(t.reg.ca()));
    assert_eq!(
        blobs(&pulled.join("alpha")),
        image_blobs(&t.images.join("alpha"))
    );
    ok(std::process::Command::new("skopeo").args([
        "inspect",
        &format!("oci:{}:1.2", pulled.join("alpha").display()),
    ]));
}

/// build --push pushes what it builds.
fn build_push_pushes_what_it_builds(t: &Setup) {
    let host = t.reg.host();
    let out = ok(aelimg_in(&t.dir, &t.docker)
        .args(["build", "-f"])
        .arg(t.dir.join("spec/images.yaml"))
        .arg("--cache-dir")
        .arg(t.dir.join("cache"))
        .arg("--output")
        .arg(format!("oci:{}", t.dir.join("images2").display()))
        .args([
            "--image",
            "alpha",
            "--push",
            &format!("{host}/built/{{name}}"),
        ])
        .arg("--ca-file")
        .arg(t.reg.ca()));
    let ours = layout_digest(&t.images.join("alpha"));
    // stdout is the reference by digest and nothing else (the size report
    // and the progress go to stderr): `docker run $(aelimg build --push …)`.
    assert_eq!(out, format!("{host}/built/alpha@{ours}\n"));
    assert_eq!(t.reg.skopeo_digest("built/alpha:1.0"), ours);
    // --json keeps stdout for the size report, as JSON.
    let out = ok(aelimg_in(&t.dir, &t.docker)
        .args(["build", "--json", "-f"])
        .arg(t.dir.join("spec/images.yaml"))
        .arg("--cache-dir")
        .arg(t.dir.join("cache"))
        .arg("--output")
        .arg(format!("oci:{}", t.dir.join("images2").display()))
        .args([
            "--image",
            "alpha",
            "--push",
            &format!("{host}/built/{{name}}"),
        ])
        .arg("--ca-file")
        .arg(t.reg.ca()));
    let report = common::json(&out);
    assert_eq!(report[0]["image"], "alpha:1.0", "{report}");
}

#[test]
fn pushes_both_default_images_with_name_in_the_reference() {
    let images: &Path = common::default_images("registry");
    let dir = scratch("registry-default");
    let reg = Registry::start(&dir.join("reg"), true, Auth::Htpasswd);
    let host = reg.host();
    let docker = docker_config(&dir, &host, PASSWORD);
    let out = ok(aelimg_in(&dir, &docker)
        .args(["push", &format!("{host}/acme/{{name}}:1.2")])
        .arg("--from")
        .arg(format!("oci:{}", images.display()))
        .arg("--ca-file")
        .arg(reg.ca()));
    for name in ["ael", "native-tools"] {
        let ours = layout_digest(&images.join(name));
        assert!(out.contains(&format!("{host}/acme/{name}@{ours}")), "{out}");
        assert_eq!(
            reg.skopeo_digest(&format!("acme/{name}:1.2")),
            ours,
            "{name}"
        );
    }
}
