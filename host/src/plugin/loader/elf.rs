//! Looks at a file before `dlopen` sees it, so that "not a shared object"
//! and "wrong architecture" get a clear message instead of a raw `dlerror`.

use object::elf;
use object::elf::{FileHeader32, FileHeader64};
use object::read::elf::FileHeader;
use object::{Endianness, FileKind};

/// Why a file cannot be a plugin for this host, found from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unloadable {
    /// Not an ELF file at all (text, another format, truncated).
    NotElf(String),
    /// An ELF file that is not a shared object (an executable, an object file).
    NotSharedObject(String),
    /// A shared object for another machine.
    WrongArchitecture {
        /// What the file was built for.
        found: String,
        /// What this host runs.
        expected: &'static str,
    },
    /// The headers describe bytes past the end of the file (a copy cut
    /// short): mapping it would crash the process with SIGBUS.
    Truncated {
        /// What lies past the end.
        what: String,
        /// How long the file is.
        size: u64,
    },
}

impl std::fmt::Display for Unloadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unloadable::NotElf(what) => write!(f, "not a shared object: {what}"),
            Unloadable::NotSharedObject(what) => write!(f, "not a shared object: {what}"),
            Unloadable::WrongArchitecture { found, expected } => write!(
                f,
                "wrong architecture: built for {found}, but this host is {expected}; rebuild the plugin for {expected}"
            ),
            Unloadable::Truncated { what, size } => write!(
                f,
                "truncated or damaged: {what}, but the file is only {size} bytes long \
                 (a copy that did not finish?); copy or build the plugin again"
            ),
        }
    }
}

/// How many leading bytes [`preflight`] needs: an ELF64 file header.
pub const HEADER_LEN: usize = 64;

/// The ELF machine this host runs on, and its name in messages.
fn host_machine() -> (u16, &'static str) {
    let machine = match std::env::consts::ARCH {
        "x86_64" => elf::EM_X86_64,
        "x86" => elf::EM_386,
        "aarch64" => elf::EM_AARCH64,
        "arm" => elf::EM_ARM,
        "riscv64" => elf::EM_RISCV,
        "powerpc64" => elf::EM_PPC64,
        "s390x" => elf::EM_S390,
        _ => elf::EM_NONE,
    };
    (machine, std::env::consts::ARCH)
}

/// A readable name for an ELF machine number.
fn machine_name(machine: u16) -> String {
    match machine {
        elf::EM_X86_64 => "X86_64".into(),
        elf::EM_386 => "I386".into(),
        elf::EM_AARCH64 => "Aarch64".into(),
        elf::EM_ARM => "Arm".into(),
        elf::EM_RISCV => "Riscv".into(),
        elf::EM_PPC64 => "PowerPc64".into(),
        elf::EM_S390 => "S390x".into(),
        other => format!("ELF machine {other}"),
    }
}

fn damaged(err: object::read::Error) -> Unloadable {
    Unloadable::NotElf(format!("damaged ELF header ({err})"))
}

/// Checks that a file starting with `header` (its first [`HEADER_LEN`]
/// bytes, or all of it when shorter) is an ELF shared object for this
/// host's architecture. Only the ELF file header is read.
pub fn preflight(header: &[u8]) -> Result<(), Unloadable> {
    let (e_type, e_machine, is_64) = match FileKind::parse(header) {
        Ok(FileKind::Elf64) => {
            let h = FileHeader64::<Endianness>::parse(header).map_err(damaged)?;
            let endian = h.endian().map_err(damaged)?;
            (h.e_type(endian), h.e_machine(endian), true)
        }
        Ok(FileKind::Elf32) => {
            let h = FileHeader32::<Endianness>::parse(header).map_err(damaged)?;
            let endian = h.endian().map_err(damaged)?;
            (h.e_type(endian), h.e_machine(endian), false)
        }
        Ok(other) => {
            return Err(Unloadable::NotElf(format!(
                "it is a {other:?} file, not ELF"
            )))
        }
        Err(_) if header.len() < 16 => {
            return Err(Unloadable::NotElf(format!(
                "the file is only {} bytes long",
                header.len()
            )))
        }
        Err(_) => {
            return Err(Unloadable::NotElf(
                "no ELF header (is it a text file or a copy gone wrong?)".into(),
            ))
        }
    };
    let (host_machine, host_name) = host_machine();
    let host_is_64 = cfg!(target_pointer_width = "64");
    if e_machine != host_machine || is_64 != host_is_64 {
        let bits = if is_64 { 64 } else { 32 };
        return Err(Unloadable::WrongArchitecture {
            found: format!("{} ({bits}-bit)", machine_name(e_machine)),
            expected: host_name,
        });
    }
    match e_type {
        elf::ET_DYN => Ok(()),
        elf::ET_EXEC => Err(Unloadable::NotSharedObject(
            "it is an ELF executable; build the plugin crate with crate-type = [\"cdylib\"]".into(),
        )),
        elf::ET_REL => Err(Unloadable::NotSharedObject(
            "it is an ELF object file (.o); link it into a shared library".into(),
        )),
        other => Err(Unloadable::NotSharedObject(format!(
            "its ELF type is {other}"
        ))),
    }
}

/// Checks that everything the ELF headers of `data` (the whole file,
/// already [`preflight`]ed) point to lies inside the file: the program
/// and section header tables, every segment's file bytes and every
/// section's. `dlopen` maps segments without looking at the file's size,
/// and touching a page past its end kills the process with SIGBUS.
pub fn check_extents<'a, R: object::ReadRef<'a>>(data: R) -> Result<(), Unloadable> {
    let size = data.len().unwrap_or(0);
    let truncated = |what: String| Unloadable::Truncated { what, size };
    let header = FileHeader64::<Endianness>::parse(data).map_err(damaged)?;
    let endian = header.endian().map_err(damaged)?;
    let phoff = header.e_phoff(endian);
    let phnum = u64::from(header.e_phnum(endian));
    let phentsize = u64::from(header.e_phentsize(endian));
    let table_end = phnum
        .checked_mul(phentsize)
        .and_then(|len| phoff.checked_add(len));
    if table_end.is_none_or(|end| end > size) {
        return Err(truncated(format!(
            "its program header table ({phnum} entries at offset {phoff}) ends past the end"
        )));
    }
    let segments = header
        .program_headers(endian, data)
        .map_err(|_| truncated("its program header table cannot be read".into()))?;
    for (index, segment) in segments.iter().enumerate() {
        use object::read::elf::ProgramHeader;
        let offset = segment.p_offset(endian);
        let filesz = segment.p_filesz(endian);
        if offset.checked_add(filesz).is_none_or(|end| end > size) {
            return Err(truncated(format!(
                "its segment {index} (type {:#x}) covers bytes {offset}..{}",
                segment.p_type(endian),
                offset.saturating_add(filesz)
            )));
        }
    }
    let shoff = header.e_shoff(endian);
    if shoff != 0 {
        let sections = header.sections(endian, data).map_err(|_| {
            truncated(format!(
                "its section header table at offset {shoff} lies past the end"
            ))
        })?;
        for (index, section) in sections.iter().enumerate() {
            use object::read::elf::SectionHeader;
            if section.sh_type(endian) == elf::SHT_NOBITS {
                continue;
            }
            let offset = section.sh_offset(endian);
            let len = section.sh_size(endian);
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(truncated(format!(
                    "its section {index} covers bytes {offset}..{}",
                    offset.saturating_add(len)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-byte ELF64 little-endian header: `e_type`, `e_machine` given.
    fn elf_header(e_type: u16, e_machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // 64-bit
        h[5] = 1; // little endian
        h[6] = 1; // version
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&e_machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        h
    }

    #[test]
    fn text_is_not_a_shared_object() {
        let err = preflight(b"this is not a shared object, just some text\n").unwrap_err();
        assert!(matches!(err, Unloadable::NotElf(_)), "{err}");
        assert!(
            err.to_string()
                .starts_with("not a shared object: no ELF header"),
            "{err}"
        );
    }

    #[test]
    fn short_file_says_how_short() {
        let err = preflight(b"\x7fEL").unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a shared object: the file is only 3 bytes long"
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn aarch64_library_is_the_wrong_architecture() {
        let err = preflight(&elf_header(3, 183)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "wrong architecture: built for Aarch64 (64-bit), but this host is x86_64; rebuild the plugin for x86_64"
        );
    }

    #[test]
    fn a_library_cut_short_is_truncated() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(check_extents(&me[..]), Ok(()));
        for cut in [4096, me.len() / 2, me.len() - 1] {
            let err = check_extents(&me[..cut]).unwrap_err();
            assert!(matches!(err, Unloadable::Truncated { .. }), "{cut}: {err}");
            assert!(
                err.to_string()
                    .contains(&format!("but the file is only {cut} bytes long")),
                "{err}"
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn executables_are_refused() {
        let err = preflight(&elf_header(2, 62)).unwrap_err();
        assert!(err.to_string().contains("ELF executable"), "{err}");
        assert!(preflight(&elf_header(3, 62)).is_ok());
    }
}
