//! The command line: one file per subcommand, each parsing its arguments
//! into library values and calling one library function.

mod args;
mod build;
mod cache;
mod compose;
mod login;
mod plan;
mod progress;
mod pull;
mod push;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Builds reproducible OCI images of the AEL runtime and native-tools, with
/// no Dockerfile and no Docker engine.
#[derive(Debug, Parser)]
#[command(name = "aelimg", version, about, long_about = None)]
struct Cli {
    /// Print nothing on stderr but errors: no progress, no notes (cargo's
    /// messages are shown only when the build fails). stdout is unchanged.
    #[arg(short, long, global = true)]
    quiet: bool,
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
    /// Inspect or prune the working blob store and layer cache.
    Cache(cache::CacheArgs),
    /// Write DOC-056's compose file (production, or --dev) from images.yaml.
    Compose(compose::ComposeArgs),
}

/// An error of a command: a usage error (exit 2) or a failure (exit 1).
#[derive(Debug)]
enum Failure {
    /// The command line asks for something that cannot be done as asked.
    Usage(String),
    /// The library failed.
    Lib(aelimg::Error),
    /// Anything else at the edge (printing, reading stdin).
    Other(anyhow::Error),
}

impl From<aelimg::Error> for Failure {
    fn from(e: aelimg::Error) -> Self {
        Self::Lib(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

type CmdResult = Result<(), Failure>;

fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

/// Runs the command line; 0 on success, 1 on an input or build error, 2 on a
/// usage error.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let mode = progress::Mode::detect(cli.quiet);
    let result = match cli.command {
        Command::Build(a) => build::run(&a, mode),
        Command::Plan(a) => plan::run(&a),
        Command::Push(a) => push::run(&a, mode),
        Command::Pull(a) => pull::run(&a, mode),
        Command::Login(a) => login::run(&a, mode),
        Command::Cache(a) => cache::run(&a),
        Command::Compose(a) => compose::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Lib(e)) => {
            eprintln!("error: {}", aelimg::error::chain(&e));
            ExitCode::from(if e.is_request() { 2 } else { 1 })
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
