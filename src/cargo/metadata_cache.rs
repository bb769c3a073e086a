//! Remembering what `cargo metadata --no-deps` said about a workspace.
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

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Bumped when what a record holds, or how it is checked, changes.
const VERSION: u32 = 1;

/// What aelimg keeps of `cargo metadata --no-deps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Answer {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub members: std::collections::BTreeMap<String, Vec<String>>,
    pub manifests: Vec<PathBuf>,
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
/// and the toolchain (all `CARGO*` and `RUSTUP*` variables) are in its name.
pub(super) fn record_path(cache: &Path, dir: &Path) -> PathBuf {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(&VERSION.to_le_bytes());
    field(dir.as_os_str().as_encoded_bytes());
    let mut vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            k.to_str()
                .is_some_and(|k| k.starts_with("CARGO") || k.starts_with("RUSTUP"))
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
