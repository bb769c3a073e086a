//! `--platform linux/amd64,linux/arm64`: one index per image, arm64 binaries
//! that really run (under qemu-aarch64-static), and a clear error for a binary
//! of the wrong architecture.

mod common;

use std::path::Path;
use std::process::Command;

use aelimg::platform::Platform;
use common::{aelimg, json, ok, run, scratch};

/// The default images: images.yaml lists both platforms.
fn images() -> &'static Path {
    common::default_images("multiplatform")
}

fn read_blob(layout: &Path, digest: &str) -> serde_json::Value {
    json(&std::fs::read_to_string(layout.join("blobs/sha256").join(&digest[7..])).unwrap())
}

#[test]
fn each_image_is_an_index_of_amd64_and_arm64_v8() {
    for image in ["ael", "native-tools"] {
        let layout = images().join(image);
        let raw = json(&ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:latest", layout.display()),
        ])));
        assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
        let manifests = raw["manifests"].as_array().unwrap();
        let platforms: Vec<String> = manifests
            .iter()
            .map(|m| {
                let p = &m["platform"];
                match p["variant"].as_str() {
                    Some(v) => format!(
                        "{}/{}/{v}",
                        p["os"].as_str().unwrap(),
                        p["architecture"].as_str().unwrap()
                    ),
                    None => format!(
                        "{}/{}",
                        p["os"].as_str().unwrap(),
                        p["architecture"].as_str().unwrap()
                    ),
                }
            })
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"], "{image}");
        let mut layer_sets = Vec::new();
        for m in manifests {
            let manifest = read_blob(&layout, m["digest"].as_str().unwrap());
            let config = read_blob(&layout, manifest["config"]["digest"].as_str().unwrap());
            assert_eq!(
                config["architecture"], m["platform"]["architecture"],
                "{image}"
            );
            assert_eq!(config["os"], "linux");
            if m["platform"]["architecture"] == "arm64" {
                assert_eq!(config["variant"], "v8");
            }
            let layers: Vec<String> = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string())
                .collect();
            layer_sets.push(layers);
        }
        // The root and accounts layers (and ael's config layer) are one blob
        // on both platforms; the binary layers differ.
        assert_eq!(
            layer_sets[0][..2],
            layer_sets[1][..2],
            "{image}: root and accounts layers shared"
        );
        assert_ne!(
            layer_sets[0][2], layer_sets[1][2],
            "{image}: native-tools layer differs"
        );
        if image == "ael" {
            assert_ne!(layer_sets[0][3], layer_sets[1][3], "ael: ael layer differs");
            assert_eq!(
                layer_sets[0][4], layer_sets[1][4],
                "ael: config layer shared"
            );
        }
        // skopeo inspect (no --raw) picks the host's platform out of the index.
        let host =
            json(&ok(Command::new("skopeo").args([
                "inspect",
                &format!("oci:{}:latest", layout.display()),
            ])));
        assert_eq!(host["Architecture"], common::host_arch());
    }
}

#[test]
fn arm64_rootfs_runs_under_qemu() {
    let work = scratch("multiplatform-arm64");
    let bundle = common::unpack_platform(&images().join("ael"), "arm64", &work);
    let rootfs = bundle.join("rootfs");
    for bin in ["ael", "native-tools"] {
        let path = rootfs.join("usr/local/bin").join(bin);
        let bytes = std::fs::read(&path).unwrap();
        let elf = goblin::elf::Elf::parse(&bytes).unwrap();
        assert_eq!(
            elf.header.e_machine,
            goblin::elf::header::EM_AARCH64,
            "{bin}"
        );
        assert!(elf.interpreter.is_none(), "{bin} must be static");
        let out = ok(Command::new("qemu-aarch64-static")
            .arg(&path)
            .arg("--version"));
        assert!(out.starts_with(&format!("{bin} ")), "{out}");
    }
    let out = ok(Command::new("qemu-aarch64-static")
        .arg(rootfs.join("usr/local/bin/ael"))
        .args(["workflows", "list"])
        .env("AEL_CONFIG_PATH", rootfs.join("app/config/ael-config.yaml"))
        .env("AEL_WORKFLOWS_DIR", rootfs.join("app/workflows"))
        .env("AEL_DATA_DIR", work.join("data")));
    let names = common::example_workflow_names();
    assert!(names.len() >= 2);
    for name in &names {
        assert!(out.contains(name.as_str()), "{name} missing from: {out}");
    }
}

/// The host's platform, and the other one aelimg builds for.
fn host_and_other() -> (Platform, Platform) {
    match common::host_arch() {
        "amd64" => (Platform::LinuxAmd64, Platform::LinuxArm64),
        "arm64" => (Platform::LinuxArm64, Platform::LinuxAmd64),
        other => unreachable!("{other}"),
    }
}

/// The ELF machine name aelimg's messages give a platform's binaries.
fn elf_machine(platform: Platform) -> &'static str {
    match platform {
        Platform::LinuxAmd64 => "X86_64",
        Platform::LinuxArm64 => "AARCH64",
    }
}

/// Builds the ael image for `platform` from `--prebuilt` binaries that are
/// all copies of this test's own executable (an ELF file of the host's
/// architecture, linked against glibc); asserts exit 1 and that nothing was
/// written; returns stderr.
fn refused(name: &str, platform: Platform) -> String {
    let dir = scratch(name);
    let t = dir.join(platform.rust_target());
    std::fs::create_dir_all(&t).unwrap();
    for bin in ["ael", "native-tools"] {
        std::fs::copy(std::env::current_exe().unwrap(), t.join(bin)).unwrap();
    }
    let out = dir.join("out");
    let o = run(aelimg()
        .args([
            "build",
            "--platform",
            &platform.to_string(),
            "--image",
            "ael",
            "--prebuilt",
        ])
        .arg(&dir)
        .arg("--output")
        .arg(format!("oci:{}", out.display())));
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    // The first binary layer in the image's order is native-tools'.
    assert!(
        stderr.contains("/usr/local/bin/native-tools"),
        "names the file: {stderr}"
    );
    assert!(!out.exists(), "nothing written");
    stderr
}

#[test]
fn a_binary_of_the_host_architecture_in_the_other_platforms_image_is_refused() {
    let (host, other) = host_and_other();
    let stderr = refused("wrong-arch", other);
    let expected = format!(
        "is a 64-bit {} binary: expected a 64-bit {} binary for {other}",
        elf_machine(host),
        elf_machine(other)
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn a_dynamically_linked_binary_is_refused_for_a_scratch_image() {
    let stderr = refused("dynamic", host_and_other().0);
    assert!(stderr.contains("is dynamically linked"), "{stderr}");
}
