//! Payload binaries reused across checkouts with the same sources.
//!
//! Cargo decides freshness by path and mtime: a second checkout of the same
//! commit (a git worktree, a CI runner's workspace, a copy) that shares the
//! target directory reuses every compiled dependency, but compiles the
//! workspace's own crates again, because their files are at another path
//! and newer than the artifacts (about two minutes per platform here).
//! The binaries would come out byte for byte the same: no build-host path
//! reaches them (decision 0008), and their inputs are the same.
//!
//! So beside the checkout's own stamp ([`super::fresh`]), each build that
//! cargo finishes leaves a record keyed by content under
//! `target/aelimg-payload/content/`: the digest of its inputs with the
//! workspace root abstracted away (commands, environment, compiler,
//! manifests, Cargo.lock, cargo configuration, all by content), the
//! SHA-256 of every source file under the root that cargo lists in the
//! binaries' dep-info (named relative to the root), the stat of every
//! source outside it, and the stat of the binaries. A checkout whose stamp
//! misses takes the binaries when its own files have the recorded
//! contents and the binaries are untouched since, as Go's content-keyed
//! build cache lets ko do; it then writes its own stamp, so its next build
//! is decided by stat alone.
//!
//! Anything unsure is a miss, and cargo runs as before: a workspace member
//! with a build script (which may read files cargo does not list), a source
//! that cannot be read or changes while it is hashed, a binary rebuilt by
//! another checkout since.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::fresh::{self, BinaryRecord, FileStat, StampInputs, WatchBy};
use crate::plan::{BinId, Binaries};
use crate::platform::Platform;

/// Bumped when what the record holds, or how, changes.
const FORMAT: u32 = 1;

/// One source file, as the build that made the binaries saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
enum Source {
    /// Under the workspace root: its path relative to the root and the
    /// SHA-256 of its bytes.
    Local { path: PathBuf, sha256: String },
    /// Elsewhere (a path dependency outside the workspace): its stat, as
    /// the checkout's own stamp keeps it.
    Outside(FileStat),
}

/// A record's contents.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    format: u32,
    key: String,
    sources: Vec<Source>,
    binaries: Vec<BinaryRecord>,
}

/// The content-keyed record of one payload build, in one checkout.
pub(super) struct ByContent {
    root: PathBuf,
    key: String,
    path: PathBuf,
}

impl ByContent {
    /// The record for the build `inputs` describe; `None` when a watched
    /// file cannot be read, or when `build_scripts` (a workspace member has
    /// one, and it may read files that no dep-info lists).
    pub(super) fn new(inputs: &StampInputs<'_>, build_scripts: bool) -> Option<Self> {
        if build_scripts {
            return None;
        }
        let key = fresh::inputs_digest(inputs, WatchBy::Content(inputs.root))?;
        let path = inputs
            .target_dir
            .join("aelimg-payload")
            .join("content")
            .join(format!("{}.json", &key[..16]));
        Some(Self {
            root: inputs.root.to_path_buf(),
            key,
            path,
        })
    }

    /// The record for this key, when there is one in this format.
    fn load(&self) -> Option<Record> {
        let text = std::fs::read(&self.path).ok()?;
        let record: Record = serde_json::from_slice(&text).ok()?;
        (record.format == FORMAT && record.key == self.key).then_some(record)
    }

    /// The binaries of `wanted`, and the files of this checkout they were
    /// built from, when another checkout (or this one) built them from
    /// files with the same contents and the same inputs, and they have not
    /// been replaced since.
    pub(super) fn check(
        &self,
        wanted: &BTreeMap<Platform, BTreeSet<BinId>>,
    ) -> Option<(Binaries, Vec<PathBuf>)> {
        let record = self.load()?;
        let mut here = Vec::with_capacity(record.sources.len());
        for source in &record.sources {
            match source {
                Source::Local { path, sha256 } => {
                    let file = self.root.join(path);
                    if content_digest(&file)? != *sha256 {
                        return None;
                    }
                    here.push(file);
                }
                Source::Outside(stat) => {
                    if FileStat::of(&stat.path).as_ref() != Some(stat) {
                        return None;
                    }
                    here.push(stat.path.clone());
                }
            }
        }
        let found = fresh::binaries_if_unchanged(&record.binaries, wanted)?;
        Some((found, here))
    }

    /// After cargo ran: the files (relative to the root) whose contents
    /// differ from those the record says the binaries of `found` were
    /// built from, when those binaries are still the recorded ones, i.e.
    /// cargo found them fresh by mtime although another checkout sharing
    /// the target directory built them from other files. Empty when there
    /// is no such record or nothing differs.
    pub(super) fn differing_sources(&self, found: &Binaries) -> Vec<PathBuf> {
        let Some(record) = self.load() else {
            return Vec::new();
        };
        let untouched = record
            .binaries
            .iter()
            .all(|b| FileStat::of(&b.stat.path).as_ref() == Some(&b.stat));
        let same_binaries = found
            .values()
            .all(|p| record.binaries.iter().any(|b| &b.stat.path == p));
        if !untouched || !same_binaries {
            return Vec::new();
        }
        record
            .sources
            .iter()
            .filter_map(|s| match s {
                Source::Local { path, sha256 } => (content_digest(&self.root.join(path)).as_ref()
                    != Some(sha256))
                .then(|| path.clone()),
                Source::Outside(_) => None,
            })
            .collect()
    }

    /// Records what cargo built from `sources` (as [`fresh::sources_of`]
    /// lists them), when none changed after `started`; `None` removes the
    /// record. Best effort: without a record, another checkout runs cargo.
    pub(super) fn record(
        &self,
        found: &Binaries,
        sources: Option<&[PathBuf]>,
        started: SystemTime,
    ) {
        let record = sources.and_then(|s| self.describe(found, s, started));
        fresh::write_record(&self.path, record.as_ref());
    }

    fn describe(&self, found: &Binaries, paths: &[PathBuf], started: SystemTime) -> Option<Record> {
        let since = fresh::since_ns(started)?;
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            let before = FileStat::of(path)?;
            if before.changed_since(since) {
                return None;
            }
            match path.strip_prefix(&self.root) {
                Ok(rel) => {
                    let sha256 = content_digest(path)?;
                    // Hashed as it was when cargo read it.
                    if FileStat::of(path).as_ref() != Some(&before) {
                        return None;
                    }
                    sources.push(Source::Local {
                        path: rel.to_path_buf(),
                        sha256,
                    });
                }
                Err(_) => sources.push(Source::Outside(before)),
            }
        }
        Some(Record {
            format: FORMAT,
            key: self.key.clone(),
            sources,
            binaries: fresh::binary_records(found)?,
        })
    }
}

/// The SHA-256 of a regular file's bytes, hex; `None` when it is not one
/// or cannot be read.
fn content_digest(path: &Path) -> Option<String> {
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    crate::file_digest::of_file(path)
        .ok()
        .map(|d| d.sha256.hex().to_string())
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use super::*;

    /// A checkout at `root`: a manifest, a lock file, one source file.
    fn checkout(root: &Path, source: &str) {
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("Cargo.toml"), "[package]\nname = \"p\"\n").unwrap();
        std::fs::write(root.join("Cargo.lock"), "version = 4\n").unwrap();
        std::fs::write(root.join("src/main.rs"), source).unwrap();
    }

    fn command(root: &Path, target: &Path) -> Command {
        let mut c = Command::new("cargo");
        c.current_dir(root)
            .args(["build", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
            .arg(format!("-Clink-arg={}/x.o", target.display()));
        c
    }

    fn by_content(root: &Path, target: &Path) -> Option<ByContent> {
        by_content_with(root, target, false)
    }

    fn by_content_with(root: &Path, target: &Path, build_scripts: bool) -> Option<ByContent> {
        let cmd = command(root, target);
        let manifests = [root.join("Cargo.toml")];
        ByContent::new(
            &StampInputs {
                cargo: &[&cmd],
                rustc_version: b"rustc 1.95.0",
                root,
                target_dir: target,
                manifests: &manifests,
                cargo_home: None,
            },
            build_scripts,
        )
    }

    /// What cargo leaves for one binary built from `root`: the binary and
    /// its dep-info naming `root/src/main.rs`.
    fn cargo_output(root: &Path, target: &Path) -> Binaries {
        let dir = target.join("x86_64-unknown-linux-musl/release");
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("p");
        std::fs::write(&exe, b"\x7fELF binary").unwrap();
        std::fs::write(
            dir.join("p.d"),
            format!(
                "{}: {}\n",
                exe.display(),
                root.join("src/main.rs").display()
            ),
        )
        .unwrap();
        let mut found = Binaries::new();
        found.insert((platform(), bin()), exe);
        found
    }

    fn platform() -> Platform {
        Platform::parse("linux/amd64").unwrap()
    }

    fn bin() -> BinId {
        BinId {
            package: "p".into(),
            bin: "p".into(),
        }
    }

    fn wanted() -> BTreeMap<Platform, BTreeSet<BinId>> {
        BTreeMap::from([(platform(), BTreeSet::from([bin()]))])
    }

    /// A build start late enough that no file above counts as written
    /// while it ran.
    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(5)
    }

    #[test]
    fn a_checkout_elsewhere_with_the_same_files_takes_the_binaries() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, target) = (
            tmp.path().join("a"),
            tmp.path().join("x/y/b"),
            tmp.path().join("t"),
        );
        checkout(&a, "fn main() {}\n");
        checkout(&b, "fn main() {}\n");
        let found = cargo_output(&a, &target);
        let at_a = by_content(&a, &target).unwrap();
        assert!(at_a.check(&wanted()).is_none(), "nothing recorded yet");
        at_a.record(&found, fresh::sources_of(&found).as_deref(), later());

        let at_b = by_content(&b, &target).unwrap();
        assert_eq!(
            at_a.key, at_b.key,
            "the key does not depend on the checkout's path"
        );
        let (reused, sources) = at_b.check(&wanted()).expect("same files, same inputs");
        assert_eq!(reused, found);
        assert_eq!(sources, [b.join("src/main.rs")]);

        // A source with other contents, or a binary rebuilt since: a miss.
        std::fs::write(b.join("src/main.rs"), "fn main() { panic!() }\n").unwrap();
        assert!(at_b.check(&wanted()).is_none());
        checkout(&b, "fn main() {}\n");
        assert!(at_b.check(&wanted()).is_some());
        std::fs::write(&found[&(platform(), bin())], b"\x7fELF other").unwrap();
        assert!(at_b.check(&wanted()).is_none());
    }

    #[test]
    fn binaries_cargo_found_fresh_from_other_files_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, target) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("t"),
        );
        checkout(&a, "fn main() { a() }\n");
        checkout(&b, "fn main() { b() }\n");
        let found = cargo_output(&a, &target);
        let at_a = by_content(&a, &target).unwrap();
        at_a.record(&found, fresh::sources_of(&found).as_deref(), later());
        assert!(at_a.differing_sources(&found).is_empty(), "its own files");

        // b's cargo hands over a's binary (b's files are older): b's file
        // differs from the one it was built from.
        let at_b = by_content(&b, &target).unwrap();
        assert_eq!(
            at_b.differing_sources(&found),
            [PathBuf::from("src/main.rs")]
        );

        // Cargo built the binary again (for b): nothing to tell.
        std::fs::write(&found[&(platform(), bin())], b"\x7fELF built for b").unwrap();
        assert!(at_b.differing_sources(&found).is_empty());
    }

    #[test]
    fn other_inputs_give_another_key() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, target) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("t"),
        );
        checkout(&a, "fn main() {}\n");
        checkout(&b, "fn main() {}\n");
        std::fs::write(b.join("Cargo.lock"), "version = 4\n# other\n").unwrap();
        let key = |root: &Path| by_content(root, &target).unwrap().key;
        assert_ne!(key(&a), key(&b), "Cargo.lock differs");
        checkout(&b, "fn main() {}\n");
        std::fs::create_dir_all(b.join(".cargo")).unwrap();
        std::fs::write(b.join(".cargo/config.toml"), "[build]\n").unwrap();
        assert_ne!(key(&a), key(&b), "a cargo configuration file more");
        // Another target directory holds its own records.
        let elsewhere = by_content(&a, &tmp.path().join("t2")).unwrap();
        assert_ne!(by_content(&a, &target).unwrap().path, elsewhere.path);
    }

    #[test]
    fn a_source_written_while_cargo_ran_leaves_no_record() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, target) = (tmp.path().join("a"), tmp.path().join("t"));
        checkout(&a, "fn main() {}\n");
        let found = cargo_output(&a, &target);
        let at_a = by_content(&a, &target).unwrap();
        let sources = fresh::sources_of(&found);
        at_a.record(
            &found,
            sources.as_deref(),
            SystemTime::now() - Duration::from_millis(100),
        );
        assert!(at_a.check(&wanted()).is_none());
    }

    #[test]
    fn a_workspace_with_build_scripts_is_never_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, target) = (tmp.path().join("a"), tmp.path().join("t"));
        checkout(&a, "fn main() {}\n");
        assert!(by_content_with(&a, &target, true).is_none());
    }
}
