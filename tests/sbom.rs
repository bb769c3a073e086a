//! The SBOM attached to each image and platform, judged by tools we did not
//! write: pyspdxtools validates every SPDX document, cyclonedx-python-lib
//! validates the CycloneDX one against the CycloneDX 1.6 JSON schema, the
//! crates each payload package depends on are exactly `cargo tree -e normal
//! --target <triple> -p <package>`'s, oci-image-tool validates index.json
//! and the artifact manifests, the in-toto attestation framework's
//! bindings parse and validate the SLSA provenance, and rust-audit-info
//! (crates.io) reads the same crates out of each binary's `.dep-v0`
//! section.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{aelimg, json, layout_blob, ok, run, scratch};

const SPDX: &str = "application/spdx+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
const PROVENANCE: &str = "application/vnd.in-toto+json";

/// The default images, built once with `--sbom spdx` (the default).
fn images() -> &'static Path {
    common::default_images("sbom")
}

/// The referrers listed in `layout`'s index.json: (artifact type, its
/// manifest).
fn referrers(layout: &Path) -> Vec<(String, serde_json::Value)> {
    let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d.get("artifactType").is_some())
        .map(|d| {
            assert!(
                d["annotations"]["org.opencontainers.image.ref.name"].is_null(),
                "a referrer carries a tag: {d}"
            );
            let m = layout_blob(layout, d["digest"].as_str().unwrap());
            assert_eq!(m["artifactType"], d["artifactType"], "{d}");
            (d["artifactType"].as_str().unwrap().to_string(), m)
        })
        .collect()
}

/// The document an artifact manifest holds, written to `dir`.
fn artifact_blob(layout: &Path, manifest: &serde_json::Value, dir: &Path) -> PathBuf {
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json",
        "{manifest}"
    );
    let digest = layers[0]["digest"].as_str().unwrap();
    let path = layout.join("blobs/sha256").join(&digest[7..]);
    let out = dir.join(format!("{}.json", &digest[7..19]));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(path, &out).unwrap();
    out
}

/// The platform manifests of the image, by digest: (architecture, size).
fn platform_digests(layout: &Path) -> Vec<(String, String, u64)> {
    let index = json(&ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:latest", layout.display()),
    ])));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
                m["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn rust_target(arch: &str) -> &'static str {
    match arch {
        "amd64" => "x86_64-unknown-linux-musl",
        "arm64" => "aarch64-unknown-linux-musl",
        other => panic!("no Rust target for {other}"),
    }
}

/// `cargo tree -e normal --target T -p P` as a set of `name@version`,
/// without P itself.
fn cargo_tree(package: &str, target: &str) -> BTreeSet<String> {
    let out = ok(Command::new("cargo").current_dir(common::repo()).args([
        "tree", "--locked", "-e", "normal", "--prefix", "none", "--format", "{p}", "--target",
        target, "-p", package,
    ]));
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let version = w.next()?.strip_prefix('v')?;
            (name != package).then(|| format!("{name}@{version}"))
        })
        .collect()
}

/// The crates the SPDX document says `package` depends on, as `name@version`.
fn spdx_dependencies(doc: &serde_json::Value, package: &str) -> BTreeSet<String> {
    let packages = doc["packages"].as_array().unwrap();
    let by_id = |id: &str| {
        packages
            .iter()
            .find(|p| p["SPDXID"] == id)
            .unwrap_or_else(|| panic!("no package {id}"))
    };
    let root = packages
        .iter()
        .find(|p| p["name"] == package && p["primaryPackagePurpose"] == "APPLICATION")
        .unwrap_or_else(|| panic!("no package {package} in the SBOM"));
    doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["spdxElementId"] == root["SPDXID"] && r["relationshipType"] == "DEPENDS_ON")
        .map(|r| {
            let p = by_id(r["relatedSpdxElement"].as_str().unwrap());
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["versionInfo"].as_str().unwrap()
            )
        })
        .collect()
}

/// Every image and platform has an SPDX SBOM whose subject is that
/// platform's manifest; pyspdxtools accepts each; each payload package's
/// crates are cargo tree's; the files include the binaries with their
/// digests; oci-image-tool validates the layouts with the referrers in them.
#[test]
fn every_platform_manifest_has_a_valid_spdx_sbom_with_cargo_trees_crates() {
    let work = scratch("sbom-spdx");
    for (image, packages) in [
        ("ael", &["ael", "native-tools"][..]),
        ("native-tools", &["native-tools"][..]),
    ] {
        let layout = images().join(image);
        let platforms = platform_digests(&layout);
        assert_eq!(platforms.len(), 2, "{platforms:?}");
        let refs: Vec<_> = referrers(&layout)
            .into_iter()
            .filter(|(kind, _)| kind == SPDX)
            .collect();
        assert_eq!(refs.len(), platforms.len(), "{image}: {refs:?}");
        for (arch, digest, size) in &platforms {
            let (kind, manifest) = refs
                .iter()
                .find(|(_, m)| m["subject"]["digest"] == digest.as_str())
                .unwrap_or_else(|| panic!("{image} {arch}: no referrer for {digest}"));
            assert_eq!(kind, SPDX);
            assert_eq!(manifest["subject"]["size"], *size);
            assert_eq!(
                manifest["subject"]["mediaType"],
                "application/vnd.oci.image.manifest.v1+json"
            );
            let sbom = artifact_blob(&layout, manifest, &work.join(image).join(arch));
            let v = run(Command::new("pyspdxtools").arg("-i").arg(&sbom));
            assert!(
                v.status.success(),
                "pyspdxtools rejects {image} {arch}: {}{}",
                String::from_utf8_lossy(&v.stdout),
                String::from_utf8_lossy(&v.stderr)
            );
            let doc = json(&std::fs::read_to_string(&sbom).unwrap());
            assert_eq!(doc["spdxVersion"], "SPDX-2.3");
            let image_pkg = &doc["packages"][0];
            assert_eq!(image_pkg["checksums"][0]["checksumValue"], digest[7..]);
            for package in packages {
                let want = cargo_tree(package, rust_target(arch));
                let got = spdx_dependencies(&doc, package);
                assert_eq!(
                    got.symmetric_difference(&want).collect::<Vec<_>>(),
                    Vec::<&String>::new(),
                    "{image} {arch} {package}: SBOM vs cargo tree"
                );
            }
            // The binaries are there with the digests of the files in the
            // image (the same bytes as the layer holds: checked by size and
            // SHA-256 against the unpacked image in the next test).
            let files: Vec<&str> = doc["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["fileName"].as_str().unwrap())
                .collect();
            assert!(files.contains(&"./usr/local/bin/native-tools"), "{files:?}");
        }
        // oci-image-tool accepts the index.json with the referrers in it,
        // and each artifact manifest (it only warns about media types it
        // predates: the empty config and the SBOM's).
        let validate = |kind: &str, path: &Path| {
            let out = ok(Command::new("oci-image-tool")
                .args(["validate", "--type", kind])
                .arg(path));
            assert!(
                out.contains("Validation succeeded"),
                "{kind} {}: {out}",
                path.display()
            );
        };
        validate("imageIndex", &layout.join("index.json"));
        let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
        for d in index["manifests"].as_array().unwrap() {
            if d.get("artifactType").is_some() {
                let digest = d["digest"].as_str().unwrap();
                validate("manifest", &layout.join("blobs/sha256").join(&digest[7..]));
            }
        }
    }
}

/// rust-audit-info (the reader cargo-auditable's authors publish) finds
/// the crate list in every payload binary of the images, unpacked by umoci:
/// the package itself as the root, and the same crates as the SBOM and
/// `cargo tree`; proc-macros are build-time, never runtime, dependencies.
#[test]
fn payload_binaries_carry_the_sboms_crate_list_for_rust_audit_info() {
    let work = scratch("sbom-auditable");
    let layout = images().join("ael");
    let sboms = referrers(&layout);
    for (arch, digest, _) in platform_digests(&layout) {
        let bundle = common::unpack_platform(&layout, &arch, &work.join(&arch));
        let (_, manifest) = sboms
            .iter()
            .find(|(k, m)| k == SPDX && m["subject"]["digest"] == digest.as_str())
            .unwrap_or_else(|| panic!("{arch}: no SBOM"));
        let doc = json(
            &std::fs::read_to_string(artifact_blob(&layout, manifest, &work.join("sbom"))).unwrap(),
        );
        for package in ["ael", "native-tools"] {
            let exe = bundle.join("rootfs/usr/local/bin").join(package);
            let info = json(&ok(Command::new("rust-audit-info").arg(&exe)));
            let packages = info["packages"].as_array().unwrap();
            let roots: Vec<&serde_json::Value> =
                packages.iter().filter(|p| p["root"] == true).collect();
            assert_eq!(roots.len(), 1, "{arch} {package}: {info}");
            assert_eq!(roots[0]["name"], package);
            assert_eq!(roots[0]["source"], "local");
            let crates: BTreeSet<String> = packages
                .iter()
                .filter(|p| p["root"] != true)
                .map(|p| {
                    format!(
                        "{}@{}",
                        p["name"].as_str().unwrap(),
                        p["version"].as_str().unwrap()
                    )
                })
                .collect();
            assert_eq!(
                crates,
                spdx_dependencies(&doc, package),
                "{arch} {package}: rust-audit-info vs the SBOM"
            );
            assert_eq!(crates, cargo_tree(package, rust_target(&arch)));
            let kind = |name: &str| {
                packages
                    .iter()
                    .find(|p| p["name"] == name)
                    .map(|p| p["kind"].as_str().unwrap_or("runtime").to_string())
            };
            assert_eq!(kind("serde_derive").as_deref(), Some("build"), "{info}");
            assert_eq!(kind("serde").as_deref(), Some("runtime"), "{info}");
            assert_eq!(kind("tokio").as_deref(), Some("runtime"), "{info}");
        }
    }
}

/// `--sbom cyclonedx`: the CycloneDX 1.6 document validates against the
/// CycloneDX 1.6 JSON schema (cyclonedx-python-lib's strict validator) and
/// lists the same crates; the same inputs give byte-identical SBOMs.
#[test]
fn cyclonedx_sboms_validate_and_sboms_are_reproducible() {
    let work = scratch("sbom-cyclonedx");
    let build = |dir: &Path, format: &str| {
        ok(aelimg()
            .args([
                "build",
                "--image",
                "native-tools",
                "--platform",
                "linux/amd64",
                "--sbom",
                format,
            ])
            .arg("--output")
            .arg(format!("oci:{}", dir.display())));
        referrers(&dir.join("native-tools"))
            .into_iter()
            .filter(|(kind, _)| kind != PROVENANCE)
            .collect::<Vec<_>>()
    };
    let a = build(&work.join("a"), "cyclonedx");
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].0, CYCLONEDX);
    let layout = work.join("a/native-tools");
    let file = artifact_blob(&layout, &a[0].1, &work.join("docs"));
    let check = run(Command::new("python3")
        .arg("-c")
        .arg(
            "import sys\n\
from cyclonedx.schema import SchemaVersion\n\
from cyclonedx.validation.json import JsonStrictValidator\n\
errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
print(errors or 'valid')\n\
sys.exit(1 if errors else 0)\n",
        )
        .arg(&file));
    assert!(
        check.status.success(),
        "the CycloneDX 1.6 schema rejects the SBOM: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let doc = json(&std::fs::read_to_string(&file).unwrap());
    let purls: BTreeSet<String> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| {
            c["purl"]
                .as_str()
                .unwrap()
                .trim_start_matches("pkg:cargo/")
                .to_string()
        })
        .collect();
    assert_eq!(purls, cargo_tree("native-tools", rust_target("amd64")));

    // Again, into another layout: the same SBOM, byte for byte.
    let b = build(&work.join("b"), "cyclonedx");
    assert_eq!(a[0].1, b[0].1, "artifact manifests differ");
    // And none: no referrer at all.
    assert!(build(&work.join("c"), "none").is_empty());
}

/// A rebuild that moves the tag to a new manifest drops the old manifest's
/// SBOM from index.json, and garbage collection removes its blobs.
#[test]
fn a_moved_tag_leaves_no_orphan_sbom() {
    let work = scratch("sbom-moved");
    let spec = work.join("images.yaml");
    std::fs::create_dir_all(work.join("files")).unwrap();
    std::fs::write(work.join("files/a.txt"), "one\n").unwrap();
    std::fs::write(
        &spec,
        "version: 1\nimages:\n  - name: small\n    platforms: [linux/amd64]\n    user: {name: app, uid: 10001}\n    entrypoint: [/bin/a]\n    layers:\n      - name: files\n        contents:\n          - {path: files/a.txt, dest: /srv/a.txt}\n",
    )
    .unwrap();
    let out = work.join("out");
    let build = || {
        ok(aelimg()
            .args(["build", "-f"])
            .arg(&spec)
            .arg("--output")
            .arg(format!("oci:{}", out.display())));
        referrers(&out.join("small"))
            .into_iter()
            .filter(|(kind, _)| kind == SPDX)
            .collect::<Vec<_>>()
    };
    let first = build();
    assert_eq!(first.len(), 1);
    // This spec sits in the repository's ignored target/: git does not
    // track it, so its provenance names no commit (and no host path).
    let index = json(&std::fs::read_to_string(out.join("small/index.json")).unwrap());
    let prov = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["artifactType"] == PROVENANCE)
        .unwrap();
    let prov = layout_blob(&out.join("small"), prov["digest"].as_str().unwrap());
    let statement = layout_blob(
        &out.join("small"),
        prov["layers"][0]["digest"].as_str().unwrap(),
    );
    let deps = &statement["predicate"]["buildDefinition"]["resolvedDependencies"];
    assert_eq!(deps[0]["name"], "images.yaml", "{statement}");
    assert!(
        !statement.to_string().contains("gitCommit"),
        "an untracked spec attributed to a commit: {statement}"
    );
    std::fs::write(work.join("files/a.txt"), "two\n").unwrap();
    let second = build();
    assert_eq!(second.len(), 1, "the old SBOM is still listed: {second:?}");
    assert_ne!(first[0].1["subject"], second[0].1["subject"]);
    let old_sbom = first[0].1["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !out.join("small/blobs/sha256").join(&old_sbom[7..]).exists(),
        "the old SBOM's blob was not collected"
    );
    // The SBOM lists the file with its digest.
    let doc = json(
        &std::fs::read_to_string(artifact_blob(
            &out.join("small"),
            &second[0].1,
            &work.join("d"),
        ))
        .unwrap(),
    );
    let file = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fileName"] == "./srv/a.txt")
        .unwrap_or_else(|| panic!("{doc}"));
    use sha2::Digest as _;
    assert_eq!(
        file["checksums"][1]["checksumValue"],
        hex::encode(sha2::Sha256::digest(b"two\n"))
    );
}

/// SLSA v1 provenance beside each platform manifest: the in-toto
/// attestation framework's own Python bindings parse the statement and the
/// SLSA provenance v1 predicate strictly (an unknown or mistyped field
/// fails) and validate them; the subject is the platform manifest; the git
/// commit and dirty flag are git's.
#[test]
fn every_platform_manifest_has_slsa_provenance() {
    let work = scratch("sbom-provenance");
    let layout = images().join("ael");
    let platforms = platform_digests(&layout);
    let provenance: Vec<_> = referrers(&layout)
        .into_iter()
        .filter(|(kind, _)| kind == PROVENANCE)
        .collect();
    assert_eq!(provenance.len(), platforms.len(), "{provenance:?}");
    let head = ok(Command::new("git")
        .current_dir(common::repo())
        .args(["rev-parse", "HEAD"]))
    .trim()
    .to_string();
    for (arch, digest, _) in &platforms {
        let (_, manifest) = provenance
            .iter()
            .find(|(_, m)| m["subject"]["digest"] == digest.as_str())
            .unwrap_or_else(|| panic!("{arch}: no provenance"));
        assert_eq!(
            manifest["annotations"]["in-toto.io/predicate-type"],
            "https://slsa.dev/provenance/v1"
        );
        let file = artifact_blob(&layout, manifest, &work.join(arch));
        let check = run(Command::new("python3")
            .arg("-c")
            .arg(
                "import json, sys\n\
from google.protobuf import json_format\n\
from in_toto_attestation.v1 import statement_pb2\n\
from in_toto_attestation.v1.statement import Statement\n\
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2\n\
doc = json.load(open(sys.argv[1]))\n\
pb = json_format.ParseDict(doc, statement_pb2.Statement())\n\
Statement.copy_from_pb(pb).validate()\n\
json_format.ParseDict(doc['predicate'], provenance_pb2.Provenance())\n\
print('valid')\n",
            )
            .arg(&file));
        assert!(
            check.status.success(),
            "{arch}: in-toto rejects the provenance: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let doc = json(&std::fs::read_to_string(&file).unwrap());
        assert_eq!(doc["subject"][0]["digest"]["sha256"], digest[7..]);
        let deps = doc["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        let source = deps
            .iter()
            .find(|d| d["digest"]["gitCommit"].is_string())
            .unwrap_or_else(|| panic!("no git commit: {doc}"));
        assert_eq!(source["digest"]["gitCommit"], head.as_str());
        assert!(source["annotations"]["dirty"].is_boolean(), "{source}");
        let spec = deps
            .iter()
            .find(|d| d["name"] == "images/images.yaml")
            .unwrap();
        use sha2::Digest as _;
        assert_eq!(
            spec["digest"]["sha256"],
            hex::encode(sha2::Sha256::digest(
                std::fs::read(common::repo().join("images/images.yaml")).unwrap()
            ))
        );
        assert!(
            !doc.to_string().contains(common::repo().to_str().unwrap()),
            "a host path in the provenance: {doc}"
        );
    }
}
