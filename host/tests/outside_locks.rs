//! Buffer locks held, and left, by other processes: the `buffer` tools
//! never wait for good (`ls` takes no lock, `dump`/`get`/`set` wait a
//! bounded time and name the holder, damaged lock bytes are refused); a
//! block hung on a lock held outside recovers when the holder dies; a lock
//! recovered from a dead holder inside plugin code is logged with its block
//! and reported by the plugin's `Transaction`.
//!
//! The outside holder is a real child process: this test binary again,
//! running only [`zz_lock_holder_helper`] with `BITSTREAM_TEST_HOLD_LOCK`
//! set, which takes the named buffer's lock and sleeps until killed.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitstream_buffer::catalog::Catalog;
use bitstream_buffer::device::{Buffer, BufferType};
use bitstream_buffer::segment::Segment;
use serde_json::{json, Value};
use support::{package, wait_for, Emulator, BINARY, PATIENCE};

const HOLD_ENV: &str = "BITSTREAM_TEST_HOLD_LOCK";

/// Not a test of its own: the body of the lock-holding child process.
#[test]
fn zz_lock_holder_helper() {
    let Ok(name) = std::env::var(HOLD_ENV) else {
        return;
    };
    let buffer = Buffer::open_shared(&name).expect("attaching to the buffer to hold");
    let _tx = buffer.transaction().expect("taking the lock");
    println!("HOLDING {}", std::process::id());
    std::thread::sleep(Duration::from_secs(600));
}

/// A child process holding shared buffer `name`'s lock; killed (SIGKILL)
/// when dropped, if not before.
struct Holder {
    child: Child,
}

impl Holder {
    fn hold(name: &str) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "zz_lock_holder_helper",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(HOLD_ENV, name)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("HOLDING ") => break,
                Some(Ok(_)) => {}
                _ => panic!("the lock holder ended before taking {name}'s lock"),
            }
        }
        Holder { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the holder (it dies holding the lock) and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A shared buffer of a small catalog type, created by this process and
/// unlinked on drop.
struct Shm {
    name: String,
    _buffer: Buffer,
}

impl Drop for Shm {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
    }
}

fn shared_buffer() -> Shm {
    let name = unique("bitstream-locktest");
    let catalog = Catalog::from_json(
        r#"{"motor": {"params": [{"name": "pos", "type": "double", "writeable": true},
                                 {"name": "n", "type": "uint32"}]}}"#,
    )
    .unwrap();
    let ty = Arc::new(BufferType::from_catalog(&catalog, "motor").unwrap());
    let buffer = Buffer::create_shared(&name, &ty).unwrap();
    Shm {
        name,
        _buffer: buffer,
    }
}

/// Runs `bitstream-emulator <args>`; a run still going after `bound` is
/// killed and reported as `None` (a hang).
fn run_bounded(args: &[&str], bound: Duration) -> Option<Output> {
    let mut child = Command::new(BINARY)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running bitstream-emulator");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// Buffer tools -----------------------------------------------------------------

#[test]
fn buffer_ls_takes_no_lock_and_dump_get_set_name_the_holder() {
    let shm = shared_buffer();
    let holder = Holder::hold(&shm.name);
    let bound = Duration::from_secs(30);

    let ls = run_bounded(&["buffer", "ls", "--prefix", &shm.name, "--json"], bound)
        .expect("`buffer ls` hangs while another process holds a buffer's lock");
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let listed: Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(listed[0]["name"], shm.name.as_str(), "{listed}");
    assert_eq!(listed[0]["valid"], true, "{listed}");
    assert_eq!(listed[0]["locked_by"]["pid"], holder.pid(), "{listed}");

    let expected = format!("is locked by process {}", holder.pid());
    for args in [
        vec!["buffer", "dump", shm.name.as_str()],
        vec!["buffer", "get", shm.name.as_str(), "pos"],
        vec!["buffer", "set", shm.name.as_str(), "pos", "0.5"],
    ] {
        let mut args = args;
        args.extend(["--wait-ms", "300"]);
        let out = run_bounded(&args, bound)
            .unwrap_or_else(|| panic!("{args:?} hangs on a buffer locked by another process"));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
}

/// A small deterministic generator (xorshift64*), so a failing case can be
/// reproduced from its number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Damages the segment file `path` (a valid segment) in way `case`:
/// random bytes in the mutex, random bytes anywhere in the header, a
/// random length.
fn damage(path: &Path, case: u64, rng: &mut Rng) -> String {
    let mut bytes = std::fs::read(path).unwrap();
    let mutex = 128..168usize;
    let what = match case % 4 {
        0 => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let at = mutex.start + rng.below(40) as usize;
                bytes[at] = rng.next() as u8;
            }
            format!("{n} random byte(s) in the mutex")
        }
        1 => {
            // One 32-bit word of the mutex set to a random value.
            let word = rng.below(10) as usize;
            let value = rng.next() as u32;
            bytes[mutex.start + 4 * word..mutex.start + 4 * word + 4]
                .copy_from_slice(&value.to_ne_bytes());
            format!("mutex word {word} = {value:#x}")
        }
        2 => {
            let n = 1 + rng.below(16);
            for _ in 0..n {
                let at = rng.below(192) as usize;
                bytes[at] = rng.next() as u8;
            }
            format!("{n} random byte(s) in the header")
        }
        _ => {
            let len = rng.below(bytes.len() as u64) as usize;
            bytes.truncate(len);
            format!("truncated to {len} bytes")
        }
    };
    std::fs::write(path, &bytes).unwrap();
    what
}

#[test]
fn damaged_segments_are_refused_and_the_tools_never_hang_or_abort() {
    const CASES: u64 = 480;
    let mut rng = Rng(0x0005_eed0_fb17_57ea);
    let bound = Duration::from_secs(10);
    let (mut hangs, mut aborts, mut runs) = (Vec::new(), Vec::new(), 0);
    let (mut refused, mut read) = (0, 0);
    for case in 0..CASES {
        let shm = shared_buffer();
        let path = Path::new("/dev/shm").join(&shm.name);
        let what = damage(&path, case, &mut rng);
        for args in [
            vec!["buffer", "ls", "--prefix", shm.name.as_str(), "--json"],
            vec!["buffer", "dump", shm.name.as_str(), "--wait-ms", "200"],
            vec!["buffer", "get", shm.name.as_str(), "n", "--wait-ms", "200"],
        ] {
            runs += 1;
            match run_bounded(&args, bound) {
                None => hangs.push(format!("case {case} ({what}): {args:?}")),
                Some(out) if out.status.signal().is_some() || out.status.code() == Some(101) => {
                    aborts.push(format!(
                        "case {case} ({what}): {args:?}: {}: {}",
                        out.status,
                        text(&out.stderr)
                    ))
                }
                Some(out) if !matches!(out.status.code(), Some(0 | 1)) => aborts.push(format!(
                    "case {case} ({what}): {args:?}: unexpected {}: {}",
                    out.status,
                    text(&out.stderr)
                )),
                Some(out) => {
                    if args[1] == "dump" {
                        if out.status.success() {
                            read += 1;
                        } else {
                            refused += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{CASES} damaged segments, {runs} tool runs: `dump` refused {refused} with an error and \
         read {read}; {} hang(s), {} abort(s)",
        hangs.len(),
        aborts.len()
    );
    assert!(
        hangs.is_empty() && aborts.is_empty(),
        "{} hang(s), {} abort(s) of {runs} runs on {CASES} damaged segments:\n{}\n{}",
        hangs.len(),
        aborts.len(),
        hangs.join("\n"),
        aborts.join("\n")
    );
}

#[test]
fn a_segment_whose_mutex_is_damaged_is_refused_with_a_clear_error() {
    let shm = shared_buffer();
    let path = Path::new("/dev/shm").join(&shm.name);
    let mut bytes = std::fs::read(&path).unwrap();
    // The mutex's kind word (glibc: offset 16 in pthread_mutex_t) set to a
    // priority-inheriting kind this format never makes.
    bytes[128 + 16..128 + 20].copy_from_slice(&0x20u32.to_ne_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let out = run_bounded(&["buffer", "dump", &shm.name], Duration::from_secs(20))
        .expect("dump hangs on a damaged mutex");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("segment `{}` is corrupt", shm.name)) && stderr.contains("lock"),
        "{stderr}"
    );
}

// Blocks and plugin code ---------------------------------------------------------

/// Removes whatever emulator `id` left in `/dev/shm` when dropped (an
/// emulator killed at the end of a test leaves its buffers).
struct ShmCleanup(String);

impl Drop for ShmCleanup {
    fn drop(&mut self) {
        let prefix = format!("bitstream-{}-", self.0);
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// `POST /terminate` and a bounded wait for the emulator to exit.
fn terminate(mut emu: Emulator) {
    emu.post("/terminate").expect(202);
    assert!(
        emu.wait_exit(PATIENCE).is_some(),
        "still running after /terminate; stderr:\n{}",
        emu.stderr()
    );
}

/// `reg_a -> reg_b` of the `registers` fixture as emulator `id`, shared
/// buffers, pulses only on request.
fn start_registers(id: &str, extra: &[&str]) -> Emulator {
    let config = json!({
        "id": "outside_locks_test",
        "version": "0.0.1",
        "first": ["reg_a"],
        "ip_blocks": [
            {"id": "reg_a", "type": "registers", "downstream_block_ids": ["reg_b"], "constants": {}},
            {"id": "reg_b", "type": "registers", "constants": {}},
        ],
    });
    let mut args = vec!["--id", id, "--pulse-period-ms", "0"];
    args.extend_from_slice(extra);
    Emulator::start_package(
        package(&[("registers", "registers")], &config.to_string()),
        &args,
    )
}

#[test]
fn a_block_hung_on_a_lock_held_outside_recovers_when_the_holder_dies() {
    let id = unique("ltest");
    let _cleanup = ShmCleanup(id.clone());
    let emu = start_registers(&id, &["--handler-timeout-ms", "300"]);
    let mut holder = Holder::hold(&format!("bitstream-{id}-reg_a"));

    // reg_a's pulse handler waits for the lock past the handler timeout.
    let pulse = emu.request(reqwest::Method::POST, "/pulse?count=1", None);
    assert_eq!(pulse.status, 503, "{}", pulse.text);
    let state = emu.get("/reg_a/state");
    assert_eq!(state.status, 503, "{}", state.text);
    assert!(state.text.contains("has not returned"), "{}", state.text);

    // The holder dies: the handler gets the lock (recovered) and returns.
    holder.kill();
    let line = wait_for("reg_a's recovery in the log", PATIENCE, || {
        emu.stderr()
            .lines()
            .find(|l| l.contains("recovered after"))
            .map(str::to_owned)
    });
    assert!(line.contains("reg_a"), "{line}");
    assert!(line.contains("WARN") || line.contains("INFO"), "{line}");
    assert_eq!(emu.block_state("reg_a"), "ACTIVE");
    let before = emu.get("/reg_a/registers").expect(200).json()["pulses"].clone();
    emu.pulse(2);
    let after = emu.get("/reg_a/registers").expect(200).json()["pulses"].clone();
    assert_eq!(
        after.as_u64().unwrap(),
        before.as_u64().unwrap() + 2,
        "reg_a is pulsed again"
    );
    terminate(emu);
}

#[test]
fn a_lock_recovered_inside_plugin_code_is_logged_with_its_block_and_reported() {
    let id = unique("ltest");
    let _cleanup = ShmCleanup(id.clone());
    let emu = start_registers(&id, &[]);
    let mut holder = Holder::hold(&format!("bitstream-{id}-reg_b"));
    holder.kill();

    // The plugin's own transaction recovers the lock the holder left.
    let bump = emu.post("/reg_b/bump").expect(200).json();
    assert_eq!(bump, json!({"count": 1, "recovered": true}));
    let line = wait_for("the recovery warning", PATIENCE, || {
        emu.stderr()
            .lines()
            .find(|l| l.contains("left the lock; recovered"))
            .map(str::to_owned)
    });
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(r#"block="reg_b""#), "{line}");
    // The next transaction finds a healthy lock.
    let bump = emu.post("/reg_b/bump").expect(200).json();
    assert_eq!(bump, json!({"count": 2}));
    terminate(emu);
}
