//! Image references: `[REGISTRY/]REPO[:TAG][@sha256:…]`, as docker parses them.

use std::fmt;

use crate::digest::Digest;

/// A string that is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not an image reference ({why}); expected REGISTRY/REPO[:TAG][@sha256:…], for example 127.0.0.1:5000/acme/ael:1.2"
)]
pub struct ReferenceError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Whether `t` is a valid tag: up to 128 of `[A-Za-z0-9_.-]`, not starting
/// with `.` or `-` (the distribution spec's rule).
#[must_use]
pub fn is_valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !t.starts_with(['.', '-'])
}

/// Docker Hub's name in references and in credential stores.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry as written (`host[:port]`), `docker.io` when omitted.
    pub registry: String,
    /// The repository path (`library/alpine`, `acme/ael`).
    pub repository: String,
    /// The tag, when given.
    pub tag: Option<String>,
    /// The digest, when given.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference.
    ///
    /// # Errors
    /// When `s` is not `[REGISTRY/]REPO[:TAG][@sha256:…]`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let bad = |why: &'static str| ReferenceError {
            input: s.to_string(),
            why,
        };
        if s.is_empty() || s.contains("://") {
            return Err(bad("no scheme allowed"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !d.starts_with("sha256:") {
                    return Err(bad("only sha256 digests"));
                }
                let d = Digest::parse(d)
                    .map_err(|_| bad("a digest is sha256: and 64 lower-case hex digits"))?;
                (r, Some(d))
            }
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => {
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if let Some(t) = &tag
            && !is_valid_tag(t)
        {
            return Err(bad("a tag is up to 128 of [A-Za-z0-9_.-]"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, repo))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), repo.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad(
                "repository path components are lower-case [a-z0-9._-], starting and ending alphanumeric",
            ));
        }
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host the registry API is served on.
    #[must_use]
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The tag or digest to fetch: the digest when given, else the tag, else `latest`.
    #[must_use]
    pub fn object(&self) -> &str {
        self.digest
            .as_ref()
            .map(Digest::as_str)
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository with another tag and no digest.
    #[must_use]
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// `REGISTRY/REPO` (what a digest is appended to).
    #[must_use]
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether a registry host (`host[:port]`) names the loopback interface.
#[must_use]
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host part of `host[:port]` (brackets of an IPv6 literal removed).
#[must_use]
pub fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = Reference::parse("127.0.0.1:5000/acme/ael:1.2").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "acme/ael");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(r.registry, DOCKER_HUB);
        assert_eq!(r.repository, "library/alpine");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost:5000/x@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.object(), d);
        assert!(is_valid_tag("1.2.3-rc1") && is_valid_tag("_x"));
        assert!(!is_valid_tag("-x") && !is_valid_tag(".x") && !is_valid_tag(""));
        assert!(Reference::parse("http://x/y").is_err());
        assert!(Reference::parse("x.io/Upper").is_err());
        assert!(Reference::parse("x.io/a:bad tag").is_err());
    }

    #[test]
    fn loopback_names() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.test:5000"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
