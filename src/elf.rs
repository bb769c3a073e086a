//! Checks an ELF file against the platform it is packed for.

use std::io::Read;
use std::path::Path;

use goblin::elf::header::{EI_CLASS, ELFCLASS32, ELFCLASS64, ELFMAG, SELFMAG};
use goblin::elf::program_header::PT_INTERP;

use crate::error::{Error, IoContext, Result};
use crate::platform::Platform;

/// Whether a file starts with the ELF magic.
pub fn is_elf(path: &Path) -> Result<bool> {
    let mut magic = [0u8; SELFMAG];
    let mut f = std::fs::File::open(path).ctx(|| format!("cannot open {}", path.display()))?;
    match f.read_exact(&mut magic) {
        Ok(()) => Ok(&magic[..] == ELFMAG),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

fn machine_name(m: u16) -> String {
    goblin::elf::header::machine_to_str(m).to_string()
}

/// The most bytes of program headers read (a sane ELF has a few dozen of
/// 56 bytes each); more is refused rather than allocated.
const MAX_PROGRAM_HEADERS: usize = 64 * 1024;
/// The longest loader path read from PT_INTERP.
const MAX_INTERP: u64 = 4096;
/// The size of a 64-bit ELF header (a 32-bit one is shorter).
const EHDR_SIZE: usize = goblin::elf::header::header64::SIZEOF_EHDR;

/// Checks class, machine and static linking of the ELF file at `path`, shown
/// in errors as `shown` (its destination in the image).
///
/// Reads the ELF header, the program headers and the loader path only, so
/// the cost does not grow with the size of the binary.
pub fn check(path: &Path, shown: &str, platform: Platform) -> Result<()> {
    let invalid = |what: String| {
        Error::Binary(format!(
            "{} ({shown}) is not a valid ELF file: {what}",
            path.display()
        ))
    };
    let mut f = std::fs::File::open(path).ctx(|| format!("cannot open {}", path.display()))?;
    let len = f
        .metadata()
        .ctx(|| format!("cannot read {}", path.display()))?
        .len();
    let mut ident = Vec::with_capacity(EHDR_SIZE);
    (&mut f)
        .take(EHDR_SIZE as u64)
        .read_to_end(&mut ident)
        .ctx(|| format!("cannot read {}", path.display()))?;
    let header = goblin::elf::Elf::parse_header(&ident).map_err(|e| invalid(e.to_string()))?;
    let class = ident.get(EI_CLASS).copied().unwrap_or(0);
    let want = platform.elf_machine();
    if header.e_machine != want || class != ELFCLASS64 {
        let found_class = match class {
            ELFCLASS32 => "32-bit",
            ELFCLASS64 => "64-bit",
            _ => "unknown-class",
        };
        return Err(Error::Binary(format!(
            "{} ({shown}) is a {found_class} {} binary: expected a 64-bit {} binary for {platform}",
            path.display(),
            machine_name(header.e_machine),
            machine_name(want),
        )));
    }
    let ctx = goblin::container::Ctx::new(
        header.container().map_err(|e| invalid(e.to_string()))?,
        header.endianness().map_err(|e| invalid(e.to_string()))?,
    );
    let table = usize::from(header.e_phnum) * usize::from(header.e_phentsize);
    if table > MAX_PROGRAM_HEADERS || header.e_phoff.saturating_add(table as u64) > len {
        return Err(invalid(format!(
            "{} program headers at offset {} do not fit in its {len} bytes",
            header.e_phnum, header.e_phoff
        )));
    }
    let phdrs = read_at(&mut f, header.e_phoff, table as u64)
        .ctx(|| format!("cannot read {}", path.display()))?;
    let headers = goblin::elf::ProgramHeader::parse(&phdrs, 0, usize::from(header.e_phnum), ctx)
        .map_err(|e| invalid(e.to_string()))?;
    if let Some(ph) = headers.iter().find(|ph| ph.p_type == PT_INTERP) {
        let raw = read_at(&mut f, ph.p_offset, ph.p_filesz.min(MAX_INTERP))
            .ctx(|| format!("cannot read {}", path.display()))?;
        let interp = String::from_utf8_lossy(raw.split(|&b| b == 0).next().unwrap_or_default());
        return Err(Error::Binary(format!(
            "{} ({shown}) is dynamically linked (loader {interp}): expected a static binary, which a scratch image can run",
            path.display()
        )));
    }
    Ok(())
}

/// Up to `len` bytes of `f` from `offset` (fewer at the end of the file).
fn read_at(f: &mut std::fs::File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prebuilt(target: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/prebuilt/{target}/ael"))
    }

    #[test]
    fn a_huge_sparse_binary_is_checked_from_its_headers_alone() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::copy(prebuilt("x86_64-unknown-linux-musl"), &big).unwrap();
        // 64 GiB of hole: reading it whole would not finish in a test.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(64 << 30)
            .unwrap();
        let amd64 = Platform::parse("linux/amd64").unwrap();
        check(&big, "/big", amd64).unwrap();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let err = check(&big, "/big", arm64).unwrap_err().to_string();
        assert!(err.contains("expected a 64-bit AARCH64 binary"), "{err}");
    }

    #[test]
    fn truncated_program_headers_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut");
        let bytes = std::fs::read(prebuilt("x86_64-unknown-linux-musl")).unwrap();
        std::fs::write(&cut, &bytes[..70]).unwrap();
        let err = check(
            &cut,
            "/usr/bin/cut",
            Platform::parse("linux/amd64").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("(/usr/bin/cut) is not a valid ELF file"),
            "{err}"
        );
    }
}
