#!/usr/bin/env bash
# The main job until the real VCC bitstream lands: build, assemble a small
# bitstream package from the example plugins, and validate it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace --locked
package=target/demo-package
rm -rf "$package"
mkdir -p "$package/emulators/counter/emulator"
cp target/release/libfixture_minimal.so "$package/emulators/counter/emulator/"
cat > "$package/emulators/config.json" <<'JSON'
{
  "id": "demo",
  "version": "0.0.1",
  "ip_blocks": [
    {"id": "counter_in", "display_name": "Input counter", "type": "counter",
     "downstream_block_ids": ["counter_a", "counter_b"], "constants": {"label": "in"}},
    {"id": "counter_a", "type": "counter", "downstream_block_ids": ["counter_out"]},
    {"id": "counter_b", "type": "counter", "downstream_block_ids": ["counter_out"]},
    {"id": "counter_out", "type": "counter", "downstream_block_ids": []}
  ],
  "first": ["counter_in"]
}
JSON
exec target/release/validate-bitstream "$package" "$@"
