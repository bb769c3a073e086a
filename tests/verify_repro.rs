//! `aelimg verify-repro` (issue 13 item 8) on a small git repository made
//! in a scratch directory, holding a spec with no cargo binary: a layout
//! built from HEAD is reproduced (exit 0); one built from an edit since
//! undone is not (exit 1), and the file is named; a dirty work tree is
//! refused (exit 2) unless --allow-dirty; the temporary checkout is gone
//! afterwards.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{aelimg, ok, run, scratch};

fn git(dir: &Path, args: &[&str]) -> String {
    ok(Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=aelimg test",
            "-c",
            "user.email=test@aelimg.invalid",
        ])
        .args(args))
}

/// `aelimg ARGS` in `dir`.
fn aelimg_at(dir: &Path, args: &[&str]) -> Output {
    run(aelimg()
        .current_dir(dir)
        .args(args)
        .env_remove("CARGO_TARGET_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn verify_repro_rebuilds_head_and_names_the_first_differing_file() {
    let repo = scratch("verify-repro");
    std::fs::create_dir_all(repo.join("images/files")).unwrap();
    std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
    std::fs::write(repo.join("images/files/hello.txt"), "hello\n").unwrap();
    std::fs::write(repo.join("images/files/other.txt"), "other\n").unwrap();
    std::fs::write(
        repo.join("images/images.yaml"),
        r#"version: 1
images:
  - name: small
    tag: "1.0"
    platforms: [linux/amd64]
    user: {name: app, uid: 10001}
    entrypoint: [/bin/hello]
    layers:
      - name: files
        contents:
          - path: files/hello.txt
            dest: /srv/hello.txt
          - path: files/other.txt
            dest: /srv/other.txt
"#,
    )
    .unwrap();
    git(&repo, &["init", "--quiet"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "a small spec"]);
    let build = aelimg_at(&repo, &["build", "-q"]);
    assert!(build.status.success(), "{}", text(&build.stderr));
    assert!(repo.join("target/images/small/index.json").is_file());

    let ok_run = aelimg_at(&repo, &["verify-repro"]);
    let out = text(&ok_run.stdout);
    assert_eq!(
        ok_run.status.code(),
        Some(0),
        "{out}{}",
        text(&ok_run.stderr)
    );
    assert!(out.contains("small:1.0: reproduced (sha256:"), "{out}");
    assert!(out.trim_end().ends_with("reproducible"), "{out}");
    // The temporary checkout is gone, and unregistered.
    let worktrees = git(&repo, &["worktree", "list", "--porcelain"]);
    assert_eq!(worktrees.matches("worktree ").count(), 1, "{worktrees}");

    // A layout built from an edit since undone: not HEAD's image.
    std::fs::write(repo.join("images/files/other.txt"), "other, edited\n").unwrap();
    let dirty = aelimg_at(&repo, &["verify-repro"]);
    assert_eq!(dirty.status.code(), Some(2));
    let e = text(&dirty.stderr);
    assert!(e.contains("uncommitted changes"), "{e}");
    assert!(e.contains("images/files/other.txt"), "{e}");
    assert!(e.contains("--allow-dirty"), "{e}");
    let build = aelimg_at(&repo, &["build", "-q"]);
    assert!(build.status.success(), "{}", text(&build.stderr));
    git(
        &repo,
        &["checkout", "--quiet", "--", "images/files/other.txt"],
    );
    let differs = aelimg_at(&repo, &["verify-repro", "-q"]);
    let out = text(&differs.stdout);
    assert_eq!(
        differs.status.code(),
        Some(1),
        "{out}{}",
        text(&differs.stderr)
    );
    assert!(out.contains("small:1.0: DIFFERS"), "{out}");
    assert!(out.contains("first at /srv/other.txt"), "{out}");
    assert!(
        out.contains("first differing file: /srv/other.txt (size, content)"),
        "{out}"
    );
    assert!(
        out.contains("built:   -rw-r--r-- 0:0 14 B mtime 0 sha256:"),
        "{out}"
    );
    assert!(
        out.contains("rebuilt: -rw-r--r-- 0:0 6 B mtime 0 sha256:"),
        "{out}"
    );
    assert!(
        text(&differs.stderr).is_empty(),
        "-q: {}",
        text(&differs.stderr)
    );
    let j = common::json(&text(
        &aelimg_at(&repo, &["verify-repro", "-q", "--json"]).stdout,
    ));
    assert_eq!(j["reproducible"], false);
    assert_eq!(j["images"][0]["file"]["path"], "/srv/other.txt");
    assert_eq!(
        j["images"][0]["file"]["what"],
        serde_json::json!(["size", "content"])
    );
    assert!(out.trim_end().ends_with("not reproducible"), "{out}");

    // --allow-dirty rebuilds HEAD anyway, without the uncommitted change.
    std::fs::write(repo.join("images/files/untracked.txt"), "x\n").unwrap();
    let allowed = aelimg_at(&repo, &["verify-repro", "--allow-dirty", "-q"]);
    assert_eq!(allowed.status.code(), Some(1), "{}", text(&allowed.stderr));
    let worktrees = git(&repo, &["worktree", "list", "--porcelain"]);
    assert_eq!(worktrees.matches("worktree ").count(), 1, "{worktrees}");
}
