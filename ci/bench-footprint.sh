#!/usr/bin/env bash
# Footprint of the real VCC emulator and its plugins (release):
#   - the size of each real VCC plugin's release .so;
#   - the resident memory (VmRSS, VmHWM) of
#     `bitstream-emulator run fixtures/vcc_processing` once it serves.
# Usage: ci/bench-footprint.sh [--no-build]
# Without --no-build it runs `ci/vcc-package.sh release` and builds the
# release binary first. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--no-build" ]; then
    ci/vcc-package.sh release
    cargo build --release --locked -p bitstream-host --bin bitstream-emulator
fi
target=${CARGO_TARGET_DIR:-target}
echo "release plugin sizes (bytes):"
for so in fixtures/vcc_processing/emulators/*/emulator/lib*.so; do
    printf '  %-28s %9d\n' "$(basename "$so")" "$(stat -c %s "$so")"
done
port=${PORT:-5399}
"$target/release/bitstream-emulator" run fixtures/vcc_processing --bind "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/" >/dev/null || { echo "the emulator did not start" >&2; exit 1; }
sleep 2   # a couple of pulses
grep -E '^(VmRSS|VmHWM)' "/proc/$pid/status"
grep -E '^(Rss|Pss):' "/proc/$pid/smaps_rollup"
awk '/^[0-9a-f]+-[0-9a-f]+ / {
         name = $6
         if (name == "" || name ~ /^\[/) part = "heap and anonymous"
         else if (name ~ /^\/memfd:bitstream-/) part = "plugin copies (memfd)"
         else if (name ~ /bitstream-emulator$/) part = "the binary"
         else part = "shared libraries and other files"
     }
     /^Rss:/ { rss[part] += $2 }
     /^Pss:/ { pss[part] += $2 }
     END { for (p in rss) printf "  %-34s Rss %6d kB  Pss %6d kB\n", p, rss[p], pss[p] }' \
    "/proc/$pid/smaps" | sort
