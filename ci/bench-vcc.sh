#!/usr/bin/env bash
# Benchmark (not part of the tests) of the real VCC bitstream
# (fixtures/vcc_processing: 36 blocks, 60 edges, the nine real plugins built
# in release): accelerated pulses per second through its signal chain
# (`bitstream-emulator bench`, median of the runs), and the wall time from
# launching `bitstream-emulator run` to its first successful GET /state
# (polled with curl every 2 ms), median of a few launches.
# Usage: ci/bench-vcc.sh [pulses-per-run] [runs] [launches]
set -euo pipefail
cd "$(dirname "$0")/.."
pulses=${1:-200000}
runs=${2:-7}
launches=${3:-5}
package=fixtures/vcc_processing
port=5302

cargo build --release --locked -p bitstream-host >/dev/null
ci/vcc-package.sh release >/dev/null

echo "== pulses: bitstream-emulator bench $package --pulses $pulses --runs $runs"
target/release/bitstream-emulator bench "$package" --pulses "$pulses" --runs "$runs"

echo "== launch to first successful GET /state ($launches launches, $(nproc) CPUs)"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT
times=()
for _ in $(seq "$launches"); do
    start=$(date +%s%N)
    target/release/bitstream-emulator run "$package" --bind 127.0.0.1:$port \
        --log-level warn 2>/dev/null &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/state" >/dev/null; do
        kill -0 "$pid" 2>/dev/null || { echo "the emulator exited" >&2; exit 1; }
        sleep 0.002
    done
    times+=($(( ($(date +%s%N) - start) / 1000 )))
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "launch to first successful GET /state: median ${sorted[$(( launches / 2 ))]} us" \
     "(min ${sorted[0]} us, max ${sorted[$(( launches - 1 ))]} us; each: ${times[*]} us)"
# The fixtures folder is shared with ci/test.sh (which places debug builds):
# say so if the plugins measured were not these release builds throughout.
for library in "$package"/emulators/*/emulator/*.so; do
    cmp -s "$library" "target/release/$(basename "$library")" ||
        echo "warning: $library changed during the benchmark (not the release build)" >&2
done
