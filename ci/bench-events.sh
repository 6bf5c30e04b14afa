#!/usr/bin/env bash
# Benchmark (not run by the tests): does a crowd of GET /events clients slow
# the engine? Serves the real VCC package (release build) with real-time
# pulses at 1 kHz (--pulse-period-ms 1) and compares, in interleaved
# rounds, three conditions: no client; N clients that read every event;
# N clients that connect and never read (each stuck at its bounded queue).
# Meanwhile a toggler flips the signal's packet_rate every 50 ms, so state
# and signal events flow whenever someone listens.
# Per condition it reports the medians of
#   realtime_pps: pulses per second achieved at the 1 kHz pace (5 s windows)
#   batch_pps:    pulses per second of POST /pulse?count=50000 (real-time
#                 pulses stopped meanwhile), the engine's full speed
# and, for reading clients, how many events each received.
# Usage: ci/bench-events.sh [--clients N] [--rounds R] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

clients=100
rounds=3
build=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) clients=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        *) echo "usage: $0 [--clients N] [--rounds R] [--no-build]" >&2; exit 2 ;;
    esac
done
if [ "$build" = yes ]; then
    ci/vcc-package.sh release
    cargo build --release --locked -p bitstream-host --bin bitstream-emulator
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
target/release/bitstream-emulator run fixtures/vcc_processing --bind "127.0.0.1:$port" \
    --pulse-period-ms 1 --log-level warn 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT

python3 - "$port" "$clients" "$rounds" <<'PY'
import json, socket, statistics, sys, threading, time, urllib.request

port, clients, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
base = f"http://127.0.0.1:{port}"

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            text = reply.read()
    except urllib.error.HTTPError as error:
        text = error.read()
    return json.loads(text) if text else None

for _ in range(200):
    try:
        call("GET", "/state")
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("the emulator did not start")

# Bring the stateful blocks up, so packet-rate changes move their states.
for block in ("ethernet_200g", "packet_validation", "wideband_input_buffer"):
    call("POST", f"/{block}/recover/", {})
    call("POST", f"/{block}/start/", {})

stop_toggling = threading.Event()
def toggle():
    rate = 0
    while not stop_toggling.is_set():
        call("PUT", "/signal", {"packet_rate": rate})
        rate = 1_000_000 if rate == 0 else 0
        time.sleep(0.05)
toggler = threading.Thread(target=toggle, daemon=True)
toggler.start()

class Client:
    """One GET /events connection; reads (and counts events) or never reads."""
    def __init__(self, reads):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.events = 0
        self.missed = 0
        self.closed = False
        if reads:
            threading.Thread(target=self.read, daemon=True).start()
    def read(self):
        pending = b""
        while not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            pending += chunk
            self.events += pending.count(b"\nid: ")
            self.missed += pending.count(b"event: missed")
            pending = pending[-8:]
    def close(self):
        self.closed = True
        self.sock.close()

def measure(condition):
    crowd = []
    if condition != "none":
        crowd = [Client(reads=(condition == "reading")) for _ in range(clients)]
        time.sleep(1.0)  # every client subscribed
    p0, t0 = call("GET", "/")["pulses"], time.monotonic()
    time.sleep(5.0)
    p1, t1 = call("GET", "/")["pulses"], time.monotonic()
    realtime = (p1 - p0) / (t1 - t0)
    call("POST", "/stop")
    batch = call("POST", "/pulse?count=50000")["pulses_per_second"]
    call("POST", "/start")
    received = sum(c.events for c in crowd) / len(crowd) if condition == "reading" else None
    for c in crowd:
        c.close()
    time.sleep(0.5)
    return realtime, batch, received

conditions = ["none", "reading", "stalled"]
results = {c: {"realtime": [], "batch": [], "received": []} for c in conditions}
for r in range(rounds):
    for condition in (conditions if r % 2 == 0 else list(reversed(conditions))):
        realtime, batch, received = measure(condition)
        results[condition]["realtime"].append(realtime)
        results[condition]["batch"].append(batch)
        if received is not None:
            results[condition]["received"].append(received)
        print(f"round {r + 1} {condition:8} realtime {realtime:8.1f} pulses/s  batch {batch:10.0f} pulses/s"
              + (f"  {received:.0f} events per client" if received is not None else ""), file=sys.stderr)
stop_toggling.set()

summary = {
    "clients": clients,
    "rounds": rounds,
    "pulse_period_ms": 1,
    "conditions": {
        c: {
            "median_realtime_pulses_per_second": round(statistics.median(v["realtime"]), 1),
            "median_batch_pulses_per_second": round(statistics.median(v["batch"])),
            "min_batch_pulses_per_second": round(min(v["batch"])),
            "max_batch_pulses_per_second": round(max(v["batch"])),
            **({"median_events_per_client": round(statistics.median(v["received"]))} if v["received"] else {}),
        }
        for c, v in results.items()
    },
}
print(json.dumps(summary, indent=2))
PY
