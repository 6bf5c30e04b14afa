#!/usr/bin/env bash
# Benchmark (not part of the tests): median wall time of validate-bitstream on
# a package of 8 plugin types (one block each, with constants), every plugin
# checked in its own process. Usage: ci/bench-validate.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-31}

cargo build --release --locked -p bitstream-validate -p fixture-minimal >/dev/null
package=$(mktemp -d)
trap 'rm -rf "$package"' EXIT
blocks=""
for i in 1 2 3 4 5 6 7 8; do
    mkdir -p "$package/emulators/type_$i/emulator"
    cp target/release/libfixture_minimal.so "$package/emulators/type_$i/emulator/libtype_$i.so"
    next=$((i + 1))
    downstream=$([ "$i" -lt 8 ] && echo "\"block_$next\"" || true)
    blocks+="{\"id\": \"block_$i\", \"type\": \"type_$i\", \"downstream_block_ids\": [$downstream], \"constants\": {\"label\": \"b$i\"}}"
    [ "$i" -lt 8 ] && blocks+=","
done
echo "{\"id\": \"bench\", \"version\": \"0.0.1\", \"ip_blocks\": [$blocks], \"first\": [\"block_1\"]}" \
    > "$package/emulators/config.json"

target/release/validate-bitstream "$package" >/dev/null   # warm the page cache; must pass
times=()
for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    target/release/validate-bitstream "$package" >/dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
median=${sorted[$(( runs / 2 ))]}
echo "validate-bitstream, 8 plugin types, isolated: median ${median} us over ${runs} runs" \
     "(min ${sorted[0]} us, max ${sorted[$(( runs - 1 ))]} us), $(nproc) CPUs"
