//! Staging a new library: its bytes read once, checked whole, hashed and
//! written to a private copy that every later step reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::SwapError;
use crate::plugin::loader;

/// SHA-256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks that `bytes` are a whole ELF file: its section headers (written
/// last by linkers, and at the end of the file) are within it.
pub fn check_complete_elf(bytes: &[u8]) -> Result<(), String> {
    use object::read::elf::{ElfFile64, FileHeader};
    use object::Endianness;
    let file = ElfFile64::<Endianness>::parse(bytes).map_err(|e| e.to_string())?;
    let header = file.elf_header();
    let endian = file.endian();
    let shoff = header.e_shoff(endian);
    let end = shoff + u64::from(header.e_shnum(endian)) * u64::from(header.e_shentsize(endian));
    if shoff == 0 || end > bytes.len() as u64 {
        return Err(format!(
            "{} bytes, but its section headers end at byte {end}",
            bytes.len()
        ));
    }
    Ok(())
}

/// The staged copy of a new library: its bytes are fixed from here on.
pub(super) struct Staged {
    pub(super) file: tempfile::NamedTempFile,
    pub(super) sha256: String,
}

pub(super) fn stage(path: &Path) -> Result<Staged, SwapError> {
    let read_error = |e: std::io::Error| SwapError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let bytes = std::fs::read(path).map_err(read_error)?;
    check_complete_elf(&bytes).map_err(|message| SwapError::Incomplete {
        path: path.to_path_buf(),
        message,
    })?;
    let dir = std::env::var_os(loader::COPY_DIR_ENV).map_or_else(std::env::temp_dir, PathBuf::from);
    let mut file = tempfile::Builder::new()
        .prefix("bitstream-stage-")
        .suffix(loader::LIBRARY_SUFFIX)
        .tempfile_in(&dir)
        .map_err(read_error)?;
    file.write_all(&bytes)
        .and_then(|()| file.flush())
        .map_err(read_error)?;
    Ok(Staged {
        file,
        sha256: sha256_hex(&bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_library_is_not_complete() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        check_complete_elf(&exe).expect("a whole ELF file");
        for cut in [exe.len() - 1, exe.len() / 2, 64, 10] {
            let err = check_complete_elf(&exe[..cut]).unwrap_err();
            assert!(!err.is_empty(), "{cut}");
        }
    }

    #[test]
    fn sha256_is_the_usual_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
