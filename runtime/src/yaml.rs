//! YAML syntax and schema errors with their `file:line:col` location.

use std::fmt;
use std::path::{Path, PathBuf};

/// A serde-saphyr error reduced to one line and located in its file.
///
/// Displays as `file:line:col: message` (or `file: message` when the parser
/// gave no location).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// The file the document came from.
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub location: Option<(u64, u64)>,
    /// One-line message without the location suffix.
    pub message: String,
}

impl YamlError {
    /// Builds the located error for a serde-saphyr error in `path`.
    pub fn new(path: &Path, err: &serde_saphyr::Error) -> Self {
        let msg = err.without_snippet().to_string();
        let mut msg = msg.lines().next().unwrap_or_default().trim().to_string();
        // Drop the " at line X, column Y" suffix: the location is the prefix.
        if let Some(i) = msg.rfind(" at line ") {
            msg.truncate(i);
        }
        let message = match msg.strip_prefix("invalid ") {
            Some(t @ ("u8" | "u16" | "u32" | "u64" | "usize")) => {
                format!("expected a non-negative integer ({t})")
            }
            Some(t @ ("i8" | "i16" | "i32" | "i64" | "isize")) => {
                format!("expected an integer ({t})")
            }
            Some(t @ ("f32" | "f64")) => format!("expected a number ({t})"),
            Some("bool") => "expected a boolean (true/false)".to_string(),
            _ => msg,
        };
        YamlError {
            file: path.to_path_buf(),
            location: err.location().map(|l| (l.line(), l.column())),
            message,
        }
    }
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message)
            }
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for YamlError {}
