//! Device buffer hot paths: `get`/`set` by name, `write` + `emit_dev_rw`,
//! the bare lock (`transaction`) and Smart Device message `encode`/`decode`,
//! on process-local (heap) and shared (POSIX shm) buffers.
//!
//! The reference is the original Python-over-ctypes implementation on the
//! same machine: set 3.5 µs local / 4.3 µs shared, get 1.3 / 1.65 µs,
//! write + emit_dev_rw about 6 µs; the goal is 100 times faster (a shared
//! `set`, lock included, at or under 35 ns). `ci/bench-buffers.sh` runs this
//! and prints the medians next to those figures.
//!
//! Smart Device `set`/`write` run with a [`ClockTicker`] as in the engine;
//! `set/*/duty_cycle_clock_read` is the same `set` without one.
//! `transaction/*` (the bare robust mutex, lock and unlock) is the yardstick
//! for the machine's state: on our 2-CPU VMs about 15 ns while the other
//! CPU is idle, 25 to 30 ns while it is busy (a busy loop on it is enough),
//! which slows the other figures about as much.
//!
//! Run: `cargo bench -p bitstream-buffer --bench buffer [-- <filter>]`.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitstream_buffer::catalog::Catalog;
use bitstream_buffer::clock::ClockTicker;
use bitstream_buffer::device::{Buffer, BufferType, DeviceBuffer};
use bitstream_buffer::message::Message;
use bitstream_buffer::segment::Segment;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::Value as Json;

const VECTORS: &str = include_str!("../../fixtures/buffers/vectors.json");

/// A plain (non-Smart) type: no control block, so `set` does no bitmap or
/// timestamp work.
const PLAIN_CATALOG: &str = r#"{"plain": {"params": [{"name": "x", "type": "float"}]}}"#;

fn vectors() -> Json {
    serde_json::from_str(VECTORS).expect("fixtures/buffers/vectors.json is JSON")
}

fn example_type() -> Arc<BufferType> {
    let catalog = Catalog::from_json(&vectors()["example_device"]["catalog"].to_string())
        .expect("the example catalog parses");
    Arc::new(BufferType::from_catalog(&catalog, "example-device").expect("example-device"))
}

fn plain_type() -> Arc<BufferType> {
    let catalog = Catalog::from_json(PLAIN_CATALOG).expect("the plain catalog parses");
    Arc::new(BufferType::from_catalog(&catalog, "plain").expect("plain"))
}

/// A shared buffer named `bitstream-bench-<pid>-<n>`; the name is unlinked
/// when this is dropped (after the buffer itself), even on a panic.
struct SharedBench<B> {
    buffer: Option<B>,
    name: String,
}

impl<B> SharedBench<B> {
    fn buffer(&self) -> &B {
        self.buffer.as_ref().expect("present until drop")
    }
}

impl<B> Drop for SharedBench<B> {
    fn drop(&mut self) {
        drop(self.buffer.take());
        if let Err(e) = Segment::unlink(&self.name) {
            eprintln!("bench: cannot unlink shared buffer `{}`: {e}", self.name);
        }
    }
}

fn shared_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("bitstream-bench-{}-{n}", std::process::id())
}

fn shared_buffer(ty: &Arc<BufferType>) -> SharedBench<Buffer> {
    shared(ty, Ok::<Buffer, std::convert::Infallible>)
}

fn shared_device(ty: &Arc<BufferType>) -> SharedBench<DeviceBuffer> {
    shared(ty, DeviceBuffer::try_from)
}

fn shared<B, E: std::fmt::Debug>(
    ty: &Arc<BufferType>,
    wrap: impl FnOnce(Buffer) -> Result<B, E>,
) -> SharedBench<B> {
    let name = shared_name();
    let buffer = Buffer::create_shared(&name, ty).expect("create a shared buffer in /dev/shm");
    let mut bench = SharedBench { buffer: None, name };
    // The guard exists before `wrap`, so the name is unlinked if it panics.
    bench.buffer = Some(wrap(buffer).expect("a buffer of the right kind"));
    bench
}

fn local_device(ty: &Arc<BufferType>) -> DeviceBuffer {
    DeviceBuffer::try_from(Buffer::new_local(ty).expect("a local buffer")).expect("Smart Device")
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

/// The `cobs` bytes of the message vectors whose name starts with `prefix`
/// (the first match).
fn vector_cobs(messages: &[Json], prefix: &str) -> Vec<u8> {
    let m = messages
        .iter()
        .find(|m| m["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no message vector named {prefix}..."));
    hex(m["cobs"].as_str().expect("cobs is a string"))
}

/// The buffers the get, set and transaction benchmarks time: the example
/// Smart Device and a plain type, each local and shared.
struct Subjects {
    local: DeviceBuffer,
    shared: SharedBench<DeviceBuffer>,
    plain_local: Buffer,
    plain_shared: SharedBench<Buffer>,
}

impl Subjects {
    fn new() -> Self {
        let (example, plain) = (example_type(), plain_type());
        Subjects {
            local: local_device(&example),
            shared: shared_device(&example),
            plain_local: Buffer::new_local(&plain).expect("a local buffer"),
            plain_shared: shared_buffer(&plain),
        }
    }

    /// The Smart Device buffers, named by where they live.
    fn devices(&self) -> [(&'static str, &Buffer); 2] {
        [("local", &*self.local), ("shared", &**self.shared.buffer())]
    }

    /// The plain-type buffers.
    fn plains(&self) -> [(&'static str, &Buffer); 2] {
        [
            ("plain_local", &self.plain_local),
            ("plain_shared", self.plain_shared.buffer()),
        ]
    }
}

fn bench_get(c: &mut Criterion) {
    let subjects = Subjects::new();
    for (_, buffer) in subjects.devices() {
        buffer.set("duty_cycle", 0.5).unwrap();
    }

    let mut g = c.benchmark_group("get");
    for (kind, buffer) in subjects.devices() {
        for param in ["duty_cycle", "id"] {
            g.bench_function(BenchmarkId::new(kind, param), |b| {
                b.iter(|| buffer.get(black_box(param)).unwrap())
            });
        }
        let handle = buffer.param("duty_cycle").unwrap();
        g.bench_function(BenchmarkId::new(kind, "duty_cycle_by_handle"), |b| {
            b.iter(|| buffer.get_at(black_box(handle)).unwrap())
        });
    }
    for (kind, buffer) in subjects.plains() {
        g.bench_function(BenchmarkId::new(kind, "x"), |b| {
            b.iter(|| buffer.get(black_box("x")).unwrap())
        });
    }
    g.finish();
}

fn bench_set(c: &mut Criterion) {
    let subjects = Subjects::new();

    let mut g = c.benchmark_group("set");
    // A Smart Device `set` stamps the time. Without a clock ticker the stamp
    // reads the coarse clock (about 10 ns here): an outside process that
    // starts none.
    for (kind, buffer) in subjects.devices() {
        g.bench_function(BenchmarkId::new(kind, "duty_cycle_clock_read"), |b| {
            b.iter(|| buffer.set(black_box("duty_cycle"), black_box(0.5)).unwrap())
        });
    }
    // The engine holds a ticker while it has Smart Device buffers: a stamp
    // is then one load.
    let ticker = ClockTicker::start().expect("start the clock ticker");
    for (kind, buffer) in subjects.devices() {
        g.bench_function(BenchmarkId::new(kind, "duty_cycle"), |b| {
            b.iter(|| buffer.set(black_box("duty_cycle"), black_box(0.5)).unwrap())
        });
        g.bench_function(BenchmarkId::new(kind, "id"), |b| {
            b.iter(|| buffer.set(black_box("id"), black_box(7u32)).unwrap())
        });
        // The name looked up once (`Buffer::param`), as a driver loop would.
        let handle = buffer.param("duty_cycle").unwrap();
        g.bench_function(BenchmarkId::new(kind, "duty_cycle_by_handle"), |b| {
            b.iter(|| buffer.set_at(black_box(handle), black_box(0.5)).unwrap())
        });
    }
    drop(ticker);
    for (kind, buffer) in subjects.plains() {
        g.bench_function(BenchmarkId::new(kind, "x"), |b| {
            b.iter(|| buffer.set(black_box("x"), black_box(0.5)).unwrap())
        });
        let handle = buffer.param("x").unwrap();
        g.bench_function(BenchmarkId::new(kind, "x_by_handle"), |b| {
            b.iter(|| buffer.set_at(black_box(handle), black_box(0.5)).unwrap())
        });
    }
    g.finish();
}

fn bench_write_emit(c: &mut Criterion) {
    let example = example_type();
    let local = local_device(&example);
    let shared = shared_device(&example);

    // `write` stamps `last_write`: with a ticker, as in the engine.
    let _ticker = ClockTicker::start().expect("start the clock ticker");
    let mut g = c.benchmark_group("write_emit");
    for (kind, device) in [("local", &local), ("shared", shared.buffer())] {
        g.bench_function(BenchmarkId::new(kind, "pos"), |b| {
            b.iter(|| {
                device.write(black_box("pos"), black_box(0.5)).unwrap();
                device.emit_dev_rw().unwrap()
            })
        });
    }
    // The two halves apart: `write` alone (the pending bit just stays set)
    // and `emit_dev_rw` with nothing pending (lock, two bitmaps, no message).
    g.bench_function(BenchmarkId::new("local", "write_only"), |b| {
        b.iter(|| local.write(black_box("pos"), black_box(0.5)).unwrap())
    });
    local.emit_dev_rw().unwrap();
    g.bench_function(BenchmarkId::new("local", "emit_empty"), |b| {
        b.iter(|| local.emit_dev_rw().unwrap())
    });
    g.finish();
}

fn bench_transaction(c: &mut Criterion) {
    let subjects = Subjects::new();

    let mut g = c.benchmark_group("transaction");
    for (kind, buffer) in subjects.devices() {
        g.bench_function(kind, |b| {
            b.iter(|| drop(black_box(buffer.transaction().unwrap())))
        });
    }
    g.finish();
}

fn bench_messages(c: &mut Criterion) {
    let v = vectors();
    let messages = v["messages"].as_array().expect("messages is an array");
    let vectors = [
        (
            "dev_write",
            vector_cobs(messages, "dev_write(bitmap=0b111)"),
        ),
        (
            "dev_write_max",
            vector_cobs(messages, "dev_write max payload"),
        ),
        ("sub_res", vector_cobs(messages, "sub_res(")),
    ];
    let decoded: Vec<(&str, Message)> = vectors
        .iter()
        .map(|(name, cobs)| (*name, Message::decode(cobs).expect("the vector decodes")))
        .collect();
    for ((_, cobs), (_, message)) in vectors.iter().zip(&decoded) {
        assert_eq!(
            &message.encode().unwrap(),
            cobs,
            "round trip of {message:?}"
        );
    }

    let mut g = c.benchmark_group("encode");
    for (name, message) in &decoded {
        g.bench_function(*name, |b| b.iter(|| black_box(message).encode().unwrap()));
    }
    g.finish();

    let mut g = c.benchmark_group("decode");
    for (name, cobs) in &vectors {
        g.bench_function(*name, |b| {
            b.iter(|| Message::decode(black_box(cobs)).unwrap())
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // The machine is small and noisy: short runs, many samples. Command-line
    // options (`--measurement-time`, `--warm-up-time`, ...) override these.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(100)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_get, bench_set, bench_write_emit, bench_transaction, bench_messages
}
criterion_main!(benches);
