//! A real distribution registry (Debian's docker-registry) on 127.0.0.1 for
//! the tests: a free port, an optional throwaway CA and TLS certificate,
//! htpasswd or token authentication, its access log, and the process stopped
//! by PID when dropped. With the client side the tests judge it by: skopeo
//! with the test CA and credentials, and aelimg with an isolated docker
//! config.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Daemon, aelimg, free_port, ok, run, wait_for_port};

/// The user htpasswd and the token service accept.
pub const USER: &str = "pusher";
/// `USER`'s password.
pub const PASSWORD: &str = "s3cret-Pa55word";
/// The refresh (identity) token the token service accepts.
pub const IDENTITY_TOKEN: &str = "identity-7f3c9a";

/// How long a registry or token service may take to listen.
const START: Duration = Duration::from_secs(15);

/// A self-signed certificate `dir/<stem>.crt` for `cn` and its key
/// `dir/<stem>.key`, valid two days: the tests' only certificate authority
/// (the registry's CA, the token service's signer).
pub fn self_signed(dir: &Path, cn: &str, stem: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (key, crt) = (format!("{stem}.key"), format!("{stem}.crt"));
    ok(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", &format!("/CN={cn}"), "-keyout", &key, "-out", &crt])
        .current_dir(dir));
    (dir.join(key), dir.join(crt))
}

/// A throwaway CA and a server certificate it signed for 127.0.0.1 and
/// localhost.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A directory for skopeo's and buildah's --cert-dir (holding only ca.crt).
    pub cert_dir: PathBuf,
}

impl Tls {
    pub fn new(dir: &Path) -> Self {
        let (_, ca) = self_signed(dir, "aelimg test CA", "ca");
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let openssl = |args: &[&str]| ok(Command::new("openssl").args(args).current_dir(dir));
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
        let cert_dir = dir.join("certs.d");
        std::fs::create_dir_all(&cert_dir).unwrap();
        std::fs::copy(&ca, cert_dir.join("ca.crt")).unwrap();
        Self {
            ca,
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            cert_dir,
        }
    }
}

/// The token service of fixtures/registry/token_server.py (a registry's
/// `auth: token`), granting every scope to USER:PASSWORD and to
/// IDENTITY_TOKEN; it logs each request's grant and scopes, one JSON line
/// each. Stopped by PID when dropped.
pub struct TokenService {
    _daemon: Daemon,
    port: u16,
    signer: PathBuf,
    pub log: PathBuf,
}

impl TokenService {
    pub fn start(dir: &Path) -> Self {
        let (key, signer) = self_signed(dir, "aelimg token signer", "signer");
        let port = free_port();
        let log = dir.join("tokens.log");
        let daemon = Daemon::spawn(
            Command::new("python3")
                .arg(super::repo().join("fixtures/registry/token_server.py"))
                .arg(port.to_string())
                .arg(&key)
                .arg(&signer)
                .args([USER, PASSWORD])
                .arg(&log)
                .arg(IDENTITY_TOKEN),
        );
        wait_for_port(port, START, || "the token server did not listen".into());
        Self {
            _daemon: daemon,
            port,
            signer,
            log,
        }
    }

    /// The log's lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The registry configuration's `auth: {token: ...}` value.
    fn registry_auth(&self) -> String {
        format!(
            "{{realm: \"http://127.0.0.1:{}/token\", service: aelimg-test-registry, issuer: aelimg-test-issuer, rootcertbundle: {}}}",
            self.port,
            self.signer.display()
        )
    }
}

/// Who the registry lets in.
pub enum Auth<'a> {
    /// Everyone.
    Anonymous,
    /// USER:PASSWORD, by htpasswd (HTTP basic).
    Htpasswd,
    /// Bearer tokens of this service.
    Token(&'a TokenService),
}

/// A docker-registry process on 127.0.0.1, stopped by PID when dropped.
pub struct Registry {
    config: PathBuf,
    log: PathBuf,
    port: u16,
    tls: Option<Tls>,
    anonymous: bool,
    daemon: Option<Daemon>,
}

impl Registry {
    /// Starts a registry storing under `dir` (with its CA in `dir/tls` when
    /// `tls`) and waits until it listens.
    pub fn start(dir: &Path, tls: bool, auth: Auth) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let tls = tls.then(|| Tls::new(&dir.join("tls")));
        let port = free_port();
        let mut http = format!("http: {{addr: 127.0.0.1:{port}, secret: aelimg-test-secret");
        if let Some(t) = &tls {
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
        let anonymous = matches!(auth, Auth::Anonymous);
        match auth {
            Auth::Anonymous => {}
            Auth::Htpasswd => {
                let line = ok(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
                std::fs::write(dir.join("htpasswd"), line.trim()).unwrap();
                config.push_str(&format!(
                    "auth: {{htpasswd: {{realm: aelimg-test, path: {}}}}}\n",
                    dir.join("htpasswd").display()
                ));
            }
            Auth::Token(service) => {
                config.push_str(&format!("auth: {{token: {}}}\n", service.registry_auth()));
            }
        }
        let path = dir.join("registry.yml");
        std::fs::write(&path, config).unwrap();
        let mut r = Self {
            config: path,
            log: dir.join("registry.log"),
            port,
            tls,
            anonymous,
            daemon: None,
        };
        r.restart();
        r
    }

    /// Stops the registry (if it runs) and starts it again on the same port
    /// and storage; waits until it listens.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.daemon = Some(Daemon::spawn(
            Command::new("docker-registry")
                .arg("serve")
                .arg(&self.config)
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        ));
        wait_for_port(self.port, START, || {
            format!(
                "the registry did not listen: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        });
    }

    /// Kills the registry process (SIGKILL, by PID).
    pub fn kill(&mut self) {
        self.daemon = None;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The test CA and certificates (the registry was started with TLS).
    pub fn tls(&self) -> &Tls {
        self.tls.as_ref().expect("a registry started with TLS")
    }

    /// The test CA's certificate, for aelimg's --ca-file.
    pub fn ca(&self) -> &Path {
        &self.tls().ca
    }

    /// The access-log lines written so far.
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\" ") && l.contains(" HTTP/1.1\" "))
            .map(str::to_string)
            .collect()
    }

    /// skopeo's flags for this registry: its CA (or no TLS verification for
    /// plain HTTP) and USER's credentials (unless anonymous).
    fn skopeo_flags(&self, cert_dir_flag: &str, creds_flag: &str) -> Vec<String> {
        let mut flags = match &self.tls {
            Some(t) => vec![cert_dir_flag.to_string(), t.cert_dir.display().to_string()],
            None => vec!["--tls-verify=false".to_string()],
        };
        if !self.anonymous {
            flags.extend([creds_flag.to_string(), format!("{USER}:{PASSWORD}")]);
        }
        flags
    }

    /// The manifest (or index) bytes skopeo reads for `HOST/<repo_ref>`.
    pub fn skopeo_raw(&self, repo_ref: &str) -> Vec<u8> {
        let out = run(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .args(self.skopeo_flags("--cert-dir", "--creds"))
            .arg(format!("docker://{}/{repo_ref}", self.host())));
        assert!(
            out.status.success(),
            "skopeo inspect {repo_ref}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `sha256:…` of the manifest (or index) bytes skopeo reads for
    /// `HOST/<repo_ref>`.
    pub fn skopeo_digest(&self, repo_ref: &str) -> String {
        format!("sha256:{}", sha256_hex(&self.skopeo_raw(repo_ref)))
    }

    /// `skopeo copy --all` of `HOST/<repo_ref>` into a new OCI layout at
    /// `dest` under `tag`.
    pub fn skopeo_pull(&self, repo_ref: &str, dest: &Path, tag: &str) {
        ok(Command::new("skopeo")
            .args(["copy", "--all"])
            .args(self.skopeo_flags("--src-cert-dir", "--src-creds"))
            .arg(format!("docker://{}/{repo_ref}", self.host()))
            .arg(format!("oci:{}:{tag}", dest.display())));
    }
}

/// Access-log lines that carry blob bytes or start an upload (a mount is
/// not an upload).
pub fn uploads(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| {
            l.contains("/blobs/uploads/")
                && (l.contains("\"PATCH ") || l.contains("\"PUT ") || l.contains("\"POST "))
                && !l.contains("mount=")
        })
        .collect()
}

/// aelimg with the docker config directory `docker` and a cache and home
/// of its own under `dir` (no credentials of the machine's user).
pub fn aelimg_in(dir: &Path, docker: &Path) -> Command {
    let mut c = aelimg();
    c.env("DOCKER_CONFIG", docker)
        .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
        .env("HOME", dir.join("home"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR");
    c
}

/// A docker config directory `dir/docker` holding USER's credentials with
/// `password` for `registry`.
pub fn docker_config(dir: &Path, registry: &str, password: &str) -> PathBuf {
    let entry = serde_json::json!({"auth": b64(&format!("{USER}:{password}"))});
    docker_config_with(&dir.join("docker"), registry, entry)
}

/// A docker config directory `d` whose `auths` holds `entry` for `registry`.
pub fn docker_config_with(d: &Path, registry: &str, entry: serde_json::Value) -> PathBuf {
    std::fs::create_dir_all(d).unwrap();
    let cfg = serde_json::json!({"auths": {registry: entry}});
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    d.to_path_buf()
}

/// Standard base64, as docker config.json's `auth` holds USER:PASSWORD.
pub fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The sha256 of `bytes`, in hex, as sha256sum computes it.
pub fn sha256_hex(bytes: &[u8]) -> String {
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
