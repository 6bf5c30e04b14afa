#!/usr/bin/env bash
# Builds the nine real VCC IP block emulators (plugins/<type>/) and places
# each lib<type>.so at emulators/<type>/emulator/ in the two real bitstream
# packages, fixtures/vcc_processing and fixtures/vcc_processing_fan_in, for
# the types each package's emulators/config.json uses. Only the configs are
# committed; the libraries are build output (.gitignore).
# Idempotent: re-running replaces the libraries and removes stale ones.
# Usage: ci/vcc-package.sh [debug|release] [--no-build]   (default: debug)
# --no-build places the libraries a `cargo build --workspace` just built
# (ci/test.sh): building the nine crates alone resolves their dependencies'
# features differently from the workspace build, so it would rebuild and
# relink them, and the workspace build after it would do so again.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 [debug|release] [--no-build]" >&2; exit 2; }
profile=debug
build_them=yes
for arg in "$@"; do
    case "$arg" in
        debug | release) profile=$arg ;;
        --no-build) build_them=no ;;
        *) usage ;;
    esac
done
case "$profile" in
    debug) flags=() ;;
    release) flags=(--release) ;;
esac

# circuit_switch is used by neither config (older bitstreams had it); it is
# built all the same so that it keeps compiling.
types=(ftile_ethernet packet_validation wideband_input_buffer wideband_power_meter
       frequency_shifter vcc_ch20 vcc_fs_selection packetizer circuit_switch)
packages=(fixtures/vcc_processing fixtures/vcc_processing_fan_in)

build=()
for type in "${types[@]}"; do
    build+=(-p "${type//_/-}")
done
if [ "$build_them" = yes ]; then
    cargo build "${flags[@]}" --locked "${build[@]}"
fi

for package in "${packages[@]}"; do
    config="$package/emulators/config.json"
    [ -f "$config" ] || { echo "$0: $config is missing" >&2; exit 1; }
    # The distinct "type" values of the config (one block per line or not).
    used=$(grep -o '"type"[[:space:]]*:[[:space:]]*"[^"]*"' "$config" \
        | sed 's/.*"\([^"]*\)"$/\1/' | sort -u)
    # Libraries of types the config no longer uses are stale.
    for folder in "$package"/emulators/*/emulator; do
        [ -d "$folder" ] || continue
        type=$(basename "$(dirname "$folder")")
        if ! grep -qx "$type" <<<"$used"; then
            rm -f "$folder"/*.so
            rmdir "$folder" "$(dirname "$folder")" 2>/dev/null || true
        fi
    done
    for type in $used; do
        library="target/$profile/lib$type.so"
        [ -f "$library" ] || {
            echo "$0: $config uses type \"$type\", but $library was not built" >&2
            exit 1
        }
        folder="$package/emulators/$type/emulator"
        mkdir -p "$folder"
        # Exactly one shared object per emulator folder: drop any other.
        find "$folder" -maxdepth 1 -name '*.so' ! -name "lib$type.so" -delete
        # Copy then rename, so a running emulator never sees half a file.
        cp "$library" "$folder/.lib$type.so.tmp"
        mv -f "$folder/.lib$type.so.tmp" "$folder/lib$type.so"
    done
    echo "$package: placed $(wc -w <<<"$used") plugins ($profile): $(echo $used)"
done
