//! The crates compiled into a payload binary, as cargo resolves them for
//! `cargo build -p PACKAGE --target TARGET` (which is how aelimg builds each
//! payload package: see docs/decisions/0002): the package set comes from
//! `cargo tree -e normal`, which resolves features per package exactly as
//! that build does (cargo metadata's resolve unifies the whole workspace's
//! features and lists crates the binary never sees); each crate's source and
//! declared license come from `cargo metadata`, its checksum from Cargo.lock.
//!
//! The answer depends only on the manifests, Cargo.lock, the package and the
//! target, so it is kept in `<target dir>/aelimg-sbom/`, keyed by a digest
//! of those: a build whose lock file and manifests did not change runs no
//! cargo command for its SBOM.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::workspace::CargoWorkspace;
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Bump when what is cached changes shape or meaning.
const CACHE_VERSION: &str = "aelimg-sbom-crates-v2";

/// One crate compiled into a binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CrateInfo {
    /// Crate (package) name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Where it comes from: `registry+https://…`, `git+https://…#rev`;
    /// `None` for a path dependency (a crate of this workspace).
    pub source: Option<String>,
    /// The SHA-256 Cargo.lock records for a registry crate.
    pub checksum: Option<String>,
    /// The license its manifest declares, as an SPDX expression (`None`
    /// when it declares none, or one that is not valid SPDX).
    pub license: Option<String>,
}

impl CrateInfo {
    /// Its package URL (`pkg:cargo/NAME@VERSION`).
    #[must_use]
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }

    /// Where a registry crate can be downloaded (crates.io's API), else
    /// `None`.
    #[must_use]
    pub fn download_location(&self) -> Option<String> {
        match &self.source {
            Some(s) if s == "registry+https://github.com/rust-lang/crates.io-index" => {
                Some(format!(
                    "https://crates.io/api/v1/crates/{}/{}/download",
                    self.name, self.version
                ))
            }
            Some(s) if s.starts_with("git+") => Some(s.clone()),
            _ => None,
        }
    }
}

/// A crate by name and exact version (cargo tree's identity of a package).
pub type CrateKey = (String, String);

/// The crates of one payload package's binaries for one target: the
/// package itself first, then every crate it depends on (normal
/// dependencies, transitively, proc-macros included), sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageCrates {
    /// The payload package.
    pub root: CrateInfo,
    /// Its dependencies.
    pub dependencies: Vec<CrateInfo>,
    /// Which crate depends on which (normal dependencies), as cargo tree
    /// shows them.
    pub edges: BTreeSet<(CrateKey, CrateKey)>,
    /// The procedural macros among the crates: they run in the compiler and
    /// are not linked into the binary (nor are crates only they use).
    pub proc_macros: BTreeSet<CrateKey>,
}

/// Reads the crates of `package` for `target`, from the cache when the
/// workspace's manifests and lock file are unchanged. With `locked`, cargo
/// may not change Cargo.lock (`--locked`); without, it writes a missing or
/// outdated one, as `cargo build` would.
///
/// # Errors
/// When cargo cannot answer, or its answer cannot be read.
pub fn package_crates(
    ws: &CargoWorkspace,
    package: &str,
    target: &str,
    locked: bool,
) -> Result<PackageCrates> {
    let key = cache_key(ws, package, target)?;
    let dir = ws.target_dir.join("aelimg-sbom");
    let path = dir.join(format!("{}.json", key.hex()));
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(found) = serde_json::from_slice::<PackageCrates>(&bytes)
    {
        return Ok(found);
    }
    let found = resolve(ws, package, target, locked)?;
    // The cache only saves time: a failure to write it fails nothing.
    if std::fs::create_dir_all(&dir).is_ok()
        && let Ok(bytes) = serde_json::to_vec(&found)
    {
        let _ = crate::fsutil::write_cache_record(&path, &bytes);
    }
    Ok(found)
}

/// What the answer for `package` and `target` depends on, hashed.
fn cache_key(ws: &CargoWorkspace, package: &str, target: &str) -> Result<Digest> {
    let mut h = sha2::Sha256::default();
    let mut add = |bytes: &[u8]| {
        use sha2::Digest as _;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    add(CACHE_VERSION.as_bytes());
    add(package.as_bytes());
    add(target.as_bytes());
    let lock = ws.root.join("Cargo.lock");
    match std::fs::read(&lock) {
        Ok(bytes) => add(&bytes),
        // Not written yet: cargo writes it below, and the next build has
        // another key.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => add(b"no Cargo.lock"),
        Err(e) => return Err(Error::io(format!("cannot read {}", lock.display()), e)),
    }
    for m in ws.manifests() {
        // Named relative to the root: the answer holds no path (path
        // packages have no source), so checkouts of the same workspace at
        // other paths share it (decision 0021).
        add(m
            .strip_prefix(&ws.root)
            .unwrap_or(m)
            .to_string_lossy()
            .as_bytes());
        add(&std::fs::read(m).map_err(|e| Error::io(format!("cannot read {}", m.display()), e))?);
    }
    Ok(Digest::from_hasher(h))
}

/// Asks cargo.
fn resolve(
    ws: &CargoWorkspace,
    package: &str,
    target: &str,
    locked: bool,
) -> Result<PackageCrates> {
    let locked = if locked { "--locked" } else { "--quiet" };
    let tree = run(
        ws,
        &[
            "tree", locked, "-e", "normal", "--prefix", "depth", "--format", "{p}", "--target",
            target, "-p", package,
        ],
    )?;
    let Tree {
        crates: wanted,
        edges,
        proc_macros,
    } = Tree::parse(&tree);
    let meta = run(
        ws,
        &[
            "metadata",
            locked,
            "--format-version=1",
            "--filter-platform",
            target,
        ],
    )?;
    let meta = cargo_metadata::MetadataCommand::parse(meta)
        .map_err(|e| Error::Cargo(format!("cannot read cargo metadata: {e}")))?;
    let lock_path = ws.root.join("Cargo.lock");
    let lock = cargo_lock::Lockfile::load(&lock_path)
        .map_err(|e| Error::Cargo(format!("cannot read {}: {e}", lock_path.display())))?;
    let checksums: BTreeMap<(String, String), String> = lock
        .packages
        .iter()
        .filter_map(|p| {
            p.checksum
                .as_ref()
                .map(|c| ((p.name.to_string(), p.version.to_string()), c.to_string()))
        })
        .collect();
    let mut root = None;
    let mut dependencies = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &meta.packages {
        let key = (p.name.to_string(), p.version.to_string());
        if !wanted.contains(&key) || !seen.insert(key.clone()) {
            continue;
        }
        let info = CrateInfo {
            name: key.0.clone(),
            version: key.1.clone(),
            source: p.source.as_ref().map(ToString::to_string),
            checksum: checksums.get(&key).cloned(),
            license: p.license.as_deref().and_then(spdx_expression),
        };
        if key.0 == package && p.source.is_none() {
            root = Some(info);
        } else {
            dependencies.push(info);
        }
    }
    if seen.len() != wanted.len() {
        let missing: Vec<String> = wanted
            .difference(&seen)
            .map(|(n, v)| format!("{n} v{v}"))
            .collect();
        return Err(Error::Cargo(format!(
            "cargo tree lists crates cargo metadata does not know: {}",
            missing.join(", ")
        )));
    }
    let root = root.ok_or_else(|| {
        Error::Cargo(format!(
            "cargo tree -p {package} did not list {package} itself"
        ))
    })?;
    dependencies.sort();
    Ok(PackageCrates {
        root,
        dependencies,
        edges,
        proc_macros,
    })
}

/// What `cargo tree --prefix depth --format {p}` shows.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tree {
    crates: BTreeSet<CrateKey>,
    edges: BTreeSet<(CrateKey, CrateKey)>,
    proc_macros: BTreeSet<CrateKey>,
}

impl Tree {
    /// Reads the lines: each is the depth, then the package; its parent is
    /// the closest line above it one level up.
    fn parse(text: &str) -> Self {
        let mut tree = Self::default();
        let mut path: Vec<CrateKey> = Vec::new();
        for line in text.lines() {
            let digits = line.bytes().take_while(u8::is_ascii_digit).count();
            let Ok(depth) = line[..digits].parse::<usize>() else {
                continue;
            };
            let rest = &line[digits..];
            let Some(key) = name_version(rest) else {
                continue;
            };
            if rest.contains(" (proc-macro)") {
                tree.proc_macros.insert(key.clone());
            }
            path.truncate(depth);
            if let Some(parent) = path.last() {
                tree.edges.insert((parent.clone(), key.clone()));
            }
            tree.crates.insert(key.clone());
            path.push(key);
        }
        tree
    }
}

fn run(ws: &CargoWorkspace, args: &[&str]) -> Result<String> {
    let out = super::workspace::workspace_tool(&ws.root, "cargo")
        .args(args)
        .arg("--manifest-path")
        .arg(ws.root.join("Cargo.toml"))
        .output()
        .map_err(|e| Error::Cargo(format!("cannot run cargo {}: {e}", args[0])))?;
    if !out.status.success() {
        return Err(Error::Cargo(format!(
            "cargo {} failed ({}): {}",
            args[0],
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| Error::Cargo(format!("cargo {} printed invalid UTF-8", args[0])))
}

/// `name v1.2.3` or `name v1.2.3 (…)`, as `cargo tree --format {p}` prints
/// a package.
fn name_version(line: &str) -> Option<(String, String)> {
    let mut words = line.split_whitespace();
    let name = words.next()?;
    let version = words.next()?.strip_prefix('v')?;
    Some((name.to_string(), version.to_string()))
}

/// A manifest's `license` as a valid SPDX expression: as written when it is
/// one, in canonical form when only the old `MIT/Apache-2.0` style or an
/// imprecise name keeps it from being one, else `None`.
#[must_use]
pub fn spdx_expression(declared: &str) -> Option<String> {
    if spdx::Expression::parse(declared).is_ok() {
        return Some(declared.to_string());
    }
    let canonical = spdx::Expression::canonicalize(declared).ok()??;
    spdx::Expression::parse(&canonical).ok()?;
    Some(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_lines() {
        assert_eq!(
            name_version("tokio v1.54.1"),
            Some(("tokio".into(), "1.54.1".into()))
        );
        assert_eq!(
            name_version("ael v0.1.0 (/work/main/runtime)"),
            Some(("ael".into(), "0.1.0".into()))
        );
        assert_eq!(
            name_version("serde_derive v1.0.228 (proc-macro)"),
            Some(("serde_derive".into(), "1.0.228".into()))
        );
        assert_eq!(name_version(""), None);
        assert_eq!(name_version("warning: something"), None);
    }

    #[test]
    fn tree_with_depths() {
        let text = "0app v0.1.0 (/w/app)\n1serde v1.0.228\n2serde_derive v1.0.228 (proc-macro)\n\
                    3syn v2.0.1\n1log v0.4.1\n1syn v2.0.1 (*)\n";
        let t = Tree::parse(text);
        let k = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(t.crates.len(), 5);
        assert_eq!(
            t.edges,
            BTreeSet::from([
                (k("app", "0.1.0"), k("serde", "1.0.228")),
                (k("serde", "1.0.228"), k("serde_derive", "1.0.228")),
                (k("serde_derive", "1.0.228"), k("syn", "2.0.1")),
                (k("app", "0.1.0"), k("log", "0.4.1")),
                (k("app", "0.1.0"), k("syn", "2.0.1")),
            ])
        );
        assert_eq!(
            t.proc_macros,
            BTreeSet::from([k("serde_derive", "1.0.228")])
        );
    }

    #[test]
    fn licenses_become_spdx_expressions() {
        assert_eq!(
            spdx_expression("MIT OR Apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            spdx_expression("MIT/Apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            spdx_expression("(MIT OR Apache-2.0) AND Unicode-3.0").as_deref(),
            Some("(MIT OR Apache-2.0) AND Unicode-3.0")
        );
        assert_eq!(spdx_expression("Some Custom Thing"), None);
    }

    #[test]
    fn purls_and_download_locations() {
        let c = CrateInfo {
            name: "tokio".into(),
            version: "1.54.1".into(),
            source: Some("registry+https://github.com/rust-lang/crates.io-index".into()),
            checksum: None,
            license: None,
        };
        assert_eq!(c.purl(), "pkg:cargo/tokio@1.54.1");
        assert_eq!(
            c.download_location().as_deref(),
            Some("https://crates.io/api/v1/crates/tokio/1.54.1/download")
        );
        let local = CrateInfo { source: None, ..c };
        assert_eq!(local.download_location(), None);
    }
}
