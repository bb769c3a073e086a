//! The engine sink: `aelimg build --load` (and `--output docker-daemon` /
//! `--output podman`) puts each image into a local container engine through
//! the Docker Engine API's image load endpoint (`POST /images/load`), which
//! dockerd and podman's `system service` both speak. The image goes in as a
//! docker archive of the engine's own platform (asked with `GET /version`),
//! streamed from the blob store as it is written: no archive on disk, none
//! in memory. It is tagged `<name>:<tag>` as images.yaml says.
//!
//! The HTTP client is reqwest's blocking client over the engine's unix
//! socket (`ClientBuilder::unix_socket`), or plain HTTP for `tcp://`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::blocking::{Body, Client};
use serde::Deserialize;

use super::archive::{ArchiveContents, write_archive};
use super::{Artifact, Record, Sink};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{Document, Kind};
use crate::plan::Plan;
use crate::platform::Platform;
use crate::progress::Progress;

/// Which engine an endpoint is expected to be (for defaults and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// dockerd: `DOCKER_HOST`, else `/var/run/docker.sock`.
    Docker,
    /// podman's API service: `CONTAINER_HOST`, else
    /// `$XDG_RUNTIME_DIR/podman/podman.sock`, else `/run/podman/podman.sock`.
    Podman,
    /// Whichever answers (`--load`): `DOCKER_HOST`, else the first of
    /// docker's and podman's default sockets that exists.
    Any,
}

impl EngineKind {
    /// The `--output` prefix naming this kind.
    #[must_use]
    pub fn output_name(self) -> &'static str {
        match self {
            Self::Docker => "docker-daemon",
            Self::Podman => "podman",
            Self::Any => "engine",
        }
    }
}

/// Where an engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// `tcp://HOST:PORT`, plain HTTP (no TLS).
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp(h) => write!(f, "tcp://{h}"),
        }
    }
}

impl Endpoint {
    /// Parses `unix:///path`, `tcp://host:port` or a bare absolute path.
    ///
    /// # Errors
    /// For any other scheme (`ssh://`, `npipe://`, `https://`…), which
    /// aelimg does not speak.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix://") {
            if p.starts_with('/') {
                return Ok(Self::Unix(PathBuf::from(p)));
            }
        } else if let Some(h) = s.strip_prefix("tcp://") {
            let h = h.trim_end_matches('/');
            if !h.is_empty() && !h.contains('/') {
                return Ok(Self::Tcp(h.to_string()));
            }
        } else if s.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(s)));
        }
        Err(Error::Request(format!(
            "engine address `{s}`: expected unix:///PATH or tcp://HOST:PORT (aelimg speaks neither TLS nor ssh to an engine)"
        )))
    }
}

/// Picks the endpoint of an engine of `kind`: `explicit` when given, else
/// from the environment (`env` looks a variable up) and the default sockets
/// (`exists` tells whether a path exists).
///
/// # Errors
/// When an address is malformed, or (for [`EngineKind::Any`]) no variable
/// is set and no default socket exists.
pub fn resolve_endpoint(
    kind: EngineKind,
    explicit: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Endpoint> {
    if let Some(e) = explicit {
        return Endpoint::parse(e);
    }
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let docker_default = PathBuf::from("/var/run/docker.sock");
    let mut podman_defaults = Vec::new();
    if let Some(x) = var("XDG_RUNTIME_DIR") {
        podman_defaults.push(Path::new(&x).join("podman/podman.sock"));
    }
    podman_defaults.push(PathBuf::from("/run/podman/podman.sock"));
    match kind {
        EngineKind::Docker => Ok(match var("DOCKER_HOST") {
            Some(h) => Endpoint::parse(&h)?,
            None => Endpoint::Unix(docker_default),
        }),
        EngineKind::Podman => {
            if let Some(h) = var("CONTAINER_HOST") {
                return Endpoint::parse(&h);
            }
            let first = podman_defaults[0].clone();
            Ok(Endpoint::Unix(
                podman_defaults
                    .into_iter()
                    .find(|p| exists(p))
                    .unwrap_or(first),
            ))
        }
        EngineKind::Any => {
            if let Some(h) = var("DOCKER_HOST") {
                return Endpoint::parse(&h);
            }
            let mut tried = vec![docker_default];
            tried.extend(podman_defaults);
            match tried.iter().find(|p| exists(p)) {
                Some(p) => Ok(Endpoint::Unix(p.clone())),
                None => Err(Error::Engine(format!(
                    "no container engine to load into: DOCKER_HOST is not set and there is no socket at {}; start dockerd or `podman system service`, or set DOCKER_HOST=unix:///PATH",
                    tried
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
    }
}

/// What `GET /version` says (the fields aelimg reads).
#[derive(Debug, Deserialize)]
struct Version {
    #[serde(rename = "Os", default)]
    os: String,
    #[serde(rename = "Arch", default)]
    arch: String,
    #[serde(rename = "Version", default)]
    version: String,
    #[serde(rename = "Components", default)]
    components: Vec<Component>,
}

#[derive(Debug, Deserialize)]
struct Component {
    #[serde(rename = "Name", default)]
    name: String,
}

/// One line of the image load endpoint's JSON stream.
#[derive(Debug, Deserialize)]
struct LoadMessage {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(rename = "errorDetail", default)]
    error_detail: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

/// An engine's error body: `{"message": "..."}`.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
}

/// Why a socket could not be reached, as a user should read it.
fn unreachable(endpoint: &Endpoint, kind: EngineKind, e: &std::io::Error) -> Error {
    use std::io::ErrorKind;
    let how = match kind {
        EngineKind::Podman => {
            "start `podman system service --time=0 unix://PATH`, or set CONTAINER_HOST=unix://PATH"
        }
        _ => "start dockerd (or `podman system service`), or set DOCKER_HOST=unix://PATH",
    };
    Error::Engine(match e.kind() {
        ErrorKind::NotFound => {
            format!("no container engine at {endpoint}: no such socket; {how}")
        }
        ErrorKind::PermissionDenied => format!(
            "permission denied on {endpoint}: this user may not use that engine; run as a member of its group (`docker`), as root, or load into your own rootless podman (--output podman)"
        ),
        ErrorKind::ConnectionRefused => format!(
            "no container engine answers at {endpoint}: connection refused (a stale socket?); {how}"
        ),
        _ => format!("cannot connect to the container engine at {endpoint}: {e}"),
    })
}

/// Loads images into a container engine.
pub struct EngineSink {
    kind: EngineKind,
    endpoint: Endpoint,
    base: String,
    http: Client,
    platform: std::result::Result<Platform, String>,
    /// The engine's name and version, as it reports them.
    pub describe: String,
}

impl EngineSink {
    /// Connects to the engine at `endpoint` and asks for its platform
    /// (`GET /version`), so a missing, refused or foreign engine fails
    /// before anything is built.
    ///
    /// # Errors
    /// When no engine answers there, the socket is not permitted, or the
    /// answer is not an engine's.
    pub fn connect(kind: EngineKind, endpoint: Endpoint) -> Result<Self> {
        if let Endpoint::Unix(path) = &endpoint {
            // A plain connect first: its error says precisely what is wrong
            // (no socket, not permitted, nobody listening).
            std::os::unix::net::UnixStream::connect(path)
                .map_err(|e| unreachable(&endpoint, kind, &e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Engine(format!("TLS configuration failed: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let mut b = Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("aelimg/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // A load takes as long as the engine needs to unpack.
            .timeout(None::<Duration>);
        let base = match &endpoint {
            Endpoint::Unix(path) => {
                b = b.unix_socket(path.clone());
                // The host of the URL is not used over a unix socket.
                "http://localhost".to_string()
            }
            Endpoint::Tcp(h) => format!("http://{h}"),
        };
        let http = b
            .build()
            .map_err(|e| Error::Engine(format!("cannot build the HTTP client: {e}")))?;
        let resp = http
            .get(format!("{base}/version"))
            .timeout(Duration::from_secs(30))
            .send()
            .map_err(|e| {
                Error::Engine(format!(
                    "no container engine answers at {endpoint}: {}",
                    crate::error::chain(&e)
                ))
            })?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if !status.is_success() {
            return Err(Error::Engine(format!(
                "{endpoint}: GET /version answered HTTP {status}: is this a Docker Engine API socket? {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        let v: Version = serde_json::from_str(&text).map_err(|e| {
            Error::Engine(format!(
                "{endpoint}: GET /version did not answer as a Docker Engine API does ({e})"
            ))
        })?;
        let name = if v.components.iter().any(|c| c.name.contains("Podman")) {
            "podman"
        } else {
            "docker"
        };
        let os_arch = format!("{}/{}", v.os, v.arch);
        let platform = if v.os == "linux" {
            Platform::parse(&os_arch).map_err(|_| os_arch.clone())
        } else {
            Err(os_arch.clone())
        };
        Ok(Self {
            kind,
            describe: format!("{name} {} ({os_arch}) at {endpoint}", v.version),
            endpoint,
            base,
            http,
            platform,
        })
    }

    /// The platform the engine runs, when aelimg can build for it; else
    /// the engine's `os/arch`.
    ///
    /// # Errors
    /// The engine's `os/arch` when aelimg builds no image for it.
    pub fn platform(&self) -> std::result::Result<Platform, &str> {
        self.platform.as_ref().copied().map_err(String::as_str)
    }

    fn engine_platform(&self) -> Result<Platform> {
        self.platform().map_err(|p| {
            Error::Request(format!(
                "the engine at {} runs {p}, and aelimg builds images for linux/amd64 and linux/arm64 only",
                self.endpoint
            ))
        })
    }

    /// The manifest of `image` for the engine's platform.
    fn pick(&self, image: &Artifact<'_>, want: Platform) -> Result<(Document, Platform)> {
        let no_platform = |have: &[String]| {
            Error::Request(format!(
                "image {}:{} has no platform the engine at {} can run: it is built for {}, the engine runs {want}; add {want} to --platform or to the image's platforms in images.yaml",
                image.name,
                image.tag,
                self.endpoint,
                if have.is_empty() {
                    "an unknown platform".to_string()
                } else {
                    have.join(", ")
                }
            ))
        };
        match image.top.kind() {
            Kind::Manifest => {
                let have = match image.platform {
                    Some(p) => p,
                    None => config_platform(image)?,
                };
                if have == want {
                    Ok((image.top.clone(), have))
                } else {
                    Err(no_platform(&[have.to_string()]))
                }
            }
            Kind::Index => {
                let index = image.top.index()?;
                let mut have = Vec::new();
                for d in index.manifests() {
                    let Some(p) = d.platform() else { continue };
                    let name = format!("{}/{}", p.os(), p.architecture());
                    let parsed = Platform::parse(&name).ok();
                    have.push(parsed.map_or(name, |x| x.to_string()));
                    if parsed == Some(want) {
                        let digest = Digest::from_oci(d.digest())?;
                        let bytes = image.store.read(&digest)?;
                        let doc = Document::from_bytes(d.media_type().as_ref(), bytes);
                        if doc.digest != digest {
                            return Err(Error::Engine(format!(
                                "blob {digest} of {} does not match its digest",
                                image.name
                            )));
                        }
                        return Ok((doc, want));
                    }
                }
                Err(no_platform(&have))
            }
            Kind::Unknown => Err(Error::Request(format!(
                "{} has media type {}: an engine loads images",
                image.top.digest, image.top.media_type
            ))),
        }
    }

    /// POSTs the docker archive of `contents` to `/images/load`, streamed.
    fn load(&self, image: &Artifact<'_>, repo_tag: &str, contents: &ArchiveContents) -> Result<()> {
        let (reader, writer) = std::io::pipe()
            .map_err(|e| Error::io("cannot create a pipe for the image stream", e))?;
        let store = image.store;
        let (sent, answer) = std::thread::scope(|s| {
            let feeder = s.spawn(move || {
                let w = std::io::BufWriter::with_capacity(1 << 20, writer);
                write_archive(w, store, repo_tag, contents).and_then(|mut w| w.flush())
            });
            let answer = self
                .http
                .post(format!("{}/images/load?quiet=1", self.base))
                .header("Content-Type", "application/x-tar")
                .body(Body::new(reader))
                .send()
                .and_then(|r| {
                    let status = r.status();
                    r.text().map(|t| (status, t))
                });
            let sent = feeder
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the archive writer panicked")));
            (sent, answer)
        });
        let (status, text) = answer.map_err(|e| {
            Error::Engine(format!(
                "loading {repo_tag} into {} failed: {}",
                self.endpoint,
                crate::error::chain(&e)
            ))
        })?;
        if !status.is_success() {
            let msg = serde_json::from_str::<ApiError>(&text)
                .map(|e| e.message)
                .unwrap_or_else(|_| text.trim().chars().take(500).collect());
            return Err(Error::Engine(format!(
                "{} refused {repo_tag}: HTTP {status}: {msg}",
                self.endpoint
            )));
        }
        // The answer is a stream of JSON messages; a failure inside the
        // archive comes as an `error` message under HTTP 200.
        for line in serde_json::Deserializer::from_str(&text).into_iter::<LoadMessage>() {
            let Ok(m) = line else { break };
            if let Some(e) = m.error_detail.and_then(|d| d.message).or(m.error) {
                return Err(Error::Engine(format!(
                    "{} could not load {repo_tag}: {e}",
                    self.endpoint
                )));
            }
            let _ = m.stream;
        }
        sent.map_err(|e| Error::io(format!("cannot stream {repo_tag} to {}", self.endpoint), e))
    }
}

/// The platform in a single manifest's config.
fn config_platform(image: &Artifact<'_>) -> Result<Platform> {
    #[derive(Deserialize)]
    struct Cfg {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
    }
    let m = image.top.manifest()?;
    let d = Digest::from_oci(m.config().digest())?;
    let bytes = image.store.read(&d)?;
    let c: Cfg = serde_json::from_slice(&bytes)
        .map_err(|e| Error::json(format!("config {d} of {}", image.name), e))?;
    let name = format!("{}/{}", c.os, c.architecture);
    Platform::parse(&name).map_err(|_| {
        Error::Request(format!(
            "image {} is built for {name}, which no engine here runs",
            image.name
        ))
    })
}

impl Sink for EngineSink {
    fn check(&self, plan: &Plan) -> Result<()> {
        let want = self.engine_platform()?;
        for img in &plan.images {
            if !img.platforms.contains(&want) {
                let have: Vec<String> = img.platforms.iter().map(ToString::to_string).collect();
                return Err(Error::Request(format!(
                    "image {} has no platform the engine at {} can run: it is built for {}, the engine runs {want}; add {want} to --platform or to the image's platforms in images.yaml",
                    img.name,
                    self.endpoint,
                    have.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn write(&mut self, image: &Artifact<'_>, _progress: &dyn Progress) -> Result<Vec<Record>> {
        let want = self.engine_platform()?;
        let (manifest, platform) = self.pick(image, want)?;
        let contents = ArchiveContents::of(&manifest.manifest()?)?;
        let repo_tag = format!("{}:{}", image.name, image.tag);
        self.load(image, &repo_tag, &contents)?;
        let mut record = Record::at(
            format!(
                "{}:{repo_tag} ({platform}, image ID {}) at {}",
                match self.kind {
                    EngineKind::Podman => "podman",
                    _ => "docker-daemon",
                },
                &contents.config.hex()[..12],
                self.endpoint
            ),
            manifest.digest,
        );
        if contents.zstd > 0 {
            record.warnings.push(format!(
                "{repo_tag}: {} of its {} layers are zstd-compressed: Docker before 23 cannot load them",
                contents.zstd,
                contents.layers.len()
            ));
        }
        Ok(vec![record])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:///run/d.sock").unwrap(),
            Endpoint::Unix("/run/d.sock".into())
        );
        assert_eq!(
            Endpoint::parse("/run/d.sock").unwrap(),
            Endpoint::Unix("/run/d.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2375").unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".into())
        );
        for bad in [
            "ssh://me@host",
            "npipe:////./pipe/docker",
            "unix://rel",
            "tcp://",
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert!(e.is_request(), "{bad}: {e}");
        }
    }

    #[test]
    fn docker_host_wins_then_the_default_sockets() {
        let none = |_: &Path| false;
        let all = |_: &Path| true;
        let set = env(&[("DOCKER_HOST", "unix:///tmp/x.sock")]);
        for k in [EngineKind::Docker, EngineKind::Any] {
            assert_eq!(
                resolve_endpoint(k, None, &set, &none).unwrap(),
                Endpoint::Unix("/tmp/x.sock".into())
            );
        }
        let unset = env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]);
        assert_eq!(
            resolve_endpoint(EngineKind::Docker, None, &unset, &none).unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            resolve_endpoint(EngineKind::Podman, None, &unset, &none).unwrap(),
            Endpoint::Unix("/run/user/1000/podman/podman.sock".into())
        );
        let only_rootful = |p: &Path| p == Path::new("/run/podman/podman.sock");
        assert_eq!(
            resolve_endpoint(EngineKind::Podman, None, &unset, &only_rootful).unwrap(),
            Endpoint::Unix("/run/podman/podman.sock".into())
        );
        assert_eq!(
            resolve_endpoint(EngineKind::Any, None, &unset, &only_rootful).unwrap(),
            Endpoint::Unix("/run/podman/podman.sock".into())
        );
        assert_eq!(
            resolve_endpoint(EngineKind::Any, None, &unset, &all).unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        let e = resolve_endpoint(EngineKind::Any, None, &unset, &none).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/var/run/docker.sock"), "{msg}");
        assert!(msg.contains("/run/user/1000/podman/podman.sock"), "{msg}");
        assert!(!e.is_request());
        // An explicit address wins over everything.
        assert_eq!(
            resolve_endpoint(EngineKind::Podman, Some("unix:///a.sock"), &set, &none).unwrap(),
            Endpoint::Unix("/a.sock".into())
        );
    }

    #[test]
    fn unreachable_sockets_say_why() {
        let ep = Endpoint::Unix("/nowhere/docker.sock".into());
        let msg = |k| unreachable(&ep, EngineKind::Docker, &std::io::Error::from(k)).to_string();
        let m = msg(std::io::ErrorKind::NotFound);
        assert!(
            m.contains("unix:///nowhere/docker.sock") && m.contains("no such socket"),
            "{m}"
        );
        let m = msg(std::io::ErrorKind::PermissionDenied);
        assert!(
            m.contains("permission denied on unix:///nowhere/docker.sock"),
            "{m}"
        );
        let m = msg(std::io::ErrorKind::ConnectionRefused);
        assert!(m.contains("connection refused"), "{m}");
    }

    #[test]
    fn a_missing_socket_fails_on_connect() {
        let dir = tempfile::tempdir().unwrap();
        let ep = Endpoint::Unix(dir.path().join("none.sock"));
        let Err(e) = EngineSink::connect(EngineKind::Docker, ep) else {
            panic!("connected to nothing")
        };
        assert!(e.to_string().contains("no such socket"), "{e}");
        // A socket file nobody listens on.
        let path = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let Err(e) = EngineSink::connect(EngineKind::Docker, Endpoint::Unix(path)) else {
            panic!("connected to nothing")
        };
        assert!(e.to_string().contains("connection refused"), "{e}");
    }
}
