#!/usr/bin/env bash
# The main command: build the engine and the nine real VCC IP block
# emulators (release), place the plugins into fixtures/vcc_processing, and
# serve that bitstream on http://127.0.0.1:5001. Extra arguments go to
# `bitstream-emulator run` (e.g. --pulse-period-ms 100, --id fhs-vcc-emulator-1).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p bitstream-host -p bitstream-validate
ci/vcc-package.sh release
exec target/release/bitstream-emulator run fixtures/vcc_processing --bind 127.0.0.1:5001 "$@"
