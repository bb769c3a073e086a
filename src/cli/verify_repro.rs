//! `aelimg verify-repro`: rebuild HEAD in a clean temporary checkout and
//! compare with the built layouts. Exits 0 when every digest matches, 1
//! when one differs (naming the first differing file), 2 on any error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aelimg::repro::{Checkout, compare, uncommitted, work_tree};
use clap::Args;

use super::args::{RegistryArgs, oci_dir_and_tag};
use super::progress::Mode;
use super::{CmdResult, Failure, usage};

/// Arguments of `aelimg verify-repro`.
#[derive(Debug, Args)]
pub struct VerifyReproArgs {
    /// The spec file (its path in HEAD is the same).
    #[arg(short = 'f', long = "file", default_value = "images/images.yaml")]
    file: PathBuf,
    /// Platforms to rebuild, as for `aelimg build` (default: the spec's).
    #[arg(long)]
    platform: Option<String>,
    /// Rebuild only this image (repeatable).
    #[arg(long = "image")]
    images: Vec<String>,
    /// The built layouts to compare with: a directory of layouts, as
    /// `aelimg build` writes them.
    #[arg(long, default_value = "oci:target/images", value_name = "oci:DIR")]
    layouts: String,
    /// Rebuild even though the work tree has uncommitted changes (the
    /// rebuild is of HEAD: they are not in it).
    #[arg(long)]
    allow_dirty: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print the verdicts as JSON on stdout (`{"reproducible", "commit",
    /// "images": [...]}`).
    #[arg(long)]
    json: bool,
}

/// Rebuilds and compares.
pub fn run(args: &VerifyReproArgs, mode: Mode) -> CmdResult {
    args.registry.options()?;
    let (layouts, tag) = oci_dir_and_tag(&args.layouts, "--layouts")?;
    if tag.is_some() || !layouts.is_dir() {
        return Err(usage(format!(
            "--layouts {}: expected oci:DIR, a directory of layouts as `aelimg build` writes them (build first)",
            args.layouts
        )));
    }
    let spec = std::fs::canonicalize(&args.file)
        .map_err(|e| usage(format!("-f {}: {e}", args.file.display())))?;
    let spec_dir = spec.parent().unwrap_or(Path::new("/"));
    let top = std::fs::canonicalize(work_tree(spec_dir)?)
        .map_err(|e| usage(format!("the git work tree of {}: {e}", spec.display())))?;
    let rel = spec
        .strip_prefix(&top)
        .map_err(|_| usage(format!("{} is not in {}", spec.display(), top.display())))?
        .to_path_buf();
    let dirty = uncommitted(&top)?;
    if !dirty.is_empty() && !args.allow_dirty {
        let shown: Vec<&str> = dirty.iter().take(10).map(String::as_str).collect();
        return Err(usage(format!(
            "{} has uncommitted changes, which a rebuild of HEAD would not have:\n  {}{}\ncommit them (and build again), or pass --allow-dirty",
            top.display(),
            shown.join("\n  "),
            if dirty.len() > shown.len() {
                format!("\n  … and {} more", dirty.len() - shown.len())
            } else {
                String::new()
            }
        )));
    }
    // The rebuild shares the cargo target directory (and with it the
    // working blob store): only the workspace's own crates compile again.
    let target_dir = aelimg::cargo::CargoWorkspace::discover(spec_dir)
        .ok()
        .map(|w| w.target_dir);
    let checkout = Checkout::create(&top, "HEAD")?;
    let out = checkout.scratch();
    let quiet = mode == Mode::Quiet;
    if !quiet {
        eprintln!(
            "rebuilding {} at {} in {}",
            rel.display(),
            &checkout.commit()[..12.min(checkout.commit().len())],
            checkout.dir().display()
        );
    }
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find aelimg: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(checkout.dir())
        .arg("build")
        .arg("--locked")
        .arg("--no-cache")
        .arg("-f")
        .arg(checkout.dir().join(&rel))
        .arg("--output")
        .arg(format!("oci:{}", out.display()));
    if let Some(p) = &args.platform {
        cmd.arg("--platform").arg(p);
    }
    for i in &args.images {
        cmd.arg("--image").arg(i);
    }
    if quiet {
        cmd.arg("--quiet");
    }
    // The registry options, for registry bases.
    let r = &args.registry;
    for f in &r.ca_files {
        cmd.arg("--ca-file")
            .arg(std::path::absolute(f).unwrap_or_else(|_| f.clone()));
    }
    for (flag, values) in [
        ("--insecure-registry", &r.insecure),
        ("--resolve", &r.resolve),
        ("--mount-from", &r.mount_from),
    ] {
        for v in values {
            cmd.arg(flag).arg(v);
        }
    }
    cmd.arg("--retries").arg(r.retries.to_string());
    if let Some(j) = r.jobs {
        cmd.arg("--jobs").arg(j.to_string());
    }
    match &target_dir {
        Some(t) => cmd.env("CARGO_TARGET_DIR", t),
        None => cmd.env_remove("CARGO_TARGET_DIR"),
    };
    // The rebuild's size report is not this command's output: stdout
    // holds only the verdicts (and --quiet drops it).
    let to_stderr = if quiet {
        Stdio::null()
    } else {
        std::io::stderr()
            .as_fd_clone()
            .map_or_else(|_| Stdio::null(), Stdio::from)
    };
    let status = cmd
        .stdout(to_stderr)
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run aelimg build: {e}"))?;
    if !status.success() {
        return Err(anyhow::anyhow!(
            "the rebuild in {} failed ({status})",
            checkout.dir().display()
        )
        .into());
    }
    let verdicts = compare(&layouts, &out)?;
    let commit = checkout.commit().to_string();
    drop(checkout);
    let differ = verdicts.iter().any(|v| !v.same);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "reproducible": !differ,
                "commit": commit,
                "images": verdicts,
            }))
            .map_err(anyhow::Error::from)?
        );
        return if differ {
            Err(Failure::Exit(1))
        } else {
            Ok(())
        };
    }
    for v in &verdicts {
        let what = match &v.platform {
            Some(p) => format!("{} {p}", v.image),
            None => v.image.clone(),
        };
        if v.same {
            println!("{what}: reproduced ({})", v.built);
            continue;
        }
        println!(
            "{what}: DIFFERS: built {}, rebuilt {}: {}",
            v.built,
            v.rebuilt,
            v.why.as_deref().unwrap_or("")
        );
        if let Some(f) = &v.file {
            let side = |x: &Option<aelimg::inspect::files::FileInfo>| {
                x.as_ref().map_or_else(
                    || "(absent)".to_string(),
                    |f| {
                        format!(
                            "{} {}:{} {} B mtime {}{}{}",
                            f.mode_string(),
                            f.uid,
                            f.gid,
                            f.size,
                            f.mtime,
                            f.link
                                .as_ref()
                                .map_or_else(String::new, |l| format!(" -> {l}")),
                            f.digest
                                .as_ref()
                                .map_or_else(String::new, |d| format!(" {d}"))
                        )
                    },
                )
            };
            println!(
                "  first differing file: {} ({})\n    built:   {}\n    rebuilt: {}",
                f.path,
                if f.what.is_empty() {
                    match f.change {
                        aelimg::diff::FileChangeKind::Added => "only in the rebuild".to_string(),
                        aelimg::diff::FileChangeKind::Removed => {
                            "only in the built layer".to_string()
                        }
                        aelimg::diff::FileChangeKind::Changed => "changed".to_string(),
                    }
                } else {
                    f.what.join(", ")
                },
                side(&f.a),
                side(&f.b)
            );
        }
    }
    if differ {
        println!("not reproducible");
        Err(Failure::Exit(1))
    } else {
        println!("reproducible");
        Ok(())
    }
}

/// A clone of a standard stream's file descriptor.
trait FdClone {
    fn as_fd_clone(&self) -> std::io::Result<std::os::fd::OwnedFd>;
}

impl FdClone for std::io::Stderr {
    fn as_fd_clone(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd as _;
        self.as_fd().try_clone_to_owned()
    }
}
