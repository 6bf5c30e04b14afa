#!/usr/bin/env bash
# Benchmark (not part of the tests): HTTP GET /<block>/state under load on
# loopback with wrk (Debian package `wrk`), resident memory of the running
# emulator, and wall time from launch to the first successful GET /state.
# The package is shaped like fixtures/vcc_processing/emulators/config.json
# (36 blocks), every block the minimal `counter` fixture, real-time pulses on.
# Usage: ci/bench-http.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-10}
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 2; }

cargo build --release --locked -p bitstream-host -p fixture-minimal >/dev/null
package=$(mktemp -d)
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$package" "$log"' EXIT
mkdir -p "$package/emulators/counter/emulator"
cp target/release/libfixture_minimal.so "$package/emulators/counter/emulator/"
python3 - "$package/emulators/config.json" <<'PY'
import json, sys
config = json.load(open("fixtures/vcc_processing/emulators/config.json"))
for block in config["ip_blocks"]:
    block["type"] = "counter"
    block.pop("constants", None)
json.dump(config, open(sys.argv[1], "w"), indent=1)
PY
port=5301
start=$(date +%s%N)
target/release/bitstream-emulator run "$package" --bind 127.0.0.1:$port --log-level warn 2>"$log" &
pid=$!
until curl -sf "http://127.0.0.1:$port/state" >/dev/null; do sleep 0.002; done
first=$(( ($(date +%s%N) - start) / 1000 ))
echo "launch to first successful GET /state: ${first} us"
echo "resident memory after start: $(ps -o rss= -p "$pid") KiB"
wrk -t1 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$port/b123vcc/state"
echo "resident memory after load: $(ps -o rss= -p "$pid") KiB"
