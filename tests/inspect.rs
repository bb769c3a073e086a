//! `aelimg inspect` and `aelimg diff` (issue 13 items 6 and 7), on small
//! specs with no cargo binary: the merged view against what `umoci unpack`
//! makes of the same image (a hand-made layer of whiteouts, an opaque
//! directory, an overwrite, a symlink and a hard link included), docker
//! archives, a registry image, the exit codes of `diff`, and the size
//! changes `build` prints against the previous image.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aelimg::digest::Digest;
use common::registry::{Auth, Registry, aelimg_in};
use common::{aelimg, json, ok, run, scratch};
use serde_json::{Value, json};

/// The spec of fixtures/minimal, with a `workflows/` directory, copied to
/// `dir` (so a test can edit it); returns its images.yaml.
fn spec(dir: &Path, platforms: &str) -> PathBuf {
    let src = common::repo().join("fixtures/minimal");
    for rel in [
        "files/hello.txt",
        "files/run.sh",
        "files/sub/nested.txt",
        "images.yaml",
    ] {
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(rel), &to).unwrap();
    }
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    for name in ["one", "two", "three"] {
        std::fs::write(
            dir.join(format!("workflows/{name}.yaml")),
            format!("name: {name}\nsteps: []\n"),
        )
        .unwrap();
    }
    let path = dir.join("images.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("platforms: [linux/amd64]", &format!("platforms: [{platforms}]"))
        .replace(
            "          - path: files/hello.txt\n",
            "          - path: workflows\n            dest: /app/workflows\n          - path: files/hello.txt\n",
        );
    std::fs::write(&path, text).unwrap();
    path
}

/// `aelimg build -f SPEC --output OUTPUT` with a cache in `dir`; its output.
fn build(dir: &Path, spec: &Path, output: &str) -> Output {
    let out = run(aelimg()
        .arg("build")
        .arg("-f")
        .arg(spec)
        .args(["--output", output])
        .arg("--cache-dir")
        .arg(dir.join("cache")));
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `aelimg inspect ARGS --json`.
fn inspect_json(args: &[&str]) -> Value {
    json(&ok(aelimg().arg("inspect").args(args).arg("--json")))
}

/// path → (type, size, mode, link) of a merged view in `inspect --json`,
/// a hard link counted as the file it is.
fn merged(v: &Value) -> BTreeMap<String, (String, u64, String, Option<String>)> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let kind = match f["type"].as_str().unwrap() {
                "hardlink" => "file",
                k => k,
            };
            let size = if kind == "dir" {
                0
            } else {
                f["size"].as_u64().unwrap()
            };
            let link = (kind == "symlink").then(|| f["link"].as_str().unwrap().to_string());
            (
                f["path"].as_str().unwrap().to_string(),
                (
                    kind.to_string(),
                    size,
                    f["mode"].as_str().unwrap().to_string(),
                    link,
                ),
            )
        })
        .collect()
}

/// The same of a directory on disk (what `umoci unpack` made).
fn on_disk(root: &Path) -> BTreeMap<String, (String, u64, String, Option<String>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
            let t = m.file_type();
            let (kind, size, link) = if t.is_dir() {
                todo.push(p.clone());
                ("dir", 0, None)
            } else if t.is_symlink() {
                let l = std::fs::read_link(&p).unwrap().display().to_string();
                ("symlink", m.len(), Some(l))
            } else {
                ("file", m.len(), None)
            };
            out.insert(
                rel,
                (
                    kind.to_string(),
                    size,
                    format!("{:04o}", m.mode() & 0o7777),
                    link,
                ),
            );
        }
    }
    out
}

/// A gzip layer of `entries` (path, type, content or link target, mode).
fn layer(entries: &[(&str, tar::EntryType, &str, u32)]) -> (Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data, mode) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_mtime(0);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_size(0);
            b.append_link(&mut h, path, data).unwrap();
        } else {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, data.as_bytes()).unwrap();
        }
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (tar, gz.finish().unwrap())
}

fn put_blob(layout: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::of(bytes);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    d
}

/// Adds a layer on top of the single-manifest image of `layout` (its only
/// entry), as another tool would: blob, config diff_ids and history,
/// manifest, index.
fn add_layer(layout: &Path, tar: &[u8], gz: &[u8]) {
    let index_path = layout.join("index.json");
    let mut index = json(&std::fs::read_to_string(&index_path).unwrap());
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = common::layout_blob(layout, &mdigest);
    let mut config = common::layout_blob(layout, manifest["config"]["digest"].as_str().unwrap());
    let blob = put_blob(layout, gz);
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(Digest::of(tar).to_string()));
    if let Some(h) = config["history"].as_array_mut() {
        h.push(json!({"created_by": "a hand-made layer of the test"}));
    }
    let cbytes = serde_json::to_vec(&config).unwrap();
    let cdigest = put_blob(layout, &cbytes);
    manifest["config"]["digest"] = json!(cdigest.to_string());
    manifest["config"]["size"] = json!(cbytes.len());
    manifest["layers"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": blob.to_string(),
        "size": gz.len(),
    }));
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let md = put_blob(layout, &mbytes);
    index["manifests"][0]["digest"] = json!(md.to_string());
    index["manifests"][0]["size"] = json!(mbytes.len());
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn the_merged_view_is_what_umoci_unpacks_whiteouts_and_opaque_dirs_included() {
    let dir = scratch("inspect-umoci");
    let spec = spec(&dir.join("spec"), "linux/amd64");
    build(&dir, &spec, &format!("oci:{}", dir.join("out").display()));
    let layout = dir.join("out/mini");
    // What aelimg built, as umoci sees it.
    let bundle = dir.join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1.0", layout.display()))
        .arg(&bundle));
    let built = inspect_json(&[&format!("oci:{}:1.0", layout.display())]);
    assert_eq!(merged(&built), on_disk(&bundle.join("rootfs")));
    assert_eq!(built["wasted"], 0);

    // A layer deleting a file, hiding a directory's contents, replacing
    // a file, and adding a symlink (in a directory it does not declare)
    // and a hard link.
    use tar::EntryType as T;
    let (tar, gz) = layer(&[
        ("etc/.wh.hello.txt", T::Regular, "", 0o644),
        ("srv/files/", T::Directory, "", 0o755),
        ("srv/files/.wh..wh..opq", T::Regular, "", 0o644),
        ("srv/files/new.txt", T::Regular, "new\n", 0o640),
        ("srv/files/again.txt", T::Link, "srv/files/new.txt", 0o640),
        ("etc/passwd", T::Regular, "root:x:0:0::/:/bin/sh\n", 0o644),
        ("bin/sh", T::Symlink, "busybox", 0o777),
        ("srv/link", T::Symlink, "files", 0o777),
    ]);
    add_layer(&layout, &tar, &gz);
    // And one writing through that symlink: the file lands in its target.
    let (tar, gz) = layer(&[("srv/link/via.txt", T::Regular, "via\n", 0o600)]);
    add_layer(&layout, &tar, &gz);
    let bundle = dir.join("bundle2");
    ok(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1.0", layout.display()))
        .arg(&bundle));
    let v = inspect_json(&[&format!("oci:{}", layout.display())]);
    let ours = merged(&v);
    assert_eq!(ours, on_disk(&bundle.join("rootfs")));
    assert!(!ours.contains_key("/etc/hello.txt"));
    assert!(!ours.contains_key("/srv/files/sub/nested.txt"));
    assert!(ours.contains_key("/srv/files/via.txt"), "{ours:?}");
    let top = &v["layers"][3];
    assert_eq!(top["deleted"], 5, "{top}");
    assert_eq!(top["overwritten"], 1, "{top}");
    assert_eq!(top["added"], 4, "{top}");
    // hello.txt twice (21 B), run.sh (18 B), nested.txt (7 B) in layer 2,
    // passwd in layer 1.
    assert_eq!(v["layers"][2]["wasted"], 67, "{v}");
    let passwd = built["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/passwd")
        .unwrap()["size"]
        .as_u64()
        .unwrap();
    assert_eq!(v["layers"][1]["wasted"], passwd);
    assert_eq!(v["wasted"], 67 + passwd);

    // The layer's listing says what each entry does.
    let l = inspect_json(&[&format!("oci:{}", layout.display()), "--layer", "3"]);
    let changes: BTreeMap<&str, &str> = l["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["change"].as_str().unwrap()))
        .collect();
    assert_eq!(changes["/etc/hello.txt"], "deleted");
    assert_eq!(changes["/etc/passwd"], "overwritten");
    assert_eq!(changes["/bin/sh"], "added");
    let human = ok(aelimg()
        .arg("inspect")
        .arg(format!("oci:{}", layout.display()))
        .args(["--layer", "3"]));
    assert!(
        human.contains("D -rw-------  10001:10001        21 B  /etc/hello.txt"),
        "{human}"
    );
    assert!(human.contains("/bin/sh -> busybox"), "{human}");
    let summary = ok(aelimg()
        .arg("inspect")
        .arg(format!("oci:{}", layout.display())));
    assert!(summary.contains("largest files:"), "{summary}");
    assert!(summary.contains("wasted"), "{summary}");
    // A layer that is not there is a usage error.
    let out = run(aelimg()
        .arg("inspect")
        .arg(format!("oci:{}", layout.display()))
        .args(["--layer", "9"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has 5 layers"), "{}", stderr(&out));
    // The merged tree, for people: a file through the symlink, with its layer.
    let tree = ok(aelimg()
        .arg("inspect")
        .arg(format!("oci:{}", layout.display()))
        .arg("--tree"));
    assert!(
        tree.lines()
            .any(|l| l.starts_with("  4  -rw-------") && l.ends_with("/srv/files/via.txt")),
        "{tree}"
    );
    // A directory of layouts is one when it holds one, else they are named.
    let one = inspect_json(&[&format!("oci:{}", dir.join("out").display())]);
    assert_eq!(one["files"], v["files"]);
    ok(Command::new("cp")
        .arg("-r")
        .arg(&layout)
        .arg(dir.join("out/copy")));
    let two = run(aelimg()
        .arg("inspect")
        .arg(format!("oci:{}", dir.join("out").display())));
    assert_eq!(two.status.code(), Some(2));
    let e = stderr(&two);
    assert!(e.contains("holds several layouts"), "{e}");
    assert!(e.contains("out/copy") && e.contains("out/mini"), "{e}");
}

#[test]
fn diff_exits_0_for_the_same_image_and_names_the_one_edited_workflow() {
    let dir = scratch("inspect-diff");
    let spec = spec(&dir.join("spec"), "linux/amd64");
    let out = |n: &str| format!("oci:{}", dir.join(n).join("mini").display());
    build(&dir, &spec, &format!("oci:{}", dir.join("a").display()));
    // A rebuild from scratch (no layer cache) gives the same image.
    ok(aelimg()
        .arg("build")
        .arg("-f")
        .arg(&spec)
        .args([
            "--no-cache",
            "--output",
            &format!("oci:{}", dir.join("b").display()),
        ])
        .arg("--cache-dir")
        .arg(dir.join("cache2")));
    let same = run(aelimg().args(["diff", &out("a"), &out("b")]));
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert!(
        stdout(&same).trim_end().ends_with("equal"),
        "{}",
        stdout(&same)
    );

    // One workflow edited: exactly that file, exit 1.
    let wf = dir.join("spec/workflows/two.yaml");
    let mut text = std::fs::read_to_string(&wf).unwrap();
    let edit = "description: edited\n";
    let grown = i64::try_from(edit.len()).unwrap();
    text.push_str(edit);
    std::fs::write(&wf, text).unwrap();
    build(&dir, &spec, &format!("oci:{}", dir.join("c").display()));
    let d = run(aelimg().args(["diff", &out("a"), &out("c"), "--json"]));
    assert_eq!(d.status.code(), Some(1), "{}", stderr(&d));
    let all = json(&stdout(&d));
    assert_eq!(all["equal"], false);
    assert_eq!(all["platforms"].as_array().unwrap().len(), 1, "{all}");
    let v = &all["platforms"][0];
    assert_eq!(v["equal"], false);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{v}");
    assert_eq!(files[0]["path"], "/app/workflows/two.yaml");
    assert_eq!(files[0]["change"], "changed");
    assert_eq!(files[0]["size_delta"], grown);
    assert_eq!(files[0]["what"], json!(["size", "content"]));
    assert_eq!(v["size_delta"], grown);
    assert_eq!(
        v["config"],
        json!([]),
        "only diff_ids change, and they are layers"
    );
    assert_eq!(v["layers_added"].as_array().unwrap().len(), 1);
    let human = run(aelimg().args(["diff", &out("a"), &out("c")]));
    assert_eq!(human.status.code(), Some(1));
    let h = stdout(&human);
    let row = format!(
        "~ {:>10}  /app/workflows/two.yaml  (size, content)",
        format!("+{grown} B")
    );
    assert!(h.contains(&row), "{h}");
    assert!(h.contains("different"), "{h}");

    // Building over the first layout says what changed against it.
    let b = build(&dir, &spec, &format!("oci:{}", dir.join("a").display()));
    let e = stderr(&b);
    assert!(
        e.contains(&format!("mini:1.0 linux/amd64: +{grown} B in files")),
        "{e}"
    );
    assert!(
        e.contains(&format!("+{grown} B  /app/workflows/two.yaml")),
        "{e}"
    );
    let b = build(&dir, &spec, &format!("oci:{}", dir.join("a").display()));
    assert!(
        stderr(&b).contains("unchanged since the previous build"),
        "{}",
        stderr(&b)
    );

    // An image that cannot be read is an error (2), never "different".
    let bad = run(aelimg().args(["diff", &out("a"), &out("nothing")]));
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let bad = run(aelimg().args(["diff", &format!("{}:9.9", out("a")), &out("c")]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("it holds: 1.0"), "{}", stderr(&bad));
}

#[test]
fn docker_archives_and_multi_platform_layouts() {
    let dir = scratch("inspect-archive");
    let spec = spec(&dir.join("spec"), "linux/amd64");
    build(&dir, &spec, &format!("oci:{}", dir.join("out").display()));
    build(
        &dir,
        &spec,
        &format!("docker-archive:{}", dir.join("archives").display()),
    );
    let layout = format!("oci:{}", dir.join("out/mini").display());
    let archive = format!("docker-archive:{}", dir.join("archives/mini.tar").display());
    let a = inspect_json(&[&layout]);
    let b = inspect_json(&[&archive]);
    assert_eq!(a["files"], b["files"]);
    assert_eq!(a["config"], b["config"]);
    assert_eq!(b["manifest"], Value::Null);
    let named = inspect_json(&[&format!("{archive}:mini:1.0")]);
    assert_eq!(named["files"], a["files"]);
    let wrong = run(aelimg().args(["inspect", &format!("{archive}:other:1")]));
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        stderr(&wrong).contains("it holds: mini:1.0"),
        "{}",
        stderr(&wrong)
    );
    // The same image in a layout and in an archive.
    let same = run(aelimg().args(["diff", &layout, &archive]));
    assert_eq!(same.status.code(), Some(0), "{}", stdout(&same));
    // zstd layers: the same files; diff says only the compression differs.
    ok(aelimg()
        .arg("build")
        .arg("-f")
        .arg(&spec)
        .args(["--compression", "zstd", "--output"])
        .arg(format!("oci:{}", dir.join("zstd").display()))
        .arg("--cache-dir")
        .arg(dir.join("cache")));
    let zstd = format!("oci:{}", dir.join("zstd/mini").display());
    let z = inspect_json(&[&zstd]);
    assert_eq!(z["files"], a["files"]);
    assert!(
        z["layers"][0]["media_type"]
            .as_str()
            .unwrap()
            .ends_with("+zstd")
    );
    let d = run(aelimg().args(["diff", &layout, &zstd]));
    assert_eq!(d.status.code(), Some(1), "{}", stdout(&d));
    assert!(
        stdout(&d).contains("compressed differently"),
        "{}",
        stdout(&d)
    );

    // Two platforms: --platform picks one, and without it the error
    // lists them.
    let multi = spec.with_file_name("multi.yaml");
    std::fs::write(
        &multi,
        std::fs::read_to_string(&spec).unwrap().replace(
            "platforms: [linux/amd64]",
            "platforms: [linux/amd64, linux/arm64]",
        ),
    )
    .unwrap();
    build(
        &dir,
        &multi,
        &format!("oci:{}", dir.join("multi").display()),
    );
    let m = format!("oci:{}", dir.join("multi/mini").display());
    let out = run(aelimg().args(["inspect", &m]));
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(e.contains("linux/amd64, linux/arm64/v8"), "{e}");
    assert!(e.contains("--platform"), "{e}");
    let arm = inspect_json(&[&m, "--platform", "linux/arm64"]);
    assert_eq!(arm["platform"], "linux/arm64/v8");
    assert_eq!(arm["files"], a["files"]);
    // diff compares every platform of two multi-platform images, and the
    // platform of a single-manifest image in the other.
    let same = run(aelimg().args(["diff", &m, &archive]));
    assert_eq!(same.status.code(), Some(0), "{}", stdout(&same));
    assert!(
        stdout(&same).contains("linux/amd64: equal"),
        "{}",
        stdout(&same)
    );
    let wf = dir.join("spec/workflows/one.yaml");
    std::fs::write(&wf, "name: one\nsteps: [] # edited\n").unwrap();
    build(
        &dir,
        &multi,
        &format!("oci:{}", dir.join("multi2").display()),
    );
    let m2 = format!("oci:{}", dir.join("multi2/mini").display());
    let d = run(aelimg().args(["diff", &m, &m2, "--json"]));
    assert_eq!(d.status.code(), Some(1), "{}", stderr(&d));
    let v = json(&stdout(&d));
    let per: Vec<(&str, Vec<&str>)> = v["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["b"]["platform"].as_str().unwrap(),
                p["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["path"].as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        per,
        [
            ("linux/amd64", vec!["/app/workflows/one.yaml"]),
            ("linux/arm64/v8", vec!["/app/workflows/one.yaml"])
        ]
    );
    let out = run(aelimg().args(["inspect", &m, "--platform", "linux/s390x"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no linux/s390x image"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_image_in_a_registry_is_read_through_the_client() {
    let dir = scratch("inspect-registry");
    let reg = Registry::start(&dir.join("reg"), false, Auth::Anonymous);
    let spec = spec(&dir.join("spec"), "linux/amd64, linux/arm64");
    build(&dir, &spec, &format!("oci:{}", dir.join("out").display()));
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let target = format!("{}/acme/mini:1.0", reg.host());
    ok(aelimg_in(&dir, &docker)
        .args(["push", &target, "--from"])
        .arg(format!("oci:{}", dir.join("out").display())));
    let layout = format!("oci:{}", dir.join("out/mini").display());
    let local = inspect_json(&[&layout, "--platform", "linux/amd64"]);
    let remote = json(&ok(aelimg_in(&dir, &docker).args([
        "inspect",
        &target,
        "--platform",
        "linux/amd64",
        "--json",
    ])));
    assert_eq!(remote["files"], local["files"]);
    assert_eq!(remote["manifest"], local["manifest"]);
    let d = run(aelimg_in(&dir, &docker).args([
        "diff",
        &layout,
        &format!("docker://{target}"),
        "--platform",
        "linux/arm64",
    ]));
    assert_eq!(d.status.code(), Some(0), "{}{}", stdout(&d), stderr(&d));
    // Two references to the same image: only the configs are downloaded
    // to compare them, no layer.
    let arm = inspect_json(&[&layout, "--platform", "linux/arm64"]);
    let before = reg.log_lines().len();
    let index_digest = reg.skopeo_digest("acme/mini:1.0");
    let before = before.min(reg.log_lines().len());
    let d = run(aelimg_in(&dir, &docker).args([
        "diff",
        &target,
        &format!("{}/acme/mini@{index_digest}", reg.host()),
    ]));
    assert_eq!(d.status.code(), Some(0), "{}{}", stdout(&d), stderr(&d));
    assert!(
        stdout(&d).contains("linux/arm64/v8: equal"),
        "{}",
        stdout(&d)
    );
    let configs = [
        local["config"].as_str().unwrap(),
        arm["config"].as_str().unwrap(),
    ];
    let log = reg.log_lines();
    for l in log[before..]
        .iter()
        .filter(|l| l.contains("GET /v2/acme/mini/blobs/"))
    {
        assert!(
            configs.iter().any(|c| l.contains(c)),
            "a layer downloaded: {l}"
        );
    }
    let missing =
        run(aelimg_in(&dir, &docker).args(["inspect", &format!("{}/acme/none:1", reg.host())]));
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    let missing = run(aelimg_in(&dir, &docker).args([
        "diff",
        &layout,
        &format!("{}/acme/none:1", reg.host()),
    ]));
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
}
