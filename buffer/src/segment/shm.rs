//! Segments in POSIX shared memory (`/dev/shm/<name>`): names, creating,
//! attaching, listing and removing them, and the mappings behind them.

use std::ffi::CString;
use std::io;
use std::mem::ManuallyDrop;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::{self, NonNull};

use super::error::{io_error, SegmentError};
use super::format::read_type_name;
use super::format::{MAX_NAME_LEN, SHM_DIR};
use super::header::{check_header, init_segment, SegmentSpec, Sizes};
use super::memory::{Backing, Segment};

/// Checks a segment name: non-empty, at most [`MAX_NAME_LEN`] bytes, only
/// ASCII letters, digits, `.`, `_` and `-` (so no `/` and no NUL), and not
/// made of dots only (`.`, `..`).
pub fn validate_name(name: &str) -> Result<(), SegmentError> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name.len() > MAX_NAME_LEN {
        "the name is too long"
    } else if name.contains('/') {
        "the name contains '/'"
    } else if name.contains('\0') {
        "the name contains a NUL byte"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "the name contains a character outside [A-Za-z0-9._-]"
    } else if name.bytes().all(|b| b == b'.') {
        "`.` and `..` are not names"
    } else {
        return Ok(());
    };
    Err(SegmentError::BadName {
        name: name.to_owned(),
        reason,
    })
}

/// `shm_open(path, flags, mode)` as an owned descriptor: an existing name
/// (with `O_EXCL`) is [`SegmentError::Exists`], a missing one
/// [`SegmentError::NotFound`].
fn shm_open(
    name: &str,
    path: &std::ffi::CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> Result<OwnedFd, SegmentError> {
    // SAFETY: `path` is a NUL-terminated string.
    let fd = unsafe { libc::shm_open(path.as_ptr(), flags, mode) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        let name = name.to_owned();
        return Err(match err.raw_os_error() {
            Some(libc::EEXIST) => SegmentError::Exists { name },
            Some(libc::ENOENT) => SegmentError::NotFound { name },
            _ => io_error(&name, "shm_open", err),
        });
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The `/name` form that `shm_open` takes, for a name that passed [`validate_name`].
pub(super) fn shm_path(name: &str) -> Result<CString, SegmentError> {
    validate_name(name)?;
    CString::new(format!("/{name}")).map_err(|_| SegmentError::BadName {
        name: name.to_owned(),
        reason: "the name contains a NUL byte",
    })
}

/// A shared mapping not yet handed to a [`Segment`]; unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn map(fd: &OwnedFd, len: usize, label: &str) -> Result<Mapping, SegmentError> {
        // SAFETY: a fresh shared mapping of an open descriptor; the kernel
        // picks the address, so no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io_error(label, "mmap", io::Error::last_os_error()));
        }
        match NonNull::new(p.cast::<u8>()) {
            Some(base) => Ok(Mapping { base, len }),
            None => Err(io_error(
                label,
                "mmap",
                io::Error::other("mapped at address 0"),
            )),
        }
    }

    fn into_raw(self) -> (NonNull<u8>, usize) {
        let this = ManuallyDrop::new(self);
        (this.base, this.len)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what `mmap` returned and nothing
        // refers to the mapping any more.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Removes a shared memory object on drop unless disarmed (creation cleanup).
struct UnlinkOnFailure<'a> {
    path: &'a CString,
    armed: bool,
}

impl Drop for UnlinkOnFailure<'_> {
    fn drop(&mut self) {
        if self.armed {
            // SAFETY: `path` is a NUL-terminated string.
            unsafe { libc::shm_unlink(self.path.as_ptr()) };
        }
    }
}

impl Segment {
    /// Creates the shared segment `name` (`/dev/shm/<name>`, mode `0600`)
    /// for a buffer of type `spec`, zeroed.
    ///
    /// Fails with [`SegmentError::Exists`] if the name is taken. On any
    /// failure after the object was created, it is removed again.
    pub fn create_shared(name: &str, spec: &SegmentSpec) -> Result<Segment, SegmentError> {
        let path = shm_path(name)?;
        let sizes = Sizes::for_spec(name, spec)?;
        let fd = shm_open(
            name,
            &path,
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )?;
        let mut cleanup = UnlinkOnFailure {
            path: &path,
            armed: true,
        };
        // SAFETY: plain system calls on a descriptor we own.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o600) } != 0 {
            return Err(io_error(name, "fchmod", io::Error::last_os_error()));
        }
        // `sizes.len <= isize::MAX`, so it fits an off_t (i64).
        // SAFETY: as above.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), sizes.len as libc::off_t) } != 0 {
            return Err(io_error(name, "ftruncate", io::Error::last_os_error()));
        }
        let (base, map_len) = Mapping::map(&fd, sizes.len, name)?.into_raw();
        drop(fd);
        let backing = Backing::Shared {
            name: name.to_owned(),
            map_len,
        };
        let segment = Segment::assemble(base, &sizes, spec.type_hash, backing);
        // SAFETY: a page-aligned mapping of `sizes.len` bytes of a file that
        // `ftruncate` just zero-filled; others see magic 0 until it is done.
        unsafe { init_segment(name, base.as_ptr(), &sizes, spec)? };
        cleanup.armed = false;
        Ok(segment)
    }

    /// Attaches to the shared segment `name`, checking that it holds the
    /// buffer type `expected` (name, hash and data size).
    ///
    /// Fails with [`SegmentError::TypeMismatch`] when the type differs, and
    /// with the errors of [`Segment::open_shared`].
    pub fn attach_shared(name: &str, expected: &SegmentSpec) -> Result<Segment, SegmentError> {
        Sizes::for_spec(name, expected)?;
        let segment = Self::open_shared(name)?;
        // SAFETY: the header was validated by `open_shared`.
        let found_type = unsafe { read_type_name(segment.base.as_ptr()) }.unwrap_or_default();
        if found_type != expected.type_name.as_bytes()
            || segment.type_hash != expected.type_hash
            || segment.data_size != expected.data_size
        {
            return Err(SegmentError::TypeMismatch {
                name: name.to_owned(),
                expected_type: expected.type_name.to_owned(),
                expected_hash: expected.type_hash,
                found_type: String::from_utf8_lossy(&found_type).into_owned(),
                found_hash: segment.type_hash,
            });
        }
        Ok(segment)
    }

    /// Attaches to the shared segment `name` whatever type it holds (for
    /// tools that read the type from the header).
    ///
    /// Fails with [`SegmentError::NotFound`], [`SegmentError::NotInitialized`]
    /// (still being created), [`SegmentError::BadMagic`] (not a segment),
    /// [`SegmentError::BadVersion`] or [`SegmentError::Corrupt`].
    ///
    /// The file must not be truncated while mapped (the process would get
    /// `SIGBUS`); segments made by this crate never are.
    pub fn open_shared(name: &str) -> Result<Segment, SegmentError> {
        let path = shm_path(name)?;
        let fd = shm_open(name, &path, libc::O_RDWR | libc::O_CLOEXEC, 0)?;
        let mut stat = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `stat` is writable storage for a `struct stat`.
        if unsafe { libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
            return Err(io_error(name, "fstat", io::Error::last_os_error()));
        }
        // SAFETY: `fstat` succeeded, so it filled `stat`.
        let size = unsafe { stat.assume_init() }.st_size;
        if size == 0 {
            // Created, not yet sized by `ftruncate`.
            return Err(SegmentError::NotInitialized {
                name: name.to_owned(),
            });
        }
        let Ok(file_len) = usize::try_from(size) else {
            return Err(SegmentError::Corrupt {
                name: name.to_owned(),
                reason: format!("its size {size} is invalid"),
            });
        };
        let mapping = Mapping::map(&fd, file_len, name)?;
        drop(fd);
        // SAFETY: a page-aligned mapping of `file_len` readable bytes.
        let info = unsafe { check_header(mapping.base.as_ptr(), file_len, name)? };
        let (base, map_len) = mapping.into_raw();
        let backing = Backing::Shared {
            name: name.to_owned(),
            map_len,
        };
        Ok(Segment::assemble(
            base,
            &Sizes::of_header(&info),
            info.type_hash,
            backing,
        ))
    }

    /// Removes the shared segment `name` (processes that attached keep
    /// their mappings). Fails with [`SegmentError::NotFound`] if there is none.
    pub fn unlink(name: &str) -> Result<(), SegmentError> {
        let path = shm_path(name)?;
        // SAFETY: `path` is a NUL-terminated string.
        if unsafe { libc::shm_unlink(path.as_ptr()) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        Err(if err.raw_os_error() == Some(libc::ENOENT) {
            SegmentError::NotFound {
                name: name.to_owned(),
            }
        } else {
            io_error(name, "shm_unlink", err)
        })
    }

    /// Gives the shared memory object `from` the name `to`, atomically
    /// replacing an object already named `to` (its mappings stay valid; a
    /// process that opens `to` from now on gets the object that was `from`).
    /// For a segment that replaces another one under the same name. Linux
    /// keeps POSIX shared memory objects as files of `/dev/shm`, where the
    /// rename is `rename(2)`.
    pub fn rename_shared(from: &str, to: &str) -> Result<(), SegmentError> {
        validate_name(from)?;
        validate_name(to)?;
        let dir = std::path::Path::new(SHM_DIR);
        std::fs::rename(dir.join(from), dir.join(to)).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                SegmentError::NotFound {
                    name: from.to_owned(),
                }
            } else {
                io_error(from, "rename", err)
            }
        })
    }

    /// Names of the shared memory objects whose name starts with `prefix`,
    /// sorted. They are not necessarily segments: open them to find out.
    pub fn list_shared(prefix: &str) -> Result<Vec<String>, SegmentError> {
        let entries = std::fs::read_dir(SHM_DIR).map_err(|e| io_error(SHM_DIR, "listing", e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(SHM_DIR, "listing", e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && name.starts_with(prefix) && validate_name(&name).is_ok() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}
