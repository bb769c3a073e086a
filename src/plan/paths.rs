//! Paths inside the image as images.yaml writes them.

use crate::error::Result;
use crate::spec::{LoadedSpec, Spanned};
use crate::values;

/// Normalizes an absolute path from the spec: `/a//b/./c/` → `/a/b/c`;
/// refuses a relative path, `..`, NUL and paths too long for Linux (see
/// [`values::absolute_path`]).
pub(super) fn absolute(spec: &LoadedSpec, at: &Spanned<String>, what: &str) -> Result<String> {
    values::absolute_path(&at.value).map_err(|why| {
        spec.error_at(
            at,
            format!("invalid {what} {}: {why}", values::quoted(&at.value)),
        )
    })
}

/// [`absolute`] without a place for the error.
pub(super) fn normalize_abs(p: &str) -> Option<String> {
    values::absolute_path(p).ok()
}

/// `/a/b` → `a/b`.
pub(super) fn rel(abs: &str) -> String {
    abs.trim_start_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize_abs("/a//b/./c/").as_deref(), Some("/a/b/c"));
        assert_eq!(normalize_abs("/").as_deref(), Some("/"));
        assert_eq!(normalize_abs("a/b"), None);
        assert_eq!(normalize_abs("/a/../b"), None);
        assert_eq!(normalize_abs(&format!("/{}", "x".repeat(256))), None);
    }

    /// Components that mean something to a path parser, and ordinary ones.
    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("...".to_string()),
            Just("\0".to_string()),
            Just("\\".to_string()),
            Just("a\nb".to_string()),
            "[a-z.]{1,4}",
            "\\PC{0,6}",
            (250usize..260).prop_map(|n| "x".repeat(n)),
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        (
            prop::bool::ANY,
            prop::collection::vec(component(), 0..12),
            prop::bool::ANY,
        )
            .prop_map(|(lead, parts, trail)| {
                let mut p = parts.join("/");
                if lead {
                    p.insert(0, '/');
                }
                if trail {
                    p.push('/');
                }
                p
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A normalized path is absolute, has no `..`, `.` or empty
        /// component and no NUL; after `rel()` it is relative and a valid
        /// tar entry path (or empty, for `/`); normalizing is idempotent.
        #[test]
        fn normalized_paths_are_clean(p in path()) {
            if let Some(n) = normalize_abs(&p) {
                prop_assert!(n.starts_with('/'));
                prop_assert!(!n.contains('\0'));
                prop_assert!(n.len() <= values::MAX_PATH);
                let r = rel(&n);
                prop_assert!(!r.starts_with('/'));
                if n == "/" {
                    prop_assert_eq!(r.as_str(), "");
                } else {
                    for c in r.split('/') {
                        prop_assert!(!c.is_empty() && c != "." && c != "..", "{:?} in {:?}", c, n);
                        prop_assert!(c.len() <= values::MAX_COMPONENT);
                    }
                    prop_assert!(values::entry_path(&r).is_ok(), "{:?}", r);
                }
                prop_assert_eq!(normalize_abs(&n), Some(n.clone()));
            } else {
                // Refused only for a reason the rules name.
                let why = values::absolute_path(&p).unwrap_err();
                prop_assert!(
                    !p.starts_with('/')
                        || p.contains('\0')
                        || p.split('/').any(|c| c == ".." || c.len() > values::MAX_COMPONENT)
                        || p.len() > values::MAX_PATH,
                    "{:?} refused: {}", p, why
                );
            }
        }
    }
}
