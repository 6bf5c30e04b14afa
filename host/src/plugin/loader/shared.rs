//! Loading each plugin library once per process: a fleet of emulators of
//! one package shares the loaded libraries instead of copying and
//! `dlopen`ing every library once per emulator.
//!
//! The cache is keyed by the file's identity (device and inode) and the
//! SHA-256 of its bytes, read once: the bytes hashed are the bytes copied
//! and loaded, so a file rewritten in place (same inode, new content) is a
//! new key and a new load, and a file replaced by another (new inode) too.
//! Failed loads are not kept: the next caller tries again and gets the same
//! error.
//!
//! Only callers that ask for sharing get it ([`load_library_shared`]);
//! [`super::load_library`] still makes a separate library on every call,
//! which hot-swap relies on (a swap loads its own staged copy, so swapping
//! a type in one emulator never touches another emulator serving the old
//! library: each emulator holds its own `Arc<Plugin>` per block).

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::LazyLock;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::{load_library_from, LoadError, LoadedLibrary};

/// What identifies one library file's content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LibraryKey {
    /// The file system's device number.
    pub device: u64,
    /// The file's inode.
    pub inode: u64,
    /// The SHA-256 of its bytes.
    pub sha256: [u8; 32],
}

/// How often the shared loader loaded a library and how often it handed
/// out one already loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedLoads {
    /// Libraries copied and `dlopen`ed.
    pub loads: u64,
    /// Calls answered with a library loaded before.
    pub reuses: u64,
}

#[derive(Default)]
struct Cache {
    loaded: HashMap<LibraryKey, LoadedLibrary>,
    counts: SharedLoads,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

/// Reads `path` whole and answers its key and bytes.
fn read_keyed(path: &Path) -> Result<(LibraryKey, Vec<u8>), LoadError> {
    let io_error = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(io_error)?;
    let key = LibraryKey {
        device: metadata.dev(),
        inode: metadata.ino(),
        sha256: Sha256::digest(&bytes).into(),
    };
    Ok((key, bytes))
}

/// Loads the library at `path` as [`super::load_library`] does, unless
/// this process has already loaded the same file with the same content
/// through this function: then that library is answered (its `path` set to
/// `path`), without a copy or `dlopen`.
pub fn load_library_shared(path: &Path) -> Result<LoadedLibrary, LoadError> {
    let (key, bytes) = read_keyed(path)?;
    let mut cache = CACHE.lock();
    if let Some(loaded) = cache.loaded.get(&key) {
        let mut library = loaded.clone();
        library.path = path.to_path_buf();
        cache.counts.reuses += 1;
        return Ok(library);
    }
    // Loaded under the lock: two emulators asking for one library at once
    // load it once.
    let library = load_library_from(path, &mut bytes.as_slice())?;
    cache.counts.loads += 1;
    cache.loaded.insert(key, library.clone());
    Ok(library)
}

/// The shared loader's counts so far in this process.
pub fn shared_loads() -> SharedLoads {
    CACHE.lock().counts
}

/// The key [`load_library_shared`] would file `path` under.
pub fn library_key(path: &Path) -> Result<LibraryKey, LoadError> {
    read_keyed(path).map(|(key, _)| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_rewritten_in_place_gets_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libx.so");
        std::fs::write(&path, b"one").unwrap();
        let first = library_key(&path).unwrap();
        assert_eq!(library_key(&path).unwrap(), first);
        std::fs::write(&path, b"two").unwrap();
        let second = library_key(&path).unwrap();
        assert_eq!((second.device, second.inode), (first.device, first.inode));
        assert_ne!(second.sha256, first.sha256);
        let other = dir.path().join("liby.so");
        std::fs::write(&other, b"two").unwrap();
        assert_ne!(library_key(&other).unwrap(), second, "another file");
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = load_library_shared(Path::new("/nonexistent/libx.so")).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/libx.so: "),
            "{err}"
        );
    }
}
