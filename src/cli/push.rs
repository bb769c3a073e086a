//! `aelimg push`: read layouts, run the registry sink.

use std::path::{Path, PathBuf};

use aelimg::pipeline::Observer;
use aelimg::progress::Event;
use aelimg::registry::PushReport;
use aelimg::sink::Record;
use aelimg::sink::registry::RegistrySink;
use anyhow::Context as _;
use clap::Args;

use super::CmdResult;
use super::args::{RegistryArgs, oci_dir_and_tag};
use super::progress::{Mode, Renderer};

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
    /// The spec whose `mcp:` sections describe the pushed images' MCP
    /// servers (for server.json); none is written when it does not exist.
    #[arg(short = 'f', long = "file", default_value = "images/images.yaml")]
    file: PathBuf,
    /// Write the MCP registry's server.json of each pushed image with an
    /// `mcp:` section to DIR/NAME/server.json.
    #[arg(long = "server-json", value_name = "DIR", default_value = "target/mcp")]
    server_json: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Shows each blob's progress and collects push reports.
struct Collect {
    reports: Vec<PushReport>,
    ui: Renderer,
}

impl Observer for Collect {
    fn written(&mut self, r: &Record) {
        if let Some(p) = &r.push {
            self.reports.push(p.clone());
        }
        for w in &r.warnings {
            self.ui.line(&format!("warning: {w}"));
        }
    }

    fn progress(&mut self, e: &Event<'_>) {
        self.ui.event(e);
    }
}

/// Prints what each push did (stderr, not in `Mode::Quiet`), the references
/// (stdout when `refs_to_stdout`, else stderr) or JSON, and writes the
/// digest file.
pub fn print_pushes(
    reports: &[PushReport],
    json: Option<bool>,
    refs_to_stdout: bool,
    digest_file: Option<&Path>,
    mode: Mode,
) -> anyhow::Result<()> {
    let quiet = mode == Mode::Quiet;
    for r in reports.iter().filter(|_| !quiet) {
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
            } else if !quiet {
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

/// Writes `DIR/NAME/server.json` for each pushed image that `plan` gives an
/// `mcp:` section, with the pushed reference by digest as the identifier;
/// prints each path (stderr, not in `Mode::Quiet`).
pub fn write_server_jsons(
    reports: &[PushReport],
    plan: &aelimg::plan::Plan,
    dir: &Path,
    mode: Mode,
) -> anyhow::Result<()> {
    for r in reports {
        let Some(img) = plan.images.iter().find(|i| i.name == r.image) else {
            continue;
        };
        let (Some(m), Some(version)) = (&img.mcp, &img.version) else {
            continue;
        };
        let path = aelimg::mcp::server_json_path(dir, &img.name);
        aelimg::mcp::write(&path, &aelimg::mcp::server_json(m, version, &r.reference))
            .with_context(|| format!("--server-json {}", dir.display()))?;
        if mode != Mode::Quiet {
            eprintln!("wrote {} ({})", path.display(), m.name);
        }
    }
    Ok(())
}

/// Pushes the layouts.
pub fn run(args: &PushArgs, mode: Mode) -> CmdResult {
    let (dir, tag) = oci_dir_and_tag(&args.from, "--from")?;
    let mut sink = RegistrySink::new(
        args.reference.clone(),
        args.tags.clone(),
        args.registry.options()?,
    )?;
    let images = aelimg::pipeline::find_layouts(&dir, tag.as_deref(), &args.images)?;
    let mut seen = Collect {
        reports: Vec::new(),
        ui: Renderer::new(mode),
    };
    if let Err(e) = aelimg::pipeline::push(&images, &mut sink, &mut seen) {
        seen.ui.failed();
        return Err(e.into());
    }
    drop(seen.ui);
    print_pushes(
        &seen.reports,
        Some(args.json),
        true,
        args.digest_file.as_deref(),
        mode,
    )?;
    // The layouts hold no images.yaml: the spec gives the MCP metadata.
    if args.file.is_file() {
        let planned = aelimg::pipeline::plan(&args.file, &aelimg::plan::PlanOptions::default())?;
        write_server_jsons(&seen.reports, &planned.plan, &args.server_json, mode)?;
    }
    Ok(())
}
