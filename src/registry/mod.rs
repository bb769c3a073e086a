//! A registry client: push, pull, credentials and transport.
//!
//! - [`credentials`] finds credentials as docker, podman and skopeo keep them
//!   and writes them for `aelimg login`.
//! - [`client`] is the transport: TLS, scheme, auth, redirects, retries
//!   (one file per concern under `client/`).
//! - [`push`] and [`pull`] move images between a [`crate::store::BlobStore`]
//!   and a registry.
//! - [`error`] says what went wrong, with the HTTP status when there is one.
//!
//! References are parsed by [`crate::reference`], a pure module below this
//! one. Why a small client of our own rather than a library: see
//! `docs/decisions/0004-registry-client.md`.

pub mod client;
pub mod credentials;
pub mod error;
pub mod pull;
pub mod push;
#[cfg(test)]
pub(crate) mod testserver;

pub use client::{Options, Registry};
pub use error::{Checked, RegistryError};
pub use push::PushReport;
