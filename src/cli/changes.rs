//! What `aelimg build` says about the size changes against the previous
//! image of each output layout: the images a layout holds under the tags
//! being built are put aside before the build writes them
//! ([`aelimg::diff::Previous`]), and compared with the new ones after.

use std::fmt::Write as _;
use std::path::PathBuf;

use aelimg::diff::Previous;
use aelimg::report::PlatformSize;

use super::diff::signed;

/// How many files each image's summary lists.
const TOP: usize = 5;

/// The previous images of one build's layouts.
#[derive(Default)]
pub struct Changes {
    /// (`NAME:TAG`, layout, platforms, what it held).
    previous: Vec<(String, PathBuf, Vec<String>, Previous)>,
    /// What could not be put aside.
    pub warnings: Vec<String>,
}

impl Changes {
    /// Puts aside what each layout directory below `dirs` holds under the
    /// name and tag of each image of `report` (which the build is about to
    /// write).
    pub fn capture(dirs: &[PathBuf], report: &[PlatformSize]) -> Self {
        let mut out = Self::default();
        for p in report {
            let Some((name, tag)) = p.image.rsplit_once(':') else {
                continue;
            };
            for dir in dirs {
                let root = dir.join(name);
                if let Some(e) = out
                    .previous
                    .iter_mut()
                    .find(|e| e.0 == p.image && e.1 == root)
                {
                    e.2.push(p.platform.clone());
                    continue;
                }
                match Previous::capture(&root, tag) {
                    Ok(Some(prev)) => {
                        out.previous
                            .push((p.image.clone(), root, vec![p.platform.clone()], prev));
                    }
                    Ok(None) => {}
                    Err(e) => out.warnings.push(format!(
                        "cannot compare with the previous {} in {}: {e}",
                        p.image,
                        root.display()
                    )),
                }
            }
        }
        out
    }

    /// The summary of each image's changes, one block each.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (image, root, platforms, prev) in &self.previous {
            for platform in platforms {
                let d = match prev.changes(platform) {
                    Ok(Some(d)) => d,
                    Ok(None) => continue,
                    Err(e) => {
                        let _ = writeln!(
                            s,
                            "warning: cannot compare {image} {platform} with the previous build in {}: {e}",
                            root.display()
                        );
                        continue;
                    }
                };
                if d.equal {
                    let _ = writeln!(s, "{image} {platform}: unchanged since the previous build");
                    continue;
                }
                let _ = writeln!(
                    s,
                    "{image} {platform}: {} in files, {} to pull since the previous build ({} files changed, {} config fields)",
                    signed(d.size_delta),
                    signed(d.compressed_delta),
                    d.files.len(),
                    d.config.len()
                );
                for f in d.top_size_changes(TOP) {
                    let _ = writeln!(s, "  {:>10}  {}", signed(f.size_delta), f.path);
                }
            }
        }
        s
    }
}
