//! A real Docker engine for the tests: Debian's `dockerd` (moby 20.10),
//! started once per test binary as ../shared/ORACLES.md shows (its own
//! data-root and exec-root, vfs storage, no iptables, its socket in a
//! scratch directory), and stopped when the test binary exits.
//!
//! The test harness never drops statics, so the engine is started through
//! `setpriv --pdeathsig TERM` from a thread that lives as long as the
//! process: when the test binary exits (or dies), the kernel sends dockerd
//! SIGTERM, and dockerd stops its containers and its containerd. A test that
//! wants it stopped earlier drops a [`DockerdGuard`] of its own.
//!
//! The engine has no default bridge (`--bridge=none`, so it never touches
//! the host's `docker0`, which another engine may use) and takes its
//! networks from a pool picked per run; containers join [`NETWORK`], and
//! are reached only through ports published on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{ok, run, scratch, wait_until};

/// The user-defined network test containers join (the engine has no
/// default bridge).
pub const NETWORK: &str = "aelimg-test";

/// A running dockerd.
pub struct Dockerd {
    /// Its scratch directory: data-root, exec-root, socket, pid file, log.
    pub dir: PathBuf,
    /// Its API socket.
    pub socket: PathBuf,
    /// Its process ID.
    pub pid: u32,
}

impl Dockerd {
    /// `DOCKER_HOST` for this engine.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The docker CLI talking to this engine.
    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", self.host());
        c
    }

    /// Its log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Starts an engine in `dir`, its lifetime tied to the calling thread
    /// (SIGTERM when that thread ends); waits until `docker version` answers.
    fn start(dir: &Path) -> Self {
        let socket = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        // A pool of its own, so that two engines on this machine do not
        // hand out the same subnets.
        let octet = 18 + std::process::id() % 14;
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "TERM", "dockerd"])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--default-address-pool",
                &format!("base=172.{octet}.0.0/16,size=24"),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {cmd:?}: {e} (is docker.io installed? see .ci/run)")
        });
        let d = Self {
            dir: dir.to_path_buf(),
            socket,
            pid: child.id(),
        };
        // The child is reaped by nobody: it outlives this function on purpose.
        std::mem::forget(child);
        let started = Instant::now();
        wait_until(
            Duration::from_secs(60),
            || {
                d.socket.exists()
                    && d.docker()
                        .args(["version", "--format", "{{.Server.Version}}"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
            },
            || format!("dockerd did not answer; its log:\n{}", d.log()),
        );
        ok(d.docker().args(["network", "create", NETWORK]));
        eprintln!("dockerd answered in {:?}", started.elapsed());
        d
    }

    /// Stops it by its PID and waits for it to go.
    pub fn stop(&self) {
        let _ = run(Command::new("kill").arg(self.pid.to_string()));
        let proc = PathBuf::from(format!("/proc/{}", self.pid));
        let gone = super::poll(Duration::from_secs(30), || {
            // Zombie or gone: nobody reaps it, so a zombie counts as stopped.
            let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
            (stat.is_empty() || stat.contains(") Z")).then_some(())
        });
        if gone.is_none() {
            let _ = run(Command::new("kill")
                .args(["-KILL"])
                .arg(self.pid.to_string()));
        }
    }
}

/// The engine shared by every test of this binary.
pub fn shared() -> &'static Dockerd {
    static ENGINE: OnceLock<Dockerd> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = scratch("dockerd");
        let (tx, rx) = mpsc::channel();
        // The thread that starts dockerd lives until the process exits:
        // pdeathsig fires when the spawning thread ends.
        std::thread::spawn(move || {
            let d = std::panic::catch_unwind(|| Dockerd::start(&dir));
            let failed = d.is_err();
            let _ = tx.send(d);
            if !failed {
                loop {
                    std::thread::park();
                }
            }
        });
        match rx.recv().unwrap() {
            Ok(d) => d,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Stops an engine when dropped (for a test that starts its own).
pub struct DockerdGuard<'a>(pub &'a Dockerd);

impl Drop for DockerdGuard<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A container of the shared engine, removed (by ID) when dropped.
pub struct Container {
    /// Its ID.
    pub id: String,
}

impl Container {
    /// Runs `docker run -d ARGS` on the shared engine.
    pub fn run(args: &[&str]) -> Self {
        let id = ok(shared()
            .docker()
            .args(["run", "-d", "--network", NETWORK])
            .args(args))
        .trim()
        .to_string();
        Self { id }
    }

    /// Its logs, stdout and stderr.
    pub fn logs(&self) -> String {
        let out = run(shared().docker().args(["logs", &self.id]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `docker inspect` of it.
    pub fn inspect(&self) -> serde_json::Value {
        super::json(&ok(shared().docker().args(["inspect", &self.id])))[0].clone()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = run(shared().docker().args(["rm", "-f", &self.id]));
    }
}
