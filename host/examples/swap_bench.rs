//! Hot-swap benchmark (run by `ci/bench-swap.sh`, not by the tests).
//!
//! ```text
//! swap_bench <bitstream-emulator> <vcc package> <vcc type> <libfixture_probe.so> <libfixture_probe_v2.so>
//! ```
//!
//! 1. **Latency**: `run --watch` on a copy of the VCC package; 50 times, a
//!    byte-different build of `<vcc type>`'s library (the same library, with
//!    a counter appended after its end) is written over the package's file;
//!    from the moment the file is complete (closed) to the new code
//!    answering (`GET /plugins` shows its SHA-256, then a route of a block
//!    of the type answers): median and p95, with and without the debounce
//!    window.
//! 2. **Under load**: the VCC package plus two `probe` blocks (whose logs
//!    record every pulse's sequence), pulses at 100 Hz, about 1,000 GET and
//!    POST requests a second on four threads, and 50 swaps of the `probe`
//!    type (v1 <-> v2) through `POST /plugins/probe/reload`: failed requests
//!    (any status but 200, or a transport error), and pulses lost or doubled
//!    (every sequence each probe block logged, drained every 200 ms; they
//!    must be consecutive, each once).
//! 3. **Memory**: 200 swaps of `<vcc type>` in a row alternating two
//!    byte-different files (each loaded once, then reused: identical bytes
//!    from the same file are not loaded again), then 50 swaps each to a new
//!    build (a new library every time, never unloaded): resident memory and
//!    open descriptors before and after, per swap; the emulator still
//!    serves.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::blocking::Client;
use serde_json::{json, Value};

const WINDOW_MS: u64 = 100;

struct Server {
    child: Child,
    base: String,
    client: Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(exe: &Path, package: &Path, args: &[&str]) -> Result<Server> {
        let mut child = Command::new(exe)
            .arg("run")
            .arg(package)
            .args(["--bind", "127.0.0.1:0", "--local-buffers"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting bitstream-emulator")?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if (line.contains(" WARN ") || line.contains("ERROR"))
                    && !line.contains("not reloaded")
                {
                    eprintln!("emulator: {line}");
                }
                let _ = tx.send(line);
            }
        });
        let port = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .context("the emulator did not report serving")?;
            if let Some(rest) = line.split("on http://127.0.0.1:").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                break digits.parse::<u16>()?;
            }
        };
        thread::spawn(move || for _ in rx {});
        Ok(Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()?,
        })
    }

    fn get(&self, path: &str) -> Result<Value> {
        let r = self.client.get(format!("{}{path}", self.base)).send()?;
        if !r.status().is_success() {
            bail!("GET {path}: {} {}", r.status(), r.text()?);
        }
        Ok(r.json()?)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()?;
        if !r.status().is_success() {
            bail!("POST {path}: {} {}", r.status(), r.text()?);
        }
        Ok(r.json()?)
    }

    fn plugin(&self, ty: &str) -> Result<Value> {
        let all = self.get("/plugins")?;
        all["plugins"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p["ip_block_type"] == ty))
            .cloned()
            .context("no such type in GET /plugins")
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, Iterator::count)
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }
}

fn copy_package(from: &Path, extra: Option<(&Path, &str)>) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("bitstream-swap-bench-")
        .tempdir()?;
    for entry in walkdir::WalkDir::new(from.join("emulators")) {
        let entry = entry?;
        let rel = entry.path().strip_prefix(from)?;
        let to = dir.path().join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    if let Some((probe, config_extra)) = extra {
        let folder = dir.path().join("emulators/probe/emulator");
        std::fs::create_dir_all(&folder)?;
        std::fs::copy(probe, folder.join("libfixture_probe.so"))?;
        let path = dir.path().join("emulators/config.json");
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let blocks: Value = serde_json::from_str(config_extra)?;
        for b in blocks.as_array().expect("a list") {
            config["ip_blocks"]
                .as_array_mut()
                .expect("ip_blocks")
                .push(b.clone());
        }
        std::fs::write(&path, config.to_string())?;
    }
    Ok(dir)
}

fn library_in(folder: &Path) -> Result<PathBuf> {
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "so") {
            return Ok(path);
        }
    }
    bail!("{}: no library", folder.display())
}

/// The library's bytes with `n` (8 bytes) appended: a different file that
/// loads the same.
fn variant(original: &[u8], n: u64) -> Vec<u8> {
    let mut bytes = original.to_vec();
    bytes.extend_from_slice(&n.to_le_bytes());
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    bitstream_host::engine::sha256_hex(bytes)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn first_block_of(server: &Server, ty: &str) -> Result<String> {
    let p = server.plugin(ty)?;
    Ok(p["blocks"][0].as_str().context("a block")?.to_owned())
}

fn latency(exe: &Path, package: &Path, ty: &str) -> Result<Value> {
    let dir = copy_package(package, None)?;
    let window = WINDOW_MS.to_string();
    let server = Server::start(
        exe,
        dir.path(),
        &[
            "--watch",
            "--watch-debounce-ms",
            &window,
            "--pulse-period-ms",
            "10",
            "--log-level",
            "info",
        ],
    )?;
    let file = library_in(&dir.path().join(format!("emulators/{ty}/emulator")))?;
    let original = std::fs::read(&file)?;
    let block = first_block_of(&server, ty)?;
    let mut times = Vec::new();
    for n in 1..=50u64 {
        let bytes = variant(&original, n);
        let hash = sha256(&bytes);
        std::fs::write(&file, &bytes)?; // written and closed
        let complete = Instant::now();
        loop {
            if server.plugin(ty)?["sha256"] == hash.as_str() {
                break;
            }
            if complete.elapsed() > Duration::from_secs(30) {
                bail!("swap {n} did not happen: {}", server.plugin(ty)?);
            }
            thread::sleep(Duration::from_millis(1));
        }
        server.get(&format!("/{block}/state"))?;
        times.push(complete.elapsed().as_secs_f64() * 1e3);
        thread::sleep(Duration::from_millis(50));
    }
    let swaps = server.plugin(ty)?["swaps"].clone();
    times.sort_by(f64::total_cmp);
    let (median, p95) = (percentile(&times, 0.5), percentile(&times, 0.95));
    Ok(json!({
        "type": ty,
        "swaps": swaps,
        "debounce_window_ms": WINDOW_MS,
        "file_complete_to_new_code_ms": {"median": median, "p95": p95, "min": times[0], "max": times[times.len() - 1]},
        "after_the_window_ms": {"median": median - WINDOW_MS as f64, "p95": p95 - WINDOW_MS as f64},
    }))
}

fn under_load(exe: &Path, package: &Path, probe: &Path, probe_v2: &Path) -> Result<Value> {
    let extra = r#"[
        {"id": "p1", "type": "probe", "downstream_block_ids": ["p2"], "constants": {"name": "p1"}},
        {"id": "p2", "type": "probe", "constants": {"name": "p2"}}
    ]"#;
    let dir = copy_package(package, Some((probe, extra)))?;
    let server = Arc::new(Server::start(
        exe,
        dir.path(),
        &["--pulse-period-ms", "10", "--log-level", "info"],
    )?);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    // Four threads, 250 requests a second each: GET a VCC block's state,
    // GET a probe's echo, POST a probe's configure, GET the listing of plugins.
    let paths = [
        ("GET", "/ethernet_200g/state"),
        ("GET", "/p2/echo/x"),
        ("POST", "/p2/configure"),
        ("GET", "/b123vcc/state"),
    ];
    let mut load = Vec::new();
    for (method, path) in paths {
        let (server, stop, sent, failed, errors) = (
            server.clone(),
            stop.clone(),
            sent.clone(),
            failed.clone(),
            errors.clone(),
        );
        load.push(thread::spawn(move || {
            let period = Duration::from_micros(4000);
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let url = format!("{}{path}", server.base);
                let result = if method == "GET" {
                    server.client.get(&url).send()
                } else {
                    server.client.post(&url).json(&json!({"name": "p2"})).send()
                };
                sent.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes();
                    }
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("{method} {path}: {}", r.status()));
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.lock().unwrap().push(format!("{method} {path}: {e}"));
                    }
                }
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
        }));
    }
    // Drain the probes' logs: every pulse sequence each logged.
    let seen: Arc<Mutex<BTreeMap<&'static str, Vec<u64>>>> = Arc::default();
    let drain = |server: &Server, seen: &Mutex<BTreeMap<&'static str, Vec<u64>>>| -> Result<()> {
        for block in ["p1", "p2"] {
            let status = server.get(&format!("/{block}/status?clear=true"))?;
            let mut seen = seen.lock().unwrap();
            let list = seen.entry(block).or_default();
            for line in status["log"].as_array().context("log")? {
                if let Some(n) = line.as_str().and_then(|l| l.strip_prefix("pulse ")) {
                    list.push(n.parse()?);
                }
            }
        }
        Ok(())
    };
    let drainer = {
        let (server, stop, seen) = (server.clone(), stop.clone(), seen.clone());
        thread::spawn(move || -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                drain(&server, &seen)?;
                thread::sleep(Duration::from_millis(200));
            }
            Ok(())
        })
    };
    thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let sent_before = sent.load(Ordering::Relaxed);
    let mut swap_ms = Vec::new();
    for n in 0..50 {
        let path = if n % 2 == 0 { probe_v2 } else { probe };
        let t = Instant::now();
        server.post("/plugins/probe/reload", &json!({"path": path}))?;
        swap_ms.push(t.elapsed().as_secs_f64() * 1e3);
        thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent_during = sent.load(Ordering::Relaxed) - sent_before;
    thread::sleep(Duration::from_millis(500));
    server.post("/stop", &json!({})).ok();
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    drainer.join().expect("the drainer")?;
    drain(&server, &seen)?;
    let mut pulses = serde_json::Map::new();
    for (block, list) in seen.lock().unwrap().iter() {
        let mut lost = 0u64;
        let mut doubled = 0u64;
        for pair in list.windows(2) {
            match pair[1].cmp(&(pair[0] + 1)) {
                std::cmp::Ordering::Greater => lost += pair[1] - pair[0] - 1,
                std::cmp::Ordering::Less => doubled += 1,
                std::cmp::Ordering::Equal => {}
            }
        }
        pulses.insert(
            (*block).to_owned(),
            json!({"pulses_seen": list.len(), "first": list.first(), "last": list.last(), "lost": lost, "doubled_or_out_of_order": doubled}),
        );
    }
    swap_ms.sort_by(f64::total_cmp);
    let errors = errors.lock().unwrap();
    Ok(json!({
        "swaps": server.plugin("probe")?["swaps"],
        "swap_request_ms": {"median": percentile(&swap_ms, 0.5), "p95": percentile(&swap_ms, 0.95)},
        "requests_during_swaps": sent_during,
        "requests_per_second_during_swaps": (sent_during as f64 / elapsed).round(),
        "requests_total": sent.load(Ordering::Relaxed),
        "failed_requests": failed.load(Ordering::Relaxed),
        "first_failures": errors.iter().take(5).collect::<Vec<_>>(),
        "pulses": pulses,
    }))
}

fn memory(exe: &Path, package: &Path, ty: &str) -> Result<Value> {
    let dir = copy_package(package, None)?;
    let server = Server::start(
        exe,
        dir.path(),
        &["--pulse-period-ms", "10", "--log-level", "info"],
    )?;
    let file = library_in(&dir.path().join(format!("emulators/{ty}/emulator")))?;
    let original = std::fs::read(&file)?;
    let alt = dir.path().join("alt.so");
    std::fs::write(&alt, variant(&original, 1))?;
    let block = first_block_of(&server, ty)?;
    let reload = |path: &Path| -> Result<Value> {
        server.post(&format!("/plugins/{ty}/reload"), &json!({"path": path}))
    };
    // Warm up: one swap each way, so the first-use costs are not counted.
    for path in [&alt, &file] {
        reload(path)?;
    }
    // 1. Two files, back and forth (what rollback-style work does): each
    //    is loaded once, then reused.
    let before = server.rss_kib();
    let started = Instant::now();
    for n in 0..200 {
        reload(if n % 2 == 0 { &alt } else { &file })?;
    }
    let elapsed = started.elapsed();
    let after = server.rss_kib();
    server.get(&format!("/{block}/state"))?;
    server.get("/")?;
    // 2. A new build every time (an engineer rebuilding): each swap loads
    //    a new library, which is never unloaded.
    let distinct = 50;
    let fds_before = server.open_fds();
    let new_before = server.rss_kib();
    let new_started = Instant::now();
    for n in 0..distinct {
        std::fs::write(&alt, variant(&original, 1000 + n))?;
        reload(&alt)?;
    }
    let new_elapsed = new_started.elapsed();
    let new_after = server.rss_kib();
    let fds_after = server.open_fds();
    server.get(&format!("/{block}/state"))?;
    server.get("/")?;
    let status = server.plugin(ty)?;
    Ok(json!({
        "type": ty,
        "library_bytes": original.len(),
        "same_two_files": {
            "swaps": 200,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "rss_growth_per_swap_kib": (after as f64 - before as f64) / 200.0,
            "seconds": elapsed.as_secs_f64(),
        },
        "a_new_build_each_swap": {
            "swaps": distinct,
            "rss_before_kib": new_before,
            "rss_after_kib": new_after,
            "rss_growth_per_swap_kib": (new_after as f64 - new_before as f64) / distinct as f64,
            "open_fds_per_swap": (fds_after as f64 - fds_before as f64) / distinct as f64,
            "seconds": new_elapsed.as_secs_f64(),
        },
        "still_serving": true,
        "total_swaps_of_type": status["swaps"],
        "loaded_libraries_of_type": status["loaded_libraries"],
    }))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (exe, package, ty, probe, probe_v2, only) = match args.as_slice() {
        [a, b, c, d, e] => (a, b, c, d, e, "all"),
        [a, b, c, d, e, f] => (a, b, c, d, e, f.as_str()),
        _ => bail!("usage: swap_bench <bitstream-emulator> <vcc package> <vcc type> <libfixture_probe.so> <libfixture_probe_v2.so> [latency|load|memory|all]"),
    };
    let (exe, package) = (Path::new(exe), Path::new(package));
    let mut out = json!({});
    if matches!(only, "all" | "latency") {
        out["latency"] = latency(exe, package, ty)?;
    }
    if matches!(only, "all" | "load") {
        out["under_load"] = under_load(exe, package, Path::new(probe), Path::new(probe_v2))?;
    }
    if matches!(only, "all" | "memory") {
        out["memory"] = memory(exe, package, ty)?;
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
