#!/usr/bin/env bash
# Benchmark (not run by the tests): what does the standalone injector add to
# an injection? Serves N emulators (`bitstream-emulator run`, the probe
# fixture package: two blocks, real-time pulses stopped) and one
# `bitstream-emulator injector` in front of them, then times, with one
# keep-alive client each:
#   direct:   POST /inject to one emulator, one group of one event
#   injector: POST /inject to the injector, the same one group
#   fan-out:  POST /inject to the injector, one group for each of the N
#             emulators (handed on at once)
# and reports requests per second and the latency p50/p99 of each.
# Usage: ci/bench-injector.sh [debug|release] [--emulators N] [--requests R]
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
emulators=4
requests=2000
while [ $# -gt 0 ]; do
    case "$1" in
        debug|release) profile=$1; shift ;;
        --emulators) emulators=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        *) echo "usage: $0 [debug|release] [--emulators N] [--requests R]" >&2; exit 2 ;;
    esac
done
flag=()
[ "$profile" = release ] && flag=(--release)
cargo build "${flag[@]}" --locked -p bitstream-host --bin bitstream-emulator -p fixture-probe
bin=target/$profile/bitstream-emulator

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/pkg/emulators/probe/emulator"
cp "target/$profile/libfixture_probe.so" "$work/pkg/emulators/probe/emulator/"
cat >"$work/pkg/emulators/config.json" <<'JSON'
{"id": "probe_pair", "version": "0.0.1", "first": ["a"],
 "ip_blocks": [{"id": "a", "type": "probe", "downstream_block_ids": ["b"], "constants": {"name": "a"}},
               {"id": "b", "type": "probe", "constants": {"name": "b"}}]}
JSON

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
specs=()
ports=()
for i in $(seq 1 "$emulators"); do
    port=$(free_port)
    "$bin" run "$work/pkg" --bind "127.0.0.1:$port" --id "emu-$i" --stopped \
        --local-buffers --log-level ERROR 2>"$work/emu-$i.log" &
    pids+=($!)
    specs+=(--emulator "emu-$i=http://127.0.0.1:$port")
    ports+=("$port")
done
injector_port=$(free_port)
"$bin" injector --bind "127.0.0.1:$injector_port" "${specs[@]}" --log-level ERROR \
    2>"$work/injector.log" &
pids+=($!)

python3 - "$injector_port" "$requests" "${ports[@]}" <<'PY'
import http.client, json, statistics, sys, time

injector, requests, ports = int(sys.argv[1]), int(sys.argv[2]), [int(p) for p in sys.argv[3:]]

def wait(port):
    for _ in range(500):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"nothing answers on port {port}")

for port in ports + [injector]:
    wait(port)

def group(i):
    # The probe's queue holds at most 10,000 waiting injections; offset 0
    # events are delivered at once, so it never fills.
    return {"bitstream_emulator_id": f"emu-{i}", "ip_block_emulator_id": "b",
            "events": [{"severity": "GENERAL", "value": {"n": 1}, "offset": 0}]}

def run(name, port, groups):
    body = json.dumps({"injector_event_groups": groups})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    started = time.perf_counter()
    for _ in range(requests):
        t = time.perf_counter()
        connection.request("POST", "/inject", body, {"Content-Type": "application/json"})
        reply = connection.getresponse()
        reply.read()
        latencies.append(time.perf_counter() - t)
        if reply.status != 202:
            sys.exit(f"{name}: status {reply.status}")
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests_per_second": round(requests / elapsed),
            "p50_ms": round(statistics.median(latencies) * 1e3, 3),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1e3, 3)}

print(json.dumps({
    "emulators": len(ports),
    "requests": requests,
    "direct": run("direct", ports[0], [group(1)]),
    "injector": run("injector", injector, [group(1)]),
    "fan_out": run("fan-out", injector, [group(i + 1) for i in range(len(ports))]),
}, indent=2))
PY
