//! The process's open-file limit and what the server makes of it.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The soft limit is raised up to this (or the hard limit, if lower).
const WANTED_DESCRIPTORS: u64 = 65_536;

/// Raises the soft open-file limit towards the hard one (up to
/// [`WANTED_DESCRIPTORS`]) and answers the limit in force, if it can be read.
pub fn open_file_limit() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let wanted = hard.min(WANTED_DESCRIPTORS);
    if soft < wanted && setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).is_ok() {
        tracing::debug!("open-file limit raised from {soft} to {wanted}");
        return Some(wanted);
    }
    Some(soft)
}
