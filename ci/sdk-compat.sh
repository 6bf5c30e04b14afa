#!/usr/bin/env bash
# SDK compatibility within 1.x, with real builds (run by ci/test.sh after
# `cargo build --workspace`; uses target/debug/validate-bitstream and
# target/debug/bitstream-emulator):
#
# 1. A plugin built against SDK 1.1 loads and serves in this host:
#    fixtures/plugins/minimal, the SDK and the buffer crate as they were at
#    commit $SDK_1_1_COMMIT (SDK 1.1.0), taken from this clone's history
#    with `git archive`, built offline with that commit's Cargo.lock. It
#    must validate (with no build-record warning: 1.1 plugins have none),
#    and `bitstream-emulator run` must serve its routes over HTTP.
# 2. A plugin built from an SDK with one field added to `PulseEvent` (this
#    tree's SDK, patched) is refused with a short message naming the type
#    and expected vs found; the full abi_stable report only with
#    --verbose (text) or as `detail` (JSON); JSON and JUnit keep the
#    plugin's SDK version; `run` refuses it with the same short message.
#
# Both builds go to target/sdk-compat, kept between runs (later runs only
# rebuild the few path crates). Without the commit in this clone's history
# (a shallow clone), step 1 is skipped with a message saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
SDK_1_1_COMMIT=5b4f2d0
bin="${CARGO_TARGET_DIR:-$repo/target}/debug"
export CARGO_TARGET_DIR="$repo/target/sdk-compat"
work=$(mktemp -d /tmp/bitstream-compat-XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "sdk-compat: FAILED: $*" >&2; exit 1; }
# The crates the minimal fixture needs, and nothing else, as the workspace.
# Their dev-dependencies (the test kit, which needs the host) are not
# built here, so they are dropped from the copies.
trim() {
    sed -i 's|^members = .*|members = ["buffer", "sdk", "plugins/vcc_common", "fixtures/plugins/common", "fixtures/plugins/minimal"]|' "$1/Cargo.toml"
    for manifest in "$1"/plugins/vcc_common/Cargo.toml "$1"/fixtures/plugins/common/Cargo.toml \
        "$1"/fixtures/plugins/minimal/Cargo.toml; do
        if [ -f "$manifest" ]; then
            perl -0pi -e 's/\n\[dev-dependencies\]\n.*?(?=\n\[)//s' "$manifest"
        fi
    done
}
package() { # package <dir> <library>
    mkdir -p "$1/emulators/counter/emulator"
    cp "$2" "$1/emulators/counter/emulator/"
    cat >"$1/emulators/config.json" <<'JSON'
{
  "id": "sdk_compat", "version": "0.0.1",
  "ip_blocks": [
    {"id": "counter_a", "type": "counter", "downstream_block_ids": ["counter_b"], "constants": {"label": "A"}},
    {"id": "counter_b", "type": "counter", "downstream_block_ids": []}
  ],
  "first": ["counter_a"]
}
JSON
}
build_minimal() { # build_minimal <workspace> <out library>
    (cd "$1" && cargo build --offline --quiet -p fixture-minimal)
    cp "$CARGO_TARGET_DIR/debug/libfixture_minimal.so" "$2"
}

# --- 1. a plugin built against SDK 1.1 -----------------------------------
if git rev-parse -q --verify "$SDK_1_1_COMMIT^{commit}" >/dev/null 2>&1; then
    mkdir "$work/v1_1"
    git archive "$SDK_1_1_COMMIT" Cargo.toml Cargo.lock buffer sdk plugins/vcc_common \
        fixtures/plugins/common fixtures/plugins/minimal | tar -x -C "$work/v1_1"
    grep -q '^version = "1.1.0"' "$work/v1_1/sdk/Cargo.toml" || fail "commit $SDK_1_1_COMMIT is not SDK 1.1.0"
    trim "$work/v1_1"
    build_minimal "$work/v1_1" "$work/libfixture_minimal_1_1.so"
    package "$work/pkg_1_1" "$work/libfixture_minimal_1_1.so"
    out=$("$bin/validate-bitstream" "$work/pkg_1_1") || fail "the SDK 1.1 plugin does not validate:
$out"
    grep -q "SDK 1.1.0" <<<"$out" || fail "the report does not name SDK 1.1.0: $out"
    grep -q "0 error(s), 0 warning(s)" <<<"$out" || fail "unexpected problems: $out"

    port=$((20000 + $$ % 20000))
    "$bin/bitstream-emulator" run "$work/pkg_1_1" --bind "127.0.0.1:$port" >"$work/run.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || fail "the emulator exited: $(cat "$work/run.log")"
        sleep 0.1
    done
    status=$(curl -sf "http://127.0.0.1:$port/counter_a/status") || fail "GET /counter_a/status: $(cat "$work/run.log")"
    grep -q '"label":"A"' <<<"$status" || fail "unexpected status: $status"
    curl -sf -X POST -H 'content-type: application/json' -d '{"label": "from 1.1"}' \
        "http://127.0.0.1:$port/counter_a/configure" >/dev/null || fail "POST /counter_a/configure"
    status=$(curl -sf "http://127.0.0.1:$port/counter_a/status")
    grep -q '"label":"from 1.1"' <<<"$status" || fail "configure had no effect: $status"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    echo "sdk-compat: a plugin built against SDK 1.1 ($SDK_1_1_COMMIT) validates and serves"
else
    echo "sdk-compat: SKIPPED the SDK 1.1 plugin: commit $SDK_1_1_COMMIT is not in this clone's history (a shallow clone?); run 'git fetch --unshallow' to check it" >&2
fi

# --- 2. one field added to PulseEvent ------------------------------------
mkdir "$work/patched"
git ls-files -z Cargo.toml Cargo.lock buffer sdk plugins/vcc_common fixtures/plugins/common \
    fixtures/plugins/minimal | xargs -0 cp --parents -t "$work/patched"
trim "$work/patched"
perl -0pi -e 's/(pub struct PulseEvent \{.*?)(\n\})/$1\n    pub extra: u64,$2/s' "$work/patched/sdk/src/ffi.rs"
grep -q "pub extra: u64" "$work/patched/sdk/src/ffi.rs" || fail "could not patch PulseEvent"
sdk_version=$(sed -n 's/^version = "\(.*\)"/\1/p' sdk/Cargo.toml | head -1)
build_minimal "$work/patched" "$work/libfixture_minimal_patched.so"
package "$work/pkg_patched" "$work/libfixture_minimal_patched.so"

code=0; out=$("$bin/validate-bitstream" "$work/pkg_patched") || code=$?
[ "$code" = 1 ] || fail "validate-bitstream exited $code on the patched plugin: $out"
grep -q 'type `PulseEvent`' <<<"$out" || fail "the message does not name PulseEvent: $out"
grep -q "size 16 bytes expected, 24 found" <<<"$out" || fail "no expected/found size: $out"
grep -q "(SDK $sdk_version)" <<<"$out" || fail "the text report lost the SDK version: $out"
lines=$(wc -l <<<"$out")
[ "$lines" -le 15 ] || fail "the text report has $lines lines:
$out"
verbose=$("$bin/validate-bitstream" --verbose "$work/pkg_patched" || true)
[ "$(wc -l <<<"$verbose")" -gt 100 ] || fail "--verbose does not show the full layout report"
"$bin/validate-bitstream" --format json "$work/pkg_patched" >"$work/report.json" || true
python3 - "$sdk_version" "$work/report.json" <<'PY' || fail "JSON report: $(head -c 3000 "$work/report.json")"
import json, sys
report = json.load(open(sys.argv[2]))
plugin = report["plugins"][0]
assert plugin["sdk_version"] == sys.argv[1], plugin["sdk_version"]
abi = [c for c in plugin["checks"] if c["name"] == "abi"][0]
problem = abi["problems"][0]
assert "type `PulseEvent` (reached through event_handler → pulse)" in problem["message"], problem["message"]
assert len(problem["message"].splitlines()) <= 8, problem["message"]
assert len(problem["detail"].splitlines()) > 100
PY
junit=$("$bin/validate-bitstream" --format junit "$work/pkg_patched" || true)
grep -q "<property name=\"sdk_version\" value=\"$sdk_version\"/>" <<<"$junit" || fail "JUnit lost the SDK version"
[ "${#junit}" -lt 6000 ] || fail "the JUnit report is ${#junit} bytes"
code=0; run_err=$("$bin/bitstream-emulator" run "$work/pkg_patched" --bind 127.0.0.1:0 2>&1) || code=$?
[ "$code" != 0 ] || fail "run accepted the patched plugin"
grep -q 'type `PulseEvent`' <<<"$run_err" || fail "run's message does not name PulseEvent: $run_err"
[ "$(wc -l <<<"$run_err")" -le 15 ] || fail "run's message is long: $run_err"
echo "sdk-compat: a plugin with one field added to PulseEvent is refused in $lines lines naming the type"
