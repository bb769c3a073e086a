//! `aelimg build`.

use std::path::PathBuf;

use clap::Args;

use super::SpecArgs;
use crate::build::{build, render_report, size_report};
use crate::cargo::{CargoBuilder, PayloadBuilder, PrebuiltBinaries};
use crate::error::{Error, Result};
use crate::sink::registry::RegistrySink;
use crate::sink::{Output, Sink as _};
use crate::store::BlobStore;

/// Arguments of `aelimg build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Where to write the images (repeatable): oci:DIR, docker-archive:DIR.
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
    /// Also push each image to REF (REGISTRY/REPO[:TAG], `{name}` for the image name).
    #[arg(long, value_name = "REF")]
    push: Option<String>,
    /// Extra tags for --push (repeatable).
    #[arg(long = "tag", value_name = "T", requires = "push")]
    tags: Vec<String>,
    /// With --push: write each pushed REGISTRY/REPO@sha256:… to this file.
    #[arg(long, value_name = "FILE", requires = "push")]
    digest_file: Option<PathBuf>,
    #[command(flatten)]
    registry: super::push::RegistryArgs,
}

/// Builds the images and writes them to every output.
pub fn run(args: &BuildArgs) -> Result<()> {
    let outputs = args
        .outputs
        .iter()
        .map(|o| Output::parse(o))
        .collect::<Result<Vec<_>>>()?;
    let (plan, ws) = super::load_plan(&args.spec)?;
    if outputs
        .iter()
        .any(|o| matches!(o, Output::DockerArchive(_)))
    {
        for img in &plan.images {
            if img.platforms.len() > 1 {
                let names: Vec<String> = img.platforms.iter().map(ToString::to_string).collect();
                return Err(Error::Usage(format!(
                    "image {} has {} platforms ({}), and a docker archive holds one: pick it with --platform {}",
                    img.name,
                    names.len(),
                    names.join(", "),
                    names[0]
                )));
            }
        }
    }
    let needs_bases = plan
        .images
        .iter()
        .any(|i| crate::registry::base::is_registry_base(&i.base));
    let base_opts = if needs_bases {
        Some(args.registry.options()?)
    } else {
        None
    };
    let registry_opts = match &args.push {
        Some(r) => {
            for img in &plan.images {
                crate::sink::registry::target(r, &img.name, Some(&img.tag), &args.tags)?;
            }
            Some(args.registry.options()?)
        }
        None => None,
    };
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
    let images = match &base_opts {
        Some(opts) => crate::registry::base::rebase(images, &plan, &store, opts)?,
        None => images,
    };
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
                "{} {} is {} uncompressed ({} compressed), over its limit of {}",
                p.image,
                p.platform,
                crate::build::human(p.uncompressed),
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
    if let (Some(r), Some(opts)) = (&args.push, registry_opts) {
        let mut sink = RegistrySink::new(r.clone(), args.tags.clone(), opts);
        for img in &images {
            sink.write(&store, img)?;
        }
        // With --json stdout holds the size report: the references go to stderr.
        super::push::report(&sink.reports, None, !args.json, args.digest_file.as_deref())?;
    }
    Ok(())
}
