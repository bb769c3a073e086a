//! `--output docker-archive:DIR`, judged by `podman load` and by the real
//! docker CLI talking to podman's Docker API socket (see ORACLES.md).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Daemon, PODMAN_RUN_LIMITS, aelimg, free_port, host_platform, http_get, json, ok, podman, poll,
    run, scratch, wait_until,
};

/// A spec with one small image (no cargo binary) named `name`.
fn spec(dir: &Path, name: &str, platforms: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/hello.txt"), "hello from the archive\n").unwrap();
    let path = dir.join("images.yaml");
    std::fs::write(
        &path,
        format!(
            r#"version: 1
images:
  - name: {name}
    tag: "1.0"
    platforms: [{platforms}]
    user: {{name: app, uid: 10001}}
    env: {{GREETING: hello}}
    workdir: /srv
    entrypoint: [/bin/hello]
    layers:
      - name: files
        contents:
          - path: files/hello.txt
            dest: /srv/hello.txt
"#
        ),
    )
    .unwrap();
    path
}

/// The config digest of the only manifest of an OCI layout (the image ID
/// docker and podman give a loaded image).
fn config_digest(layout: &Path) -> String {
    let idx = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    let m = idx["manifests"][0]["digest"].as_str().unwrap();
    let manifest =
        json(&std::fs::read_to_string(layout.join("blobs/sha256").join(&m[7..])).unwrap());
    manifest["config"]["digest"].as_str().unwrap().to_string()
}

/// Removes a loaded tag from podman's store when dropped (by that name: the
/// same image may carry other tags, which stay).
struct LoadedImage(String);

impl Drop for LoadedImage {
    fn drop(&mut self) {
        let _ = run(podman().args(["rmi", &self.0]));
    }
}

/// `podman system service` on a socket of our own, stopped by PID.
struct Service {
    _daemon: Daemon,
    socket: PathBuf,
}

impl Service {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("podman.sock");
        let daemon = Daemon::spawn(
            podman()
                .args(["system", "service", "--time=0"])
                .arg(format!("unix://{}", socket.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_until(
            Duration::from_secs(20),
            || socket.exists(),
            || "podman service did not start".into(),
        );
        Self {
            _daemon: daemon,
            socket,
        }
    }

    fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", format!("unix://{}", self.socket.display()));
        c
    }
}

#[test]
fn podman_load_and_docker_load_accept_the_archive_with_its_tag() {
    let dir = scratch("archive-load");
    let name = "aelimg-archive-test";
    let file = spec(&dir.join("spec"), name, &host_platform());
    ok(aelimg()
        .args(["build", "-f"])
        .arg(&file)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--output")
        .arg(format!("docker-archive:{}", dir.join("archives").display()))
        .arg("--output")
        .arg(format!("oci:{}", dir.join("oci").display())));
    let tar = dir.join("archives").join(format!("{name}.tar"));
    assert!(tar.is_file());
    let id = config_digest(&dir.join("oci").join(name));

    // podman load
    let out = ok(podman().arg("load").arg("-i").arg(&tar));
    assert!(out.contains(&format!("{name}:1.0")), "{out}");
    let loaded = LoadedImage(format!("localhost/{name}:1.0"));
    let inspect = json(&ok(podman().args([
        "image",
        "inspect",
        &format!("{name}:1.0"),
    ])));
    assert_eq!(
        inspect[0]["Id"].as_str().map(|i| format!("sha256:{i}")),
        Some(id.clone())
    );
    let env = inspect[0]["Config"]["Env"].to_string();
    assert!(env.contains("GREETING=hello"), "{env}");
    assert_eq!(inspect[0]["Config"]["WorkingDir"], "/srv");
    assert_eq!(inspect[0]["User"], "10001:10001");
    drop(loaded);

    // the docker CLI, against podman's API socket
    let service = Service::start(&dir);
    let out = ok(service.docker().arg("load").arg("-i").arg(&tar));
    assert!(out.contains(&format!("{name}:1.0")), "{out}");
    let _loaded = LoadedImage(format!("localhost/{name}:1.0"));
    let inspect = json(&ok(service.docker().args([
        "image",
        "inspect",
        &format!("{name}:1.0"),
    ])));
    assert_eq!(inspect[0]["Id"].as_str(), Some(id.as_str()));
    assert!(
        inspect[0]["RepoTags"]
            .to_string()
            .contains(&format!("{name}:1.0")),
        "{inspect}"
    );
    assert!(
        inspect[0]["Config"]["Env"]
            .to_string()
            .contains("GREETING=hello")
    );
}

#[test]
fn several_platforms_and_no_platform_is_a_usage_error() {
    let dir = scratch("archive-platforms");
    let file = spec(&dir.join("spec"), "two", "linux/amd64, linux/arm64");
    let out = run(aelimg()
        .args(["build", "-f"])
        .arg(&file)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--output")
        .arg(format!("docker-archive:{}", dir.join("archives").display())));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--platform"), "{stderr}");
    assert!(stderr.contains("linux/arm64"), "{stderr}");
    assert!(!dir.join("archives").exists(), "nothing is written");

    // --platform picks one: the archive holds that platform's config.
    ok(aelimg()
        .args(["build", "-f"])
        .arg(&file)
        .args(["--platform", "linux/arm64"])
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--output")
        .arg(format!("docker-archive:{}", dir.join("archives").display())));
    let list = ok(Command::new("tar")
        .arg("-xOf")
        .arg(dir.join("archives/two.tar"))
        .arg("manifest.json"));
    let manifest = json(&list);
    let config = manifest[0]["Config"].as_str().unwrap().to_string();
    let cfg = json(&ok(Command::new("tar")
        .arg("-xOf")
        .arg(dir.join("archives/two.tar"))
        .arg(&config)));
    assert_eq!(cfg["architecture"], "arm64");
    assert_eq!(manifest[0]["RepoTags"][0], "two:1.0");
}

#[test]
fn the_loaded_ael_image_answers_health() {
    let dir = scratch("archive-ael");
    ok(aelimg()
        .args(["build", "--image", "ael", "--platform", &host_platform()])
        .arg("--output")
        .arg(format!("docker-archive:{}", dir.join("archives").display()))
        .arg("--output")
        .arg(format!("oci:{}", dir.join("oci").display())));
    let id = config_digest(&dir.join("oci/ael"));
    let service = Service::start(&dir);
    let out = ok(service
        .docker()
        .arg("load")
        .arg("-i")
        .arg(dir.join("archives/ael.tar")));
    assert!(out.contains("ael:latest"), "{out}");
    let _loaded = LoadedImage("localhost/ael:latest".into());
    let port = free_port();
    let cid = ok(podman().args(["run", "-d"]).args(PODMAN_RUN_LIMITS).args([
        "-p",
        &format!("127.0.0.1:{port}:8082"),
        &id[7..],
    ]))
    .trim()
    .to_string();
    let health = poll(Duration::from_secs(30), || {
        match http_get(port, "/health") {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    });
    let logs = run(podman().args(["logs", &cid]));
    let _ = run(podman().args(["rm", "-f", "-t", "2", &cid]));
    assert!(
        health.is_some(),
        "no /health answer: {}",
        String::from_utf8_lossy(&logs.stderr)
    );
}
