//! The time a Smart Device `set`/`write` stamps into `last_update` /
//! `last_write` (seconds since the Unix epoch, as an `f64`).
//!
//! Reading a clock costs about 10 ns even through the vDSO's coarse clock
//! (measured on the 2-CPU VMs we benchmark on), a third of a whole shared
//! `set`. A process that sets often can run a [`ClockTicker`]: one thread
//! that stores the precise time every millisecond into a process-wide
//! cache, so a stamp is a single atomic load. The stamps then lag real time
//! by at most the period plus the thread's wake-up delay, finer than the
//! coarse clock they replace (whose resolution is the kernel tick, 4 ms on
//! these machines); the intervals they serve are 40 ms and up.
//!
//! Without a ticker, [`now`] reads `CLOCK_REALTIME_COARSE`. Each copy of
//! this crate has its own cache: a plugin's copy (inside its `cdylib`) sees
//! no ticker started by the host and falls back to the clock, which is
//! correct, only slower.
//!
//! (The `coarsetime` crate caches the time the same way, but its updater
//! does not tell readers whether it runs, so stamps would silently freeze
//! when nobody started it, and a forked child would keep the parent's last
//! value for ever; both are handled here.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the ticker refreshes the cached time.
pub const TICK_PERIOD: Duration = Duration::from_millis(1);

/// The cached time's `f64` bits; `0` while no ticker runs in this process.
static CACHED: AtomicU64 = AtomicU64::new(0);

/// The running ticker, shared by every [`ClockTicker`] handle.
static TICKER: Mutex<Option<Ticker>> = Mutex::new(None);

struct Ticker {
    /// Live [`ClockTicker`] handles.
    users: usize,
    /// Tells the thread to stop (`true`) and wakes it.
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
    /// The process that started it: after a `fork` the child has the
    /// state but not the thread.
    pid: u32,
}

/// Seconds since the Unix epoch: the ticker's cached time when one runs in
/// this process, else the coarse real-time clock.
///
/// ```
/// let t = bitstream_buffer::clock::now();
/// assert!(t > 1.6e9);
/// ```
#[inline]
pub fn now() -> f64 {
    let cached = CACHED.load(Ordering::Relaxed);
    if cached != 0 {
        return f64::from_bits(cached);
    }
    read_clock(libc::CLOCK_REALTIME_COARSE)
}

/// Whether stamps currently come from a ticker's cache.
pub fn ticking() -> bool {
    CACHED.load(Ordering::Relaxed) != 0
}

#[inline]
fn read_clock(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used are
    // constants Linux supports.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// A handle on the process's clock ticker: while at least one handle lives,
/// a thread refreshes the cached time every [`TICK_PERIOD`] and [`now`] is
/// one atomic load. Handles share one thread; dropping the last one stops
/// it (within a period) and stamps go back to reading the clock.
///
/// Start it from the program (the engine does, while it has Smart Device
/// buffers), not from plugin code: a plugin's thread would outlive the
/// unloading of its library if a handle were leaked.
///
/// ```
/// use bitstream_buffer::clock::{self, ClockTicker};
///
/// let ticker = ClockTicker::start().unwrap();
/// assert!(clock::ticking());
/// let cached = clock::now();
/// let precise = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH)
///     .unwrap()
///     .as_secs_f64();
/// assert!((precise - cached).abs() < 1.0);
/// drop(ticker);
/// ```
#[derive(Debug)]
#[must_use = "the ticker stops when the last handle is dropped"]
pub struct ClockTicker {
    _private: (),
}

impl ClockTicker {
    /// Starts the ticker, or joins the one already running. Fails only if
    /// the thread cannot be spawned.
    pub fn start() -> std::io::Result<ClockTicker> {
        static AT_FORK: Once = Once::new();
        AT_FORK.call_once(|| {
            // SAFETY: registering a handler that only stores to an atomic,
            // which is async-signal-safe as a fork child handler must be.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
            if rc != 0 {
                log::warn!("clock ticker: pthread_atfork failed ({rc}); a forked child may read stale stamps");
            }
        });
        let mut ticker = TICKER.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = std::process::id();
        match ticker.as_mut() {
            Some(running) if running.pid == pid => running.users += 1,
            _ => {
                // None, or the state a forked child inherited without its
                // thread: start one of our own (the inherited handle is
                // detached, it has no thread here to join).
                CACHED.store(
                    read_clock(libc::CLOCK_REALTIME).to_bits(),
                    Ordering::Relaxed,
                );
                let stop = Arc::new((Mutex::new(false), Condvar::new()));
                let thread = {
                    let stop = Arc::clone(&stop);
                    std::thread::Builder::new()
                        .name("buffer-clock".into())
                        .spawn(move || tick(&stop))
                };
                let thread = match thread {
                    Ok(thread) => thread,
                    Err(e) => {
                        CACHED.store(0, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                *ticker = Some(Ticker {
                    users: 1,
                    stop,
                    thread,
                    pid,
                });
            }
        }
        Ok(ClockTicker { _private: () })
    }
}

impl Drop for ClockTicker {
    fn drop(&mut self) {
        let mut ticker = TICKER.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(running) = ticker.as_mut() else {
            return;
        };
        running.users = running.users.saturating_sub(1);
        if running.users > 0 {
            return;
        }
        if let Some(running) = ticker.take() {
            {
                let (stopped, wake) = &*running.stop;
                *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
                wake.notify_one();
            }
            if running.pid == std::process::id() && running.thread.join().is_err() {
                log::warn!("clock ticker: the thread panicked");
            }
            // After the join: the thread can no longer overwrite it.
            CACHED.store(0, Ordering::Relaxed);
        }
    }
}

/// The ticker thread: refresh, then sleep a period unless told to stop.
fn tick(stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    let mut stopped = stopped.lock().unwrap_or_else(PoisonError::into_inner);
    while !*stopped {
        CACHED.store(
            read_clock(libc::CLOCK_REALTIME).to_bits(),
            Ordering::Relaxed,
        );
        stopped = wake
            .wait_timeout(stopped, TICK_PERIOD)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Fork child handler: the ticker thread was not copied, so stop trusting
/// the cache (the child reads the clock until it starts a ticker).
extern "C" fn forget_in_child() {
    CACHED.store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn precise() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64()
    }

    /// Serializes the tests that start and stop the process-wide ticker.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn the_cache_follows_the_clock_and_stops_with_the_last_handle() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let first = ClockTicker::start().unwrap();
        let second = ClockTicker::start().unwrap();
        assert!(ticking());
        // The cache moves forward with real time, staying close to it
        // (waiting up to 2 s: a loaded machine may delay the thread).
        let start = now();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while now() <= start && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let later = now();
        assert!(
            later > start,
            "the cache did not move: {start} then {later}"
        );
        let lag = precise() - later;
        // A period plus wake-up delay; generous for a loaded CI machine.
        assert!((-0.001..0.5).contains(&lag), "cached time lags by {lag} s");
        drop(first);
        assert!(ticking(), "one handle is still alive");
        drop(second);
        assert!(!ticking());
        // Back on the coarse clock (resolution a few ms).
        assert!((precise() - now()).abs() < 0.1);
    }

    #[test]
    fn a_forked_child_does_not_trust_the_parents_cache() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let ticker = ClockTicker::start().unwrap();
        assert!(ticking());
        // SAFETY: the child only reads an atomic and calls `_exit`, both
        // async-signal-safe.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = if ticking() { 1 } else { 0 };
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is writable.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "the child still saw the cache"
        );
        assert!(ticking(), "the parent keeps its ticker");
        drop(ticker);
    }
}
