//! The default images, judged by tools we did not write (skopeo, umoci,
//! oci-image-tool) and, where none of them looks, by reading the layer tars.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::{default_images, json, ok, scratch};
use sha2::{Digest, Sha256};

fn images() -> &'static Path {
    default_images("layout")
}

fn oci_ref(image: &str) -> String {
    format!("oci:{}:latest", images().join(image).display())
}

#[test]
fn skopeo_reads_both_layouts_and_their_configs() {
    for image in ["ael", "native-tools"] {
        let inspect = json(&ok(
            Command::new("skopeo").args(["inspect", &oci_ref(image)])
        ));
        // skopeo picks the host's platform out of the index.
        assert_eq!(inspect["Architecture"], common::host_arch());
        assert_eq!(inspect["Os"], "linux");
        let config = json(&ok(Command::new("skopeo").args([
            "inspect",
            "--config",
            &oci_ref(image),
        ])));
        let c = &config["config"];
        assert_eq!(c["User"], "10001:10001", "{image}");
        assert_eq!(c["WorkingDir"], "/app", "{image}");
        assert!(
            config["rootfs"]["diff_ids"].as_array().unwrap().len() >= 2,
            "{image}"
        );
    }
    let config = json(&ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &oci_ref("ael"),
    ])));
    let c = &config["config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "AEL_CONFIG_PATH=/app/config/ael-config.yaml",
        "AEL_LOG_LEVEL=INFO",
        "AEL_HTTP_PORT=8082",
        "AEL_HTTP_HOST=0.0.0.0",
    ] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
    assert!(c["ExposedPorts"].get("8082/tcp").is_some());
    for v in ["/app/workflows", "/app/config", "/app/data"] {
        assert!(c["Volumes"].get(v).is_some(), "volume {v}");
    }
    assert_eq!(c["Entrypoint"], serde_json::json!(["ael"]));
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["serve", "--transport", "http"])
    );

    let nt = json(&ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &oci_ref("native-tools"),
    ])));
    let nt_env = nt["config"]["Env"].to_string();
    assert!(nt_env.contains("KAFKA_BOOTSTRAP_SERVERS=kafka:9092"));
    assert!(
        !nt_env.contains("FIRECRAWL_API_KEY"),
        "secrets are never baked in"
    );
    assert!(!nt_env.contains("OLLAMA_HOST"));
}

#[test]
fn config_blob_carries_docker_healthcheck() {
    // skopeo drops fields it does not know, so read the raw config blob it names.
    let manifests = common::platform_manifests(&images().join("ael"));
    let digest = manifests[0].1["config"]["digest"].as_str().unwrap();
    let blob = images().join("ael/blobs/sha256").join(&digest[7..]);
    let config = json(&std::fs::read_to_string(blob).unwrap());
    let h = &config["config"]["Healthcheck"];
    assert_eq!(h["Test"], serde_json::json!(["CMD", "ael", "health"]));
    assert_eq!(h["Interval"], 30_000_000_000u64);
    assert_eq!(h["Timeout"], 10_000_000_000u64);
    assert_eq!(h["StartPeriod"], 10_000_000_000u64);
    assert_eq!(h["Retries"], 3);
}

/// `oci-image-tool validate FILE` with a type; panics unless it succeeds.
fn validate(kind: &str, path: &Path, extra: &[&str]) {
    let out = ok(Command::new("oci-image-tool")
        .args(["validate", "--type", kind])
        .args(extra)
        .arg(path));
    assert!(
        out.contains("Validation succeeded"),
        "{kind} {}: {out}",
        path.display()
    );
}

#[test]
fn oci_image_tool_validates_index_manifests_configs_and_each_platform() {
    let work = scratch("oci-image-tool");
    for image in ["ael", "native-tools"] {
        let layout = images().join(image);
        let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
        let top = index["manifests"][0]["digest"].as_str().unwrap();
        let blobs = layout.join("blobs/sha256");
        validate("imageIndex", &blobs.join(&top[7..]), &[]);
        for (_, manifest) in common::platform_manifests(&layout) {
            let config = manifest["config"]["digest"].as_str().unwrap();
            validate("config", &blobs.join(&config[7..]), &[]);
        }
        // oci-image-tool only warns about an index behind a ref, so validate
        // each platform as its own single-manifest layout too.
        for arch in ["amd64", "arm64"] {
            let single = work.join(format!("{image}-{arch}"));
            common::single_platform(&layout, arch, &single);
            validate("image", &single, &["--ref", "name=latest"]);
        }
    }
}

#[test]
fn umoci_unpacks_a_non_root_bundle() {
    let dir = scratch("umoci");
    for image in ["ael", "native-tools"] {
        let bundle = common::unpack_platform(&images().join(image), "amd64", &dir.join(image));
        let config = json(&std::fs::read_to_string(bundle.join("config.json")).unwrap());
        let p = &config["process"];
        assert_eq!(p["user"]["uid"], 10001, "{image}");
        assert_eq!(p["user"]["gid"], 10001, "{image}");
        assert_eq!(p["cwd"], "/app", "{image}");
        let rootfs = bundle.join("rootfs");
        assert!(rootfs.join("etc/passwd").is_file());
        let bin = if image == "ael" {
            "ael"
        } else {
            "native-tools"
        };
        assert!(rootfs.join("usr/local/bin").join(bin).is_file());
        if image == "ael" {
            let env = p["env"].to_string();
            assert!(env.contains("AEL_HTTP_PORT=8082"), "{env}");
            assert!(env.contains("AEL_CONFIG_PATH=/app/config/ael-config.yaml"));
            assert_eq!(
                p["args"],
                serde_json::json!(["ael", "serve", "--transport", "http"])
            );
            assert!(rootfs.join("app/config/ael-config.yaml").is_file());
            let workflows = std::fs::read_dir(rootfs.join("app/workflows"))
                .unwrap()
                .count();
            assert!(workflows >= 2, "expected at least two example workflows");
        }
    }
}

fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Reads a blob of a layout by digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap()
}

/// Every entry of a layer: path → (type, mode, uid, gid, mtime, link target).
type Entries = BTreeMap<String, (tar::EntryType, u32, u64, u64, u64, Option<String>)>;

fn layer_entries(bytes: &[u8]) -> (Entries, String) {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut raw)
        .unwrap();
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
    let mut out = Entries::new();
    let mut ar = tar::Archive::new(&raw[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        out.insert(
            path,
            (
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                link,
            ),
        );
    }
    (out, diff_id)
}

#[test]
fn blobs_hash_to_their_names_and_layers_to_their_diff_ids() {
    for image in ["ael", "native-tools"] {
        let layout = images().join(image);
        for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            assert_eq!(sha256_file(&e.path()), format!("sha256:{name}"), "{image}");
        }
        for (arch, manifest) in common::platform_manifests(&layout) {
            let config: serde_json::Value = serde_json::from_slice(&blob(
                &layout,
                manifest["config"]["digest"].as_str().unwrap(),
            ))
            .unwrap();
            assert_eq!(config["architecture"], arch.as_str());
            let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
            let layers = manifest["layers"].as_array().unwrap();
            assert_eq!(diff_ids.len(), layers.len());
            for (layer, diff_id) in layers.iter().zip(diff_ids) {
                assert_eq!(
                    layer["mediaType"],
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                );
                let bytes = blob(&layout, layer["digest"].as_str().unwrap());
                assert_eq!(bytes.len() as u64, layer["size"].as_u64().unwrap());
                let (_, computed) = layer_entries(&bytes);
                assert_eq!(&computed, diff_id.as_str().unwrap(), "{image} {arch}");
            }
        }
    }
}

/// All entries of all layers of an image, later layers over earlier ones.
fn merged_entries(image: &str, arch: &str) -> Entries {
    let layout = images().join(image);
    let manifest = common::platform_manifests(&layout)
        .into_iter()
        .find(|(a, _)| a == arch)
        .unwrap_or_else(|| panic!("{image} has no {arch} manifest"))
        .1;
    let mut all = Entries::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let bytes = blob(&layout, layer["digest"].as_str().unwrap());
        // gzip header: no file name, no time (byte 3 flags, bytes 4..8 mtime).
        assert_eq!(bytes[3] & 0x08, 0, "gzip FNAME set");
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0], "gzip MTIME set");
        let (entries, _) = layer_entries(&bytes);
        let paths: Vec<&String> = entries.keys().collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        all.extend(entries);
    }
    all
}

#[test]
fn layer_entries_are_safe_normalized_and_owned_as_specified() {
    for (image, arch) in [
        ("ael", "amd64"),
        ("ael", "arm64"),
        ("native-tools", "amd64"),
        ("native-tools", "arm64"),
    ] {
        let entries = merged_entries(image, arch);
        for (path, (kind, mode, uid, gid, mtime, link)) in &entries {
            assert!(!path.starts_with('/'), "absolute path {path}");
            assert!(!path.split('/').any(|c| c == ".."), "path with .. : {path}");
            assert_eq!(*mtime, 0, "{path} mtime");
            assert!(
                matches!(
                    kind,
                    tar::EntryType::Regular | tar::EntryType::Directory | tar::EntryType::Symlink
                ),
                "{path}: unexpected entry type {kind:?}"
            );
            assert_eq!(mode & 0o6000, 0, "{path}: setuid/setgid bit");
            assert!(link.is_none() || *kind == tar::EntryType::Symlink);
            assert!(
                (*uid == 0 && *gid == 0) || (*uid == 10001 && *gid == 10001),
                "{path}: owner {uid}:{gid}"
            );
        }
        let tmp = &entries["tmp/"];
        assert_eq!(tmp.1, 0o1777, "/tmp mode");
        let data = &entries["app/data/"];
        assert_eq!((data.2, data.3), (10001, 10001), "/app/data owner");
        assert_eq!(entries["etc/passwd"].1, 0o644);
        assert!(entries.contains_key("etc/ssl/certs/ca-certificates.crt"));
        let bin = format!("usr/local/bin/{image}");
        assert_eq!(entries[&bin].1, 0o755);
        assert_eq!(entries[&bin].2, 0, "binaries are root-owned");
    }
    let ael = merged_entries("ael", "amd64");
    for v in ["app/workflows/", "app/config/", "app/data/"] {
        assert_eq!((ael[v].2, ael[v].3), (10001, 10001), "{v} owner");
    }
    assert_eq!(
        ael["app/config/ael-config.yaml"].2, 0,
        "config is root-owned, read-only to the user"
    );
}

#[test]
fn passwd_and_group_name_root_and_the_user() {
    let dir = scratch("passwd");
    let bundle = common::unpack_platform(&images().join("ael"), "amd64", &dir);
    let passwd = std::fs::read_to_string(bundle.join("rootfs/etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    assert!(passwd.contains("ael:x:10001:10001:"), "{passwd}");
    let group = std::fs::read_to_string(bundle.join("rootfs/etc/group")).unwrap();
    assert!(group.contains("ael:x:10001:"), "{group}");
    // The binaries are static x86-64 ELF files, as `file` would say.
    let bin = std::fs::read(bundle.join("rootfs/usr/local/bin/ael")).unwrap();
    let elf = goblin::elf::Elf::parse(&bin).unwrap();
    assert_eq!(elf.header.e_machine, goblin::elf::header::EM_X86_64);
    assert!(elf.interpreter.is_none(), "ael must be static");
}

#[test]
fn both_images_are_under_25_mb_compressed() {
    for image in ["ael", "native-tools"] {
        for (arch, manifest) in common::platform_manifests(&images().join(image)) {
            let total: u64 = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["size"].as_u64().unwrap())
                .sum::<u64>()
                + manifest["config"]["size"].as_u64().unwrap();
            assert!(
                total < 25_000_000,
                "{image} {arch} is {total} bytes compressed"
            );
        }
    }
}

#[test]
fn size_report_json_lists_every_layer_against_the_limit() {
    let out = scratch("size-report");
    let report = json(&ok(common::aelimg().args([
        "build",
        "--json",
        "--output",
        &format!("oci:{}", out.display()),
    ])));
    let rows = report.as_array().unwrap();
    assert_eq!(rows.len(), 4, "two images, two platforms each");
    for row in rows {
        assert_eq!(row["within_limit"], true);
        assert!(row["compressed"].as_u64().unwrap() > 1_000_000);
        assert!(row["uncompressed"].as_u64().unwrap() > row["compressed"].as_u64().unwrap());
        assert!(row["layers"].as_array().unwrap().len() >= 2);
    }
    let ael = rows.iter().find(|r| r["image"] == "ael:latest").unwrap();
    assert_eq!(ael["limit"], 500_000_000u64);
    assert_eq!(ael["platform"], "linux/amd64");
    let nt = rows
        .iter()
        .find(|r| r["image"] == "native-tools:latest" && r["platform"] == "linux/arm64/v8")
        .unwrap();
    assert_eq!(nt["limit"], 400_000_000u64);
}
