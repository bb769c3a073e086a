//! The `aelimg` command: parses the command line (clap lives here, not in
//! the library), calls one library function per command, prints what
//! happened, and decides the exit code.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
