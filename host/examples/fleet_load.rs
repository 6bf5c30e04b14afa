//! The load tool of `ci/bench-fleet.sh`: HTTP `GET`s against many
//! emulators, as JSON figures on stdout.
//!
//! ```text
//! fleet_load ready --urls FILE [--since-ns NS] [--timeout-s S]
//!     waits until every URL's /state answers 200; prints the milliseconds
//!     since NS (a `date +%s%N` taken when the emulators were spawned).
//! fleet_load load --urls FILE [--rate R] [--seconds S] [--path /state] [--seed N]
//!     open loop: R requests per second for S seconds, each to a random
//!     URL; latency is counted from each request's *scheduled* time, so a
//!     slow server cannot hide its delay by slowing the client down
//!     (no coordinated omission); prints p50/p90/p99/max and errors.
//! ```
//!
//! Rust (tokio and reqwest, already in the lock file) rather than Python
//! threads: at 2,000 requests per second the goal is a p99 under 5 ms, and
//! a Python client's own scheduling jitter (the GIL, thread wake-ups) is of
//! the same order, so it would measure itself.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn urls(args: &[String]) -> Vec<String> {
    let file = arg(args, "--urls").expect("--urls FILE (one base URL a line)");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let urls: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    assert!(!urls.is_empty(), "{file} lists no URL");
    urls
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .expect("an HTTP client")
}

/// A small xorshift: random emulators without another dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn ready(args: Vec<String>) {
    let urls = urls(&args);
    let since_ns: Option<u128> = arg(&args, "--since-ns").map(|s| s.parse().expect("--since-ns"));
    let timeout = Duration::from_secs_f64(
        arg(&args, "--timeout-s").map_or(300.0, |s| s.parse().expect("--timeout-s")),
    );
    let started = Instant::now();
    let client = client();
    let mut waiting: Vec<String> = urls.clone();
    while !waiting.is_empty() {
        assert!(
            started.elapsed() < timeout,
            "{} of {} never answered GET /state, among them {}",
            waiting.len(),
            urls.len(),
            waiting[0]
        );
        let checks = waiting.iter().map(|url| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let ok = client
                    .get(format!("{url}/state"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                (url, ok)
            }
        });
        let results = futures_util::future::join_all(checks).await;
        waiting = results
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(url, _)| url)
            .collect();
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    let ms = since_ns.map_or(started.elapsed().as_secs_f64() * 1000.0, |since| {
        (now_ns.saturating_sub(since)) as f64 / 1e6
    });
    println!(
        "{}",
        json!({"emulators": urls.len(), "all_answer_ms": ms.round()})
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn load(args: Vec<String>) {
    let urls = Arc::new(urls(&args));
    let rate: f64 = arg(&args, "--rate").map_or(2000.0, |s| s.parse().expect("--rate"));
    let seconds: f64 = arg(&args, "--seconds").map_or(10.0, |s| s.parse().expect("--seconds"));
    let path = arg(&args, "--path").unwrap_or_else(|| "/state".to_owned());
    let mut rng =
        Rng(arg(&args, "--seed").map_or(0x9e37_79b9_7f4a_7c15, |s| s.parse().expect("--seed")));
    let client = client();
    // Warm the connection pool: one request per emulator.
    for url in urls.iter() {
        let _ = client.get(format!("{url}{path}")).send().await;
    }
    let total = (rate * seconds).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (done, mut results) = tokio::sync::mpsc::unbounded_channel::<Result<f64, String>>();
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        let url = format!("{}{path}", urls[rng.below(urls.len())]);
        let client = client.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let answer = client.get(&url).send().await;
            let outcome = match answer {
                Ok(reply) if reply.status().is_success() => match reply.bytes().await {
                    Ok(_) => Ok(scheduled.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => Err(format!("{url}: {e}")),
                },
                Ok(reply) => Err(format!("{url}: status {}", reply.status())),
                Err(e) => Err(format!("{url}: {e}")),
            };
            let _ = done.send(outcome);
        });
    }
    let sent_for = start.elapsed();
    drop(done);
    let mut latencies = Vec::with_capacity(total);
    let mut errors = Vec::new();
    while let Some(outcome) = results.recv().await {
        match outcome {
            Ok(ms) => latencies.push(ms),
            Err(e) => errors.push(e),
        }
    }
    latencies.sort_by(f64::total_cmp);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    println!(
        "{}",
        json!({
            "path": path,
            "emulators": urls.len(),
            "requests": total,
            "target_rate_per_s": rate,
            "achieved_rate_per_s": (total as f64 / sent_for.as_secs_f64()).round(),
            "ok": latencies.len(),
            "errors": errors.len(),
            "first_error": errors.first(),
            "latency_ms": {
                "p50": round(percentile(&latencies, 50.0)),
                "p90": round(percentile(&latencies, 90.0)),
                "p99": round(percentile(&latencies, 99.0)),
                "max": round(latencies.last().copied().unwrap_or(f64::NAN)),
            },
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    match args.first().map(String::as_str) {
        Some("ready") => runtime.block_on(ready(args)),
        Some("load") => runtime.block_on(load(args)),
        _ => {
            eprintln!("usage: fleet_load ready|load --urls FILE [options] (see the source)");
            std::process::exit(2);
        }
    }
}
