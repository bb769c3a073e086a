//! The `aelimg` command: a thin shell around the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    aelimg::cli::main()
}
