#!/usr/bin/env bash
# An IP block written out of tree, as a third-party team would: generates a
# crate with `bitstream-emulator new` in a temporary folder outside the
# workspace (depending on this repository's SDK and test kit by path), runs
# its tests, builds it in release, places the plugin into the package the
# crate is, validates it with `validate-bitstream`, serves it with
# `bitstream-emulator run` and calls its routes over HTTP, then stops it.
# The commands are those of README.md's "Write an IP block out of tree".
#
# Uses the debug binaries `cargo build --workspace` made (ci/test.sh runs
# it first). The generated crate builds in target/out-of-tree (its own
# target dir, kept between runs so CI can reuse it), offline: every crate
# it needs is in the registry cache already.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# README.md's `$bin` is target/release; CI uses the debug build it has.
bin="$root/target/debug"
for tool in bitstream-emulator validate-bitstream; do
    [[ -x $bin/$tool ]] || { echo "out-of-tree: $bin/$tool missing; run cargo build --workspace first" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/bitstream-out-of-tree.XXXXXX")"
server=""
cleanup() {
    if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

export CARGO_TARGET_DIR="$root/target/out-of-tree"
export CARGO_NET_OFFLINE=true
start=$(date +%s)

# 1. Generate, as README.md does.
"$bin/bitstream-emulator" new ci_block --path "$work/ci_block" --sdk-path "$root/sdk"
cd "$work/ci_block"

# 2. The loop, as README.md writes it.
cargo test
cargo build --release
# The generated crate's release profile strips the plugin: no symbol table.
if readelf -SW "${CARGO_TARGET_DIR:-target}/release/libci_block.so" | grep -q '\.symtab'; then
    echo "out-of-tree: libci_block.so has a symbol table; the generated [profile.release] should strip it" >&2
    exit 1
fi
cp "${CARGO_TARGET_DIR:-target}/release/libci_block.so" emulators/ci_block/emulator/
"$bin/validate-bitstream" . -i ci_block

# 3. Serve it on a free port and call the generated routes.
"$bin/bitstream-emulator" run . --bind 127.0.0.1:0 --pulse-period-ms 50 --local-buffers >"$work/run.log" 2>&1 &
server=$!
addr=""
for _ in $(seq 1 200); do
    addr="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/run.log" | head -n1 || true)"
    [[ -n $addr ]] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/run.log" >&2; echo "out-of-tree: the emulator exited" >&2; exit 1; }
    sleep 0.1
done
[[ -n $addr ]] || { cat "$work/run.log" >&2; echo "out-of-tree: the emulator did not start serving" >&2; exit 1; }

post() { curl -sS -o "$work/answer" -w '%{http_code}' -X POST "$addr/ci_block/$1" -H 'Content-Type: application/json' -d "$2"; }
expect() { [[ $2 == "$3" ]] || { echo "out-of-tree: $1 answered $2 ($(cat "$work/answer")), expected $3" >&2; cat "$work/run.log" >&2; exit 1; }; }
expect "configure {\"gain\": 2.5}" "$(post configure '{"gain": 2.5}')" 200
expect "start" "$(post start '{}')" 200
# The host checks the body against the route's schema.
expect "configure {\"gain\": \"high\"}" "$(post configure '{"gain": "high"}')" 400
status="$(curl -sS "$addr/ci_block/status")"
echo "GET /ci_block/status: $status"
grep -q '"state":"RUNNING"' <<<"$status" || { echo "out-of-tree: block not RUNNING" >&2; exit 1; }

kill "$server"
wait "$server" || true
server=""
echo "out-of-tree: generated, tested, built, validated and served in $(( $(date +%s) - start )) s"
