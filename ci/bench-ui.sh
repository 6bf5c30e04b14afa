#!/usr/bin/env bash
# Benchmark (not run by the tests): how fast GET /ui is usable. Runs the
# browser test on the real VCC package N times (default 5; headless
# Chromium, debug build, as in CI) and reports the medians of what it
# measures in the page:
#   chain_drawn_ms_after_navigation: navigation start to the chain's SVG
#     drawn with every block's state (GET /, GET /graph?format=svg)
#   state_change_shown_ms_after_post: from just before the test POSTs a
#     block's start to the page showing the new state (POST, SSE, DOM)
# Usage: ci/bench-ui.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --workspace --locked
all=()
for i in $(seq "$runs"); do
    cargo test -q -p bitstream-host --locked --test browser_ui -- --ignored --exact \
        the_page_shows_the_real_vcc_chain_live_and_sends_routes >/dev/null
    all+=("$(tr -d '\n ' < target/ui-test/timings.json)")
    echo "run $i: ${all[-1]}" >&2
done
printf '%s\n' "${all[@]}" | python3 -c '
import json, statistics, sys
runs = [json.loads(line) for line in sys.stdin]
print(json.dumps({"runs": len(runs), **{f"median_{k}": round(statistics.median(r[k] for r in runs), 1) for k in runs[0]},
                  **{f"max_{k}": round(max(r[k] for r in runs), 1) for k in runs[0]}}, indent=2))'
