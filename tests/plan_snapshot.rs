//! Snapshots of `aelimg plan` (JSON and text) for the default images.yaml and
//! every good fixture, compared with fixtures/snapshots. The repository's
//! absolute path is replaced by `<repo>` first.
//!
//! A deliberate change: `AELIMG_UPDATE_GOLDEN=1 cargo test --test
//! plan_snapshot` rewrites the snapshots, to be committed with the reason.

mod common;

use common::{aelimg, check_golden, json, ok, redact_repo};

/// (snapshot name, spec file relative to the repository root).
const SPECS: &[(&str, &str)] = &[
    ("default", "images/images.yaml"),
    ("minimal", "fixtures/minimal/images.yaml"),
];

fn plan(spec: &str, json_mode: bool) -> String {
    let mut cmd = aelimg();
    cmd.env_remove("SOURCE_DATE_EPOCH")
        .args(["plan", "-f", spec]);
    if json_mode {
        cmd.arg("--json");
    }
    redact_repo(&ok(&mut cmd))
}

#[test]
fn plan_json_matches_snapshots() {
    for (name, spec) in SPECS {
        let out = plan(spec, true);
        let v = json(&out);
        assert_eq!(v["spec_file"], *spec, "{name}");
        assert_eq!(v["source_date_epoch"], 0, "{name}");
        check_golden(&format!("fixtures/snapshots/{name}-plan.json"), &out);
    }
}

#[test]
fn plan_text_matches_snapshots() {
    for (name, spec) in SPECS {
        let out = plan(spec, false);
        check_golden(&format!("fixtures/snapshots/{name}-plan.txt"), &out);
    }
}

/// The default spec given explicitly and by default give the same plan.
#[test]
fn plan_of_the_default_spec_needs_no_file_argument() {
    let implicit = redact_repo(&ok(aelimg()
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["plan", "--json"])));
    assert_eq!(implicit, plan("images/images.yaml", true));
}

/// Given by absolute path, the spec gives the same plan with `<repo>/` in
/// front of every path: the snapshots hold no checkout path either way.
#[test]
fn plan_of_an_absolute_spec_path_is_the_snapshot_under_repo() {
    for (name, spec) in SPECS {
        let abs = common::repo().join(spec);
        let out = redact_repo(&ok(aelimg()
            .env_remove("SOURCE_DATE_EPOCH")
            .args(["plan", "--json", "-f"])
            .arg(&abs)));
        assert!(out.contains("\"<repo>/"), "{name}: {out}");
        assert_eq!(out.replace("<repo>/", ""), plan(spec, true), "{name}");
    }
}

/// The committed compose files are what `aelimg compose` writes from the
/// default images.yaml (`AELIMG_UPDATE_GOLDEN=1` rewrites them; or run
/// `aelimg compose -o docker-compose.yaml` and `aelimg compose --dev -o
/// docker-compose.dev.yaml`).
#[test]
fn committed_compose_files_are_what_aelimg_compose_writes() {
    for (file, args) in [
        ("docker-compose.yaml", &["compose"][..]),
        ("docker-compose.dev.yaml", &["compose", "--dev"][..]),
    ] {
        let out = ok(aelimg().args(args));
        check_golden(file, &out);
    }
}

/// `-o FILE` elsewhere: mount sources and secrets are relative to FILE's
/// directory; a spec without both images is a usage error.
#[test]
fn compose_paths_are_relative_to_the_file_and_both_images_are_needed() {
    let dir = common::scratch("compose-elsewhere");
    let file = dir.join("deploy").join("compose.yaml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    ok(aelimg().args(["compose", "-o"]).arg(&file));
    let text = std::fs::read_to_string(&file).unwrap();
    let up = "../../../../images";
    assert!(
        text.contains(&format!("\"{up}/workflows:/app/workflows:ro\"")),
        "{text}"
    );
    assert!(text.contains("file: ./secrets/ael_token"), "{text}");
    let out = common::run(aelimg().args(["compose", "-f", "fixtures/minimal/images.yaml"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no image `ael`"), "{err}");
}

/// `--pin DIGEST_FILE`: each service's image by digest, as `--digest-file`
/// wrote it; an image without one, or a line that is no digest reference,
/// is a usage error.
#[test]
fn compose_pins_images_by_digest() {
    let dir = common::scratch("compose-pin");
    let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let ael = format!("127.0.0.1:5000/acme/ael@{}", d('a'));
    let tools = format!("127.0.0.1:5000/acme/native-tools@{}", d('b'));
    let pins = dir.join("digests.txt");
    std::fs::write(&pins, format!("{ael}\n{tools}\n")).unwrap();
    let out = ok(aelimg().args(["compose", "--pin"]).arg(&pins));
    assert!(out.contains(&format!("image: \"{ael}\"")), "{out}");
    assert!(out.contains(&format!("image: \"{tools}\"")), "{out}");
    assert!(!out.contains("ael:latest"), "{out}");
    for text in [
        format!("{ael}\n"),
        format!("{ael}\n127.0.0.1:5000/acme/native-tools:1.0\n"),
    ] {
        std::fs::write(&pins, text).unwrap();
        let out = common::run(aelimg().args(["compose", "--pin"]).arg(&pins));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("native-tools"), "{err}");
    }
}
