//! aelimg builds reproducible OCI images with no Dockerfile and no Docker
//! engine.
//!
//! # Architecture
//!
//! A build is a pipeline of stages over plain values:
//!
//! ```text
//! images.yaml ─► spec ─► plan ─► base ─► payload ─► layers ─► image ─► sink
//! ```
//!
//! From the bottom up (no module imports one above it; `tests/module_graph.rs`
//! keeps it so):
//!
//! - Pure values: [`digest`] (a checked sha256 [`digest::Digest`]),
//!   [`reference`] (image references), [`platform`], [`units`] (durations
//!   and byte sizes), [`values`] (the rules for names, paths, env, labels
//!   and signals that reach synthesized files and the config), [`annotations`]
//!   (the standard OCI annotation and label keys and their defaults),
//!   [`fsutil`] (atomic writes), [`file_digest`] (a file's digests, read
//!   once per process), [`error`], [`progress`]
//!   (the events the stages report as they go; the library prints nothing).
//! - Documents and storage: [`oci`] (manifest, index and config as exact
//!   bytes and as oci-spec types), [`store`] (content-addressed blobs),
//!   [`layout`] (the one owner of an OCI layout's `index.json`, and its
//!   garbage collection), [`gzip`] (block-parallel gzip whose bytes do not
//!   depend on the threads), [`layer`] (deterministic tar → gzip or zstd →
//!   sha256).
//! - Input: [`spec`] is the YAML exactly as written, with line:column for
//!   errors; [`plan`] resolves it with the command line into every file,
//!   owner, mode and config field; all input checks happen there, so bad
//!   input never leaves a half-written output.
//! - Network: [`registry`] (transport, credentials, push, pull) and [`base`],
//!   which resolves and fetches registry base images before anything is
//!   compiled.
//! - Building: [`cargo`] builds the payload binaries and [`elf`] checks each against its platform; [`image`] makes
//!   configs, manifests and indexes (our layers appended onto the base once);
//!   [`build`] runs the stages into a blob store; [`report`] sizes the result.
//! - Output: [`sink`] writes images out — an OCI layout, a docker archive, a
//!   local container engine or a registry — behind one trait, joined by a
//!   tee; [`compose`] writes DOC-056's compose files from the plan;
//!   [`mcp`] writes the MCP registry's server.json of a pushed image.
//! - Reading images back: [`inspect`] opens an image (a layout, a docker
//!   archive or a registry), reads its layers into file lists and merges
//!   them; [`diff`] compares two images on top of it; [`repro`] checks out
//!   a commit and compares a rebuild with the built layouts.
//! - [`pipeline`] is the library's entry points, one per command; the
//!   `aelimg` binary (clap) parses arguments and calls one of them.

pub mod annotations;
pub mod attest;
pub mod base;
pub mod build;
pub mod cache;
pub mod cargo;
pub mod compose;
pub mod diff;
pub mod digest;
pub mod elf;
pub mod error;
pub mod file_digest;
pub mod fsutil;
pub mod gzip;
pub mod image;
pub mod inspect;
pub mod layer;
pub mod layout;
pub mod mcp;
pub mod oci;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod provenance;
pub mod reference;
pub mod registry;
pub mod report;
pub mod repro;
pub mod rootfs;
pub mod sbom;
pub mod sink;
pub mod spec;
pub mod store;
pub mod units;
pub mod values;

pub use error::{Error, Result};
