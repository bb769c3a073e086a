//! The size report of a build: per image, platform and layer, compressed and
//! uncompressed, against the image's size limit.

use serde::Serialize;

use crate::digest::Digest;
use crate::image::{BuiltImage, Origin};

/// Sizes of one layer on one platform.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSize {
    /// Layer name.
    pub name: String,
    /// Blob digest.
    pub digest: Digest,
    /// Compressed bytes.
    pub compressed: u64,
    /// Uncompressed bytes.
    pub uncompressed: u64,
    /// Where it came from: `base`, `cached` or `built`.
    pub origin: Origin,
}

/// Sizes of one image on one platform.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformSize {
    /// Image name.
    pub image: String,
    /// Platform.
    pub platform: String,
    /// Manifest digest.
    pub manifest: Digest,
    /// Compressed bytes (layers + config).
    pub compressed: u64,
    /// Uncompressed bytes (layers).
    pub uncompressed: u64,
    /// Limit, when set.
    pub limit: Option<u64>,
    /// Whether the uncompressed size (what `docker images` shows) is within
    /// the limit.
    pub within_limit: bool,
    /// Per layer.
    pub layers: Vec<LayerSize>,
}

/// The size report of a build.
#[must_use]
pub fn size_report(images: &[BuiltImage]) -> Vec<PlatformSize> {
    let mut out = Vec::new();
    for img in images {
        for p in &img.platforms {
            let layers: Vec<LayerSize> = p
                .layers
                .iter()
                .zip(&img.layer_names)
                .zip(&p.origins)
                .map(|((l, n), o)| LayerSize {
                    name: n.clone(),
                    digest: l.digest.clone(),
                    compressed: l.size,
                    uncompressed: l.uncompressed_size,
                    origin: *o,
                })
                .collect();
            let compressed =
                layers.iter().map(|l| l.compressed).sum::<u64>() + p.config.bytes.len() as u64;
            let uncompressed = layers.iter().map(|l| l.uncompressed).sum();
            out.push(PlatformSize {
                image: format!("{}:{}", img.name, img.tag),
                platform: p.platform.to_string(),
                manifest: p.manifest.digest.clone(),
                compressed,
                uncompressed,
                limit: img.size_limit,
                within_limit: img.size_limit.is_none_or(|l| uncompressed <= l),
                layers,
            });
        }
    }
    out
}

/// Renders a byte count for people (`12.3 MB`).
#[must_use]
pub fn human(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if bytes >= 1_000_000 {
        format!("{:.1} MB", b / 1e6)
    } else if bytes >= 1_000 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Renders the size report as a table.
#[must_use]
pub fn render_report(report: &[PlatformSize]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    // A blob already listed above (the same layer in another image or on
    // another platform) was written once: it is shown as `shared`.
    let mut seen = std::collections::HashSet::new();
    for p in report {
        let limit = p
            .limit
            .map_or_else(|| "no limit".to_string(), |l| format!("limit {}", human(l)));
        let verdict = if p.within_limit { "ok" } else { "OVER LIMIT" };
        let _ = writeln!(
            s,
            "{} {}: {} compressed, {} uncompressed ({limit}: {verdict})",
            p.image,
            p.platform,
            human(p.compressed),
            human(p.uncompressed)
        );
        for l in &p.layers {
            let _ = writeln!(
                s,
                "  {:>10} {:>10}  {}  {:<6}  {}",
                human(l.compressed),
                human(l.uncompressed),
                l.digest.short(),
                match l.origin {
                    Origin::Base => "base",
                    _ if !seen.insert(l.digest.clone()) => "shared",
                    Origin::Cached => "cached",
                    Origin::Built => "built",
                },
                l.name
            );
        }
    }
    s
}

/// One line per platform over its limit, or nothing.
#[must_use]
pub fn over_limit(report: &[PlatformSize]) -> Vec<String> {
    report
        .iter()
        .filter(|p| !p.within_limit)
        .map(|p| {
            format!(
                "{} {} is {} uncompressed ({} compressed), over its limit of {}",
                p.image,
                p.platform,
                human(p.uncompressed),
                human(p.compressed),
                human(p.limit.unwrap_or(0))
            )
        })
        .collect()
}
