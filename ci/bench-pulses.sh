#!/usr/bin/env bash
# Benchmark (not part of the tests): accelerated pulses per second through a
# 36-block graph shaped like fixtures/vcc_processing/emulators/config.json
# (same blocks, same 60 edges), every block the minimal `counter` fixture
# (a pulse handler that crosses the FFI boundary; default signal handling).
# Usage: ci/bench-pulses.sh [pulses-per-run] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
pulses=${1:-200000}
runs=${2:-7}

cargo build --release --locked -p bitstream-host -p fixture-minimal >/dev/null
package=$(mktemp -d)
trap 'rm -rf "$package"' EXIT
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
target/release/bitstream-emulator bench "$package" --pulses "$pulses" --runs "$runs"
