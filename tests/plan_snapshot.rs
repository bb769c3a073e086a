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
