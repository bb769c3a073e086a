//! Paths inside the image as images.yaml writes them.

use crate::error::Result;
use crate::spec::{LoadedSpec, Spanned};

/// Normalizes an absolute path from the spec: `/a//b/./c/` → `/a/b/c`.
pub(super) fn absolute(spec: &LoadedSpec, at: &Spanned<String>, what: &str) -> Result<String> {
    normalize_abs(&at.value).ok_or_else(|| {
        spec.error_at(
            at,
            format!(
                "invalid {what} `{}`: expected an absolute path without `..`",
                at.value
            ),
        )
    })
}

pub(super) fn normalize_abs(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// `/a/b` → `a/b`.
pub(super) fn rel(abs: &str) -> String {
    abs.trim_start_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize_abs("/a//b/./c/").as_deref(), Some("/a/b/c"));
        assert_eq!(normalize_abs("a/b"), None);
        assert_eq!(normalize_abs("/a/../b"), None);
    }
}
