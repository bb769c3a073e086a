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
use crate::plan::Workspace;
use crate::platform::Platform;

/// `(package, bin)`.
pub type BinId = (String, String);

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
        cmd.current_dir(&self.workspace.root)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .env_remove("RUSTC_WRAPPER");
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
        let packages: BTreeSet<&String> = all.iter().map(|(p, _)| p).collect();
        for p in packages {
            cmd.arg("-p").arg(p);
        }
        for (_, b) in &all {
            cmd.arg("--bin").arg(b);
        }
        cmd.env("CARGO_ENCODED_RUSTFLAGS", self.rustflags())
            .env_remove("RUSTFLAGS")
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
                        if in_target && a.target.name == id.1 {
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
                        id.1, id.0, platform
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
                let p = self.dir.join(platform.rust_target()).join(&id.1);
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
