//! SLSA v1 provenance of each image and platform, as an in-toto v1
//! statement: what was built (the platform manifest, by digest), from what
//! (the git commit and whether the work tree was dirty, images.yaml by
//! digest, the registry base by digest), how (platform, compression,
//! SOURCE_DATE_EPOCH, cargo profile) and by which tools (aelimg's and
//! rustc's versions). It holds no time and no host path, so the same
//! checkout gives the same bytes.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// The statement's media type (and the artifact type it is attached as).
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// SLSA provenance v1's predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What aelimg's builds are, for `buildDefinition.buildType`.
pub const BUILD_TYPE: &str = "https://github.com/aelimg/aelimg/blob/main/docs/decisions/0015-sbom-and-referrers.md#provenance";

/// Where a build's sources come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The spec file, relative to the git work tree (or its file name).
    pub spec_path: String,
    /// SHA-256 of the spec file's bytes.
    pub spec_digest: Digest,
    /// The commit checked out, when the spec is in a git work tree.
    pub commit: Option<String>,
    /// Whether tracked files differ from the commit, or untracked files
    /// that are not ignored exist.
    pub dirty: bool,
    /// The `origin` remote, when it is a URL (credentials removed); a
    /// local path is left out, as a host path.
    pub repository: Option<String>,
    /// `rustc -V` of the toolchain that built the payload.
    pub rustc: Option<String>,
}

/// The git commit and remote of the work tree that tracks `spec_file`, for
/// `--annotate-git` (found as the provenance finds them).
///
/// # Errors
/// When the spec file cannot be read, or git does not track it.
pub fn git_source(spec_file: &Path) -> Result<crate::annotations::GitSource> {
    let s = source(spec_file, None)?;
    match s.commit {
        Some(revision) => Ok(crate::annotations::GitSource {
            revision,
            source: s.repository,
        }),
        None => Err(Error::Request(format!(
            "git does not track {}, so there is no commit to name",
            spec_file.display()
        ))),
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A remote URL without credentials, or `None` for a local path.
fn public_url(remote: &str) -> Option<String> {
    let (scheme, rest) = remote.split_once("://")?;
    if !["https", "http", "ssh", "git"].contains(&scheme) {
        return None;
    }
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    Some(format!("{scheme}://{rest}"))
}

/// Reads what the provenance says about the sources of a build of
/// `spec_file`; `rustc_dir` is where to ask `rustc -V` (the workspace).
///
/// # Errors
/// When the spec file cannot be read.
pub fn source(spec_file: &Path, rustc_dir: Option<&Path>) -> Result<Source> {
    let bytes = std::fs::read(spec_file)
        .map_err(|e| Error::io(format!("cannot read {}", spec_file.display()), e))?;
    let dir = crate::fsutil::parent(spec_file);
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // Only a spec git tracks comes from a commit: a copy inside some other
    // repository's ignored directory (a CI workspace, target/) does not.
    let tracked = spec_file.file_name().is_some_and(|name| {
        git(
            dir,
            &["ls-files", "--error-unmatch", "--", &name.to_string_lossy()],
        )
        .is_some()
    });
    let top = tracked
        .then(|| git(dir, &["rev-parse", "--show-toplevel"]))
        .flatten();
    let commit = top.as_ref().and_then(|_| git(dir, &["rev-parse", "HEAD"]));
    let spec_path = match (&top, std::fs::canonicalize(spec_file)) {
        (Some(t), Ok(abs)) => abs
            .strip_prefix(t)
            .map(|p| p.to_string_lossy().into_owned())
            .ok(),
        _ => None,
    }
    .unwrap_or_else(|| {
        spec_file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    });
    let dirty =
        commit.is_some() && git(dir, &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let repository = commit
        .as_ref()
        .and_then(|_| git(dir, &["config", "--get", "remote.origin.url"]))
        .and_then(|r| public_url(&r));
    // The first line of `rustc -vV` is `rustc -V`'s; the payload build has
    // asked for it already.
    let rustc = rustc_dir.and_then(|d| {
        let out = crate::cargo::rustc_version_verbose(d)?;
        let first = String::from_utf8_lossy(&out)
            .lines()
            .next()?
            .trim()
            .to_string();
        (!first.is_empty()).then_some(first)
    });
    Ok(Source {
        spec_path,
        spec_digest: Digest::of(&bytes),
        commit,
        dirty,
        repository,
        rustc,
    })
}

/// One image and platform's provenance.
#[derive(Debug, Clone)]
pub struct ProvenanceInput<'a> {
    /// Image name.
    pub name: &'a str,
    /// Tag.
    pub tag: &'a str,
    /// Platform.
    pub platform: Platform,
    /// The platform manifest (the subject).
    pub manifest: &'a Digest,
    /// The sources.
    pub source: &'a Source,
    /// The registry base and its digest.
    pub base: Option<(&'a str, &'a Digest)>,
    /// SOURCE_DATE_EPOCH.
    pub source_date_epoch: u64,
    /// Layer compression (`gzip-6`).
    pub compression: &'a str,
}

/// The in-toto statement of `input`.
#[must_use]
pub fn statement(input: &ProvenanceInput<'_>) -> Value {
    let s = input.source;
    let mut deps = vec![json!({
        "name": s.spec_path,
        "digest": {"sha256": s.spec_digest.hex()},
    })];
    if let Some(commit) = &s.commit {
        let mut d = json!({
            "digest": {"gitCommit": commit},
            "annotations": {"dirty": s.dirty},
        });
        match &s.repository {
            Some(url) => d["uri"] = json!(format!("git+{url}@{commit}")),
            None => d["name"] = json!("source"),
        }
        deps.push(d);
    }
    if let Some((reference, digest)) = input.base {
        deps.push(json!({
            "uri": format!("oci://{reference}"),
            "digest": {"sha256": digest.hex()},
        }));
    }
    let mut version = json!({"aelimg": env!("CARGO_PKG_VERSION")});
    if let Some(r) = &s.rustc {
        version["rustc"] = json!(r);
    }
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{
            "name": format!("{}:{}", input.name, input.tag),
            "digest": {"sha256": input.manifest.hex()},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "spec": s.spec_path,
                    "image": input.name,
                    "platform": input.platform.to_string(),
                },
                "internalParameters": {
                    "compression": input.compression,
                    "sourceDateEpoch": input.source_date_epoch,
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": "https://github.com/aelimg/aelimg",
                    "version": version,
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_keep_no_credentials_and_no_local_paths() {
        assert_eq!(
            public_url("https://user:token@github.com/acme/ael.git").as_deref(),
            Some("https://github.com/acme/ael.git")
        );
        assert_eq!(
            public_url("ssh://git@example.com/x.git").as_deref(),
            Some("ssh://example.com/x.git")
        );
        assert_eq!(public_url("/work/main"), None);
        assert_eq!(public_url("file:///work/main"), None);
    }
}
