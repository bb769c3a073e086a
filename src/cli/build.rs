//! `aelimg build`.

use std::path::PathBuf;

use clap::Args;

use super::SpecArgs;
use crate::build::{build, render_report, size_report};
use crate::cargo::{CargoBuilder, PayloadBuilder, PrebuiltBinaries};
use crate::error::{Error, Result};
use crate::sink::Output;
use crate::store::BlobStore;

/// Arguments of `aelimg build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Where to write the images (repeatable): oci:DIR.
    #[arg(long = "output", default_value = "oci:target/images")]
    outputs: Vec<String>,
    /// Print the size report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Pass --locked to cargo.
    #[arg(long)]
    locked: bool,
    /// Cargo profile of the payload binaries.
    #[arg(long, default_value = "release")]
    profile: String,
    /// Take the payload binaries from DIR/<rust-target>/<bin> instead of cargo.
    #[arg(long, value_name = "DIR")]
    prebuilt: Option<PathBuf>,
    /// Working blob store (default: <cargo target dir>/aelimg).
    #[arg(long, value_name = "DIR", env = "AELIMG_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

/// Builds the images and writes them to every output.
pub fn run(args: &BuildArgs) -> Result<()> {
    let outputs = args
        .outputs
        .iter()
        .map(|o| Output::parse(o))
        .collect::<Result<Vec<_>>>()?;
    let (plan, ws) = super::load_plan(&args.spec)?;
    let cache = args.cache_dir.clone().unwrap_or_else(|| {
        ws.as_ref().map_or_else(
            || PathBuf::from("target/aelimg"),
            |w| w.target_dir.join("aelimg"),
        )
    });
    let store = BlobStore::open(&cache)?;
    let payload: Box<dyn PayloadBuilder> = match (&args.prebuilt, ws) {
        (Some(dir), _) => Box::new(PrebuiltBinaries { dir: dir.clone() }),
        (None, Some(workspace)) => Box::new(CargoBuilder {
            workspace,
            profile: args.profile.clone(),
            locked: args.locked,
        }),
        (None, None) => Box::new(PrebuiltBinaries {
            dir: PathBuf::from("/nonexistent-no-cargo-workspace"),
        }),
    };
    let images = build(&plan, &store, payload.as_ref())?;
    let report = size_report(&images);
    if args.json {
        let s = serde_json::to_string_pretty(&report).map_err(|e| Error::Json {
            context: "size report".into(),
            source: e,
        })?;
        println!("{s}");
    } else {
        print!("{}", render_report(&report));
    }
    let over: Vec<String> = report
        .iter()
        .filter(|p| !p.within_limit)
        .map(|p| {
            format!(
                "{} {} is {} compressed, over its limit of {}",
                p.image,
                p.platform,
                crate::build::human(p.compressed),
                crate::build::human(p.limit.unwrap_or(0))
            )
        })
        .collect();
    if !over.is_empty() {
        return Err(Error::SizeLimit(format!(
            "{}; nothing was written",
            over.join("; ")
        )));
    }
    for out in &outputs {
        let mut sink = out.sink();
        for img in &images {
            let r = sink.write(&store, img)?;
            eprintln!("wrote {r} ({})", img.top().digest);
        }
    }
    Ok(())
}
