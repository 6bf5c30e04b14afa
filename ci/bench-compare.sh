#!/usr/bin/env bash
# Benchmark (not part of the tests): the accelerated pulse rate through the
# real VCC package (fixtures/vcc_processing, release plugins) of two or more
# revisions, measured back to back: each revision's release binary and its
# own nine plugins are built from `git archive` in a temporary folder
# (sharing this checkout's target/ for dependencies; a host refuses plugins
# of a newer SDK, so each revision runs its own package), then
# `bitstream-emulator bench` runs alternate between
# them, round after round. Each run prints bench's median wall rate and the
# process's CPU time (user, system), which a loaded machine disturbs less,
# and the load average; a summary gives the median of each per revision.
# Usage: ci/bench-compare.sh REV [REV...] [-- pulses runs rounds]
#   e.g. ci/bench-compare.sh main HEAD -- 200000 7 5
set -euo pipefail
cd "$(dirname "$0")/.."
revs=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do revs+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
pulses=${1:-200000}
runs=${2:-7}
rounds=${3:-5}
[ ${#revs[@]} -ge 1 ] || { echo "usage: $0 REV [REV...] [-- pulses runs rounds]" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "$0: needs /usr/bin/time (Debian: time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target=$(pwd)/target

for i in "${!revs[@]}"; do
    rev=${revs[$i]}
    mkdir -p "$work/src-$i"
    git archive "$rev" | tar -x -C "$work/src-$i"
    # Older revisions' ci/vcc-package.sh read target/ itself: a link to this
    # checkout's target/ shares the dependencies with every revision.
    ln -s "$target" "$work/src-$i/target"
    (cd "$work/src-$i" \
        && env -u CARGO_TARGET_DIR cargo build --release --locked -p bitstream-host >/dev/null \
        && cp target/release/bitstream-emulator "$work/bin-$i" \
        && env -u CARGO_TARGET_DIR ci/vcc-package.sh release >/dev/null)
    mkdir -p "$work/vcc-$i/emulators"
    cp "$work/src-$i/fixtures/vcc_processing/emulators/config.json" "$work/vcc-$i/emulators/"
    for folder in "$work/src-$i"/fixtures/vcc_processing/emulators/*/emulator; do
        type=$(basename "$(dirname "$folder")")
        mkdir -p "$work/vcc-$i/emulators/$type/emulator"
        cp "$folder"/*.so "$work/vcc-$i/emulators/$type/emulator/"
    done
    echo "built $rev ($(git rev-parse --short "$rev"))"
done

for round in $(seq "$rounds"); do
    for i in "${!revs[@]}"; do
        out=$( { /usr/bin/time -f "cpu %U %S" "$work/bin-$i" bench "$work/vcc-$i" \
                 --pulses "$pulses" --runs "$runs"; } 2>&1 ) \
            || { echo "$0: the bench of ${revs[$i]} failed:" >&2; echo "$out" >&2; exit 1; }
        median=$(grep median_pulses_per_second <<<"$out" | tr -dc '0-9.')
        cpu=$(grep '^cpu' <<<"$out" | awk '{print $2 + $3}')
        echo "round $round ${revs[$i]}: median ${median} pulses/s, cpu ${cpu} s, load $(cut -d' ' -f1 /proc/loadavg)" \
            | tee -a "$work/results"
    done
done

echo "== medians over $rounds rounds ($(nproc) CPUs; each run: $runs x $pulses pulses after a 10,000-pulse warm-up)"
for rev in "${revs[@]}"; do
    rates=$(grep " $rev: " "$work/results" | awk '{print $5}' | sort -n)
    cpus=$(grep " $rev: " "$work/results" | awk '{print $8}' | sort -n)
    n=$(wc -l <<<"$rates")
    echo "$rev: median of wall medians $(sed -n "$(( (n + 1) / 2 ))p" <<<"$rates") pulses/s," \
         "median cpu $(sed -n "$(( (n + 1) / 2 ))p" <<<"$cpus") s"
done
