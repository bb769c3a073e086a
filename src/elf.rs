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

/// Checks class, machine and static linking of the ELF file at `path`, shown
/// in errors as `shown` (its destination in the image).
pub fn check(path: &Path, shown: &str, platform: Platform) -> Result<()> {
    let bytes = std::fs::read(path).ctx(|| format!("cannot read {}", path.display()))?;
    let elf = goblin::elf::Elf::parse(&bytes).map_err(|e| {
        Error::Binary(format!(
            "{} ({shown}) is not a valid ELF file: {e}",
            path.display()
        ))
    })?;
    let class = bytes.get(EI_CLASS).copied().unwrap_or(0);
    let want = platform.elf_machine();
    if elf.header.e_machine != want || class != ELFCLASS64 {
        let found_class = match class {
            ELFCLASS32 => "32-bit",
            ELFCLASS64 => "64-bit",
            _ => "unknown-class",
        };
        return Err(Error::Binary(format!(
            "{} ({shown}) is a {found_class} {} binary: expected a 64-bit {} binary for {platform}",
            path.display(),
            machine_name(elf.header.e_machine),
            machine_name(want),
        )));
    }
    if let Some(interp) = elf
        .program_headers
        .iter()
        .find(|ph| ph.p_type == PT_INTERP)
        .and(elf.interpreter)
    {
        return Err(Error::Binary(format!(
            "{} ({shown}) is dynamically linked (loader {interp}): expected a static binary, which a scratch image can run",
            path.display()
        )));
    }
    Ok(())
}
