//! Remembering what `cargo metadata --no-deps` said about a workspace, and
//! what `rustc -vV` said in it.
//!
//! Every build starts by asking cargo where the workspace is, which members
//! and binaries it has and where its target directory is: about 60–70 ms
//! here, a third of a no-change rebuild. The answer depends only on
//! manifests, cargo configuration files, a few directories (a new member
//! matched by a glob, a new file in `src/bin`) and the environment, so it is
//! kept in the user's cache directory with the metadata (device, inode,
//! size, times) of every one of those paths, and of those that did not
//! exist. A record is used only when all of them are as recorded and the
//! environment is the same; anything else asks cargo again. A record that
//! cannot be read is a miss.
//!
//! `rustc -vV` (about 45 ms through rustup's proxy) is kept the same way,
//! watching what picks the toolchain (rust-toolchain files, rustup's
//! settings, the `rustc` on PATH, the environment) and the toolchain's own
//! compiler binary, so an update or another pin asks rustc again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Bumped when what a record holds, or how it is checked, changes.
const VERSION: u32 = 3;

/// What aelimg keeps of `cargo metadata --no-deps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Answer {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub members: std::collections::BTreeMap<String, Vec<String>>,
    pub manifests: Vec<PathBuf>,
    /// Whether a member has a build script.
    pub build_scripts: bool,
    /// Each member's directory (where its Cargo.toml is).
    pub member_dirs: std::collections::BTreeMap<String, PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    /// Every watched path with its stat stamp, `None` when it did not exist.
    watched: Vec<(PathBuf, Option<String>)>,
    answer: Answer,
}

fn stamp(p: &Path) -> Option<String> {
    std::fs::metadata(p)
        .ok()
        .map(|m| crate::file_digest::stat_stamp(&m))
}

/// Where records live: `$XDG_CACHE_HOME/aelimg/cargo-metadata`, else
/// `$HOME/.cache/aelimg/cargo-metadata`; `None` when neither is set.
fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("aelimg").join("cargo-metadata"))
}

/// The record's file for `dir` in this environment: the directory and every
/// variable cargo or rustup reads to find the workspace, its configuration
/// and the toolchain (all `CARGO*`, `RUSTUP*` and `RUSTC*` variables, and
/// `PATH`) are in its name.
pub(super) fn record_path(cache: &Path, dir: &Path) -> PathBuf {
    record_path_for("metadata", cache, dir)
}

fn record_path_for(kind: &str, cache: &Path, dir: &Path) -> PathBuf {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(&VERSION.to_le_bytes());
    field(kind.as_bytes());
    field(dir.as_os_str().as_encoded_bytes());
    let mut vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            k.to_str().is_some_and(|k| {
                k.starts_with("CARGO")
                    || k.starts_with("RUSTUP")
                    || k.starts_with("RUSTC")
                    || k == "PATH"
            })
        })
        .collect();
    vars.sort();
    for (k, v) in vars {
        field(k.as_encoded_bytes());
        field(v.as_encoded_bytes());
    }
    cache.join(format!("{}.json", hex::encode(&h.finalize()[..16])))
}

/// The paths whose change could change the answer for `dir`.
fn watched_paths(dir: &Path, answer: &Answer) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for a in dir.ancestors() {
        out.push(a.join("Cargo.toml"));
        out.push(a.join(".cargo").join("config.toml"));
        out.push(a.join(".cargo").join("config"));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        out.push(home.join("config.toml"));
        out.push(home.join("config"));
    }
    out.push(answer.root.clone());
    for m in &answer.manifests {
        out.push(m.clone());
        if let Some(pkg) = m.parent() {
            // A file added to src/ or src/bin/ can be a new binary; a new
            // directory beside a member can be a new member (globs).
            out.push(pkg.join("src"));
            out.push(pkg.join("src").join("bin"));
            if let Some(up) = pkg.parent() {
                out.push(up.to_path_buf());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The remembered answer for `dir`, when nothing it depends on changed.
pub(super) fn lookup(dir: &Path) -> Option<Answer> {
    lookup_in(&cache_dir()?, dir)
}

pub(super) fn lookup_in(cache: &Path, dir: &Path) -> Option<Answer> {
    let bytes = std::fs::read(record_path(cache, dir)).ok()?;
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    if record.version != VERSION {
        return None;
    }
    let now: Vec<(PathBuf, Option<String>)> = watched_paths(dir, &record.answer)
        .into_iter()
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect();
    (now == record.watched).then_some(record.answer)
}

/// Remembers `answer` for `dir` (best effort: a cache that cannot be
/// written is asked around).
pub(super) fn remember(dir: &Path, answer: &Answer) {
    if let Some(cache) = cache_dir() {
        remember_in(&cache, dir, answer);
    }
}

pub(super) fn remember_in(cache: &Path, dir: &Path, answer: &Answer) {
    let path = record_path(cache, dir);
    let watched = watched_paths(dir, answer)
        .into_iter()
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect();
    let record = Record {
        version: VERSION,
        watched,
        answer: answer.clone(),
    };
    if let Ok(bytes) = serde_json::to_vec(&record) {
        let _ = crate::fsutil::write_cache_record(&path, &bytes);
    }
}

#[derive(Serialize, Deserialize)]
struct RustcRecord {
    version: u32,
    watched: Vec<(PathBuf, Option<String>)>,
    sysroot: PathBuf,
    verbose_version: String,
}

/// What decides which compiler `rustc` is in `root`, and that compiler.
fn rustc_watched(root: &Path, sysroot: &Path) -> Vec<(PathBuf, Option<String>)> {
    let mut paths = Vec::new();
    for a in root.ancestors() {
        paths.push(a.join("rust-toolchain"));
        paths.push(a.join("rust-toolchain.toml"));
    }
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")));
    if let Some(home) = rustup_home {
        paths.push(home.join("settings.toml"));
    }
    // The first `rustc` on PATH: rustup's proxy, or a compiler itself.
    if let Some(path) = std::env::var_os("PATH")
        && let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join("rustc"))
            .find(|p| p.is_file())
    {
        paths.push(found);
    }
    paths.push(sysroot.join("bin").join("rustc"));
    paths.push(sysroot.join("lib").join("rustlib"));
    paths
        .into_iter()
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
}

/// The remembered `rustc -vV` of `root`, when nothing that picks the
/// compiler, nor the compiler, changed.
pub(super) fn rustc_lookup(root: &Path) -> Option<Vec<u8>> {
    rustc_lookup_in(&cache_dir()?, root)
}

pub(super) fn rustc_lookup_in(cache: &Path, root: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(record_path_for("rustc", cache, root)).ok()?;
    let r: RustcRecord = serde_json::from_slice(&bytes).ok()?;
    (r.version == VERSION && rustc_watched(root, &r.sysroot) == r.watched)
        .then(|| r.verbose_version.into_bytes())
}

/// Remembers `rustc -vV` of `root`, whose compiler lives in `sysroot`.
pub(super) fn rustc_remember(root: &Path, verbose_version: &[u8], sysroot: &Path) {
    if let Some(cache) = cache_dir() {
        rustc_remember_in(&cache, root, verbose_version, sysroot);
    }
}

pub(super) fn rustc_remember_in(cache: &Path, root: &Path, verbose_version: &[u8], sysroot: &Path) {
    let Ok(text) = std::str::from_utf8(verbose_version) else {
        return;
    };
    let record = RustcRecord {
        version: VERSION,
        watched: rustc_watched(root, sysroot),
        sysroot: sysroot.to_path_buf(),
        verbose_version: text.to_string(),
    };
    if let Ok(bytes) = serde_json::to_vec(&record) {
        let _ = crate::fsutil::write_cache_record(&record_path_for("rustc", cache, root), &bytes);
    }
}
