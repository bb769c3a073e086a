//! What can go wrong talking to a registry. Messages never hold a secret.
//!
//! Each variant is a different thing a caller can act on: a status to look
//! up ([`RegistryError::Status`]), a network to check or a request to try
//! again ([`RegistryError::Unreachable`], [`RegistryError::Transfer`]),
//! bytes that must not be used ([`RegistryError::Verification`]), a registry
//! that does not speak the protocol ([`RegistryError::Protocol`]),
//! credentials to fix ([`RegistryError::Credentials`]), settings to fix
//! ([`RegistryError::Config`]) and an image that is not what was asked for
//! ([`RegistryError::Unusable`]).

use std::fmt;

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
    /// The registry answered, but the answer's body broke off (a token, a
    /// manifest, a blob): trying again may help.
    #[error("{0}")]
    Transfer(String),
    /// Bytes from (or stored by) the registry do not have the digest they
    /// must have: they are refused, never used.
    #[error("{}", what.message(registry, expected, got))]
    Verification {
        /// The registry (`host[:port]`).
        registry: String,
        /// What was checked.
        what: Checked,
        /// The digest it must have.
        expected: String,
        /// The digest it has.
        got: String,
    },
    /// The registry's answer broke the distribution protocol: no Location,
    /// a challenge aelimg cannot use, a token answer without a token, a
    /// redirect loop.
    #[error("{0}")]
    Protocol(String),
    /// The credentials are missing, refused or unusable (a credential
    /// helper, a config file, a kind of secret the registry does not take).
    #[error("{0}")]
    Credentials(String),
    /// The transport settings are unusable (TLS, the HTTP client, a URL).
    #[error("{0}")]
    Config(String),
    /// The image the registry holds is not usable as asked: no manifest for
    /// the platform, a media type aelimg does not handle, a base image whose
    /// parts disagree.
    #[error("{0}")]
    Unusable(String),
}

/// What a [`RegistryError::Verification`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A manifest pulled by digest (`reference` is that digest).
    Manifest {
        /// The reference asked for.
        reference: String,
    },
    /// A blob pulled by digest.
    Blob,
    /// The digest the registry reports for a manifest just pushed
    /// (`Docker-Content-Digest`).
    Stored {
        /// The tag or digest pushed to.
        reference: String,
    },
    /// The manifest a tag resolves to after a push.
    ReadBack {
        /// `repo:tag`.
        tag: String,
    },
}

impl Checked {
    fn message(&self, registry: &str, expected: &str, got: &str) -> String {
        match self {
            Self::Manifest { reference } => {
                format!("{registry}: manifest {reference} arrived as {got}: refusing it")
            }
            Self::Blob => format!("{registry}: blob {expected} arrived as {got}: refusing it"),
            Self::Stored { reference } => format!(
                "{registry}: the registry stored manifest {reference} as {got}, not {expected}: it rewrote the bytes"
            ),
            Self::ReadBack { tag } => {
                format!("{registry}: {tag} is {got} after the push, not {expected}")
            }
        }
    }
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manifest { reference } => write!(f, "manifest {reference}"),
            Self::Blob => f.write_str("blob"),
            Self::Stored { reference } => write!(f, "stored manifest {reference}"),
            Self::ReadBack { tag } => write!(f, "{tag} after the push"),
        }
    }
}

impl RegistryError {
    /// The HTTP status, when the registry answered with one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying the same thing again may succeed (the network or the
    /// registry had a fault), as opposed to something to fix first.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Transfer(_) => true,
            Self::Status { status, .. } => matches!(status, 408 | 429) || *status >= 500,
            _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_messages_are_unchanged() {
        let cases = [
            (
                Checked::Manifest {
                    reference: "sha256:aa".into(),
                },
                "r:5000: manifest sha256:aa arrived as sha256:bb: refusing it",
            ),
            (
                Checked::Blob,
                "r:5000: blob sha256:aa arrived as sha256:bb: refusing it",
            ),
            (
                Checked::Stored {
                    reference: "1.0".into(),
                },
                "r:5000: the registry stored manifest 1.0 as sha256:bb, not sha256:aa: it rewrote the bytes",
            ),
            (
                Checked::ReadBack {
                    tag: "a/b:1.0".into(),
                },
                "r:5000: a/b:1.0 is sha256:bb after the push, not sha256:aa",
            ),
        ];
        for (what, want) in cases {
            let e = RegistryError::Verification {
                registry: "r:5000".into(),
                what,
                expected: "sha256:aa".into(),
                got: "sha256:bb".into(),
            };
            assert_eq!(e.to_string(), want);
            assert!(!e.is_transient());
        }
    }
}
