//! Arguments several commands share, and their conversion into library
//! values (raw arguments → resolved values, as ripgrep does it).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use aelimg::plan::PlanOptions;
use aelimg::platform::Platform;
use aelimg::registry::Options;
use aelimg::units::ByteSize;
use clap::Args;

use super::{Failure, usage};

/// Options shared by the commands that read images.yaml.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The spec file.
    #[arg(short = 'f', long = "file", default_value = "images/images.yaml")]
    pub file: PathBuf,
    /// Platforms to build, buildx syntax (linux/amd64,linux/arm64); default:
    /// the platforms in images.yaml, else the host's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Build only this image (repeatable).
    #[arg(long = "image")]
    pub images: Vec<String>,
    /// Add or override a manifest and index annotation of every image
    /// (repeatable); wins over images.yaml and the standard keys.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Add or override a config label of every image (repeatable); wins
    /// over images.yaml and the standard keys.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Name the git commit (`org.opencontainers.image.revision`) and the
    /// origin remote (`org.opencontainers.image.source`) in annotations and
    /// labels; they change with every commit, so they are off by default.
    #[arg(long = "annotate-git")]
    pub annotate_git: bool,
}

impl SpecArgs {
    /// The plan options these flags and SOURCE_DATE_EPOCH describe.
    pub fn plan_options(&self) -> Result<PlanOptions, Failure> {
        let platforms = match &self.platform {
            Some(p) => {
                Some(Platform::parse_list(p).map_err(|m| usage(format!("--platform {p}: {m}")))?)
            }
            None => None,
        };
        let git = if self.annotate_git {
            Some(
                aelimg::provenance::git_source(&self.file)
                    .map_err(|e| usage(format!("--annotate-git: {e}")))?,
            )
        } else {
            None
        };
        Ok(PlanOptions {
            platforms,
            prefer_platform: None,
            only: self.images.clone(),
            source_date_epoch: source_date_epoch()?,
            annotations: overrides("--annotation", &self.annotations)?,
            labels: overrides("--label", &self.labels)?,
            git,
        })
    }
}

/// `KEY=VALUE` flags, checked; the error names the flag.
fn overrides(
    flag: &str,
    values: &[String],
) -> Result<std::collections::BTreeMap<String, String>, Failure> {
    values
        .iter()
        .map(|v| aelimg::annotations::parse_override(flag, v).map_err(usage))
        .collect()
}

/// SOURCE_DATE_EPOCH, or 0.
fn source_date_epoch() -> Result<u64, Failure> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            usage(format!(
                "SOURCE_DATE_EPOCH={v}: expected a number of seconds since 1970"
            ))
        }),
        _ => Ok(0),
    }
}

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
    /// Work done at once: blobs transferred (default 4, at most 16) and, for
    /// build, layers compressed (default: the available parallelism; the
    /// output is the same whatever it is).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Try mounting blobs from this repository of the same registry (repeatable).
    #[arg(long = "mount-from", value_name = "REPO")]
    pub mount_from: Vec<String>,
}

impl RegistryArgs {
    /// The client options these flags describe.
    pub fn options(&self) -> Result<Options, Failure> {
        let mut resolve = Vec::new();
        for r in &self.resolve {
            let (name, ip) = r
                .split_once('=')
                .and_then(|(n, ip)| Some((n.to_string(), ip.parse::<IpAddr>().ok()?)))
                .ok_or_else(|| usage(format!("--resolve {r}: expected NAME=IP")))?;
            resolve.push((name, ip));
        }
        for f in &self.ca_files {
            if !f.is_file() {
                return Err(usage(format!("--ca-file {}: no such file", f.display())));
            }
        }
        let chunk_size = ByteSize::parse(&self.chunk_size)
            .map_err(|m| usage(format!("--chunk-size {}: {m}", self.chunk_size)))?
            .0;
        if chunk_size < 1024 {
            return Err(usage(format!(
                "--chunk-size {}: at least 1KiB",
                self.chunk_size
            )));
        }
        Ok(Options {
            ca_files: self.ca_files.clone(),
            insecure: self.insecure.clone(),
            resolve,
            retries: self.retries.min(20),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(15),
            chunk_size,
            jobs: self.jobs.map_or(4, usize::from).clamp(1, 16),
            mount_from: self.mount_from.clone(),
        })
    }
}

/// Splits `oci:DIR` or `oci:DIR:TAG` (a tag has no `/`).
pub fn oci_dir_and_tag(s: &str, flag: &str) -> Result<(PathBuf, Option<String>), Failure> {
    let rest = s
        .strip_prefix("oci:")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| usage(format!("{flag} {s}: expected oci:DIR or oci:DIR:TAG")))?;
    Ok(match rest.rsplit_once(':') {
        Some((d, t)) if !t.contains('/') && !d.is_empty() => {
            (PathBuf::from(d), Some(t.to_string()))
        }
        _ => (PathBuf::from(rest), None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_sources() {
        assert_eq!(
            oci_dir_and_tag("oci:target/images", "--from").unwrap(),
            (PathBuf::from("target/images"), None)
        );
        assert_eq!(
            oci_dir_and_tag("oci:out/ael:1.0", "--from").unwrap(),
            (PathBuf::from("out/ael"), Some("1.0".into()))
        );
        assert!(oci_dir_and_tag("docker:x", "--from").is_err());
    }
}
