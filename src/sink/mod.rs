//! Where built images go. Every destination implements [`Sink`]; the command
//! layer chooses them, as ko assembles its publishers.

pub mod archive;
pub mod layout;
pub mod registry;

use std::path::PathBuf;

use crate::build::BuiltImage;
use crate::error::{Error, Result};
use crate::store::BlobStore;

/// A destination for built images.
pub trait Sink {
    /// Writes one image whose blobs are all in `store`; returns a reference to it.
    fn write(&mut self, store: &BlobStore, image: &BuiltImage) -> Result<String>;
}

/// An `--output` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `oci:DIR`: one OCI image layout per image under DIR.
    Oci(PathBuf),
    /// `docker-archive:DIR`: `DIR/<name>.tar` per image, for `docker load`.
    DockerArchive(PathBuf),
}

impl Output {
    /// Parses `oci:DIR`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once(':') {
            Some(("oci", dir)) if !dir.is_empty() => Ok(Self::Oci(PathBuf::from(dir))),
            Some(("docker-archive", dir)) if !dir.is_empty() => {
                Ok(Self::DockerArchive(PathBuf::from(dir)))
            }
            _ => Err(Error::Usage(format!(
                "--output {s}: expected oci:DIR or docker-archive:DIR (for example oci:target/images)"
            ))),
        }
    }

    /// Opens the sink for this output.
    #[must_use]
    pub fn sink(&self) -> Box<dyn Sink> {
        match self {
            Self::Oci(dir) => Box::new(layout::LayoutSink::new(dir.clone())),
            Self::DockerArchive(dir) => Box::new(archive::ArchiveSink::new(dir.clone())),
        }
    }
}
