//! Finds plugin folders in a bitstream package and loads their shared
//! objects.
//!
//! Loading a plugin:
//! 1. reads the file and checks its ELF header (shared object, this host's
//!    architecture);
//! 2. copies it into an anonymous in-memory file (memfd), checks that the
//!    copy's segments and sections lie inside it (a truncated library would
//!    crash the process with SIGBUS when mapped) and `dlopen`s the copy
//!    through `/proc/self/fd/<n>` with `RTLD_NOW` (a loaded file that is
//!    overwritten later crashes the process, and hot-swap loads new versions
//!    from the same path; `RTLD_NOW` reports undefined symbols now instead of
//!    crashing at the first call). The copy lives only in memory: a process
//!    that dies while loading leaves no file behind;
//! 3. reads abi_stable's header from that library (never the per-type
//!    `RootModule::load_from*` cache, which would hand every plugin the first
//!    one's module), checks the abi_stable version, the SDK version policy
//!    and the root module's type layout.
//!
//! Libraries are never unloaded: abi_stable hands out `'static` references
//! into them.

pub mod elf;
mod layout;
pub mod shared;

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use abi_stable::library::{AbiHeaderRef, LibHeader, LibraryError, RootModule};
use std::ffi::{c_char, CStr};

use bitstream_sdk::ffi::{
    HostExtensionsRef, PluginModuleRef, RestoreFn, PLUGIN_INFO_SYMBOL, RESTORE_SYMBOL,
    ROOT_MODULE_SYMBOL, SET_HOST_EXTENSIONS_SYMBOL,
};
use bitstream_sdk::version::{check_compatible, SdkVersion};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

/// Environment variable naming the folder for the private copies of loaded
/// plugins where anonymous in-memory files (memfds) are unavailable
/// (default: the system temporary folder). It must allow executable
/// mappings (not mounted `noexec`).
pub const COPY_DIR_ENV: &str = "BITSTREAM_EMULATOR_PLUGIN_COPY_DIR";

/// The file name suffix of plugin libraries on this platform.
pub const LIBRARY_SUFFIX: &str = std::env::consts::DLL_SUFFIX;

/// One `emulators/<ip_block_type>/emulator` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFolder {
    /// The `<ip_block_type>` folder name.
    pub ip_block_type: String,
    /// The `emulator` folder.
    pub folder: PathBuf,
}

/// Why a plugin could not be found or loaded. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The folder could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The emulator folder holds no shared object.
    #[error("{folder}: no plugin library (*{LIBRARY_SUFFIX}) in the emulator folder; build the plugin and copy it here")]
    NoLibrary {
        /// The emulator folder.
        folder: PathBuf,
    },
    /// The emulator folder holds more than one shared object.
    #[error("{folder}: {} plugin libraries where exactly one is expected ({}); remove all but one", found.len(), names(found))]
    SeveralLibraries {
        /// The emulator folder.
        folder: PathBuf,
        /// The libraries found.
        found: Vec<PathBuf>,
    },
    /// The file's headers show it cannot be loaded here.
    #[error("{path}: {reason}")]
    Unloadable {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: elf::Unloadable,
    },
    /// The private copy could not be written.
    #[error("{path}: cannot copy to {copy_dir} before loading: {source}; set {COPY_DIR_ENV} to a writable folder")]
    Copy {
        /// The library.
        path: PathBuf,
        /// Where the copy was to go.
        copy_dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The library refers to a symbol nothing defines.
    #[error("{path}: undefined symbol `{symbol}`: the plugin needs a function or static that no loaded library defines; link what defines it or remove the reference")]
    UndefinedSymbol {
        /// The library.
        path: PathBuf,
        /// The missing symbol.
        symbol: String,
    },
    /// `dlopen` failed for another reason.
    #[error("{path}: cannot be loaded: {message}")]
    Open {
        /// The library.
        path: PathBuf,
        /// The dynamic loader's message.
        message: String,
    },
    /// The library does not export an abi_stable root module.
    #[error("{path}: not a bitstream emulator plugin: it exports no abi_stable root module (`{ROOT_MODULE_SYMBOL}`); export one with bitstream_sdk::export_plugin!")]
    NotAPlugin {
        /// The library.
        path: PathBuf,
    },
    /// The library was built with an incompatible abi_stable.
    #[error("{path}: built with an incompatible abi_stable: {message}")]
    AbiStable {
        /// The library.
        path: PathBuf,
        /// abi_stable's message.
        message: String,
    },
    /// The SDK version policy refuses the plugin.
    #[error("{path}: {message}")]
    SdkVersion {
        /// The library.
        path: PathBuf,
        /// The version the plugin's header claims.
        claimed: String,
        /// What built it and what the host supports.
        message: String,
    },
    /// The root module's type layout differs from the host's.
    #[error("{path}: the plugin's ABI types do not match this host's SDK {host_sdk} (the plugin says SDK {plugin_sdk}):\n{summary}")]
    Layout {
        /// The library.
        path: PathBuf,
        /// The host's SDK version.
        host_sdk: &'static str,
        /// The SDK version the plugin's header claims.
        plugin_sdk: String,
        /// The mismatch in a few lines: the type, the field, expected vs
        /// found, and what to do.
        summary: String,
        /// abi_stable's full description of the mismatch.
        detail: String,
    },
    /// The root module's constructor failed or panicked.
    #[error("{path}: the plugin's root module failed to initialize: {message}")]
    RootModule {
        /// The library.
        path: PathBuf,
        /// abi_stable's message.
        message: String,
    },
}

impl LoadError {
    /// The SDK version the plugin's header claims, when it was read (also
    /// when the plugin is then refused).
    pub fn plugin_sdk_version(&self) -> Option<&str> {
        match self {
            LoadError::Layout { plugin_sdk, .. } => Some(plugin_sdk),
            LoadError::SdkVersion { claimed, .. } => Some(claimed),
            _ => None,
        }
    }

    /// The long form of the error, when there is more than its message
    /// (abi_stable's full layout report).
    pub fn detail(&self) -> Option<&str> {
        match self {
            LoadError::Layout { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.file_name().unwrap_or(p.as_os_str()).to_string_lossy())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lists the plugin folders under an `emulators/` folder, sorted by type:
/// every `<type>/emulator` directory one level down. Symbolic links are
/// followed (a `<type>` folder linked from elsewhere is found).
pub fn find_plugin_folders(emulators_dir: &Path) -> Result<Vec<PluginFolder>, LoadError> {
    let io_error = |source| LoadError::Io {
        path: emulators_dir.to_path_buf(),
        source,
    };
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(emulators_dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        // `is_dir` follows symbolic links, for `<type>` and `emulator` alike.
        let folder = entry.path().join("emulator");
        if !folder.is_dir() {
            continue;
        }
        folders.push(PluginFolder {
            ip_block_type: entry.file_name().to_string_lossy().into_owned(),
            folder,
        });
    }
    folders.sort_by(|a, b| a.ip_block_type.cmp(&b.ip_block_type));
    Ok(folders)
}

/// The one plugin library in an emulator folder (other files are data).
pub fn find_library(folder: &Path) -> Result<PathBuf, LoadError> {
    let io_error = |source| LoadError::Io {
        path: folder.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        let is_library = path.is_file()
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(LIBRARY_SUFFIX));
        if is_library {
            found.push(path);
        }
    }
    found.sort();
    match found.len() {
        0 => Err(LoadError::NoLibrary {
            folder: folder.to_path_buf(),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(LoadError::SeveralLibraries {
            folder: folder.to_path_buf(),
            found,
        }),
    }
}

/// A plugin library loaded and checked for compatibility.
#[derive(Clone)]
pub struct LoadedLibrary {
    /// The file it was loaded from (not the private copy).
    pub path: PathBuf,
    /// The SDK version that built it.
    pub sdk_version: SdkVersion,
    /// How it was built, from its build record (SDK 1.2 and later;
    /// `None` for older plugins).
    pub build: Option<PluginBuild>,
    /// Its root module (read only through [`crate::plugin`]).
    pub(in crate::plugin) module: PluginModuleRef,
    /// Its restore for hot-swap (plugins built with SDK 1.2 or later).
    pub(in crate::plugin) restore: Option<RestoreFn>,
}

/// A plugin's build record (`bitstream_sdk::ffi::PLUGIN_INFO_SYMBOL`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PluginBuild {
    /// The SDK version that built it.
    pub sdk_version: String,
    /// Cargo's profile (`debug`, `release`).
    pub profile: String,
    /// The opt-level (`0` to `3`, `s`, `z`).
    pub opt_level: String,
    /// Whether debug assertions were on in the plugin crate.
    pub debug_assertions: bool,
}

impl PluginBuild {
    /// Whether the code was compiled without optimization.
    pub fn unoptimized(&self) -> bool {
        self.opt_level == "0"
    }
}

impl LoadedLibrary {
    /// The plugin crate's name, as it declares it.
    pub fn plugin_name(&self) -> &'static str {
        self.module.plugin_name().as_str()
    }

    /// Whether both are the same loaded library (one `dlopen`): two loads of
    /// one file are not.
    pub fn same_module(&self, other: &LoadedLibrary) -> bool {
        std::ptr::eq(self.module.0.to_raw_ptr(), other.module.0.to_raw_ptr())
    }

    /// The plugin crate's version, as it declares it.
    pub fn plugin_version(&self) -> &'static str {
        self.module.plugin_version().as_str()
    }
}

impl std::fmt::Debug for LoadedLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedLibrary")
            .field("path", &self.path)
            .field("sdk_version", &self.sdk_version)
            .finish_non_exhaustive()
    }
}

/// Loads a plugin library from `path` (see the module documentation).
/// Every call is a separate library; [`shared::load_library_shared`] loads
/// each file once per process.
pub fn load_library(path: &Path) -> Result<LoadedLibrary, LoadError> {
    let mut original = std::fs::File::open(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_library_from(path, &mut original)
}

/// [`load_library`] of the bytes `source` gives, named `path` in errors.
fn load_library_from(path: &Path, source: &mut dyn Read) -> Result<LoadedLibrary, LoadError> {
    let library = open_private_copy(path, source)?;
    let header = read_header(path, &library)?;
    let build = read_build_record(&library);
    let set_extensions = find_set_extensions(&library);
    let restore = read_restore(&library);
    // The library is never closed: everything abi_stable returns from it
    // is `'static`.
    std::mem::forget(library);

    let sdk_version = check_sdk_version(path, header)?;
    let module = header
        .init_root_module::<PluginModuleRef>()
        .map_err(|err| match err {
            LibraryError::AbiInstability(_) => {
                let mismatch = layout::describe(header);
                LoadError::Layout {
                    path: path.to_path_buf(),
                    host_sdk: bitstream_sdk::SDK_VERSION,
                    plugin_sdk: sdk_version.to_string(),
                    summary: mismatch.summary,
                    detail: mismatch.detail.unwrap_or_else(|| err.to_string()),
                }
            }
            _ => LoadError::RootModule {
                path: path.to_path_buf(),
                message: err.to_string(),
            },
        })?;
    if let Some(set_extensions) = set_extensions {
        set_extensions(*super::host_calls::HOST_EXTENSIONS);
    }
    Ok(LoadedLibrary {
        path: path.to_path_buf(),
        sdk_version,
        build,
        module,
        restore,
    })
}

/// The plugin's build record, when it exports one (SDK 1.2 and later) and
/// it reads as one.
fn read_build_record(library: &Library) -> Option<PluginBuild> {
    let symbol = format!("{PLUGIN_INFO_SYMBOL}\0");
    // SAFETY: SDK 1.2 plugins export this symbol as
    // `extern "C" fn() -> *const c_char` (`export_plugin_module!`).
    let info =
        unsafe { library.get::<extern "C" fn() -> *const c_char>(symbol.as_bytes()) }.ok()?;
    let text = info();
    if text.is_null() {
        return None;
    }
    // SAFETY: the function returns a NUL-terminated string the plugin keeps
    // for the life of the library, which is never unloaded.
    let text = unsafe { CStr::from_ptr(text) };
    serde_json::from_slice(text.to_bytes()).ok()
}

type SetExtensions = extern "C" fn(HostExtensionsRef);

/// The plugin's entry for the host's extension table (SDK 1.2 and later).
fn find_set_extensions(library: &Library) -> Option<SetExtensions> {
    let symbol = format!("{SET_HOST_EXTENSIONS_SYMBOL}\0");
    // SAFETY: SDK 1.2 plugins export this symbol as
    // `extern "C" fn(HostExtensionsRef)` (`export_plugin_module!`); the
    // library is never unloaded, so the pointer stays valid.
    unsafe { library.get::<SetExtensions>(symbol.as_bytes()) }
        .ok()
        .map(|f| *f)
}

/// The plugin's restore, when it exports one (SDK 1.2 and later).
fn read_restore(library: &Library) -> Option<RestoreFn> {
    let symbol = format!("{RESTORE_SYMBOL}\0");
    // SAFETY: `export_plugin!` exports this symbol as a function of type
    // `RestoreFn` (it checks the type where it defines it); the library is
    // never closed, so the pointer stays valid.
    unsafe { library.get::<RestoreFn>(symbol.as_bytes()) }
        .ok()
        .map(|f| *f)
}

fn copy_dir() -> PathBuf {
    std::env::var_os(COPY_DIR_ENV).map_or_else(std::env::temp_dir, PathBuf::from)
}

/// Copies the file into a private, anonymous in-memory file (a memfd:
/// nothing on any file system, so a process that dies while loading leaves
/// nothing behind), checks the copy's ELF headers (architecture, type, and
/// that every segment and section lies inside the file, since mapping a
/// truncated library kills the process with SIGBUS), and opens the copy
/// through `/proc/self/fd/<n>`. Checking the copy means the bytes checked
/// are the bytes loaded, whatever happens to the original. The memfd's
/// descriptor stays open for as long as the process lives (the library is
/// never unloaded either), which also keeps its `/proc/self/fd` name unique,
/// so a second load of the same file is a separate library.
///
/// Where memfds are unavailable, the copy is a temporary file in
/// [`COPY_DIR_ENV`] (or the temporary folder), removed once mapped.
fn open_private_copy(path: &Path, original: &mut dyn Read) -> Result<Library, LoadError> {
    let stem = path
        .file_stem()
        .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
    let memfd = std::ffi::CString::new(format!("bitstream-{stem}"))
        .ok()
        .and_then(|name| {
            nix::sys::memfd::memfd_create(&name, nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC).ok()
        });
    let Some(memfd) = memfd else {
        return open_file_copy(path, &stem, original);
    };
    let copy_error = |source| LoadError::Copy {
        path: path.to_path_buf(),
        copy_dir: PathBuf::from("(an anonymous in-memory file)"),
        source,
    };
    let mut copy = std::fs::File::from(memfd);
    std::io::copy(original, &mut copy).map_err(copy_error)?;
    check_copy(path, &copy)?;
    let proc_path = PathBuf::from(format!("/proc/self/fd/{}", copy.as_raw_fd()));
    // SAFETY: loading a library runs its initializers. Plugins are trusted
    // code (see ARCHITECTURE.md); the validator runs this in a child process
    // so that a crashing initializer only takes the child down.
    let opened = unsafe { Library::open(Some(&proc_path), RTLD_NOW | RTLD_LOCAL) };
    let library = opened.map_err(|err| classify_open_error(path, &proc_path, &err.to_string()))?;
    // Kept open for good: see above.
    std::mem::forget(copy);
    Ok(library)
}

/// The ELF checks of [`open_private_copy`], on the copy.
fn check_copy(path: &Path, copy: &std::fs::File) -> Result<(), LoadError> {
    let unloadable = |reason| LoadError::Unloadable {
        path: path.to_path_buf(),
        reason,
    };
    let mut header = Vec::with_capacity(elf::HEADER_LEN);
    let mut reader = copy;
    reader
        .seek(SeekFrom::Start(0))
        .and_then(|_| reader.take(elf::HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    elf::preflight(&header).map_err(unloadable)?;
    let cache = object::read::ReadCache::new(copy);
    elf::check_extents(&cache).map_err(unloadable)
}

/// [`open_private_copy`] without memfds: a temporary file, removed once
/// mapped (a process that dies while loading leaves it behind).
fn open_file_copy(path: &Path, stem: &str, original: &mut dyn Read) -> Result<Library, LoadError> {
    let copy_dir = copy_dir();
    let copy_error = |source| LoadError::Copy {
        path: path.to_path_buf(),
        copy_dir: copy_dir.clone(),
        source,
    };
    let copy = tempfile::Builder::new()
        .prefix(&format!("bitstream-{stem}-"))
        .suffix(LIBRARY_SUFFIX)
        .tempfile_in(&copy_dir)
        .map_err(copy_error)?;
    std::io::copy(original, &mut copy.as_file()).map_err(copy_error)?;
    let file = std::fs::File::open(copy.path()).map_err(copy_error)?;
    check_copy(path, &file)?;
    // SAFETY: as in `open_private_copy`.
    let opened = unsafe { Library::open(Some(copy.path()), RTLD_NOW | RTLD_LOCAL) };
    opened.map_err(|err| classify_open_error(path, copy.path(), &err.to_string()))
    // `copy` is dropped here, which removes the file; the mapping stays.
}

fn classify_open_error(path: &Path, copy: &Path, message: &str) -> LoadError {
    // dlerror names the private copy; name the user's file instead.
    let message = message.replace(
        &copy.to_string_lossy().into_owned(),
        &path.to_string_lossy(),
    );
    if let Some(rest) = message.split("undefined symbol: ").nth(1) {
        let symbol = rest
            .split([' ', ',', ')'])
            .next()
            .unwrap_or(rest)
            .to_owned();
        return LoadError::UndefinedSymbol {
            path: path.to_path_buf(),
            symbol,
        };
    }
    LoadError::Open {
        path: path.to_path_buf(),
        message,
    }
}

fn read_header(path: &Path, library: &Library) -> Result<&'static LibHeader, LoadError> {
    let symbol = format!("{ROOT_MODULE_SYMBOL}\0");
    // SAFETY: the symbol abi_stable exports is a `static LibHeader`, whose
    // first field is its `AbiHeader`; abi_stable itself reads it through
    // this pointer type. `upgrade` checks the header's magic string and
    // abi_stable version before anything else is read through it.
    let header = unsafe { library.get::<AbiHeaderRef>(symbol.as_bytes()) }
        .map(|symbol| *symbol)
        .map_err(|_| LoadError::NotAPlugin {
            path: path.to_path_buf(),
        })?;
    header.upgrade().map_err(|err| LoadError::AbiStable {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

fn check_sdk_version(path: &Path, header: &LibHeader) -> Result<SdkVersion, LoadError> {
    let strings = header.version_strings();
    let claimed = strings.version.as_str();
    let plugin = SdkVersion::parse(claimed).ok_or_else(|| LoadError::SdkVersion {
        path: path.to_path_buf(),
        claimed: claimed.to_owned(),
        message: format!("its SDK version \"{claimed}\" is not major.minor.patch"),
    })?;
    let host = SdkVersion::current();
    check_compatible(plugin, host).map_err(|err| LoadError::SdkVersion {
        path: path.to_path_buf(),
        claimed: claimed.to_owned(),
        message: err.into(),
    })?;
    debug_assert_eq!(PluginModuleRef::NAME, "bitstream_plugin");
    Ok(plugin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_symbols_are_named() {
        let err = classify_open_error(
            Path::new("/pkg/emulators/x/emulator/libx.so"),
            Path::new("/tmp/bitstream-libx-123.so"),
            "/tmp/bitstream-libx-123.so: undefined symbol: missing_fn",
        );
        assert_eq!(
            err.to_string(),
            "/pkg/emulators/x/emulator/libx.so: undefined symbol `missing_fn`: the plugin needs a function or \
             static that no loaded library defines; link what defines it or remove the reference"
        );
    }

    #[test]
    fn folders_need_exactly_one_library() {
        let dir = tempfile::tempdir().unwrap();
        let err = find_library(dir.path()).unwrap_err();
        assert!(matches!(err, LoadError::NoLibrary { .. }), "{err}");
        std::fs::write(dir.path().join("liba.so"), b"").unwrap();
        std::fs::write(dir.path().join("data.json"), b"{}").unwrap();
        assert_eq!(
            find_library(dir.path()).unwrap(),
            dir.path().join("liba.so")
        );
        std::fs::write(dir.path().join("libb.so"), b"").unwrap();
        let err = find_library(dir.path()).unwrap_err().to_string();
        assert!(err.ends_with("2 plugin libraries where exactly one is expected (liba.so, libb.so); remove all but one"), "{err}");
    }

    #[test]
    fn plugin_folders_are_found_by_layout() {
        let dir = tempfile::tempdir().unwrap();
        for ty in ["b_type", "a_type"] {
            std::fs::create_dir_all(dir.path().join(ty).join("emulator")).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("c_type").join("not_emulator")).unwrap();
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        let found = find_plugin_folders(dir.path()).unwrap();
        let types: Vec<_> = found.iter().map(|f| f.ip_block_type.as_str()).collect();
        assert_eq!(types, ["a_type", "b_type"]);
    }
}
