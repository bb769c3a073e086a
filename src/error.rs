//! Error types of the aelimg library.

use std::fmt;
use std::path::PathBuf;

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

/// Everything that can go wrong in aelimg.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The images.yaml file is wrong.
    #[error("{0}")]
    Spec(Located),
    /// A usage error on the command line (exit code 2).
    #[error("{0}")]
    Usage(String),
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
    #[error("{0}")]
    Layout(String),
    /// Talking to a registry failed (never holds a secret).
    #[error("{0}")]
    Registry(String),
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

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit code for this error: 2 for usage, 1 otherwise.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            _ => 1,
        }
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
