//! The `ael` subcommands, one module each.

pub mod health;
pub mod runs;
pub mod serve;
pub mod workflows;
