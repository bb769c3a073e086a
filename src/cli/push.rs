//! `aelimg push`: read layouts, run the registry sink.

use std::path::{Path, PathBuf};

use aelimg::pipeline::Observer;
use aelimg::registry::PushReport;
use aelimg::sink::Record;
use aelimg::sink::registry::RegistrySink;
use anyhow::Context as _;
use clap::Args;

use super::CmdResult;
use super::args::{RegistryArgs, oci_dir_and_tag};

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

/// Collects push reports.
#[derive(Default)]
struct Collect(Vec<PushReport>);

impl Observer for Collect {
    fn written(&mut self, r: &Record) {
        if let Some(p) = &r.push {
            self.0.push(p.clone());
        }
    }
}

/// Prints what each push did (stderr), the references (stdout when
/// `refs_to_stdout`, else stderr) or JSON, and writes the digest file.
pub fn print_pushes(
    reports: &[PushReport],
    json: Option<bool>,
    refs_to_stdout: bool,
    digest_file: Option<&Path>,
) -> anyhow::Result<()> {
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
        println!("{}", serde_json::to_string_pretty(reports)?);
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
        aelimg::fsutil::atomic_write(f, text.as_bytes())
            .with_context(|| format!("--digest-file {}", f.display()))?;
    }
    Ok(())
}

/// Pushes the layouts.
pub fn run(args: &PushArgs) -> CmdResult {
    let (dir, tag) = oci_dir_and_tag(&args.from, "--from")?;
    let mut sink = RegistrySink::new(
        args.reference.clone(),
        args.tags.clone(),
        args.registry.options()?,
    )?;
    let images = aelimg::pipeline::find_layouts(&dir, tag.as_deref(), &args.images)?;
    let mut seen = Collect::default();
    aelimg::pipeline::push(&images, &mut sink, &mut seen)?;
    print_pushes(&seen.0, Some(args.json), true, args.digest_file.as_deref())?;
    Ok(())
}
