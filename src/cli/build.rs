//! `aelimg build`.

use std::path::{Path, PathBuf};

use aelimg::cargo::{PayloadBuilder, PrebuiltBinaries};
use aelimg::digest::Digest;
use aelimg::layer::{Codec, LayerCompression};
use aelimg::pipeline::{BuildSettings, Observer};
use aelimg::platform::Platform;
use aelimg::progress::Event;
use aelimg::reference::Reference;
use aelimg::registry::PushReport;
use aelimg::report::{PlatformSize, render_report};
use aelimg::sink::archive::ArchiveSink;
use aelimg::sink::engine::{EngineKind, EngineSink, resolve_endpoint};
use aelimg::sink::layout::LayoutSink;
use aelimg::sink::registry::RegistrySink;
use aelimg::sink::{Record, Sink, Tee};
use clap::Args;

use super::args::{RegistryArgs, SpecArgs};
use super::progress::{Mode, Renderer};
use super::push::print_pushes;
use super::{CmdResult, Failure, usage};

/// Arguments of `aelimg build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Where to write the images (repeatable): oci:DIR, docker-archive:DIR,
    /// docker-daemon[:unix:///SOCKET], podman[:unix:///SOCKET]. Default:
    /// oci:target/images, unless --load is given.
    #[arg(long = "output", value_name = "DEST")]
    outputs: Vec<String>,
    /// Load each image into the local container engine (DOCKER_HOST, else
    /// /var/run/docker.sock, else podman's socket) for the engine's platform,
    /// tagged NAME:TAG. Without --platform, builds only that platform.
    #[arg(long)]
    load: bool,
    /// Print the size report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Pass --locked to cargo.
    #[arg(long)]
    locked: bool,
    /// Build every layer afresh instead of taking unchanged ones from the
    /// layer cache (the results still go into the cache).
    #[arg(long)]
    no_cache: bool,
    /// Cargo profile of the payload binaries.
    #[arg(long, default_value = "release")]
    profile: String,
    /// Do not link each payload binary's crate list into it (the `.dep-v0`
    /// section cargo-auditable writes and `cargo audit bin`, trivy, grype
    /// and syft read).
    #[arg(long)]
    no_auditable: bool,
    /// Take the payload binaries from DIR/<rust-target>/<bin> instead of cargo.
    #[arg(long, value_name = "DIR")]
    prebuilt: Option<PathBuf>,
    /// Working blob store (default: <cargo target dir>/aelimg).
    #[arg(long, value_name = "DIR", env = "AELIMG_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Also push each image to REF (REGISTRY/REPO[:TAG], `{name}` for the image
    /// name). stdout then holds only the pushed REGISTRY/REPO@sha256:…, one
    /// per line (the size report goes to stderr), unless --json.
    #[arg(long, value_name = "REF")]
    push: Option<String>,
    /// Extra tags for --push (repeatable).
    #[arg(long = "tag", value_name = "T", requires = "push")]
    tags: Vec<String>,
    /// With --push: write each pushed REGISTRY/REPO@sha256:… to this file.
    #[arg(long, value_name = "FILE", requires = "push")]
    digest_file: Option<PathBuf>,
    /// With --push: write the MCP registry's server.json of each image with
    /// an `mcp:` section to DIR/NAME/server.json (default target/mcp).
    #[arg(long = "server-json", value_name = "DIR", requires = "push")]
    server_json: Option<PathBuf>,
    /// Layer compression: gzip (every engine reads it) or zstd (faster and
    /// smaller; needs Docker ≥ 23, containerd ≥ 1.5 or podman 4; umoci 0.4 cannot unpack it).
    #[arg(long, value_name = "ALGO", default_value = "gzip", value_parser = ["gzip", "zstd"])]
    compression: String,
    /// Compression level: gzip 1–9 (default 6), zstd 1–19 (default 3).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    compression_level: Option<i32>,
    /// SBOM attached to each image and platform as an OCI referrer: spdx
    /// (SPDX 2.3 JSON), cyclonedx (CycloneDX 1.6 JSON), or none.
    #[arg(long, visible_alias = "sbom-format", value_name = "FORMAT", default_value = "spdx", value_parser = ["spdx", "cyclonedx", "none"])]
    sbom: String,
    /// SLSA v1 provenance attached to each image and platform as an OCI
    /// referrer (an in-toto statement): slsa, or none.
    #[arg(long, value_name = "MODE", default_value = "slsa", value_parser = ["slsa", "none"])]
    provenance: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// The default `--output`, when neither `--output` nor `--load` is given.
const DEFAULT_OUTPUT: &str = "oci:target/images";

/// The environment as the engine sink looks variables up.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Connects to an engine (it must answer before anything is built).
fn engine_sink(kind: EngineKind, address: Option<&str>) -> Result<EngineSink, Failure> {
    let endpoint = resolve_endpoint(kind, address, &env_var, &|p| p.exists())?;
    Ok(EngineSink::connect(kind, endpoint)?)
}

/// One `--output` as a sink; an engine's platform goes to `engines`.
fn output_sink(s: &str, engines: &mut Vec<Platform>) -> Result<Box<dyn Sink>, Failure> {
    let engine = |kind, address: Option<&str>, engines: &mut Vec<Platform>| {
        let sink = engine_sink(kind, address)?;
        if let Ok(p) = sink.platform() {
            engines.push(p);
        }
        Ok::<Box<dyn Sink>, Failure>(Box::new(sink))
    };
    match s.split_once(':') {
        None if s == "docker-daemon" => engine(EngineKind::Docker, None, engines),
        None if s == "podman" => engine(EngineKind::Podman, None, engines),
        Some(("docker-daemon", a)) if !a.is_empty() => engine(EngineKind::Docker, Some(a), engines),
        Some(("podman", a)) if !a.is_empty() => engine(EngineKind::Podman, Some(a), engines),
        Some(("oci", dir)) if !dir.is_empty() => Ok(Box::new(LayoutSink::new(PathBuf::from(dir)))),
        Some(("docker-archive", dir)) if !dir.is_empty() => {
            Ok(Box::new(ArchiveSink::new(PathBuf::from(dir))))
        }
        _ => Err(usage(format!(
            "--output {s}: expected oci:DIR, docker-archive:DIR, docker-daemon[:unix:///SOCKET] or podman[:unix:///SOCKET] (for example oci:target/images)"
        ))),
    }
}

/// Prints the report (table on stdout, or JSON with --json), shows
/// progress and each write on stderr. With --push (and no --json) stdout
/// holds only the pushed references, so the table goes to stderr.
struct Printer {
    json: bool,
    /// Print the table on stderr (not in quiet mode), not stdout.
    report_to_stderr: bool,
    quiet: bool,
    pushes: Vec<PushReport>,
    ui: Renderer,
    /// The OCI layout directories written (`--output oci:DIR`).
    oci_dirs: Vec<PathBuf>,
    /// The working blob store (where the new images are before the
    /// layouts are written).
    store_dir: Box<dyn Fn() -> PathBuf + Send>,
    /// The size changes against what the layouts held before.
    changes: String,
}

impl Observer for Printer {
    fn base_resolved(&mut self, reference: &Reference, digest: &Digest) {
        self.ui.line(&format!(
            "base {reference} is {}@{digest}",
            reference.name()
        ));
    }

    fn built(&mut self, report: &[PlatformSize]) {
        let before = |dir: &PathBuf| {
            report.iter().any(|p| {
                p.image
                    .rsplit_once(':')
                    .is_some_and(|(name, _)| dir.join(name).join("index.json").is_file())
            })
        };
        if !self.quiet && self.oci_dirs.iter().any(before) {
            self.changes = super::changes::summary(&self.oci_dirs, report, &(self.store_dir)());
        }
        self.ui.suspend(|| {
            if self.json {
                match serde_json::to_string_pretty(report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("error: cannot print the size report: {e}"),
                }
            } else if !self.report_to_stderr {
                print!("{}", render_report(report));
            } else if !self.quiet {
                eprint!("{}", render_report(report));
            }
        });
    }

    fn written(&mut self, r: &Record) {
        match &r.push {
            Some(p) => self.pushes.push(p.clone()),
            None => self
                .ui
                .line(&format!("wrote {} ({})", r.reference, r.digest)),
        }
        for w in &r.warnings {
            self.ui.line(&format!("warning: {w}"));
        }
    }

    fn progress(&mut self, e: &Event<'_>) {
        self.ui.event(e);
    }
}

/// Builds the images and writes them to every output.
pub fn run(args: &BuildArgs, mode: Mode) -> CmdResult {
    let mut tee = Tee::default();
    let mut engines = Vec::new();
    if args.outputs.is_empty() && !args.load {
        tee.push(output_sink(DEFAULT_OUTPUT, &mut engines)?);
    }
    for o in &args.outputs {
        tee.push(output_sink(o, &mut engines)?);
    }
    let ui = Renderer::new(mode);
    if args.load {
        let sink = engine_sink(EngineKind::Any, None)?;
        ui.line(&format!("loading into {}", sink.describe));
        if let Ok(p) = sink.platform() {
            engines.push(p);
        }
        tee.push(Box::new(sink));
    }
    let mut plan_options = args.spec.plan_options()?;
    if plan_options.platforms.is_none() {
        // Build what the engine runs (ko --local builds for the host).
        plan_options.prefer_platform = engines.first().copied();
    }
    let registry = args.registry.options()?;
    if let Some(r) = &args.push {
        tee.push(Box::new(RegistrySink::new(
            r.clone(),
            args.tags.clone(),
            registry.clone(),
        )?));
    }
    let codec: Codec = args.compression.parse().map_err(usage)?;
    let compression = LayerCompression::new(codec, args.compression_level).map_err(usage)?;
    let prebuilt = args.prebuilt.clone().map(|dir| PrebuiltBinaries { dir });
    // This executable is cargo's rustc wrapper for the dependency lists.
    let embed_dependencies = if args.no_auditable {
        None
    } else {
        Some(
            std::env::current_exe()
                .map_err(|e| anyhow::anyhow!("cannot find aelimg's own executable: {e}"))?,
        )
    };
    let settings = BuildSettings {
        store_dir: args.cache_dir.clone(),
        payload: prebuilt.as_ref().map(|p| p as &dyn PayloadBuilder),
        profile: args.profile.clone(),
        locked: args.locked,
        // cargo's lines reach a terminal only with the bars.
        cargo_color: mode == Mode::Bars,
        no_cache: args.no_cache,
        embed_dependencies,
        registry,
        compression,
        // `--jobs` (with the registry flags) also bounds blob transfers.
        jobs: args.registry.jobs.map_or(0, usize::from),
        attach: aelimg::attest::AttachSettings {
            sbom: match args.sbom.as_str() {
                "none" => None,
                f => Some(aelimg::sbom::SbomFormat::parse(f).map_err(usage)?),
            },
            provenance: args.provenance == "slsa",
        },
    };
    let mut printer = Printer {
        json: args.json,
        // `docker run $(aelimg build --push REF --image ael)`: stdout holds
        // the references by digest and nothing else.
        report_to_stderr: args.push.is_some(),
        quiet: mode == Mode::Quiet,
        pushes: Vec::new(),
        ui,
        oci_dirs: args
            .outputs
            .iter()
            .map(String::as_str)
            .chain((args.outputs.is_empty() && !args.load).then_some(DEFAULT_OUTPUT))
            .filter_map(|o| o.strip_prefix("oci:"))
            .map(PathBuf::from)
            .collect(),
        store_dir: {
            let given = args.cache_dir.clone();
            let spec_dir = aelimg::fsutil::parent(&args.spec.file).to_path_buf();
            Box::new(move || {
                given
                    .clone()
                    .unwrap_or_else(|| aelimg::pipeline::default_store_dir(&spec_dir))
            })
        },
        changes: String::new(),
    };
    let built = aelimg::pipeline::build(
        &args.spec.file,
        &plan_options,
        &settings,
        &mut tee,
        &mut printer,
    );
    if let Err(e) = built {
        printer.ui.failed();
        if matches!(e, aelimg::Error::SizeLimit(_)) {
            // What grew since the layout's image explains the failure.
            eprint!("{}", printer.changes);
        }
        return Err(e.into());
    }
    drop(printer.ui);
    eprint!("{}", printer.changes);
    if args.push.is_some() {
        // With --json stdout holds the size report: the references go to stderr.
        print_pushes(
            &printer.pushes,
            None,
            !args.json,
            args.digest_file.as_deref(),
            mode,
        )?;
        let planned = aelimg::pipeline::plan(&args.spec.file, &plan_options)?;
        super::push::write_server_jsons(
            &printer.pushes,
            &planned.plan,
            args.server_json
                .as_deref()
                .unwrap_or(Path::new("target/mcp")),
            mode,
        )?;
    }
    Ok(())
}
