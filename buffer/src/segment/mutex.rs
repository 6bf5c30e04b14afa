//! The segment's lock: a robust, recursive, process-shared pthread mutex in
//! the header. Initialising it, locking (with a timeout, and recovering a
//! lock whose holder died) and [`SegmentGuard`].

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, Ordering};

use super::error::SegmentError;
use super::format::header_offsets;
use super::memory::Segment;

/// Offset of the futex word (which holds the owner's thread id for robust
/// mutexes) inside `pthread_mutex_t`.
#[cfg(target_env = "musl")]
const FUTEX_WORD_OFFSET: usize = 4;
#[cfg(not(target_env = "musl"))]
const FUTEX_WORD_OFFSET: usize = 0;

/// Bits of a robust futex word that hold the owner's thread id.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// The bit the kernel sets in a robust futex word when its holder died.
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;

/// The largest thread id Linux can hand out (`PID_MAX_LIMIT`).
const MAX_TID: u32 = 4 * 1024 * 1024;

/// Who holds a segment's lock, read from the lock word without taking it
/// ([`Segment::lock_holder`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockHolder {
    /// The holding thread's id.
    pub tid: i32,
    /// Its process id, when the thread exists (in this pid namespace).
    pub pid: Option<i32>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) if pid == self.tid => write!(f, "process {pid}"),
            Some(pid) => write!(f, "process {pid} (thread {})", self.tid),
            None => write!(f, "thread {} (no longer visible from here)", self.tid),
        }
    }
}

/// The process id of thread `tid` (`Tgid` in `/proc/<tid>/status`), if
/// that thread exists.
fn process_of_thread(tid: u32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// What glibc's `pthread_mutex_t` holds where this format's checks look
/// (64-bit glibc: `__lock` at 0, `__owner` at 8, `__kind` at 16).
#[cfg(all(target_env = "gnu", target_pointer_width = "64"))]
mod glibc {
    /// Offset of `__owner` (the holder's thread id, or a marker).
    pub(super) const OWNER: usize = 8;
    /// Offset of `__kind` (type, robust, process-shared bits).
    pub(super) const KIND: usize = 16;
    /// `__owner` of a lock recovered but not made consistent.
    pub(super) const INCONSISTENT: u32 = 0x7fff_ffff;
    /// `__owner` of a lock that can no longer be used.
    pub(super) const NOT_RECOVERABLE: u32 = 0x7fff_fffe;
}

/// The `__kind` word of a mutex made by [`init_mutex`] in this process.
#[cfg(all(target_env = "gnu", target_pointer_width = "64"))]
fn reference_kind() -> Option<u32> {
    static KIND: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *KIND.get_or_init(|| {
        let mut mutex = MaybeUninit::<libc::pthread_mutex_t>::zeroed();
        // SAFETY: a zeroed, unused local mutex that never moves while it is
        // initialised, read and destroyed here.
        unsafe {
            init_mutex(mutex.as_mut_ptr()).ok()?;
            let kind = mutex
                .as_ptr()
                .cast::<u8>()
                .add(glibc::KIND)
                .cast::<u32>()
                .read_unaligned();
            libc::pthread_mutex_destroy(mutex.as_mut_ptr());
            Some(kind)
        }
    })
}

/// Checks the bytes of the mutex at `mutex` that can be checked without
/// taking it, so that a damaged lock is refused instead of making
/// `pthread_mutex_lock` wait forever or glibc abort: its kind must be the
/// one [`init_mutex`] makes, its owner field and lock word must hold
/// plausible thread ids, and a lock word naming a holder that does not
/// exist must carry the kernel's owner-died bit. Answers what is wrong.
///
/// A holder in another pid namespace cannot be seen from here and is
/// taken for a damaged lock word.
///
/// # Safety
/// `mutex` must point to the readable, 4-aligned bytes of a
/// `pthread_mutex_t` that others only change through pthread calls.
pub(super) unsafe fn check_mutex(mutex: *const u8) -> Result<(), String> {
    // SAFETY: the caller's contract; the words are aligned u32s inside the
    // mutex, read atomically as other processes may change them.
    let word = |offset: usize| unsafe {
        AtomicU32::from_ptr(mutex.add(offset).cast::<u32>().cast_mut()).load(Ordering::Acquire)
    };
    #[cfg(all(target_env = "gnu", target_pointer_width = "64"))]
    {
        let kind = word(glibc::KIND);
        if let Some(expected) = reference_kind() {
            if kind != expected {
                return Err(format!(
                    "its lock is damaged: the mutex kind is {kind:#x}, not the robust, recursive, \
                     process-shared kind {expected:#x} this format uses"
                ));
            }
        }
        let owner = word(glibc::OWNER);
        if owner > MAX_TID && owner != glibc::INCONSISTENT && owner != glibc::NOT_RECOVERABLE {
            return Err(format!(
                "its lock is damaged: the mutex's owner field is {owner:#x}, which is no thread id"
            ));
        }
    }
    let lock = word(FUTEX_WORD_OFFSET);
    let tid = lock & FUTEX_TID_MASK;
    if tid > MAX_TID {
        return Err(format!(
            "its lock is damaged: the lock word {lock:#x} names thread {tid}, beyond the largest \
             thread id"
        ));
    }
    // SAFETY: `gettid` has no preconditions.
    let own = tid as libc::pid_t == unsafe { libc::gettid() };
    if tid != 0 && lock & FUTEX_OWNER_DIED == 0 && !own && process_of_thread(tid).is_none() {
        // The holder may have just unlocked and exited: look again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        if word(FUTEX_WORD_OFFSET) == lock && process_of_thread(tid).is_none() {
            return Err(format!(
                "its lock is damaged: the lock word {lock:#x} names thread {tid} as the holder, \
                 but no such thread exists and the kernel did not mark it dead"
            ));
        }
    }
    Ok(())
}

/// Initialises a robust, recursive, process-shared mutex; returns the errno on failure.
///
/// # Safety
/// `mutex` must be valid for writes of a `pthread_mutex_t`, not in use, and
/// never move afterwards.
pub(super) unsafe fn init_mutex(mutex: *mut libc::pthread_mutex_t) -> Result<(), i32> {
    let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    let attr = attr.as_mut_ptr();
    // SAFETY: `attr` points to writable storage for an attribute object,
    // initialised by `pthread_mutexattr_init` before any other use and
    // destroyed once; the caller vouches for `mutex`.
    unsafe {
        let rc = libc::pthread_mutexattr_init(attr);
        if rc != 0 {
            return Err(rc);
        }
        let mut rc = libc::pthread_mutexattr_settype(attr, libc::PTHREAD_MUTEX_RECURSIVE);
        if rc == 0 {
            rc = libc::pthread_mutexattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED);
        }
        if rc == 0 {
            rc = libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST);
        }
        if rc == 0 {
            rc = libc::pthread_mutex_init(mutex, attr);
        }
        libc::pthread_mutexattr_destroy(attr);
        if rc == 0 {
            Ok(())
        } else {
            Err(rc)
        }
    }
}

impl Segment {
    #[inline]
    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: the mutex lies within the header.
        unsafe { self.base.as_ptr().add(header_offsets::MUTEX).cast() }
    }

    /// Locks the segment's mutex (recursive: a thread may lock it again
    /// while holding it). Released when the guard is dropped.
    ///
    /// If the previous holder died while holding the lock, the lock is
    /// recovered, a warning is logged and [`SegmentGuard::recovered`] is
    /// `true`: the data may be half-written. Fails with
    /// [`SegmentError::LockUnrecoverable`] or [`SegmentError::Lock`].
    #[inline]
    pub fn lock(&self) -> Result<SegmentGuard<'_>, SegmentError> {
        // SAFETY: the mutex was initialised by the segment's creator before
        // publishing the magic, and stays in place while `self` lives.
        let rc = unsafe { libc::pthread_mutex_lock(self.mutex()) };
        if rc == 0 {
            Ok(SegmentGuard {
                segment: self,
                recovered: false,
                _not_send: PhantomData,
            })
        } else {
            self.lock_failed(rc)
        }
    }

    /// Like [`Segment::lock`], but gives up after `timeout` (another
    /// process may hold the lock for long, e.g. stopped in a debugger):
    /// `Ok(None)` when the time ran out.
    pub fn lock_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<SegmentGuard<'_>>, SegmentError> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
        let total_ns = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
        let deadline = libc::timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(timeout.as_secs().min(i32::MAX as u64) as libc::time_t)
                .saturating_add((total_ns / 1_000_000_000) as libc::time_t),
            tv_nsec: (total_ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: as in `lock`; `deadline` is a valid timespec.
        let rc = unsafe { libc::pthread_mutex_timedlock(self.mutex(), &deadline) };
        match rc {
            0 => Ok(Some(SegmentGuard {
                segment: self,
                recovered: false,
                _not_send: PhantomData,
            })),
            libc::ETIMEDOUT => Ok(None),
            rc => self.lock_failed(rc).map(Some),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_failed(&self, rc: i32) -> Result<SegmentGuard<'_>, SegmentError> {
        match rc {
            libc::EOWNERDEAD => {
                // SAFETY: we now hold the mutex in the inconsistent state,
                // which is what `pthread_mutex_consistent` requires.
                let rc = unsafe { libc::pthread_mutex_consistent(self.mutex()) };
                if rc != 0 {
                    // SAFETY: we hold the mutex.
                    unsafe { libc::pthread_mutex_unlock(self.mutex()) };
                    return Err(SegmentError::Lock {
                        name: self.label(),
                        errno: rc,
                    });
                }
                log::warn!(
                    "segment `{}`: previous holder (a process that died) left the lock; recovered",
                    self.label()
                );
                Ok(SegmentGuard {
                    segment: self,
                    recovered: true,
                    _not_send: PhantomData,
                })
            }
            libc::ENOTRECOVERABLE => Err(SegmentError::LockUnrecoverable { name: self.label() }),
            errno => Err(SegmentError::Lock {
                name: self.label(),
                errno,
            }),
        }
    }

    /// Who holds the lock, read from its lock word without taking it
    /// (`None` when it is free, or its holder died and left it).
    ///
    /// ```
    /// use bitstream_buffer::segment::{Segment, SegmentSpec};
    /// let spec = SegmentSpec {
    ///     type_name: "t",
    ///     type_hash: 1,
    ///     data_size: 8,
    ///     data_align: 8,
    ///     spec_json: "{}",
    /// };
    /// let segment = Segment::new_local(&spec).unwrap();
    /// segment.check_lock().unwrap();
    /// assert_eq!(segment.lock_holder(), None);
    /// let guard = segment.lock().unwrap();
    /// let holder = segment.lock_holder().unwrap();
    /// assert_eq!(holder.pid, Some(std::process::id() as i32));
    /// drop(guard);
    /// ```
    pub fn lock_holder(&self) -> Option<LockHolder> {
        let tid = self.futex_owner(Ordering::Acquire);
        if tid == 0 {
            return None;
        }
        Some(LockHolder {
            tid: tid as i32,
            pid: process_of_thread(tid),
        })
    }

    /// Checks the lock's bytes as attaching does (see the module docs):
    /// [`SegmentError::Corrupt`] when they are damaged. Tools that lock a
    /// segment long after attaching call it again first.
    pub fn check_lock(&self) -> Result<(), SegmentError> {
        // SAFETY: the mutex lies within the header, aligned, while `self` lives.
        unsafe { check_mutex(self.mutex().cast::<u8>()) }.map_err(|reason| SegmentError::Corrupt {
            name: self.label(),
            reason,
        })
    }

    /// The thread id in the robust futex word (0: nobody holds the mutex).
    fn futex_owner(&self, order: Ordering) -> u32 {
        // SAFETY: the futex word is an aligned u32 inside the mutex, which
        // lies within the header; others only access it atomically.
        let word = unsafe {
            AtomicU32::from_ptr(
                self.mutex()
                    .cast::<u8>()
                    .add(FUTEX_WORD_OFFSET)
                    .cast::<u32>(),
            )
        }
        .load(order);
        word & FUTEX_TID_MASK
    }

    /// Whether a live thread of this process holds the mutex (read from the
    /// robust futex word, which holds the owner's thread id).
    pub(super) fn lock_held_in_this_process(&self) -> bool {
        let tid = self.futex_owner(Ordering::Relaxed);
        if tid == 0 {
            return false;
        }
        // SAFETY: `gettid` has no preconditions.
        if tid as libc::pid_t == unsafe { libc::gettid() } {
            return true;
        }
        std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
    }
}

/// The held lock of a [`Segment`] ([`Segment::lock`]); unlocks on drop.
///
/// Not `Send`: a pthread mutex must be unlocked by the thread that locked it.
pub struct SegmentGuard<'a> {
    segment: &'a Segment,
    recovered: bool,
    _not_send: PhantomData<*const ()>,
}

impl SegmentGuard<'_> {
    /// Whether this lock was recovered from a holder that died holding it
    /// (the data may be inconsistent).
    #[inline]
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The locked segment.
    #[inline]
    pub fn segment(&self) -> &Segment {
        self.segment
    }
}

impl std::fmt::Debug for SegmentGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentGuard")
            .field("segment", &self.segment.label())
            .field("recovered", &self.recovered)
            .finish()
    }
}

impl Drop for SegmentGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex (the guard is not Send) and
        // the segment outlives the guard.
        unsafe { libc::pthread_mutex_unlock(self.segment.mutex()) };
    }
}
