//! Staging a new library: its bytes read once, checked whole, hashed and
//! written to a private copy that every later step reads.
//!
//! The copy is an anonymous in-memory file (a memfd), named
//! `/proc/<pid>/fd/<n>` for the isolated check's child and the load: an
//! emulator killed mid-swap leaves no file behind. Where memfds are
//! unavailable it is a file `bitstream-stage-<pid>-*.so` in the plugin copy
//! folder (`BITSTREAM_EMULATOR_PLUGIN_COPY_DIR`, or the temporary folder),
//! removed when the swap ends; files left there by an emulator that died
//! are removed when the next emulator starts ([`remove_stale_files`]).

use std::io::Write;
use std::os::fd::AsRawFd;
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

/// Prefix of staged copies that are files.
const FILE_PREFIX: &str = "bitstream-stage-";

/// Where the copy lives.
enum Copy {
    /// An anonymous in-memory file: gone with its descriptor.
    Memory(std::fs::File),
    /// A file, removed when dropped.
    File(tempfile::NamedTempFile),
}

/// The staged copy of a new library: its bytes are fixed from here on.
pub(super) struct Staged {
    copy: Copy,
    pub(super) sha256: String,
}

impl Staged {
    /// The name of the copy, for this process and its children.
    pub(super) fn path(&self) -> PathBuf {
        match &self.copy {
            Copy::Memory(file) => PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                file.as_raw_fd()
            )),
            Copy::File(file) => file.path().to_path_buf(),
        }
    }
}

fn copy_dir() -> PathBuf {
    std::env::var_os(loader::COPY_DIR_ENV).map_or_else(std::env::temp_dir, PathBuf::from)
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
    let memfd = nix::sys::memfd::memfd_create(
        c"bitstream-stage",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    );
    let copy = match memfd {
        Ok(fd) => {
            let mut file = std::fs::File::from(fd);
            file.write_all(&bytes).map_err(read_error)?;
            Copy::Memory(file)
        }
        Err(_) => {
            let mut file = tempfile::Builder::new()
                .prefix(&format!("{FILE_PREFIX}{}-", std::process::id()))
                .suffix(loader::LIBRARY_SUFFIX)
                .tempfile_in(copy_dir())
                .map_err(read_error)?;
            file.write_all(&bytes)
                .and_then(|()| file.flush())
                .map_err(read_error)?;
            Copy::File(file)
        }
    };
    Ok(Staged {
        copy,
        sha256: sha256_hex(&bytes),
    })
}

/// Removes the staged files (`bitstream-stage-<pid>-*`) in `dir` whose
/// emulator is no longer running (killed mid-swap where memfds are
/// unavailable); answers how many.
pub(super) fn remove_stale_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(FILE_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if crate::engine::block_buffer::process_alive(pid) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::warn!(
                    "removed {}, a library staged by an emulator that died mid-swap (pid {pid})",
                    entry.path().display()
                );
                removed += 1;
            }
            Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
        }
    }
    removed
}

/// [`remove_stale_files`] in the plugin copy folder.
pub(super) fn remove_stale_copies() -> usize {
    remove_stale_files(&copy_dir())
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
    fn a_staged_copy_is_no_file_and_reads_back_whole() {
        let exe = std::env::current_exe().unwrap();
        let staged = stage(&exe).unwrap();
        let path = staged.path();
        assert!(path.starts_with("/proc"), "{}", path.display());
        let bytes = std::fs::read(&exe).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        drop(staged);
        // The descriptor number may already serve another test's file (the
        // tests run in parallel in one process): the copy is gone when that
        // path no longer reads back the library.
        assert!(
            std::fs::read(&path).map_or(true, |now| now != bytes),
            "the copy is gone with the swap"
        );
    }

    #[test]
    fn stale_staged_files_of_dead_emulators_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!("{FILE_PREFIX}{dead}-abc.so"));
        let live = dir
            .path()
            .join(format!("{FILE_PREFIX}{}-abc.so", std::process::id()));
        let other = dir.path().join("libsomething.so");
        for f in [&stale, &live, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(remove_stale_files(dir.path()), 1);
        assert!(!stale.exists() && live.exists() && other.exists());
    }

    #[test]
    fn sha256_is_the_usual_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
