//! Platforms in buildx syntax and their Rust targets.

use std::fmt;

use serde::{Serialize, Serializer};

/// A platform aelimg can build for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    /// linux/amd64
    LinuxAmd64,
    /// linux/arm64/v8
    LinuxArm64,
}

/// Every supported platform, in the order images list them.
pub const SUPPORTED: [Platform; 2] = [Platform::LinuxAmd64, Platform::LinuxArm64];

impl Platform {
    /// Parses `linux/amd64`, `linux/arm64`, `linux/arm64/v8` (and `amd64`, `arm64`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let p = match parts.as_slice() {
            ["linux", "amd64"] | ["amd64"] | ["linux", "x86_64"] => Some(Self::LinuxAmd64),
            ["linux", "arm64"] | ["linux", "arm64", "v8"] | ["arm64"] | ["linux", "aarch64"] => {
                Some(Self::LinuxArm64)
            }
            _ => None,
        };
        p.ok_or_else(|| {
            let list: Vec<String> = SUPPORTED.iter().map(ToString::to_string).collect();
            format!(
                "unsupported platform `{s}`: expected one of {}",
                list.join(", ")
            )
        })
    }

    /// Parses a comma-separated list, as `--platform` takes it.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let p = Self::parse(part)?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            return Err("expected at least one platform, e.g. linux/amd64".into());
        }
        Ok(out)
    }

    /// The platform of the machine aelimg runs on, when supported.
    #[must_use]
    pub fn host() -> Option<Self> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Self::LinuxAmd64),
            "aarch64" => Some(Self::LinuxArm64),
            _ => None,
        }
    }

    /// OCI `os`.
    #[must_use]
    pub fn os(self) -> &'static str {
        "linux"
    }

    /// OCI `architecture`.
    #[must_use]
    pub fn architecture(self) -> &'static str {
        match self {
            Self::LinuxAmd64 => "amd64",
            Self::LinuxArm64 => "arm64",
        }
    }

    /// OCI `variant`, when the platform has one.
    #[must_use]
    pub fn variant(self) -> Option<&'static str> {
        match self {
            Self::LinuxAmd64 => None,
            Self::LinuxArm64 => Some("v8"),
        }
    }

    /// The Rust target triple that builds static binaries for this platform.
    #[must_use]
    pub fn rust_target(self) -> &'static str {
        match self {
            Self::LinuxAmd64 => "x86_64-unknown-linux-musl",
            Self::LinuxArm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// The ELF `e_machine` value of this platform's binaries.
    #[must_use]
    pub fn elf_machine(self) -> u16 {
        match self {
            Self::LinuxAmd64 => goblin::elf::header::EM_X86_64,
            Self::LinuxArm64 => goblin::elf::header::EM_AARCH64,
        }
    }

    /// The OCI platform of an index entry.
    #[must_use]
    pub fn to_oci(self) -> oci_spec::image::Platform {
        let mut p = oci_spec::image::Platform::default();
        p.set_os(oci_spec::image::Os::Linux);
        p.set_architecture(self.oci_arch());
        p.set_variant(self.variant().map(str::to_string));
        p
    }

    /// The OCI architecture.
    #[must_use]
    pub fn oci_arch(self) -> oci_spec::image::Arch {
        match self {
            Self::LinuxAmd64 => oci_spec::image::Arch::Amd64,
            Self::LinuxArm64 => oci_spec::image::Arch::ARM64,
        }
    }

    /// A short name usable in file names (`linux-amd64`).
    #[must_use]
    pub fn slug(self) -> String {
        self.to_string().replace('/', "-")
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.variant() {
            Some(v) => write!(f, "{}/{}/{}", self.os(), self.architecture(), v),
            None => write!(f, "{}/{}", self.os(), self.architecture()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_syntax() {
        assert_eq!(
            Platform::parse_list("linux/amd64,linux/arm64").unwrap(),
            vec![Platform::LinuxAmd64, Platform::LinuxArm64]
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap(),
            Platform::LinuxArm64
        );
        assert_eq!(Platform::LinuxArm64.to_string(), "linux/arm64/v8");
    }

    #[test]
    fn refuses_unknown_with_the_list() {
        let e = Platform::parse("linux/s390x").unwrap_err();
        assert!(e.contains("linux/s390x"), "{e}");
        assert!(e.contains("linux/amd64, linux/arm64/v8"), "{e}");
    }
}
