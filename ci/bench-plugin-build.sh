#!/usr/bin/env bash
# Build time of a small IP block crate outside the workspace, as a team
# with its own repository has it: fixtures/plugins/minimal copied into a
# temporary folder, depending on this repository's crates by path, with
# its own target directory and this repository's Cargo.lock (crates already
# downloaded; --offline). Measures a cold `cargo build --release`, then a
# rebuild after a one-line change, and prints both with the .so size.
# Usage: ci/bench-plugin-build.sh [--keep]   Prints figures; asserts nothing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/bitstream-oot-XXXXXX)
[ "${1:-}" = "--keep" ] || trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src"
cp "$repo/fixtures/plugins/minimal/src/lib.rs" "$dir/src/lib.rs"
cat >"$dir/Cargo.toml" <<TOML
[package]
name = "oot-minimal"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[dependencies]
bitstream-sdk = { path = "$repo/sdk" }
fixture-common = { path = "$repo/fixtures/plugins/common" }

[workspace]
TOML
cp "$repo/Cargo.lock" "$dir/Cargo.lock"
export CARGO_TARGET_DIR="$dir/target"
cd "$dir"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
cargo build --release --offline --quiet
cold=$(echo "$(date +%s.%N) - $start" | bc)
crates=$(ls "$CARGO_TARGET_DIR/release/deps/"*.rlib 2>/dev/null | wc -l)
echo "// one-line change" >>src/lib.rs
start=$(date +%s.%N)
cargo build --release --offline --quiet
warm=$(echo "$(date +%s.%N) - $start" | bc)
printf 'cold release build: %.1f s (%d rlibs)\nrebuild after a one-line change: %.1f s\n' "$cold" "$crates" "$warm"
printf '.so: %d bytes\n' "$(stat -c %s "$CARGO_TARGET_DIR/release/liboot_minimal.so")"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
