//! Benchmark (not a test): a shared buffer's `set` (and `get`) next to its bare lock,
//! measured in interleaved rounds so that each round's figures share the
//! machine's state.
//!
//! On our 2-CPU VMs the cost of the same code doubles while the other CPU
//! is busy (a busy loop on it is enough), and that state flips every few
//! hundred milliseconds, so one criterion median is partly luck. Here every
//! round times each variant for a few milliseconds back to back; rounds are
//! split by the bare lock's time (under 20 ns: as with the other CPU idle;
//! else busy), and each group gets its medians and the ratio to the lock.
//!
//! Run: `cargo run --release -p bitstream-buffer --example buffer_set_paired [rounds]`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bitstream_buffer::catalog::Catalog;
use bitstream_buffer::clock::ClockTicker;
use bitstream_buffer::device::{Buffer, BufferType};
use bitstream_buffer::segment::Segment;
use serde_json::Value as Json;

const VECTORS: &str = include_str!("../../fixtures/buffers/vectors.json");
const ITERATIONS: u32 = 200_000;
/// The bare lock's time that splits rounds into the two states, in ns.
const BUSY_THRESHOLD_NS: f64 = 20.0;

fn buffer_type(catalog: &str, name: &str) -> Arc<BufferType> {
    let catalog = Catalog::from_json(catalog).expect("the catalog parses");
    Arc::new(BufferType::from_catalog(&catalog, name).expect("the type exists"))
}

/// A shared buffer whose name is unlinked on drop.
struct Shared {
    buffer: Option<Buffer>,
    name: String,
}

impl Shared {
    fn create(ty: &Arc<BufferType>, tag: &str) -> Shared {
        let name = format!("bitstream-bench-{}-{tag}", std::process::id());
        let buffer = Buffer::create_shared(&name, ty).expect("create a buffer in /dev/shm");
        Shared {
            buffer: Some(buffer),
            name,
        }
    }

    fn get(&self) -> &Buffer {
        self.buffer.as_ref().expect("present until drop")
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        drop(self.buffer.take());
        let _ = Segment::unlink(&self.name);
    }
}

/// Nanoseconds per call of `f`, over `ITERATIONS` calls.
fn time(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("rounds: a number"))
        .unwrap_or(61);
    let vectors: Json = serde_json::from_str(VECTORS).expect("vectors.json is JSON");
    let smart = buffer_type(
        &vectors["example_device"]["catalog"].to_string(),
        "example-device",
    );
    let plain = buffer_type(
        r#"{"plain": {"params": [{"name": "x", "type": "float"}]}}"#,
        "plain",
    );
    let device = Shared::create(&smart, "smart");
    let single = Shared::create(&plain, "plain");
    let (device, single) = (device.get(), single.get());
    let duty_cycle = device.param("duty_cycle").expect("duty_cycle");
    let x = single.param("x").expect("x");

    let names = [
        "bare lock (transaction)",
        "set Smart Device, by name",
        "set Smart Device, by handle",
        "set Smart Device, by name, no ticker",
        "set plain type, by name",
        "set plain type, by handle",
        "get Smart Device, by name",
    ];
    // times[variant][round]
    let mut times = vec![Vec::with_capacity(rounds); names.len()];
    for _ in 0..rounds {
        let ticker = ClockTicker::start().expect("start the clock ticker");
        times[0].push(time(|| drop(black_box(device.transaction().unwrap()))));
        times[1].push(time(|| {
            device.set(black_box("duty_cycle"), black_box(0.5)).unwrap();
        }));
        times[2].push(time(|| {
            device
                .set_at(black_box(duty_cycle), black_box(0.5))
                .unwrap();
        }));
        drop(ticker);
        times[3].push(time(|| {
            device.set(black_box("duty_cycle"), black_box(0.5)).unwrap();
        }));
        times[4].push(time(|| {
            single.set(black_box("x"), black_box(0.5)).unwrap();
        }));
        times[5].push(time(|| {
            single.set_at(black_box(x), black_box(0.5)).unwrap();
        }));
        times[6].push(time(|| {
            black_box(device.get(black_box("duty_cycle")).unwrap());
        }));
    }

    println!(
        "shared buffers, {rounds} rounds of {ITERATIONS} calls per variant; medians in ns \
         (Python over ctypes, shared: set 4,300 ns, get 1,650 ns)"
    );
    for (label, idle) in [("other CPU idle", true), ("other CPU busy", false)] {
        let picked: Vec<usize> = (0..rounds)
            .filter(|&r| (times[0][r] < BUSY_THRESHOLD_NS) == idle)
            .collect();
        println!(
            "\n{label} (bare lock {} {BUSY_THRESHOLD_NS} ns): {} rounds",
            if idle { "<" } else { ">=" },
            picked.len()
        );
        if picked.is_empty() {
            continue;
        }
        println!(
            "  {:<38} {:>8} {:>9} {:>9}",
            "", "median", "× lock", "vs Python"
        );
        for (v, name) in names.iter().enumerate() {
            let ns = median(picked.iter().map(|&r| times[v][r]).collect());
            let ratio = median(picked.iter().map(|&r| times[v][r] / times[0][r]).collect());
            let python = match v {
                0 => None,
                6 => Some(1650.0),
                _ => Some(4300.0),
            };
            let speedup = python.map_or_else(|| "-".to_owned(), |p| format!("{:.0}x", p / ns));
            println!("  {name:<38} {ns:>8.1} {ratio:>9.2} {speedup:>9}");
        }
    }
}
