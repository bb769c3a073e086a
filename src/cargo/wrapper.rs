//! aelimg as cargo's workspace rustc wrapper: how each payload binary gets
//! its dependency list ([`super::auditable`]) while one `cargo build`
//! compiles a package for every platform at once.
//!
//! cargo hands extra rustc arguments (`cargo rustc -- …`) to one target
//! of one platform only, and the list is an ELF object per platform, so
//! linking it that way took one cargo run per platform, one after the
//! other, each ending on a single busy core. As `RUSTC_WORKSPACE_WRAPPER`
//! (cargo-auditable's mechanism), aelimg sees the rustc command of each
//! workspace crate and adds the link arguments to the final binaries only.
//!
//! cargo puts the wrapper's name as given into the workspace crates'
//! fingerprints and into their `-C metadata` hash, which reaches the
//! binary's bytes. So the wrapper is a bare name, [`NAME`], found on a
//! `PATH` that starts with a directory of the target directory holding a
//! script of that name ([`install`]), the same bytes for every aelimg,
//! which runs the aelimg named in `AELIMG_RUSTC_WRAPPER`. Binaries are
//! then the same on every machine and in every target directory, and a
//! debug and a release aelimg, or two checkouts sharing the target
//! directory, leave the crates fresh for each other. cargo does not know
//! about the objects: a list follows from the payload stamp's inputs
//! (manifests, Cargo.lock, rustc's and aelimg's versions), so a change
//! misses the stamp, and it changes the dependency graph, which relinks the
//! binary; docs/decisions/0023 says what covers the rest.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// The wrapper's name: `RUSTC_WORKSPACE_WRAPPER`, and the script's file name.
pub const NAME: &str = "aelimg-rustc-wrapper";

/// The first argument that makes `aelimg` run as the rustc wrapper.
pub const ARG: &str = "__rustc-wrapper";

/// The aelimg executable the script runs.
pub const EXE_VAR: &str = "AELIMG_RUSTC_WRAPPER";

/// Which object each final binary links: JSON, `{"CRATE TARGET": PATH}`.
pub const OBJECTS_VAR: &str = "AELIMG_DEPENDENCY_OBJECTS";

/// The script cargo runs; the same bytes for every aelimg version.
const SCRIPT: &str = "#!/bin/sh\n\
# aelimg's rustc wrapper for the payload's workspace crates\n\
# (docs/decisions/0023): it runs the aelimg that started cargo.\n\
exec \"${AELIMG_RUSTC_WRAPPER:?is set by the aelimg that runs cargo}\" __rustc-wrapper \"$@\"\n";

/// Writes the wrapper script [`NAME`] into `dir` unless it is there
/// already, and returns `dir` (for [`configure`]).
///
/// # Errors
/// When it cannot be written.
pub fn install(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(NAME);
    let current = fs::read(&path).ok();
    let executable = fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o111 == 0o111);
    if current.as_deref() == Some(SCRIPT.as_bytes()) && executable {
        return Ok(dir.to_path_buf());
    }
    crate::fsutil::atomic_write_executable(&path, SCRIPT.as_bytes())?;
    Ok(dir.to_path_buf())
}

/// The objects of one cargo run: `(crate name, rust target)` of each final
/// binary to the object it links.
pub type Objects = BTreeMap<(String, String), PathBuf>;

/// Has `cmd` (a cargo command) run the script [`install`] put into
/// `script_dir` as its workspace wrapper, with `exe` as the aelimg behind
/// it; [`link`] then says which objects to link.
///
/// # Errors
/// When `script_dir` cannot be put on `PATH` (it holds a `:`).
pub fn configure(cmd: &mut Command, script_dir: &Path, exe: &Path) -> Result<()> {
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(script_dir.to_path_buf()).chain(std::env::split_paths(&inherited)),
    )
    .map_err(|e| {
        Error::Cargo(format!(
            "cannot put {} on PATH for cargo's rustc wrapper: {e}",
            script_dir.display()
        ))
    })?;
    cmd.env("PATH", path)
        .env("RUSTC_WORKSPACE_WRAPPER", NAME)
        .env(EXE_VAR, exe);
    Ok(())
}

/// Has the wrapper of `cmd` (see [`configure`]) link `objects`.
///
/// # Errors
/// When a path is not UTF-8 (the objects travel as JSON).
pub fn link(cmd: &mut Command, objects: &Objects) -> Result<()> {
    let mut map = serde_json::Map::new();
    for ((krate, target), path) in objects {
        let path = path.to_str().ok_or_else(|| {
            Error::Cargo(format!(
                "the dependency-list object {} has a path that is not UTF-8",
                path.display()
            ))
        })?;
        map.insert(object_key(krate, target), path.into());
    }
    cmd.env(OBJECTS_VAR, serde_json::Value::Object(map).to_string());
    Ok(())
}

/// How [`OBJECTS_VAR`] names the final binary `krate` for `target`.
fn object_key(krate: &str, target: &str) -> String {
    format!("{krate} {target}")
}

/// The crate name rustc gives a binary's crate: `-` becomes `_`.
#[must_use]
pub fn crate_name(bin: &str) -> String {
    bin.replace('-', "_")
}

/// Runs as the wrapper when `args` (the process's, program first) say so:
/// `aelimg __rustc-wrapper RUSTC ARGS…`. Replaces the process with rustc
/// and returns only when it cannot: the exit code to end with.
#[must_use]
pub fn run_if_asked(args: &[OsString]) -> Option<u8> {
    if args.get(1).map(OsString::as_os_str) != Some(OsStr::new(ARG)) {
        return None;
    }
    let Some((rustc, rest)) = args[2..].split_first() else {
        eprintln!("aelimg {ARG}: no rustc to run (cargo runs this as RUSTC_WORKSPACE_WRAPPER)");
        return Some(2);
    };
    if let Some(message) = not_a_rustc(rustc) {
        eprintln!("aelimg {ARG}: {message}");
        return Some(2);
    }
    let objects = std::env::var(OBJECTS_VAR).unwrap_or_default();
    let extra = match link_args(rest, &objects) {
        Ok(extra) => extra,
        Err(e) => {
            eprintln!("aelimg {ARG}: {e}");
            return Some(2);
        }
    };
    let err = std::os::unix::process::CommandExt::exec(Command::new(rustc).args(rest).args(extra));
    eprintln!(
        "aelimg {ARG}: cannot run {}: {err}",
        rustc.to_string_lossy()
    );
    Some(2)
}

/// Why `first` cannot be the rustc cargo hands its workspace wrapper, if
/// it cannot: an option (`-E`, `-vV`) means the wrapper was run as a
/// compiler. sccache as cargo's `RUSTC_WRAPPER` does that when it cannot
/// tell a workspace wrapper from a C compiler (mozilla/sccache#1674: it
/// probes with `-E testfile.c`), as it does for cargo-auditable.
fn not_a_rustc(first: &OsStr) -> Option<String> {
    let first = first.to_string_lossy();
    first.starts_with('-').then(|| {
        format!(
            "run as a compiler (`{first} …`), not as cargo's RUSTC_WORKSPACE_WRAPPER \
             with a rustc to run: a rustc wrapper set for cargo (build.rustc-wrapper, \
             such as sccache, mozilla/sccache#1674) probes the workspace wrapper as \
             if it were a C compiler; build with --no-auditable, or without that \
             wrapper"
        )
    })
}

/// The arguments to add to the rustc command `args`: the object's link
/// arguments when it compiles a binary crate named in `objects` (as
/// [`link`] encodes them) for that target; none otherwise.
///
/// # Errors
/// When `objects` is not the map [`link`] writes, or an `@file` of
/// arguments cannot be read.
pub fn link_args(args: &[OsString], objects: &str) -> Result<Vec<String>> {
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    let objects: BTreeMap<String, String> = serde_json::from_str(objects)
        .map_err(|e| Error::Cargo(format!("{OBJECTS_VAR} is not a JSON map of paths: {e}")))?;
    let args = expand_arg_files(args)?;
    let (mut name, mut target, mut bin) = (None, None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        let mut value = |flag: &str| -> Option<String> {
            if a == flag {
                it.next().map(|v| v.to_string_lossy().into_owned())
            } else {
                a.strip_prefix(flag)
                    .and_then(|v| v.strip_prefix('='))
                    .map(str::to_owned)
            }
        };
        if let Some(v) = value("--crate-name") {
            name = Some(v);
        } else if let Some(v) = value("--target") {
            target = Some(v);
        } else if let Some(v) = value("--crate-type") {
            bin |= v.split(',').any(|t| t == "bin");
        }
    }
    let (Some(name), Some(target), true) = (name, target, bin) else {
        return Ok(Vec::new());
    };
    Ok(objects
        .get(&object_key(&name, &target))
        .map(|object| super::auditable::rustc_args(Path::new(object)))
        .unwrap_or_default())
}

/// `args` with each `@path` replaced by the lines of that file, as rustc
/// reads them (cargo writes one when a command line is too long).
fn expand_arg_files(args: &[OsString]) -> Result<Vec<OsString>> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        match a.to_str().and_then(|s| s.strip_prefix('@')) {
            Some(file) => {
                let text = fs::read_to_string(file)
                    .ctx(|| format!("cannot read the rustc argument file {file}"))?;
                out.extend(text.lines().map(OsString::from));
            }
            None => out.push(a.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    const OBJECTS: &str = r#"{"ael x86_64-unknown-linux-musl": "/t/a.o", "ael aarch64-unknown-linux-musl": "/t/b.o"}"#;

    #[test]
    fn a_final_binary_for_a_listed_target_links_its_object() {
        let args = os(&[
            "--crate-name",
            "ael",
            "--edition=2024",
            "runtime/src/main.rs",
            "--crate-type",
            "bin",
            "--target",
            "aarch64-unknown-linux-musl",
        ]);
        assert_eq!(
            link_args(&args, OBJECTS).unwrap(),
            [
                "-Clink-arg=/t/b.o",
                "-Clink-arg=-u",
                "-Clink-arg=AUDITABLE_VERSION_INFO"
            ]
        );
        let joined = os(&[
            "--crate-name=ael",
            "--crate-type=bin",
            "--target=x86_64-unknown-linux-musl",
        ]);
        assert_eq!(link_args(&joined, OBJECTS).unwrap()[0], "-Clink-arg=/t/a.o");
    }

    #[test]
    fn libraries_other_crates_targets_and_host_builds_are_left_alone() {
        let cases = [
            // A library of the same name.
            &[
                "--crate-name",
                "ael",
                "--crate-type",
                "lib",
                "--target",
                "x86_64-unknown-linux-musl",
            ][..],
            // Another binary.
            &[
                "--crate-name",
                "other",
                "--crate-type",
                "bin",
                "--target",
                "x86_64-unknown-linux-musl",
            ],
            // A platform without an object.
            &[
                "--crate-name",
                "ael",
                "--crate-type",
                "bin",
                "--target",
                "riscv64gc-unknown-linux-musl",
            ],
            // No --target: the host (a build script).
            &["--crate-name", "ael", "--crate-type", "bin"],
            // cargo asking rustc for its version.
            &["-vV"],
        ];
        for args in cases {
            assert!(
                link_args(&os(args), OBJECTS).unwrap().is_empty(),
                "{args:?}"
            );
        }
        let args = os(&[
            "--crate-name",
            "ael",
            "--crate-type",
            "bin",
            "--target",
            "x86_64-unknown-linux-musl",
        ]);
        assert!(link_args(&args, "").unwrap().is_empty(), "no objects");
        let err = link_args(&args, "not json").unwrap_err().to_string();
        assert!(err.contains(OBJECTS_VAR), "{err}");
    }

    #[test]
    fn arguments_in_a_file_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("args");
        fs::write(
            &file,
            "--crate-name\nael\n--crate-type\nbin\n--target\nx86_64-unknown-linux-musl\n",
        )
        .unwrap();
        let args = vec![OsString::from(format!("@{}", file.display()))];
        assert_eq!(link_args(&args, OBJECTS).unwrap()[0], "-Clink-arg=/t/a.o");
        let missing = vec![OsString::from("@/nonexistent/args")];
        assert!(link_args(&missing, OBJECTS).is_err());
    }

    #[test]
    fn an_option_in_place_of_rustc_is_explained() {
        // What sccache runs when it takes the wrapper for a C compiler.
        let msg = not_a_rustc(OsStr::new("-E")).unwrap();
        assert!(msg.contains("`-E …`"), "{msg}");
        assert!(msg.contains("--no-auditable"), "{msg}");
        assert!(not_a_rustc(OsStr::new("-vV")).is_some());
        for rustc in [
            "rustc",
            "/root/.rustup/toolchains/stable/bin/rustc",
            "clippy-driver",
        ] {
            assert_eq!(not_a_rustc(OsStr::new(rustc)), None, "{rustc}");
        }
    }

    #[test]
    fn the_script_is_installed_once_and_runnable() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(install(dir.path()).unwrap(), dir.path());
        let path = dir.path().join(NAME);
        assert_eq!(fs::read_to_string(&path).unwrap(), SCRIPT);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(install(dir.path()).unwrap(), dir.path());
        assert_eq!(
            fs::metadata(&path).unwrap().modified().unwrap(),
            before,
            "not rewritten"
        );
        assert!(run_if_asked(&os(&["aelimg", "build"])).is_none());
        assert_eq!(run_if_asked(&os(&["aelimg", ARG])), Some(2), "no rustc");
    }
}
