#!/usr/bin/env bash
# What one emulator pod needs (the figures deploy/k8s/base sizes its
# resources from): the real VCC emulator (release build, 36 blocks, one
# real-time pulse per second, device buffers in /dev/shm as in a pod),
# once it serves:
#   - start until it answers GET /state (what the startup probe waits for);
#   - resident memory: VmRSS and VmHWM (peak) after the start and again
#     after the idle window;
#   - CPU while idle (only its pulses and a readiness probe's GET /state
#     every 5 s): user+system seconds over the window, as a fraction of
#     one core;
#   - the bytes its block buffers take in /dev/shm (the pod's memory-backed
#     /dev/shm volume, which counts against the container's memory);
#   - the peak resident memory after 200,000 accelerated pulses and 1,000
#     GET /state 50 at a time.
# Usage: ci/bench-pod.sh [--no-build] [SECONDS]   (idle window, default 30)
# Without --no-build it runs `ci/vcc-package.sh release` and builds the
# release binary first. BINARY and PACKAGE override the binary and the
# package (default: target/release/bitstream-emulator, fixtures/vcc_processing).
# Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--no-build" ]; then
    shift
else
    ci/vcc-package.sh release
    cargo build --release --locked -p bitstream-host --bin bitstream-emulator
fi
window=${1:-30}
binary=${BINARY:-${CARGO_TARGET_DIR:-target}/release/bitstream-emulator}
package=${PACKAGE:-fixtures/vcc_processing}
port=${PORT:-5398}
id="bench-pod-$$"
started=$(date +%s%N)
"$binary" run "$package" --bind "127.0.0.1:$port" --id "$id" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 1500); do
    if curl -sf "http://127.0.0.1:$port/state" >/dev/null 2>&1; then break; fi
    sleep 0.02
done
curl -sf "http://127.0.0.1:$port/state" >/dev/null || { echo "the emulator did not start" >&2; exit 1; }
echo "start until GET /state answers: $(( ($(date +%s%N) - started) / 1000000 )) ms"
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
echo "serving: $(grep -E '^(VmRSS|VmHWM)' "/proc/$pid/status" | tr -s ' \n' ' ')"
shm=$(find /dev/shm -maxdepth 1 -name "bitstream-$id-*" -printf '%s\n' | awk '{n++; s+=$1} END {printf "%d segments, %d bytes", n, s}')
echo "/dev/shm: $shm"
start=$(cpu_ticks)
for _ in $(seq 1 $((window / 5))); do
    sleep 5
    curl -sf "http://127.0.0.1:$port/state" >/dev/null
done
end=$(cpu_ticks)
echo "after ${window} s idle: $(grep -E '^(VmRSS|VmHWM)' "/proc/$pid/status" | tr -s ' \n' ' ')"
awk -v t=$((end - start)) -v hz="$hz" -v w="$window" \
    'BEGIN {printf "idle CPU: %.2f s in %d s = %.4f of one core (%.1f millicores)\n", t / hz, w, t / hz / w, 1000 * t / hz / w}'
echo "threads: $(ls "/proc/$pid/task" | wc -l)"
# Then under load: a batch of accelerated pulses, then 1,000 GET /state
# 50 at a time; the peak (VmHWM) says what the memory limit must allow.
curl -sf -X POST "http://127.0.0.1:$port/pulse?count=200000" >/dev/null
seq 1 1000 | xargs -P 50 -I{} curl -sf -o /dev/null "http://127.0.0.1:$port/state"
echo "after 200,000 pulses and 1,000 GET /state (50 at a time): $(grep -E '^(VmRSS|VmHWM)' "/proc/$pid/status" | tr -s ' \n' ' ')"
