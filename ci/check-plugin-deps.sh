#!/usr/bin/env bash
# Plugins do not link jsonschema (the host checks request bodies; see
# ARCHITECTURE.md): for every plugin crate of the workspace,
#   - `cargo tree -e normal` finds no jsonschema among its dependencies, and
#   - its built library (target/debug, from `cargo build --workspace`) has no
#     symbol from the jsonschema crate.
# Usage: ci/check-plugin-deps.sh   (after `cargo build --workspace`)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/debug"
checked=0
for manifest in plugins/*/Cargo.toml fixtures/plugins/*/Cargo.toml; do
    grep -q '"cdylib"' "$manifest" || continue
    name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -1)
    if cargo tree --offline -e normal -p "$name" --prefix none 2>/dev/null | grep -q '^jsonschema '; then
        echo "check-plugin-deps: $name depends on jsonschema (cargo tree -e normal -p $name -i jsonschema)" >&2
        exit 1
    fi
    lib_name=$(sed -n '/^\[lib\]/,/^\[/s/^name = "\(.*\)"/\1/p' "$manifest" | head -1)
    lib="$target/lib${lib_name:-${name//-/_}}.so"
    [ -f "$lib" ] || { echo "check-plugin-deps: $lib is missing: run cargo build --workspace first" >&2; exit 1; }
    if nm "$lib" 2>/dev/null | grep -q jsonschema; then
        echo "check-plugin-deps: $lib links jsonschema code (nm $lib | grep jsonschema)" >&2
        exit 1
    fi
    checked=$((checked + 1))
done
[ "$checked" -ge 9 ] || { echo "check-plugin-deps: only $checked plugin crates found" >&2; exit 1; }
echo "check-plugin-deps: $checked plugin libraries link no jsonschema"
