//! The dependency list each payload binary carries inside itself, as
//! [cargo-auditable](https://github.com/rust-secure-code/cargo-auditable)
//! embeds it: zlib-compressed JSON in the `.dep-v0` section of the ELF
//! file, which `cargo audit bin`, trivy, grype, syft and `rust-audit-info`
//! read, so a binary copied out of the image still says which crates (and
//! versions) it was compiled from.
//!
//! cargo-auditable gets there as a rustc wrapper that asks `cargo metadata`
//! while cargo runs; aelimg knows the crates before it calls cargo (the
//! same `cargo tree -p` list its SBOMs hold, see [`super::crates`]),
//! writes the section into a small relocatable object per platform, and
//! hands that to the link of the final binaries only, as cargo's workspace
//! rustc wrapper ([`super::wrapper`]), so one `cargo build` serves every
//! platform. The object's path names a digest of its contents; after cargo
//! runs, each binary's section is compared with the list
//! ([`section_in`]). See docs/decisions/0019 and 0023.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use auditable_serde::{DependencyKind, Package, Source, VersionInfo};
use object::write::{Object, StandardSegment, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, SectionFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope,
};

use super::crates::{CrateInfo, CrateKey, PackageCrates};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// The section readers look for.
pub const SECTION: &str = ".dep-v0";

/// The symbol that keeps the section through the linker's garbage
/// collection (`-u`), as cargo-auditable names it.
pub const SYMBOL: &str = "AUDITABLE_VERSION_INFO";

/// cargo-auditable's format revision 1: proc-macros and what only they use
/// are build-time dependencies.
const FORMAT: u32 = 1;

/// The dependency list of `crates` in cargo-auditable's JSON format:
/// packages sorted by name and version, each with the indexes of the
/// packages it depends on.
///
/// # Errors
/// When a version is not semver (cargo does not allow that).
pub fn version_info(crates: &PackageCrates) -> Result<VersionInfo> {
    let all: Vec<&CrateInfo> = std::iter::once(&crates.root)
        .chain(&crates.dependencies)
        .collect();
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| (&a.name, &a.version, &a.source).cmp(&(&b.name, &b.version, &b.source)));
    let index: BTreeMap<CrateKey, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, c)| (key(c), i))
        .collect();
    let runtime = runtime_crates(crates);
    let mut packages = Vec::with_capacity(sorted.len());
    for c in &sorted {
        let version = semver::Version::parse(&c.version).map_err(|e| {
            Error::Cargo(format!(
                "crate {} has version {:?}, not semver: {e}",
                c.name, c.version
            ))
        })?;
        let k = key(c);
        let dependencies: BTreeSet<usize> = edges_from(crates, &k)
            .filter_map(|to| index.get(to).copied())
            .collect();
        packages.push(Package {
            name: c.name.clone(),
            version,
            source: source(c.source.as_deref()),
            kind: if runtime.contains(&k) {
                DependencyKind::Runtime
            } else {
                DependencyKind::Build
            },
            dependencies: dependencies.into_iter().collect(),
            root: std::ptr::eq(*c, &crates.root),
        });
    }
    Ok(VersionInfo {
        packages,
        format: FORMAT,
    })
}

fn key(c: &CrateInfo) -> CrateKey {
    (c.name.clone(), c.version.clone())
}

/// The crates `from` depends on: a range of the edges, which are sorted by
/// their first crate (a scan of every edge per crate took a few ms per
/// package and platform, before every build).
fn edges_from<'a>(
    crates: &'a PackageCrates,
    from: &'a CrateKey,
) -> impl Iterator<Item = &'a CrateKey> {
    let first = (from.clone(), (String::new(), String::new()));
    crates
        .edges
        .range(first..)
        .take_while(move |(f, _)| f == from)
        .map(|(_, to)| to)
}

/// The crates reachable from the root without going through a proc-macro.
fn runtime_crates(crates: &PackageCrates) -> BTreeSet<CrateKey> {
    let mut seen = BTreeSet::from([key(&crates.root)]);
    let mut queue = vec![key(&crates.root)];
    while let Some(from) = queue.pop() {
        for to in edges_from(crates, &from) {
            if !crates.proc_macros.contains(to) && seen.insert(to.clone()) {
                queue.push(to.clone());
            }
        }
    }
    seen
}

/// cargo-auditable's names for where a crate comes from: `crates.io`,
/// `local` (a path dependency), else the scheme of cargo's source id
/// (`git`, `registry`, `sparse`).
fn source(id: Option<&str>) -> Source {
    match id {
        None => Source::Local,
        Some("registry+https://github.com/rust-lang/crates.io-index") => Source::CratesIo,
        Some(other) => Source::from(other.split('+').next().unwrap_or(other)),
    }
}

/// The section's contents: the JSON, zlib-compressed.
///
/// # Errors
/// See [`version_info`].
pub fn section_data(crates: &PackageCrates) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(&version_info(crates)?)
        .map_err(|e| Error::Cargo(format!("cannot encode the dependency list: {e}")))?;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(7));
    z.write_all(&json)
        .and_then(|()| z.finish())
        .map_err(|e| Error::io("cannot compress the dependency list", e))
}

/// A relocatable ELF object for `platform` holding `data` in the
/// [`SECTION`] section (not loaded at run time: no `SHF_ALLOC`), with the
/// global [`SYMBOL`] pointing at it.
///
/// # Errors
/// When the object cannot be written.
pub fn object_file(platform: Platform, data: &[u8]) -> Result<Vec<u8>> {
    let architecture = match platform {
        Platform::LinuxAmd64 => Architecture::X86_64,
        Platform::LinuxArm64 => Architecture::Aarch64,
    };
    let mut file = Object::new(BinaryFormat::Elf, architecture, Endianness::Little);
    let section = file.add_section(
        file.segment_name(StandardSegment::Data).to_vec(),
        SECTION.as_bytes().to_vec(),
        SectionKind::ReadOnlyData,
    );
    file.section_mut(section).flags = SectionFlags::Elf { sh_flags: 0 };
    let offset = file.append_section_data(section, data, 1);
    file.add_symbol(Symbol {
        name: SYMBOL.as_bytes().to_vec(),
        value: offset,
        size: data.len() as u64,
        kind: SymbolKind::Data,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    });
    file.write()
        .map_err(|e| Error::Cargo(format!("cannot write the dependency-list object: {e}")))
}

/// Writes the object holding `data` (see [`section_data`]) for `platform`
/// under `dir` (named by its digest, so the same list is one file, shared
/// by concurrent builds) and returns its path.
///
/// # Errors
/// See [`object_file`]; when it cannot be written.
pub fn write_object(dir: &Path, platform: Platform, data: &[u8]) -> Result<PathBuf> {
    let bytes = object_file(platform, data)?;
    let path = dir.join(format!("{}.o", Digest::of(&bytes).hex()));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(path);
    }
    crate::fsutil::atomic_write(&path, &bytes)?;
    Ok(path)
}

/// The bytes of the [`SECTION`] section of the ELF file at `path`; `None`
/// when it has none.
///
/// # Errors
/// When the file cannot be read or is not ELF.
pub fn section_in(path: &Path) -> Result<Option<Vec<u8>>> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let elf = goblin::elf::Elf::parse(&bytes)
        .map_err(|e| Error::Binary(format!("{} is not a valid ELF file: {e}", path.display())))?;
    Ok(elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(SECTION))
        .and_then(|s| s.file_range())
        .and_then(|r| bytes.get(r))
        .map(<[u8]>::to_vec))
}

/// The rustc arguments that link `object` into the final binary and keep
/// its section (`-u SYMBOL`, understood by a C compiler driver and by a
/// bare `ld` alike).
#[must_use]
pub fn rustc_args(object: &Path) -> Vec<String> {
    vec![
        format!("-Clink-arg={}", object.display()),
        "-Clink-arg=-u".into(),
        format!("-Clink-arg={SYMBOL}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, version: &str, source: Option<&str>) -> CrateInfo {
        CrateInfo {
            name: name.into(),
            version: version.into(),
            source: source.map(Into::into),
            checksum: None,
            license: None,
        }
    }

    fn k(n: &str, v: &str) -> CrateKey {
        (n.into(), v.into())
    }

    fn sample() -> PackageCrates {
        const IO: &str = "registry+https://github.com/rust-lang/crates.io-index";
        PackageCrates {
            root: info("app", "0.1.0", None),
            dependencies: vec![
                info("serde", "1.0.1", Some(IO)),
                info("serde_derive", "1.0.1", Some(IO)),
                info("syn", "2.0.1", Some(IO)),
                info("tool", "0.2.0", Some("git+https://example.com/tool#abc")),
            ],
            edges: BTreeSet::from([
                (k("app", "0.1.0"), k("serde", "1.0.1")),
                (k("app", "0.1.0"), k("tool", "0.2.0")),
                (k("serde", "1.0.1"), k("serde_derive", "1.0.1")),
                (k("serde_derive", "1.0.1"), k("syn", "2.0.1")),
            ]),
            proc_macros: BTreeSet::from([k("serde_derive", "1.0.1")]),
        }
    }

    #[test]
    fn packages_sources_kinds_and_edges() {
        let v = version_info(&sample()).unwrap();
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "format": 1,
                "packages": [
                    {"name": "app", "version": "0.1.0", "source": "local", "dependencies": [1, 4], "root": true},
                    {"name": "serde", "version": "1.0.1", "source": "crates.io", "dependencies": [2]},
                    {"name": "serde_derive", "version": "1.0.1", "source": "crates.io", "kind": "build", "dependencies": [3]},
                    {"name": "syn", "version": "2.0.1", "source": "crates.io", "kind": "build"},
                    {"name": "tool", "version": "0.2.0", "source": "git"},
                ]
            })
        );
        // auditable-serde's own validation (one root, no cycle) accepts it.
        let back: VersionInfo = json.to_string().parse().unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn the_object_holds_the_section_and_the_symbol() {
        use goblin::elf::{Elf, header, section_header, sym};
        let data = section_data(&sample()).unwrap();
        for (platform, machine) in [
            (Platform::LinuxAmd64, header::EM_X86_64),
            (Platform::LinuxArm64, header::EM_AARCH64),
        ] {
            let bytes = object_file(platform, &data).unwrap();
            let elf = Elf::parse(&bytes).unwrap();
            assert_eq!(elf.header.e_machine, machine);
            assert_eq!(elf.header.e_type, header::ET_REL);
            let section = elf
                .section_headers
                .iter()
                .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(SECTION))
                .unwrap();
            assert_eq!(section.sh_flags & u64::from(section_header::SHF_ALLOC), 0);
            let range = section.file_range().unwrap();
            assert_eq!(&bytes[range], &data[..]);
            let symbol = elf
                .syms
                .iter()
                .find(|s| elf.strtab.get_at(s.st_name) == Some(SYMBOL))
                .unwrap();
            assert_eq!(symbol.st_bind(), sym::STB_GLOBAL);
            assert_eq!(symbol.st_size, data.len() as u64);
        }
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&data[..]), &mut json)
            .unwrap();
        assert!(json.starts_with(b"{\"packages\":[{\"name\":\"app\""));
    }
}
