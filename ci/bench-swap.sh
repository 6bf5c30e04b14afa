#!/usr/bin/env bash
# Benchmark (not part of the tests): hot-swap of a real VCC plugin.
# - latency: with `run --watch` (debounce window 100 ms), 50 times a
#   byte-different build of the type's library is written over the
#   package's file; from the file being complete (closed) to the new code
#   answering (GET /plugins shows the new SHA-256, then a route of a block of
#   the type answers): median and p95, including the isolated check in a
#   child process, with and without the window;
# - under load: the VCC package plus two probe blocks, pulses at 100 Hz,
#   ~1,000 GET/POST requests a second, 50 swaps of the probe type (v1 <-> v2):
#   failed requests, pulses lost or doubled (every pulse sequence the probes
#   logged, which their restore carries across each swap);
# - memory: 200 swaps of the VCC type in a row between two files (each
#   loaded once, then reused), then 50 swaps each to a new build (a new
#   library each time, never unloaded): resident memory growth per swap,
#   and the emulator still serving.
# Prints one JSON document. Usage: ci/bench-swap.sh [vcc type] [latency|load|memory|all]
# (default wideband_power_meter, which has 9 blocks in fixtures/vcc_processing; all).
set -euo pipefail
cd "$(dirname "$0")/.."
type=${1:-wideband_power_meter}
only=${2:-all}
ci/vcc-package.sh release >/dev/null
cargo build --release --locked -p bitstream-host --bin bitstream-emulator --example swap_bench >/dev/null
cargo build --release --locked -p fixture-probe -p fixture-probe_v2 >/dev/null
target/release/examples/swap_bench target/release/bitstream-emulator \
    fixtures/vcc_processing "$type" \
    target/release/libfixture_probe.so target/release/libfixture_probe_v2.so "$only"
