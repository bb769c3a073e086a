//! Crash safety and concurrency of the layouts aelimg writes
//! (docs/decisions/0014-layout-locking-and-crash-safety.md), judged after
//! every scenario by skopeo, oci-image-tool and umoci, and by reading every
//! blob back against its digest:
//!
//! - a `kill -9` at 22 points of a build into a layout that already holds
//!   an image leaves the old layout or the new one, complete, and the next
//!   build completes it; the points are system calls of the running build,
//!   where strace delivers SIGKILL (`-e inject=SYSCALL:signal=KILL:when=N`):
//!   deterministic, and no hook in aelimg;
//! - eight concurrent builds of different tags into one layout keep all
//!   eight;
//! - `aelimg push` reading a layout while builds rewrite it pushes complete
//!   images, and waits for a lock another process holds, saying so;
//! - a failed build (an output layout whose index.json is corrupt, the
//!   second of two images failing in any of several ways, an index that
//!   turns corrupt while the build waits for its lock) leaves the output
//!   byte for byte as it was.
//!
//! Every image here is small and single-platform, with no cargo binary but
//! in one test (`--prebuilt`), so nothing here compiles the payload.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{aelimg, json, ok, repo, scratch, wait_until};
use sha2::{Digest as _, Sha256};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// How long any one aelimg run here may take.
const RUN: Duration = Duration::from_secs(30);

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Incompressible bytes, different for each seed (so a layer's size, and
/// the time to write and push it, is what the test asks).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One image of a spec.
struct Img<'a> {
    name: &'a str,
    tag: &'a str,
    /// The content of its one file (`/srv/files/data`).
    content: &'a [u8],
    /// An extra `size_limit:` line value.
    size_limit: Option<&'a str>,
    /// A cargo binary (for `--prebuilt`).
    cargo: Option<&'a str>,
}

impl<'a> Img<'a> {
    fn new(name: &'a str, tag: &'a str, content: &'a [u8]) -> Self {
        Self {
            name,
            tag,
            content,
            size_limit: None,
            cargo: None,
        }
    }
}

/// Writes `dir/images.yaml` (and each image's files) for single-platform
/// images; returns the spec's path.
fn spec(dir: &Path, images: &[Img<'_>]) -> PathBuf {
    let mut yaml = String::from("version: 1\nimages:\n");
    for img in images {
        let files = dir.join(format!("files-{}", img.name));
        fs::create_dir_all(&files).unwrap();
        fs::write(files.join("data"), img.content).unwrap();
        yaml.push_str(&format!(
            "  - name: {}\n    tag: \"{}\"\n    platforms: [linux/amd64]\n    user: {{name: app, uid: 10001}}\n    cmd: [/usr/local/bin/app]\n",
            img.name, img.tag
        ));
        if let Some(l) = img.size_limit {
            yaml.push_str(&format!("    size_limit: {l}\n"));
        }
        yaml.push_str(&format!(
            "    layers:\n      - name: files\n        contents:\n          - path: files-{}\n            dest: /srv/files\n",
            img.name
        ));
        if let Some(bin) = img.cargo {
            yaml.push_str(&format!(
                "          - cargo: {bin}\n            dest: /usr/local/bin/{bin}\n            mode: \"0755\"\n"
            ));
        }
    }
    fs::create_dir_all(dir).unwrap();
    let path = dir.join("images.yaml");
    fs::write(&path, yaml).unwrap();
    path
}

/// `aelimg build -f SPEC --cache-dir CACHE --output oci:OUT`.
fn build(spec: &Path, cache: &Path, out: &Path) -> Command {
    let mut c = aelimg();
    c.args(["build", "-f"])
        .arg(spec)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--output")
        .arg(format!("oci:{}", out.display()));
    c
}

/// Runs `cmd` with a deadline (killing it by PID after `RUN`); returns its
/// status and stderr.
fn run_bounded(cmd: &mut Command) -> (ExitStatus, String) {
    let (status, _, stderr) = run_bounded_out(cmd);
    (status, stderr)
}

/// [`run_bounded`], with stdout too.
fn run_bounded_out(cmd: &mut Command) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed? see .ci/run)"));
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = wait_bounded(&mut child, RUN);
    (status, out.join().unwrap(), err.join().unwrap())
}

/// Waits for `child`, killing it (by its PID) after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} ran longer than {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The digest aelimg reports having written for `name:tag`.
fn wrote(stderr: &str, name: &str, tag: &str) -> String {
    let needle = format!("/{name}:{tag} (");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("wrote oci:") && l.contains(&needle))
        .unwrap_or_else(|| panic!("no `wrote …{needle}` in:\n{stderr}"));
    line.rsplit_once('(')
        .unwrap()
        .1
        .trim_end_matches(')')
        .to_string()
}

/// Every file, directory and link below `dir`: relative path → kind, mode
/// and content digest (or link target). Two equal trees are equal byte for
/// byte.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                walk(root, &p, out);
            } else if m.is_symlink() {
                out.insert(
                    rel,
                    format!("link {}", fs::read_link(&p).unwrap().display()),
                );
            } else {
                out.insert(
                    rel,
                    format!("file {mode:o} {}", sha256(&fs::read(&p).unwrap())),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Fails with the differences when two trees differ.
fn assert_same_tree(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    what: &str,
) {
    if before == after {
        return;
    }
    let mut diff = String::new();
    for (k, v) in before {
        match after.get(k) {
            None => diff.push_str(&format!("- {k} ({v})\n")),
            Some(w) if w != v => diff.push_str(&format!("~ {k}: {v} -> {w}\n")),
            _ => {}
        }
    }
    for (k, v) in after {
        if !before.contains_key(k) {
            diff.push_str(&format!("+ {k} ({v})\n"));
        }
    }
    panic!("{what}: the output changed:\n{diff}");
}

/// Copies a directory tree (files, directories).
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A layout read back and checked: its tags (ref name → top digest) and
/// every blob its index reaches.
struct Checked {
    tags: BTreeMap<String, String>,
    reachable: BTreeSet<String>,
}

/// Reads the layout at `root` as a reader would, panicking unless it is
/// complete: `oci-layout` and `index.json` parse, every blob the index
/// reaches (through indexes and manifests) exists and hashes to its name,
/// every file in `blobs/sha256` is a blob named by its digest (no
/// temporary file is ever there), and nothing else but aelimg's lock and
/// temporary files (`.aelimg-…`) sits beside them.
fn check_layout(root: &Path) -> Checked {
    let what = root.display();
    let layout = json(&fs::read_to_string(root.join("oci-layout")).unwrap());
    assert_eq!(layout["imageLayoutVersion"], "1.0.0", "{what}");
    let index = json(&fs::read_to_string(root.join("index.json")).unwrap());
    let blob = |digest: &str| -> Vec<u8> {
        let bytes = fs::read(root.join("blobs/sha256").join(&digest[7..]))
            .unwrap_or_else(|e| panic!("{what}: blob {digest} is missing: {e}"));
        assert_eq!(sha256(&bytes), digest, "{what}: blob {digest} is torn");
        bytes
    };
    let mut tags = BTreeMap::new();
    let mut reachable = BTreeSet::new();
    let mut todo: Vec<serde_json::Value> = index["manifests"].as_array().unwrap().clone();
    let mut subjects = Vec::new();
    for d in &todo {
        if d.get("artifactType").is_some() {
            // An SBOM listed beside the images: untagged, about a manifest
            // one of them reaches (checked below).
            assert!(
                d["annotations"][REF_NAME].is_null(),
                "{what}: a tagged referrer"
            );
            let m = json(std::str::from_utf8(&blob(d["digest"].as_str().unwrap())).unwrap());
            subjects.push(m["subject"]["digest"].as_str().unwrap().to_string());
            continue;
        }
        let tag = d["annotations"][REF_NAME]
            .as_str()
            .expect("a tag")
            .to_string();
        let digest = d["digest"].as_str().unwrap().to_string();
        assert!(
            tags.insert(tag.clone(), digest).is_none(),
            "{what}: tag {tag} twice"
        );
    }
    while let Some(d) = todo.pop() {
        let digest = d["digest"].as_str().unwrap().to_string();
        let bytes = blob(&digest);
        assert_eq!(bytes.len() as u64, d["size"].as_u64().unwrap(), "{what}");
        reachable.insert(digest);
        match d["mediaType"].as_str().unwrap() {
            INDEX => todo.extend(
                json(std::str::from_utf8(&bytes).unwrap())["manifests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .cloned(),
            ),
            MANIFEST => {
                let m = json(std::str::from_utf8(&bytes).unwrap());
                for leaf in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
                    let digest = leaf["digest"].as_str().unwrap();
                    assert_eq!(blob(digest).len() as u64, leaf["size"].as_u64().unwrap());
                    reachable.insert(digest.to_string());
                }
            }
            other => panic!("{what}: unexpected media type {other}"),
        }
    }
    for s in &subjects {
        assert!(
            reachable.contains(s),
            "{what}: an SBOM of {s}, which no tag reaches"
        );
    }
    for e in fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{what}: {name} in blobs/sha256 is not named like a blob"
        );
        blob(&format!("sha256:{name}"));
    }
    for e in fs::read_dir(root).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            ["oci-layout", "index.json", "blobs", ".aelimg.lock"].contains(&name.as_str())
                || name.starts_with(".aelimg-"),
            "{what}: unexpected {name}"
        );
    }
    Checked { tags, reachable }
}

/// A layout holding only the entry of `tag` of the layout `root`, byte for
/// byte, its blobs hard links to `root`'s: oci-image-tool 1.0.0-rc1 finds a
/// `--ref` by deleting from a slice while it walks it, which skips entries,
/// so it calls a ref "not unique" whenever the index has other entries (a
/// second tag, or the SBOMs listed beside the image).
fn one_entry(root: &Path, tag: &str, dest: &Path) -> PathBuf {
    let _ = fs::remove_dir_all(dest);
    fs::create_dir_all(dest.join("blobs/sha256")).unwrap();
    fs::copy(root.join("oci-layout"), dest.join("oci-layout")).unwrap();
    let mut index = json(&fs::read_to_string(root.join("index.json")).unwrap());
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["annotations"][REF_NAME] == tag);
    fs::write(dest.join("index.json"), index.to_string()).unwrap();
    for e in fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        fs::hard_link(e.path(), dest.join("blobs/sha256").join(e.file_name())).unwrap();
    }
    dest.to_path_buf()
}

/// The outside judges on every tag of a (single-platform) layout: skopeo
/// reads the manifest and config, oci-image-tool validates the image
/// against the OCI schemas, umoci unpacks the first tag's layers.
fn judge(root: &Path, tags: &BTreeMap<String, String>, work: &Path) {
    for (tag, digest) in tags {
        let r = format!("oci:{}:{tag}", root.display());
        let inspect = json(&ok(Command::new("skopeo").args(["inspect", &r])));
        assert_eq!(inspect["Digest"], digest.as_str(), "skopeo {r}");
        ok(Command::new("skopeo").args(["inspect", "--config", &r]));
        // Always one entry: the SBOMs beside the images are entries too.
        let layout = one_entry(root, tag, &work.join("one-entry"));
        let out = ok(Command::new("oci-image-tool")
            .args(["validate", "--type", "image", "--ref"])
            .arg(format!("name={tag}"))
            .arg(&layout));
        assert!(out.contains("Validation succeeded"), "{r}: {out}");
    }
    if let Some(tag) = tags.keys().next() {
        let bundle = work.join("bundle");
        let _ = fs::remove_dir_all(&bundle);
        ok(Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{tag}", root.display()))
            .arg(&bundle));
        assert!(bundle.join("rootfs/srv/files/data").is_file());
        fs::remove_dir_all(&bundle).unwrap();
    }
}

/// One system call of a traced run: its name and which call of that name
/// it is (1 = the first).
#[derive(Debug, Clone)]
struct Call {
    name: String,
    nth: usize,
    line: String,
}

/// The system calls that make a layout (and a few that read): where the
/// kill points are.
const SYSCALLS: &[&str] = &[
    "openat",
    "mkdir",
    "mkdirat",
    "linkat",
    "link",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "fsync",
    "fdatasync",
    "flock",
];

/// `strace -e trace=?a,?b,…` (a `?` ignores a name this architecture lacks).
fn syscall_set() -> String {
    SYSCALLS
        .iter()
        .map(|s| format!("?{s}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses strace's log of one (untraced-threads) process.
fn calls(log: &str) -> Vec<Call> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    log.lines()
        .filter_map(|l| {
            let name = l.split('(').next()?;
            if !SYSCALLS.contains(&name) {
                return None;
            }
            let n = seen.entry(name.to_string()).or_default();
            *n += 1;
            Some(Call {
                name: name.to_string(),
                nth: *n,
                line: l.to_string(),
            })
        })
        .collect()
}

#[test]
fn a_kill_9_at_any_point_of_a_build_leaves_the_old_layout_or_the_new_one() {
    let dir = scratch("crash-sweep");
    let old = spec(
        &dir.join("v1"),
        &[Img::new("app", "latest", b"version one\n")],
    );
    let stable = spec(
        &dir.join("stable"),
        &[Img::new("app", "stable", b"stable\n")],
    );
    let new = spec(
        &dir.join("v2"),
        &[Img::new("app", "latest", b"version two\n")],
    );
    // The state every kill starts from: a layout holding `stable` and an
    // old `latest`, and a layer cache that already holds the new image's
    // layers (so the build's own threads write nothing: the kill points are
    // all in its main thread, which writes the layout).
    let pristine = dir.join("pristine");
    let (out, cache) = (pristine.join("out"), pristine.join("cache"));
    ok(&mut build(&stable, &cache, &out));
    let (s, err) = run_bounded(&mut build(&old, &cache, &out));
    assert!(s.success(), "{err}");
    let old_digest = wrote(&err, "app", "latest");
    let (s, err) = run_bounded(&mut build(&new, &cache, &dir.join("warm")));
    assert!(s.success(), "{err}");
    let new_digest = wrote(&err, "app", "latest");
    assert_ne!(old_digest, new_digest);
    let before = check_layout(&out.join("app"));
    let stable_digest = before.tags["stable"].clone();

    // Every run is from a copy of that state, in a directory of its own,
    // with the same relative paths (so every run makes the same calls).
    let fresh = |name: &str| -> PathBuf {
        let d = dir.join(name);
        let _ = fs::remove_dir_all(&d);
        copy_dir(&pristine, &d);
        d
    };
    let traced = |cwd: &Path, inject: Option<&Call>| -> (ExitStatus, String) {
        let mut c = Command::new("strace");
        c.current_dir(cwd)
            .args(["-qq", "-e"])
            .arg(format!("trace={}", syscall_set()));
        match inject {
            Some(k) => c
                .arg("-e")
                .arg(format!("inject={}:signal=KILL:when={}", k.name, k.nth))
                .args(["-o", "/dev/null"]),
            None => c.args(["-o", "trace.log"]),
        };
        c.arg(env!("CARGO_BIN_EXE_aelimg"))
            .args([
                "build",
                "-q",
                "--cache-dir",
                "cache",
                "--output",
                "oci:out",
                "-f",
            ])
            .arg(&new);
        run_bounded(&mut c)
    };

    // One traced run that completes, to know the calls.
    let cwd = fresh("traced");
    let (s, err) = traced(&cwd, None);
    assert!(s.success(), "{err}");
    let all = calls(&fs::read_to_string(cwd.join("trace.log")).unwrap());
    let first_write = all
        .iter()
        .position(|c| c.line.contains("out/app/.aelimg.lock") && c.line.contains("O_RDWR"))
        .unwrap_or_else(|| panic!("no lock taken in:\n{all:#?}"));
    let start = first_write.saturating_sub(2);
    let window = all.len() - start;
    assert!(
        window >= 20,
        "only {window} calls write the layout: {all:#?}"
    );
    // 20 points spread over the write (from taking the lock to the last
    // fsync of garbage collection), and 2 before it.
    let mut points: Vec<&Call> = (0..20)
        .map(|i| &all[start + i * (window - 1) / 19])
        .collect();
    points.extend([&all[start / 3], &all[2 * start / 3]]);

    let (mut killed, mut saw_old, mut saw_new) = (0, 0, 0);
    for (i, point) in points.iter().enumerate() {
        let cwd = fresh(&format!("kill-{i:02}"));
        let (status, err) = traced(&cwd, Some(point));
        let layout = cwd.join("out/app");
        let what = format!("killed at {} #{} ({})", point.name, point.nth, point.line);
        if status.signal() == Some(9) {
            killed += 1;
        } else {
            assert!(status.success(), "{what}: {status}: {err}");
        }
        let after = check_layout(&layout);
        assert_eq!(after.tags["stable"], stable_digest, "{what}");
        assert_eq!(after.tags.len(), 2, "{what}: {:?}", after.tags);
        match after.tags["latest"].as_str() {
            d if d == old_digest => saw_old += 1,
            d if d == new_digest => saw_new += 1,
            d => panic!("{what}: latest is {d}, neither old nor new"),
        }
        judge(&layout, &after.tags, &cwd);
        // The next build completes the layout: the new image, no orphan
        // blob, no temporary file.
        let (s, err) =
            run_bounded(build(&new, Path::new("cache"), Path::new("out")).current_dir(&cwd));
        assert!(s.success(), "{what}: the build after it failed: {err}");
        let done = check_layout(&layout);
        assert_eq!(done.tags["latest"], new_digest, "{what}");
        assert_eq!(done.tags["stable"], stable_digest, "{what}");
        let blobs: BTreeSet<String> = fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        assert_eq!(blobs, done.reachable, "{what}: orphan blobs left");
        let temporaries: Vec<String> = fs::read_dir(&layout)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".aelimg-"))
            .collect();
        assert!(temporaries.is_empty(), "{what}: left {temporaries:?}");
        fs::remove_dir_all(&cwd).unwrap();
    }
    eprintln!(
        "{} kill points: {killed} killed, {saw_old} left the old image, {saw_new} the new one",
        points.len()
    );
    assert!(killed >= 20, "only {killed} of 22 runs were killed");
    assert!(
        saw_old >= 2 && saw_new >= 2,
        "the kills should fall before and after the index is replaced: old {saw_old}, new {saw_new}"
    );
}

#[test]
fn eight_concurrent_builds_of_different_tags_keep_all_eight() {
    let dir = scratch("crash-concurrent");
    let out = dir.join("out");
    let cache = dir.join("cache");
    let contents: Vec<Vec<u8>> = (0..8).map(|i| noise(i, 256 << 10)).collect();
    let specs: Vec<PathBuf> = (0..8)
        .map(|i| {
            spec(
                &dir.join(format!("spec-{i}")),
                &[Img::new("app", &format!("t{i}"), &contents[i])],
            )
        })
        .collect();
    // A tag written before, which none of the eight touches.
    ok(&mut build(
        &spec(&dir.join("spec-old"), &[Img::new("app", "old", b"old\n")]),
        &cache,
        &out,
    ));
    let mut children: Vec<(usize, Child, PathBuf)> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let log = dir.join(format!("build-{i}.log"));
            let child = build(s, &cache, &out)
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            (i, child, log)
        })
        .collect();
    let mut expected = BTreeMap::new();
    for (i, child, log) in &mut children {
        let status = wait_bounded(child, RUN);
        let err = fs::read_to_string(&*log).unwrap();
        assert!(status.success(), "build {i}: {err}");
        expected.insert(format!("t{i}"), wrote(&err, "app", &format!("t{i}")));
    }
    let layout = out.join("app");
    let checked = check_layout(&layout);
    let mut tags = checked.tags.clone();
    assert!(tags.remove("old").is_some(), "the old tag was lost");
    assert_eq!(tags, expected, "every build's tag, naming what it wrote");
    let blobs = fs::read_dir(layout.join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, checked.reachable.len(), "orphan blobs left");
    judge(&layout, &checked.tags, &dir);
}

/// An exclusive lock on a layout, held by the test (as another aelimg
/// would hold it) until dropped.
fn hold_lock(layout: &Path) -> fs::File {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(layout.join(".aelimg.lock"))
        .unwrap();
    f.lock().unwrap();
    f
}

/// Starts `cmd` with stderr to `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> common::Daemon {
    common::Daemon::spawn(
        cmd.stdout(Stdio::piped())
            .stderr(fs::File::create(log).unwrap()),
    )
}

/// Waits until `log` holds `needle`.
fn wait_for_line(log: &Path, needle: &str) {
    wait_until(
        RUN,
        || fs::read_to_string(log).unwrap_or_default().contains(needle),
        || {
            format!(
                "no `{needle}` in {}",
                fs::read_to_string(log).unwrap_or_default()
            )
        },
    );
}

#[test]
fn push_reads_whole_images_while_builds_rewrite_the_layout_and_waits_for_a_lock() {
    let dir = scratch("crash-push");
    let reg = common::registry::Registry::start(
        &dir.join("registry"),
        false,
        common::registry::Auth::Anonymous,
    );
    let docker = dir.join("docker");
    fs::create_dir_all(&docker).unwrap();
    let out = dir.join("out");
    let cache = dir.join("cache");
    let layout = out.join("app");
    let target = format!("{}/acme/app:latest", reg.host());
    let push = || {
        let mut c = common::registry::aelimg_in(&dir, &docker);
        c.arg("push")
            .arg(&target)
            .arg("--from")
            .arg(format!("oci:{}", layout.display()));
        c
    };
    let first = spec(
        &dir.join("spec-0"),
        &[Img::new("app", "latest", &noise(100, 1 << 20))],
    );
    let (s, err) = run_bounded(&mut build(&first, &cache, &out));
    assert!(s.success(), "{err}");
    let mut built = vec![wrote(&err, "app", "latest")];

    // A push waits for a writer's lock, and says so.
    let held = hold_lock(&layout);
    let log = dir.join("push-waits.log");
    let mut waiting = spawn_logged(&mut push(), &log);
    wait_for_line(&log, "waiting for");
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(".aelimg.lock") && text.contains("to write it"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiting.exited(),
        "push went on while the layout was locked"
    );
    drop(held);
    assert!(
        waiting.wait().success(),
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    assert!(fs::read_to_string(&log).unwrap().contains("locked "));

    // Builds of a new image each time (1 MiB of new bytes, so a push must
    // read every blob from the layout), and pushes meanwhile: each push
    // sends one whole image that a build wrote.
    let builds = std::thread::scope(|scope| {
        let builder = scope.spawn(|| {
            let mut digests = Vec::new();
            for i in 1..=6 {
                let s = spec(
                    &dir.join(format!("spec-{i}")),
                    &[Img::new("app", "latest", &noise(100 + i, 1 << 20))],
                );
                let (status, err) = run_bounded(&mut build(&s, &cache, &out));
                assert!(status.success(), "build {i}: {err}");
                digests.push(wrote(&err, "app", "latest"));
            }
            digests
        });
        let mut pushed = Vec::new();
        while !builder.is_finished() || pushed.len() < 3 {
            let (status, stdout, err) = run_bounded_out(push().arg("-q"));
            assert!(status.success(), "a push during builds failed: {err}");
            pushed.push(stdout.trim().rsplit_once('@').unwrap().1.to_string());
        }
        (builder.join().unwrap(), pushed)
    });
    built.extend(builds.0);
    for digest in &builds.1 {
        assert!(
            built.contains(digest),
            "pushed {digest}, which no build wrote: {built:?}"
        );
        // The registry has the whole image: skopeo copies it out, checking
        // every blob's digest.
        let copy = dir.join(format!("copy-{}", &digest[7..19]));
        ok(Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{}/acme/app@{digest}", reg.host()))
            .arg(format!("oci:{}:x", copy.display())));
        check_layout(&copy);
    }
    let checked = check_layout(&layout);
    judge(&layout, &checked.tags, &dir);
}

#[test]
fn a_build_waits_for_a_locked_layout_and_a_failed_build_changes_nothing() {
    let dir = scratch("crash-failed");
    let out = dir.join("out");
    let cache = dir.join("cache");
    let two = |a: &[u8], b: &[u8]| {
        spec(
            &dir.join("spec"),
            &[
                Img::new("alpha", "latest", a),
                Img::new("beta", "latest", b),
            ],
        )
    };
    ok(&mut build(&two(b"a1", b"b1"), &cache, &out));
    ok(&mut build(
        &spec(&dir.join("spec-keep"), &[Img::new("beta", "keep", b"kept")]),
        &cache,
        &out,
    ));

    // A build waits for the lock another process holds on one of its
    // layouts, says so, writes nothing meanwhile, then writes.
    let before = tree(&out);
    let held = hold_lock(&out.join("beta"));
    let log = dir.join("build-waits.log");
    let mut waiting = spawn_logged(&mut build(&two(b"a2", b"b2"), &cache, &out), &log);
    wait_for_line(&log, "waiting for");
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("beta") && text.contains("to write or read it"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.exited(), "the build went on while beta was locked");
    assert_same_tree(&before, &tree(&out), "while waiting for the lock");
    drop(held);
    assert!(
        waiting.wait().success(),
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    assert!(fs::read_to_string(&log).unwrap().contains("locked "));
    for image in ["alpha", "beta"] {
        let c = check_layout(&out.join(image));
        judge(&out.join(image), &c.tags, &dir);
    }

    // Every failure below leaves the output as it was, byte for byte.
    let fails = |what: &str, cmd: &mut Command, expect: &str| {
        let before = tree(&out);
        let (status, err) = run_bounded(cmd);
        assert_eq!(status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains(expect),
            "{what}: expected `{expect}` in:\n{err}"
        );
        assert_same_tree(&before, &tree(&out), what);
    };

    // (a) A layout whose index.json is corrupt fails the build before
    // anything is built.
    let index = out.join("beta/index.json");
    let good_index = fs::read(&index).unwrap();
    fs::write(&index, b"{\"schemaVersion\": 2, \"manifests\": [").unwrap();
    fails(
        "corrupt index.json",
        &mut build(&two(b"a3", b"b3"), &cache, &out),
        "beta/index.json",
    );
    let (_, err) = run_bounded(&mut build(&two(b"a3", b"b3"), &cache, &out));
    assert!(!err.contains("layer "), "it built layers first:\n{err}");
    fs::write(&index, &good_index).unwrap();

    // (b) The second image over its size limit.
    let over = spec(
        &dir.join("spec-over"),
        &[
            Img::new("alpha", "latest", b"a4"),
            Img {
                size_limit: Some("2kB"),
                ..Img::new("beta", "latest", &noise(4, 8 << 10))
            },
        ],
    );
    fails(
        "second image over its limit",
        &mut build(&over, &cache, &out),
        "over its limit",
    );

    // (c) The second image's binary missing from --prebuilt.
    let prebuilt = dir.join("prebuilt/x86_64-unknown-linux-musl");
    fs::create_dir_all(&prebuilt).unwrap();
    fs::copy(
        repo().join("fixtures/prebuilt/x86_64-unknown-linux-musl/ael"),
        prebuilt.join("ael"),
    )
    .unwrap();
    let with_bins = |a: &[u8], b: &[u8]| {
        spec(
            &dir.join("spec-bins"),
            &[
                Img {
                    cargo: Some("ael"),
                    ..Img::new("alpha", "latest", a)
                },
                Img {
                    cargo: Some("native-tools"),
                    ..Img::new("beta", "latest", b)
                },
            ],
        )
    };
    fails(
        "second image's binary missing",
        build(&with_bins(b"a5", b"b5"), &cache, &out)
            .arg("--prebuilt")
            .arg(dir.join("prebuilt")),
        "native-tools",
    );

    // (d) The second image's layout is a directory aelimg did not make.
    let foreign = dir.join("out-foreign");
    copy_dir(&out, &foreign);
    fs::remove_dir_all(foreign.join("beta")).unwrap();
    fs::create_dir_all(foreign.join("beta")).unwrap();
    fs::write(foreign.join("beta/precious.txt"), b"mine").unwrap();
    let before_foreign = tree(&foreign);
    let (status, err) = run_bounded(&mut build(&two(b"a6", b"b6"), &cache, &foreign));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("not an OCI layout"), "{err}");
    assert_same_tree(&before_foreign, &tree(&foreign), "a foreign directory");

    // (e) Writing the second layout fails after the first one's blobs were
    // added (a directory sits where one of beta's new blobs goes): the
    // blobs added to alpha are removed again.
    let probe = dir.join("out-probe");
    let (s, err) = run_bounded(&mut build(&two(b"a7", b"b7"), &cache, &probe));
    assert!(s.success(), "{err}");
    let beta_new = wrote(&err, "beta", "latest");
    let alpha_new = wrote(&err, "alpha", "latest");
    assert!(
        !out.join("alpha/blobs/sha256")
            .join(&alpha_new[7..])
            .exists()
    );
    fs::create_dir_all(out.join("beta/blobs/sha256").join(&beta_new[7..])).unwrap();
    fails(
        "a blob of the second layout cannot be written",
        &mut build(&two(b"a7", b"b7"), &cache, &out),
        "cannot rename",
    );
    fs::remove_dir(out.join("beta/blobs/sha256").join(&beta_new[7..])).unwrap();

    // (f) The second layout's index.json turns corrupt while the build
    // waits for its lock: the build fails, and alpha, already locked,
    // stays as it was.
    let held = hold_lock(&out.join("beta"));
    let log = dir.join("build-corrupt.log");
    let mut waiting = spawn_logged(&mut build(&two(b"a8", b"b8"), &cache, &out), &log);
    wait_for_line(&log, "waiting for");
    fs::write(&index, b"not json").unwrap();
    let before = tree(&out);
    drop(held);
    let status = waiting.wait();
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("beta/index.json"), "{text}");
    assert_same_tree(&before, &tree(&out), "index.json corrupt after the check");
    fs::write(&index, &good_index).unwrap();

    // After all that, a build goes through and the layouts are whole.
    let (s, err) = run_bounded(&mut build(&two(b"a9", b"b9"), &cache, &out));
    assert!(s.success(), "{err}");
    for image in ["alpha", "beta"] {
        let c = check_layout(&out.join(image));
        judge(&out.join(image), &c.tags, &dir);
    }
}
