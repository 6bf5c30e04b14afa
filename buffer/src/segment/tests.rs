use std::io;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::shm::shm_path;
use super::*;

const TEST_SPEC: SegmentSpec<'static> = SegmentSpec {
    type_name: "test-counter",
    type_hash: 0x1234_5678_9abc_def0,
    data_size: 64,
    data_align: 8,
    spec_json: r#"{"params":[{"name":"count","type":"uint64"}],"note":"é"}"#,
};
const ENV: &str = "BSE_SEGMENT";
const ITERATIONS: u64 = 100_000;
const MARKER: u64 = 0xdead_beef_cafe_f00d;

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("bsetest-{}-{tag}-{n}", std::process::id())
}

/// Unlinks a test segment at the end of the test, even on failure.
struct Unlinker(String);
impl Drop for Unlinker {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

fn read_u64(seg: &Segment) -> u64 {
    // SAFETY: the data is 64-aligned and at least 8 bytes long.
    unsafe { ptr::read(seg.data().cast::<u64>()) }
}

fn write_u64(seg: &Segment, v: u64) {
    // SAFETY: as in `read_u64`.
    unsafe { ptr::write(seg.data().cast::<u64>(), v) }
}

fn increment(seg: &Segment, times: u64) {
    for _ in 0..times {
        let _guard = seg.lock().unwrap();
        write_u64(seg, read_u64(seg) + 1);
    }
}

/// Counts this process in at the data's second `u64` and waits until
/// `total` processes have, so that they really contend.
fn rendezvous(seg: &Segment, total: u64) {
    // SAFETY: the second u64 of the data is aligned and inside the
    // segment; every process accesses it only atomically.
    let ready = unsafe { AtomicU64::from_ptr(seg.data().cast::<u64>().add(1)) };
    ready.fetch_add(1, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ready.load(Ordering::SeqCst) < total {
        assert!(std::time::Instant::now() < deadline, "rendezvous timed out");
        std::thread::yield_now();
    }
}

fn spawn_child(test: &str, name: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::test_support::test_path(module_path!(), test),
            "--ignored",
            "--nocapture",
        ])
        .env(ENV, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn local_segment() {
    let seg = Segment::new_local(&TEST_SPEC).unwrap();
    assert!(!seg.is_shared());
    assert_eq!(seg.name(), None);
    assert_eq!(seg.data() as usize % DATA_ALIGN, 0);
    assert_eq!(
        seg.data() as usize - seg.base() as usize,
        SEGMENT_DATA_OFFSET
    );
    assert_eq!(seg.data_size(), 64);
    assert_eq!(seg.type_name(), "test-counter");
    assert_eq!(seg.type_hash(), TEST_SPEC.type_hash);
    assert_eq!(seg.spec_json(), TEST_SPEC.spec_json);
    assert_eq!(seg.creator_pid() as u32, std::process::id());
    let info = seg.header_info();
    assert_eq!(info.version, SEGMENT_VERSION);
    assert_eq!(info.header_size as usize, HEADER_SIZE);
    assert_eq!(info.data_offset, SEGMENT_DATA_OFFSET);
    assert_eq!(info.spec_offset, SEGMENT_DATA_OFFSET + 64);
    assert_eq!(info.spec_len, TEST_SPEC.spec_json.len());
    assert_eq!(seg.len(), info.total_len());
    // SAFETY: the magic lies at offset 0 of the segment.
    let magic = unsafe { ptr::read(seg.base().cast::<u64>()) };
    assert_eq!(magic.to_le_bytes(), *b"BSEMBUF1");

    let outer = seg.lock().unwrap();
    let inner = seg.lock().unwrap();
    assert!(!outer.recovered() && !inner.recovered());
    write_u64(&seg, 7);
    drop(inner);
    drop(outer);
    assert_eq!(read_u64(&seg), 7);

    // A borrowed view sees the same memory and leaves it alone on drop.
    // SAFETY: `seg` outlives the view and is a valid segment.
    let view = unsafe { Segment::from_raw(seg.base(), seg.len()) }.unwrap();
    assert_eq!(read_u64(&view), 7);
    assert_eq!(view.type_name(), "test-counter");
    drop(view.lock().unwrap());
    drop(view);
    assert_eq!(read_u64(&seg), 7);
    // SAFETY: as above; the length is too short.
    let short = unsafe { Segment::from_raw(seg.base(), seg.len() - 1) };
    assert!(
        matches!(short, Err(SegmentError::Corrupt { .. })),
        "{short:?}"
    );
    // SAFETY: as above; the pointer is misaligned (the error is reported first).
    let odd = unsafe { Segment::from_raw(seg.base().add(8), 8) };
    assert!(
        matches!(odd, Err(SegmentError::BadPointer { .. })),
        "{odd:?}"
    );
}

#[test]
fn bad_specs_are_errors() {
    let long = "x".repeat(MAX_TYPE_NAME + 1);
    for spec in [
        SegmentSpec {
            type_name: &long,
            ..TEST_SPEC
        },
        SegmentSpec {
            type_name: "",
            ..TEST_SPEC
        },
        SegmentSpec {
            data_align: 128,
            ..TEST_SPEC
        },
        SegmentSpec {
            data_align: 3,
            ..TEST_SPEC
        },
        SegmentSpec {
            data_size: usize::MAX - 10,
            ..TEST_SPEC
        },
    ] {
        let err = Segment::new_local(&spec).unwrap_err();
        assert!(matches!(err, SegmentError::BadSpec { .. }), "{err:?}");
    }
    let max = "y".repeat(MAX_TYPE_NAME);
    let seg = Segment::new_local(&SegmentSpec {
        type_name: &max,
        ..TEST_SPEC
    })
    .unwrap();
    assert_eq!(seg.type_name(), max);
}

#[test]
fn leaked_guard_keeps_memory() {
    let seg = Segment::new_local(&TEST_SPEC).unwrap();
    std::mem::forget(seg.lock().unwrap());
    drop(seg); // must not free memory that is on this thread's robust list
}

#[test]
fn shared_round_trip() {
    let name = unique("shared");
    let _unlink = Unlinker(name.clone());
    let a = Segment::create_shared(&name, &TEST_SPEC).unwrap();
    assert!(a.is_shared());
    assert_eq!(a.name(), Some(name.as_str()));
    let mode = std::fs::metadata(format!("{SHM_DIR}/{name}"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let b = Segment::attach_shared(&name, &TEST_SPEC).unwrap();
    assert_ne!(a.base(), b.base());
    write_u64(&a, 0x0102_0304_0506_0708);
    assert_eq!(read_u64(&b), 0x0102_0304_0506_0708);
    assert_eq!(b.header_info(), a.header_info());
    assert_eq!(b.spec_json(), TEST_SPEC.spec_json);
    assert_eq!(b.creator_pid() as u32, std::process::id());
    let g = b.lock().unwrap();
    let g2 = a.lock().unwrap(); // same thread, other mapping: recursive
    drop(g2);
    drop(g);

    let opened = Segment::open_shared(&name).unwrap();
    assert_eq!(opened.type_name(), "test-counter");
    assert!(
        Segment::list_shared(&format!("bsetest-{}-shared-", std::process::id()))
            .unwrap()
            .contains(&name)
    );

    let err = Segment::create_shared(&name, &TEST_SPEC).unwrap_err();
    assert!(matches!(err, SegmentError::Exists { .. }), "{err:?}");
    assert!(err.to_string().contains(&name));

    let other = SegmentSpec {
        type_name: "other-type",
        type_hash: 42,
        ..TEST_SPEC
    };
    let err = Segment::attach_shared(&name, &other).unwrap_err();
    assert!(matches!(err, SegmentError::TypeMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("test-counter") && msg.contains("other-type") && msg.contains(&name),
        "{msg}"
    );
    let err = Segment::attach_shared(
        &name,
        &SegmentSpec {
            type_hash: 1,
            ..TEST_SPEC
        },
    )
    .unwrap_err();
    assert!(matches!(err, SegmentError::TypeMismatch { .. }), "{err:?}");

    drop((a, b, opened));
    Segment::unlink(&name).unwrap();
    let err = Segment::unlink(&name).unwrap_err();
    assert!(matches!(err, SegmentError::NotFound { .. }), "{err:?}");
}

#[test]
fn missing_and_bad_names() {
    let name = unique("missing");
    let err = Segment::attach_shared(&name, &TEST_SPEC).unwrap_err();
    assert!(matches!(err, SegmentError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&name));
    let long = "a".repeat(MAX_NAME_LEN + 1);
    for bad in [
        "",
        "/lead",
        "a/b",
        "nul\0",
        "sp ace",
        "é",
        ".",
        "..",
        long.as_str(),
    ] {
        for err in [
            Segment::create_shared(bad, &TEST_SPEC).unwrap_err(),
            Segment::attach_shared(bad, &TEST_SPEC).unwrap_err(),
            Segment::open_shared(bad).unwrap_err(),
            Segment::unlink(bad).unwrap_err(),
        ] {
            assert!(
                matches!(err, SegmentError::BadName { .. }),
                "{bad:?}: {err:?}"
            );
        }
    }
    validate_name(&"a".repeat(MAX_NAME_LEN)).unwrap();
    validate_name("Ok.name_-1").unwrap();
}

/// Creates a plain shared memory object holding `bytes`.
fn raw_shm(name: &str, bytes: &[u8]) {
    let path = shm_path(name).unwrap();
    // SAFETY: NUL-terminated path; the descriptor is closed below.
    let fd = unsafe {
        libc::shm_open(
            path.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            0o600,
        )
    };
    assert!(fd >= 0, "{}", io::Error::last_os_error());
    // SAFETY: `bytes` is readable for its length; `fd` is ours.
    let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    assert_eq!(written, bytes.len() as isize);
}

#[test]
fn foreign_files_are_rejected() {
    let garbage = unique("garbage");
    let _u1 = Unlinker(garbage.clone());
    raw_shm(&garbage, &[0xab; 4096]);
    let err = Segment::open_shared(&garbage).unwrap_err();
    assert!(matches!(err, SegmentError::BadMagic { .. }), "{err:?}");
    assert!(err.to_string().contains(&garbage));
    let err = Segment::attach_shared(&garbage, &TEST_SPEC).unwrap_err();
    assert!(matches!(err, SegmentError::BadMagic { .. }), "{err:?}");

    let empty = unique("empty");
    let _u2 = Unlinker(empty.clone());
    raw_shm(&empty, &[]);
    let err = Segment::open_shared(&empty).unwrap_err();
    assert!(
        matches!(err, SegmentError::NotInitialized { .. }),
        "{err:?}"
    );

    let tiny = unique("tiny");
    let _u3 = Unlinker(tiny.clone());
    raw_shm(&tiny, &[1, 2, 3]);
    let err = Segment::open_shared(&tiny).unwrap_err();
    assert!(matches!(err, SegmentError::Corrupt { .. }), "{err:?}");

    // A valid header whose sizes claim more than the file holds.
    let truncated = unique("truncated");
    let _u4 = Unlinker(truncated.clone());
    let local = Segment::new_local(&TEST_SPEC).unwrap();
    let mut bytes = vec![0u8; local.len()];
    // SAFETY: copies the local segment's bytes into a fresh buffer.
    unsafe { ptr::copy_nonoverlapping(local.base(), bytes.as_mut_ptr(), local.len()) };
    raw_shm(&truncated, &bytes[..local.len() - 1]);
    let err = Segment::open_shared(&truncated).unwrap_err();
    assert!(matches!(err, SegmentError::Corrupt { .. }), "{err:?}");
}

#[test]
fn two_processes_contend() {
    let name = unique("contend");
    let _unlink = Unlinker(name.clone());
    let seg = Segment::create_shared(&name, &TEST_SPEC).unwrap();
    let children: Vec<Child> = (0..2)
        .map(|_| spawn_child("child_increment", &name))
        .collect();
    rendezvous(&seg, 3);
    increment(&seg, ITERATIONS);
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _guard = seg.lock().unwrap();
    assert_eq!(read_u64(&seg), 3 * ITERATIONS);
}

/// Child of `two_processes_contend` (does nothing unless `BSE_SEGMENT` is set).
#[test]
#[ignore]
fn child_increment() {
    let Ok(name) = std::env::var(ENV) else {
        return;
    };
    let seg = Segment::attach_shared(&name, &TEST_SPEC).unwrap();
    rendezvous(&seg, 3);
    increment(&seg, ITERATIONS);
}

#[test]
fn dead_holder_is_recovered() {
    let name = unique("dead");
    let _unlink = Unlinker(name.clone());
    let seg = Segment::create_shared(&name, &TEST_SPEC).unwrap();
    let out = spawn_child("child_lock_and_die", &name)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_u64(&seg), MARKER, "the child did not take the lock");

    let seg = Arc::new(seg);
    let (tx, rx) = mpsc::channel();
    let locker = Arc::clone(&seg);
    std::thread::spawn(move || {
        let first = locker.lock().map(|g| g.recovered());
        let second = locker.lock().map(|g| g.recovered());
        let _ = tx.send((first, second));
    });
    let (first, second) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("locking after the holder died hung");
    assert!(
        first.unwrap(),
        "the first lock was not reported as recovered"
    );
    assert!(
        !second.unwrap(),
        "the second lock was reported as recovered"
    );
}

/// Child of `dead_holder_is_recovered`: locks, writes a marker and exits
/// without unlocking (does nothing unless `BSE_SEGMENT` is set).
#[test]
#[ignore]
fn child_lock_and_die() {
    let Ok(name) = std::env::var(ENV) else {
        return;
    };
    let seg = Segment::attach_shared(&name, &TEST_SPEC).unwrap();
    let guard = seg.lock().unwrap();
    write_u64(&seg, MARKER);
    std::mem::forget(guard);
    // SAFETY: ends the process at once, lock held; nothing else to clean up.
    unsafe { libc::_exit(0) };
}

/// Damaged lock bytes are refused when attaching, naming what is wrong;
/// the lock of a healthy segment passes the same checks.
#[test]
fn a_segment_with_damaged_lock_bytes_is_refused() {
    let name = unique("badlock");
    let _unlink = Unlinker(name.clone());
    let seg = Segment::create_shared(&name, &TEST_SPEC).unwrap();
    seg.check_lock().unwrap();
    {
        let _guard = seg.lock().unwrap();
        seg.check_lock().unwrap();
        let holder = seg.lock_holder().unwrap();
        assert_eq!(holder.pid, Some(std::process::id() as i32));
    }
    assert_eq!(seg.lock_holder(), None);
    let mutex = header_offsets::MUTEX;
    let path = format!("/dev/shm/{name}");
    let original = std::fs::read(&path).unwrap();
    let cases: Vec<(usize, u32, &str)> = vec![
        // A lock word naming a thread id no system hands out.
        (0, 0x3fff_fff0, "beyond the largest thread id"),
        // A plausible thread id that does not exist, not marked dead.
        (0, 4_000_000, "no such thread exists"),
    ];
    #[cfg(all(target_env = "gnu", target_pointer_width = "64"))]
    let cases = {
        let mut cases = cases;
        cases.push((16, 0x20, "the mutex kind is 0x20"));
        cases.push((8, 0x7000_0000, "owner field is 0x70000000"));
        cases
    };
    for (offset, value, expected) in cases {
        let mut bytes = original.clone();
        bytes[mutex + offset..mutex + offset + 4].copy_from_slice(&value.to_ne_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = Segment::open_shared(&name).unwrap_err();
        assert!(matches!(err, SegmentError::Corrupt { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("its lock is damaged") && text.contains(expected),
            "{offset}: {text}"
        );
    }
    // The owner-died bit with a dead holder's id is a lock left by a
    // process that died: recoverable, not damage.
    let mut bytes = original.clone();
    bytes[mutex..mutex + 4].copy_from_slice(&0x4000_0000u32.to_ne_bytes());
    std::fs::write(&path, &bytes).unwrap();
    Segment::open_shared(&name).unwrap();
    std::fs::write(&path, &original).unwrap();
}

#[test]
fn a_rename_replaces_the_segment_under_a_name_and_old_mappings_stay() {
    let (old_name, next_name) = (unique("renamed"), unique("renamed-next"));
    let (_u1, _u2) = (Unlinker(old_name.clone()), Unlinker(next_name.clone()));
    let old = Segment::create_shared(&old_name, &TEST_SPEC).unwrap();
    write_u64(&old, 1);
    let other = SegmentSpec {
        type_name: "other-type",
        type_hash: 42,
        ..TEST_SPEC
    };
    let next = Segment::create_shared(&next_name, &other).unwrap();
    write_u64(&next, 2);
    Segment::rename_shared(&next_name, &old_name).unwrap();
    // Whoever opens the name now gets the new segment; the old mapping
    // still reads the old bytes.
    let opened = Segment::open_shared(&old_name).unwrap();
    assert_eq!(opened.type_name(), "other-type");
    assert_eq!(read_u64(&opened), 2);
    assert_eq!(read_u64(&old), 1);
    let err = Segment::rename_shared(&next_name, &old_name).unwrap_err();
    assert!(matches!(err, SegmentError::NotFound { .. }), "{err:?}");
}
