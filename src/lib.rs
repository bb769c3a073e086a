//! aelimg builds reproducible OCI images with no Dockerfile and no Docker
//! engine.
//!
//! # Architecture
//!
//! A build is a pipeline of pure stages over plain values:
//!
//! ```text
//! images.yaml ─► spec ─► plan ─► payload ─► layers ─► image ─► sink
//! ```
//!
//! - [`spec`] is the YAML exactly as written, with line:column for errors.
//! - [`plan`] resolves it, with the command line, into every file, owner,
//!   mode and config field; all input checks happen here, so bad input never
//!   leaves a half-written output.
//! - [`cargo`] builds the payload binaries (one cargo run for all targets)
//!   and [`elf`] checks each against its platform.
//! - [`layer`] streams deterministic tar → gzip → sha256 into a
//!   content-addressed [`store`].
//! - [`image`] makes the config, manifest and index as canonical JSON.
//! - [`sink`] writes images out (an OCI layout per image, a docker archive,
//!   or a registry through [`registry`]), atomically.
//!
//! [`build`] runs the stages; [`cli`] is the command line.

pub mod build;
pub mod cargo;
pub mod cli;
pub mod elf;
pub mod error;
pub mod fsutil;
pub mod image;
pub mod layer;
pub mod plan;
pub mod platform;
pub mod registry;
pub mod rootfs;
pub mod sink;
pub mod spec;
pub mod store;

pub use error::{Error, Result};
