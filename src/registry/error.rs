//! What can go wrong talking to a registry. Messages never hold a secret.

/// A registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with a status the operation cannot go on from.
    #[error("{registry}: cannot {what}: {status} {reason}{}{hint}", if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    Status {
        /// The registry (`host[:port]`).
        registry: String,
        /// What was being done (`push manifest acme/ael:1.0`).
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The status's reason phrase.
        reason: String,
        /// The registry's own error codes and messages, or the start of its body.
        detail: String,
        /// The registry's error codes alone (`BLOB_UPLOAD_UNKNOWN`, …).
        codes: Vec<String>,
        /// What to check, for the statuses that have a usual cause.
        hint: &'static str,
    },
    /// The registry (or its token service) could not be reached at all.
    #[error("cannot reach {target}: {detail}")]
    Unreachable {
        /// What was being reached (a URL, or a registry and request).
        target: String,
        /// Why, and after how many attempts.
        detail: String,
    },
    /// The exchange with the registry went wrong: it could not be reached,
    /// its answer broke the protocol or failed verification, or the
    /// credentials or transport settings are unusable.
    #[error("{0}")]
    Failed(String),
}

impl RegistryError {
    /// The HTTP status, when the registry answered with one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Unreachable { .. } | Self::Failed(_) => None,
        }
    }

    /// The usual cause of a status, as a hint to append to its message.
    #[must_use]
    pub fn hint_for(status: u16) -> &'static str {
        match status {
            403 => {
                " (the credentials are valid but may not push or pull this repository: check the token's scopes or the repository's permissions)"
            }
            404 => " (check the registry name and the repository path)",
            400 => " (the registry rejected the request as malformed)",
            _ => "",
        }
    }
}
