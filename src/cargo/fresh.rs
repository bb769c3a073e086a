//! Knowing that the payload is up to date without asking cargo.
//!
//! Even with nothing to do, `cargo build` of the payload takes about 0.25 s
//! here (it checks every unit's fingerprint for both targets), which is most
//! of a rebuild after a workflow edit. After each build that cargo finishes,
//! aelimg writes a stamp in the target directory: a digest of everything
//! that decides the build other than source files (the cargo command line,
//! the environment it runs in, the compiler's version, the workspace's
//! manifests, Cargo.lock, the toolchain file and cargo configuration) and
//! the size, times and inode of every local source file the binaries were
//! built from, as cargo itself lists them in each binary's dep-info file
//! (`target/<triple>/<profile>/<bin>.d`: every file of every path package,
//! files pulled in with `include_str!`, build-script `rerun-if-changed`
//! paths), and of the binaries themselves. When all of them are as
//! recorded, cargo would find every unit fresh, and is not run.
//!
//! Registry and git dependencies are pinned by Cargo.lock and never change
//! in place. Anything the stamp cannot vouch for makes it miss, and cargo
//! decides as before: a miss costs 0.25 s, a wrong hit would ship a stale
//! binary, so every doubt counts as a miss. A file changed while cargo runs
//! (its mtime or ctime is not older than the build's start, less a second
//! of clock granularity) leaves no stamp at all.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::plan::{BinId, Binaries};
use crate::platform::Platform;

/// Bumped when what the stamp records, or how, changes.
const FORMAT: u32 = 4;

/// Environment variables that never reach a compiler's output: the shell's
/// and the terminal's, and which aelimg executable serves as the rustc
/// wrapper (a debug and a release aelimg link the same objects; the stamp
/// names aelimg's version). Any other variable is part of the stamp's
/// inputs (over-inclusion only costs a miss).
const VOLATILE: &[&str] = &[
    super::wrapper::EXE_VAR,
    "_",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "COLUMNS",
    "LINES",
    "TERM",
    "COLORTERM",
    "TERM_PROGRAM",
    "TERM_PROGRAM_VERSION",
    "TERM_SESSION_ID",
    "WINDOWID",
    "DISPLAY",
    "TMUX",
    "TMUX_PANE",
    "STY",
    "SSH_AUTH_SOCK",
    "SSH_CLIENT",
    "SSH_CONNECTION",
    "SSH_TTY",
    "LS_COLORS",
    "PS1",
    "PS2",
    "PROMPT_COMMAND",
    "HISTFILE",
    "HISTSIZE",
    "MAIL",
    "LESSOPEN",
    "LESSCLOSE",
];

/// What a file looked like: enough that any write to it changes one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FileStat {
    pub(super) path: PathBuf,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl FileStat {
    /// The file's stat now; `None` when it cannot be read.
    pub(super) fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            path: path.to_path_buf(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
        })
    }

    /// Whether the file was written at or after `since`.
    pub(super) fn changed_since(&self, since_ns: i128) -> bool {
        self.mtime_ns >= since_ns || self.ctime_ns >= since_ns
    }
}

/// One binary of the payload, as cargo left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct BinaryRecord {
    platform: String,
    package: String,
    bin: String,
    pub(super) stat: FileStat,
}

/// The stamp file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    format: u32,
    inputs: String,
    sources: Vec<FileStat>,
    binaries: Vec<BinaryRecord>,
}

/// The stamp of one payload build command.
pub(super) struct Stamp {
    path: PathBuf,
    inputs: String,
}

/// What a [`Stamp`] is computed from, besides the files it stats.
pub(super) struct StampInputs<'a> {
    /// The cargo commands, as they will run.
    pub cargo: &'a [&'a Command],
    /// The compiler's `rustc -vV`, run as cargo would run it.
    pub rustc_version: &'a [u8],
    /// The workspace root.
    pub root: &'a Path,
    /// The target directory (the stamp is written under it).
    pub target_dir: &'a Path,
    /// The workspace members' manifests.
    pub manifests: &'a [PathBuf],
    /// Cargo home, whose config.toml applies to every build.
    pub cargo_home: Option<&'a Path>,
}

impl Stamp {
    /// The stamp of the build `inputs` describe, computed now (before cargo
    /// runs, so that a change made while it runs is seen next time).
    pub(super) fn new(inputs: &StampInputs<'_>) -> Self {
        let mut command_key = Sha256::new();
        for cmd in inputs.cargo {
            command_key.update([1]);
            command_key.update(cmd.get_program().as_encoded_bytes());
            for a in cmd.get_args() {
                command_key.update([0]);
                command_key.update(a.as_encoded_bytes());
            }
        }
        let name = hex::encode(&command_key.finalize()[..8]);
        Self {
            path: inputs
                .target_dir
                .join("aelimg-payload")
                .join(format!("{name}.json")),
            // By stat, a file that cannot be read is an input ("missing"),
            // so there is always a digest; an empty one never matches.
            inputs: inputs_digest(inputs, WatchBy::Stat).unwrap_or_default(),
        }
    }

    /// The binaries of `wanted` when the stamp says cargo has nothing to
    /// do: every input, source file and binary as recorded.
    pub(super) fn check(
        &self,
        wanted: &BTreeMap<Platform, std::collections::BTreeSet<BinId>>,
    ) -> Option<Binaries> {
        let text = std::fs::read(&self.path).ok()?;
        let record: Record = serde_json::from_slice(&text).ok()?;
        if record.format != FORMAT || self.inputs.is_empty() || record.inputs != self.inputs {
            return None;
        }
        for s in &record.sources {
            if FileStat::of(&s.path).as_ref() != Some(s) {
                return None;
            }
        }
        binaries_if_unchanged(&record.binaries, wanted)
    }

    /// Records `found` as built from `sources` (as [`sources_of`] lists
    /// them after cargo ran, or the files of this checkout that another
    /// checkout's identical files built them from), when none changed after
    /// `started`; `None` (the sources could not be listed) removes the
    /// stamp. Best effort: a stamp that cannot be written only means cargo
    /// is asked next time.
    pub(super) fn record(
        &self,
        found: &Binaries,
        sources: Option<&[PathBuf]>,
        started: SystemTime,
    ) {
        let record = sources.and_then(|s| self.describe(found, s, started));
        write_record(&self.path, record.as_ref());
    }

    fn describe(&self, found: &Binaries, paths: &[PathBuf], started: SystemTime) -> Option<Record> {
        let since = since_ns(started)?;
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            let stat = FileStat::of(path)?;
            if stat.changed_since(since) {
                return None;
            }
            sources.push(stat);
        }
        Some(Record {
            format: FORMAT,
            inputs: self.inputs.clone(),
            sources,
            binaries: binary_records(found)?,
        })
    }
}

/// Writes `record` to `path` (creating its directory), or removes `path`
/// when there is none. Best effort, as every reader treats a record it
/// cannot read as a miss.
pub(super) fn write_record<T: Serialize>(path: &Path, record: Option<&T>) {
    let Some(record) = record else {
        let _ = std::fs::remove_file(path);
        return;
    };
    let Ok(bytes) = serde_json::to_vec(record) else {
        return;
    };
    if let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = crate::fsutil::write_cache_record(path, &bytes);
    }
}

/// `started` less a second of clock granularity, in ns since the epoch:
/// a file whose mtime or ctime is not older was (or may have been) written
/// while the build ran.
pub(super) fn since_ns(started: SystemTime) -> Option<i128> {
    started
        .checked_sub(Duration::from_secs(1))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// Every file the binaries of `found` were built from, as cargo lists them
/// in each binary's dep-info file; sorted, without repeats. `None` when a
/// dep-info file cannot be read.
pub(super) fn sources_of(found: &Binaries) -> Option<Vec<PathBuf>> {
    let mut sources = std::collections::BTreeSet::new();
    for exe in found.values() {
        let mut dep_info = exe.clone().into_os_string();
        dep_info.push(".d");
        let text = std::fs::read_to_string(PathBuf::from(dep_info)).ok()?;
        sources.extend(dep_info_paths(&text)?);
    }
    Some(sources.into_iter().collect())
}

/// The stat of each binary of `found`; `None` when one is missing.
pub(super) fn binary_records(found: &Binaries) -> Option<Vec<BinaryRecord>> {
    found
        .iter()
        .map(|((platform, id), exe)| {
            Some(BinaryRecord {
                platform: platform.to_string(),
                package: id.package.clone(),
                bin: id.bin.clone(),
                stat: FileStat::of(exe)?,
            })
        })
        .collect()
}

/// The binaries `records` name, when each is still as recorded and they
/// are exactly those of `wanted`.
pub(super) fn binaries_if_unchanged(
    records: &[BinaryRecord],
    wanted: &BTreeMap<Platform, std::collections::BTreeSet<BinId>>,
) -> Option<Binaries> {
    let mut found = Binaries::new();
    for b in records {
        if FileStat::of(&b.stat.path).as_ref() != Some(&b.stat) {
            return None;
        }
        let platform = Platform::parse(&b.platform).ok()?;
        let id = BinId {
            package: b.package.clone(),
            bin: b.bin.clone(),
        };
        found.insert((platform, id), b.stat.path.clone());
    }
    let complete = wanted
        .iter()
        .flat_map(|(p, bins)| bins.iter().map(move |b| (*p, b.clone())))
        .all(|k| found.contains_key(&k));
    let count: usize = wanted.values().map(std::collections::BTreeSet::len).sum();
    (complete && found.len() == count).then_some(found)
}

/// How [`inputs_digest`] sees the watched files.
#[derive(Clone, Copy)]
pub(super) enum WatchBy<'a> {
    /// By path and stat: the checkout's own stamp.
    Stat,
    /// By content, with the workspace root written as `<root>` in the
    /// commands and in the names of the files under it, so that a checkout
    /// of the same sources at another path gets the same digest (see
    /// [`super::reuse`]). Files outside the root that do not exist are left
    /// out: the ancestors of two checkouts differ in number.
    Content(&'a Path),
}

/// A digest of everything that decides the build other than source files:
/// the cargo commands, their environment, the compiler's version and the
/// watched files. `None` when a watched file that exists cannot be read
/// (only by content).
pub(super) fn inputs_digest(inputs: &StampInputs<'_>, by: WatchBy<'_>) -> Option<String> {
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((value.len() as u64).to_le_bytes());
        h.update(value);
    };
    let root = match by {
        WatchBy::Stat => None,
        WatchBy::Content(root) => Some(root.as_os_str().as_encoded_bytes()),
    };
    // The target directory first: it may be inside the root (then the
    // record is not shared anyway) or outside it, shared by checkouts.
    let target = inputs.target_dir.as_os_str().as_encoded_bytes();
    let placed = |v: &[u8]| -> Vec<u8> {
        match root {
            Some(r) if !r.is_empty() && !target.is_empty() => {
                replace_bytes(&replace_bytes(v, target, b"<target>"), r, b"<root>")
            }
            _ => v.to_vec(),
        }
    };
    field("format", &FORMAT.to_le_bytes());
    field("aelimg", env!("CARGO_PKG_VERSION").as_bytes());
    field("by", if root.is_some() { b"content" } else { b"stat" });
    for cmd in inputs.cargo {
        field("program", cmd.get_program().as_encoded_bytes());
        for a in cmd.get_args() {
            field("arg", &placed(a.as_encoded_bytes()));
        }
        if let Some(dir) = cmd.get_current_dir() {
            field("cwd", &placed(dir.as_os_str().as_encoded_bytes()));
        }
        for (k, v) in environment(cmd) {
            // By content, how the target directory was named does not
            // matter: the record is only found in it.
            if root.is_some() && (k == "CARGO_TARGET_DIR" || k == "CARGO_BUILD_TARGET_DIR") {
                continue;
            }
            field("env", k.as_encoded_bytes());
            field("=", v.as_encoded_bytes());
        }
    }
    field("rustc", inputs.rustc_version);
    for f in watched_files(inputs.root, inputs.manifests, inputs.cargo_home) {
        match by {
            WatchBy::Stat => {
                field("file", f.as_os_str().as_encoded_bytes());
                match FileStat::of(&f) {
                    Some(s) => {
                        field("len", &s.len.to_le_bytes());
                        field("mtime", &s.mtime_ns.to_le_bytes());
                        field("ctime", &s.ctime_ns.to_le_bytes());
                        field("ino", &s.ino.to_le_bytes());
                    }
                    None => field("missing", &[]),
                }
            }
            WatchBy::Content(root) => {
                let inside = f.strip_prefix(root).ok();
                let bytes = match std::fs::read(&f) {
                    Ok(b) => Some(b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(_) => return None,
                };
                match (inside, bytes) {
                    (Some(rel), b) => {
                        field(
                            "file",
                            &[b"<root>/", rel.as_os_str().as_encoded_bytes()].concat(),
                        );
                        match b {
                            Some(b) => field("sha256", &Sha256::digest(&b)),
                            None => field("missing", &[]),
                        }
                    }
                    (None, Some(b)) => {
                        field("file", f.as_os_str().as_encoded_bytes());
                        field("sha256", &Sha256::digest(&b));
                    }
                    (None, None) => {}
                }
            }
        }
    }
    Some(hex::encode(h.finalize()))
}

/// `haystack` with every occurrence of `needle` replaced by `with`.
fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// The environment cargo will run in: the process's, with the command's
/// changes applied, less the volatile variables; sorted.
fn environment(cmd: &Command) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => env.insert(k.to_os_string(), v.to_os_string()),
            None => env.remove(k),
        };
    }
    env.retain(|k, _| !k.to_str().is_some_and(|k| VOLATILE.contains(&k)));
    env
}

/// Files whose change may change the build without touching a source
/// file: the manifests, Cargo.lock, the toolchain file, and cargo's
/// configuration files from the workspace root up and in cargo home.
fn watched_files(root: &Path, manifests: &[PathBuf], cargo_home: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = manifests.to_vec();
    files.push(root.join("Cargo.toml"));
    files.push(root.join("Cargo.lock"));
    files.push(root.join("rust-toolchain.toml"));
    files.push(root.join("rust-toolchain"));
    for dir in root.ancestors() {
        files.push(dir.join(".cargo/config.toml"));
        files.push(dir.join(".cargo/config"));
    }
    if let Some(home) = cargo_home {
        files.push(home.join("config.toml"));
        files.push(home.join("config"));
    }
    files
}

/// The prerequisites of a Makefile-style dep-info file (`target: a b\ c`),
/// or `None` when it is not one.
fn dep_info_paths(text: &str) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // The target ends at the first unescaped `: `.
        let mut rest = None;
        let bytes = line.as_bytes();
        let mut i = 0;
        while i + 1 < bytes.len() {
            if bytes[i] == b'\\' {
                i += 2;
                continue;
            }
            if bytes[i] == b':' && (bytes[i + 1] == b' ' || i + 2 == bytes.len()) {
                rest = Some(&line[i + 1..]);
                break;
            }
            i += 1;
        }
        if rest.is_none() && line.ends_with(':') {
            rest = Some("");
        }
        let mut word = String::new();
        let mut chars = rest?.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
                ' ' | '\t' => {
                    if !word.is_empty() {
                        out.push(PathBuf::from(std::mem::take(&mut word)));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            out.push(PathBuf::from(word));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_paths_unescape_spaces_and_skip_the_target() {
        let text = "/t/release/ael: /ws/a.rs /ws/my\\ dir/b.rs\n\n";
        assert_eq!(
            dep_info_paths(text).unwrap(),
            [PathBuf::from("/ws/a.rs"), PathBuf::from("/ws/my dir/b.rs")]
        );
        assert_eq!(dep_info_paths("/t/x:\n").unwrap(), Vec::<PathBuf>::new());
        assert!(dep_info_paths("no separator here").is_none());
    }
}
