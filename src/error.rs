//! Error types of the aelimg library: one [`Error`] joining the errors of
//! each concern with `#[from]`. This module sits below every other module
//! but the leaves it names ([`crate::digest`], [`crate::reference`],
//! [`crate::oci`], [`crate::registry::error`]), so it never closes an import
//! cycle. Exit codes are the command line's business, not the library's.

use std::fmt;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};
use crate::oci::DocumentError;
use crate::reference::ReferenceError;
use crate::registry::error::RegistryError;

/// A message tied to a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// An OCI layout on disk is not what aelimg expects.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The directory holds no layout.
    #[error("{} is not an OCI layout ({detail}): build first, or name a layout with oci:DIR", root.display())]
    NotALayout {
        /// The directory.
        root: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// The directory exists, is not empty and is not a layout.
    #[error("{} exists and is not an OCI layout: refusing to write into it", .0.display())]
    NotEmpty(PathBuf),
    /// `index.json` or a document is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A blob's bytes do not match its name.
    #[error("{}: blob {digest} does not match its digest", root.display())]
    Corrupt {
        /// The layout.
        root: PathBuf,
        /// The blob.
        digest: Digest,
    },
    /// No entry (or more than one, without a tag) matches what was asked.
    #[error("{}: {} (it holds: {})", root.display(), match tag { Some(t) => format!("no image tagged `{t}`"), None => "several images: say which with oci:DIR:TAG".into() }, holds.join(", "))]
    NoSuchImage {
        /// The layout.
        root: PathBuf,
        /// The tag asked for.
        tag: Option<String>,
        /// The tags it holds.
        holds: Vec<String>,
    },
}

/// Everything that can go wrong in aelimg.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The images.yaml file is wrong.
    #[error("{0}")]
    Spec(Located),
    /// What was asked cannot be done as asked (an unknown image name, an
    /// output that cannot hold the images); the command line reports these
    /// as usage errors.
    #[error("{0}")]
    Request(String),
    /// A malformed image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A malformed digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Building the payload with cargo failed.
    #[error("cargo: {0}")]
    Cargo(String),
    /// A binary does not fit the platform it is packed for.
    #[error("{0}")]
    Binary(String),
    /// An image is larger than its size limit.
    #[error("{0}")]
    SizeLimit(String),
    /// An OCI layout on disk is not what aelimg expects.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A document is not what it claims to be.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A container engine could not be reached, or refused an image.
    #[error("{0}")]
    Engine(String),
    /// Talking to a registry failed (never holds a secret).
    #[error(transparent)]
    Registry(Box<RegistryError>),
    /// JSON (de)serialization failed.
    #[error("{context}: {source}")]
    Json {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Self {
        Self::Registry(Box::new(e))
    }
}

impl Error {
    /// The registry error, if this is one.
    #[must_use]
    pub fn registry(&self) -> Option<&RegistryError> {
        match self {
            Self::Registry(r) => Some(r),
            _ => None,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a JSON error with what was being done.
    pub fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json {
            context: context.into(),
            source,
        }
    }

    /// Whether the error is about what was asked rather than about the
    /// inputs or the environment (a command line shows these as usage
    /// errors).
    #[must_use]
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Self::Request(_) | Self::Reference(_) | Self::Layout(LayoutError::NoSuchImage { .. })
        )
    }
}

/// Shorthand result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to I/O results.
pub trait IoContext<T> {
    /// Wraps the error with a description of what was being done.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

/// An error and its sources as one line, each cause once (reqwest and io
/// errors hide their causes otherwise).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}
