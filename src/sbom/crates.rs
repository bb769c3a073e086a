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

use crate::cargo::CargoWorkspace;
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Bump when what is cached changes shape or meaning.
const CACHE_VERSION: &str = "aelimg-sbom-crates-v1";

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

/// The crates of one payload package's binaries for one target: the
/// package itself first, then every crate it depends on (normal
/// dependencies, transitively, proc-macros included), sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageCrates {
    /// The payload package.
    pub root: CrateInfo,
    /// Its dependencies.
    pub dependencies: Vec<CrateInfo>,
}

/// Reads the crates of `package` for `target`, from the cache when the
/// workspace's manifests and lock file are unchanged.
///
/// # Errors
/// When cargo cannot answer, or its answer cannot be read.
pub fn package_crates(ws: &CargoWorkspace, package: &str, target: &str) -> Result<PackageCrates> {
    let key = cache_key(ws, package, target)?;
    let dir = ws.target_dir.join("aelimg-sbom");
    let path = dir.join(format!("{}.json", key.hex()));
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(found) = serde_json::from_slice::<PackageCrates>(&bytes)
    {
        return Ok(found);
    }
    let found = resolve(ws, package, target)?;
    // The cache only saves time: a failure to write it fails nothing.
    if std::fs::create_dir_all(&dir).is_ok()
        && let Ok(bytes) = serde_json::to_vec(&found)
    {
        let _ = crate::fsutil::atomic_write(&path, &bytes);
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
    add(&std::fs::read(&lock)
        .map_err(|e| Error::io(format!("cannot read {}", lock.display()), e))?);
    for m in ws.manifests() {
        add(m.to_string_lossy().as_bytes());
        add(&std::fs::read(m).map_err(|e| Error::io(format!("cannot read {}", m.display()), e))?);
    }
    Ok(Digest::from_hasher(h))
}

/// Asks cargo.
fn resolve(ws: &CargoWorkspace, package: &str, target: &str) -> Result<PackageCrates> {
    let tree = run(
        ws,
        &[
            "tree", "--locked", "-e", "normal", "--prefix", "none", "--format", "{p}", "--target",
            target, "-p", package,
        ],
    )?;
    let wanted: BTreeSet<(String, String)> = tree.lines().filter_map(name_version).collect();
    let meta = run(
        ws,
        &[
            "metadata",
            "--locked",
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
    Ok(PackageCrates { root, dependencies })
}

fn run(ws: &CargoWorkspace, args: &[&str]) -> Result<String> {
    let out = crate::cargo::workspace_tool(&ws.root, "cargo")
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
