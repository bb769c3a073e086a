//! Comparing two images (two builds, two tags, a layout and a registry
//! image): their configs field by field, their layers by content (the
//! diff_id, so a layer compressed differently is the same layer), and
//! their merged views file by file, with size deltas.
//!
//! Two images are *equal* when their configs have the same digest (which
//! covers every layer's diff_id) and, when both have a manifest (a docker
//! archive has none), their manifests too. Everything else is a
//! difference, and [`ImageDiff::notes`] explains one that no config field,
//! layer or file shows (a manifest annotation, another compression).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::error::Result;
use crate::inspect::files::{FileInfo, FileType, LayerFiles};
use crate::inspect::tree::{Merged, tree_order};
use crate::inspect::{Image, LayerBlob, Source};
use crate::oci::Document;
use crate::store::BlobStore;

/// How a file differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileChangeKind {
    /// Only in the second image.
    Added,
    /// Only in the first image.
    Removed,
    /// In both, different.
    Changed,
}

/// A file that differs between two images (or two layers).
#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    /// Its path.
    pub path: String,
    /// How it differs.
    pub change: FileChangeKind,
    /// Size in the second minus size in the first.
    pub size_delta: i64,
    /// What differs, for a changed file: `type`, `size`, `content`,
    /// `mode`, `owner`, `link`, `mtime`.
    pub what: Vec<&'static str>,
    /// The file in the first image.
    pub a: Option<FileInfo>,
    /// The file in the second image.
    pub b: Option<FileInfo>,
}

/// What differs between two versions of one file: `type`, `size`,
/// `content`, `mode`, `owner`, `link`, `mtime` (empty when they are the
/// same).
#[must_use]
pub fn compare_files(a: &FileInfo, b: &FileInfo) -> Vec<&'static str> {
    let mut what = Vec::new();
    if a.kind != b.kind {
        what.push("type");
    }
    if a.size != b.size {
        what.push("size");
    }
    if a.digest != b.digest {
        what.push("content");
    }
    if a.mode != b.mode {
        what.push("mode");
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        what.push("owner");
    }
    if a.link != b.link {
        what.push("link");
    }
    if a.mtime != b.mtime {
        what.push("mtime");
    }
    what
}

#[allow(clippy::cast_possible_wrap)]
fn delta(a: u64, b: u64) -> i64 {
    b as i64 - a as i64
}

fn change(path: &str, a: Option<&FileInfo>, b: Option<&FileInfo>) -> Option<FileChange> {
    let size = |f: Option<&FileInfo>| f.filter(|f| f.kind == FileType::File).map_or(0, |f| f.size);
    let (kind, what) = match (a, b) {
        (Some(x), Some(y)) => {
            let what = compare_files(x, y);
            if what.is_empty() {
                return None;
            }
            (FileChangeKind::Changed, what)
        }
        (None, Some(_)) => (FileChangeKind::Added, Vec::new()),
        (Some(_), None) => (FileChangeKind::Removed, Vec::new()),
        (None, None) => return None,
    };
    Some(FileChange {
        path: path.to_string(),
        change: kind,
        size_delta: delta(size(a), size(b)),
        what,
        a: a.cloned(),
        b: b.cloned(),
    })
}

/// The files that differ between two merged views, in tree order.
#[must_use]
pub fn diff_merged(a: &Merged, b: &Merged) -> Vec<FileChange> {
    let mut paths: Vec<&String> = a.files.keys().chain(b.files.keys()).collect();
    paths.sort_by(|x, y| tree_order(x, y));
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|p| {
            change(
                p,
                a.files.get(p).map(|f| &f.file),
                b.files.get(p).map(|f| &f.file),
            )
        })
        .collect()
}

/// The first difference between two versions of one layer, in the order
/// of their tars (whiteouts after files): the entry at the first place
/// where they differ, or `None` when they list the same files alike.
#[must_use]
pub fn first_difference(a: &LayerFiles, b: &LayerFiles) -> Option<FileChange> {
    let n = a.entries.len().max(b.entries.len());
    for i in 0..n {
        match (a.entries.get(i), b.entries.get(i)) {
            (Some(x), Some(y)) if x.path == y.path => {
                if let Some(c) = change(&x.path, Some(x), Some(y)) {
                    return Some(c);
                }
            }
            (Some(x), Some(y)) => {
                // Another path at this place: the one missing from the
                // other layer is the difference.
                let in_b = b.entries.iter().any(|e| e.path == x.path);
                return if in_b {
                    change(&y.path, None, Some(y))
                } else {
                    change(&x.path, Some(x), None)
                };
            }
            (Some(x), None) => return change(&x.path, Some(x), None),
            (None, Some(y)) => return change(&y.path, None, Some(y)),
            (None, None) => break,
        }
    }
    let whiteout = |p: &String| FileInfo {
        path: format!("{p} (whiteout)"),
        kind: FileType::File,
        size: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        link: None,
        digest: None,
    };
    for (list_a, list_b) in [(&a.whiteouts, &b.whiteouts), (&a.opaque, &b.opaque)] {
        if let Some(p) = list_a.iter().find(|p| !list_b.contains(p)) {
            return change(p, Some(&whiteout(p)), None);
        }
        if let Some(p) = list_b.iter().find(|p| !list_a.contains(p)) {
            return change(p, None, Some(&whiteout(p)));
        }
    }
    None
}

/// A config field that differs.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigChange {
    /// The field, as a dotted path (`config.Env`, `created`).
    pub field: String,
    /// Its value in the first image (absent: `null`).
    pub a: Option<Value>,
    /// Its value in the second image.
    pub b: Option<Value>,
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// The fields that differ between two configs (objects compared field by
/// field, lists as wholes), leaving out `rootfs.diff_ids`: layers are
/// compared on their own.
#[must_use]
pub fn diff_config(a: &Value, b: &Value) -> Vec<ConfigChange> {
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    flatten("", a, &mut fa);
    flatten("", b, &mut fb);
    let mut keys: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| *k != "rootfs.diff_ids")
        .filter(|k| fa.get(*k) != fb.get(*k))
        .map(|k| ConfigChange {
            field: k.clone(),
            a: fa.get(k).cloned(),
            b: fb.get(k).cloned(),
        })
        .collect()
}

/// A layer only one of two images has.
#[derive(Debug, Clone, Serialize)]
pub struct LayerChange {
    /// Its place in its image (0 is the bottom).
    pub index: usize,
    /// The layer.
    #[serde(flatten)]
    pub blob: LayerBlob,
}

/// One side of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Where it was read from.
    pub source: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The manifest's digest (none in a docker archive).
    pub manifest: Option<Digest>,
    /// The config's digest.
    pub config: Digest,
    /// Bytes to pull: layers and config.
    pub compressed: u64,
    /// Regular-file bytes of the merged view (not read when the images
    /// have the same layers: then `null`).
    pub file_bytes: Option<u64>,
}

/// What differs between two images.
#[derive(Debug, Clone, Serialize)]
pub struct ImageDiff {
    /// Whether they are the same image (see the module's documentation).
    pub equal: bool,
    /// The first image.
    pub a: Side,
    /// The second image.
    pub b: Side,
    /// Config fields that differ.
    pub config: Vec<ConfigChange>,
    /// Layers of the first image the second lacks.
    pub layers_removed: Vec<LayerChange>,
    /// Layers of the second image the first lacks.
    pub layers_added: Vec<LayerChange>,
    /// Files that differ, in tree order.
    pub files: Vec<FileChange>,
    /// Regular-file bytes, second minus first.
    pub size_delta: i64,
    /// Bytes to pull, second minus first.
    pub compressed_delta: i64,
    /// Differences none of the above shows.
    pub notes: Vec<String>,
}

impl ImageDiff {
    /// The file changes largest first (by the size of their delta), at
    /// most `n`.
    #[must_use]
    pub fn top_size_changes(&self, n: usize) -> Vec<&FileChange> {
        let mut v: Vec<&FileChange> = self.files.iter().filter(|f| f.size_delta != 0).collect();
        v.sort_by(|x, y| {
            y.size_delta
                .unsigned_abs()
                .cmp(&x.size_delta.unsigned_abs())
                .then_with(|| x.path.cmp(&y.path))
        });
        v.truncate(n);
        v
    }
}

/// What identifies a layer's content: its diff_id, else its blob digest.
fn layer_key(l: &LayerBlob) -> &Digest {
    l.diff_id.as_ref().unwrap_or(&l.digest)
}

/// The layers of `from` that `other` lacks (as many times as it lacks them).
fn missing(from: &[LayerBlob], other: &[LayerBlob]) -> Vec<LayerChange> {
    let mut left: HashMap<&Digest, usize> = HashMap::new();
    for l in other {
        *left.entry(layer_key(l)).or_default() += 1;
    }
    let mut out = Vec::new();
    for (index, l) in from.iter().enumerate() {
        match left.get_mut(layer_key(l)) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(LayerChange {
                index,
                blob: l.clone(),
            }),
        }
    }
    out
}

/// Compares two images. Their layers are read only when their layer lists
/// differ, and a layer both have is read once.
///
/// # Errors
/// When a config or layer cannot be read.
pub fn diff(a: &Image, b: &Image) -> Result<ImageDiff> {
    let same_layers = a
        .layers
        .iter()
        .map(layer_key)
        .eq(b.layers.iter().map(layer_key));
    let (files, file_bytes) = if same_layers {
        (Vec::new(), None)
    } else {
        let mut cache: HashMap<Digest, LayerFiles> = HashMap::new();
        let mut merge = |img: &Image| -> Result<Merged> {
            let mut m = Merged::default();
            for (i, l) in img.layers.iter().enumerate() {
                let key = layer_key(l).clone();
                if !cache.contains_key(&key) {
                    cache.insert(key.clone(), img.read_layer(i)?);
                }
                m.push(&cache[&key]);
            }
            Ok(m)
        };
        let ma = merge(a)?;
        let mb = merge(b)?;
        let bytes = |m: &Merged| {
            m.files
                .values()
                .filter(|f| f.file.kind == FileType::File)
                .map(|f| f.file.size)
                .sum::<u64>()
        };
        (diff_merged(&ma, &mb), Some((bytes(&ma), bytes(&mb))))
    };
    let config = diff_config(&a.config_json()?, &b.config_json()?);
    let side = |img: &Image, bytes: Option<u64>| Side {
        source: img.source.clone(),
        platform: img.platform.clone(),
        manifest: img.manifest.clone(),
        config: img.config_digest.clone(),
        compressed: img.compressed_size(),
        file_bytes: bytes,
    };
    let manifests_differ = matches!((&a.manifest, &b.manifest), (Some(x), Some(y)) if x != y);
    let equal = a.config_digest == b.config_digest && !manifests_differ;
    let layers_removed = missing(&a.layers, &b.layers);
    let layers_added = missing(&b.layers, &a.layers);
    let mut notes = Vec::new();
    if !equal && config.is_empty() && files.is_empty() && layers_added.is_empty() {
        if a.config_digest != b.config_digest {
            notes.push("the configs hold the same fields, written differently".to_string());
        } else if a
            .layers
            .iter()
            .map(|l| &l.digest)
            .ne(b.layers.iter().map(|l| &l.digest))
        {
            notes.push(
                "the layers hold the same files, compressed differently (another blob digest)"
                    .to_string(),
            );
        } else {
            notes.push(
                "the manifests differ (annotations or media types), not the config or the layers"
                    .to_string(),
            );
        }
    }
    let size_delta = file_bytes.map_or(0, |(x, y)| delta(x, y));
    Ok(ImageDiff {
        equal,
        a: side(a, file_bytes.map(|x| x.0)),
        b: side(b, file_bytes.map(|x| x.1)),
        config,
        layers_removed,
        layers_added,
        files,
        size_delta,
        compressed_delta: delta(a.compressed_size(), b.compressed_size()),
        notes,
    })
}

/// What differs between two images, platform by platform.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Whether every platform is the same image, and both have the same
    /// platforms.
    pub equal: bool,
    /// The first image, as given.
    pub a: String,
    /// The second image, as given.
    pub b: String,
    /// Each platform both have (or the one asked for).
    pub platforms: Vec<ImageDiff>,
    /// Platforms only the first image has.
    pub only_in_a: Vec<String>,
    /// Platforms only the second image has.
    pub only_in_b: Vec<String>,
}

/// Compares two images: the one `platform` when given; else every
/// platform of two multi-platform images (those only one has are
/// differences), or the platform of a single-manifest image in the other
/// one.
///
/// # Errors
/// When an image cannot be read, or lacks the platform asked for.
pub fn compare(
    a: &Source,
    b: &Source,
    platform: Option<&str>,
    registry: &crate::registry::Options,
) -> Result<Comparison> {
    let (mut only_in_a, mut only_in_b) = (Vec::new(), Vec::new());
    let wanted: Vec<Option<String>> = match platform {
        Some(p) => vec![Some(p.to_string())],
        None => match (
            crate::inspect::platforms(a, registry)?,
            crate::inspect::platforms(b, registry)?,
        ) {
            (None, None) => vec![None],
            (Some(pa), Some(pb)) => {
                only_in_a = pa.iter().filter(|p| !pb.contains(p)).cloned().collect();
                only_in_b = pb.iter().filter(|p| !pa.contains(p)).cloned().collect();
                pa.into_iter()
                    .filter(|p| pb.contains(p))
                    .map(Some)
                    .collect()
            }
            (None, Some(_)) => vec![Some(Image::open(a, None, registry)?.platform)],
            (Some(_), None) => vec![Some(Image::open(b, None, registry)?.platform)],
        },
    };
    let mut platforms = Vec::new();
    for p in &wanted {
        let ia = Image::open(a, p.as_deref(), registry)?;
        let ib = Image::open(b, p.as_deref(), registry)?;
        platforms.push(diff(&ia, &ib)?);
    }
    Ok(Comparison {
        equal: platforms.iter().all(|d| d.equal) && only_in_a.is_empty() && only_in_b.is_empty(),
        a: a.to_string(),
        b: b.to_string(),
        platforms,
        only_in_a,
        only_in_b,
    })
}

/// What a build is about to change in an OCI layout: the image the layout
/// `root` holds under `tag` for `platform` (`os/arch[/variant]`),
/// compared with the manifest `new`, whose blobs are in `store` (the
/// build's working store). Run before the build writes the layout (whose
/// garbage collection then removes the old blobs). `None` when the layout
/// holds no such image.
///
/// # Errors
/// When either image cannot be read.
pub fn against_layout(
    root: &Path,
    tag: &str,
    platform: &str,
    store: &BlobStore,
    new: &Digest,
) -> Result<Option<ImageDiff>> {
    if !root.join("index.json").is_file() {
        return Ok(None);
    }
    // Without the layout's lock: a build never waits here (it waits, and
    // says so, when it writes the layout); a writer changing the layout
    // meanwhile makes this comparison fail, not the build.
    let old = Image::open_locked(
        &Source::Layout {
            dir: root.to_path_buf(),
            tag: Some(tag.to_string()),
        },
        Some(platform),
        &crate::registry::Options::default(),
        false,
    );
    // The file lists of the layers, by diff_id: the same layers are read
    // at every build.
    let cache = store.root().join("inspect-v1");
    let old = match old {
        Ok(o) => o.with_layer_cache(cache.clone()),
        // No such tag, or no such platform: nothing to compare with.
        Err(e) if e.is_request() => return Ok(None),
        Err(e) => return Err(e),
    };
    let manifest = Document::from_bytes(crate::oci::MANIFEST, store.read(new)?);
    let new = Image::from_store(
        store.clone(),
        None,
        &manifest,
        format!("{}:{tag} (new)", root.display()),
        None,
    )?
    .with_layer_cache(cache);
    diff(&old, &new).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(path: &str, size: u64, content: &[u8]) -> FileInfo {
        FileInfo {
            path: path.into(),
            kind: FileType::File,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            link: None,
            digest: Some(Digest::of(content)),
        }
    }

    #[test]
    fn configs_differ_by_field() {
        let a = json!({"config": {"Env": ["A=1"], "User": "1"}, "rootfs": {"diff_ids": ["x"]}});
        let b = json!({"config": {"Env": ["A=2"], "User": "1", "WorkingDir": "/app"}, "rootfs": {"diff_ids": ["y"]}});
        let d = diff_config(&a, &b);
        let fields: Vec<&str> = d.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["config.Env", "config.WorkingDir"]);
        assert_eq!(d[1].a, None);
    }

    #[test]
    fn merged_views_and_layers_differ_by_file() {
        let mut a = Merged::default();
        a.push(&LayerFiles {
            entries: vec![file("/x", 3, b"abc"), file("/gone", 9, b"g")],
            ..LayerFiles::default()
        });
        let mut b = Merged::default();
        b.push(&LayerFiles {
            entries: vec![file("/x", 3, b"xyz"), file("/new", 4, b"n")],
            ..LayerFiles::default()
        });
        let d = diff_merged(&a, &b);
        let rows: Vec<(&str, FileChangeKind, i64)> = d
            .iter()
            .map(|c| (c.path.as_str(), c.change, c.size_delta))
            .collect();
        assert_eq!(
            rows,
            [
                ("/gone", FileChangeKind::Removed, -9),
                ("/new", FileChangeKind::Added, 4),
                ("/x", FileChangeKind::Changed, 0)
            ]
        );
        assert_eq!(d[2].what, ["content"]);

        let la = LayerFiles {
            entries: vec![file("/a", 1, b"a"), file("/b", 1, b"b")],
            ..LayerFiles::default()
        };
        let mut lb = la.clone();
        assert!(first_difference(&la, &lb).is_none());
        lb.entries[1].mtime = 5;
        let c = first_difference(&la, &lb).unwrap();
        assert_eq!((c.path.as_str(), c.what.clone()), ("/b", vec!["mtime"]));
        lb.entries.remove(0);
        let c = first_difference(&la, &lb).unwrap();
        assert_eq!((c.path.as_str(), c.change), ("/a", FileChangeKind::Removed));
    }
}
