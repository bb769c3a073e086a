//! The command line: one file per subcommand, each parsing its arguments
//! into library values and calling one library function.

mod args;
mod build;
mod cache;
mod changes;
mod compose;
mod diff;
mod inspect;
mod login;
mod plan;
mod progress;
mod pull;
mod push;
mod verify_repro;

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
    Build(Box<build::BuildArgs>),
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
    /// Show an image's layers (what each adds, overwrites, deletes and
    /// wastes), its largest files, a layer's files or the merged tree.
    Inspect(inspect::InspectArgs),
    /// Compare two images: config, layers, files and sizes. Exit 0 when
    /// they are equal, 1 when they differ, 2 on any error.
    Diff(diff::DiffArgs),
    /// Rebuild HEAD in a clean temporary checkout and compare its digests
    /// with the built layouts. Exit 0 when they match, 1 when they differ
    /// (naming the first differing file), 2 on any error.
    VerifyRepro(verify_repro::VerifyReproArgs),
}

/// An error of a command: a usage error (exit 2) or a failure (exit 1);
/// or the answer of a command that answers a question by its exit code.
#[derive(Debug)]
enum Failure {
    /// No error: exit with this code, having printed the answer
    /// (`aelimg diff` and `verify-repro`: 1 for "they differ").
    Exit(u8),
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
/// usage error. The commands that answer a question by their exit code
/// (`diff`, `verify-repro`: 0 yes, 1 no) exit 2 on every error, so an
/// error is never taken for "they differ".
pub fn main() -> ExitCode {
    // cargo runs aelimg as its rustc wrapper while aelimg builds the payload.
    if let Some(code) =
        aelimg::cargo::wrapper::run_if_asked(&std::env::args_os().collect::<Vec<_>>())
    {
        return ExitCode::from(code);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let mode = progress::Mode::detect(cli.quiet);
    let answers = matches!(cli.command, Command::Diff(_) | Command::VerifyRepro(_));
    let result = match cli.command {
        Command::Build(a) => build::run(&a, mode),
        Command::Plan(a) => plan::run(&a),
        Command::Push(a) => push::run(&a, mode),
        Command::Pull(a) => pull::run(&a, mode),
        Command::Login(a) => login::run(&a, mode),
        Command::Cache(a) => cache::run(&a),
        Command::Compose(a) => compose::run(&a),
        Command::Inspect(a) => inspect::run(&a),
        Command::Diff(a) => diff::run(&a),
        Command::VerifyRepro(a) => verify_repro::run(&a, mode),
    };
    let failed = if answers { 2 } else { 1 };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Exit(code)) => ExitCode::from(code),
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Lib(e)) => {
            eprintln!("error: {}", aelimg::error::chain(&e));
            ExitCode::from(if e.is_request() { 2 } else { failed })
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(failed)
        }
    }
}
