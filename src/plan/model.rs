//! The values a plan is made of: what `aelimg plan --json` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::platform::Platform;
use crate::reference::Reference;
pub use crate::rootfs::User;

/// The default `PATH` of every image.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the command line adds to the spec.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--platform`: overrides the platforms of every image.
    pub platforms: Option<Vec<Platform>>,
    /// Without `platforms`: build each image that lists this platform for it
    /// alone (`--load` builds for the engine's platform). An image that does
    /// not list it keeps its platforms.
    pub prefer_platform: Option<Platform>,
    /// `--image`: build only these images (empty: all).
    pub only: Vec<String>,
    /// Timestamp of every file and of the image config (SOURCE_DATE_EPOCH).
    pub source_date_epoch: u64,
    /// `--annotation KEY=VALUE`: over every image's annotations.
    pub annotations: BTreeMap<String, String>,
    /// `--label KEY=VALUE`: over every image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--annotate-git`: the commit and remote to name as `revision` and
    /// `source` (decision 0018).
    pub git: Option<crate::annotations::GitSource>,
}

/// The cargo workspace the spec's `cargo:` sources are built from.
pub trait Workspace {
    /// The binary targets of a workspace member, or `None` if it is no member.
    fn binaries(&self, package: &str) -> Option<Vec<String>>;
    /// Names of all members, for error messages.
    fn members(&self) -> Vec<String>;
}

/// The fully resolved plan of a build.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The spec file.
    pub spec_file: PathBuf,
    /// Timestamp used for every entry and the config's `created`.
    pub source_date_epoch: u64,
    /// The images to build.
    pub images: Vec<ImagePlan>,
}

/// One image, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct ImagePlan {
    /// Name (layout directory, default repository).
    pub name: String,
    /// Tag (the layout's `org.opencontainers.image.ref.name`).
    pub tag: String,
    /// Base image.
    pub base: Base,
    /// Platforms, in index order.
    pub platforms: Vec<Platform>,
    /// The runtime user.
    pub user: User,
    /// The image configuration.
    pub config: ConfigPlan,
    /// Manifest (and index) annotations: the standard keys, then
    /// images.yaml's, then the command line's.
    pub annotations: BTreeMap<String, String>,
    /// The image's version (images.yaml `version`).
    pub version: Option<String>,
    /// The MCP server the image holds, for `server.json`.
    pub mcp: Option<McpPlan>,
    /// Largest allowed uncompressed size per platform, in bytes.
    pub size_limit: Option<u64>,
    /// Layers, bottom first; the first is the synthesized root layer.
    pub layers: Vec<LayerPlan>,
}

/// The MCP registry metadata of an image (images.yaml `mcp:`), checked.
#[derive(Debug, Clone, Serialize)]
pub struct McpPlan {
    /// `io.github.OWNER/NAME`.
    pub name: String,
    /// Description, 1 to 100 characters.
    pub description: String,
    /// `None` for stdio, else the streamable-http URL.
    pub url: Option<String>,
    /// Repository URL.
    pub repository: Option<String>,
    /// Environment variables the server reads.
    pub environment_variables: Vec<McpEnv>,
}

/// One environment variable an MCP server reads.
#[derive(Debug, Clone, Serialize)]
pub struct McpEnv {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Required.
    pub required: bool,
    /// Secret.
    pub secret: bool,
    /// Default value.
    pub default: Option<String>,
}

/// The runtime part of the image config.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigPlan {
    /// `uid:gid`.
    pub user: String,
    /// `KEY=value`, sorted by key, `PATH` included.
    pub env: Vec<String>,
    /// `8082/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// Volume paths, sorted.
    pub volumes: Vec<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Cmd.
    pub cmd: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Health check.
    pub healthcheck: Option<Healthcheck>,
}

/// A resolved Docker health check; durations in nanoseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Healthcheck {
    /// `["CMD", ...]`.
    pub test: Vec<String>,
    /// Interval, ns.
    pub interval: u64,
    /// Timeout, ns.
    pub timeout: u64,
    /// Start period, ns.
    pub start_period: u64,
    /// Retries.
    pub retries: u32,
}

/// One layer, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct LayerPlan {
    /// Name (report and history).
    pub name: String,
    /// Entries sorted by path.
    pub entries: Vec<Entry>,
    /// What the ignore files (and the rule that keeps them out) left out of
    /// the layer's directory sources, in the order met.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<Excluded>,
}

/// A file or directory of a directory source that did not enter a layer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Excluded {
    /// Its path relative to the context, `/` at the end for a directory
    /// (whose contents were not looked at).
    pub path: String,
    /// Why: `FILE:LINE: PATTERN` of the ignore file that matched, or that
    /// it is an ignore file itself.
    pub rule: String,
}

/// One tar entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image, relative (no leading `/`), no trailing `/`.
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// The kind and content of an entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file from the build host.
    File {
        /// Source file.
        source: PathBuf,
    },
    /// A binary built by cargo for each platform.
    Cargo {
        /// Package.
        package: String,
        /// Binary target.
        bin: String,
    },
    /// A file aelimg generates (passwd, group, CA bundle).
    Generated {
        /// What it is.
        what: String,
        /// Its bytes.
        #[serde(skip)]
        bytes: Vec<u8>,
        /// Its size.
        size: u64,
    },
    /// A symbolic link.
    Symlink {
        /// Link target as stored.
        target: String,
    },
    /// Another name of a file earlier in the same layer (a hard link on
    /// the build host): stored once, as a tar hard-link entry.
    HardLink {
        /// The path (in the image, relative) of the entry holding the data.
        target: String,
    },
}

impl ImagePlan {
    /// Every binary the image needs from cargo.
    #[must_use]
    pub fn cargo_binaries(&self) -> BTreeSet<BinId> {
        self.layers
            .iter()
            .flat_map(|l| &l.entries)
            .filter_map(|e| match &e.kind {
                EntryKind::Cargo { package, bin } => Some(BinId {
                    package: package.clone(),
                    bin: bin.clone(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// What an image starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// Nothing: aelimg writes the root filesystem itself.
    Scratch,
    /// An image in a registry, by tag or digest.
    Image(Reference),
}

impl Serialize for Base {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Scratch => s.serialize_str("scratch"),
            Self::Image(r) => s.collect_str(r),
        }
    }
}

/// The payload binaries of a build, by platform and target.
pub type Binaries = BTreeMap<(Platform, BinId), PathBuf>;

/// A binary target of a workspace member.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BinId {
    /// The workspace member.
    pub package: String,
    /// Its binary target.
    pub bin: String,
}
