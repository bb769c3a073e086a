//! Checking that a build is reproducible: a clean temporary checkout of
//! a git commit ([`Checkout`]), and the comparison of the layouts a
//! rebuild there writes with the layouts already built ([`compare`]),
//! down to the first file that differs.
//!
//! The rebuild itself is the caller's (`aelimg verify-repro` runs
//! `aelimg build` in the checkout, sharing the cargo target directory so
//! that only the workspace's own crates compile again: decision 0008).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::diff::{FileChange, diff_config, first_difference};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::inspect::Image;
use crate::layout::{Layout, ref_name};
use crate::oci::{Document, Kind};

/// Runs git in `dir`; its stdout, or an error with its stderr.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ctx(|| "cannot run git (is it installed?)".into())?;
    if !out.status.success() {
        return Err(Error::Request(format!(
            "git {} in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The top directory of the git work tree holding `dir`.
///
/// # Errors
/// When `dir` is not in a git work tree.
pub fn work_tree(dir: &Path) -> Result<PathBuf> {
    Ok(PathBuf::from(
        git(dir, &["rev-parse", "--show-toplevel"])?.trim(),
    ))
}

/// What `git status` lists as changed or untracked (not ignored) in the
/// work tree `top`, one `XY path` line each: what a checkout of HEAD lacks.
///
/// # Errors
/// When git fails.
pub fn uncommitted(top: &Path) -> Result<Vec<String>> {
    Ok(
        git(top, &["status", "--porcelain", "--untracked-files=normal"])?
            .lines()
            .map(str::to_string)
            .filter(|l| !l.trim().is_empty())
            .collect(),
    )
}

/// A detached git worktree of one commit in a temporary directory;
/// removed (and unregistered from the repository) when dropped.
#[derive(Debug)]
pub struct Checkout {
    repo: PathBuf,
    dir: PathBuf,
    commit: String,
    temp: tempfile::TempDir,
}

impl Checkout {
    /// Checks out `rev` of the repository at `repo` in a new temporary
    /// directory (`git worktree add --detach`).
    ///
    /// # Errors
    /// When git fails.
    pub fn create(repo: &Path, rev: &str) -> Result<Self> {
        let commit = git(
            repo,
            &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
        )?
        .trim()
        .to_string();
        let temp = tempfile::Builder::new()
            .prefix("aelimg-verify-")
            .tempdir()
            .ctx(|| "cannot make a temporary directory".into())?;
        let dir = temp.path().join("checkout");
        let d = dir.to_string_lossy().into_owned();
        git(
            repo,
            &["worktree", "add", "--quiet", "--detach", &d, &commit],
        )?;
        Ok(Self {
            repo: repo.to_path_buf(),
            dir,
            commit,
            temp,
        })
    }

    /// The checkout's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The commit checked out.
    #[must_use]
    pub fn commit(&self) -> &str {
        &self.commit
    }

    /// A directory beside the checkout for the rebuild's output.
    #[must_use]
    pub fn scratch(&self) -> PathBuf {
        self.temp.path().join("out")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let d = self.dir.to_string_lossy().into_owned();
        if git(&self.repo, &["worktree", "remove", "--force", &d]).is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = git(&self.repo, &["worktree", "prune"]);
        }
    }
}

/// The verdict on one image (one tag, one platform).
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `NAME:TAG`.
    pub image: String,
    /// `os/arch[/variant]`, for one platform of an index.
    pub platform: Option<String>,
    /// The digest in the existing layout.
    pub built: Digest,
    /// The digest of the rebuild.
    pub rebuilt: Digest,
    /// Whether they are the same.
    pub same: bool,
    /// What differs first, in words.
    pub why: Option<String>,
    /// The first file that differs, when a layer does.
    pub file: Option<FileChange>,
}

/// The platform an index entry names, `os/arch[/variant]`.
fn entry_platform(d: &oci_spec::image::Descriptor) -> String {
    d.platform().as_ref().map_or_else(
        || "(no platform)".to_string(),
        |p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        },
    )
}

/// Compares every image (each tag of each layout) the rebuild wrote below
/// `rebuilt` with the same tag of the layout of the same name below
/// `built`.
///
/// # Errors
/// When a layout cannot be read, or `built` lacks an image the rebuild made.
pub fn compare(built: &Path, rebuilt: &Path) -> Result<Vec<Verdict>> {
    let mut verdicts = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(rebuilt)
        .ctx(|| format!("cannot read {}", rebuilt.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("index.json").is_file())
        .collect();
    names.sort();
    for new_root in names {
        let name = new_root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let new = Layout::open(&new_root)?;
        let old_root = built.join(&name);
        if !old_root.join("index.json").is_file() {
            return Err(Error::Request(format!(
                "{} holds no image `{name}` to compare the rebuild with: build first (aelimg build)",
                built.display()
            )));
        }
        let old = Layout::open(&old_root)?;
        // The images; the SBOMs and provenance listed beside them are not
        // compared (the provenance of a build from a dirty tree says so).
        for entry in new
            .entries()?
            .into_iter()
            .filter(|d| !crate::layout::is_referrer(d))
        {
            let tag = ref_name(&entry).unwrap_or("latest").to_string();
            let (old_top, _) = old.find(Some(&tag))?;
            let new_top = new.read(&entry)?;
            let image = format!("{name}:{tag}");
            if old_top.digest == new_top.digest {
                verdicts.push(Verdict {
                    image,
                    platform: None,
                    built: old_top.digest,
                    rebuilt: new_top.digest,
                    same: true,
                    why: None,
                    file: None,
                });
                continue;
            }
            match (old_top.kind(), new_top.kind()) {
                (Kind::Index, Kind::Index) => {
                    let (oi, ni) = (old_top.index()?, new_top.index()?);
                    let mut plats = Vec::new();
                    for nd in ni.manifests() {
                        let p = entry_platform(nd);
                        let od = oi.manifests().iter().find(|d| entry_platform(d) == p);
                        let nm = new.read(nd)?;
                        let Some(od) = od else {
                            plats.push(Verdict {
                                image: image.clone(),
                                platform: Some(p.clone()),
                                built: old_top.digest.clone(),
                                rebuilt: nm.digest,
                                same: false,
                                why: Some(format!("the built image has no {p} manifest")),
                                file: None,
                            });
                            continue;
                        };
                        let om = old.read(od)?;
                        plats.push(compare_manifests(&image, Some(p), &old, &om, &new, &nm)?);
                    }
                    let all_same = plats.iter().all(|v| v.same);
                    verdicts.extend(plats);
                    if all_same {
                        // Every platform the same, the index not: its
                        // entries or annotations differ.
                        verdicts.push(Verdict {
                            image,
                            platform: None,
                            built: old_top.digest,
                            rebuilt: new_top.digest,
                            same: false,
                            why: Some("the indexes differ (entries or annotations), not the platforms' images".into()),
                            file: None,
                        });
                    }
                }
                (Kind::Manifest, Kind::Manifest) => {
                    verdicts.push(compare_manifests(
                        &image, None, &old, &old_top, &new, &new_top,
                    )?);
                }
                (a, b) => verdicts.push(Verdict {
                    image,
                    platform: None,
                    built: old_top.digest.clone(),
                    rebuilt: new_top.digest.clone(),
                    same: false,
                    why: Some(format!(
                        "the built image is a{} {}, the rebuild a{} {}",
                        if a == Kind::Index { "n" } else { "" },
                        old_top.media_type,
                        if b == Kind::Index { "n" } else { "" },
                        new_top.media_type
                    )),
                    file: None,
                }),
            }
        }
    }
    Ok(verdicts)
}

/// Compares two manifests of one platform, down to the first differing
/// file of the first differing layer.
fn compare_manifests(
    image: &str,
    platform: Option<String>,
    old: &Layout,
    om: &Document,
    new: &Layout,
    nm: &Document,
) -> Result<Verdict> {
    let mut v = Verdict {
        image: image.to_string(),
        platform,
        built: om.digest.clone(),
        rebuilt: nm.digest.clone(),
        same: om.digest == nm.digest,
        why: None,
        file: None,
    };
    if v.same {
        return Ok(v);
    }
    let a = Image::from_store(old.store().clone(), None, om, image.to_string(), None)?;
    let b = Image::from_store(new.store().clone(), None, nm, image.to_string(), None)?;
    if a.layers.len() != b.layers.len() {
        v.why = Some(format!(
            "the built image has {} layers, the rebuild {}",
            a.layers.len(),
            b.layers.len()
        ));
        return Ok(v);
    }
    for (i, (la, lb)) in a.layers.iter().zip(&b.layers).enumerate() {
        if la.digest == lb.digest {
            continue;
        }
        let (fa, fb) = (a.read_layer(i)?, b.read_layer(i)?);
        let first = first_difference(&fa, &fb);
        v.why = Some(match &first {
            Some(f) => format!(
                "layer {i} differs ({} vs {}): first at {}",
                la.digest, lb.digest, f.path
            ),
            None => format!(
                "layer {i} differs ({} vs {}) with the same files: its tar or compression differs",
                la.digest, lb.digest
            ),
        });
        v.file = first;
        return Ok(v);
    }
    if a.config_digest != b.config_digest {
        let changes = diff_config(&a.config_json()?, &b.config_json()?);
        v.why = Some(match changes.first() {
            Some(c) => format!(
                "the configs differ, first in {}: {} vs {}",
                c.field,
                c.a.as_ref()
                    .map_or_else(|| "(none)".into(), ToString::to_string),
                c.b.as_ref()
                    .map_or_else(|| "(none)".into(), ToString::to_string)
            ),
            None => "the configs hold the same fields, written differently".into(),
        });
        return Ok(v);
    }
    v.why =
        Some("the manifests differ (annotations or media types), not the config or layers".into());
    Ok(v)
}
