#!/usr/bin/env bash
# Property-based HTTP run: schemathesis (from PyPI) against /openapi.json of
# the real VCC emulator (fixtures/vcc_processing, 36 blocks, real-time
# pulses every 100 ms), one block of each type plus the emulator routes.
#
# Passes when: no check fails (undocumented status codes, 5xx among them;
# content types and response bodies against the schema), no plugin
# panicked, and the emulator still answers afterwards. Prints the requests
# sent, by status.
#
# Usage: ci/schemathesis.sh [debug|release] [--max-examples N] [--seed S]
#   (default: debug, 10 examples per operation, seed 1; CI uses the
#   defaults, about a minute; raise N by hand for a longer run)
# Needs: target/<profile>/bitstream-emulator and the VCC plugins placed
# (ci/vcc-package.sh), python3 and schemathesis (.ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
examples=10
seed=1
while [ $# -gt 0 ]; do
    case "$1" in
        debug | release) profile=$1 ;;
        --max-examples) examples=$2; shift ;;
        --seed) seed=$2; shift ;;
        *) echo "usage: $0 [debug|release] [--max-examples N] [--seed S]" >&2; exit 2 ;;
    esac
    shift
done

binary=target/$profile/bitstream-emulator
package=fixtures/vcc_processing
[ -x "$binary" ] || { echo "$0: $binary is missing; build it first" >&2; exit 1; }
ls "$package"/emulators/*/emulator/lib*.so >/dev/null 2>&1 ||
    { echo "$0: no plugins in $package; run ci/vcc-package.sh $profile first" >&2; exit 1; }
if command -v schemathesis >/dev/null; then
    schemathesis=(schemathesis)
elif python3 -c 'import schemathesis' 2>/dev/null; then
    schemathesis=(python3 -m schemathesis.cli)
else
    echo "$0: schemathesis is missing: python3 -m pip install schemathesis" >&2
    exit 1
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$binary" run "$package" --bind "127.0.0.1:$port" --id "schemathesis-$$" --local-buffers \
    --pulse-period-ms 100 --log-level WARNING 2>"$work/emulator.log" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
answers() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
        "http://127.0.0.1:$port/state" >/dev/null 2>&1
}
for _ in $(seq 1 200); do
    answers && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/emulator.log" >&2; exit 1; }
    sleep 0.1
done

# One block of each of the eight types; /terminate would end the run and
# /pulse with a large count would take minutes (both have their own tests).
blocks='ethernet_200g|packet_validation|wideband_input_buffer|b123_wideband_power_meter|wideband_frequency_shifter|b123vcc|fs_selection_26_2_1|packetizer'
status=0
"${schemathesis[@]}" run "http://127.0.0.1:$port/openapi.json" \
    --include-path-regex "^/(state|start|stop|signal|inject|($blocks)/.*)\$" \
    --exclude-path-regex '^/(terminate|pulse)$' \
    --checks status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$examples" --seed "$seed" --generation-database none \
    --request-timeout 30 --no-color \
    --report har --report-har-path "$work/requests.har" >"$work/schemathesis.txt" 2>&1 || status=$?
grep -E 'generated|passed|failed|issues found|No issues' "$work/schemathesis.txt" || true

python3 - "$work/requests.har" <<'EOF'
import collections, json, sys
entries = json.load(open(sys.argv[1]))["log"]["entries"]
by_status = collections.Counter(e["response"]["status"] for e in entries)
print(f"requests: {len(entries)}; by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
for e in entries:
    if e["response"]["status"] >= 500:
        print(f"  {e['response']['status']} {e['request']['method']} {e['request']['url']}")
EOF

if [ "$status" -ne 0 ]; then
    sed -n '/FAILURES/,$p' "$work/schemathesis.txt" | head -200
    echo "$0: schemathesis found problems" >&2
    exit 1
fi
if grep -q "panicked" "$work/emulator.log"; then
    grep "panicked" "$work/emulator.log" | head -20
    echo "$0: a plugin panicked" >&2
    exit 1
fi
answers ||
    { echo "$0: the emulator no longer answers" >&2; cat "$work/emulator.log" >&2; exit 1; }
echo "$0: 0 crashes, 0 undocumented statuses (5xx included), emulator alive"
