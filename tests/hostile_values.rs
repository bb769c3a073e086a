//! Hostile images.yaml files (issue 11, items 4 and 6): injection into the
//! synthesized files and the config, values out of range, broken YAML.
//!
//! Each case is a directory `fixtures/hostile/<case>/` (this runner takes the
//! `inject-`, `value-` and `broken-` ones) holding `images.yaml`, any context
//! files, and `expect`:
//!
//! - `error: <substring>`: `aelimg build` exits 1 or 2, its stderr contains
//!   the substring (which names `images.yaml:LINE:COL`), nothing panicked,
//!   and nothing was written: the output directory is absent or empty and
//!   the cache directory holds no blob.
//! - `ok`: the build succeeds; every image it wrote passes `skopeo inspect`
//!   and `umoci unpack --rootless`, and in the unpacked root `/etc/passwd`
//!   and `/etc/group` have one well-formed line per account and exactly one
//!   with id 0. An optional `passwd` file lists lines `/etc/passwd` must hold.
//!
//! An optional `args` file adds command-line arguments, one per line (e.g.
//! `--platform` to show that it does not hide a bad `platforms:`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{aelimg, ok, run, scratch};

const PREFIXES: [&str; 3] = ["inject-", "value-", "broken-"];

fn cases() -> Vec<PathBuf> {
    let root = common::repo().join("fixtures/hostile");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            PREFIXES.iter().any(|pre| name.starts_with(pre)) && p.join("expect").is_file()
        })
        .collect();
    out.sort();
    out
}

/// Every regular file below `dir`.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn is_blob_name(p: &Path) -> bool {
    let n = p.file_name().unwrap().to_string_lossy();
    n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Runs one case; `Err` says what was wrong.
fn check(case: &Path) -> Result<(), String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let expect = std::fs::read_to_string(case.join("expect")).unwrap();
    let expect = expect.trim_end_matches('\n');
    let work = scratch(&format!("hostile-values/{name}"));
    let (out, cache) = (work.join("out"), work.join("cache"));
    let spec = format!("fixtures/hostile/{name}/images.yaml");
    let mut cmd = aelimg();
    cmd.args(["build", "--prebuilt", "fixtures/prebuilt", "-f", &spec])
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .arg("--cache-dir")
        .arg(&cache);
    if let Ok(args) = std::fs::read_to_string(case.join("args")) {
        cmd.args(args.lines().filter(|l| !l.trim().is_empty()));
    }
    let o = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    if stderr.contains("panicked") {
        return Err(format!("panicked: {stderr}"));
    }
    if let Some(want) = expect.strip_prefix("error: ") {
        if !matches!(o.status.code(), Some(1 | 2)) {
            return Err(format!("expected exit 1 or 2, got {}: {stderr}", o.status));
        }
        if !stderr.contains(want) {
            return Err(format!("expected `{want}` in: {stderr}"));
        }
        let written = files_below(&out);
        if !written.is_empty() {
            return Err(format!("wrote into the output: {written:?}"));
        }
        let blobs: Vec<PathBuf> = files_below(&cache)
            .into_iter()
            .filter(|p| is_blob_name(p))
            .collect();
        if !blobs.is_empty() {
            return Err(format!("wrote blobs into the cache: {blobs:?}"));
        }
        return Ok(());
    }
    if expect != "ok" {
        return Err(format!("bad expect file: {expect:?}"));
    }
    if !o.status.success() {
        return Err(format!("expected success, got {}: {stderr}", o.status));
    }
    let want_lines: Vec<String> = std::fs::read_to_string(case.join("passwd"))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let mut layouts: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    layouts.sort();
    if layouts.is_empty() {
        return Err("wrote no image".into());
    }
    for layout in layouts {
        let index = common::json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
        let tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .ok_or_else(|| format!("{}: no ref name in index.json", layout.display()))?
            .to_string();
        let image = format!("{}:{tag}", layout.display());
        ok(Command::new("skopeo").args(["inspect", &format!("oci:{image}")]));
        let bundle = work.join(format!(
            "bundle-{}",
            layout.file_name().unwrap().to_string_lossy()
        ));
        ok(Command::new("umoci").args([
            "unpack",
            "--rootless",
            "--image",
            &image,
            bundle.to_str().unwrap(),
        ]));
        let rootfs = bundle.join("rootfs");
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        accounts(&passwd, 7, "passwd")?;
        let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
        accounts(&group, 4, "group")?;
        for want in &want_lines {
            if !passwd.lines().any(|l| l == want) {
                return Err(format!(
                    "{image}: no line `{want}` in /etc/passwd:\n{passwd}"
                ));
            }
        }
    }
    Ok(())
}

/// `/etc/passwd` or `/etc/group`: every line has `fields` fields, names are
/// unique, ids are unique, and exactly one line has id 0, named root.
fn accounts(text: &str, fields: usize, what: &str) -> Result<(), String> {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(':').collect()).collect();
    if !text.ends_with('\n') || lines.len() < 2 || lines.len() > 3 {
        return Err(format!("/etc/{what} has {} lines:\n{text}", lines.len()));
    }
    for l in &lines {
        if l.len() != fields {
            return Err(format!(
                "/etc/{what}: a line with {} fields:\n{text}",
                l.len()
            ));
        }
    }
    let roots: Vec<&Vec<&str>> = lines.iter().filter(|l| l[2] == "0").collect();
    if roots.len() != 1 || roots[0][0] != "root" {
        return Err(format!(
            "/etc/{what}: not exactly one id-0 line, root's:\n{text}"
        ));
    }
    for i in 0..lines.len() {
        for j in i + 1..lines.len() {
            if lines[i][0] == lines[j][0] || lines[i][2] == lines[j][2] {
                return Err(format!("/etc/{what}: a name or id twice:\n{text}"));
            }
        }
    }
    Ok(())
}

#[test]
fn hostile_values_cases() {
    let cases = cases();
    assert!(cases.len() >= 50, "only {} cases found", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = check(case) {
            failures.push(format!(
                "{}: {e}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A file over the 1 MiB limit is refused before it is parsed (generated
/// here rather than committed).
#[test]
fn an_oversized_spec_is_refused_unread() {
    let work = scratch("hostile-values-oversized");
    let spec = work.join("images.yaml");
    let mut text = String::from(
        "version: 1\nimages:\n  - name: app\n    user: {name: app, uid: 10001}\n    cmd: [x]\n",
    );
    while text.len() <= 1 << 20 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&spec, text).unwrap();
    let out = work.join("out");
    let o = run(aelimg()
        .args(["build", "--prebuilt", "fixtures/prebuilt", "-f"])
        .arg(&spec)
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .arg("--cache-dir")
        .arg(work.join("cache")));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("images.yaml: the file is larger than 1024 KiB"),
        "{stderr}"
    );
    assert!(!out.exists());
}

/// A near-miss field name gets a suggestion.
#[test]
fn a_misspelt_field_gets_a_suggestion() {
    let o = run(aelimg().args([
        "plan",
        "-f",
        "fixtures/hostile/value-unknown-field-suggestion/images.yaml",
    ]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("images.yaml:7:5: unknown field `volumse`, expected one of")
            && stderr.trim_end().ends_with("; did you mean `volumes`?"),
        "{stderr}"
    );
}
