//! `aelimg pull`.

use std::path::PathBuf;

use clap::Args;

use super::push::RegistryArgs;
use crate::error::{Error, Result};
use crate::registry::{Reference, Registry, pull::pull_image, tag_layout};
use crate::store::BlobStore;

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
pub fn run(args: &PullArgs) -> Result<()> {
    let opts = args.registry.options()?;
    let src = Reference::parse(&args.reference)?;
    let dir = args
        .output
        .strip_prefix("oci:")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Error::Usage(format!("--output {}: expected oci:DIR", args.output)))?;
    let platform = match &args.platform {
        Some(p) => Some(
            p.split_once('/')
                .filter(|(o, a)| !o.is_empty() && !a.is_empty() && !a.contains('/'))
                .ok_or_else(|| Error::Usage(format!("--platform {p}: expected os/arch")))?,
        ),
        None => None,
    };
    let name = src
        .repository
        .rsplit('/')
        .next()
        .unwrap_or("image")
        .to_string();
    let root = dir.join(&name);
    let store = BlobStore::open(&root)?;
    let reg = Registry::connect(&src.registry, src.api_host(), opts)?;
    let top = pull_image(&reg, &src, &store, platform)?;
    let tag = src.tag.clone().unwrap_or_else(|| "latest".into());
    tag_layout(&root, &top, &tag)?;
    eprintln!("pulled {src} into oci:{}:{tag}", root.display());
    println!("{}@{}", src.name(), top.digest);
    Ok(())
}
