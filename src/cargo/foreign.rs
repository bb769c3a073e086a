//! Binaries cargo took from another checkout's different files.
//!
//! Cargo's units for workspace members do not depend on the checkout's
//! path, and it judges them fresh by mtime. So when two checkouts at
//! different states share a target directory, a build in the one whose
//! files are older finds the other's artifacts fresh, and hands over a
//! binary built from the other's files (decision 0021, known hazard).
//! Cargo's dep-info does not tell (it is resolved against this checkout),
//! but the content record does ([`super::reuse::ByContent::differing_sources`]):
//! this module maps the files that differ to the members to compile again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The members (by package name) that hold the files `differing`
/// (relative to `root`): each file belongs to the member whose directory
/// is the longest prefix of it, and a file under no member's directory
/// (one that `package` includes from elsewhere in the workspace) to
/// `package`, the package being built. `members` maps each member to its
/// directory.
pub(super) fn members_holding(
    root: &Path,
    members: &BTreeMap<String, PathBuf>,
    differing: &[PathBuf],
    package: &str,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in differing {
        let owner = members
            .iter()
            .filter_map(|(name, dir)| {
                let rel = dir.strip_prefix(root).ok()?;
                file.starts_with(rel)
                    .then(|| (rel.components().count(), name))
            })
            .max();
        out.insert(owner.map_or(package, |(_, name)| name.as_str()).to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_belongs_to_the_innermost_member() {
        let root = Path::new("/ws");
        let members = BTreeMap::from([
            ("tool".to_string(), PathBuf::from("/ws")),
            ("app".to_string(), PathBuf::from("/ws/app")),
            ("lib".to_string(), PathBuf::from("/ws/crates/lib")),
        ]);
        let got = members_holding(
            root,
            &members,
            &[
                PathBuf::from("app/src/main.rs"),
                PathBuf::from("crates/lib/src/lib.rs"),
            ],
            "app",
        );
        assert_eq!(got, BTreeSet::from(["app".into(), "lib".into()]));
        let got = members_holding(root, &members, &[PathBuf::from("src/main.rs")], "app");
        assert_eq!(got, BTreeSet::from(["tool".into()]));
        assert!(members_holding(root, &members, &[], "app").is_empty());
    }

    #[test]
    fn a_file_under_no_member_belongs_to_the_package_being_built() {
        let root = Path::new("/ws");
        let members = BTreeMap::from([
            ("app".to_string(), PathBuf::from("/ws/app")),
            ("lib".to_string(), PathBuf::from("/ws/lib")),
        ]);
        let got = members_holding(root, &members, &[PathBuf::from("shared/part.rs")], "app");
        assert_eq!(got, BTreeSet::from(["app".into()]));
    }
}
