//! The registry sink: `aelimg build --push REF` and `aelimg push REF` push
//! each image to REF (which may hold `{name}`), reusing one connection per
//! registry.

use super::{Artifact, Record, Sink};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::reference::{Reference, is_valid_tag};
use crate::registry::{Options, Registry};

/// Pushes every image to a reference pattern.
pub struct RegistrySink {
    pattern: String,
    extra_tags: Vec<String>,
    opts: Options,
    connections: Vec<Registry>,
}

impl RegistrySink {
    /// A sink pushing to `pattern` (`{name}` is replaced by the image name),
    /// also tagging every image with `extra_tags`.
    ///
    /// # Errors
    /// When an extra tag is not a valid tag.
    pub fn new(pattern: String, extra_tags: Vec<String>, opts: Options) -> Result<Self> {
        for t in &extra_tags {
            if !is_valid_tag(t) {
                return Err(Error::Request(format!(
                    "`{t}` is not a valid tag: expected up to 128 of [A-Za-z0-9_.-], not starting with `.` or `-`"
                )));
            }
        }
        Ok(Self {
            pattern,
            extra_tags,
            opts,
            connections: Vec::new(),
        })
    }

    /// The pattern's reference for an image name (no tag chosen yet).
    ///
    /// # Errors
    /// When the pattern does not make a reference, or names a digest.
    pub fn target_of(&self, name: &str) -> Result<Reference> {
        let r = Reference::parse(&self.pattern.replace("{name}", name))?;
        if r.digest.is_some() {
            return Err(Error::Request(format!(
                "{}: a push target names a tag, not a digest",
                self.pattern
            )));
        }
        Ok(r)
    }

    /// Whether the pattern pushes each image to its own repository.
    #[must_use]
    pub fn per_image(&self) -> bool {
        self.pattern.contains("{name}")
    }

    /// Checks that every image name makes a valid target, and that several
    /// images do not all go to one repository.
    ///
    /// # Errors
    /// When a target is not a reference, or several images share one.
    pub fn check_names(&self, names: &[&str]) -> Result<()> {
        for n in names {
            self.target_of(n)?;
        }
        if names.len() > 1 && !self.per_image() {
            return Err(Error::Request(format!(
                "{} names one repository, but there are {} images ({}): put {{name}} in it or pick one image",
                self.pattern,
                names.len(),
                names.join(", ")
            )));
        }
        Ok(())
    }

    /// The reference an image goes to and its tags: REF's tag, else the
    /// image's own, then the extra ones.
    fn target(&self, name: &str, own_tag: &str) -> Result<(Reference, Vec<String>)> {
        let r = self.target_of(name)?;
        let mut tags = vec![r.tag.clone().unwrap_or_else(|| own_tag.to_string())];
        for t in &self.extra_tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        Ok((r, tags))
    }

    fn connection(&mut self, target: &Reference) -> Result<&Registry> {
        let i = match self
            .connections
            .iter()
            .position(|c| c.name == target.registry)
        {
            Some(i) => i,
            None => {
                self.connections.push(Registry::connect(
                    &target.registry,
                    target.api_host(),
                    self.opts.clone(),
                )?);
                self.connections.len() - 1
            }
        };
        Ok(&self.connections[i])
    }
}

impl Sink for RegistrySink {
    fn check(&self, plan: &Plan) -> Result<()> {
        self.check_names(
            &plan
                .images
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
        )
    }

    fn write(&mut self, image: &Artifact<'_>, progress: &dyn Progress) -> Result<Vec<Record>> {
        let (target, tags) = self.target(image.name, image.tag)?;
        let reg = self.connection(&target)?;
        let mut report = crate::registry::push::push_image(
            reg,
            image.store,
            image.top,
            image.referrers,
            &target,
            &tags,
            progress,
        )?;
        report.image = image.name.to_string();
        Ok(vec![Record {
            reference: report.reference.clone(),
            digest: report.digest.clone(),
            push: Some(report),
            warnings: Vec::new(),
        }])
    }
}
