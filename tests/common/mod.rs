//! Helpers shared by the integration tests: running aelimg, building the
//! default images once per test binary, running the outside tools, and
//! waiting for them (on a condition, with a deadline: never a fixed sleep).
#![allow(dead_code)]

pub mod dockerd;
pub mod fake_http;
pub mod proxy;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command running the aelimg binary under test, from the repository root.
pub fn aelimg() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aelimg"));
    c.current_dir(repo());
    c
}

/// Runs a command and returns its output, panicking with its stderr if it
/// cannot be started (a missing outside tool is a failure, not a skip: CI
/// installs them all).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed? see .ci/run)"))
}

/// A background process of a test (a registry, a token service, a podman
/// service), killed by its PID and reaped when dropped.
pub struct Daemon(Child);

impl Daemon {
    /// Starts `cmd`, panicking if it cannot be started (as [`run`] does).
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(
            cmd.spawn().unwrap_or_else(|e| {
                panic!("cannot start {cmd:?}: {e} (is it installed? see .ci/run)")
            }),
        )
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.0.try_wait().unwrap().is_some()
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.0.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Calls `f` every 50 ms until it gives `Some`, for at most `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `cond` holds; after `timeout`, panics with `what()` (which
/// can read a log to say why).
pub fn wait_until(
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
    what: impl FnOnce() -> String,
) {
    if poll(timeout, || cond().then_some(())).is_none() {
        panic!("waited {timeout:?} in vain: {}", what());
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration, what: impl FnOnce() -> String) {
    wait_until(
        timeout,
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        what,
    );
}

/// The OCI architecture of the machine the tests run on (what podman runs
/// and skopeo picks out of an index here).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("the tests know no OCI architecture for a {other} host"),
    }
}

/// `linux/<host_arch()>`.
pub fn host_platform() -> String {
    format!("linux/{}", host_arch())
}

/// The host's platform as aelimg names it in messages and reports (arm64
/// with its variant, as in an index).
pub fn host_platform_name() -> &'static str {
    match host_arch() {
        "arm64" => "linux/arm64/v8",
        _ => "linux/amd64",
    }
}

/// Runs a command that must succeed and returns its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A scratch directory under target/ (kept for post-mortems, emptied first).
pub fn scratch(name: &str) -> PathBuf {
    let d = repo().join("target").join("test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Builds the default images of images/images.yaml once per test binary and
/// returns the output directory holding `ael/` and `native-tools/`.
pub fn default_images(binary: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch(&format!("images-{binary}"));
        ok(aelimg()
            .arg("build")
            .arg("--output")
            .arg(format!("oci:{}", dir.display())));
        dir
    })
}

/// podman with the flags this machine needs (see ORACLES.md).
pub fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args([
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--runtime",
        "runc",
    ]);
    c
}

/// The ulimit flags `podman run` needs here.
pub const PODMAN_RUN_LIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=4096:4096",
];

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Parses JSON.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A minimal HTTP/1.1 GET on 127.0.0.1; returns (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Reads a JSON blob of a layout by digest.
pub fn layout_blob(layout: &Path, digest: &str) -> serde_json::Value {
    json(&std::fs::read_to_string(layout.join("blobs/sha256").join(&digest[7..])).unwrap())
}

/// The platform manifests of `layout`'s `latest` tag, as skopeo reports the
/// top document (a manifest, or an index whose children are read from the
/// layout: skopeo 1.9 has no `oci:DIR@digest` syntax). Each with its architecture.
pub fn platform_manifests(layout: &Path) -> Vec<(String, serde_json::Value)> {
    let top = json(&ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:latest", layout.display()),
    ])));
    if top["mediaType"] == "application/vnd.oci.image.index.v1+json" {
        top["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["platform"]["architecture"].as_str().unwrap().to_string(),
                    layout_blob(layout, m["digest"].as_str().unwrap()),
                )
            })
            .collect()
    } else {
        let config = layout_blob(layout, top["config"]["digest"].as_str().unwrap());
        vec![(config["architecture"].as_str().unwrap().to_string(), top)]
    }
}

/// Copies one architecture of `layout:latest` into its own single-manifest
/// layout (umoci refuses a tag that points at an index).
pub fn single_platform(layout: &Path, arch: &str, dest: &Path) {
    ok(Command::new("skopeo").args([
        "copy",
        "--override-arch",
        arch,
        &format!("oci:{}:latest", layout.display()),
        &format!("oci:{}:latest", dest.display()),
    ]));
}

/// Copies one architecture of `layout:latest` out and unpacks it with umoci;
/// returns the bundle directory (its `rootfs/` and `config.json`).
pub fn unpack_platform(layout: &Path, arch: &str, work: &Path) -> PathBuf {
    std::fs::create_dir_all(work).unwrap();
    let single = work.join(format!("layout-{arch}"));
    single_platform(layout, arch, &single);
    let bundle = work.join(format!("bundle-{arch}"));
    ok(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:latest", single.display()),
        bundle.to_str().unwrap(),
    ]));
    bundle
}

/// The `name:` of every example workflow in images/workflows.
pub fn example_workflow_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("images/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("name:"))
                .unwrap_or_else(|| panic!("no name: in {}", p.display()))
                .trim()
                .trim_matches('"')
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// Whether `AELIMG_UPDATE_GOLDEN=1` asks the golden and snapshot tests to
/// rewrite their committed files instead of comparing with them.
pub fn update_golden() -> bool {
    std::env::var("AELIMG_UPDATE_GOLDEN").is_ok_and(|v| v.trim() == "1")
}

/// Compares `actual` with the committed golden file `rel` (relative to the
/// repository root), or rewrites it under `AELIMG_UPDATE_GOLDEN=1`. A
/// mismatch fails with a line diff (`-` committed, `+` now) and says how to
/// accept the change deliberately.
pub fn check_golden(rel: &str, actual: &str) {
    let path = repo().join(rel);
    if update_golden() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let old = std::fs::read_to_string(&path).ok();
        std::fs::write(&path, actual).unwrap();
        let what = match old {
            Some(o) if o == actual => "unchanged",
            Some(_) => "REWRITTEN (review the diff before committing)",
            None => "CREATED",
        };
        eprintln!("AELIMG_UPDATE_GOLDEN=1: {rel} {what}");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read golden file {rel} ({e}); create it with \
             AELIMG_UPDATE_GOLDEN=1 cargo test, then commit it"
        )
    });
    assert!(
        expected == actual,
        "{rel} differs from what the current code produces \
         (- committed, + now):\n{}\n\
         If this change is deliberate, rewrite the golden files with\n    \
         AELIMG_UPDATE_GOLDEN=1 cargo test --test golden --test plan_snapshot\n\
         and commit them with a message that says why the output changed.",
        line_diff(&expected, actual)
    );
}

/// A minimal line diff of two texts (longest common subsequence): changed
/// lines with `-`/`+`, unchanged ones left out except as `@@ line N` markers.
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out, mut in_hunk) = (0, 0, String::new(), false);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            (i, j, in_hunk) = (i + 1, j + 1, false);
            continue;
        }
        if !in_hunk {
            out.push_str(&format!("@@ line {}\n", i + 1));
            in_hunk = true;
        }
        if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    if old.ends_with('\n') != new.ends_with('\n') {
        out.push_str("(the final newline differs)\n");
    }
    out
}

/// `text` with every occurrence of the repository root's absolute path
/// replaced by `<repo>`, so snapshots do not depend on the checkout's path.
pub fn redact_repo(text: &str) -> String {
    let root = repo();
    let root = root.to_str().unwrap().trim_end_matches('/');
    text.replace(root, "<repo>")
}

/// A `cargo` that logs its arguments (one line per call) to a file and runs
/// the real cargo: put `bin` first on PATH and remove `CARGO` from the
/// environment (cargo_metadata prefers it), then read the log to see which
/// cargo commands ran. Returns (bin directory, log file).
pub fn cargo_spy(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("spy-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = ok(Command::new("sh").args(["-c", "command -v cargo"]));
    let log = dir.join("cargo-calls.log");
    let wrapper = bin.join("cargo");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.trim()
        ),
    )
    .unwrap();
    ok(Command::new("chmod").arg("+x").arg(&wrapper));
    (bin, log)
}

/// PATH with `bin` first.
pub fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}
