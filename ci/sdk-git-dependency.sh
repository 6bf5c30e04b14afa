#!/usr/bin/env bash
# Gets the SDK the way README.md ("Get the SDK without a clone") tells a
# team to: a crate outside this repository with
#   bitstream-sdk = { git = "<url of this repository>", rev = "<commit>" }
# Here the URL is this clone (file://) and the commit is HEAD, so only
# committed changes are tested. To stay offline, the crate starts from this
# repository's Cargo.lock (the registry crates are then already pinned and
# downloaded); a team online needs no such step. The block is a small
# standalone one; it is built (debug, target/sdk-compat, shared with
# ci/sdk-compat.sh), placed in a package, validated (the one warning is the
# unoptimized build) and served.
# Usage: ci/sdk-git-dependency.sh   (after `cargo build --workspace`)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bin="${CARGO_TARGET_DIR:-$repo/target}/debug"
export CARGO_TARGET_DIR="$repo/target/sdk-compat"
rev=$(git rev-parse HEAD)
work=$(mktemp -d /tmp/bitstream-gitdep-XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "sdk-git-dependency: FAILED: $*" >&2; exit 1; }

mkdir -p "$work/my_block/src"
cat >"$work/my_block/Cargo.toml" <<TOML
[package]
name = "my-block"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[dependencies]
bitstream-sdk = { git = "file://$repo", rev = "$rev" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[workspace]
TOML
cat >"$work/my_block/src/lib.rs" <<'RS'
use bitstream_sdk::prelude::*;

#[derive(Default, Serialize, Deserialize)]
pub struct MyBlock {
    gain: f64,
    #[serde(skip)]
    calls: u64,
}

fn state_machine() -> StateMachine {
    StateMachine::new(["ACTIVE", "FAULT"], "ACTIVE")
        .triggers(["CRITICAL_FAULT"])
        .transition(Transition::on("CRITICAL_FAULT").from(FROM_ANY).to("FAULT"))
}

#[derive(Deserialize)]
struct Configure {
    gain: f64,
}

fn api() -> Api<MyBlock> {
    Api::new()
        .route(Route::get("status", |block: &mut MyBlock, ctx, _req| {
            block.calls += 1;
            let id = ctx.block_id().unwrap_or_default();
            Ok(Response::ok().with_body(Value::from(format!("{id}: gain {} call {}", block.gain, block.calls))))
        }))
        .route(
            Route::post("configure", |block: &mut MyBlock, _ctx, req: Request| {
                block.gain = req.json::<Configure>()?.gain;
                Ok(Response::ok())
            })
            .body_with_schema(serde_json::json!({
                "type": "object",
                "properties": {"gain": {"type": "number", "minimum": 0, "maximum": 6}},
                "required": ["gain"]
            })),
        )
}

fn event_handler() -> EventHandler<MyBlock> {
    EventHandler::new()
}

bitstream_sdk::export_plugin! {
    ip_block: MyBlock,
    state_machine: state_machine,
    api: api,
    event_handler: event_handler,
}
RS
cp Cargo.lock "$work/my_block/Cargo.lock"
(cd "$work/my_block" && cargo build --quiet) || fail "the block does not build against the SDK from git"

pkg="$work/pkg"
mkdir -p "$pkg/emulators/my_block/emulator"
cp "$CARGO_TARGET_DIR/debug/libmy_block.so" "$pkg/emulators/my_block/emulator/"
cat >"$pkg/emulators/config.json" <<'JSON'
{"id": "gitdep", "version": "0.0.1",
 "ip_blocks": [{"id": "mine", "type": "my_block", "downstream_block_ids": []}],
 "first": ["mine"]}
JSON
out=$("$bin/validate-bitstream" "$pkg") || fail "the block does not validate: $out"
grep -q "built without optimization" <<<"$out" || fail "no warning about the debug build: $out"

port=$((20000 + ($$ + 7919) % 20000))
"$bin/bitstream-emulator" run "$pkg" --bind "127.0.0.1:$port" >"$work/run.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || fail "the emulator exited: $(cat "$work/run.log")"
    sleep 0.1
done
code=$(curl -s -o "$work/bad.json" -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -d '{"gain": 9}' "http://127.0.0.1:$port/mine/configure")
[ "$code" = 400 ] || fail "a body over the schema's maximum answered $code"
grep -q '/gain: 9 is greater than the maximum of 6' "$work/bad.json" || fail "$(cat "$work/bad.json")"
curl -sf -X POST -H 'content-type: application/json' -d '{"gain": 2.5}' \
    "http://127.0.0.1:$port/mine/configure" >/dev/null || fail "POST configure"
status=$(curl -sf "http://127.0.0.1:$port/mine/status")
[ "$status" = '"mine: gain 2.5 call 1"' ] || fail "unexpected status: $status"
echo "sdk-git-dependency: a block depending on the SDK by git ($rev) builds, validates and serves"
