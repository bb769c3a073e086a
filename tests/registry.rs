//! `aelimg push`, `pull` and `login` against a real distribution registry
//! (Debian's docker-registry) on 127.0.0.1, judged by skopeo and by the
//! registry's own access log.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{aelimg, free_port, json, ok, run, scratch};

const USER: &str = "pusher";
const PASSWORD: &str = "s3cret-Pa55word";
/// The refresh (identity) token the test token service accepts.
const IDENTITY_TOKEN: &str = "identity-7f3c9a";

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost.
struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// A directory for skopeo's --cert-dir (holding only ca.crt).
    cert_dir: PathBuf,
}

fn make_tls(dir: &Path) -> Tls {
    let p = |n: &str| dir.join(n);
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let openssl = |args: &[&str]| ok(Command::new("openssl").args(args).current_dir(dir));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=aelimg test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    let cert_dir = p("certs.d");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(p("ca.crt"), cert_dir.join("ca.crt")).unwrap();
    let _ = s;
    Tls {
        ca: p("ca.crt"),
        cert: p("server.crt"),
        key: p("server.key"),
        cert_dir,
    }
}

/// A docker-registry process on 127.0.0.1, stopped by PID when dropped.
struct Registry {
    config: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Registry {
    fn start(dir: &Path, tls: Option<&Tls>, auth: bool) -> Self {
        Self::start_with(dir, tls, auth, None)
    }

    /// `token`: an `auth: {token: ...}` mapping to use instead of htpasswd.
    fn start_with(dir: &Path, tls: Option<&Tls>, auth: bool, token: Option<String>) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut http = format!("http: {{addr: 127.0.0.1:{port}, secret: aelimg-test-secret");
        if let Some(t) = tls {
            http.push_str(&format!(
                ", tls: {{certificate: {}, key: {}}}",
                t.cert.display(),
                t.key.display()
            ));
        }
        http.push('}');
        let mut config = format!(
            "version: 0.1\nlog: {{level: info}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n{http}\n",
            dir.join("data").display()
        );
        if auth {
            let line = ok(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
            std::fs::write(dir.join("htpasswd"), line.trim()).unwrap();
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: aelimg-test, path: {}}}}}\n",
                dir.join("htpasswd").display()
            ));
        }
        if let Some(t) = token {
            config.push_str(&format!("auth: {{token: {t}}}\n"));
        }
        let path = dir.join("registry.yml");
        std::fs::write(&path, config).unwrap();
        let mut r = Self {
            config: path,
            log: dir.join("registry.log"),
            port,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (apt install docker-registry)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "registry did not listen: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The access-log lines written so far.
    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\" ") && l.contains(" HTTP/1.1\" "))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Requests (access-log lines) that carry blob bytes or start an upload.
fn uploads(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| {
            l.contains("/blobs/uploads/")
                && (l.contains("\"PATCH ") || l.contains("\"PUT ") || l.contains("\"POST "))
                && !l.contains("mount=")
        })
        .collect()
}

/// Deterministic bytes that gzip cannot shrink.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A spec of two small two-platform images with no cargo binary (`alpha`,
/// and `beta` with a large incompressible file); built into `dir/images`.
fn build_fixture(dir: &Path, big: usize) -> PathBuf {
    let src = dir.join("spec");
    std::fs::create_dir_all(src.join("files")).unwrap();
    std::fs::write(src.join("files/hello.txt"), "hello\n").unwrap();
    std::fs::write(src.join("files/big.bin"), noise(big, 0x9E37_79B9_7F4A_7C15)).unwrap();
    std::fs::write(
        src.join("images.yaml"),
        r#"version: 1
images:
  - name: alpha
    tag: "1.0"
    platforms: [linux/amd64, linux/arm64]
    user: {name: app, uid: 10001}
    env: {GREETING: hello}
    entrypoint: [/bin/hello]
    layers:
      - name: files
        contents:
          - path: files/hello.txt
            dest: /srv/hello.txt
  - name: beta
    tag: "1.0"
    platforms: [linux/amd64, linux/arm64]
    user: {name: app, uid: 10001}
    entrypoint: [/bin/hello]
    layers:
      - name: big
        contents:
          - path: files/big.bin
            dest: /srv/big.bin
"#,
    )
    .unwrap();
    let out = dir.join("images");
    ok(aelimg()
        .args(["build", "-f"])
        .arg(src.join("images.yaml"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--output")
        .arg(format!("oci:{}", out.display())));
    out
}

/// The digest the layout's index.json names for its only tag.
fn layout_digest(layout: &Path) -> String {
    let idx = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    idx["manifests"][0]["digest"].as_str().unwrap().to_string()
}

/// A docker config directory holding the test user's credentials.
fn docker_config(dir: &Path, registry: &str, password: &str) -> PathBuf {
    let entry = serde_json::json!({"auth": b64(&format!("{USER}:{password}"))});
    docker_config_with(&dir.join("docker"), registry, entry)
}

/// A docker config directory `d` whose `auths` holds `entry` for `registry`.
fn docker_config_with(d: &Path, registry: &str, entry: serde_json::Value) -> PathBuf {
    std::fs::create_dir_all(d).unwrap();
    let cfg = serde_json::json!({"auths": {registry: entry}});
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    d.to_path_buf()
}

/// Standard base64, as docker config.json's `auth` holds USER:PASSWORD.
fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// aelimg with an isolated docker config and cache.
fn aelimg_in(dir: &Path, docker: &Path) -> Command {
    let mut c = aelimg();
    c.env("DOCKER_CONFIG", docker)
        .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
        .env("HOME", dir.join("home"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR");
    c
}

fn skopeo_inspect_raw(tls: &Tls, reference: &str) -> Vec<u8> {
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--cert-dir",
        tls.cert_dir.to_str().unwrap(),
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        &format!("docker://{reference}"),
    ]));
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `skopeo copy --all` of `reference` (with the test CA and credentials)
/// into a new OCI layout at `dest` under `tag`.
fn skopeo_pull(tls: &Tls, reference: &str, dest: &Path, tag: &str) {
    ok(Command::new("skopeo").args([
        "copy",
        "--all",
        "--src-cert-dir",
        tls.cert_dir.to_str().unwrap(),
        "--src-creds",
        &format!("{USER}:{PASSWORD}"),
        &format!("docker://{reference}"),
        &format!("oci:{}:{tag}", dest.display()),
    ]));
}

/// `sha256:…` of the manifest (or index) bytes skopeo reads for `reference`.
fn skopeo_digest(tls: &Tls, reference: &str) -> String {
    format!("sha256:{}", sha256_hex(&skopeo_inspect_raw(tls, reference)))
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Every blob of a layout: name → sha256 of its bytes.
fn blobs(layout: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, sha256_hex(&std::fs::read(e.path()).unwrap()))
        })
        .collect()
}

#[test]
fn push_with_tls_and_basic_auth_round_trips_skips_and_mounts() {
    let dir = scratch("registry-push");
    let tls = make_tls(&dir);
    let reg = Registry::start(&dir.join("reg"), Some(&tls), true);
    let host = format!("127.0.0.1:{}", reg.port);
    let images = build_fixture(&dir, 3 << 20);
    let docker = docker_config(&dir, &host, PASSWORD);
    let push = |target: &str| {
        let out = run(aelimg_in(&dir, &docker)
            .args([
                "push",
                target,
                "--json",
                "--chunk-size",
                "1MiB",
                "--tag",
                "extra",
            ])
            .arg("--from")
            .arg(format!("oci:{}", images.display()))
            .arg("--ca-file")
            .arg(&tls.ca)
            .arg("--digest-file")
            .arg(dir.join("digests.txt")));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "push {target} failed: {stderr}");
        assert!(!stderr.contains(PASSWORD), "the password leaked: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!stdout.contains(PASSWORD));
        json(&stdout)
    };

    // First push: every blob is uploaded, the large layer in chunks.
    let first = push(&format!("{host}/acme/{{name}}:1.2"));
    let lines = reg.log_lines();
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
    let digests = std::fs::read_to_string(dir.join("digests.txt")).unwrap();
    for name in ["alpha", "beta"] {
        let layout = images.join(name);
        let ours = layout_digest(&layout);
        // skopeo reads back the exact bytes of our index, under both tags.
        for tag in ["1.2", "extra"] {
            let raw = skopeo_inspect_raw(&tls, &format!("{host}/acme/{name}:{tag}"));
            assert_eq!(format!("sha256:{}", sha256_hex(&raw)), ours, "{name}:{tag}");
            let v = json(&String::from_utf8_lossy(&raw));
            assert_eq!(v["manifests"].as_array().unwrap().len(), 2, "two platforms");
        }
        assert!(
            digests.contains(&format!("{host}/acme/{name}@{ours}")),
            "{digests}"
        );
        // skopeo pulls it back with identical blobs.
        let back = dir.join(format!("back-{name}"));
        skopeo_pull(&tls, &format!("{host}/acme/{name}:1.2"), &back, "1.2");
        assert_eq!(
            blobs(&back),
            blobs(&layout),
            "{name}: blobs differ after a round trip"
        );
    }

    // Second push of the same images: no blob bytes, no upload at all.
    let before = reg.log_lines().len();
    let second = push(&format!("{host}/acme/{{name}}:1.2"));
    let lines = reg.log_lines();
    let up = uploads(&lines[before..]);
    assert!(up.is_empty(), "the second push uploaded: {up:#?}");
    for r in second.as_array().unwrap() {
        assert_eq!(r["uploaded_bytes"], 0, "{second}");
        assert_eq!(r["skipped"], r["blobs"], "{second}");
    }

    // A second repository of the same registry: blobs are mounted.
    let before = reg.log_lines().len();
    let third = push(&format!("{host}/other/{{name}}:1.2"));
    let lines = reg.log_lines();
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
            skopeo_digest(&tls, &format!("{host}/other/{name}:1.2")),
            layout_digest(&images.join(name))
        );
    }

    // aelimg pull gives back the same index.
    let pulled = dir.join("pulled");
    ok(aelimg_in(&dir, &docker)
        .args(["pull", &format!("{host}/acme/alpha:1.2")])
        .arg("--output")
        .arg(format!("oci:{}", pulled.display()))
        .arg("--ca-file")
        .arg(&tls.ca));
    assert_eq!(blobs(&pulled.join("alpha")), blobs(&images.join("alpha")));
    ok(Command::new("skopeo").args([
        "inspect",
        &format!("oci:{}:1.2", pulled.join("alpha").display()),
    ]));

    // build --push pushes what it builds.
    let out = ok(aelimg_in(&dir, &docker)
        .args(["build", "-f"])
        .arg(dir.join("spec/images.yaml"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--output")
        .arg(format!("oci:{}", dir.join("images2").display()))
        .args([
            "--image",
            "alpha",
            "--push",
            &format!("{host}/built/{{name}}"),
        ])
        .arg("--ca-file")
        .arg(&tls.ca));
    let ours = layout_digest(&images.join("alpha"));
    assert!(out.contains(&format!("{host}/built/alpha@{ours}")), "{out}");
    assert_eq!(
        skopeo_digest(&tls, &format!("{host}/built/alpha:1.0")),
        ours
    );
}

#[test]
fn login_writes_the_docker_config_and_a_wrong_password_fails_fast() {
    let dir = scratch("registry-login");
    let tls = make_tls(&dir);
    let reg = Registry::start(&dir.join("reg"), Some(&tls), true);
    let host = format!("127.0.0.1:{}", reg.port);
    let docker = dir.join("docker-login");
    let login = |password: &str| {
        let mut child = aelimg_in(&dir, &docker)
            .args(["login", &host, "-u", USER, "--password-stdin", "--ca-file"])
            .arg(&tls.ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };

    // A wrong password: exit 1, a clear 401 message, no retry storm, no secret.
    let before = reg.log_lines().len();
    let start = Instant::now();
    let out = login("wrong-password");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("aelimg login"), "says what to do: {stderr}");
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(10));
    let requests = reg.log_lines().len() - before;
    assert!(requests <= 4, "{requests} requests for one failed login");
    assert!(!docker.join("config.json").exists());

    // The right one is checked and written atomically, mode 0600.
    let out = login(PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = json(&std::fs::read_to_string(docker.join("config.json")).unwrap());
    assert_eq!(
        cfg["auths"][&host]["auth"],
        b64(&format!("{USER}:{PASSWORD}"))
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(docker.join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A push with what login wrote works; one with a wrong password in the
    // config fails fast with a 401 message.
    let images = build_fixture(&dir, 1024);
    let push = |docker: &Path| {
        run(aelimg_in(&dir, docker)
            .args(["push", &format!("{host}/acme/alpha"), "--image", "alpha"])
            .arg("--from")
            .arg(format!("oci:{}", images.display()))
            .arg("--ca-file")
            .arg(&tls.ca))
    };
    let out = push(&docker);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        skopeo_digest(&tls, &format!("{host}/acme/alpha:1.0")),
        layout_digest(&images.join("alpha"))
    );
    let bad = docker_config(&dir.join("bad"), &host, "not-the-password");
    let before = reg.log_lines().len();
    let start = Instant::now();
    let out = push(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401") && stderr.contains(USER), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(10));
    let requests = reg.log_lines().len() - before;
    assert!(requests <= 6, "{requests} requests for a refused push");

    // A configured credential helper that is missing is an error, not an
    // anonymous push.
    let helper = dir.join("helper");
    std::fs::create_dir_all(&helper).unwrap();
    std::fs::write(
        helper.join("config.json"),
        serde_json::json!({"credHelpers": {&host: "aelimg-test-missing"}}).to_string(),
    )
    .unwrap();
    let out = push(&helper);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("docker-credential-aelimg-test-missing"),
        "{stderr}"
    );

    // credsStore: a docker-credential-* program asked with the server name.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = dir.join("helper-asked.txt");
    let script = bin.join("docker-credential-aelimgtest");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat > {}\nprintf '{{\"ServerURL\":\"x\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
            asked.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(
        store.join("config.json"),
        serde_json::json!({"credsStore": "aelimgtest"}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(aelimg_in(&dir, &store)
        .env("PATH", &path)
        .args(["push", &format!("{host}/helper/alpha"), "--image", "alpha"])
        .arg("--from")
        .arg(format!("oci:{}", images.display()))
        .arg("--ca-file")
        .arg(&tls.ca));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&asked).unwrap(), host);

    // REGISTRY_AUTH_FILE (containers' auth.json), with no docker config.
    let auth_json = dir.join("auth.json");
    std::fs::write(
        &auth_json,
        serde_json::json!({"auths": {&host: {"auth": b64(&format!("{USER}:{PASSWORD}"))}}})
            .to_string(),
    )
    .unwrap();
    let out = run(aelimg_in(&dir, &dir.join("no-docker-config"))
        .env("REGISTRY_AUTH_FILE", &auth_json)
        .args([
            "push",
            &format!("{host}/authfile/alpha"),
            "--image",
            "alpha",
        ])
        .arg("--from")
        .arg(format!("oci:{}", images.display()))
        .arg("--ca-file")
        .arg(&tls.ca));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for repo in ["helper", "authfile"] {
        assert_eq!(
            skopeo_digest(&tls, &format!("{host}/{repo}/alpha:1.0")),
            layout_digest(&images.join("alpha"))
        );
    }
}

#[test]
fn plain_http_only_for_loopback_or_insecure_registries() {
    let dir = scratch("registry-http");
    let reg = Registry::start(&dir.join("reg"), None, false);
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
    let name = format!("registry.test:{}", reg.port);
    let before = reg.log_lines().len();
    let out = push(format!("{name}/x/alpha"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--insecure-registry"), "{stderr}");
    assert_eq!(reg.log_lines().len(), before, "no HTTP request may be made");

    let out = push(format!("{name}/x/alpha"), &["--insecure-registry", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Loopback by name needs no flag.
    let out = push(format!("127.0.0.1:{}/y/alpha", reg.port), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for repo in ["x", "y"] {
        let raw = ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://127.0.0.1:{}/{repo}/alpha:1.0", reg.port),
        ]));
        assert_eq!(
            format!("sha256:{}", sha256_hex(raw.as_bytes())),
            layout_digest(&images.join("alpha"))
        );
    }
}

/// Forwards 127.0.0.1:port to the registry, counting bytes sent upstream;
/// once `trigger` bytes have passed it calls `on_trigger` (once).
fn proxy(
    upstream: u16,
    trigger: u64,
    on_trigger: impl Fn() + Send + Sync + 'static,
) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    let fired = Arc::new(AtomicBool::new(false));
    let on_trigger = Arc::new(on_trigger);
    let f = fired.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c_r, mut s_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_r, mut c_w) = (server, client);
            let sent = sent.clone();
            let fired = f.clone();
            let on_trigger = on_trigger.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                loop {
                    let n = match c_r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if s_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                    if total >= trigger && !fired.swap(true, Ordering::SeqCst) {
                        on_trigger();
                    }
                }
                let _ = s_w.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_r, &mut c_w);
                let _ = c_w.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (port, fired)
}

#[test]
fn registry_killed_mid_push_and_restarted_push_completes_and_verifies() {
    let dir = scratch("registry-kill");
    let tls = make_tls(&dir);
    /// Stops the registry for good when the test ends, whatever happens
    /// (the proxy thread keeps a reference to it).
    struct Stop(Arc<Mutex<Registry>>, Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
            let mut r = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            r.kill();
        }
    }
    let reg = Arc::new(Mutex::new(Registry::start(
        &dir.join("reg"),
        Some(&tls),
        true,
    )));
    let stopped = Arc::new(AtomicBool::new(false));
    let _stop = Stop(reg.clone(), stopped.clone());
    let upstream = reg.lock().unwrap().port;
    let images = build_fixture(&dir, 8 << 20);
    let r2 = reg.clone();
    let (port, fired) = proxy(upstream, 2 << 20, move || {
        r2.lock().unwrap().kill();
        let r3 = r2.clone();
        let stopped = stopped.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let mut r = r3.lock().unwrap();
            if !stopped.load(Ordering::SeqCst) {
                r.spawn();
            }
        });
    });
    let host = format!("127.0.0.1:{port}");
    let docker = docker_config(&dir, &host, PASSWORD);
    let out = run(aelimg_in(&dir, &docker)
        .args([
            "push",
            &format!("{host}/acme/beta"),
            "--image",
            "beta",
            "--json",
        ])
        .args(["--chunk-size", "256KiB", "--jobs", "1", "--retries", "6"])
        .arg("--from")
        .arg(format!("oci:{}", images.display()))
        .arg("--ca-file")
        .arg(&tls.ca));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        fired.load(Ordering::SeqCst),
        "the registry was never killed"
    );
    assert!(
        out.status.success(),
        "the push did not survive a restart: {stderr}"
    );
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert!(report[0]["retried"].as_u64().unwrap() > 0, "{report}");
    // Judged by skopeo against the registry directly: the same index, and
    // every blob pulls back intact.
    let direct = format!("127.0.0.1:{upstream}");
    let layout = images.join("beta");
    assert_eq!(
        skopeo_digest(&tls, &format!("{direct}/acme/beta:1.0")),
        layout_digest(&layout)
    );
    let back = dir.join("back");
    skopeo_pull(&tls, &format!("{direct}/acme/beta:1.0"), &back, "1.0");
    assert_eq!(blobs(&back), blobs(&layout));
}

/// buildah with the flags this machine needs.
fn buildah() -> Command {
    let mut c = Command::new("buildah");
    c.args(["--storage-driver", "vfs"]);
    c
}

#[test]
fn an_image_on_a_registry_base_runs_with_the_bases_files_and_our_layers() {
    let dir = scratch("registry-base");
    let tls = make_tls(&dir);
    let reg = Registry::start(&dir.join("reg"), Some(&tls), true);
    let host = format!("127.0.0.1:{}", reg.port);
    let docker = docker_config(&dir, &host, PASSWORD);

    // A small busybox base, made and pushed by buildah.
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox-static (apt install busybox-static)");
    std::fs::write(dir.join("marker"), "from the base\n").unwrap();
    let ctr = ok(buildah().args(["from", "scratch"])).trim().to_string();
    struct Ctr(String);
    impl Drop for Ctr {
        fn drop(&mut self) {
            let _ = run(buildah().args(["rm", &self.0]));
        }
    }
    let _ctr = Ctr(ctr.clone());
    ok(buildah().args(["copy", &ctr, busybox, "/bin/busybox"]));
    ok(buildah()
        .args(["copy", &ctr])
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
        &ctr,
    ]));
    ok(buildah().args([
        "commit",
        "--format",
        "oci",
        "--cert-dir",
        tls.cert_dir.to_str().unwrap(),
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        &ctr,
        &format!("docker://{host}/base/busybox:1"),
    ]));
    let base_raw = skopeo_inspect_raw(&tls, &format!("{host}/base/busybox:1"));
    let base_digest = format!("sha256:{}", sha256_hex(&base_raw));
    let base_manifest = json(&String::from_utf8_lossy(&base_raw));

    // Our image on it, pinned by digest.
    let spec = dir.join("spec");
    std::fs::create_dir_all(spec.join("files")).unwrap();
    std::fs::write(spec.join("files/hello.txt"), "from our layer\n").unwrap();
    let write_spec = |base: &str| {
        std::fs::write(
            spec.join("images.yaml"),
            format!(
                r#"version: 1
images:
  - name: onbase
    tag: "1.0"
    base: {base}
    platforms: [linux/amd64]
    user: {{name: app, uid: 10001}}
    env: {{GREETING: hello}}
    entrypoint: [/bin/busybox, cat, /etc/base-marker, /srv/hello.txt]
    layers:
      - name: files
        contents:
          - path: files/hello.txt
            dest: /srv/hello.txt
"#
            ),
        )
        .unwrap();
    };
    let build = || {
        run(aelimg_in(&dir, &docker)
            .args(["build", "-f"])
            .arg(spec.join("images.yaml"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--ca-file")
            .arg(&tls.ca)
            .arg("--json")
            .arg("--output")
            .arg(format!("oci:{}", dir.join("out").display())))
    };
    // A digest that does not match is refused.
    write_spec(&format!("{host}/base/busybox:1@sha256:{}", "0".repeat(64)));
    let out = build();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write_spec(&format!("{host}/base/busybox:1@{base_digest}"));
    let out = build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(PASSWORD));
    let layout = dir.join("out/onbase");
    let oci = format!("oci:{}:1.0", layout.display());

    // The base's layer is there byte for byte, under ours.
    let ours = json(&ok(Command::new("skopeo").args(["inspect", "--raw", &oci])));
    let base_layers = base_manifest["layers"].as_array().unwrap();
    let our_layers = ours["layers"].as_array().unwrap();
    assert_eq!(our_layers.len(), base_layers.len() + 2, "{ours}");
    assert_eq!(our_layers[0]["digest"], base_layers[0]["digest"]);
    assert_eq!(our_layers[0]["size"], base_layers[0]["size"]);
    // The size report counts the base layer's uncompressed bytes, as gzip
    // counts them.
    let report = json(&String::from_utf8_lossy(&out.stdout));
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
    // The base's config is merged under ours.
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

    // It runs under podman with the base's files and ours.
    let out = ok(common::podman()
        .args(["run", "--rm"])
        .args(common::PODMAN_RUN_LIMITS)
        .arg(&oci));
    assert!(out.contains("from the base"), "{out}");
    assert!(out.contains("from our layer"), "{out}");
}

/// The token service of fixtures/registry/token_server.py, stopped by PID.
struct TokenServer(Child);

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bearer_tokens_are_scoped_per_repository_and_mounts_ask_for_the_source() {
    let dir = scratch("registry-bearer");
    let tls = make_tls(&dir);
    ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=aelimg token signer",
            "-keyout",
            "signer.key",
            "-out",
            "signer.crt",
        ])
        .current_dir(&dir));
    let token_port = free_port();
    let token_log = dir.join("tokens.log");
    let server = TokenServer(
        Command::new("python3")
            .arg(common::repo().join("fixtures/registry/token_server.py"))
            .arg(token_port.to_string())
            .arg(dir.join("signer.key"))
            .arg(dir.join("signer.crt"))
            .args([USER, PASSWORD])
            .arg(&token_log)
            .arg(IDENTITY_TOKEN)
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", token_port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "token server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = format!(
        "{{realm: \"http://127.0.0.1:{token_port}/token\", service: aelimg-test-registry, issuer: aelimg-test-issuer, rootcertbundle: {}}}",
        dir.join("signer.crt").display()
    );
    let reg = Registry::start_with(&dir.join("reg"), Some(&tls), false, Some(token));
    let host = format!("127.0.0.1:{}", reg.port);
    let images = build_fixture(&dir, 2 << 20);
    let push = |docker: &Path, target: &str| {
        run(aelimg_in(&dir, docker)
            .args([
                "push",
                target,
                "--image",
                "beta",
                "--json",
                "--chunk-size",
                "1MiB",
            ])
            .arg("--from")
            .arg(format!("oci:{}", images.display()))
            .arg("--ca-file")
            .arg(&tls.ca))
    };
    let docker = docker_config(&dir, &host, PASSWORD);
    let out = push(&docker, &format!("{host}/acme/beta:1.0"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        skopeo_digest(&tls, &format!("{host}/acme/beta:1.0")),
        layout_digest(&images.join("beta"))
    );
    let log = std::fs::read_to_string(&token_log).unwrap();
    assert!(log.contains("repository:acme/beta:pull,push"), "{log}");

    // A second repository, in a new process: blobs are mounted, the token
    // names the source repository's pull scope.
    let before = reg.log_lines().len();
    let out = push(&docker, &format!("{host}/mirror/beta:1.0"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report[0]["mounted"], report[0]["blobs"], "{report}");
    let lines = reg.log_lines();
    assert!(
        uploads(&lines[before..]).is_empty(),
        "{:#?}",
        &lines[before..]
    );
    let log = std::fs::read_to_string(&token_log).unwrap();
    assert!(log.contains("repository:acme/beta:pull\""), "{log}");
    assert_eq!(
        skopeo_digest(&tls, &format!("{host}/mirror/beta:1.0")),
        layout_digest(&images.join("beta"))
    );

    // A wrong password: the token service says no, once, and aelimg says so.
    let bad = docker_config(&dir.join("bad"), &host, "nope-nope");
    let before = std::fs::read_to_string(&token_log).unwrap().lines().count();
    let out = push(&bad, &format!("{host}/acme/beta:1.0"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("aelimg login"),
        "{stderr}"
    );
    assert!(!stderr.contains("nope-nope"));
    let after = std::fs::read_to_string(&token_log).unwrap().lines().count();
    assert!(after - before <= 2, "{} token requests", after - before);

    // An identity token (as `docker login` stores for OAuth registries) is
    // traded at the token service with a refresh-token grant, never sent as a
    // password.
    let identity = |token: &str, name: &str| {
        docker_config_with(
            &dir.join(name),
            &host,
            serde_json::json!({"identitytoken": token}),
        )
    };
    let out = push(
        &identity(IDENTITY_TOKEN, "ident"),
        &format!("{host}/ident/beta:1.0"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(IDENTITY_TOKEN));
    let grants: Vec<serde_json::Value> = std::fs::read_to_string(&token_log)
        .unwrap()
        .lines()
        .map(json)
        .filter(|l| l["grant"] == "refresh_token")
        .collect();
    assert!(
        grants.iter().any(|g| g["authorized"] == true
            && g["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "repository:ident/beta:pull,push")),
        "{grants:?}"
    );
    assert_eq!(
        skopeo_digest(&tls, &format!("{host}/ident/beta:1.0")),
        layout_digest(&images.join("beta"))
    );
    // A revoked identity token: a clear 401, the token nowhere in the output.
    let out = push(
        &identity("revoked-token-xyz", "ident-bad"),
        &format!("{host}/ident/beta:1.0"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("revoked-token-xyz"), "{stderr}");
    drop(server);
}

/// One HTTP/1.1 request as a tiny fake server sees it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    line: String,
    authorization: Option<String>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1: `answer` maps (request line, seen so
/// far) to (status line, headers, body). Requests are recorded.
fn fake_server(
    answer: impl Fn(&str, &[Seen]) -> (String, Vec<(String, String)>, Vec<u8>) + Send + Sync + 'static,
) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(answer);
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let seen = s.clone();
            let answer = answer.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                loop {
                    use std::io::BufRead as _;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || !line.contains("HTTP/1.") {
                        return;
                    }
                    let mut auth = None;
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap_or((h, ""));
                        match k.to_ascii_lowercase().as_str() {
                            "authorization" => auth = Some(v.trim().to_string()),
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let line = line.trim_end().to_string();
                    let (status, headers, body) = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(Seen {
                            at: Instant::now(),
                            line: line.clone(),
                            authorization: auth,
                        });
                        answer(&line, &seen)
                    };
                    let mut head =
                        format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
                    for (k, v) in headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    if conn.write_all(head.as_bytes()).is_err()
                        || (!line.starts_with("HEAD ") && conn.write_all(&body).is_err())
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
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
    let expected_auth = format!("Basic {}", b64(&format!("{USER}:{PASSWORD}")));
    let cd = config_digest.clone();
    let (port, seen) = fake_server(move |line, seen| {
        let authorized =
            seen.last().unwrap().authorization.as_deref() == Some(expected_auth.as_str());
        if !authorized {
            return (
                "401 Unauthorized".into(),
                vec![("WWW-Authenticate".into(), "Basic realm=\"fake\"".into())],
                vec![],
            );
        }
        if line.starts_with("GET /v2/ ") {
            return ("200 OK".into(), vec![], b"{}".to_vec());
        }
        if line.contains("/manifests/") {
            // The first manifest request is throttled for a second.
            let asked = seen
                .iter()
                .filter(|s| s.line.contains("/manifests/"))
                .count();
            if asked == 1 {
                return (
                    "429 Too Many Requests".into(),
                    vec![("Retry-After".into(), "2".into())],
                    vec![],
                );
            }
            return (
                "200 OK".into(),
                vec![(
                    "Content-Type".into(),
                    "application/vnd.oci.image.manifest.v1+json".into(),
                )],
                manifest.clone(),
            );
        }
        if line.contains(&format!("/blobs/{cd}")) {
            return (
                "307 Temporary Redirect".into(),
                vec![(
                    "Location".into(),
                    format!("http://127.0.0.1:{storage_port}/storage/{cd}"),
                )],
                vec![],
            );
        }
        ("404 Not Found".into(), vec![], vec![])
    });
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
    let raw = ok(Command::new("skopeo").args([
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

#[test]
fn pushes_both_default_images_with_name_in_the_reference() {
    let images = common::default_images("registry");
    let dir = scratch("registry-default");
    let tls = make_tls(&dir);
    let reg = Registry::start(&dir.join("reg"), Some(&tls), true);
    let host = format!("127.0.0.1:{}", reg.port);
    let docker = docker_config(&dir, &host, PASSWORD);
    let out = ok(aelimg_in(&dir, &docker)
        .args(["push", &format!("{host}/acme/{{name}}:1.2")])
        .arg("--from")
        .arg(format!("oci:{}", images.display()))
        .arg("--ca-file")
        .arg(&tls.ca));
    for name in ["ael", "native-tools"] {
        let ours = layout_digest(&images.join(name));
        assert!(out.contains(&format!("{host}/acme/{name}@{ours}")), "{out}");
        assert_eq!(
            skopeo_digest(&tls, &format!("{host}/acme/{name}:1.2")),
            ours,
            "{name}"
        );
    }
}
