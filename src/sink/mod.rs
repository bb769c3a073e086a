//! Where built images go. Every destination implements [`Sink`]; the
//! command layer chooses them and joins them with a [`Tee`], as ko assembles
//! its publishers (`publish.MultiPublisher`).
//!
//! A sink takes an [`Artifact`]: an image's top document and the blob store
//! that holds everything it reaches. A fresh build and an image read back
//! from a layout (`aelimg push`) are the same thing to a sink.

pub mod archive;
pub mod engine;
pub mod layout;
pub mod registry;

use crate::digest::Digest;
use crate::error::Result;
use crate::image::BuiltImage;
use crate::oci::Document;
use crate::plan::Plan;
use crate::platform::Platform;
use crate::progress::Progress;
use crate::registry::PushReport;
use crate::store::BlobStore;

/// An image ready to be written somewhere.
#[derive(Debug, Clone, Copy)]
pub struct Artifact<'a> {
    /// The image's name (a layout directory, a `{name}` in a push target).
    pub name: &'a str,
    /// Its tag.
    pub tag: &'a str,
    /// The manifest or index the tag names.
    pub top: &'a Document,
    /// The platform of a single-manifest image, when known.
    pub platform: Option<Platform>,
    /// The store holding every blob `top` reaches.
    pub store: &'a BlobStore,
    /// Artifacts attached to the image's manifests (SBOMs), their blobs in
    /// `store` too. Sinks that can hold them write them beside the image.
    pub referrers: &'a [crate::oci::Referrer],
}

impl BuiltImage {
    /// This image as an artifact whose blobs are in `store`.
    #[must_use]
    pub fn artifact<'a>(&'a self, store: &'a BlobStore) -> Artifact<'a> {
        Artifact {
            name: &self.name,
            tag: &self.tag,
            top: self.top(),
            platform: match self.platforms.as_slice() {
                [p] => Some(p.platform),
                _ => None,
            },
            store,
            referrers: &self.referrers,
        }
    }
}

/// What a sink did with one image.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where the image is now (`oci:DIR:TAG`, `REGISTRY/REPO@sha256:…`).
    pub reference: String,
    /// The digest of what was written (its manifest or index).
    pub digest: Digest,
    /// What a registry push did.
    pub push: Option<PushReport>,
    /// Things the user should know that did not stop the write.
    pub warnings: Vec<String>,
}

impl Record {
    /// A record of writing `digest` to `reference`.
    #[must_use]
    pub fn at(reference: String, digest: Digest) -> Self {
        Self {
            reference,
            digest,
            push: None,
            warnings: Vec::new(),
        }
    }
}

/// A destination for images.
pub trait Sink {
    /// Checks, before anything is built, that this sink can take the plan's
    /// images (a docker archive holds one platform; a push target must be a
    /// valid reference for every image name).
    ///
    /// # Errors
    /// When it cannot.
    fn check(&self, _plan: &Plan) -> Result<()> {
        Ok(())
    }

    /// Writes one image, reporting to `progress` as it goes (a registry
    /// reports each blob); returns what was done.
    ///
    /// # Errors
    /// When the image cannot be written.
    fn write(&mut self, image: &Artifact<'_>, progress: &dyn Progress) -> Result<Vec<Record>>;

    /// Writes every image of a build. A sink that can do it all or nothing
    /// does (the layout sink: when any image cannot be written, no layout
    /// changes; the archive sink renames its archives into place only once
    /// every one is complete); the default writes each image in turn.
    ///
    /// # Errors
    /// When an image cannot be written.
    fn write_all(
        &mut self,
        images: &[Artifact<'_>],
        progress: &dyn Progress,
    ) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for image in images {
            out.extend(self.write(image, progress)?);
        }
        Ok(out)
    }
}

/// Several sinks as one: each checks, then each writes, in order (each
/// sink all its images, with [`Sink::write_all`], before the next).
#[derive(Default)]
pub struct Tee {
    sinks: Vec<Box<dyn Sink>>,
}

impl Tee {
    /// A tee of these sinks.
    #[must_use]
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        Self { sinks }
    }

    /// Adds a sink.
    pub fn push(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// Whether there is no sink at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl Sink for Tee {
    fn check(&self, plan: &Plan) -> Result<()> {
        self.sinks.iter().try_for_each(|s| s.check(plan))
    }

    fn write(&mut self, image: &Artifact<'_>, progress: &dyn Progress) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for s in &mut self.sinks {
            out.extend(s.write(image, progress)?);
        }
        Ok(out)
    }

    fn write_all(
        &mut self,
        images: &[Artifact<'_>],
        progress: &dyn Progress,
    ) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for s in &mut self.sinks {
            out.extend(s.write_all(images, progress)?);
        }
        Ok(out)
    }
}
