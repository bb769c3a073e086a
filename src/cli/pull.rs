//! `aelimg pull`.

use aelimg::reference::Reference;
use clap::Args;

use super::args::RegistryArgs;
use super::progress::Mode;
use super::{CmdResult, usage};

/// Arguments of `aelimg pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: REGISTRY/REPO[:TAG][@sha256:…].
    #[arg(value_name = "REF")]
    reference: String,
    /// Where to write it: oci:DIR writes the layout DIR/<last part of REPO>.
    #[arg(long, default_value = "oci:target/pulled", value_name = "oci:DIR")]
    output: String,
    /// Only this platform of a multi-platform image (os/arch).
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Pulls an image into an OCI layout.
pub fn run(args: &PullArgs, mode: Mode) -> CmdResult {
    let opts = args.registry.options()?;
    let src = Reference::parse(&args.reference).map_err(aelimg::Error::from)?;
    let dir = args
        .output
        .strip_prefix("oci:")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| usage(format!("--output {}: expected oci:DIR", args.output)))?;
    let platform = match &args.platform {
        Some(p) => Some(
            p.split_once('/')
                .filter(|(o, a)| !o.is_empty() && !a.is_empty() && !a.contains('/'))
                .ok_or_else(|| usage(format!("--platform {p}: expected os/arch")))?,
        ),
        None => None,
    };
    let name = src.repository.rsplit('/').next().unwrap_or("image");
    let root = std::path::Path::new(dir).join(name);
    let (top, tag) = aelimg::pipeline::pull(
        &src,
        &root,
        platform,
        opts,
        &super::progress::LockNotes(mode),
    )?;
    if mode != Mode::Quiet {
        eprintln!("pulled {src} into oci:{}:{tag}", root.display());
    }
    println!("{}@{}", src.name(), top.digest);
    Ok(())
}
