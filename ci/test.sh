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
ci/check-plugin-deps.sh
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
# JsonSchema::validate outside a host, as plugin unit tests use it (the
# `local-schema-check` feature); the default build answers 500 there.
cargo test -p bitstream-sdk --features local-schema-check --locked --doc schema
# The SDK reaches outside teams: it packages (with the buffer crate it
# depends on), a block depending on it by git builds, validates and serves,
# and compatibility within 1.x holds with real builds (a plugin built
# against SDK 1.1 from this clone's history serves; a changed ABI type is
# refused in a few lines). The last two build into target/sdk-compat.
cargo package -p bitstream-buffer -p bitstream-sdk --no-verify --offline --locked
ci/sdk-compat.sh
ci/sdk-git-dependency.sh
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
# An IP block written out of tree: generated with `bitstream-emulator new`
# outside the workspace, tested, built, validated and served (README.md,
# "Write an IP block out of tree"). Builds in target/out-of-tree.
ci/out-of-tree.sh
