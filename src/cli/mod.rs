//! The command line: clap definitions and one module per subcommand, each a
//! thin call into the library.

mod build;
mod login;
mod plan;
mod pull;
mod push;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::cargo::CargoWorkspace;
use crate::error::{Error, Result};
use crate::plan::{PlanOptions, Workspace};
use crate::platform::Platform;

/// Builds reproducible OCI images of the AEL runtime and native-tools, with
/// no Dockerfile and no Docker engine.
#[derive(Debug, Parser)]
#[command(name = "aelimg", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the images of images.yaml and write them to the outputs.
    Build(build::BuildArgs),
    /// Print the resolved plan; builds nothing.
    Plan(plan::PlanArgs),
    /// Push built images (OCI layouts) to a registry.
    Push(push::PushArgs),
    /// Pull an image from a registry into an OCI layout.
    Pull(pull::PullArgs),
    /// Check credentials for a registry and save them in the docker config.
    Login(login::LoginArgs),
}

/// Options shared by the commands that read images.yaml.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The spec file.
    #[arg(short = 'f', long = "file", default_value = "images/images.yaml")]
    pub file: PathBuf,
    /// Platforms to build, buildx syntax (linux/amd64,linux/arm64); default:
    /// the platforms in images.yaml, else the host's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Build only this image (repeatable).
    #[arg(long = "image")]
    pub images: Vec<String>,
}

/// Runs the command line and turns errors into exit codes (1 input or build
/// error, 2 usage).
#[must_use]
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Command::Build(a) => build::run(&a),
        Command::Plan(a) => plan::run(&a),
        Command::Push(a) => push::run(&a),
        Command::Pull(a) => pull::run(&a),
        Command::Login(a) => login::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::error::chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// SOURCE_DATE_EPOCH, or 0.
fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "SOURCE_DATE_EPOCH={v}: expected a number of seconds since 1970"
            ))
        }),
        _ => Ok(0),
    }
}

/// A workspace that could not be read; every cargo source is then an error.
struct NoWorkspace(String);

impl Workspace for NoWorkspace {
    fn binaries(&self, _package: &str) -> Option<Vec<String>> {
        None
    }
    fn members(&self) -> Vec<String> {
        vec![format!("(none: {})", self.0)]
    }
}

/// Loads the spec and resolves the plan; reads nothing but metadata.
fn load_plan(args: &SpecArgs) -> Result<(crate::plan::Plan, Option<CargoWorkspace>)> {
    let spec = crate::spec::load(&args.file)?;
    let platforms = match &args.platform {
        Some(p) => Some(
            Platform::parse_list(p).map_err(|m| Error::Usage(format!("--platform {p}: {m}")))?,
        ),
        None => None,
    };
    let opts = PlanOptions {
        platforms,
        only: args.images.clone(),
        source_date_epoch: source_date_epoch()?,
    };
    let ws = CargoWorkspace::discover(spec_dir(&spec.dir));
    let plan = match &ws {
        Ok(ws) => crate::plan::resolve(&spec, &opts, ws)?,
        Err(e) => crate::plan::resolve(&spec, &opts, &NoWorkspace(e.to_string()))?,
    };
    Ok((plan, ws.ok()))
}

fn spec_dir(dir: &Path) -> &Path {
    dir
}
