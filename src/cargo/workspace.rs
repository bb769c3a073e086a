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
/// for every package's freshness stamp and for the provenance), and
/// remembered across processes while nothing that picks the compiler
/// changes ([`super::metadata_cache`]); `None` when rustc cannot be run.
pub(crate) fn rustc_version_verbose(root: &Path) -> Option<Vec<u8>> {
    static ASKED: Mutex<BTreeMap<PathBuf, Option<Vec<u8>>>> = Mutex::new(BTreeMap::new());
    let mut asked = ASKED.lock().unwrap_or_else(PoisonError::into_inner);
    asked
        .entry(root.to_path_buf())
        .or_insert_with(|| {
            if let Some(v) = super::metadata_cache::rustc_lookup(root) {
                return Some(v);
            }
            let out = workspace_tool(root, "rustc").arg("-vV").output().ok()?;
            if !out.status.success() {
                return None;
            }
            let sysroot = workspace_tool(root, "rustc")
                .args(["--print", "sysroot"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
            if let Some(sysroot) = sysroot {
                super::metadata_cache::rustc_remember(root, &out.stdout, &sysroot);
            }
            Some(out.stdout)
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
    /// Whether a member has a build script.
    build_scripts: bool,
    /// Each member's directory.
    member_dirs: BTreeMap<String, PathBuf>,
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
            build_scripts: a.build_scripts,
            member_dirs: a.member_dirs,
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
        let build_scripts = meta
            .workspace_packages()
            .iter()
            .flat_map(|p| &p.targets)
            .any(|t| t.kind.contains(&TargetKind::CustomBuild));
        let member_dirs = meta
            .workspace_packages()
            .iter()
            .filter_map(|p| {
                let dir = p.manifest_path.parent()?.as_std_path().to_path_buf();
                Some((p.name.to_string(), dir))
            })
            .collect();
        Ok(super::metadata_cache::Answer {
            build_scripts,
            member_dirs,
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

    /// Each member's directory (where its Cargo.toml is), by package name.
    #[must_use]
    pub fn member_dirs(&self) -> &BTreeMap<String, PathBuf> {
        &self.member_dirs
    }

    /// Whether a member has a build script (which may read files that
    /// cargo's dep-info does not list).
    #[must_use]
    pub fn has_build_scripts(&self) -> bool {
        self.build_scripts
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

#[cfg(test)]
mod metadata_cache_tests {
    use std::fs;

    use std::path::Path;

    use super::CargoWorkspace;
    use crate::cargo::metadata_cache::{
        lookup_in, record_path, remember_in, rustc_lookup_in, rustc_remember_in,
    };

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// Asks cargo, remembers, and checks the record is served until a path
    /// the answer depends on changes, and that cargo's new answer differs.
    #[test]
    fn a_record_is_served_until_a_manifest_a_bin_a_member_or_a_config_changes() {
        let cache = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let root = ws.path();
        write(
            &root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"crates/*\"]\nresolver = \"2\"\n",
        );
        let pkg = |name: &str| {
            write(
                &root.join("crates").join(name).join("Cargo.toml"),
                &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
            );
            write(
                &root.join("crates").join(name).join("src/main.rs"),
                "fn main() {}\n",
            );
        };
        pkg("a");
        let dir = root.join("crates/a");
        let ask = || {
            let a = CargoWorkspace::ask_cargo(&dir).unwrap();
            remember_in(cache.path(), &dir, &a);
            a
        };
        let first = ask();
        assert_eq!(first.members["a"], vec!["a".to_string()]);
        assert_eq!(lookup_in(cache.path(), &dir), Some(first.clone()));

        // A new binary in src/bin.
        write(&dir.join("src/bin/extra.rs"), "fn main() {}\n");
        assert_eq!(lookup_in(cache.path(), &dir), None, "new src/bin file");
        let second = ask();
        assert!(second.members["a"].contains(&"extra".to_string()));
        assert_eq!(lookup_in(cache.path(), &dir), Some(second.clone()));

        // A new member matched by the workspace's glob.
        pkg("b");
        assert_eq!(lookup_in(cache.path(), &dir), None, "new member");
        let third = ask();
        assert!(third.members.contains_key("b"));

        // A target directory set in cargo's configuration.
        write(
            &root.join(".cargo/config.toml"),
            "[build]\ntarget-dir = \"elsewhere\"\n",
        );
        assert_eq!(lookup_in(cache.path(), &dir), None, "new config file");
        let fourth = ask();
        assert!(
            fourth.target_dir.ends_with("elsewhere"),
            "{:?}",
            fourth.target_dir
        );

        // An edited manifest.
        write(
            &root.join("crates/b/Cargo.toml"),
            "[package]\nname = \"b\"\nversion = \"0.2.0\"\nedition = \"2021\"\n[[bin]]\nname = \"bee\"\npath = \"src/main.rs\"\n",
        );
        assert_eq!(lookup_in(cache.path(), &dir), None, "edited manifest");
        assert_eq!(ask().members["b"], vec!["bee".to_string()]);

        // A record that is not JSON is a miss.
        fs::write(record_path(cache.path(), &dir), b"{").unwrap();
        assert_eq!(lookup_in(cache.path(), &dir), None);
    }

    /// A remembered `rustc -vV` is served until a rust-toolchain file
    /// appears or the compiler binary changes.
    #[test]
    fn a_rustc_record_is_served_until_the_toolchain_pin_or_the_compiler_changes() {
        let cache = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let sysroot = tempfile::tempdir().unwrap();
        let compiler = sysroot.path().join("bin/rustc");
        write(&compiler, "one");
        let root = ws.path();
        rustc_remember_in(cache.path(), root, b"rustc 1.0.0\n", sysroot.path());
        assert_eq!(
            rustc_lookup_in(cache.path(), root).as_deref(),
            Some(&b"rustc 1.0.0\n"[..])
        );
        write(&compiler, "two, updated");
        assert_eq!(rustc_lookup_in(cache.path(), root), None, "new compiler");
        rustc_remember_in(cache.path(), root, b"rustc 1.1.0\n", sysroot.path());
        assert!(rustc_lookup_in(cache.path(), root).is_some());
        write(
            &root.join("rust-toolchain.toml"),
            "[toolchain]\nchannel = \"1.2.0\"\n",
        );
        assert_eq!(rustc_lookup_in(cache.path(), root), None, "new pin");
    }
}
