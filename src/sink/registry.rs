//! The registry sink: `aelimg build --push REF` pushes each image as it is
//! written (REF may hold `{name}`).

use super::Sink;
use crate::build::BuiltImage;
use crate::error::Result;
use crate::registry::{Options, PushReport, RawManifest, Reference, Registry};
use crate::store::BlobStore;

/// Pushes every image to a reference pattern.
pub struct RegistrySink {
    pattern: String,
    extra_tags: Vec<String>,
    opts: Options,
    connections: Vec<Registry>,
    /// What each push did.
    pub reports: Vec<PushReport>,
}

impl RegistrySink {
    /// A sink pushing to `pattern` (`{name}` is replaced by the image name).
    #[must_use]
    pub fn new(pattern: String, extra_tags: Vec<String>, opts: Options) -> Self {
        Self {
            pattern,
            extra_tags,
            opts,
            connections: Vec::new(),
            reports: Vec::new(),
        }
    }
}

/// The reference an image goes to, and its tags (REF's tag, else the
/// image's own, then the extra ones).
pub fn target(
    pattern: &str,
    name: &str,
    own_tag: Option<&str>,
    extra: &[String],
) -> Result<(Reference, Vec<String>)> {
    let r = Reference::parse(&pattern.replace("{name}", name))?;
    if r.digest.is_some() {
        return Err(crate::error::Error::Usage(format!(
            "{pattern}: a push target names a tag, not a digest"
        )));
    }
    let mut tags = vec![
        r.tag
            .clone()
            .or_else(|| own_tag.map(str::to_string))
            .unwrap_or_else(|| "latest".into()),
    ];
    for t in extra {
        Reference::parse(&format!("x.test/x:{t}"))?;
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    Ok((r, tags))
}

/// Pushes one image from a store, reusing a connection per registry.
pub fn push_one(
    connections: &mut Vec<Registry>,
    opts: &Options,
    store: &BlobStore,
    top: &RawManifest,
    target: &Reference,
    tags: &[String],
) -> Result<PushReport> {
    let i = match connections.iter().position(|c| c.name == target.registry) {
        Some(i) => i,
        None => {
            connections.push(Registry::connect(
                &target.registry,
                target.api_host(),
                opts.clone(),
            )?);
            connections.len() - 1
        }
    };
    crate::registry::push::push_image(&connections[i], store, top, target, tags)
}

impl Sink for RegistrySink {
    fn write(&mut self, store: &BlobStore, image: &BuiltImage) -> Result<String> {
        let (target, tags) = target(
            &self.pattern,
            &image.name,
            Some(&image.tag),
            &self.extra_tags,
        )?;
        let top = image.top();
        let raw = RawManifest {
            media_type: top.media_type.clone(),
            digest: top.digest.clone(),
            bytes: top.bytes.clone(),
        };
        let report = push_one(
            &mut self.connections,
            &self.opts,
            store,
            &raw,
            &target,
            &tags,
        )?;
        let r = report.reference.clone();
        self.reports.push(report);
        Ok(r)
    }
}
