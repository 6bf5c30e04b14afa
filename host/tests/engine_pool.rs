//! Many emulators on one [`Runtime`]: the thread count is bounded by the
//! pool, not by emulators; a hung block in one emulator leaves the others
//! pulsing (its worker is replaced); each emulator keeps its pulse order,
//! its period and its timers; a long batch of accelerated pulses does not
//! starve the others. Emulators are packages of the `probe` fixture, loaded
//! in-process as in `engine.rs`.
//!
//! The tests of this file run one at a time (they count the process's
//! threads). Timing is checked loosely: lower bounds on delays, generous
//! bounds on counts.

mod support;

use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bitstream_host::engine::block_buffer::BufferMode;
use bitstream_host::engine::{CallError, Emulator, EngineOptions, Runtime};
use bitstream_host::model::{ManualEvent, Severity};
use bitstream_sdk::Value as SdkValue;
use serde_json::{json, Value};
use support::{lines, probe_package, wait_for, PATIENCE};
use tempfile::TempDir;

/// One test at a time: they count the threads of this process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Threads of this process now, but for the test harness's: those are
/// named after test functions (snake case), and a test waiting for its turn
/// may start any time. The engine's threads (`engine-worker-0`,
/// `engine-timer`, ...) have no underscore.
fn threads() -> usize {
    thread_names().iter().filter(|n| !n.contains('_')).count()
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("reading /proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// `a -> b`, both probes; `h_constants` for `a`.
fn pair(id: &str, a_constants: Value) -> Value {
    let mut a = a_constants;
    a["name"] = json!("a");
    json!({
        "id": id,
        "version": "0.0.1",
        "first": ["a"],
        "ip_blocks": [
            {"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": a},
            {"id": "b", "type": "probe", "constants": {"name": "b"}},
        ],
    })
}

/// Emulators loaded on one runtime, terminated when dropped.
struct Fleet {
    emulators: Vec<Emulator>,
    _packages: Vec<TempDir>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for emu in &self.emulators {
            emu.terminate();
        }
    }
}

/// Options on `runtime`: heap buffers, real-time pulses every `period`
/// (running at once) or none.
fn options(runtime: &Runtime, period: Option<Duration>, timeout: Duration) -> EngineOptions {
    EngineOptions {
        id: String::new(),
        pulse_period: period,
        start_running: period.is_some(),
        buffers: BufferMode::Local,
        handler_timeout: timeout,
        runtime: Some(runtime.clone()),
        ..Default::default()
    }
}

/// Loads one package per config on `runtime`; the packages' library copies
/// are made once per package, so a fleet shares one folder per config.
fn fleet(configs: &[Value], options: &EngineOptions) -> Fleet {
    let mut emulators = Vec::new();
    let mut packages = Vec::new();
    for config in configs {
        let package = probe_package(config);
        let emu = Emulator::load(package.path(), options.clone())
            .unwrap_or_else(|e| panic!("loading {config}: {e}"));
        emulators.push(emu);
        packages.push(package);
    }
    Fleet {
        emulators,
        _packages: packages,
    }
}

/// Block `id`'s probe log.
fn log(emu: &Emulator, id: &str) -> Vec<String> {
    let index = emu.block_index(id).expect("block");
    let snapshot = emu.block_snapshot(index).expect("snapshot");
    lines(&serde_json::to_value(&snapshot).expect("JSON")["log"])
}

/// The pulse sequence numbers in block `id`'s log, in the order logged.
fn pulse_sequence(emu: &Emulator, id: &str) -> Vec<u64> {
    log(emu, id)
        .iter()
        .filter_map(|l| l.strip_prefix("pulse ")?.parse().ok())
        .collect()
}

#[track_caller]
fn assert_consecutive_from_zero(sequence: &[u64], what: &str) {
    let expected: Vec<u64> = (0..sequence.len() as u64).collect();
    assert_eq!(sequence, expected, "{what}: pulses out of order or lost");
}

#[test]
fn fifty_emulators_run_on_a_pool_of_two_workers_and_leave_no_thread_behind() {
    let _one = one_at_a_time();
    let before = threads();
    let runtime = Runtime::new(2);
    let period = Duration::from_millis(100);
    let configs: Vec<Value> = (0..50).map(|i| pair(&format!("e{i}"), json!({}))).collect();
    let fleet = fleet(
        &configs,
        &options(&runtime, Some(period), Duration::from_secs(10)),
    );
    assert_eq!(runtime.emulators(), 50);
    // Two workers, a timer and a watchdog, whatever the number of emulators
    // (private runtimes would have made 150).
    let with_fleet = threads();
    assert!(
        with_fleet <= before + 4,
        "{with_fleet} threads with 50 emulators on 2 workers, {before} before: {:?}",
        thread_names()
    );
    for emu in &fleet.emulators {
        wait_for(
            &format!("real-time pulses of {}", emu.id()),
            PATIENCE,
            || (emu.pulse_count() >= 3).then_some(()),
        );
    }
    assert!(threads() <= before + 4, "no thread was added while serving");
    for emu in &fleet.emulators {
        assert_consecutive_from_zero(&pulse_sequence(emu, "b"), emu.id());
    }
    drop(fleet);
    assert_eq!(
        runtime.emulators(),
        0,
        "terminated emulators leave the runtime"
    );
    drop(runtime);
    wait_for("the runtime's threads to end", PATIENCE, || {
        (threads() <= before).then_some(())
    });
}

#[test]
fn dropping_every_handle_of_an_emulator_ends_its_work() {
    let _one = one_at_a_time();
    let runtime = Runtime::new(1);
    let period = Duration::from_millis(10);
    let mut fleet = fleet(
        &[pair("kept", json!({})), pair("dropped", json!({}))],
        &options(&runtime, Some(period), Duration::from_secs(10)),
    );
    let dropped = fleet.emulators.pop().expect("two");
    wait_for("pulses", PATIENCE, || {
        (dropped.pulse_count() >= 2).then_some(())
    });
    drop(dropped);
    wait_for(
        "the dropped emulator to leave the runtime",
        PATIENCE,
        || (runtime.emulators() == 1).then_some(()),
    );
    let kept = &fleet.emulators[0];
    let now = kept.pulse_count();
    wait_for("the other emulator to go on", PATIENCE, || {
        (kept.pulse_count() >= now + 2).then_some(())
    });
}

#[test]
fn a_hung_block_in_one_emulator_leaves_the_others_pulsing_and_its_worker_is_replaced() {
    let _one = one_at_a_time();
    let before = threads();
    let runtime = Runtime::new(2);
    let period = Duration::from_millis(20);
    let mut configs = vec![pair("hangs", json!({"hang_on_pulse": true}))];
    configs.extend((0..4).map(|i| pair(&format!("calm{i}"), json!({}))));
    let fleet = fleet(
        &configs,
        &options(&runtime, Some(period), Duration::from_millis(500)),
    );
    let hangs = &fleet.emulators[0];
    let a = hangs.block_index("a").expect("a");
    wait_for("a to be declared hung", PATIENCE, || {
        hangs.blocks()[a].hung_reason()
    });
    wait_for("the stuck worker to be counted", PATIENCE, || {
        (runtime.stuck_workers() == 1).then_some(())
    });
    assert_eq!(runtime.workers(), 2);
    // The stuck worker is left behind, one took its place.
    assert!(
        threads() <= before + 5,
        "{before} threads before, now {:?}",
        thread_names()
    );
    // Every other emulator keeps pulsing, and so does b, after a.
    for emu in &fleet.emulators {
        let now = emu.pulse_count();
        wait_for(
            &format!("pulses of {} after the hang", emu.id()),
            PATIENCE,
            || (emu.pulse_count() >= now + 3).then_some(()),
        );
    }
    let b = pulse_sequence(hangs, "b");
    assert!(b.len() >= 3, "b's pulses after a hung: {b:?}");
    assert!(
        b.windows(2).all(|w| w[0] < w[1]),
        "b's pulses in order: {b:?}"
    );
    for emu in &fleet.emulators[1..] {
        assert_consecutive_from_zero(&pulse_sequence(emu, "b"), emu.id());
        assert!(emu.blocks().iter().all(|b| b.hung_reason().is_none()));
    }
    assert!(matches!(hangs.block_state(a), Err(CallError::Hung { .. })));
    // Terminating the hung emulator stops only its work.
    hangs.terminate();
    let calm = &fleet.emulators[1];
    let now = calm.pulse_count();
    wait_for("pulses after the other terminated", PATIENCE, || {
        (calm.pulse_count() >= now + 3).then_some(())
    });
    assert_eq!(runtime.emulators(), 4);
}

#[test]
fn each_emulator_keeps_its_pulse_order_period_and_timers() {
    let _one = one_at_a_time();
    let runtime = Runtime::new(2);
    let period = Duration::from_millis(50);
    let configs: Vec<Value> = (0..10).map(|i| pair(&format!("p{i}"), json!({}))).collect();
    // Emulators pulse from their load on.
    let started = Instant::now();
    let fleet = fleet(
        &configs,
        &options(&runtime, Some(period), Duration::from_secs(10)),
    );
    // Injections at offsets, to every emulator; each arrives no earlier
    // than its offset, in offset order.
    let offsets = [300u64, 100, 200];
    for emu in &fleet.emulators {
        let b = emu.block_index("b").expect("b");
        for offset in offsets {
            let event = ManualEvent::injection(Severity::General, SdkValue::from(json!(offset)));
            emu.inject(b, event, Duration::from_millis(offset))
                .expect("inject");
        }
    }
    thread::sleep(Duration::from_millis(1200));
    for emu in &fleet.emulators {
        emu.stop().expect("stop");
    }
    let elapsed = started.elapsed();
    for emu in &fleet.emulators {
        let manual: Vec<String> = wait_for("the injections", PATIENCE, || {
            let manual: Vec<String> = log(emu, "b")
                .into_iter()
                .filter(|l| l.starts_with("manual"))
                .collect();
            (manual.len() == 3).then_some(manual)
        });
        let values: Vec<&str> = manual
            .iter()
            .map(|l| l.rsplit(' ').next().expect("value"))
            .collect();
        assert_eq!(values, ["100", "200", "300"], "{}: {manual:?}", emu.id());
        let sequence = pulse_sequence(emu, "b");
        assert_consecutive_from_zero(&sequence, emu.id());
        // One pulse at start, then one per period: never more (late ticks
        // are not made up for); a loaded machine may give fewer.
        let most = (elapsed.as_millis() / period.as_millis()) as usize + 2;
        assert!(
            (3..=most).contains(&sequence.len()),
            "{}: {} pulses in {elapsed:?} at a {period:?} period",
            emu.id(),
            sequence.len()
        );
    }
}

#[test]
fn a_long_batch_on_one_emulator_does_not_starve_the_others_on_a_single_worker() {
    let _one = one_at_a_time();
    let runtime = Runtime::new(1);
    let busy = fleet(
        &[pair("busy", json!({}))],
        &options(&runtime, None, Duration::from_secs(10)),
    );
    let others = fleet(
        &[pair("ticks", json!({})), pair("timers", json!({}))],
        &options(
            &runtime,
            Some(Duration::from_millis(10)),
            Duration::from_secs(10),
        ),
    );
    let busy_emu = busy.emulators[0].clone();
    let (sent, batch) = mpsc::channel();
    thread::spawn(move || {
        let _ = sent.send(busy_emu.run_pulses(100_000_000));
    });
    let busy_emu = &busy.emulators[0];
    wait_for("the batch to start", PATIENCE, || {
        (busy_emu.pulse_count() >= 100).then_some(())
    });
    // With one worker, the others get their real-time pulses and timers
    // only if the batch yields.
    let (ticks, timers) = (&others.emulators[0], &others.emulators[1]);
    let now = ticks.pulse_count();
    wait_for("real-time pulses during the batch", PATIENCE, || {
        (ticks.pulse_count() >= now + 5).then_some(())
    });
    let b = timers.block_index("b").expect("b");
    let event = ManualEvent::injection(Severity::General, SdkValue::from(json!("late")));
    timers
        .inject(b, event, Duration::from_millis(50))
        .expect("inject");
    wait_for("the injection during the batch", PATIENCE, || {
        log(timers, "b")
            .iter()
            .any(|l| l.starts_with("manual"))
            .then_some(())
    });
    assert!(
        batch.try_recv().is_err(),
        "the batch is still running (100,000,000 pulses)"
    );
    busy_emu.stop().expect("stop cancels the batch");
    let run = batch
        .recv_timeout(PATIENCE)
        .expect("the batch answers")
        .expect("a cancelled batch is not an error");
    assert!(run.cancelled);
    // Yielding kept the batch's pulses in order, none lost or run twice
    // (the probe keeps the last lines of its log).
    assert_eq!(busy_emu.pulse_count(), run.pulses);
    let sequence = pulse_sequence(busy_emu, "b");
    assert!(
        sequence.windows(2).all(|w| w[1] == w[0] + 1),
        "busy: pulses out of order or lost"
    );
    assert_eq!(sequence.last(), Some(&(run.pulses - 1)));
    assert_consecutive_from_zero(&pulse_sequence(ticks, "b"), "ticks");
}
