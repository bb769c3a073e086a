//! The committed production compose file, brought up with podman-compose
//! (PyPI 1.6) against podman: the second engine DOC-056's deployment has to
//! work with. The images go in as `aelimg build --output docker-archive`
//! and `podman load`, into a podman store of this test's own.
//!
//! Two things of this machine shape the test (../shared/ORACLES.md):
//! - podman runs health checks from systemd timers, and there is no systemd
//!   here, so the test runs `podman healthcheck run` itself until both
//!   services report healthy. podman-compose 1.6 also skips
//!   `depends_on: condition: service_healthy` on podman 4.3 (it needs
//!   `podman wait --condition=healthy`), so ael may start before
//!   native-tools answers; its supervisor connects once it does.
//! - containers need lower open-files and process limits than the
//!   defaults: an override file adds `ulimits`, as `PODMAN_RUN_LIMITS` does
//!   for `podman run`.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{aelimg, free_port, host_platform, http_get, json, ok, run, scratch, wait_until};

/// A podman store and a podman-compose project in a scratch directory:
/// the compose file, copies of images/config and images/workflows, the
/// secret files and a wrapper that gives podman this machine's flags and
/// a private store. `down -v` and the store removed when dropped.
struct Project {
    dir: PathBuf,
    /// podman's root and runroot (under /tmp: podman refuses a runroot
    /// path over 50 bytes).
    _store: tempfile::TempDir,
    name: String,
    port: u16,
}

impl Project {
    fn new() -> Self {
        let dir = scratch("podman-compose");
        let store = tempfile::Builder::new()
            .prefix("aelimg-pc-")
            .tempdir()
            .unwrap();
        let wrapper = dir.join("podman");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec podman --root '{root}' --runroot '{run}' --storage-driver vfs \
                 --cgroup-manager cgroupfs --runtime runc \"$@\"\n",
                root = store.path().join("root").display(),
                run = store.path().join("run").display(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let project = dir.join("project");
        for sub in ["config", "workflows"] {
            let to = project.join("images").join(sub);
            std::fs::create_dir_all(&to).unwrap();
            for e in std::fs::read_dir(common::repo().join("images").join(sub)).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
        std::fs::copy(
            common::repo().join("docker-compose.yaml"),
            project.join("docker-compose.yaml"),
        )
        .unwrap();
        let secrets = project.join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        for (name, value) in [
            ("ael_token", "ael-5ecret-token"),
            ("native_tools_token", "nt-5ecret-token"),
        ] {
            std::fs::write(secrets.join(name), value).unwrap();
            std::fs::set_permissions(secrets.join(name), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        let limits = "    ulimits: {nofile: {soft: 20000, hard: 20000}, nproc: 4096}\n";
        std::fs::write(
            project.join("limits.yaml"),
            format!("services:\n  ael:\n{limits}  native-tools:\n{limits}"),
        )
        .unwrap();
        Self {
            dir,
            _store: store,
            name: format!("aelimgpc{}", std::process::id()),
            port: free_port(),
        }
    }

    /// podman with this machine's flags and the project's store.
    fn podman(&self) -> Command {
        Command::new(self.dir.join("podman"))
    }

    fn compose(&self) -> Command {
        let mut c = Command::new("podman-compose");
        c.current_dir(self.dir.join("project"))
            .env("AEL_PORT", format!("127.0.0.1:{}", self.port))
            .arg("--podman-path")
            .arg(self.dir.join("podman"))
            .args(["-p", &self.name])
            .args(["-f", "docker-compose.yaml", "-f", "limits.yaml"]);
        c
    }

    /// podman-compose names containers `<project>_<service>_1`.
    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.name)
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for s in ["native-tools", "ael"] {
            let out = run(self.podman().args(["logs", &self.container(s)]));
            all += &format!(
                "--- {s}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        all
    }

    /// Runs one health probe of `service` (the compose file's own exec-form
    /// check, as podman stored it) and returns whether it passed.
    fn probe(&self, service: &str) -> bool {
        run(self
            .podman()
            .args(["healthcheck", "run", &self.container(service)]))
        .status
        .success()
    }

    fn health(&self, service: &str) -> String {
        let out = run(self.podman().args([
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            &self.container(service),
        ]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `up -d`, then probes both services until podman reports them healthy.
    fn up(&self) {
        let t = Instant::now();
        ok(self.compose().args(["up", "-d"]));
        wait_until(
            Duration::from_secs(60),
            || self.probe("native-tools") && self.probe("ael"),
            || format!("the services never became healthy; logs:\n{}", self.logs()),
        );
        for s in ["native-tools", "ael"] {
            assert_eq!(self.health(s), "healthy", "{s}");
        }
        eprintln!("{}: up and healthy in {:?}", self.name, t.elapsed());
    }

    fn exec(&self, args: &[&str]) -> String {
        ok(self.compose().args(["exec", "-T", "ael"]).args(args))
    }

    fn runs(&self) -> serde_json::Value {
        json(&self.exec(&["ael", "runs", "list", "--json"]))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // The containers go first; the vfs store (plain files) goes with
        // the temporary directory after this.
        let _ = run(self.compose().args(["down", "-v", "-t", "1"]));
    }
}

/// Loads both default images into the project's podman store from the
/// docker archives aelimg writes (the release payload the rest of the
/// suite builds; cargo finds it fresh).
fn load_images(p: &Project) {
    let archives = p.dir.join("archives");
    ok(aelimg()
        .args(["build", "--quiet", "--platform", &host_platform()])
        .arg("--output")
        .arg(format!("docker-archive:{}", archives.display())));
    for image in ["ael", "native-tools"] {
        let out = ok(p
            .podman()
            .arg("load")
            .arg("-i")
            .arg(archives.join(format!("{image}.tar"))));
        assert!(out.contains(&format!("localhost/{image}:latest")), "{out}");
    }
}

/// Tar stream of the stopped ael container's /app/data, as README's
/// operations section backs it up.
fn backup(p: &Project, to: &Path) {
    ok(p.compose().args(["stop", "ael"]));
    let out = run(p
        .podman()
        .args(["cp", &format!("{}:/app/data/.", p.container("ael")), "-"]));
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(to, &out.stdout).unwrap();
}

/// podman-compose runs the production file: both services healthy by their
/// exec-form checks (no curl, no shell), the CLI lists the examples, a
/// workflow writes a file through the native-tools service, the hardening
/// is applied, `down` is prompt, the run history outlives `down` and `up`,
/// and README's backup and restore commands give the same history back
/// after `down -v`.
#[test]
fn the_production_compose_file_runs_under_podman_compose() {
    let p = Project::new();
    load_images(&p);
    p.up();

    let list = p.exec(&["ael", "workflows", "list"]);
    for n in common::example_workflow_names() {
        assert!(list.contains(&n), "{n} missing from:\n{list}");
    }
    for service in ["ael", "native-tools"] {
        let i = &json(&ok(p.podman().args(["inspect", &p.container(service)])))[0];
        assert_eq!(i["HostConfig"]["ReadonlyRootfs"], true, "{service}");
        assert_eq!(i["Config"]["User"], "10001:10001", "{service}");
        assert!(
            !i["Config"]["Env"].to_string().contains("5ecret"),
            "{service}: a secret in the environment"
        );
    }
    let (status, body) = http_get(p.port, "/health").unwrap();
    assert_eq!(status, 200, "{body}");
    let health = json(&body);
    assert_eq!(
        health["tool_servers"]["native"]["state"], "connected",
        "{health}"
    );

    // Each run resolves both service names afresh (a new ael process, new
    // connections). Under podman, musl's resolver races aardvark-dns
    // against the host's nameserver, which does not know them; before
    // resolve_retry, about one run in six failed here (decision 0022).
    let mut run_id = String::new();
    for _ in 0..5 {
        let record = json(&p.exec(&[
            "ael",
            "workflows",
            "run",
            "fetch-and-save",
            "-i",
            "url=http://ael:8082/health",
            "-i",
            "dest=/app/data/from-podman-compose.json",
            "--json",
        ]));
        assert_eq!(record["status"], "succeeded", "{record}");
        run_id = record["run_id"].as_str().unwrap().to_string();
    }
    let copied = p.dir.join("copied.json");
    ok(p.podman()
        .arg("cp")
        .arg(format!(
            "{}:/app/data/from-podman-compose.json",
            p.container("native-tools")
        ))
        .arg(&copied));
    let saved = std::fs::read_to_string(&copied).unwrap();
    assert!(saved.contains("\"tool_servers\""), "{saved}");

    let t = Instant::now();
    ok(p.compose().arg("down"));
    let took = t.elapsed();
    eprintln!("podman-compose down took {took:?}");
    assert!(took < Duration::from_secs(8), "down took {took:?}");
    p.up();
    let runs = p.runs();
    assert!(
        runs.to_string().contains(&run_id),
        "run {run_id} lost across down/up: {runs}"
    );

    let tar = p.dir.join("ael-data.tar");
    backup(&p, &tar);
    ok(p.compose().args(["down", "-v", "-t", "1"]));
    p.up();
    assert!(
        !p.runs().to_string().contains(&run_id),
        "down -v kept the volume"
    );
    ok(p.compose().args(["stop", "ael"]));
    ok(p.podman()
        .args(["cp", "-", &format!("{}:/app/data", p.container("ael"))])
        .stdin(std::fs::File::open(&tar).unwrap()));
    p.up();
    assert_eq!(p.runs(), runs, "restored history");
    let (_, body) = http_get(p.port, "/health").unwrap();
    assert_eq!(json(&body)["data_dir"]["writable"], true, "{body}");
}
