//! Building the payload binaries with cargo.
//!
//! aelimg runs `cargo build --release` once for all platforms of a build (one
//! `--target` per platform, so cargo schedules them together and its output
//! is never interleaved), and takes the paths of the binaries from cargo's
//! JSON messages, never by guessing them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Message, MetadataCommand, TargetKind};

use crate::error::{Error, Result};
pub use crate::plan::BinId;
use crate::plan::Workspace;
use crate::platform::Platform;

/// Built binaries per platform.
pub type Binaries = BTreeMap<(Platform, BinId), PathBuf>;

/// Something that produces the payload binaries; tests swap in prebuilt ones.
pub trait PayloadBuilder {
    /// Builds every binary for every platform.
    fn build(&self, wanted: &BTreeMap<Platform, BTreeSet<BinId>>) -> Result<Binaries>;
}

/// The members of a cargo workspace and their binaries.
#[derive(Debug, Clone)]
pub struct CargoWorkspace {
    /// Workspace root directory.
    pub root: PathBuf,
    /// Target directory.
    pub target_dir: PathBuf,
    members: BTreeMap<String, Vec<String>>,
}

impl CargoWorkspace {
    /// Reads `cargo metadata` for the workspace that contains `dir`.
    pub fn discover(dir: &Path) -> Result<Self> {
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
        Ok(Self {
            root: meta.workspace_root.into_std_path_buf(),
            target_dir: meta.target_directory.into_std_path_buf(),
            members,
        })
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

/// Runs cargo for real.
#[derive(Debug, Clone)]
pub struct CargoBuilder {
    /// The workspace.
    pub workspace: CargoWorkspace,
    /// Cargo profile (`release`).
    pub profile: String,
    /// Pass `--locked`.
    pub locked: bool,
}

impl CargoBuilder {
    fn rustflags(&self) -> String {
        // Static binaries, and no build-host paths inside them: the workspace
        // and cargo home are remapped so clones at different paths give the
        // same bytes.
        let mut flags = vec![
            "-Ctarget-feature=+crt-static".to_string(),
            format!(
                "--remap-path-prefix={}=/build",
                self.workspace.root.display()
            ),
        ];
        if let Some(home) = cargo_home() {
            flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
        }
        flags.join("\x1f")
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

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

impl PayloadBuilder for CargoBuilder {
    fn build(&self, wanted: &BTreeMap<Platform, BTreeSet<BinId>>) -> Result<Binaries> {
        let all: BTreeSet<&BinId> = wanted.values().flatten().collect();
        if all.is_empty() {
            return Ok(Binaries::new());
        }
        // Plain `cargo` run in the workspace root, with no inherited toolchain
        // override: rustup then honours the workspace's rust-toolchain.toml,
        // so every caller (a shell, `cargo test`, a script in /tmp) builds the
        // payload with the same pinned toolchain, and one caller's artifacts
        // stay fresh for the next.
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&self.workspace.root);
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(is_inherited_build_var) {
                cmd.env_remove(&key);
            }
        }
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(self.workspace.root.join("Cargo.toml"))
            .arg("--profile")
            .arg(&self.profile)
            .arg("--message-format=json-render-diagnostics");
        if self.locked {
            cmd.arg("--locked");
        }
        for p in wanted.keys() {
            cmd.arg("--target").arg(p.rust_target());
        }
        let packages: BTreeSet<&String> = all.iter().map(|id| &id.package).collect();
        for p in packages {
            cmd.arg("-p").arg(p);
        }
        for id in &all {
            cmd.arg("--bin").arg(&id.bin);
        }
        cmd.env("CARGO_ENCODED_RUSTFLAGS", self.rustflags())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Cargo(format!("cannot run cargo: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Cargo("no stdout from cargo".into()))?;
        let mut found = Binaries::new();
        for msg in Message::parse_stream(BufReader::new(stdout)) {
            let msg = msg.map_err(|e| Error::Cargo(format!("reading cargo output: {e}")))?;
            if let Message::CompilerArtifact(a) = msg {
                let Some(exe) = a.executable else { continue };
                let exe = exe.into_std_path_buf();
                for (platform, bins) in wanted {
                    let in_target = exe
                        .components()
                        .any(|c| c.as_os_str() == platform.rust_target());
                    for id in bins {
                        if in_target && a.target.name == id.bin {
                            found.insert((*platform, id.clone()), exe.clone());
                        }
                    }
                }
            }
        }
        let status = child
            .wait()
            .map_err(|e| Error::Cargo(format!("waiting for cargo: {e}")))?;
        if !status.success() {
            return Err(Error::Cargo(format!(
                "cargo build failed ({status}); its messages are above"
            )));
        }
        for (platform, bins) in wanted {
            for id in bins {
                if !found.contains_key(&(*platform, id.clone())) {
                    return Err(Error::Cargo(format!(
                        "cargo reported no binary `{}` of package `{}` for {}",
                        id.bin, id.package, platform
                    )));
                }
            }
        }
        Ok(found)
    }
}

/// Binaries that already exist: `DIR/<rust-target>/<bin>`. For tests and for
/// builds whose binaries come from elsewhere (`--prebuilt DIR`).
#[derive(Debug, Clone)]
pub struct PrebuiltBinaries {
    /// The directory.
    pub dir: PathBuf,
}

impl PayloadBuilder for PrebuiltBinaries {
    fn build(&self, wanted: &BTreeMap<Platform, BTreeSet<BinId>>) -> Result<Binaries> {
        let mut out = Binaries::new();
        for (platform, bins) in wanted {
            for id in bins {
                let p = self.dir.join(platform.rust_target()).join(&id.bin);
                if !p.is_file() {
                    return Err(Error::Cargo(format!(
                        "prebuilt binary {} not found (expected DIR/<rust-target>/<bin>)",
                        p.display()
                    )));
                }
                out.insert((*platform, id.clone()), p);
            }
        }
        Ok(out)
    }
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
