//! Bad input fails with exit 1 and a message naming file:line:col and what
//! was expected, and leaves the output directory exactly as it was.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{aelimg, run, scratch};

/// A snapshot of a directory tree: relative path → bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if e.file_type().unwrap().is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                todo.push(e.path());
            } else {
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Runs `aelimg build` on a bad fixture into an output dir that already holds
/// something, and checks exit code, message and that nothing changed.
fn fails(fixture: &str, location: &str, expected: &str) {
    let out = scratch(&format!("bad-{fixture}"));
    std::fs::create_dir_all(out.join("ael")).unwrap();
    std::fs::write(out.join("ael/sentinel"), b"keep me").unwrap();
    let before = snapshot(&out);
    let file = format!("fixtures/bad/{fixture}.yaml");
    let o = run(aelimg().args([
        "build",
        "-f",
        &file,
        "--output",
        &format!("oci:{}", out.display()),
    ]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{fixture}: {stderr}");
    let want = format!("{file}:{location}: ");
    assert!(
        stderr.contains(&want),
        "{fixture}: expected `{want}` in: {stderr}"
    );
    assert!(
        stderr.contains(expected),
        "{fixture}: expected `{expected}` in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert_eq!(snapshot(&out), before, "{fixture}: output changed");
}

#[test]
fn unknown_field() {
    fails(
        "unknown-field",
        "5:5",
        "unknown field `layerz`, expected one of",
    );
}

#[test]
fn wrong_type() {
    fails("wrong-type", "7:16", "expected a non-negative integer");
}

#[test]
fn bad_port() {
    fails(
        "bad-port",
        "5:19",
        "expected a port number 1-65535, found 70000",
    );
}

#[test]
fn bad_duration() {
    fails("bad-duration", "7:17", "expected a duration like \"30s\"");
}

#[test]
fn missing_source_file() {
    fails(
        "missing-source",
        "10:19",
        "cannot read source `no-such-file.txt`",
    );
}

#[test]
fn duplicate_image_name() {
    fails(
        "duplicate-name",
        "5:11",
        "duplicate image name `ael` (first defined at line 3)",
    );
}

#[test]
fn uid_zero_needs_an_explicit_opt_in() {
    fails(
        "root-user",
        "4:11",
        "expected a non-root uid, or `allow_root: true`",
    );
}

#[test]
fn unknown_platform_lists_the_supported_ones() {
    fails(
        "bad-platform",
        "4:30",
        "expected one of linux/amd64, linux/arm64/v8",
    );
}

#[test]
fn bad_mode() {
    fails("bad-mode", "10:19", "expected an octal file mode");
}

#[test]
fn dest_must_be_absolute_without_dotdot() {
    fails(
        "relative-dest",
        "9:19",
        "expected an absolute path (starting with `/`)",
    );
}

#[test]
fn cargo_package_must_be_a_workspace_member() {
    fails(
        "unknown-package",
        "8:20",
        "expected one of ael, aelimg, native-tools",
    );
}

#[test]
fn a_library_package_cannot_fill_a_layer() {
    fails(
        "library-package",
        "8:20",
        "cargo package `bearer-auth` has no binary target (a library cannot fill a layer): expected one of ael, aelimg, native-tools",
    );
}

#[test]
fn broken_yaml() {
    fails("not-yaml", "4:11", "unclosed bracket");
}

#[test]
fn missing_spec_file_names_it() {
    let o = run(aelimg().args(["plan", "-f", "fixtures/bad/does-not-exist.yaml"]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr.contains("fixtures/bad/does-not-exist.yaml"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let o = run(aelimg().args(["build", "--no-such-flag"]));
    assert_eq!(o.status.code(), Some(2));
    let o = run(aelimg().args(["build", "--platform", "linux/mips"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected one of linux/amd64"));
    let o = run(aelimg().args(["build", "--image", "nope"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("it defines: ael, native-tools"));
    let o = run(aelimg().args(["build", "--output", "tarball:x"]));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn image_over_its_size_limit_fails_and_writes_nothing() {
    let dir = scratch("over-limit");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    // 2 MB of zeros against a 1 MB limit: a few kB compressed, but the limit
    // holds the uncompressed size, as `docker images` shows it.
    std::fs::write(dir.join("files/blob.bin"), vec![0u8; 2_000_000]).unwrap();
    std::fs::write(
        dir.join("images.yaml"),
        "version: 1\nimages:\n  - name: big\n    user: {name: app, uid: 1000}\n    entrypoint: [/data/run]\n    size_limit: 1MB\n    layers:\n      - name: data\n        contents:\n          - path: files\n            dest: /data\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = run(aelimg().args([
        "build",
        "-f",
        dir.join("images.yaml").to_str().unwrap(),
        "--output",
        &format!("oci:{}", out.display()),
    ]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        // No `platforms:`: the host's.
        stderr.contains(&format!(
            "big:latest {} is 2.0 MB uncompressed (",
            common::host_platform_name()
        )) && stderr.contains(" kB compressed), over its limit of 1.0 MB"),
        "{stderr}"
    );
    assert!(
        stdout.contains("OVER LIMIT"),
        "the report still prints: {stdout}"
    );
    assert!(
        !out.exists(),
        "nothing is written for an image over its limit"
    );
}
