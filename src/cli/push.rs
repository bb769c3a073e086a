//! `aelimg push`, and the registry options every registry command shares.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};
use crate::registry::{Options, PushReport, read_layout};
use crate::sink::registry::{push_one, target};
use crate::store::BlobStore;

/// How to reach registries.
#[derive(Debug, Args, Clone)]
pub struct RegistryArgs {
    /// A PEM file of CA certificates to trust besides the system roots (repeatable).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,
    /// Reach this registry (HOST[:PORT]) over plain HTTP (repeatable). Loopback
    /// registries fall back to HTTP by themselves.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Resolve NAME to IP instead of asking DNS, like curl's --resolve (repeatable).
    #[arg(long, value_name = "NAME=IP")]
    pub resolve: Vec<String>,
    /// Retries of a failed request (connection errors, 408, 429, 5xx).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub retries: u32,
    /// Blobs up to this size are uploaded in one request, larger ones in
    /// chunks of it (bytes; k/KiB/M/MiB suffixes).
    #[arg(long, default_value = "5MiB", value_name = "SIZE")]
    pub chunk_size: String,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    /// Try mounting blobs from this repository of the same registry (repeatable).
    #[arg(long = "mount-from", value_name = "REPO")]
    pub mount_from: Vec<String>,
}

fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| Error::Usage(format!("--chunk-size {s}: expected a number of bytes")))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "k" | "kB" | "K" => 1000,
        "KiB" => 1024,
        "M" | "MB" => 1_000_000,
        "MiB" => 1 << 20,
        _ => {
            return Err(Error::Usage(format!(
                "--chunk-size {s}: unknown unit `{unit}` (B, kB, KiB, MB, MiB)"
            )));
        }
    };
    let v = n * mult;
    if v < 1024 {
        return Err(Error::Usage(format!("--chunk-size {s}: at least 1KiB")));
    }
    Ok(v)
}

impl RegistryArgs {
    /// The client options these flags describe.
    pub fn options(&self) -> Result<Options> {
        let mut resolve = Vec::new();
        for r in &self.resolve {
            let (name, ip) = r
                .split_once('=')
                .and_then(|(n, ip)| Some((n.to_string(), ip.parse::<IpAddr>().ok()?)))
                .ok_or_else(|| Error::Usage(format!("--resolve {r}: expected NAME=IP")))?;
            resolve.push((name, ip));
        }
        for f in &self.ca_files {
            if !f.is_file() {
                return Err(Error::Usage(format!(
                    "--ca-file {}: no such file",
                    f.display()
                )));
            }
        }
        Ok(Options {
            ca_files: self.ca_files.clone(),
            insecure: self.insecure.clone(),
            resolve,
            retries: self.retries.min(20),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(15),
            chunk_size: parse_size(&self.chunk_size)?,
            jobs: self.jobs.clamp(1, 16),
            mount_from: self.mount_from.clone(),
        })
    }
}

/// Arguments of `aelimg push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Where to push: REGISTRY/REPO[:TAG]; `{name}` stands for each image's
    /// name (e.g. ghcr.io/acme/{name}:1.2). Without a tag, the image's own.
    #[arg(value_name = "REF")]
    reference: String,
    /// Also tag the pushed image with T (repeatable).
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// Write each pushed REGISTRY/REPO@sha256:… to this file, one per line.
    #[arg(long, value_name = "FILE")]
    digest_file: Option<PathBuf>,
    /// What to push: oci:DIR[:TAG], a layout or a directory of layouts (one
    /// per image, as `aelimg build` writes them).
    #[arg(
        long = "from",
        default_value = "oci:target/images",
        value_name = "oci:DIR"
    )]
    from: String,
    /// Push only this image (repeatable).
    #[arg(long = "image", value_name = "NAME")]
    images: Vec<String>,
    /// Print what each push did as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// The layouts an `oci:` source names: (image name, layout root, tag).
fn sources(from: &str, only: &[String]) -> Result<Vec<(String, PathBuf, Option<String>)>> {
    let rest = from
        .strip_prefix("oci:")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::Usage(format!("--from {from}: expected oci:DIR or oci:DIR:TAG")))?;
    let (dir, tag) = match rest.rsplit_once(':') {
        Some((d, t)) if !t.contains('/') && !d.is_empty() => {
            (PathBuf::from(d), Some(t.to_string()))
        }
        _ => (PathBuf::from(rest), None),
    };
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    if dir.join("index.json").is_file() {
        out.push((name_of(&dir), dir.clone(), tag));
    } else {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Error::Usage(format!(
                "--from {from}: cannot read {} ({e}): run `aelimg build` first",
                dir.display()
            ))
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.join("index.json").is_file() {
                out.push((name_of(&p), p, tag.clone()));
            }
        }
        out.sort();
    }
    if !only.is_empty() {
        for n in only {
            if !out.iter().any(|(name, _, _)| name == n) {
                return Err(Error::Usage(format!(
                    "--image {n}: no such image in {} (it holds: {})",
                    dir.display(),
                    out.iter()
                        .map(|o| o.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        out.retain(|(name, _, _)| only.contains(name));
    }
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "--from {from}: no OCI layout in {}: run `aelimg build` first",
            dir.display()
        )));
    }
    Ok(out)
}

/// Prints and records the pushes.
pub fn report(
    reports: &[PushReport],
    json: Option<bool>,
    refs_to_stdout: bool,
    digest_file: Option<&Path>,
) -> Result<()> {
    for r in reports {
        eprintln!(
            "pushed {} (tags {}): {} blobs, {} uploaded ({} bytes), {} already there, {} mounted, {} retries",
            r.reference,
            r.tags.join(", "),
            r.blobs,
            r.uploaded,
            r.uploaded_bytes,
            r.skipped,
            r.mounted,
            r.retried
        );
    }
    if json == Some(true) {
        let s = serde_json::to_string_pretty(reports).map_err(|e| Error::Json {
            context: "push report".into(),
            source: e,
        })?;
        println!("{s}");
    } else {
        for r in reports {
            if refs_to_stdout {
                println!("{}", r.reference);
            } else {
                eprintln!("{}", r.reference);
            }
        }
    }
    if let Some(f) = digest_file {
        let text: String = reports
            .iter()
            .map(|r| format!("{}\n", r.reference))
            .collect();
        crate::fsutil::atomic_write(f, text.as_bytes())?;
    }
    Ok(())
}

/// Pushes the layouts.
pub fn run(args: &PushArgs) -> Result<()> {
    let opts = args.registry.options()?;
    let srcs = sources(&args.from, &args.images)?;
    if srcs.len() > 1 && !args.reference.contains("{name}") {
        return Err(Error::Usage(format!(
            "{} names one repository, but there are {} images ({}): put {{name}} in it or pick one with --image",
            args.reference,
            srcs.len(),
            srcs.iter()
                .map(|s| s.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut plans = Vec::new();
    for (name, root, tag) in &srcs {
        let (t0, _) = target(&args.reference, name, None, &[])?;
        let (top, ref_name) = match read_layout(root, tag.as_deref()) {
            Ok(x) => x,
            Err(e) if tag.is_none() => match &t0.tag {
                Some(t) => read_layout(root, Some(t)).map_err(|_| e)?,
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let (target, tags) = target(&args.reference, name, ref_name.as_deref(), &args.tags)?;
        plans.push((root.clone(), top, target, tags));
    }
    let mut connections = Vec::new();
    let mut reports = Vec::new();
    for (root, top, target, tags) in &plans {
        let store = BlobStore::open(root)?;
        reports.push(push_one(
            &mut connections,
            &opts,
            &store,
            top,
            target,
            tags,
        )?);
    }
    report(&reports, Some(args.json), true, args.digest_file.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5MiB").unwrap(), 5 << 20);
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert!(parse_size("12").is_err());
        assert!(parse_size("3XB").is_err());
    }
}
