//! The cargo workspace the payload comes from, and how aelimg runs cargo
//! and rustc in it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use cargo_metadata::{MetadataCommand, TargetKind};

use crate::error::{Error, Result};
use crate::plan::Workspace;

/// `program` (cargo or rustc) in the workspace at `root`, without the
/// variables cargo and rustup set for the process running aelimg (see
/// decision 0002), so it sees the toolchain and fingerprints a shell would.
pub(crate) fn workspace_tool(root: &Path, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(is_inherited_build_var) {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// `rustc -vV` as [`workspace_tool`] runs it in `root`: the compiler a
/// payload build there uses. Asked once per workspace and process (each
/// call through rustup's proxy costs about 45 ms here, and a build needs it
/// for every package's freshness stamp and for the provenance); `None`
/// when rustc cannot be run.
pub(crate) fn rustc_version_verbose(root: &Path) -> Option<Vec<u8>> {
    static ASKED: Mutex<BTreeMap<PathBuf, Option<Vec<u8>>>> = Mutex::new(BTreeMap::new());
    let mut asked = ASKED.lock().unwrap_or_else(PoisonError::into_inner);
    asked
        .entry(root.to_path_buf())
        .or_insert_with(|| {
            let out = workspace_tool(root, "rustc").arg("-vV").output().ok()?;
            out.status.success().then_some(out.stdout)
        })
        .clone()
}

/// The members of a cargo workspace and their binaries.
#[derive(Debug, Clone)]
pub struct CargoWorkspace {
    /// Workspace root directory.
    pub root: PathBuf,
    /// Target directory.
    pub target_dir: PathBuf,
    members: BTreeMap<String, Vec<String>>,
    /// Every member's Cargo.toml.
    manifests: Vec<PathBuf>,
}

impl CargoWorkspace {
    /// Reads `cargo metadata` for the workspace that contains `dir`, or
    /// what it said last time when nothing it depends on has changed (see
    /// [`super::metadata_cache`]).
    pub fn discover(dir: &Path) -> Result<Self> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        if let Some(a) = super::metadata_cache::lookup(&dir) {
            return Ok(Self::from_answer(a));
        }
        let answer = Self::ask_cargo(&dir)?;
        super::metadata_cache::remember(&dir, &answer);
        Ok(Self::from_answer(answer))
    }

    fn from_answer(a: super::metadata_cache::Answer) -> Self {
        Self {
            root: a.root,
            target_dir: a.target_dir,
            members: a.members,
            manifests: a.manifests,
        }
    }

    pub(super) fn ask_cargo(dir: &Path) -> Result<super::metadata_cache::Answer> {
        let meta = MetadataCommand::new()
            .current_dir(dir)
            .no_deps()
            .exec()
            .map_err(|e| Error::Cargo(format!("cargo metadata in {}: {e}", dir.display())))?;
        let members = meta
            .workspace_packages()
            .into_iter()
            .map(|p| {
                let bins = p
                    .targets
                    .iter()
                    .filter(|t| t.kind.contains(&TargetKind::Bin))
                    .map(|t| t.name.clone())
                    .collect();
                (p.name.to_string(), bins)
            })
            .collect();
        let manifests = meta
            .workspace_packages()
            .iter()
            .map(|p| p.manifest_path.clone().into_std_path_buf())
            .collect();
        Ok(super::metadata_cache::Answer {
            root: meta.workspace_root.into_std_path_buf(),
            target_dir: meta.target_directory.into_std_path_buf(),
            members,
            manifests,
        })
    }
}

impl CargoWorkspace {
    /// Every member's Cargo.toml.
    #[must_use]
    pub fn manifests(&self) -> &[PathBuf] {
        &self.manifests
    }
}

impl Workspace for CargoWorkspace {
    fn binaries(&self, package: &str) -> Option<Vec<String>> {
        self.members.get(package).cloned()
    }

    fn members(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }
}

/// Whether an environment variable is one that cargo or rustup set for the
/// process that runs aelimg (`cargo run`, `cargo test`, a build script, an
/// xtask), rather than the user's own configuration.
///
/// The payload's cargo must not inherit them: a toolchain override would
/// build with another compiler than `rust-toolchain.toml` pins, and cargo
/// records some of them (ring's build script records `CARGO_MANIFEST_DIR`)
/// in its fingerprints, so a build under `cargo test` and one from a shell
/// would keep invalidating each other's artifacts: a full rebuild of the
/// payload, minutes, at every switch. `CARGO_HOME`, `CARGO_TARGET_DIR`,
/// `CARGO_BUILD_*`, `CARGO_PROFILE_*`, `CARGO_NET_*` and the like are the
/// user's and are kept.
fn is_inherited_build_var(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "CARGO_MAKEFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "OUT_DIR",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "RUSTUP_TOOLCHAIN_SOURCE",
        "RUST_RECURSION_COUNT",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_BIN_EXE_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
    ];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::is_inherited_build_var;

    #[test]
    fn cargo_set_variables_are_dropped_user_configuration_is_kept() {
        for k in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_VERSION",
            "CARGO_BIN_EXE_aelimg",
            "RUSTUP_TOOLCHAIN",
            "CARGO",
            "RUSTFLAGS",
        ] {
            assert!(is_inherited_build_var(k), "{k}");
        }
        for k in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "CARGO_PROFILE_RELEASE_LTO",
            "CARGO_NET_OFFLINE",
            "CC_aarch64_unknown_linux_musl",
            "PATH",
        ] {
            assert!(!is_inherited_build_var(k), "{k}");
        }
    }
}
