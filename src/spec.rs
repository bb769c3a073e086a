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
use serde::de::{self, Deserializer, SeqAccess, Visitor};
pub use serde_saphyr::Spanned;

use crate::error::{Error, Located};
pub use crate::units::{ByteSize, Duration};
use crate::values;

/// The largest images.yaml aelimg reads (1 MiB): the file is a list of
/// images, not data; a larger one is a mistake or an attack.
pub const MAX_SPEC_BYTES: usize = 1 << 20;
/// The deepest nesting of mappings and lists images.yaml may have; the
/// schema itself needs 6.
pub const MAX_SPEC_DEPTH: usize = 32;
/// The most YAML events alias expansion (`*anchor`) may replay in one file.
pub const MAX_ALIAS_EVENTS: usize = 100_000;

/// The whole `images.yaml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Schema version; only `1` exists.
    #[serde(default = "default_version", deserialize_with = "version_1")]
    pub version: Spanned<u32>,
    /// The directory `path:` sources are relative to and must stay inside,
    /// relative to this file's directory (default: that directory). Naming
    /// one is how a spec reaches files outside its own directory.
    #[serde(default)]
    pub context: Option<Spanned<String>>,
    /// The images to build, in order (at least one).
    #[serde(deserialize_with = "some_images")]
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
    /// Environment baked into the image config: names are
    /// `[A-Za-z_][A-Za-z0-9_]*`, values hold no NUL.
    #[serde(default, deserialize_with = "env_map")]
    pub env: BTreeMap<String, Spanned<String>>,
    /// Exposed ports, as `8082` or `"8082/tcp"`.
    #[serde(default)]
    pub ports: Vec<Spanned<Port>>,
    /// Volume mount points (absolute); created and owned by the user.
    #[serde(default)]
    pub volumes: Vec<Spanned<String>>,
    /// Entrypoint, exec form.
    #[serde(default, deserialize_with = "entrypoint")]
    pub entrypoint: Vec<String>,
    /// Default arguments, exec form.
    #[serde(default, deserialize_with = "cmd")]
    pub cmd: Vec<String>,
    /// Image config labels.
    #[serde(default, deserialize_with = "string_map")]
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    #[serde(default, deserialize_with = "string_map")]
    pub annotations: BTreeMap<String, String>,
    /// The image's version: `org.opencontainers.image.version` and the
    /// version of its MCP `server.json` (decision 0018).
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    /// SPDX license expression: `org.opencontainers.image.licenses`.
    #[serde(default)]
    pub licenses: Option<Spanned<String>>,
    /// MCP registry metadata: the image serves this MCP server.
    #[serde(default)]
    pub mcp: Option<McpSpec>,
    /// Signal that stops the container: `SIGTERM`, `TERM` or `15` style.
    #[serde(default, deserialize_with = "stop_signal")]
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

/// What the official MCP registry needs to list the server an image holds
/// (`server.json`, and the `io.modelcontextprotocol.server.name` label it
/// checks).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSpec {
    /// Server name in reverse-DNS form with one `/`: `io.github.OWNER/NAME`.
    pub name: Spanned<String>,
    /// What the server does (1 to 100 characters).
    pub description: Spanned<String>,
    /// How a client talks to the container: `stdio` (default) or
    /// `streamable-http` with `url`.
    #[serde(default)]
    pub transport: Option<Spanned<String>>,
    /// The streamable-http endpoint, e.g. `http://localhost:8082/mcp`.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// Repository URL for `server.json`'s `repository` (e.g. on GitHub).
    #[serde(default)]
    pub repository: Option<Spanned<String>>,
    /// Environment variables the server reads, for clients to offer.
    #[serde(default)]
    pub environment_variables: Vec<McpEnvSpec>,
}

/// One environment variable an MCP server reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpEnvSpec {
    /// Variable name.
    #[serde(deserialize_with = "env_name")]
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether the server needs it.
    #[serde(default)]
    pub required: bool,
    /// Whether it is a secret (a token, a key).
    #[serde(default)]
    pub secret: bool,
    /// Its default value.
    #[serde(default)]
    pub default: Option<String>,
}

/// The user an image runs as.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Login name written to /etc/passwd.
    #[serde(deserialize_with = "user_name")]
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Numeric group id (default: the uid).
    #[serde(default)]
    pub gid: Option<u32>,
    /// Group name written to /etc/group (default: the user name).
    #[serde(default, deserialize_with = "group_name")]
    pub group: Option<String>,
    /// Home directory (default `/home/<name>`); created and owned by the user.
    /// Absolute, no `..`, no `:` or control character.
    #[serde(default, deserialize_with = "home")]
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
    #[serde(deserialize_with = "health_test")]
    pub test: Vec<String>,
    /// Time between probes (0, or at least 1ms, as Docker requires).
    #[serde(default, deserialize_with = "health_duration")]
    pub interval: Option<Duration>,
    /// Time a probe may take.
    #[serde(default, deserialize_with = "health_duration")]
    pub timeout: Option<Duration>,
    /// Failures in a row before the container is unhealthy.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Grace period after start.
    #[serde(default, deserialize_with = "health_duration")]
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
        let num = num.trim();
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("expected a port number 1-65535, found `{s}`"));
        }
        let number: u32 = num.parse().unwrap_or(u32::MAX);
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
            Raw::Num(n) => match u32::try_from(n) {
                Ok(n) => Port::new(n, false).map_err(de::Error::custom),
                Err(_) => Err(de::Error::custom(format!(
                    "expected a port number 1-65535, found {n}"
                ))),
            },
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
        // Digits only: `from_str_radix` would take `+755`.
        let octal = !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match u32::from_str_radix(digits, 8) {
            Ok(m) if octal && m <= 0o7777 => Ok(Self(m)),
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
                .and_then(|(u, g)| Some(Self::Ids(id(u)?, id(g)?)))
                .ok_or_else(|| de::Error::custom(format!("{expected}, found \"{s}\""))),
        }
    }
}

/// A numeric id written with digits only (`str::parse` would take `+1`).
fn id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
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
    let io = |e| Error::Io {
        context: format!("cannot read {}", path.display()),
        source: e,
    };
    // Read at most one byte past the limit: a huge file is refused, not read.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(io)?,
            MAX_SPEC_BYTES as u64 + 1,
        ),
        &mut bytes,
    )
    .map_err(io)?;
    if bytes.len() > MAX_SPEC_BYTES {
        return Err(too_big(path));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
        Error::Spec(Located {
            file: path.to_path_buf(),
            line,
            column,
            message: "invalid UTF-8: expected a UTF-8 text file".into(),
        })
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

fn too_big(path: &Path) -> Error {
    Error::Spec(Located {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!(
            "the file is larger than {} KiB: expected a small images.yaml (a list of images, not data)",
            MAX_SPEC_BYTES >> 10
        ),
    })
}

/// What serde-saphyr may spend on one images.yaml: one document, shallow,
/// few aliases (a "billion laughs" file fails at once, with a clear message).
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_SPEC_BYTES),
            max_documents: 1,
            max_depth: MAX_SPEC_DEPTH,
            flow_nesting_limit: MAX_SPEC_DEPTH,
            max_nodes: 100_000,
            max_events: 200_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_total_scalar_bytes: 4 * MAX_SPEC_BYTES,
            max_merge_keys: 1_000,
            max_recorded_anchor_events: MAX_ALIAS_EVENTS,
            max_recorded_anchor_bytes: 4 * MAX_SPEC_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_EVENTS,
            max_replay_stack_depth: 16,
        },
    }
}

/// Parses the text of an `images.yaml` file; `path` is used in errors only.
pub fn parse(path: &Path, text: &str) -> Result<SpecFile, Error> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(too_big(path));
    }
    if text.trim().is_empty() {
        return Err(Error::Spec(Located {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message:
                "the file is empty: expected `version: 1` and `images:` with at least one image"
                    .into(),
        }));
    }
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| {
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
    })
}

/// What a limit of [`options`] says when a file breaks it, or `None` when
/// the error is not about a limit.
fn limit_message(e: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let mut e = e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = e {
        e = error;
    }
    let what = match e {
        E::Budget { breach, .. } => match breach {
            B::Depth { .. } => format!("nesting deeper than {MAX_SPEC_DEPTH} levels"),
            B::Documents { .. } => "more than one YAML document".to_string(),
            B::Aliases { .. } | B::Anchors { .. } | B::AliasAnchorRatio { .. } => {
                "too many anchors or aliases".to_string()
            }
            B::RecordedAnchorEvents { .. }
            | B::RecordedAnchorBytes { .. }
            | B::Nodes { .. }
            | B::Events { .. } => "too many values (counting what aliases expand to)".to_string(),
            B::InputBytes { .. } | B::ScalarBytes { .. } => "too much text".to_string(),
            other => format!("a parser limit ({other:?})"),
        },
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            format!("aliases that expand to more than {MAX_ALIAS_EVENTS} values")
        }
        _ => return None,
    };
    Some(format!(
        "the file has {what}: expected a small images.yaml (at most {} KiB, nesting at most {MAX_SPEC_DEPTH} deep, aliases expanding to at most {MAX_ALIAS_EVENTS} values)",
        MAX_SPEC_BYTES >> 10
    ))
}

/// The message of a serde-saphyr error without its rendered snippet and
/// location suffix, which aelimg prints in its own `file:line:col:` form.
fn saphyr_message(e: &serde_saphyr::Error) -> String {
    if let Some(m) = limit_message(e) {
        return m;
    }
    let rendered = e.without_snippet().to_string();
    let first = rendered.lines().next().unwrap_or("invalid YAML").trim();
    // serde-saphyr appends " at line L column C" (and for a value reached
    // through an alias, "(defined at line …) (used at line …)"); we print
    // the location ourselves.
    let trimmed = match first.find(" (defined at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    let trimmed = match trimmed.rfind(" at line ") {
        Some(i) => &trimmed[..i],
        None => trimmed,
    };
    friendly(trimmed.trim_start_matches("error: "))
}

/// Rewrites serde-saphyr's terse type errors so they say what was expected.
fn friendly(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        // ", expected one of a, b, c" or ", expected `a`", with or without backticks.
        let list = expected
            .trim_start_matches(',')
            .trim()
            .trim_start_matches("expected")
            .trim()
            .trim_start_matches("one of")
            .trim();
        let candidates: Vec<&str> = list
            .split(',')
            .map(|c| c.trim().trim_matches('`'))
            .filter(|c| !c.is_empty())
            .collect();
        if let Some(near) = values::did_you_mean(field, &candidates) {
            return format!("{msg}; did you mean `{near}`?");
        }
        return msg.to_string();
    }
    if msg == "recursion limit exceeded" {
        return format!(
            "{msg}: expected nesting at most {MAX_SPEC_DEPTH} deep (images.yaml needs 6)"
        );
    }
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

// ---------------------------------------------------------------------------
// Checks run while deserializing, so serde-saphyr attaches the location of
// the offending value itself.

fn version_1<'de, D: Deserializer<'de>>(d: D) -> Result<Spanned<u32>, D::Error> {
    let v = Spanned::<u32>::deserialize(d)?;
    if v.value == 1 {
        Ok(v)
    } else {
        Err(de::Error::custom(format!(
            "unsupported version {}: expected 1",
            v.value
        )))
    }
}

fn some_images<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ImageSpec>, D::Error> {
    let images = Vec::<ImageSpec>::deserialize(d)?;
    if images.is_empty() {
        return Err(de::Error::custom(
            "`images` is empty: expected at least one image",
        ));
    }
    Ok(images)
}

/// A string without NUL.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        values::no_nul("value", &s).map_err(de::Error::custom)?;
        Ok(Self(s))
    }
}

/// An environment variable name.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct EnvName(String);

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        values::env_name(&s).map_err(de::Error::custom)?;
        Ok(Self(s))
    }
}

/// A label or annotation key.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct LabelKey(String);

impl<'de> Deserialize<'de> for LabelKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        values::label_key(&s).map_err(de::Error::custom)?;
        Ok(Self(s))
    }
}

fn env_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(EnvName::deserialize(d)?.0)
}

fn env_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Spanned<String>>, D::Error> {
    Ok(BTreeMap::<EnvName, Spanned<Text>>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| (k.0, Spanned::new(v.value.0, v.referenced, v.defined)))
        .collect())
}

fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(BTreeMap::<LabelKey, Text>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| (k.0, v.0))
        .collect())
}

/// An exec-form command; each element is checked as it is read, so an error
/// points at the element.
fn argv<'de, D: Deserializer<'de>>(d: D, what: &'static str) -> Result<Vec<String>, D::Error> {
    /// One element; the first is the program.
    struct Arg<'a>(&'static str, &'a [String]);
    impl<'de> de::DeserializeSeed<'de> for Arg<'_> {
        type Value = String;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            let arg = String::deserialize(d)?;
            let mut args = self.1.to_vec();
            args.push(arg);
            values::argv(self.0, &args).map_err(de::Error::custom)?;
            Ok(args.pop().unwrap_or_default())
        }
    }
    struct V(&'static str);
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of strings (exec form) for `{}`", self.0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            // Only the program and the new element are checked each time.
            while let Some(arg) = seq.next_element_seed(Arg(self.0, &out[..out.len().min(1)]))? {
                out.push(arg);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(what))
}

fn entrypoint<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    argv(d, "entrypoint")
}

fn cmd<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    argv(d, "cmd")
}

fn health_test<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    argv(d, "healthcheck.test")
}

fn stop_signal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    if let Some(s) = &s {
        values::stop_signal(s).map_err(de::Error::custom)?;
    }
    Ok(s)
}

fn user_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    values::account_name("user", &s).map_err(de::Error::custom)?;
    Ok(s)
}

fn group_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    if let Some(s) = &s {
        values::account_name("group", s).map_err(de::Error::custom)?;
    }
    Ok(s)
}

fn home<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    if let Some(s) = &s {
        values::home(s).map_err(de::Error::custom)?;
    }
    Ok(s)
}

/// Docker refuses a health check duration between 0 and 1ms.
fn health_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let v = Option::<Duration>::deserialize(d)?;
    if let Some(Duration(t)) = v
        && !t.is_zero()
        && t < std::time::Duration::from_millis(1)
    {
        return Err(de::Error::custom(format!(
            "health check duration {t:?} is under 1ms: expected 0 (the engine's default) or at least 1ms"
        )));
    }
    Ok(v)
}
