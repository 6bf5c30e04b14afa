#!/usr/bin/env bash
# The project's test command (README.md gives it; .ci/run runs it).
# Builds every crate first: the validator's tests load the fixture plugins
# (cdylibs) that `cargo build --workspace` produces in target/debug, and the
# real VCC plugins are placed into fixtures/vcc_processing*/ (the host's
# vcc test assembles its own package from target/debug all the same).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo build --workspace --locked
ci/vcc-package.sh debug --no-build
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The SDK without its default `buffer` feature (a plugin that uses no
# device buffer): it builds, and a declared catalog still reaches the host.
cargo test -p bitstream-sdk --no-default-features --locked --lib --test catalog_without_buffers
# The fuzz targets (fuzz/, outside the workspace), bounded: 3000 cases per
# target on the stable runner, in the workspace's target directory
# (FUZZ_ENGINE=libfuzzer: 3000 runs per target under cargo fuzz instead).
if [ "${FUZZ_ENGINE:-stable}" = libfuzzer ]; then
    ci/fuzz.sh libfuzzer --runs 3000
else
    ci/fuzz.sh ci --cases 3000
fi
# schemathesis against the real VCC emulator's /openapi.json, bounded
# (10 examples per operation, about a minute).
ci/schemathesis.sh debug
