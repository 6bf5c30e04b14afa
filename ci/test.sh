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
# GET /ui in a real browser: headless Chromium (Debian's package; .ci/run
# installs it) against the real VCC package. Ignored by a plain `cargo
# test`; keeps target/ui-test/ui.png and timings.json.
cargo test -p bitstream-host --locked --test browser_ui -- --ignored
