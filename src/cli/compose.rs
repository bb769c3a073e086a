//! `aelimg compose`.

use std::path::PathBuf;

use aelimg::compose::{ComposeOptions, Flavor};
use clap::Args;

use super::CmdResult;
use super::args::SpecArgs;

/// Arguments of `aelimg compose`.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// The spec file.
    #[arg(short = 'f', long = "file", default_value = "images/images.yaml")]
    file: PathBuf,
    /// The development file (DEBUG logs, hot reload, no restart policy)
    /// instead of the production one.
    #[arg(long)]
    dev: bool,
    /// Name each image by digest, from a digest file of `aelimg push
    /// --digest-file` (REGISTRY/REPO@sha256:… per line; the repository's
    /// last component is the image name).
    #[arg(long, value_name = "DIGEST_FILE")]
    pin: Option<PathBuf>,
    /// Write the file here (mount paths are relative to its directory);
    /// default: stdout (paths relative to the current directory).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Writes DOC-056's compose file.
pub fn run(args: &ComposeArgs) -> CmdResult {
    let spec = SpecArgs {
        file: args.file.clone(),
        platform: None,
        images: Vec::new(),
        annotations: Vec::new(),
        labels: Vec::new(),
        annotate_git: false,
    };
    let planned = aelimg::pipeline::plan(&args.file, &spec.plan_options()?)?;
    let dir = match &args.output {
        Some(f) => match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
        None => PathBuf::from("."),
    };
    let text = aelimg::compose::compose(
        &planned.plan,
        &ComposeOptions {
            flavor: if args.dev {
                Flavor::Development
            } else {
                Flavor::Production
            },
            dir,
            pins: match &args.pin {
                Some(f) => aelimg::compose::read_pins(f)?,
                None => Default::default(),
            },
        },
    )?;
    match &args.output {
        Some(f) => aelimg::fsutil::atomic_write(f, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(())
}
