//! Building the payload binaries with cargo.
//!
//! aelimg runs `cargo build --release -p PACKAGE` once per payload package,
//! for all platforms of a build at once (one `--target` per platform, so
//! cargo schedules them together and its output is never interleaved), and
//! takes the paths of the binaries from cargo's JSON messages, never by
//! guessing them. One package per invocation keeps cargo's feature
//! unification inside each package's own graph: a binary is the same
//! whatever other images a build holds.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use cargo_metadata::{MetadataCommand, TargetKind};

use crate::error::{Error, Result};
use crate::plan::Workspace;
pub use crate::plan::{BinId, Binaries};
use crate::platform::Platform;
use crate::progress::{Event, Progress};

pub mod auditable;
mod fresh;
mod units;

use units::{UnitCount, UnitGraph, estimate_units, read_messages, tree_package};

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

/// Something that produces the payload binaries; tests swap in prebuilt ones.
pub trait PayloadBuilder {
    /// Builds every binary for every platform, reporting to `progress` as
    /// it goes (the payload events of [`crate::progress::Event`]).
    fn build(
        &self,
        wanted: &BTreeMap<Platform, BTreeSet<BinId>>,
        progress: &dyn Progress,
    ) -> Result<Binaries>;
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
        let manifests = meta
            .workspace_packages()
            .iter()
            .map(|p| p.manifest_path.clone().into_std_path_buf())
            .collect();
        Ok(Self {
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

/// Binaries wanted, per platform.
type Wanted = BTreeMap<Platform, BTreeSet<BinId>>;

/// Runs cargo for real.
#[derive(Debug, Clone)]
pub struct CargoBuilder {
    /// The workspace.
    pub workspace: CargoWorkspace,
    /// Cargo profile (`release`).
    pub profile: String,
    /// Pass `--locked`.
    pub locked: bool,
    /// Ask cargo for colored messages (`--color=always`): its stderr is a
    /// pipe, whose lines reach the caller as progress events; say so when
    /// they end up on a terminal.
    pub color: bool,
    /// Skip cargo when the stamp of the last build says nothing changed
    /// (see the `fresh` module); off, cargo is always asked.
    pub trust_stamp: bool,
    /// Link each binary's dependency list into it, as cargo-auditable does
    /// (see [`auditable`]).
    pub embed_dependencies: bool,
}

impl CargoBuilder {
    /// Static binaries, and no build-host paths inside them, with flags that
    /// are the same for every checkout sharing a target directory.
    ///
    /// cargo hands rustc the sources of workspace members as paths relative
    /// to the workspace root, so the checkout's path never reaches a binary
    /// and needs no remapping; dependencies live under cargo home, and code
    /// generated by build scripts under the target directory, so those two
    /// are remapped. The checkout's path stays out of the flags because
    /// rustflags are part of every crate's fingerprint: a second clone (a git
    /// worktree, a CI workspace) sharing the target directory reuses every
    /// compiled dependency (decision 0008).
    fn rustflags(&self) -> String {
        let mut flags = vec![
            "-Ctarget-feature=+crt-static".to_string(),
            format!(
                "--remap-path-prefix={}=/target",
                self.workspace.target_dir.display()
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

impl CargoBuilder {
    /// `cargo` run in the workspace root with no inherited toolchain
    /// override: rustup then honours the workspace's rust-toolchain.toml,
    /// so every caller (a shell, `cargo test`, a script in /tmp) builds the
    /// payload with the same pinned toolchain, and one caller's artifacts
    /// stay fresh for the next.
    fn cargo(&self) -> Command {
        self.tool("cargo")
    }

    /// `program` (cargo or rustc) run as [`Self::cargo`] runs cargo.
    fn tool(&self, program: &str) -> Command {
        workspace_tool(&self.workspace.root, program)
    }

    /// How many compiler artifacts `cargo build` of `wanted` will report
    /// (see [`estimate_units`]); `None` when cargo cannot tell (the estimate
    /// is only for the progress bar: the build goes on, and says what
    /// failed).
    ///
    /// For each target, `cargo metadata` gives the kinds of targets and of
    /// dependencies, and `cargo tree` the packages this build really uses:
    /// the metadata's resolve unifies the features of every workspace member
    /// (aelimg's own dependencies switch on optional dependencies of shared
    /// crates), `cargo tree -p` those of the packages built, as `cargo build
    /// -p` does.
    fn estimate(&self, package: &str, wanted: &BTreeMap<Platform, BTreeSet<BinId>>) -> Option<u64> {
        let mut per_target = Vec::new();
        for (platform, bins) in wanted {
            let meta = self.run_for_estimate(|c| {
                c.args(["metadata", "--format-version=1", "--filter-platform"])
                    .arg(platform.rust_target());
            })?;
            let meta = MetadataCommand::parse(meta).ok()?;
            let tree = self.run_for_estimate(|c| {
                c.args([
                    "tree",
                    "-e",
                    "normal,build",
                    "--prefix",
                    "none",
                    "--format",
                    "{p}",
                ])
                .arg("--target")
                .arg(platform.rust_target())
                .arg("-p")
                .arg(package);
            })?;
            let used: BTreeSet<String> = tree.lines().filter_map(tree_package).collect();
            let mut graph = UnitGraph::of(&meta);
            graph
                .packages
                .retain(|_, p| used.contains(&format!("{} {}", p.name, p.version)));
            per_target.push((graph, bins.clone()));
        }
        Some(estimate_units(&per_target))
    }

    /// The stamp of the build `commands` run, when stamps are trusted and the
    /// compiler can be asked its version.
    fn stamp(&self, commands: &[&Command]) -> Option<fresh::Stamp> {
        if !self.trust_stamp {
            return None;
        }
        let out = self.tool("rustc").arg("-vV").output().ok()?;
        out.status.success().then(|| {
            fresh::Stamp::new(&fresh::StampInputs {
                cargo: commands,
                rustc_version: &out.stdout,
                root: &self.workspace.root,
                target_dir: &self.workspace.target_dir,
                manifests: &self.workspace.manifests,
                cargo_home: cargo_home().as_deref(),
            })
        })
    }

    /// Runs a cargo subcommand about the workspace (set up by `args`) and
    /// returns its stdout, `None` when it fails.
    fn run_for_estimate(&self, args: impl FnOnce(&mut Command)) -> Option<String> {
        let mut cmd = self.cargo();
        args(&mut cmd);
        cmd.arg("--manifest-path")
            .arg(self.workspace.root.join("Cargo.toml"))
            .env("CARGO_ENCODED_RUSTFLAGS", self.rustflags());
        if self.locked {
            cmd.arg("--locked");
        }
        let out = cmd.stderr(Stdio::null()).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl PayloadBuilder for CargoBuilder {
    /// One `cargo build -p PACKAGE` per package, each for every platform at
    /// once, so that each binary is built with the features of its own
    /// package's dependency graph, as `cargo build -p` alone would build it
    /// and `cargo tree -p` lists it: never with features another payload
    /// package of the same build switches on (with both packages in one
    /// invocation, native-tools' binary depended on whether ael was built
    /// beside it).
    fn build(
        &self,
        wanted: &BTreeMap<Platform, BTreeSet<BinId>>,
        progress: &dyn Progress,
    ) -> Result<Binaries> {
        let mut by_package: BTreeMap<&str, BTreeMap<Platform, BTreeSet<BinId>>> = BTreeMap::new();
        for (platform, bins) in wanted {
            for id in bins {
                by_package
                    .entry(id.package.as_str())
                    .or_default()
                    .entry(*platform)
                    .or_default()
                    .insert(id.clone());
            }
        }
        let mut found = Binaries::new();
        for (package, wanted) in &by_package {
            found.extend(self.build_package(package, wanted, progress)?);
        }
        Ok(found)
    }
}

impl CargoBuilder {
    /// Builds the binaries `wanted` of one package.
    ///
    /// Without [`Self::embed_dependencies`], one `cargo build` for every
    /// platform at once. With it, one `cargo rustc` per platform and binary
    /// (cargo hands extra rustc arguments to one target only), each linking
    /// that binary's dependency list (see [`auditable`]); dependencies are
    /// compiled by the first and are fresh for the others.
    fn build_package(
        &self,
        package: &str,
        wanted: &BTreeMap<Platform, BTreeSet<BinId>>,
        progress: &dyn Progress,
    ) -> Result<Binaries> {
        let platforms: Vec<Platform> = wanted.keys().copied().collect();
        let started = Instant::now();
        let started_at = SystemTime::now();
        let invocations = self.invocations(package, wanted)?;
        let commands: Vec<&Command> = invocations.iter().map(|(c, _)| c).collect();
        let stamp = self.stamp(&commands);
        if let Some(found) = stamp.as_ref().and_then(|s| s.check(wanted)) {
            progress.event(&Event::PayloadUpToDate {
                package,
                platforms: &platforms,
                binaries: found.len(),
            });
            return Ok(found);
        }
        let estimate = self.estimate(package, wanted);
        progress.event(&Event::PayloadStarted {
            package,
            platforms: &platforms,
            estimate,
        });
        let mut count = UnitCount::new(estimate);
        let mut found = Binaries::new();
        for (cmd, subset) in invocations {
            found.extend(run_cargo(cmd, package, &subset, &mut count, progress)?);
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
        if let Some(stamp) = &stamp {
            stamp.record(&found, started_at);
        }
        progress.event(&Event::PayloadFinished {
            units: count.done,
            fresh: count.fresh,
            elapsed: started.elapsed(),
        });
        Ok(found)
    }

    /// The cargo commands that build `wanted` of `package`, each with the
    /// binaries it builds.
    fn invocations(
        &self,
        package: &str,
        wanted: &BTreeMap<Platform, BTreeSet<BinId>>,
    ) -> Result<Vec<(Command, Wanted)>> {
        if !self.embed_dependencies {
            let mut cmd = self.cargo_command("build", package);
            for p in wanted.keys() {
                cmd.arg("--target").arg(p.rust_target());
            }
            let all: BTreeSet<&BinId> = wanted.values().flatten().collect();
            for id in all {
                cmd.arg("--bin").arg(&id.bin);
            }
            return Ok(vec![(cmd, wanted.clone())]);
        }
        let objects = self.workspace.target_dir.join("aelimg-auditable");
        let mut out = Vec::new();
        for (platform, bins) in wanted {
            let crates = crate::sbom::crates::package_crates(
                &self.workspace,
                package,
                platform.rust_target(),
                self.locked,
            )?;
            let object = auditable::write_object(&objects, *platform, &crates)?;
            for id in bins {
                let mut cmd = self.cargo_command("rustc", package);
                cmd.arg("--target")
                    .arg(platform.rust_target())
                    .arg("--bin")
                    .arg(&id.bin)
                    .arg("--")
                    .args(auditable::rustc_args(&object));
                out.push((
                    cmd,
                    BTreeMap::from([(*platform, BTreeSet::from([id.clone()]))]),
                ));
            }
        }
        Ok(out)
    }

    /// `cargo SUBCOMMAND -p PACKAGE` with the profile, JSON messages and
    /// the payload's flags.
    fn cargo_command(&self, subcommand: &str, package: &str) -> Command {
        let mut cmd = self.cargo();
        cmd.arg(subcommand)
            .arg("--manifest-path")
            .arg(self.workspace.root.join("Cargo.toml"))
            .arg("--profile")
            .arg(&self.profile)
            .arg("--message-format=json-render-diagnostics");
        if self.locked {
            cmd.arg("--locked");
        }
        if self.color {
            cmd.arg("--color=always");
        }
        cmd.arg("-p").arg(package);
        cmd.env("CARGO_ENCODED_RUSTFLAGS", self.rustflags());
        cmd
    }
}

/// Runs one cargo command of `package`'s build, reading the binaries of
/// `wanted` from its messages.
fn run_cargo(
    mut cmd: Command,
    package: &str,
    wanted: &BTreeMap<Platform, BTreeSet<BinId>>,
    count: &mut UnitCount,
    progress: &dyn Progress,
) -> Result<Binaries> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Cargo(format!("cannot run cargo: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Cargo("no stdout from cargo".into()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| Error::Cargo("no stderr from cargo".into()))?;
    // stderr (status lines and rendered diagnostics) is read beside
    // stdout (the JSON messages), so that neither pipe fills up.
    let found = std::thread::scope(|s| {
        s.spawn(|| forward_lines(stderr, progress));
        let found = read_messages(BufReader::new(stdout), wanted, count, progress);
        if found.is_err() {
            let _ = child.kill();
        }
        found
    });
    let status = child
        .wait()
        .map_err(|e| Error::Cargo(format!("waiting for cargo: {e}")))?;
    let found = found?;
    if !status.success() {
        return Err(Error::Cargo(format!(
            "cargo build -p {package} failed ({status}); its messages are above"
        )));
    }
    Ok(found)
}

/// Sends each line of `from` as [`Event::PayloadOutput`] (invalid UTF-8
/// replaced, line endings removed) until it ends.
fn forward_lines(from: impl Read, progress: &dyn Progress) {
    let mut reader = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                progress.event(&Event::PayloadOutput {
                    line: line.trim_end_matches(['\n', '\r']),
                });
            }
        }
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
    fn build(
        &self,
        wanted: &BTreeMap<Platform, BTreeSet<BinId>>,
        progress: &dyn Progress,
    ) -> Result<Binaries> {
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
        if !out.is_empty() {
            let platforms: Vec<Platform> = wanted.keys().copied().collect();
            progress.event(&Event::PayloadPrebuilt {
                platforms: &platforms,
                binaries: out.len(),
            });
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
