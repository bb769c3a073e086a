//! What `aelimg build` says about the size changes against the previous
//! image of each output layout: once the images are built, and before the
//! layouts are written, each new image (in the working store) is compared
//! with what its layout holds under the same tag
//! ([`aelimg::diff::against_layout`]); the summary is printed after the
//! build succeeds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use aelimg::diff::against_layout;
use aelimg::report::PlatformSize;
use aelimg::store::BlobStore;

use super::diff::signed;

/// How many files each image's summary lists.
const TOP: usize = 5;

/// Compares each image of `report` with what each layout directory of
/// `dirs` holds under its name and tag; `store` is the build's working
/// store. Returns the summary, one line per image and platform and one per
/// file listed, warnings included (a failed comparison never fails a
/// build).
pub fn summary(dirs: &[PathBuf], report: &[PlatformSize], store: &Path) -> String {
    let mut s = String::new();
    let store = match BlobStore::open(store) {
        Ok(st) => st,
        Err(e) => {
            let _ = writeln!(s, "warning: cannot compare with the previous build: {e}");
            return s;
        }
    };
    for p in report {
        let Some((name, tag)) = p.image.rsplit_once(':') else {
            continue;
        };
        for dir in dirs {
            let root = dir.join(name);
            let d = match against_layout(&root, tag, &p.platform, &store, &p.manifest) {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "warning: cannot compare {} {} with the previous build in {}: {e}",
                        p.image,
                        p.platform,
                        root.display()
                    );
                    continue;
                }
            };
            let what = if dirs.len() > 1 {
                format!("{} {} in {}", p.image, p.platform, dir.display())
            } else {
                format!("{} {}", p.image, p.platform)
            };
            if d.equal {
                let _ = writeln!(s, "{what}: unchanged since the previous build");
                continue;
            }
            let plural = |n: usize, one: &str, many: &str| {
                format!("{n} {}", if n == 1 { one } else { many })
            };
            let _ = writeln!(
                s,
                "{what}: {} in files, {} to pull since the previous build ({} changed, {} changed)",
                signed(d.size_delta),
                signed(d.compressed_delta),
                plural(d.files.len(), "file", "files"),
                plural(d.config.len(), "config field", "config fields"),
            );
            for f in d.top_size_changes(TOP) {
                let _ = writeln!(s, "  {:>10}  {}", signed(f.size_delta), f.path);
            }
        }
    }
    s
}
