//! The raw `images.yaml` model: the file exactly as written.
//!
//! Nothing else in aelimg reads YAML. Every struct denies unknown fields, and
//! every value that a later check may reject is kept as a [`Spanned`] value, so
//! that an error can name the file, the line and the column where it was
//! written. Checks that need no other context (ports, durations, modes, sizes)
//! run while deserializing, so serde-saphyr attaches the location itself.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer};
pub use serde_saphyr::Spanned;

use crate::error::{Error, Located};
pub use crate::units::{ByteSize, Duration};

/// The whole `images.yaml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Schema version; only `1` exists.
    #[serde(default = "default_version")]
    pub version: Spanned<u32>,
    /// The directory `path:` sources are relative to and must stay inside,
    /// relative to this file's directory (default: that directory). Naming
    /// one is how a spec reaches files outside its own directory.
    #[serde(default)]
    pub context: Option<Spanned<String>>,
    /// The images to build, in order.
    pub images: Vec<ImageSpec>,
}

fn default_version() -> Spanned<u32> {
    Spanned::new(
        1,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// One image as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Image name: the layout directory and the default repository name.
    pub name: Spanned<String>,
    /// Tag written as `org.opencontainers.image.ref.name` (default `latest`).
    #[serde(default)]
    pub tag: Option<Spanned<String>>,
    /// Base image: `scratch` (default) or `REGISTRY/REPO:TAG[@sha256:…]`.
    #[serde(default)]
    pub base: Option<Spanned<String>>,
    /// Platforms to build (buildx syntax); default: the host's.
    #[serde(default)]
    pub platforms: Vec<Spanned<String>>,
    /// The non-root user the image runs as.
    pub user: Spanned<UserSpec>,
    /// Working directory (absolute).
    #[serde(default)]
    pub workdir: Option<Spanned<String>>,
    /// Environment baked into the image config.
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
    /// Exposed ports, as `8082` or `"8082/tcp"`.
    #[serde(default)]
    pub ports: Vec<Spanned<Port>>,
    /// Volume mount points (absolute); created and owned by the user.
    #[serde(default)]
    pub volumes: Vec<Spanned<String>>,
    /// Entrypoint, exec form.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Default arguments, exec form.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Image config labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Signal that stops the container (e.g. `SIGTERM`).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Docker-style health check.
    #[serde(default)]
    pub healthcheck: Option<HealthcheckSpec>,
    /// Largest allowed size per platform, uncompressed (what `docker images`
    /// and `podman images` show), e.g. `500MB`.
    #[serde(default)]
    pub size_limit: Option<Spanned<ByteSize>>,
    /// Write a CA bundle to `/etc/ssl/certs/ca-certificates.crt` (default false).
    #[serde(default)]
    pub ca_certificates: bool,
    /// The image's own layers, in order, above the synthesized root layer.
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
}

/// The user an image runs as.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Login name written to /etc/passwd.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Numeric group id (default: the uid).
    #[serde(default)]
    pub gid: Option<u32>,
    /// Group name written to /etc/group (default: the user name).
    #[serde(default)]
    pub group: Option<String>,
    /// Home directory (default `/home/<name>`); created and owned by the user.
    #[serde(default)]
    pub home: Option<String>,
    /// Allow uid 0: an image that runs as root must say so.
    #[serde(default)]
    pub allow_root: bool,
}

/// A Docker health check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckSpec {
    /// Probe command, exec form (run as `CMD`).
    pub test: Vec<String>,
    /// Time between probes.
    #[serde(default)]
    pub interval: Option<Duration>,
    /// Time a probe may take.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Failures in a row before the container is unhealthy.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Grace period after start.
    #[serde(default)]
    pub start_period: Option<Duration>,
}

/// One layer of an image.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    /// Name shown in the size report and the image history.
    pub name: Spanned<String>,
    /// What goes into the layer.
    pub contents: Vec<ContentSpec>,
}

/// One source of files in a layer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentSpec {
    /// A binary of a cargo package of this workspace.
    #[serde(default)]
    pub cargo: Option<Spanned<CargoSource>>,
    /// A file or directory, relative to the directory of images.yaml.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// Absolute destination in the image.
    pub dest: Spanned<String>,
    /// File mode as an octal string, e.g. `"0755"`.
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// Let `mode` carry the setuid, setgid or sticky bit (`"4755"`): an
    /// image that holds such a file must say so.
    #[serde(default)]
    pub setuid: bool,
    /// Owner: `root` (default), `user` (the image's user) or `UID:GID`.
    #[serde(default)]
    pub owner: Option<Spanned<Owner>>,
    /// Files of this source that the built-in secret deny-list refuses but
    /// that belong in the image (gitignore patterns relative to the
    /// context, e.g. `.env.example`). Each must match such a file.
    #[serde(default)]
    pub allow_secrets: Vec<Spanned<String>>,
    /// Let this entry replace what a lower layer of the image holds at the
    /// same path (`/etc/passwd`, another layer's file); without it a path
    /// in two layers of an image is refused.
    #[serde(default, rename = "override")]
    pub replace: bool,
}

/// A cargo binary source: `cargo: ael` or `cargo: {package: ael, bin: ael}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoSource {
    /// Package name.
    pub package: String,
    /// Binary target name (default: the package name).
    pub bin: String,
}

impl<'de> Deserialize<'de> for CargoSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Short(String),
            Long(Long),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            package: String,
            #[serde(default)]
            bin: Option<String>,
        }
        match Raw::deserialize(d).map_err(|_| {
            de::Error::custom(
                "expected a package name or a map {package: NAME, bin: NAME} for `cargo`",
            )
        })? {
            Raw::Short(package) => Ok(Self {
                bin: package.clone(),
                package,
            }),
            Raw::Long(l) => Ok(Self {
                bin: l.bin.unwrap_or_else(|| l.package.clone()),
                package: l.package,
            }),
        }
    }
}

/// A TCP or UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    /// Port number, 1..=65535.
    pub number: u16,
    /// `tcp` or `udp`.
    pub udp: bool,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.number,
            if self.udp { "udp" } else { "tcp" }
        )
    }
}

impl Port {
    /// Parses `8082`, `8082/tcp` or `53/udp`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (num, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            other => return Err(format!("expected protocol tcp or udp, found `{other}`")),
        };
        let number: u32 = num
            .trim()
            .parse()
            .map_err(|_| format!("expected a port number 1-65535, found `{s}`"))?;
        Self::new(number, udp)
    }

    fn new(number: u32, udp: bool) -> Result<Self, String> {
        match u16::try_from(number) {
            Ok(n) if n > 0 => Ok(Self { number: n, udp }),
            _ => Err(format!("expected a port number 1-65535, found {number}")),
        }
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(i64),
            Str(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            de::Error::custom("expected a port: a number 1-65535 or a string like \"8082/tcp\"")
        })? {
            Raw::Num(n) => {
                Port::new(u32::try_from(n).unwrap_or(u32::MAX), false).map_err(de::Error::custom)
            }
            Raw::Str(s) => Port::parse(&s).map_err(de::Error::custom),
        }
    }
}

/// A file mode in octal, as written: `0755`, `"0644"` or `0o755`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The scalar is read as written, so `0755` and `"0755"` both mean octal 755.
        let expected = "expected an octal file mode such as 0755 or 0644";
        let s = String::deserialize(d).map_err(|_| de::Error::custom(expected))?;
        let digits = s.strip_prefix("0o").unwrap_or(&s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(Self(m)),
            _ => Err(de::Error::custom(format!("{expected}, found \"{s}\""))),
        }
    }
}

/// Who owns an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// uid 0, gid 0.
    Root,
    /// The image's user.
    User,
    /// Explicit ids.
    Ids(u32, u32),
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expected = "expected `root`, `user` or `UID:GID` for owner";
        let s = String::deserialize(d).map_err(|_| de::Error::custom(expected))?;
        match s.as_str() {
            "root" => Ok(Self::Root),
            "user" => Ok(Self::User),
            other => other
                .split_once(':')
                .and_then(|(u, g)| Some(Self::Ids(u.parse().ok()?, g.parse().ok()?)))
                .ok_or_else(|| de::Error::custom(format!("{expected}, found \"{s}\""))),
        }
    }
}

/// The parsed file together with where it came from.
#[derive(Debug)]
pub struct LoadedSpec {
    /// The file as given on the command line.
    pub path: PathBuf,
    /// The directory relative paths in the file resolve against.
    pub dir: PathBuf,
    /// The parsed content.
    pub file: SpecFile,
}

impl LoadedSpec {
    /// An error at the location of a spanned value of this file.
    pub fn error_at<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> Error {
        Error::Spec(Located {
            file: self.path.clone(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            message: message.into(),
        })
    }
}

/// Reads and parses an `images.yaml` file.
pub fn load(path: &Path) -> Result<LoadedSpec, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        context: format!("cannot read {}", path.display()),
        source: e,
    })?;
    let file = parse(path, &text)?;
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(LoadedSpec {
        path: path.to_path_buf(),
        dir,
        file,
    })
}

/// Parses the text of an `images.yaml` file; `path` is used in errors only.
pub fn parse(path: &Path, text: &str) -> Result<SpecFile, Error> {
    // serde-saphyr's default budget bounds alias expansion, depth and size.
    let file: SpecFile = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        Error::Spec(Located {
            file: path.to_path_buf(),
            line,
            column,
            message: saphyr_message(&e),
        })
    })?;
    if file.version.value != 1 {
        return Err(Error::Spec(Located {
            file: path.to_path_buf(),
            line: file.version.referenced.line(),
            column: file.version.referenced.column(),
            message: format!("unsupported version {}: expected 1", file.version.value),
        }));
    }
    Ok(file)
}

/// The message of a serde-saphyr error without its rendered snippet and
/// location suffix, which aelimg prints in its own `file:line:col:` form.
fn saphyr_message(e: &serde_saphyr::Error) -> String {
    let rendered = e.without_snippet().to_string();
    let first = rendered.lines().next().unwrap_or("invalid YAML").trim();
    // serde-saphyr appends " at line L column C"; we print the location ourselves.
    let trimmed = match first.rfind(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    friendly(trimmed.trim_start_matches("error: "))
}

/// Rewrites serde-saphyr's terse type errors so they say what was expected.
fn friendly(msg: &str) -> String {
    let int = ["invalid u8", "invalid u16", "invalid u32", "invalid u64"];
    if int.contains(&msg) {
        return format!("{msg}: expected a non-negative integer");
    }
    if let Some(key) = msg.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key).trim();
        return format!("duplicate key `{key}`: expected each key once per mapping");
    }
    match msg {
        "invalid boolean" => "invalid boolean: expected true or false".into(),
        "expected mapping start" => "expected a mapping (key: value pairs) here".into(),
        "expected sequence start" => "expected a list here".into(),
        "expected string scalar" => "expected a string here".into(),
        other => other.to_string(),
    }
}
