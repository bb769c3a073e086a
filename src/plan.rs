//! The resolved build plan: a pure function of the spec, the command line and
//! the metadata of the files it names.
//!
//! Every check that can fail on bad input runs here, before anything is built
//! or written, so a bad `images.yaml` never leaves a half-written output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::rootfs;
use crate::spec::{ContentSpec, ImageSpec, LoadedSpec, Owner, Spanned};

/// The default `PATH` of every image.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the command line adds to the spec.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--platform`: overrides the platforms of every image.
    pub platforms: Option<Vec<Platform>>,
    /// `--image`: build only these images (empty: all).
    pub only: Vec<String>,
    /// Timestamp of every file and of the image config (SOURCE_DATE_EPOCH).
    pub source_date_epoch: u64,
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
    /// Base image (`scratch`).
    pub base: String,
    /// Platforms, in index order.
    pub platforms: Vec<Platform>,
    /// The runtime user.
    pub user: User,
    /// The image configuration.
    pub config: ConfigPlan,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Largest allowed uncompressed size per platform, in bytes.
    pub size_limit: Option<u64>,
    /// Layers, bottom first; the first is the synthesized root layer.
    pub layers: Vec<LayerPlan>,
}

/// The runtime user of an image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Group name.
    pub group: String,
    /// Home directory.
    pub home: String,
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
}

/// Attributes of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirAttrs {
    mode: u32,
    uid: u32,
    gid: u32,
}

const ROOT_DIR: DirAttrs = DirAttrs {
    mode: 0o755,
    uid: 0,
    gid: 0,
};

/// Resolves a loaded spec into a plan.
pub fn resolve(spec: &LoadedSpec, opts: &PlanOptions, ws: &dyn Workspace) -> Result<Plan> {
    check_unique_names(spec)?;
    let known: Vec<&str> = spec
        .file
        .images
        .iter()
        .map(|i| i.name.value.as_str())
        .collect();
    for wanted in &opts.only {
        if !known.contains(&wanted.as_str()) {
            return Err(Error::Usage(format!(
                "--image {wanted}: {} defines no image of that name (it defines: {})",
                spec.path.display(),
                known.join(", ")
            )));
        }
    }
    let mut images = Vec::new();
    for image in &spec.file.images {
        if opts.only.is_empty() || opts.only.contains(&image.name.value) {
            images.push(resolve_image(spec, image, opts, ws)?);
        }
    }
    Ok(Plan {
        spec_file: spec.path.clone(),
        source_date_epoch: opts.source_date_epoch,
        images,
    })
}

fn check_unique_names(spec: &LoadedSpec) -> Result<()> {
    let mut seen: BTreeMap<&str, &Spanned<String>> = BTreeMap::new();
    for image in &spec.file.images {
        let name = &image.name;
        if let Some(first) = seen.get(name.value.as_str()) {
            return Err(spec.error_at(
                name,
                format!(
                    "duplicate image name `{}` (first defined at line {}): expected every image to have its own name",
                    name.value,
                    first.referenced.line()
                ),
            ));
        }
        seen.insert(&name.value, name);
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && s.len() <= 128
}

fn valid_tag(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && s.len() <= 128
}

#[allow(clippy::too_many_lines)]
fn resolve_image(
    spec: &LoadedSpec,
    image: &ImageSpec,
    opts: &PlanOptions,
    ws: &dyn Workspace,
) -> Result<ImagePlan> {
    let name = image.name.value.clone();
    if !valid_name(&name) {
        return Err(spec.error_at(
            &image.name,
            format!("invalid image name `{name}`: expected lower-case letters, digits, `.`, `_` or `-`, starting with a letter or digit"),
        ));
    }
    let tag = match &image.tag {
        Some(t) if !valid_tag(&t.value) => {
            return Err(spec.error_at(
                t,
                format!(
                    "invalid tag `{}`: expected letters, digits, `_`, `.` or `-` (at most 128)",
                    t.value
                ),
            ));
        }
        Some(t) => t.value.clone(),
        None => "latest".to_string(),
    };
    let base = match &image.base {
        None => "scratch".to_string(),
        Some(b) if b.value == "scratch" => b.value.clone(),
        Some(b) => match crate::registry::Reference::parse(&b.value) {
            Ok(r) if r.tag.is_some() || r.digest.is_some() => b.value.clone(),
            _ => {
                return Err(spec.error_at(
                    b,
                    format!(
                        "unsupported base `{}`: expected `scratch` or REGISTRY/REPO:TAG[@sha256:…]",
                        b.value
                    ),
                ));
            }
        },
    };

    let platforms = match &opts.platforms {
        Some(p) => p.clone(),
        None if image.platforms.is_empty() => vec![Platform::host().ok_or_else(|| {
            Error::Usage(format!(
                "the host architecture {} is not supported; pass --platform",
                std::env::consts::ARCH
            ))
        })?],
        None => {
            let mut out = Vec::new();
            for p in &image.platforms {
                let parsed = Platform::parse(&p.value).map_err(|m| spec.error_at(p, m))?;
                if !out.contains(&parsed) {
                    out.push(parsed);
                }
            }
            out
        }
    };

    let u = &image.user.value;
    if u.uid == 0 && !u.allow_root {
        return Err(spec.error_at(
            &image.user,
            "user uid 0 runs the container as root: expected a non-root uid, or `allow_root: true` to opt in",
        ));
    }
    if !valid_account_name(&u.name) {
        return Err(spec.error_at(
            &image.user,
            format!(
                "invalid user name `{}`: expected letters, digits, `_` or `-`",
                u.name
            ),
        ));
    }
    let workdir = match &image.workdir {
        Some(w) => Some(absolute(spec, w, "workdir")?),
        None => None,
    };
    let user = User {
        name: u.name.clone(),
        uid: u.uid,
        gid: u.gid.unwrap_or(u.uid),
        group: u.group.clone().unwrap_or_else(|| u.name.clone()),
        home: u
            .home
            .clone()
            .unwrap_or_else(|| format!("/home/{}", u.name)),
    };
    if !valid_account_name(&user.group) {
        return Err(spec.error_at(
            &image.user,
            format!(
                "invalid group name `{}`: expected letters, digits, `_` or `-`",
                user.group
            ),
        ));
    }

    let mut volumes = BTreeSet::new();
    for v in &image.volumes {
        volumes.insert(absolute(spec, v, "volume")?);
    }

    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    for (k, v) in &image.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(spec.error_at(
                v,
                format!("invalid environment variable name `{k}`: expected a name without `=`"),
            ));
        }
        env.insert(k.clone(), v.value.clone());
    }

    let ports: BTreeSet<String> = image.ports.iter().map(|p| p.value.to_string()).collect();

    let healthcheck = match &image.healthcheck {
        None => None,
        Some(h) => {
            if h.test.is_empty() {
                return Err(spec.error_at(
                    &image.name,
                    format!("image `{name}`: healthcheck.test is empty: expected a command such as [ael, health]"),
                ));
            }
            let ns = |d: Option<crate::spec::Duration>| {
                d.map_or(0, |d| u64::try_from(d.0.as_nanos()).unwrap_or(u64::MAX))
            };
            let mut test = vec!["CMD".to_string()];
            test.extend(h.test.iter().cloned());
            Some(Healthcheck {
                test,
                interval: ns(h.interval),
                timeout: ns(h.timeout),
                start_period: ns(h.start_period),
                retries: h.retries.unwrap_or(0),
            })
        }
    };

    // Directories with attributes of their own; every other directory is root 0755.
    let mut dirs: BTreeMap<String, DirAttrs> = BTreeMap::new();
    dirs.insert(
        "tmp".into(),
        DirAttrs {
            mode: 0o1777,
            uid: 0,
            gid: 0,
        },
    );
    let user_dir = DirAttrs {
        mode: 0o755,
        uid: user.uid,
        gid: user.gid,
    };
    for v in &volumes {
        dirs.insert(rel(v), user_dir);
    }
    dirs.insert(rel(&user.home), user_dir);

    let mut layers = vec![root_layer(
        image,
        &user,
        workdir.as_deref(),
        &volumes,
        &dirs,
    )];
    for layer in &image.layers {
        layers.push(resolve_layer(spec, layer, &user, &dirs, ws)?);
    }

    Ok(ImagePlan {
        name,
        tag,
        base,
        platforms,
        config: ConfigPlan {
            user: format!("{}:{}", user.uid, user.gid),
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            exposed_ports: ports.into_iter().collect(),
            volumes: volumes.into_iter().collect(),
            workdir,
            entrypoint: image.entrypoint.clone(),
            cmd: image.cmd.clone(),
            labels: image.labels.clone(),
            stop_signal: image.stop_signal.clone(),
            healthcheck,
        },
        user,
        annotations: image.annotations.clone(),
        size_limit: image.size_limit.as_ref().map(|s| s.value.0),
        layers,
    })
}

fn valid_account_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Normalizes an absolute path from the spec: `/a//b/./c/` → `/a/b/c`.
fn absolute(spec: &LoadedSpec, at: &Spanned<String>, what: &str) -> Result<String> {
    normalize_abs(&at.value).ok_or_else(|| {
        spec.error_at(
            at,
            format!(
                "invalid {what} `{}`: expected an absolute path without `..`",
                at.value
            ),
        )
    })
}

fn normalize_abs(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// `/a/b` → `a/b`.
fn rel(abs: &str) -> String {
    abs.trim_start_matches('/').to_string()
}

fn dir_entry(path: &str, dirs: &BTreeMap<String, DirAttrs>, fallback: DirAttrs) -> Entry {
    let a = dirs.get(path).copied().unwrap_or(fallback);
    Entry {
        path: path.to_string(),
        kind: EntryKind::Dir,
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
    }
}

/// Collects entries of one layer, adding parent directories and refusing clashes.
struct LayerEntries<'a> {
    dirs: &'a BTreeMap<String, DirAttrs>,
    entries: BTreeMap<String, Entry>,
}

impl<'a> LayerEntries<'a> {
    fn new(dirs: &'a BTreeMap<String, DirAttrs>) -> Self {
        Self {
            dirs,
            entries: BTreeMap::new(),
        }
    }

    fn add_parents(&mut self, path: &str) {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            if !self.entries.contains_key(&acc) {
                self.entries
                    .insert(acc.clone(), dir_entry(&acc, self.dirs, ROOT_DIR));
            }
        }
    }

    /// Adds an entry; `Err` carries the clashing path.
    fn add(&mut self, e: Entry) -> std::result::Result<(), String> {
        self.add_parents(&e.path);
        match self.entries.get(&e.path) {
            Some(old) if old.kind == EntryKind::Dir && e.kind == EntryKind::Dir => {
                // An explicit directory wins over an implied parent.
                self.entries.insert(e.path.clone(), e);
                Ok(())
            }
            Some(_) => Err(e.path),
            None => {
                self.entries.insert(e.path.clone(), e);
                Ok(())
            }
        }
    }

    fn finish(self, name: String) -> LayerPlan {
        LayerPlan {
            name,
            entries: self.entries.into_values().collect(),
        }
    }
}

fn root_layer(
    image: &ImageSpec,
    user: &User,
    workdir: Option<&str>,
    volumes: &BTreeSet<String>,
    dirs: &BTreeMap<String, DirAttrs>,
) -> LayerPlan {
    let mut l = LayerEntries::new(dirs);
    let generated = |path: &str, what: &str, bytes: Vec<u8>| Entry {
        path: path.to_string(),
        kind: EntryKind::Generated {
            what: what.to_string(),
            size: bytes.len() as u64,
            bytes,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    let mut add = |e: Entry| {
        // Paths here are fixed or already unique (volumes are a set).
        let _ = l.add(e);
    };
    add(generated("etc/passwd", "passwd", rootfs::passwd(user)));
    add(generated("etc/group", "group", rootfs::group(user)));
    add(generated(
        "etc/nsswitch.conf",
        "nsswitch.conf",
        rootfs::NSSWITCH.as_bytes().to_vec(),
    ));
    if image.ca_certificates {
        add(generated(
            "etc/ssl/certs/ca-certificates.crt",
            "ca-certificates",
            rootfs::ca_bundle(),
        ));
    }
    add(dir_entry("tmp", dirs, ROOT_DIR));
    for v in volumes {
        add(dir_entry(&rel(v), dirs, ROOT_DIR));
    }
    if let Some(w) = workdir.filter(|w| *w != "/") {
        add(dir_entry(&rel(w), dirs, ROOT_DIR));
    }
    if user.home != "/" {
        add(dir_entry(&rel(&user.home), dirs, ROOT_DIR));
    }
    l.finish("root filesystem (passwd, group, directories)".into())
}

fn resolve_layer(
    spec: &LoadedSpec,
    layer: &crate::spec::LayerSpec,
    user: &User,
    dirs: &BTreeMap<String, DirAttrs>,
    ws: &dyn Workspace,
) -> Result<LayerPlan> {
    let mut l = LayerEntries::new(dirs);
    if layer.contents.is_empty() {
        return Err(spec.error_at(
            &layer.name,
            format!(
                "layer `{}` has no contents: expected at least one entry",
                layer.name.value
            ),
        ));
    }
    for c in &layer.contents {
        let dest = absolute(spec, &c.dest, "dest")?;
        if dest == "/" {
            return Err(spec.error_at(&c.dest, "dest `/`: expected a path below the root"));
        }
        let (uid, gid) = match c.owner.as_ref().map(|o| o.value) {
            None | Some(Owner::Root) => (0, 0),
            Some(Owner::User) => (user.uid, user.gid),
            Some(Owner::Ids(u, g)) => (u, g),
        };
        let clash = |path: String| {
            spec.error_at(
                &c.dest,
                format!(
                    "`/{path}` is added twice to layer `{}`: expected each path once per layer",
                    layer.name.value
                ),
            )
        };
        match (&c.cargo, &c.path) {
            (Some(cargo), None) => {
                check_cargo(spec, cargo, ws)?;
                l.add(Entry {
                    path: rel(&dest),
                    kind: EntryKind::Cargo {
                        package: cargo.value.package.clone(),
                        bin: cargo.value.bin.clone(),
                    },
                    mode: c.mode.map_or(0o755, |m| m.0),
                    uid,
                    gid,
                })
                .map_err(clash)?;
            }
            (None, Some(path)) => {
                add_host_path(spec, c, path, &rel(&dest), uid, gid, &mut l).map_err(
                    |e| match e {
                        HostError::Clash(p) => clash(p),
                        HostError::Other(e) => e,
                    },
                )?;
            }
            _ => {
                return Err(spec.error_at(
                    &c.dest,
                    "expected exactly one of `cargo` or `path` in this content entry",
                ));
            }
        }
    }
    Ok(l.finish(layer.name.value.clone()))
}

fn check_cargo(
    spec: &LoadedSpec,
    cargo: &Spanned<crate::spec::CargoSource>,
    ws: &dyn Workspace,
) -> Result<()> {
    let c = &cargo.value;
    // Only members with a binary target can fill a layer.
    let with_binaries = || {
        ws.members()
            .into_iter()
            .filter(|m| ws.binaries(m).is_some_and(|b| !b.is_empty()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match ws.binaries(&c.package) {
        None => Err(spec.error_at(
            cargo,
            format!(
                "cargo package `{}` is not a member of the workspace: expected one of {}",
                c.package,
                with_binaries()
            ),
        )),
        Some(bins) if bins.is_empty() => Err(spec.error_at(
            cargo,
            format!(
                "cargo package `{}` has no binary target (a library cannot fill a layer): expected one of {}",
                c.package,
                with_binaries()
            ),
        )),
        Some(bins) if !bins.contains(&c.bin) => Err(spec.error_at(
            cargo,
            format!(
                "cargo package `{}` has no binary `{}`: expected one of {}",
                c.package,
                c.bin,
                bins.join(", ")
            ),
        )),
        Some(_) => Ok(()),
    }
}

enum HostError {
    Clash(String),
    Other(Error),
}

impl From<Error> for HostError {
    fn from(e: Error) -> Self {
        Self::Other(e)
    }
}

/// Adds a file or a directory tree of the build host.
fn add_host_path(
    spec: &LoadedSpec,
    c: &ContentSpec,
    path: &Spanned<String>,
    dest: &str,
    uid: u32,
    gid: u32,
    l: &mut LayerEntries<'_>,
) -> std::result::Result<(), HostError> {
    let source = spec.dir.join(&path.value);
    let meta = std::fs::symlink_metadata(&source).map_err(|e| {
        spec.error_at(
            path,
            format!(
                "cannot read source `{}` ({}): {e}; expected an existing file or directory relative to {}",
                path.value,
                source.display(),
                spec.dir.display()
            ),
        )
    })?;
    let file_mode = |m: &std::fs::Metadata| {
        c.mode
            .map_or_else(|| if is_executable(m) { 0o755 } else { 0o644 }, |m| m.0)
    };
    if meta.is_file() {
        l.add(Entry {
            path: dest.to_string(),
            kind: EntryKind::File { source },
            mode: file_mode(&meta),
            uid,
            gid,
        })
        .map_err(HostError::Clash)?;
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(spec
            .error_at(
                path,
                format!(
                    "source `{}` is neither a file nor a directory: expected a file or a directory",
                    path.value
                ),
            )
            .into());
    }
    let dest_dir = dir_entry(
        dest,
        l.dirs,
        DirAttrs {
            mode: 0o755,
            uid,
            gid,
        },
    );
    l.add(dest_dir).map_err(HostError::Clash)?;
    for item in walk(&source).map_err(|e| spec.error_at(path, e))? {
        let (relp, meta) = item;
        let full = source.join(&relp);
        let relstr = relp.to_string_lossy().replace('\\', "/");
        let target = format!("{dest}/{relstr}");
        let entry = if meta.is_dir() {
            Entry {
                path: target,
                kind: EntryKind::Dir,
                mode: 0o755,
                uid,
                gid,
            }
        } else if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&full).map_err(|e| {
                spec.error_at(path, format!("cannot read link {}: {e}", full.display()))
            })?;
            Entry {
                path: target,
                kind: EntryKind::Symlink {
                    target: link.to_string_lossy().into_owned(),
                },
                mode: 0o777,
                uid,
                gid,
            }
        } else if meta.is_file() {
            Entry {
                path: target,
                kind: EntryKind::File { source: full },
                mode: file_mode(&meta),
                uid,
                gid,
            }
        } else {
            return Err(spec
                .error_at(
                    path,
                    format!(
                        "{} is a special file: expected only files, directories and symlinks",
                        full.display()
                    ),
                )
                .into());
        };
        l.add(entry).map_err(HostError::Clash)?;
    }
    Ok(())
}

/// Lists a directory tree (sorted, relative paths), not following symlinks.
fn walk(root: &Path) -> std::result::Result<Vec<(PathBuf, std::fs::Metadata)>, String> {
    let mut out = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .sort_by_file_name(std::cmp::Ord::cmp)
        .build();
    for item in walker {
        let item = item.map_err(|e| format!("cannot walk {}: {e}", root.display()))?;
        if item.depth() == 0 {
            continue;
        }
        let meta = std::fs::symlink_metadata(item.path())
            .map_err(|e| format!("cannot read {}: {e}", item.path().display()))?;
        let relp = item
            .path()
            .strip_prefix(root)
            .map_err(|e| e.to_string())?
            .to_path_buf();
        out.push((relp, meta));
    }
    Ok(out)
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_m: &std::fs::Metadata) -> bool {
    false
}

impl ImagePlan {
    /// Every `(package, bin)` the image needs from cargo.
    #[must_use]
    pub fn cargo_binaries(&self) -> BTreeSet<(String, String)> {
        self.layers
            .iter()
            .flat_map(|l| &l.entries)
            .filter_map(|e| match &e.kind {
                EntryKind::Cargo { package, bin } => Some((package.clone(), bin.clone())),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize_abs("/a//b/./c/").as_deref(), Some("/a/b/c"));
        assert_eq!(normalize_abs("a/b"), None);
        assert_eq!(normalize_abs("/a/../b"), None);
    }

    #[test]
    fn names_and_tags() {
        assert!(valid_name("native-tools"));
        assert!(!valid_name("Ael"));
        assert!(valid_tag("1.2.3-rc1"));
        assert!(!valid_tag("-x"));
    }
}
