//! `build` of an image whose `base:` is on a registry, pinned by digest.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::registry::{Auth, PASSWORD, Registry, USER, aelimg_in, docker_config};
use crate::common::{self, host_platform, json, ok, run, scratch};

/// buildah with the flags this machine needs.
fn buildah() -> Command {
    let mut c = Command::new("buildah");
    c.args(["--storage-driver", "vfs"]);
    c
}

/// A buildah working container, removed when dropped.
struct Ctr(String);

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = run(buildah().args(["rm", &self.0]));
    }
}

#[test]
fn an_image_on_a_registry_base_runs_with_the_bases_files_and_our_layers() {
    let dir = scratch("registry-base");
    let reg = Registry::start(&dir.join("reg"), true, Auth::Htpasswd);
    let base_raw = push_busybox_base(&dir, &reg, "base/busybox:1");
    let base_digest = format!("sha256:{}", common::registry::sha256_hex(&base_raw));
    let base_manifest = json(&String::from_utf8_lossy(&base_raw));
    let host = reg.host();

    // Our image on it, pinned by digest; a digest that does not match is refused.
    let build = OnBase::new(&dir, &reg);
    let out = build.run(&format!("{host}/base/busybox:1@sha256:{}", "0".repeat(64)));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = build.run(&format!("{host}/base/busybox:1@{base_digest}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(PASSWORD));
    let layout = dir.join("out/onbase");
    let report = json(&String::from_utf8_lossy(&out.stdout));
    the_base_layer_is_there_byte_for_byte(&layout, &base_manifest, &report);
    the_base_config_is_merged_under_ours(&layout);
    the_manifest_names_the_base(&layout, &format!("{host}/base/busybox"), &base_digest);

    // It runs under podman with the base's files and ours.
    let out = ok(common::podman()
        .args(["run", "--rm"])
        .args(common::PODMAN_RUN_LIMITS)
        .arg(format!("oci:{}:1.0", layout.display())));
    assert!(out.contains("from the base"), "{out}");
    assert!(out.contains("from our layer"), "{out}");
}

#[test]
fn an_unknown_base_tag_fails_before_cargo_build_starts() {
    let dir = scratch("registry-base-unknown-tag");
    let reg = Registry::start(&dir.join("reg"), false, Auth::Anonymous);
    std::fs::create_dir_all(dir.join("spec")).unwrap();
    let spec = dir.join("spec/images.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1\nimages:\n  - name: onbase\n    base: {}/acme/base:no-such-tag\n    platforms: [{}]\n    user: {{name: app, uid: 10001}}\n    layers:\n      - name: bin\n        contents:\n          - cargo: ael\n            dest: /usr/local/bin/ael\n",
            reg.host(),
            host_platform()
        ),
    )
    .unwrap();
    let (bin, log) = common::cargo_spy(&dir);
    let out = run(aelimg_in(&dir, &dir.join("docker-none"))
        .env("PATH", common::path_with(&bin))
        .env_remove("CARGO")
        .args(["build", "--retries", "0", "-f"])
        .arg(&spec)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--output")
        .arg(format!("oci:{}", dir.join("out").display())));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("404") && stderr.contains("no-such-tag"),
        "the registry's answer is reported: {stderr}"
    );
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(calls.contains("metadata"), "{calls}");
    assert!(
        !calls
            .lines()
            .any(|l| l.starts_with("build") || l.starts_with("rustc")),
        "cargo build or rustc ran although the base tag does not exist: {calls}"
    );
    assert!(!dir.join("out").exists(), "nothing is written");
}

/// Makes a small busybox base for the host's platform with buildah (a
/// marker file, env and a label) and pushes it to `HOST/<repo_ref>`;
/// returns its manifest's bytes as skopeo reads them.
fn push_busybox_base(dir: &Path, reg: &Registry, repo_ref: &str) -> Vec<u8> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox-static (apt install busybox-static)");
    std::fs::write(dir.join("marker"), "from the base\n").unwrap();
    let ctr = Ctr(ok(buildah().args(["from", "scratch"])).trim().to_string());
    ok(buildah().args(["copy", &ctr.0, busybox, "/bin/busybox"]));
    ok(buildah()
        .args(["copy", &ctr.0])
        .arg(dir.join("marker"))
        .arg("/etc/base-marker"));
    ok(buildah().args([
        "config",
        "--env",
        "BASEVAR=from-base",
        "--env",
        "GREETING=overridden",
        "--label",
        "from=base",
        &ctr.0,
    ]));
    ok(buildah()
        .args(["commit", "--format", "oci", "--cert-dir"])
        .arg(&reg.tls().cert_dir)
        .args(["--creds", &format!("{USER}:{PASSWORD}"), &ctr.0])
        .arg(format!("docker://{}/{repo_ref}", reg.host())));
    reg.skopeo_raw(repo_ref)
}

/// Builds the `onbase` image (the host's platform, our file in a layer)
/// into `dir/out` with a given `base:`.
struct OnBase {
    dir: PathBuf,
    docker: PathBuf,
    ca: PathBuf,
}

impl OnBase {
    fn new(dir: &Path, reg: &Registry) -> Self {
        let spec = dir.join("spec");
        std::fs::create_dir_all(spec.join("files")).unwrap();
        std::fs::write(spec.join("files/hello.txt"), "from our layer\n").unwrap();
        Self {
            dir: dir.to_path_buf(),
            docker: docker_config(dir, &reg.host(), PASSWORD),
            ca: reg.ca().to_path_buf(),
        }
    }

    /// `aelimg build --json` of the spec with `base`.
    fn run(&self, base: &str) -> Output {
        let spec = self.dir.join("spec/images.yaml");
        std::fs::write(
            &spec,
            format!(
                r#"version: 1
images:
  - name: onbase
    tag: "1.0"
    base: {base}
    platforms: [{platform}]
    user: {{name: app, uid: 10001}}
    env: {{GREETING: hello}}
    entrypoint: [/bin/busybox, cat, /etc/base-marker, /srv/hello.txt]
    layers:
      - name: files
        contents:
          - path: files/hello.txt
            dest: /srv/hello.txt
"#,
                platform = host_platform()
            ),
        )
        .unwrap();
        run(aelimg_in(&self.dir, &self.docker)
            .args(["build", "-f"])
            .arg(&spec)
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .arg("--ca-file")
            .arg(&self.ca)
            .arg("--json")
            .arg("--output")
            .arg(format!("oci:{}", self.dir.join("out").display())))
    }
}

/// The base's layer is there byte for byte, under ours; the size report
/// counts its uncompressed bytes, as gzip counts them.
fn the_base_layer_is_there_byte_for_byte(layout: &Path, base_manifest: &Value, report: &Value) {
    let oci = format!("oci:{}:1.0", layout.display());
    let ours = json(&ok(Command::new("skopeo").args(["inspect", "--raw", &oci])));
    let base_layers = base_manifest["layers"].as_array().unwrap();
    let our_layers = ours["layers"].as_array().unwrap();
    assert_eq!(our_layers.len(), base_layers.len() + 3, "{ours}");
    assert_eq!(our_layers[0]["digest"], base_layers[0]["digest"]);
    assert_eq!(our_layers[0]["size"], base_layers[0]["size"]);
    let base_blob = layout.join("blobs/sha256").join(
        base_layers[0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let gunzipped = ok(Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$1\" | wc -c")
        .arg("sh")
        .arg(&base_blob));
    assert_eq!(
        report[0]["layers"][0]["uncompressed"].as_u64(),
        gunzipped.trim().parse::<u64>().ok(),
        "{report}"
    );
}

/// The manifest's `org.opencontainers.image.base.name` and `base.digest`
/// (decision 0018) name the base and the digest it resolved to, as skopeo
/// reads them.
fn the_manifest_names_the_base(layout: &Path, name: &str, digest: &str) {
    let raw = json(&ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:1.0", layout.display()))));
    let a = &raw["annotations"];
    assert_eq!(a["org.opencontainers.image.base.digest"], digest, "{raw}");
    let base = a["org.opencontainers.image.base.name"].as_str().unwrap();
    assert!(base.starts_with(name), "{base}");
    assert_eq!(a["org.opencontainers.image.title"], "onbase", "{raw}");
}

/// The base's config is merged under ours: its env and labels stay, ours win.
fn the_base_config_is_merged_under_ours(layout: &Path) {
    let oci = format!("oci:{}:1.0", layout.display());
    let config = json(&ok(
        Command::new("skopeo").args(["inspect", "--config", &oci])
    ));
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("BASEVAR=from-base"), "{env}");
    assert!(
        env.contains("GREETING=hello") && !env.contains("overridden"),
        "{env}"
    );
    assert_eq!(config["config"]["Labels"]["from"], "base");
    assert_eq!(config["config"]["User"], "10001:10001");
}
